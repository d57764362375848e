//! Piece geometry: how pieces map onto files and back. Pure arithmetic over a parsed [`Info`];
//! no method here can panic, whatever the index asked for.

use std::ops::Range;

use crate::files::FileEntry;
use crate::info::Info;
use crate::info_hash::PieceIndex;

/// The part of one file that a piece covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileSlice {
    /// Index into [`Info::files`].
    pub file_index: usize,
    /// Offset of the slice within the file.
    pub offset: u64,
    /// Length of the slice (at most the piece length, never 0).
    pub len: u32,
    /// Whether the file is a pad file (zeros, not stored on disk).
    pub is_pad: bool,
}

impl Info {
    /// Sum of all file lengths (pad files included): the length of the torrent's byte stream.
    #[must_use]
    pub fn total_length(&self) -> u64 {
        self.files.last().map_or(0, FileEntry::end)
    }

    /// Sum of the lengths of the files that are not pad files: the bytes stored on disk.
    #[must_use]
    pub fn total_length_without_pad(&self) -> u64 {
        self.files
            .iter()
            .filter(|f| !f.is_pad())
            .map(|f| f.length)
            .sum()
    }

    /// Number of pieces.
    #[must_use]
    pub fn piece_count(&self) -> u32 {
        u32::try_from(self.pieces.len()).unwrap_or(u32::MAX)
    }

    /// Offset of a piece's first byte in the torrent's byte stream.
    #[must_use]
    pub fn piece_offset(&self, piece: PieceIndex) -> u64 {
        u64::from(piece.0) * u64::from(self.piece_length)
    }

    /// Length of a piece: `piece_length`, except for a shorter last piece; 0 for an index past
    /// the end.
    #[must_use]
    pub fn piece_len(&self, piece: PieceIndex) -> u32 {
        if piece.0 >= self.piece_count() {
            return 0;
        }
        let remaining = self.total_length().saturating_sub(self.piece_offset(piece));
        // `min` with a u32 cannot exceed u32.
        remaining.min(u64::from(self.piece_length)) as u32
    }

    /// The expected SHA-1 of a piece.
    #[must_use]
    pub fn piece_hash(&self, piece: PieceIndex) -> Option<&[u8; 20]> {
        self.pieces.get(piece.0 as usize)
    }

    /// The file slices a piece covers, in order: a piece can span several files (and pad
    /// files, which are included and marked). Zero-length files are skipped. Empty for an
    /// index past the end.
    #[must_use]
    pub fn piece_file_ranges(&self, piece: PieceIndex) -> FileSlices<'_> {
        let start = self.piece_offset(piece);
        let end = start + u64::from(self.piece_len(piece));
        FileSlices {
            files: &self.files,
            next: self.files.partition_point(|f| f.end() <= start),
            start,
            end,
        }
    }

    /// The pieces that hold at least one byte of a file. Empty for a zero-length file (placed
    /// where it would start) and for an index past the end.
    #[must_use]
    pub fn file_piece_range(&self, file_index: usize) -> Range<u32> {
        let Some(file) = self.files.get(file_index) else {
            return 0..0;
        };
        let piece_length = u64::from(self.piece_length.max(1));
        let count = self.piece_count();
        let to_index = |n: u64| u32::try_from(n).unwrap_or(u32::MAX).min(count);
        let first = to_index(file.offset / piece_length);
        if file.length == 0 {
            return first..first;
        }
        let last = to_index((file.end() - 1) / piece_length + 1);
        first..last
    }
}

/// Iterator over the [`FileSlice`]s of one piece; see [`Info::piece_file_ranges`].
#[derive(Debug, Clone)]
pub struct FileSlices<'a> {
    files: &'a [FileEntry],
    next: usize,
    start: u64,
    end: u64,
}

impl Iterator for FileSlices<'_> {
    type Item = FileSlice;

    fn next(&mut self) -> Option<FileSlice> {
        while let Some(file) = self.files.get(self.next) {
            if file.offset >= self.end {
                return None;
            }
            let file_index = self.next;
            self.next += 1;
            let from = self.start.max(file.offset);
            let to = self.end.min(file.end());
            if to <= from {
                continue; // a zero-length file
            }
            return Some(FileSlice {
                file_index,
                offset: from - file.offset,
                // `to - from <= end - start`, which is a piece length (a u32).
                len: (to - from) as u32,
                is_pad: file.is_pad(),
            });
        }
        None
    }
}
