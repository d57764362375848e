//! Decode throughput of a stream of 16 KiB piece messages, the receive hot path.
//!
//! Three figures, best of several runs each, on the same 64 MiB stream:
//! - `frame only`: `FrameDecoder::decode` over a buffer already holding the whole stream
//!   (the cost the codec itself adds per byte: it should be far above memory bandwidth, since
//!   no payload byte is touched);
//! - `read + frame`: the stream copied into the receive buffer in 64 KiB reads, as a socket
//!   read would, and decoded after each read (includes the decoder's reserve/re-allocation);
//! - `memcpy baseline`: the same 64 KiB copies into a reused buffer and nothing else, i.e. what
//!   the kernel's copy alone would cost. `read + frame` / `memcpy` is the ratio to read.
//!
//! Rerun with: `cargo bench -p bitswarm-wire --bench decode`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bitswarm_wire::{Frame, FrameDecoder, FrameLimits, Message, BLOCK_LEN_MAX};
use bytes::{Bytes, BytesMut};

const STREAM_LEN_TARGET: usize = 64 << 20;
const READ_LEN: usize = 64 << 10;
const RUNS: usize = 7;

fn main() {
    let stream = build_stream();
    let messages = stream.len() / (BLOCK_LEN_MAX as usize + 13);
    println!(
        "stream: {messages} piece messages of {BLOCK_LEN_MAX} bytes, {} MiB",
        stream.len() >> 20
    );
    let frame_only = best_of(|| frame_only(&stream, messages));
    let read_frame = best_of(|| read_and_frame(&stream, messages));
    let memcpy = best_of(|| memcpy_baseline(&stream));
    report("frame only", stream.len(), frame_only);
    report("read + frame", stream.len(), read_frame);
    report("memcpy baseline", stream.len(), memcpy);
    println!(
        "read + frame / memcpy baseline throughput ratio: {:.2}",
        memcpy.as_secs_f64() / read_frame.as_secs_f64()
    );
}

fn build_stream() -> Bytes {
    let block = Bytes::from(vec![0xa5; BLOCK_LEN_MAX as usize]);
    let mut out = BytesMut::with_capacity(STREAM_LEN_TARGET + 64 * 1024);
    let mut piece = 0u32;
    while out.len() < STREAM_LEN_TARGET {
        let message = Message::Piece {
            piece: piece / 16,
            offset: (piece % 16) * BLOCK_LEN_MAX,
            data: block.clone(),
        };
        message.encode_into(&mut out).expect("16 KiB block fits");
        piece += 1;
    }
    out.freeze()
}

/// Decodes a buffer that already holds the whole stream; returns the time spent decoding.
fn frame_only(stream: &Bytes, messages: usize) -> Duration {
    let mut buf = BytesMut::from(&stream[..]);
    let mut decoder = FrameDecoder::after_handshake(FrameLimits::DEFAULT);
    let start = Instant::now();
    let seen = drain(&mut decoder, &mut buf);
    let elapsed = start.elapsed();
    assert_eq!(seen, messages);
    elapsed
}

/// Copies the stream into the receive buffer in socket-sized reads, decoding after each.
fn read_and_frame(stream: &Bytes, messages: usize) -> Duration {
    let mut buf = BytesMut::with_capacity(4 * READ_LEN);
    let mut decoder = FrameDecoder::after_handshake(FrameLimits::DEFAULT);
    let start = Instant::now();
    let mut seen = 0;
    for chunk in stream.chunks(READ_LEN) {
        buf.reserve(READ_LEN);
        buf.extend_from_slice(chunk);
        seen += drain(&mut decoder, &mut buf);
    }
    let elapsed = start.elapsed();
    assert_eq!(seen, messages);
    elapsed
}

fn memcpy_baseline(stream: &Bytes) -> Duration {
    let mut buf = vec![0u8; READ_LEN];
    let start = Instant::now();
    for chunk in stream.chunks(READ_LEN) {
        buf[..chunk.len()].copy_from_slice(chunk);
        black_box(&mut buf);
    }
    start.elapsed()
}

/// Takes every complete message off `buf`, keeping each block alive as a consumer would hand
/// it on; returns how many piece messages were seen.
fn drain(decoder: &mut FrameDecoder, buf: &mut BytesMut) -> usize {
    let mut seen = 0;
    while let Some(frame) = decoder.decode(buf).expect("valid stream") {
        if let Frame::Message(Message::Piece { data, .. }) = frame {
            black_box(&data);
            seen += 1;
        }
    }
    seen
}

fn best_of(mut run: impl FnMut() -> Duration) -> Duration {
    (0..RUNS).map(|_| run()).min().unwrap_or_default()
}

fn report(name: &str, bytes: usize, elapsed: Duration) {
    let mib = f64::from(u32::try_from(bytes >> 20).unwrap_or(u32::MAX));
    let gib_s = mib / 1024.0 / elapsed.as_secs_f64();
    println!(
        "{name:>16}: {gib_s:8.2} GiB/s ({elapsed:?} for {} MiB)",
        bytes >> 20
    );
}
