//! Property tests: every message, handshake and extension message round-trips through emit
//! and parse; no parser panics on arbitrary bytes; and the frame decoder yields the same
//! frames (and the same error) however the stream is cut into reads.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

use bitswarm_bencode::OwnedValue;
use bitswarm_wire::extended::METADATA_PIECE_LEN;
use bitswarm_wire::{
    Bitfield, BlockRef, ExtendedHandshake, Frame, FrameDecoder, FrameLimits, Handshake, Message,
    MetadataMessage, PeerId, PexFlags, PexMessage, Reserved, WireError,
};
use bytes::{Bytes, BytesMut};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;

/// Small limits, so arbitrary length prefixes hit both sides of them.
const SMALL_LIMITS: FrameLimits = FrameLimits {
    message_len_max: 4096,
    block_len_max: 2048,
};

fn payload(max: usize) -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

fn block_ref() -> impl Strategy<Value = BlockRef> {
    (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(piece, offset, length)| BlockRef {
        piece,
        offset,
        length,
    })
}

/// Ids no variant but `Unknown` uses.
fn unknown_id() -> impl Strategy<Value = u8> {
    prop_oneof![10u8..=12, 18u8..=19, 21u8..=255]
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        Just(Message::KeepAlive),
        Just(Message::Choke),
        Just(Message::Unchoke),
        Just(Message::Interested),
        Just(Message::NotInterested),
        any::<u32>().prop_map(|piece| Message::Have { piece }),
        payload(300).prop_map(Message::Bitfield),
        block_ref().prop_map(Message::Request),
        (any::<u32>(), any::<u32>(), payload(2048)).prop_map(|(piece, offset, data)| {
            Message::Piece {
                piece,
                offset,
                data,
            }
        }),
        block_ref().prop_map(Message::Cancel),
        any::<u16>().prop_map(Message::Port),
        any::<u32>().prop_map(|piece| Message::SuggestPiece { piece }),
        Just(Message::HaveAll),
        Just(Message::HaveNone),
        block_ref().prop_map(Message::RejectRequest),
        any::<u32>().prop_map(|piece| Message::AllowedFast { piece }),
        (any::<u8>(), payload(300)).prop_map(|(id, payload)| Message::Extended { id, payload }),
        (unknown_id(), payload(300)).prop_map(|(id, payload)| Message::Unknown { id, payload }),
    ]
}

fn handshake() -> impl Strategy<Value = Handshake> {
    (any::<[u8; 8]>(), any::<[u8; 20]>(), any::<[u8; 20]>()).prop_map(|(r, info_hash, id)| {
        Handshake {
            reserved: Reserved(r),
            info_hash,
            peer_id: PeerId(id),
        }
    })
}

