//! Fuzz target: the peer-wire frame decoder never panics, yields the same frames and error
//! whether the stream arrives whole or cut into reads, and every message it yields re-encodes
//! to bytes that decode to the same message.
#![no_main]

use bitswarm_wire::{Frame, FrameDecoder, FrameLimits, Message, WireError};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

fn run(
    mut decoder: FrameDecoder,
    data: &[u8],
    chunk_len: usize,
) -> (Vec<Frame>, Option<WireError>) {
    let (mut buf, mut frames) = (BytesMut::new(), Vec::new());
    for chunk in data.chunks(chunk_len.max(1)) {
        buf.extend_from_slice(chunk);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(error) => return (frames, Some(error)),
            }
        }
    }
    (frames, None)
}

fuzz_target!(|input: &[u8]| {
    let Some((&control, data)) = input.split_first() else {
        return;
    };
    let limits = if control & 0x80 == 0 {
        FrameLimits::DEFAULT
    } else {
        FrameLimits {
            message_len_max: 64,
            block_len_max: 32,
        }
    };
    let decoder = if control & 0x40 == 0 {
        FrameDecoder::after_handshake(limits)
    } else {
        FrameDecoder::with_limits(limits)
    };
    let whole = run(decoder.clone(), data, data.len());
    let cut = run(decoder, data, usize::from(control & 0x3f));
    assert_eq!(whole, cut);
    for frame in whole.0 {
        if let Frame::Message(message) = frame {
            let wire = message.to_bytes().expect("a decoded message re-encodes");
            let mut buf = BytesMut::from(&wire[..]);
            let again = FrameDecoder::after_handshake(FrameLimits::DEFAULT).decode(&mut buf);
            if message != Message::KeepAlive {
                assert_eq!(Message::parse(wire.slice(4..)).as_ref(), Ok(&message));
            }
            assert_eq!(again, Ok(Some(Frame::Message(message))));
        }
    }
});
