//! Torrent geometry without I/O: where each piece's bytes live in the files. The caller builds a
//! `TorrentLayout` from whatever metainfo it parsed; this crate does not depend on the parser.

use std::ops::Range;
use std::path::PathBuf;

use crate::bitfield::Bitfield;
use crate::error::{Result, StorageError};

/// One file of the torrent's byte stream (v1: the files concatenated in order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpec {
    /// Relative path under the download folder, already sanitised by the caller. `Storage`
    /// checks it again (no `..`, not absolute, no separator inside a component).
    pub path: PathBuf,
    /// Length in bytes; zero-length files own no bytes of any piece.
    pub length: u64,
    /// A BEP 47 pad file: its bytes are zeros, it is never created, read as zeros.
    pub pad: bool,
    /// Whether the user wants this file (the picker's business; see `Storage` for what it
    /// means on disk).
    pub wanted: bool,
}

/// A contiguous run of bytes inside one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSpan {
    /// Index into `TorrentLayout::files`.
    pub file: usize,
    /// Byte offset inside that file.
    pub offset: u64,
    /// Length of the run, never zero.
    pub len: u32,
}

/// The validated shape of a v1 torrent: piece length, expected piece hashes and files.
/// Once `new` succeeds, no method panics.
#[derive(Debug, Clone)]
pub struct TorrentLayout {
    piece_length: u32,
    piece_hashes: Vec<[u8; 20]>,
    files: Vec<FileSpec>,
    /// `starts[i]` is file `i`'s offset in the byte stream (prefix sums of lengths).
    starts: Vec<u64>,
    total: u64,
    piece_count: u32,
}

impl TorrentLayout {
    /// Validates and builds a layout: `piece_length > 0`, total length in `1..=u64::MAX`,
    /// exactly `ceil(total / piece_length)` hashes (which must fit a `u32` count).
    pub fn new(
        piece_length: u32,
        piece_hashes: Vec<[u8; 20]>,
        files: Vec<FileSpec>,
    ) -> Result<Self> {
        if piece_length == 0 {
            return Err(StorageError::ZeroPieceLength);
        }
        let mut starts = Vec::with_capacity(files.len());
        let mut total = 0u64;
        for file in &files {
            starts.push(total);
            total = total
                .checked_add(file.length)
                .ok_or(StorageError::BadTotalLength)?;
        }
        if total == 0 {
            return Err(StorageError::BadTotalLength);
        }
        let expected = total.div_ceil(u64::from(piece_length));
        let piece_count = u32::try_from(expected)
            .ok()
            .filter(|_| expected == piece_hashes.len() as u64)
            .ok_or(StorageError::PieceCountMismatch {
                expected,
                got: piece_hashes.len(),
            })?;
        Ok(Self {
            piece_length,
            piece_hashes,
            files,
            starts,
            total,
            piece_count,
        })
    }

    /// The nominal piece length (every piece but possibly the last).
    #[must_use]
    pub fn piece_length(&self) -> u32 {
        self.piece_length
    }

    /// Sum of all file lengths, pad files included.
    #[must_use]
    pub fn total_length(&self) -> u64 {
        self.total
    }

    /// Number of pieces.
    #[must_use]
    pub fn piece_count(&self) -> u32 {
        self.piece_count
    }

    /// Length of `piece`: `piece_length`, shorter for the last piece, 0 when out of range.
    #[must_use]
    pub fn piece_len(&self, piece: u32) -> u32 {
        if piece >= self.piece_count {
            return 0;
        }
        let rest = self.total - self.piece_offset(piece);
        // rest > 0 because piece < piece_count; the min fits u32 because piece_length does.
        rest.min(u64::from(self.piece_length)) as u32
    }

    /// Offset of `piece`'s first byte in the byte stream.
    #[must_use]
    pub fn piece_offset(&self, piece: u32) -> u64 {
        u64::from(piece) * u64::from(self.piece_length)
    }

    /// The expected SHA-1 of `piece`.
    #[must_use]
    pub fn piece_hash(&self, piece: u32) -> Option<&[u8; 20]> {
        self.piece_hashes.get(piece as usize)
    }

    /// The files, in stream order.
    #[must_use]
    pub fn files(&self) -> &[FileSpec] {
        &self.files
    }

