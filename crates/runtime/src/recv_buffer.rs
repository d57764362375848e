//! Connections' receive buffers, recycling their memory. Frames are split off a buffer and
//! frozen, so a block keeps its chunk of the buffer alive until the disk has written it, and
//! the reader needs a fresh chunk meanwhile. Allocating every chunk anew costs a page fault per
//! 4 KiB (chunks are the size allocators serve with `mmap`), so retired chunks go to a
//! session-wide [`ChunkPool`] as empty handles and are reused once every block in them is gone
//! (`BytesMut::try_reclaim`).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::BytesMut;

/// Retired chunks the pool tracks: enough to cover every chunk that blocks waiting for the
/// disk can pin (the disk queue and the piece buffers bound those), so chunks are reused
/// rather than allocated in a steady download. Holding a handle costs nothing while blocks
/// still refer to the chunk.
const RETIRED_MAX: usize = 64;
/// Reusable (no longer referenced) chunks kept; the rest are freed at the next prune.
const SPARES_MAX: usize = 4;

/// Retired receive chunks of every connection of a session.
#[derive(Debug)]
pub(crate) struct ChunkPool {
    retired: Mutex<VecDeque<BytesMut>>,
    chunk_bytes: usize,
}

impl ChunkPool {
    pub(crate) fn new(chunk_bytes: usize) -> Arc<Self> {
        Arc::new(Self {
            retired: Mutex::new(VecDeque::new()),
            chunk_bytes,
        })
    }

    /// Retires `old` and returns a chunk holding `old`'s bytes with room for `want` bytes in
    /// all: a reused chunk if one is free, else a new one.
    fn exchange(&self, mut old: BytesMut, want: usize) -> BytesMut {
        let mut retired = self.lock();
        let reused = retired
            .iter_mut()
            .position(|h| h.try_reclaim(want))
            .and_then(|at| retired.remove(at));
        let mut next = reused.unwrap_or_else(|| BytesMut::with_capacity(want));
        next.extend_from_slice(&old);
        old.clear();
        retired.push_back(old);
        Self::prune_locked(&mut retired, self.chunk_bytes);
        next
    }

    /// Frees reusable chunks beyond `SPARES_MAX` and forgets the oldest beyond `RETIRED_MAX`
    /// (called on every exchange and periodically, so idle memory does not linger).
    pub(crate) fn prune(&self) {
        Self::prune_locked(&mut self.lock(), self.chunk_bytes);
    }