/// Feeds `data` to a decoder in pieces cut at `cuts`, decoding after every piece, until the
/// first error. Every `Some` consumes at least 4 bytes, so the inner loop is bounded.
fn run(mut decoder: FrameDecoder, data: &[u8], cuts: &[usize]) -> (Vec<Frame>, Option<WireError>) {
    let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    bounds.push(data.len());
    bounds.sort_unstable();
    let (mut buf, mut frames, mut start) = (BytesMut::new(), Vec::new(), 0);
    for end in bounds {
        buf.extend_from_slice(&data[start..end]);
        start = end;
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

fn encode_all(messages: &[Message]) -> Vec<u8> {
    let mut out = BytesMut::new();
    for m in messages {
        m.encode_into(&mut out).unwrap();
    }
    out.to_vec()
}

/// A stream that starts well-formed and then goes wrong in some random way.
fn mangled_stream() -> impl Strategy<Value = Vec<u8>> {
    (
        handshake(),
        vec(message(), 0..6),
        vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        vec(any::<u8>(), 0..40),
    )
        .prop_map(|(hs, messages, flips, tail)| {
            let mut data = hs.encode().to_vec();
            data.extend(encode_all(&messages));
            if !data.is_empty() {
                for (at, byte) in flips {
                    let i = at.index(data.len());
                    data[i] = byte;
                }
            }
            data.extend(tail);
            data
        })
}

/// Frames with a random id and a random body whose length prefix is either right or small and
/// random: reaches every length check, unknown ids and partial frames at the end.
fn raw_frames() -> impl Strategy<Value = Vec<u8>> {
    let frame = (
        prop_oneof![3 => Just(None), 1 => (0u32..40).prop_map(Some)],
        prop_oneof![0u8..=22, any::<u8>()],
        vec(any::<u8>(), 0..40),
    )
        .prop_map(|(len, id, body)| {
            let len = len.unwrap_or(body.len() as u32 + 1);
            let mut out = len.to_be_bytes().to_vec();
            out.push(id);
            out.extend(body);
            out
        });
    vec(frame, 0..12).prop_map(|frames| frames.concat())
}

proptest! {
    #[test]
    fn raw_frames_decode_the_same_however_cut(
        data in raw_frames(),
        cuts in vec(any::<usize>(), 0..24),
    ) {
        for limits in [FrameLimits::DEFAULT, SMALL_LIMITS, FrameLimits { message_len_max: 20, block_len_max: 8 }] {
            let whole = run(FrameDecoder::after_handshake(limits), &data, &[]);
            prop_assert_eq!(run(FrameDecoder::after_handshake(limits), &data, &cuts), whole);
        }
    }

    #[test]
    fn every_message_round_trips(m in message()) {
        let wire = m.to_bytes().unwrap();
        prop_assert_eq!(wire.len(), m.encoded_len());
        let mut buf = BytesMut::from(&wire[..]);
        let mut dec = FrameDecoder::after_handshake(FrameLimits::DEFAULT);
        prop_assert_eq!(dec.decode(&mut buf), Ok(Some(Frame::Message(m.clone()))));
        prop_assert!(buf.is_empty());
        if m != Message::KeepAlive {
            prop_assert_eq!(Message::parse(wire.slice(4..)), Ok(m));
        }
    }

    #[test]
    fn header_plus_payload_is_the_whole_message(m in message()) {
        let mut out = BytesMut::new();
        let tail = m.encode_header_into(&mut out).unwrap().cloned();
        if let Some(tail) = tail {
            out.extend_from_slice(&tail);
        }
        prop_assert_eq!(out.freeze(), m.to_bytes().unwrap());
    }

    #[test]
    fn handshake_round_trips(hs in handshake()) {
        let wire = hs.encode();
        prop_assert_eq!(Handshake::parse(&wire), Ok(hs));
        let (frames, error) = run(FrameDecoder::new(), &wire, &[]);
        prop_assert_eq!(error, None);
        prop_assert_eq!(frames, vec![Frame::HandshakeHead(hs.head()), Frame::PeerId(hs.peer_id)]);
    }

    #[test]
    fn valid_streams_decode_the_same_however_cut(
        hs in handshake(),
        messages in vec(message(), 0..12),
        cuts in vec(any::<usize>(), 0..24),
    ) {
        let mut data = hs.encode().to_vec();
        data.extend(encode_all(&messages));
        let (frames, error) = run(FrameDecoder::new(), &data, &cuts);
        prop_assert_eq!(error, None);
        let mut expected = vec![Frame::HandshakeHead(hs.head()), Frame::PeerId(hs.peer_id)];
        expected.extend(messages.into_iter().map(Frame::Message));
        prop_assert_eq!(frames, expected);
    }

    #[test]
    fn mangled_streams_decode_the_same_however_cut(
        data in mangled_stream(),
        cuts in vec(any::<usize>(), 0..24),
    ) {
        for limits in [FrameLimits::DEFAULT, SMALL_LIMITS] {
            let whole = run(FrameDecoder::with_limits(limits), &data, &[]);
            prop_assert_eq!(run(FrameDecoder::with_limits(limits), &data, &cuts), whole);
        }
    }

    #[test]
    fn arbitrary_bytes_decode_the_same_however_cut(
        data in vec(any::<u8>(), 0..3000),
        cuts in vec(any::<usize>(), 0..24),
    ) {
        for limits in [FrameLimits::DEFAULT, SMALL_LIMITS] {
            let whole = run(FrameDecoder::after_handshake(limits), &data, &[]);
            prop_assert_eq!(run(FrameDecoder::after_handshake(limits), &data, &cuts), whole);
            let whole = run(FrameDecoder::with_limits(limits), &data, &[]);
            prop_assert_eq!(run(FrameDecoder::with_limits(limits), &data, &cuts), whole);
        }
    }

    #[test]
    fn parse_never_panics(frame in vec(any::<u8>(), 0..600)) {
        let _ = Message::parse(Bytes::from(frame.clone()));
        let _ = Handshake::parse(&frame);
    }

    #[test]
    fn bitfield_from_bytes_is_consistent(bytes in vec(any::<u8>(), 0..64), count in 0u32..600) {
        if let Ok(b) = Bitfield::from_bytes(&bytes, count) {
            prop_assert_eq!(b.as_bytes(), &bytes[..]);
            let ones: Vec<u32> = b.iter_ones().collect();
            prop_assert_eq!(ones.len() as u32, b.count_ones());
            prop_assert!(ones.iter().all(|&i| i < count && b.has(i)));
            prop_assert_eq!(b.is_complete(), b.count_ones() == count);
        }
    }

    #[test]
    fn bitfield_matches_a_set_model(count in 1u32..300, ops in vec((any::<bool>(), any::<u32>()), 0..200)) {
        let mut b = Bitfield::new(count);
        let mut model = std::collections::BTreeSet::new();
        for (add, i) in ops {
            let i = i % (count + 8);
            let result = if add { b.set(i) } else { b.unset(i) };
            if i >= count {
                prop_assert_eq!(result, Err(WireError::PieceOutOfRange { piece: i, piece_count: count }));
            } else if add {
                prop_assert_eq!(result, Ok(model.insert(i)));
            } else {
                prop_assert_eq!(result, Ok(model.remove(&i)));
            }
        }
        prop_assert_eq!(b.iter_ones().collect::<Vec<_>>(), model.iter().copied().collect::<Vec<_>>());
        prop_assert_eq!(Bitfield::from_bytes(b.as_bytes(), count), Ok(b));
    }
}

// --- Extension messages ---

/// Bencoded dictionaries built from the keys the extension parsers read, with values of any
/// kind, so parsing reaches every branch rather than stopping at the first byte.
fn extension_dict() -> impl Strategy<Value = Vec<u8>> {
    const KEYS: &[&str] = &[
        "m",
        "p",
        "v",
        "yourip",
        "ipv4",
        "ipv6",
        "reqq",
        "metadata_size",
        "upload_only",
        "msg_type",
        "piece",
        "total_size",
        "added",
        "added.f",
        "added6",
        "added6.f",
        "dropped",
        "dropped6",
        "ut_pex",
        "ut_metadata",
    ];
    let leaf = prop_oneof![
        (-3i64..20_000).prop_map(OwnedValue::Int),
        any::<i64>().prop_map(OwnedValue::Int),
        vec(any::<u8>(), 0..40).prop_map(OwnedValue::Bytes),
    ];
    let value = leaf.prop_recursive(3, 24, 6, move |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(OwnedValue::List),
            btree_map(
                prop::sample::select(KEYS).prop_map(|k| k.as_bytes().to_vec()),
                inner,
                0..6
            )
            .prop_map(OwnedValue::Dict),
        ]
    });
    (
        btree_map(
            prop::sample::select(KEYS).prop_map(|k| k.as_bytes().to_vec()),
            value,
            0..8,
        ),
        vec(any::<u8>(), 0..40),
    )
        .prop_map(|(dict, tail)| {
            let mut out = OwnedValue::Dict(dict).encode();
            out.extend(tail);
            out
        })
}

