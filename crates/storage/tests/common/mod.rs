//! Shared fixtures for the storage integration tests: a torrent made of real random bytes with
//! its real SHA-1 piece hashes, laid out over the files a test describes.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::Path;
use std::sync::Arc;

use bitswarm_storage::{FileSpec, Storage, StorageOptions, TorrentId, TorrentLayout};
use bytes::Bytes;
use rand::{Rng, SeedableRng};
use sha1::{Digest, Sha1};

/// A file in a fixture: name, length, pad, wanted.
pub type FileDesc<'a> = (&'a str, u64, bool, bool);

pub struct Fixture {
    pub dir: tempfile::TempDir,
    /// The whole byte stream (pad regions are zeros).
    pub data: Vec<u8>,
    pub layout: TorrentLayout,
}

impl Fixture {
    pub fn new(piece_length: u32, files: &[FileDesc<'_>], seed: u64) -> Self {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut data = Vec::new();
        let specs = files
            .iter()
            .map(|&(name, length, pad, wanted)| {
                let start = data.len();
                data.resize(start + length as usize, 0);
                if !pad {
                    rng.fill(&mut data[start..]);
                }
                FileSpec {
                    path: name.into(),
                    length,
                    pad,
                    wanted,
                }
            })
            .collect();
        let hashes = data
            .chunks(piece_length as usize)
            .map(|chunk| Sha1::digest(chunk).into())
            .collect();
        let layout = TorrentLayout::new(piece_length, hashes, specs).unwrap();
        Self {
            dir: tempfile::tempdir().unwrap(),
            data,
            layout,
        }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn storage(&self) -> Arc<Storage> {
        self.storage_with(&StorageOptions::default())
    }

    pub fn storage_with(&self, options: &StorageOptions) -> Arc<Storage> {
        Arc::new(Storage::open(TorrentId(7), self.root(), self.layout.clone(), options).unwrap())
    }

    /// The bytes of `piece` at `offset`, `len` long, as a block.
    pub fn block(&self, piece: u32, offset: u32, len: u32) -> Bytes {
        let at = self.layout.piece_offset(piece) as usize + offset as usize;
        Bytes::copy_from_slice(&self.data[at..at + len as usize])
    }

    /// Every block of `piece`, `block_len` at a time: (offset, bytes).
    pub fn blocks(&self, piece: u32, block_len: u32) -> Vec<(u32, Bytes)> {
        let len = self.layout.piece_len(piece);
        (0..len)
            .step_by(block_len as usize)
            .map(|offset| {
                (
                    offset,
                    self.block(piece, offset, block_len.min(len - offset)),
                )
            })
            .collect()
    }

    /// The expected contents of file `index`.
    pub fn file_data(&self, index: usize) -> &[u8] {
        let start = self.layout.file_offset(index).unwrap() as usize;
        &self.data[start..start + self.layout.files()[index].length as usize]
    }
}

/// Deterministic shuffle (the tests must replay exactly).
pub fn shuffled<T>(mut items: Vec<T>, seed: u64) -> Vec<T> {
    use rand::seq::SliceRandom;
    items.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
    items
}