    fn prune_locked(retired: &mut VecDeque<BytesMut>, chunk_bytes: usize) {
        let mut spares = 0;
        retired.retain_mut(|h| {
            if !h.try_reclaim(chunk_bytes) {
                return true; // still referenced by frames in flight
            }
            spares += 1;
            spares <= SPARES_MAX
        });
        while retired.len() > RETIRED_MAX {
            retired.pop_front();
        }
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<BytesMut>> {
        self.retired
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    #[cfg(test)]
    fn reusable(&self) -> usize {
        let chunk = self.chunk_bytes;
        self.lock()
            .iter_mut()
            .filter_map(|h| h.try_reclaim(chunk).then_some(()))
            .count()
    }
}

/// One connection's receive buffer.
#[derive(Debug)]
pub(crate) struct RecvBuffer {
    buf: BytesMut,
    pool: Arc<ChunkPool>,
    spare_min: usize,
}

impl RecvBuffer {
    /// Takes over `buf` (which may hold bytes already read).
    pub(crate) fn new(buf: BytesMut, pool: Arc<ChunkPool>) -> Self {
        Self {
            buf,
            spare_min: pool.chunk_bytes / 4,
            pool,
        }
    }

    /// The buffer to decode from and read into.
    pub(crate) fn buf(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Ensures at least a quarter chunk of room for the next read, reusing memory when it can.
    pub(crate) fn make_room(&mut self) {
        if self.buf.capacity() - self.buf.len() >= self.spare_min {
            return;
        }
        let want = self.pool.chunk_bytes.max(self.buf.len() + self.spare_min);
        if self.buf.try_reclaim(want - self.buf.len()) {
            return;
        }
        let old = std::mem::take(&mut self.buf);
        self.buf = self.pool.exchange(old, want);
    }
}

#[cfg(test)]
mod tests {
    use bytes::{BufMut, Bytes};

    use super::*;

    const CHUNK: usize = 1024;

    /// Fills the buffer as a read would and splits 100-byte frames off it as the decoder
    /// does; the last `keep_max` frames stay alive (blocks waiting for the disk).
    fn read_once(
        rb: &mut RecvBuffer,
        keep: &mut VecDeque<(Bytes, Vec<u8>)>,
        keep_max: usize,
        next: &mut u8,
    ) {
        rb.make_room();
        let buf = rb.buf();
        while buf.len() < buf.capacity() {
            buf.put_u8(*next);
            *next = next.wrapping_add(1);
        }
        while buf.len() >= 100 {
            let frame = buf.split_to(100).freeze();
            let copy = frame.to_vec();
            keep.push_back((frame, copy));
        }
        while keep.len() > keep_max {
            keep.pop_front();
        }
    }

    #[test]
    fn chunks_are_reused_and_frames_in_flight_never_change() {
        let pool = ChunkPool::new(CHUNK);
        let mut rb = RecvBuffer::new(BytesMut::new(), Arc::clone(&pool));
        let mut keep = VecDeque::new();
        let mut next = 0;
        let mut allocations = 0;
        for _ in 0..2000 {
            let before = rb.buf().as_ptr();
            read_once(&mut rb, &mut keep, 30, &mut next); // about three chunks in flight
            if rb.buf().as_ptr() != before {
                allocations += 1;
            }
            for (frame, copy) in &keep {
                assert_eq!(&frame[..], &copy[..], "a frame in flight changed");
            }
        }
        assert!(allocations > 100, "the buffer did move between chunks");
        assert!(pool.lock().len() <= RETIRED_MAX);
        // Reuse: the chunks seen are few, whatever the number of refills.
        let distinct: std::collections::HashSet<usize> =
            pool.lock().iter().map(|h| h.as_ptr() as usize).collect();
        assert!(distinct.len() <= 8, "{} distinct chunks", distinct.len());
    }

    #[test]
    fn partial_frame_moves_to_the_new_chunk() {
        let pool = ChunkPool::new(CHUNK);
        let mut rb = RecvBuffer::new(BytesMut::with_capacity(CHUNK), pool);
        rb.buf().put_bytes(1, CHUNK - 10);
        let held = rb.buf().split_to(CHUNK - 20).freeze();
        rb.make_room();
        assert_eq!(&rb.buf()[..], &[1u8; 10][..], "the unread tail is kept");
        assert!(rb.buf().capacity() - rb.buf().len() >= CHUNK / 4);
        drop(held);
    }

    #[test]
    fn idle_spares_are_bounded_after_a_prune() {
        let pool = ChunkPool::new(CHUNK);
        let mut readers: Vec<RecvBuffer> = (0..10)
            .map(|_| RecvBuffer::new(BytesMut::new(), Arc::clone(&pool)))
            .collect();
        let mut keep = VecDeque::new();
        let mut next = 0;
        for _ in 0..20 {
            for rb in &mut readers {
                read_once(rb, &mut keep, 200, &mut next);
            }
        }
        keep.clear(); // everything written: every retired chunk is reusable now
        pool.prune();
        assert!(
            pool.reusable() <= SPARES_MAX,
            "{} idle chunks kept",
            pool.reusable()
        );
    }

    proptest::proptest! {
        /// Whatever the read sizes, frame sizes and number of frames in flight, no frame
        /// changes after it was split off, and the bytes come out in order.
        #[test]
        fn frames_never_change_and_stream_is_preserved(
            steps in proptest::collection::vec((1usize..3000, 1usize..700, 0usize..40), 1..200),
        ) {
            let pool = ChunkPool::new(CHUNK);
            let mut rb = RecvBuffer::new(BytesMut::new(), Arc::clone(&pool));
            let mut keep: VecDeque<(Bytes, Vec<u8>)> = VecDeque::new();
            let (mut written, mut read) = (0u64, 0u64);
            for (read_len, frame_len, keep_max) in steps {
                rb.make_room();
                let buf = rb.buf();
                let room = (buf.capacity() - buf.len()).min(read_len);
                for _ in 0..room {
                    buf.put_u8(written as u8);
                    written += 1;
                }
                while buf.len() >= frame_len {
                    let frame = buf.split_to(frame_len).freeze();
                    for &b in &frame {
                        proptest::prop_assert_eq!(b, read as u8, "stream out of order");
                        read += 1;
                    }
                    let copy = frame.to_vec();
                    keep.push_back((frame, copy));
                }
                while keep.len() > keep_max {
                    keep.pop_front();
                }
                for (frame, copy) in &keep {
                    proptest::prop_assert_eq!(&frame[..], &copy[..]);
                }
            }
        }
    }
}