    /// Offset of `file`'s first byte in the byte stream.
    #[must_use]
    pub fn file_offset(&self, file: usize) -> Option<u64> {
        self.starts.get(file).copied()
    }

    /// The file runs that make up `piece`, in order; empty when out of range.
    #[must_use]
    pub fn piece_spans(&self, piece: u32) -> FileSpans<'_> {
        self.spans(self.piece_offset(piece), self.piece_len(piece))
    }

    /// The file runs covering `len` bytes from `offset` in the byte stream, clipped to the
    /// stream's end. Zero-length files never appear.
    #[must_use]
    pub fn spans(&self, offset: u64, len: u32) -> FileSpans<'_> {
        let remaining = if offset >= self.total {
            0
        } else {
            u64::from(len).min(self.total - offset)
        };
        let file = self
            .starts
            .partition_point(|&s| s <= offset)
            .saturating_sub(1);
        FileSpans {
            layout: self,
            file,
            pos: offset,
            remaining,
        }
    }

    /// The pieces holding at least one byte of `file` (empty for zero-length files).
    #[must_use]
    pub fn file_pieces(&self, file: usize) -> Range<u32> {
        let (Some(&start), Some(spec)) = (self.starts.get(file), self.files.get(file)) else {
            return 0..0;
        };
        let first = (start / u64::from(self.piece_length)) as u32;
        if spec.length == 0 {
            return first..first;
        }
        let last = ((start + spec.length - 1) / u64::from(self.piece_length)) as u32;
        first..last + 1
    }

    /// Pieces that hold at least one byte of a wanted, non-pad file: what the picker should
    /// fetch.
    #[must_use]
    pub fn wanted_pieces(&self) -> Bitfield {
        let mut wanted = Bitfield::new(self.piece_count);
        for (index, file) in self.files.iter().enumerate() {
            if file.wanted && !file.pad {
                for piece in self.file_pieces(index) {
                    wanted.set(piece, true);
                }
            }
        }
        wanted
    }

    /// Marks `file` wanted or not (the picker reads it back through `wanted_pieces`).
    pub fn set_wanted(&mut self, file: usize, wanted: bool) -> Result<()> {
        let spec = self
            .files
            .get_mut(file)
            .ok_or(StorageError::FileOutOfRange { file })?;
        spec.wanted = wanted;
        Ok(())
    }
}

/// Iterator over the `FileSpan`s of a byte range; see `TorrentLayout::spans`.
#[derive(Debug, Clone)]
pub struct FileSpans<'a> {
    layout: &'a TorrentLayout,
    file: usize,
    pos: u64,
    remaining: u64,
}