fn metadata_message() -> impl Strategy<Value = MetadataMessage> {
    prop_oneof![
        any::<u32>().prop_map(|piece| MetadataMessage::Request { piece }),
        any::<u32>().prop_map(|piece| MetadataMessage::Reject { piece }),
        (3i64..1000).prop_map(|msg_type| MetadataMessage::Unknown { msg_type }),
        (0u32..40, 1usize..=METADATA_PIECE_LEN).prop_map(|(piece, last_len)| {
            let total = u64::from(piece) * METADATA_PIECE_LEN as u64 + last_len as u64;
            MetadataMessage::Data {
                piece,
                total_size: total,
                data: Bytes::from(vec![7; last_len]),
            }
        }),
    ]
}

fn pex_message() -> impl Strategy<Value = PexMessage> {
    let v4 = (any::<[u8; 4]>(), any::<u16>())
        .prop_map(|(ip, port)| SocketAddrV4::new(Ipv4Addr::from(ip), port));
    let v6 = (any::<[u8; 16]>(), any::<u16>())
        .prop_map(|(ip, port)| SocketAddrV6::new(Ipv6Addr::from(ip), port, 0, 0));
    (
        vec((v4.clone(), any::<u8>().prop_map(PexFlags)), 0..60),
        vec((v6.clone(), any::<u8>().prop_map(PexFlags)), 0..60),
        vec(v4, 0..60),
        vec(v6, 0..60),
    )
        .prop_map(|(added, added6, dropped, dropped6)| PexMessage {
            added,
            added6,
            dropped,
            dropped6,
        })
}

