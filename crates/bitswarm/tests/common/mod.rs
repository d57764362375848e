//! Shared helpers for the binary's integration tests: run `bitswarm`, find required external
//! programs (failing loudly when one is missing), make sample trees.

#![allow(dead_code)] // each test file uses a different subset

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `bitswarm` binary built for this test run.
pub fn bitswarm() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bitswarm"))
}

/// Runs a command and returns its output, failing the test with stderr if it did not succeed.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}:\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The path of an external program the test needs; panics with install advice if it is absent.
pub fn require(program: &str, debian_package: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/local/bin", "/bin"] {
        let p = Path::new(dir).join(program);
        if p.exists() {
            return p;
        }
    }
    panic!(
        "this test needs `{program}` from the Debian package `{debian_package}`; \
         install the test dependencies with `scripts/install-test-deps` (as root)"
    );
}

/// Debian's Python, which has `libtorrent` when `python3-libtorrent` is installed.
pub fn python_with_libtorrent() -> PathBuf {
    let python = require("python3", "python3");
    let ok = Command::new(&python)
        .args(["-c", "import libtorrent"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "this test needs python3-libtorrent for {}; install the test dependencies with \
         `scripts/install-test-deps` (as root)",
        python.display()
    );
    python
}

/// Writes `len` bytes of deterministic pseudo-random data (xorshift from `seed`).
pub fn write_file(path: &Path, len: usize, seed: u64) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    let mut state = seed | 1;
    let mut data = Vec::with_capacity(len);
    while data.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        data.extend_from_slice(&state.to_le_bytes());
    }
    data.truncate(len);
    fs::File::create(path).unwrap().write_all(&data).unwrap();
}

/// A multi-file folder whose file boundaries fall inside pieces (for any piece size >= 16 KiB),
/// with a nested folder and an empty file.
pub fn sample_tree(root: &Path) -> PathBuf {
    let dir = root.join("sample");
    write_file(&dir.join("a.bin"), 300_001, 1);
    write_file(&dir.join("docs/readme.txt"), 4_321, 2);
    write_file(&dir.join("docs/deeper/c.bin"), 1_000_000, 3);
    write_file(&dir.join("z-last.bin"), 77_777, 4);
    fs::File::create(dir.join("docs/empty")).unwrap();
    dir
}

/// Parses JSON printed by a command.
pub fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "output is not JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}