impl Iterator for FileSpans<'_> {
    type Item = FileSpan;

    fn next(&mut self) -> Option<FileSpan> {
        while self.remaining > 0 {
            let start = *self.layout.starts.get(self.file)?;
            let length = self.layout.files.get(self.file)?.length;
            let end = start + length;
            if self.pos >= end {
                self.file += 1;
                continue;
            }
            let take = (end - self.pos).min(self.remaining);
            let span = FileSpan {
                file: self.file,
                offset: self.pos - start,
                // take <= remaining <= the u32 length passed to `spans`.
                len: take as u32,
            };
            self.pos += take;
            self.remaining -= take;
            self.file += 1;
            return Some(span);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn spec(length: u64, pad: bool) -> FileSpec {
        FileSpec {
            path: PathBuf::from(format!("f{length}")),
            length,
            pad,
            wanted: true,
        }
    }

    fn layout(piece_length: u32, lengths: &[u64]) -> TorrentLayout {
        let files = lengths.iter().map(|&l| spec(l, false)).collect::<Vec<_>>();
        let total: u64 = lengths.iter().sum();
        let count = total.div_ceil(u64::from(piece_length)) as usize;
        TorrentLayout::new(piece_length, vec![[0; 20]; count], files).unwrap()
    }

    #[test]
    fn last_piece_is_short() {
        let l = layout(16, &[40]);
        assert_eq!(l.piece_count(), 3);
        assert_eq!((l.piece_len(0), l.piece_len(2), l.piece_len(3)), (16, 8, 0));
    }

    #[test]
    fn spans_cross_boundaries_and_skip_empty_files() {
        let l = layout(10, &[7, 0, 0, 5, 8]);
        let spans: Vec<_> = l.piece_spans(0).collect();
        let expect = [
            FileSpan {
                file: 0,
                offset: 0,
                len: 7,
            },
            FileSpan {
                file: 3,
                offset: 0,
                len: 3,
            },
        ];
        assert_eq!(spans, expect);
        let spans: Vec<_> = l.piece_spans(1).collect();
        let expect = [
            FileSpan {
                file: 3,
                offset: 3,
                len: 2,
            },
            FileSpan {
                file: 4,
                offset: 0,
                len: 8,
            },
        ];
        assert_eq!(spans, expect);
        assert_eq!(l.piece_spans(2).count(), 0);
        assert_eq!(l.file_pieces(1), 0..0);
        assert_eq!(l.file_pieces(3), 0..2);
    }

    #[test]
    fn invalid_layouts_are_rejected() {
        let one = || vec![spec(1, false)];
        assert!(matches!(
            TorrentLayout::new(0, vec![[0; 20]], one()),
            Err(StorageError::ZeroPieceLength)
        ));
        assert!(matches!(
            TorrentLayout::new(4, vec![], vec![spec(0, false)]),
            Err(StorageError::BadTotalLength)
        ));
        assert!(matches!(
            TorrentLayout::new(4, vec![[0; 20]; 2], one()),
            Err(StorageError::PieceCountMismatch {
                expected: 1,
                got: 2
            })
        ));
        let huge = vec![spec(u64::MAX, false), spec(1, false)];
        assert!(matches!(
            TorrentLayout::new(4, vec![], huge),
            Err(StorageError::BadTotalLength)
        ));
    }

    #[test]
    fn wanted_pieces_skip_pad_and_unwanted() {
        let mut files = vec![spec(10, false), spec(6, true), spec(16, false)];
        files[2].wanted = false;
        let l = TorrentLayout::new(16, vec![[0; 20]; 2], files).unwrap();
        assert_eq!(l.wanted_pieces().iter_ones().collect::<Vec<_>>(), vec![0]);
    }

    fn arb_layout() -> impl Strategy<Value = TorrentLayout> {
        let file = (0u64..200, prop::bool::weighted(0.2)).prop_map(|(l, pad)| spec(l, pad));
        (1u32..64, prop::collection::vec(file, 1..12)).prop_filter_map("empty", |(pl, files)| {
            let total: u64 = files.iter().map(|f| f.length).sum();
            let count = total.div_ceil(u64::from(pl)) as usize;
            TorrentLayout::new(pl, vec![[0; 20]; count], files).ok()
        })
    }

    proptest! {
        /// Walking every piece's spans in order visits every byte of every file exactly once.
        #[test]
        fn piece_spans_tile_the_stream(l in arb_layout()) {
            let mut cursor = (0usize, 0u64); // (file, offset in file) expected next
            let mut covered = 0u64;
            for piece in 0..l.piece_count() {
                let mut piece_total = 0u64;
                for span in l.piece_spans(piece) {
                    prop_assert!(span.len > 0);
                    while l.files()[cursor.0].length == cursor.1 {
                        cursor = (cursor.0 + 1, 0);
                    }
                    prop_assert_eq!((span.file, span.offset), cursor);
                    cursor.1 += u64::from(span.len);
                    prop_assert!(cursor.1 <= l.files()[span.file].length);
                    prop_assert!(l.file_pieces(span.file).contains(&piece));
                    piece_total += u64::from(span.len);
                }
                prop_assert_eq!(piece_total, u64::from(l.piece_len(piece)));
                covered += piece_total;
            }
            prop_assert_eq!(covered, l.total_length());
        }

        /// Any byte range's spans add up to its (clipped) length and agree with file offsets.
        #[test]
        fn spans_of_any_range(l in arb_layout(), offset in 0u64..3000, len in 0u32..3000) {
            let mut pos = offset;
            for span in l.spans(offset, len) {
                prop_assert_eq!(l.file_offset(span.file).unwrap() + span.offset, pos);
                pos += u64::from(span.len);
            }
            let want = if offset >= l.total_length() { 0 } else {
                u64::from(len).min(l.total_length() - offset)
            };
            prop_assert_eq!(pos.max(offset) - offset, want);
        }
    }
}
