//! The demo's data: a small folder tree of random files whose sizes do not line up with
//! pieces, and the byte-for-byte comparison of every copy with it.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::AtomicBool;

use anyhow::{bail, Context, Result};
use rand::RngCore;

use super::check_cancel;

/// Bytes written or compared per step (Ctrl-C is noticed between steps).
const CHUNK_BYTES: usize = 1 << 20;

/// Writes the sample tree under `dir`, `total` bytes in all (within a few bytes).
pub fn make(dir: &Path, total: u64, cancel: &AtomicBool) -> Result<()> {
    let files = [
        ("README.txt", 1_337),
        ("video/part-1.bin", total / 2 + 12_345),
        ("video/part-2.bin", total / 3),
        ("extras/empty.dat", 0),
        ("extras/notes.bin", (total / 6).saturating_sub(13_682)),
    ];
    let mut rng = rand::thread_rng();
    let mut buf = vec![0u8; CHUNK_BYTES];
    for (name, len) in files {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let mut file =
            File::create(&path).with_context(|| format!("cannot write {}", path.display()))?;
        let mut left: u64 = len;
        while left > 0 {
            check_cancel(cancel)?;
            let n = usize::try_from(left.min(CHUNK_BYTES as u64))?;
            let chunk = buf.get_mut(..n).context("chunk larger than its buffer")?;
            rng.fill_bytes(chunk);
            file.write_all(chunk)
                .with_context(|| format!("cannot write {}", path.display()))?;
            left -= n as u64;
        }
    }
    Ok(())
}

/// Bytes in every file under `dir`.
pub fn tree_size(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry?;
        total += if entry.file_type()?.is_dir() {
            tree_size(&entry.path())?
        } else {
            entry.metadata()?.len()
        };
    }
    Ok(total)
}

/// Fails unless every file under `original` has an identical twin under `copy`.
pub fn compare_trees(original: &Path, copy: &Path, cancel: &AtomicBool) -> Result<()> {
    let entries =
        fs::read_dir(original).with_context(|| format!("cannot list {}", original.display()))?;
    for entry in entries {
        let entry = entry?;
        let (a, b) = (entry.path(), copy.join(entry.file_name()));
        if entry.file_type()?.is_dir() {
            compare_trees(&a, &b, cancel)?;
        } else {
            compare_files(&a, &b, cancel)?;
        }
    }
    Ok(())
}

fn compare_files(a: &Path, b: &Path, cancel: &AtomicBool) -> Result<()> {
    let mut fa = File::open(a).with_context(|| format!("cannot read {}", a.display()))?;
    let mut fb = File::open(b).with_context(|| format!("{} is missing", b.display()))?;
    let (len_a, len_b) = (fa.metadata()?.len(), fb.metadata()?.len());
    if len_a != len_b {
        bail!("{} has {len_b} bytes, the original {len_a}", b.display());
    }
    let (mut ba, mut bb) = (vec![0u8; CHUNK_BYTES], vec![0u8; CHUNK_BYTES]);
    let mut offset = 0u64;
    while offset < len_a {
        check_cancel(cancel)?;
        let n = usize::try_from((len_a - offset).min(CHUNK_BYTES as u64))?;
        let (ca, cb) = (&mut ba[..n], &mut bb[..n]);
        fa.read_exact(ca)
            .with_context(|| format!("cannot read {}", a.display()))?;
        fb.read_exact(cb)
            .with_context(|| format!("cannot read {}", b.display()))?;
        if ca != cb {
            let at = ca.iter().zip(cb.iter()).position(|(x, y)| x != y);
            let at = offset + at.unwrap_or(0) as u64;
            bail!("{} differs from the original at byte {at}", b.display());
        }
        offset += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_matches_and_a_changed_byte_is_found() {
        let tmp = std::env::temp_dir().join(format!("bitswarm-demo-sample-{}", std::process::id()));
        let (orig, copy) = (tmp.join("a"), tmp.join("b"));
        let cancel = AtomicBool::new(false);
        make(&orig, 3 << 20, &cancel).unwrap();
        assert!(tree_size(&orig).unwrap().abs_diff(3 << 20) < 20_000);
        // Copy the tree, then compare: equal.
        for name in [
            "README.txt",
            "video/part-1.bin",
            "video/part-2.bin",
            "extras/empty.dat",
            "extras/notes.bin",
        ] {
            let to = copy.join(name);
            fs::create_dir_all(to.parent().unwrap()).unwrap();
            fs::copy(orig.join(name), &to).unwrap();
        }
        compare_trees(&orig, &copy, &cancel).unwrap();
        // One byte changed past the first chunk: found, with its offset.
        let target = copy.join("video/part-1.bin");
        let mut bytes = fs::read(&target).unwrap();
        bytes[CHUNK_BYTES + 7] ^= 1;
        fs::write(&target, &bytes).unwrap();
        let err = compare_trees(&orig, &copy, &cancel)
            .unwrap_err()
            .to_string();
        assert!(err.contains(&format!("byte {}", CHUNK_BYTES + 7)), "{err}");
        fs::remove_dir_all(&tmp).unwrap();
    }
}
