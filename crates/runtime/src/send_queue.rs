//! What a connection's writer has to send, as a queue of byte chunks ready for one vectored
//! write: small messages and piece headers are encoded back to back into one buffer (so a
//! burst of requests or haves leaves in one segment), block data is queued as the `Bytes` the
//! disk produced, never copied. Blocks served from the page cache are queued as file ranges,
//! which the writer hands to `sendfile` (so their bytes never enter user space). The queue
//! also knows where each block ends, so the writer can report a block as sent only once its
//! last byte has been written to the socket (upload accounting counts written bytes).

use std::collections::VecDeque;
use std::fs::File;
use std::io::IoSlice;
use std::sync::Arc;

use bitswarm_storage::ReadSegment;
use bitswarm_wire::{BlockRef, Message, PieceHeader, PIECE_HEADER_LEN};
use bytes::{Buf, Bytes, BytesMut};

/// Most chunks handed to one `writev` (Linux allows 1024; 64 covers 32 blocks with headers).
pub(crate) const IOV_MAX: usize = 64;
/// Payloads of control messages up to this size are copied next to their header; larger ones
/// (a big bitfield, an extension message) are queued as their own chunk.
const COPY_PAYLOAD_MAX: usize = 1024;
/// Room reserved at a time for encoding small messages.
const SMALL_RESERVE: usize = 4096;

/// One thing to send to a peer.
#[derive(Debug, Clone)]
pub(crate) enum Outgoing {
    /// Any message but a block (the engine's `Send` actions).
    Message(Message),
    /// A block read from storage (the engine's `ServeBlock`), sent as a piece message.
    Block {
        /// Piece index.
        piece: u32,
        /// Offset of the block in the piece.
        offset: u32,
        /// The block.
        data: Bytes,
    },
    /// A block to send from the page cache: its file runs (`Storage::prepare_send`).
    FileBlock {
        /// Piece index.
        piece: u32,
        /// Offset of the block in the piece.
        offset: u32,
        /// Where its bytes are, in order.
        segments: Vec<ReadSegment>,
    },
}

impl Outgoing {
    /// Bytes this takes on the wire.
    pub(crate) fn wire_len(&self) -> usize {
        match self {
            Self::Message(m) => m.encoded_len(),
            Self::Block { data, .. } => PIECE_HEADER_LEN + data.len(),
            Self::FileBlock { segments, .. } => PIECE_HEADER_LEN + segments_len(segments),
        }
    }
}

/// A range of an open file, to be sent with `sendfile`.
#[derive(Debug, Clone)]
pub(crate) struct FileRange {
    pub file: Arc<File>,
    pub offset: u64,
    pub len: usize,
}

/// One entry of the queue: bytes in memory, or a file range.
#[derive(Debug)]
enum Chunk {
    Mem(Bytes),
    File(FileRange),
}

impl Chunk {
    fn len(&self) -> usize {
        match self {
            Self::Mem(bytes) => bytes.len(),
            Self::File(range) => range.len,
        }
    }
}

/// Chunks waiting to be written, oldest first.
#[derive(Debug, Default)]
pub(crate) struct SendQueue {
    chunks: VecDeque<Chunk>,
    /// Small encoded bytes not yet sealed into a chunk.
    small: BytesMut,
    /// Bytes in `chunks` and `small`.
    len: usize,
    /// Bytes written (advanced past) since the queue was made.
    consumed: u64,
    /// The blocks queued and not yet fully written, each with the position (counted like
    /// `consumed`) of its last byte's end, in queue order.
    block_ends: VecDeque<(u64, BlockRef)>,
}

/// Bytes in `segments`.
fn segments_len(segments: &[ReadSegment]) -> usize {
    segments
        .iter()
        .map(|s| match s {
            ReadSegment::File { len, .. } | ReadSegment::Zeros { len } => *len as usize,
        })
        .sum()
}