fn extended_handshake() -> impl Strategy<Value = ExtendedHandshake> {
    (
        btree_map("[a-z_]{1,12}", any::<u8>(), 0..6),
        prop::option::of(1u16..),
        prop::option::of("[ -~]{0,40}"),
        prop::option::of(any::<[u8; 4]>()),
        prop::option::of(any::<[u8; 16]>()),
        prop::option::of(1u32..),
        prop::option::of(1u64..(i64::MAX as u64)),
        prop::option::of(any::<bool>()),
    )
        .prop_map(
            |(extensions, port, client, v4, v6, reqq, size, upload_only)| ExtendedHandshake {
                extensions,
                port,
                client,
                your_ip: v4.map(Into::into),
                ipv4: v4.map(Ipv4Addr::from),
                ipv6: v6.map(Ipv6Addr::from),
                request_queue_len: reqq,
                metadata_size: size,
                upload_only,
            },
        )
}

proptest! {
    #[test]
    fn extension_parsers_never_panic(raw in extension_dict()) {
        let payload = Bytes::from(raw);
        let _ = ExtendedHandshake::parse(&payload);
        let _ = MetadataMessage::parse(&payload);
        let _ = PexMessage::parse(&payload);
    }

    #[test]
    fn extension_parsers_never_panic_on_bytes(raw in vec(any::<u8>(), 0..200)) {
        let payload = Bytes::from(raw);
        let _ = ExtendedHandshake::parse(&payload);
        let _ = MetadataMessage::parse(&payload);
        let _ = PexMessage::parse(&payload);
    }

    #[test]
    fn metadata_messages_round_trip(m in metadata_message(), ext_id in 1u8..) {
        let Message::Extended { id, payload } = m.to_message(ext_id) else {
            panic!("to_message builds an extended message");
        };
        prop_assert_eq!(id, ext_id);
        prop_assert_eq!(MetadataMessage::parse(&payload), Ok(m));
    }

    #[test]
    fn pex_messages_round_trip(m in pex_message()) {
        prop_assert_eq!(PexMessage::parse(&m.encode()), Ok(m));
    }

    #[test]
    fn extended_handshakes_round_trip(hs in extended_handshake()) {
        prop_assert_eq!(ExtendedHandshake::parse(&hs.encode()), Ok(hs));
    }
}
