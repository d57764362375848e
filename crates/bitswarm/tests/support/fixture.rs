//! The test payload: ~64 MiB of files whose boundaries fall inside pieces, its torrent made
//! by `bitswarm create`, and the byte-for-byte comparison of what a leecher wrote.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{json, run_ok, write_file};

/// Files of the test payload (path under the torrent's folder, size): about 64 MiB whose file
/// boundaries fall inside 256 KiB pieces, with two files smaller than one block, and a total
/// that leaves the last piece short.
const PAYLOAD: [(&str, u64); 6] = [
    ("a.bin", 7_340_033),
    ("docs/readme.txt", 1_234),
    ("docs/tiny", 3),
    ("media/b.bin", 33_554_431),
    ("media/c.bin", 20_000_000),
    ("z-last.bin", 6_158_842),
];
/// The payload's piece size.
pub const PIECE_LEN: u64 = 256 * 1024;

/// A torrent made by `bitswarm create` over a freshly written payload, in its own temp dir.
pub struct Fixture {
    /// Owns every file of the test; removed on drop.
    pub tmp: tempfile::TempDir,
    /// The save path of the seeded copy: the content is `seed_dir/NAME`.
    pub seed_dir: PathBuf,
    /// The .torrent file.
    pub torrent: PathBuf,
    /// The torrent's name (its top folder).
    pub name: String,
    /// Payload bytes.
    pub total: u64,
    /// The info-hash, lowercase hex.
    pub info_hash_hex: String,
    /// Files in torrent order: path relative to the top folder, size.
    pub files: Vec<(String, u64)>,
}

impl Fixture {
    /// Writes the payload and makes its torrent (256 KiB pieces, no date).
    pub fn new() -> Self {
        let tmp = tempfile::Builder::new()
            .prefix("bitswarm-transfer-")
            .tempdir()
            .expect("temp dir");
        let name = "payload".to_owned();
        let seed_dir = tmp.path().join("seed");
        for (i, (path, len)) in PAYLOAD.iter().enumerate() {
            let len = usize::try_from(*len).expect("fits");
            write_file(&seed_dir.join(&name).join(path), len, 1000 + i as u64);
        }
        let torrent = tmp.path().join("payload.torrent");
        run_ok(
            Command::new(env!("CARGO_BIN_EXE_bitswarm"))
                .args(["create", "--no-date", "--piece-size", "256K"])
                .arg(seed_dir.join(&name))
                .arg("-o")
                .arg(&torrent),
        );
        let info = json(&run_ok(
            Command::new(env!("CARGO_BIN_EXE_bitswarm"))
                .args(["info", "--json"])
                .arg(&torrent),
        ));
        let files: Vec<(String, u64)> = info["files"]
            .as_array()
            .expect("files")
            .iter()
            .map(|f| {
                (
                    f["path"].as_str().unwrap().to_owned(),
                    f["size"].as_u64().unwrap(),
                )
            })
            .collect();
        let total = info["total_size"].as_u64().expect("total_size");
        assert_eq!(total, PAYLOAD.iter().map(|(_, l)| l).sum::<u64>());
        assert_eq!(info["piece_size"].as_u64(), Some(PIECE_LEN));
        assert_ne!(total % PIECE_LEN, 0, "the last piece must be short");
        let info_hash_hex = info["info_hash"].as_str().expect("info_hash").to_owned();
        Self {
            tmp,
            seed_dir,
            torrent,
            name,
            total,
            info_hash_hex,
            files,
        }
    }

    /// A path inside the test's temp dir.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    /// The info-hash as bytes.
    pub fn info_hash(&self) -> [u8; 20] {
        let mut out = [0u8; 20];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&self.info_hash_hex[2 * i..2 * i + 2], 16).expect("hex");
        }
        out
    }

    /// The torrent's contiguous byte stream: every file, in torrent order.
    pub fn payload_bytes(&self) -> Vec<u8> {
        let mut all = Vec::with_capacity(usize::try_from(self.total).expect("fits"));
        for (path, _) in &self.files {
            let mut f = fs::File::open(self.seed_dir.join(&self.name).join(path)).expect("open");
            f.read_to_end(&mut all).expect("read");
        }
        all
    }

    /// Asserts `out_dir/NAME` holds exactly the seeded files, byte for byte.
    pub fn assert_same_content(&self, out_dir: &Path) -> Result<(), String> {
        assert_same_tree(&self.seed_dir.join(&self.name), &out_dir.join(&self.name))
    }
}

/// Asserts two folders hold the same relative file paths with identical bytes.
pub fn assert_same_tree(want: &Path, got: &Path) -> Result<(), String> {
    let (w, g) = (list_files(want)?, list_files(got)?);
    if w.keys().ne(g.keys()) {
        return Err(format!(
            "{} holds files {:?}, expected {:?}",
            got.display(),
            g.keys().collect::<Vec<_>>(),
            w.keys().collect::<Vec<_>>()
        ));
    }
    for (rel, len) in &w {
        if g[rel] != *len {
            return Err(format!(
                "{}: {} bytes, expected {len}",
                rel.display(),
                g[rel]
            ));
        }
        if let Some(at) = first_difference(&want.join(rel), &got.join(rel))? {
            return Err(format!("{}: bytes differ from offset {at}", rel.display()));
        }
    }
    Ok(())
}

fn list_files(root: &Path) -> Result<BTreeMap<PathBuf, u64>, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| e.to_string())?;
            let meta = entry.metadata().map_err(|e| e.to_string())?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                let rel = entry
                    .path()
                    .strip_prefix(root)
                    .expect("under root")
                    .to_path_buf();
                out.insert(rel, meta.len());
            }
        }
    }
    Ok(out)
}

fn first_difference(a: &Path, b: &Path) -> Result<Option<u64>, String> {
    let open = |p: &Path| fs::File::open(p).map_err(|e| format!("{}: {e}", p.display()));
    let (mut fa, mut fb) = (open(a)?, open(b)?);
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    let mut offset = 0u64;
    loop {
        let na = read_full(&mut fa, &mut ba)?;
        let nb = read_full(&mut fb, &mut bb)?;
        if ba[..na] != bb[..nb] {
            let at = ba[..na]
                .iter()
                .zip(&bb[..nb])
                .take_while(|(x, y)| x == y)
                .count();
            return Ok(Some(offset + at as u64));
        }
        if na == 0 {
            return Ok(None);
        }
        offset += na as u64;
    }
}

fn read_full(f: &mut fs::File, buf: &mut [u8]) -> Result<usize, String> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]).map_err(|e| e.to_string())? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}
