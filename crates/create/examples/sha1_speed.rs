//! Single-core SHA-1 speed of the implementation this crate uses (RustCrypto `sha1`, SHA-NI
//! when the CPU has it), on 16 KiB blocks like `openssl speed -evp sha1 -bytes 16384`, so the
//! two can be compared: `cargo run --release -p bitswarm-create --example sha1_speed [MIB]`.
//! Hashes MIB (default 2048) MiB and prints `mib <MIB> seconds <wall seconds>`; run it under
//! `/usr/bin/time` for the CPU-time figure (bench/create.sh does).

use std::hint::black_box;
use std::time::Instant;

use sha1::{Digest, Sha1};

const BLOCK_LEN: usize = 16 * 1024;

fn main() {
    let mib: u32 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2048);
    let block: Vec<u8> = (0..BLOCK_LEN).map(|i| (i * 7 + 3) as u8).collect();
    let blocks = u64::from(mib) * (1 << 20) / BLOCK_LEN as u64;
    let start = Instant::now();
    for _ in 0..blocks {
        black_box(Sha1::digest(black_box(&block)));
    }
    println!("mib {mib} seconds {:.3}", start.elapsed().as_secs_f64());
}