impl SendQueue {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Bytes waiting.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends one item. A message that cannot be encoded (a payload past 4 GiB, which the
    /// engine never produces) is dropped and `false` returned.
    pub(crate) fn push(&mut self, item: Outgoing) -> bool {
        self.reserve_small();
        match item {
            Outgoing::Message(message) => {
                let before = self.small.len();
                let Ok(tail) = message.encode_header_into(&mut self.small) else {
                    return false;
                };
                self.len += self.small.len() - before;
                if let Some(tail) = tail {
                    self.push_payload(tail.clone());
                }
            }
            Outgoing::Block {
                piece,
                offset,
                data,
            } => {
                let length = u32::try_from(data.len()).unwrap_or(u32::MAX);
                let header = PieceHeader {
                    piece,
                    offset,
                    block_len: length,
                };
                let Ok(header) = header.encode() else {
                    return false;
                };
                self.small.extend_from_slice(&header);
                self.len += PIECE_HEADER_LEN;
                self.push_payload(data);
                self.mark_block_end(piece, offset, length);
            }
            Outgoing::FileBlock {
                piece,
                offset,
                segments,
            } => return self.push_file_block(piece, offset, segments),
        }
        true
    }

    /// The file range at the front of the queue, if the next bytes to send are one.
    pub(crate) fn front_file(&self) -> Option<&FileRange> {
        match self.chunks.front() {
            Some(Chunk::File(range)) => Some(range),
            _ => None,
        }
    }

    /// Fills `out` with slices from the front of the queue; returns how many.
    pub(crate) fn io_slices<'a>(&'a mut self, out: &mut [IoSlice<'a>]) -> usize {
        self.seal();
        let mut used = 0;
        for (slot, chunk) in out.iter_mut().zip(self.chunks.iter()) {
            let Chunk::Mem(chunk) = chunk else { break };
            *slot = IoSlice::new(chunk);
            used += 1;
        }
        used
    }

    /// Like [`SendQueue::io_slices`], but the slices add up to at most `max` bytes (the
    /// writer's upload allowance under a rate limit, see `rate_limit.rs`).
    pub(crate) fn io_slices_max<'a>(&'a mut self, out: &mut [IoSlice<'a>], max: usize) -> usize {
        self.seal();
        let mut used = 0;
        let mut left = max;
        for (slot, chunk) in out.iter_mut().zip(self.chunks.iter()) {
            let Chunk::Mem(chunk) = chunk else { break };
            if left == 0 {
                break;
            }
            let take = chunk.len().min(left);
            *slot = IoSlice::new(&chunk[..take]);
            left -= take;
            used += 1;
        }
        used
    }

    /// Moves the blocks whose last byte has been written (by [`SendQueue::advance`]) to
    /// `out`, in queue order.
    pub(crate) fn take_sent(&mut self, out: &mut Vec<BlockRef>) {
        while let Some(&(end, block)) = self.block_ends.front() {
            if end > self.consumed {
                break;
            }
            self.block_ends.pop_front();
            out.push(block);
        }
    }

    /// Drops `n` bytes from the front (they were written).
    pub(crate) fn advance(&mut self, mut n: usize) {
        let taken = n.min(self.len);
        self.consumed += taken as u64;
        self.len -= taken;
        while n > 0 {
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            if n < front.len() {
                match front {
                    Chunk::Mem(bytes) => bytes.advance(n),
                    Chunk::File(range) => {
                        range.offset += n as u64;
                        range.len -= n;
                    }
                }
                break;
            }
            n -= front.len();
            self.chunks.pop_front();
        }
    }

    fn push_payload(&mut self, payload: Bytes) {
        self.len += payload.len();
        if payload.len() <= COPY_PAYLOAD_MAX {
            self.small.extend_from_slice(&payload);
        } else {
            self.seal();
            self.chunks.push_back(Chunk::Mem(payload));
        }
    }

    fn push_file_block(&mut self, piece: u32, offset: u32, segments: Vec<ReadSegment>) -> bool {
        let length = u32::try_from(segments_len(&segments)).unwrap_or(u32::MAX);
        let header = PieceHeader {
            piece,
            offset,
            block_len: length,
        };
        let Ok(header) = header.encode() else {
            return false;
        };
        self.small.extend_from_slice(&header);
        self.len += PIECE_HEADER_LEN;
        for segment in segments {
            match segment {
                ReadSegment::File { file, offset, len } if len > 0 => {
                    self.seal();
                    self.len += len as usize;
                    self.chunks.push_back(Chunk::File(FileRange {
                        file,
                        offset,
                        len: len as usize,
                    }));
                }
                ReadSegment::File { .. } => {}
                // Pad files: rare, small.
                ReadSegment::Zeros { len } => self.push_payload(Bytes::from(vec![0; len as usize])),
            }
        }
        self.mark_block_end(piece, offset, length);
        true
    }

    /// Notes that the block just queued ends where the queue ends now.
    fn mark_block_end(&mut self, piece: u32, offset: u32, length: u32) {
        let end = self.consumed + self.len as u64;
        let block = BlockRef {
            piece,
            offset,
            length,
        };
        self.block_ends.push_back((end, block));
    }

    /// Moves the small bytes into a chunk of their own.
    fn seal(&mut self) {
        if !self.small.is_empty() {
            self.chunks
                .push_back(Chunk::Mem(self.small.split().freeze()));
        }
    }

    fn reserve_small(&mut self) {
        if self.small.capacity() - self.small.len() < PIECE_HEADER_LEN + COPY_PAYLOAD_MAX + 32 {
            self.small.reserve(SMALL_RESERVE);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileExt;

    use bitswarm_wire::{BlockRef, FrameDecoder, FrameLimits};

    use super::*;

    fn drain(queue: &mut SendQueue, write_max: usize) -> Vec<u8> {
        let mut wire = Vec::new();
        for _ in 0..1_000_000 {
            if queue.is_empty() {
                break;
            }
            if let Some(range) = queue.front_file() {
                // What `sendfile` would send: at most `write_max` bytes of the range.
                let take = range.len.min(write_max);
                let mut buf = vec![0; take];
                range.file.read_exact_at(&mut buf, range.offset).unwrap();
                wire.extend_from_slice(&buf);
                queue.advance(take);
                continue;
            }
            let mut slices = [IoSlice::new(&[]); IOV_MAX];
            let used = queue.io_slices(&mut slices);
            let mut written = 0;
            for s in &slices[..used] {
                let take = s.len().min(write_max - written);
                wire.extend_from_slice(&s[..take]);
                written += take;
                if written == write_max {
                    break;
                }
            }
            queue.advance(written);
        }
        wire
    }

    fn sample() -> Vec<Outgoing> {
        let block = Bytes::from((0..16384u32).map(|i| i as u8).collect::<Vec<_>>());
        let request = BlockRef {
            piece: 1,
            offset: 16384,
            length: 16384,
        };
        vec![
            Outgoing::Message(Message::Interested),
            Outgoing::Message(Message::Request(request)),
            Outgoing::Message(Message::Bitfield(Bytes::from(vec![0xf0; 3000]))),
            Outgoing::Block {
                piece: 7,
                offset: 0,
                data: block.clone(),
            },
            Outgoing::Message(Message::Have { piece: 3 }),
            Outgoing::Block {
                piece: 7,
                offset: 16384,
                data: block.slice(..100),
            },
            Outgoing::Message(Message::Extended {
                id: 0,
                payload: Bytes::from_static(b"d1:v4:teste"),
            }),
            file_block(9, 0, &[(100, 16000), (0, 10), (5000, 374)]),
            Outgoing::Message(Message::Have { piece: 4 }),
            file_block(9, 16384, &[(40_000, 16384)]),
        ]
    }

    /// A file shared by the tests: byte `i` is `i * 7 % 251`.
    fn test_file() -> Arc<File> {
        static FILE: std::sync::OnceLock<Arc<File>> = std::sync::OnceLock::new();
        Arc::clone(FILE.get_or_init(|| {
            use std::io::Write;
            let mut file = tempfile::tempfile().unwrap();
            let data: Vec<u8> = (0..TEST_FILE_LEN).map(|i| (i * 7 % 251) as u8).collect();
            file.write_all(&data).unwrap();
            Arc::new(file)
        }))
    }

    const TEST_FILE_LEN: usize = 65536;

    /// A file block made of `(offset, len)` runs of the test file; a zero `offset` with a
    /// length under 100 stands for a pad (zeros) run.
    fn file_block(piece: u32, offset: u32, runs: &[(u64, u32)]) -> Outgoing {
        let segments = runs
            .iter()
            .map(|&(at, len)| {
                if at == 0 && len < 100 {
                    ReadSegment::Zeros { len }
                } else {
                    ReadSegment::File {
                        file: test_file(),
                        offset: at,
                        len,
                    }
                }
            })
            .collect();
        Outgoing::FileBlock {
            piece,
            offset,
            segments,
        }
    }

    fn segment_bytes(segments: &[ReadSegment]) -> Bytes {
        let mut out = Vec::new();
        for segment in segments {
            match segment {
                ReadSegment::File { file, offset, len } => {
                    let mut buf = vec![0; *len as usize];
                    file.read_exact_at(&mut buf, *offset).unwrap();
                    out.extend_from_slice(&buf);
                }
                ReadSegment::Zeros { len } => out.resize(out.len() + *len as usize, 0),
            }
        }
        Bytes::from(out)
    }

    fn decode(mut wire: BytesMut) -> Vec<Message> {
        let mut decoder = FrameDecoder::after_handshake(FrameLimits::DEFAULT);
        let mut out = Vec::new();
        while let Some(frame) = decoder.decode(&mut wire).unwrap() {
            let bitswarm_wire::Frame::Message(m) = frame else {
                panic!("handshake frame after handshake");
            };
            out.push(m);
        }
        assert!(wire.is_empty(), "trailing bytes");
        out
    }

    fn expected(items: &[Outgoing]) -> Vec<Message> {
        items
            .iter()
            .map(|item| match item.clone() {
                Outgoing::Message(m) => m,
                Outgoing::Block {
                    piece,
                    offset,
                    data,
                } => Message::Piece {
                    piece,
                    offset,
                    data,
                },
                Outgoing::FileBlock {
                    piece,
                    offset,
                    segments,
                } => Message::Piece {
                    piece,
                    offset,
                    data: segment_bytes(&segments),
                },
            })
            .collect()
    }

    #[test]
    fn bytes_on_the_wire_decode_to_what_was_queued_whatever_the_write_sizes() {
        for write_max in [1, 7, 13, 100, 4096, 1 << 20] {
            let mut queue = SendQueue::new();
            let items = sample();
            let total: usize = items.iter().map(Outgoing::wire_len).sum();
            for item in items.clone() {
                assert!(queue.push(item));
            }
            assert_eq!(queue.len(), total);
            let wire = drain(&mut queue, write_max);
            assert_eq!(wire.len(), total, "write size {write_max}");
            assert_eq!(decode(BytesMut::from(&wire[..])), expected(&items));
            assert!(queue.is_empty());
        }
    }

    #[test]
    fn small_messages_share_one_chunk_and_blocks_are_not_copied() {
        let mut queue = SendQueue::new();
        let data = Bytes::from(vec![9u8; 16384]);
        for piece in 0..10 {
            queue.push(Outgoing::Message(Message::Have { piece }));
        }
        queue.push(Outgoing::Block {
            piece: 0,
            offset: 0,
            data: data.clone(),
        });
        let mut slices = [IoSlice::new(&[]); IOV_MAX];
        let used = queue.io_slices(&mut slices);
        assert_eq!(
            used, 2,
            "haves and the piece header in one chunk, then the block"
        );
        assert_eq!(slices[0].len(), 10 * 9 + PIECE_HEADER_LEN);
        assert_eq!(
            slices[1].as_ptr(),
            data.as_ptr(),
            "block queued without a copy"
        );
    }

    fn outgoing() -> impl proptest::strategy::Strategy<Value = Outgoing> {
        use proptest::prelude::*;
        prop_oneof![
            any::<u32>().prop_map(|piece| Outgoing::Message(Message::Have { piece })),
            (any::<u32>(), any::<u32>(), 1..=16384u32).prop_map(|(piece, offset, length)| {
                Outgoing::Message(Message::Request(BlockRef {
                    piece,
                    offset,
                    length,
                }))
            }),
            proptest::collection::vec(any::<u8>(), 0..3000)
                .prop_map(|b| Outgoing::Message(Message::Bitfield(Bytes::from(b)))),
            (
                any::<u32>(),
                any::<u32>(),
                proptest::collection::vec(any::<u8>(), 1..=16384)
            )
                .prop_map(|(piece, offset, data)| Outgoing::Block {
                    piece,
                    offset,
                    data: Bytes::from(data),
                }),
            (
                any::<u32>(),
                any::<u32>(),
                proptest::collection::vec((100..40_000u64, 0..=5000u32), 1..4)
            )
                .prop_map(|(piece, offset, runs)| file_block(piece, offset, &runs)),
        ]
    }

    /// Drains `queue` in writes of at most `write_max` bytes; after each write, checks that
    /// the blocks it reports sent are exactly the piece messages complete on the wire so far.
    fn drain_checking_sent(queue: &mut SendQueue, write_max: usize) -> Result<usize, String> {
        let mut decoder = FrameDecoder::after_handshake(FrameLimits::DEFAULT);
        let (mut wire, mut on_wire, mut reported) = (BytesMut::new(), Vec::new(), Vec::new());
        for _ in 0..1_000_000 {
            if queue.is_empty() {
                break;
            }
            let before = wire.len();
            if let Some(range) = queue.front_file() {
                let take = range.len.min(write_max);
                let mut buf = vec![0; take];
                range.file.read_exact_at(&mut buf, range.offset).unwrap();
                wire.extend_from_slice(&buf);
            } else {
                let mut slices = [IoSlice::new(&[]); IOV_MAX];
                let used = queue.io_slices_max(&mut slices, write_max);
                for s in &slices[..used] {
                    wire.extend_from_slice(s);
                }
            }
            queue.advance(wire.len() - before);
            queue.take_sent(&mut reported);
            while let Some(frame) = decoder.decode(&mut wire).unwrap() {
                if let bitswarm_wire::Frame::Message(Message::Piece {
                    piece,
                    offset,
                    data,
                }) = frame
                {
                    let length = u32::try_from(data.len()).unwrap();
                    on_wire.push(BlockRef {
                        piece,
                        offset,
                        length,
                    });
                }
            }
            if reported != on_wire {
                return Err(format!(
                    "after a write: reported {reported:?}, complete on the wire {on_wire:?}"
                ));
            }
        }
        Ok(reported.len())
    }

    #[test]
    fn a_block_is_reported_sent_when_its_last_byte_is_written() {
        for write_max in [1, 13, 100, 16_397, 1 << 20] {
            let mut queue = SendQueue::new();
            for item in sample() {
                assert!(queue.push(item));
            }
            let blocks = drain_checking_sent(&mut queue, write_max).unwrap();
            assert_eq!(
                blocks, 4,
                "every block reported once (write size {write_max})"
            );
        }
        // A block partly written is not reported.
        let mut queue = SendQueue::new();
        queue.push(file_block(2, 0, &[(100, 16384)]));
        queue.advance(PIECE_HEADER_LEN + 16383);
        let mut sent = Vec::new();
        queue.take_sent(&mut sent);
        assert!(sent.is_empty(), "one byte of the block is not written yet");
        queue.advance(1);
        queue.take_sent(&mut sent);
        assert_eq!(
            sent,
            [BlockRef {
                piece: 2,
                offset: 0,
                length: 16384
            }]
        );
    }

    proptest::proptest! {
        #[test]
        fn any_sequence_and_write_sizes_round_trip(
            items in proptest::collection::vec(outgoing(), 0..40),
            write_max in 1usize..70_000,
        ) {
            let mut queue = SendQueue::new();
            for item in items.clone() {
                proptest::prop_assert!(queue.push(item));
            }
            let wire = drain(&mut queue, write_max);
            proptest::prop_assert_eq!(decode(BytesMut::from(&wire[..])), expected(&items));
        }

        #[test]
        fn blocks_are_reported_sent_exactly_when_complete_on_the_wire(
            items in proptest::collection::vec(outgoing(), 0..20),
            write_max in 1usize..40_000,
        ) {
            let mut queue = SendQueue::new();
            for item in items.clone() {
                proptest::prop_assert!(queue.push(item));
            }
            let blocks = items.iter().filter(|i| !matches!(i, Outgoing::Message(_))).count();
            let reported = drain_checking_sent(&mut queue, write_max);
            proptest::prop_assert_eq!(reported, Ok(blocks));
        }
    }
}
