//! Sans-IO framing: turns a byte stream from a peer into a handshake and then [`Message`]s.
//!
//! The caller owns the receive buffer (a [`BytesMut`] it reads the socket into) and calls
//! [`FrameDecoder::decode`] until it returns `Ok(None)`. Complete frames are split off the
//! front of the buffer and frozen, so the payload of every message shares the buffer's memory:
//! no byte of a block is copied between the socket read and the message. When a frame is only
//! partly there, the decoder reserves room for the rest so the next read can complete it.
//!
//! Every length prefix is checked against [`FrameLimits`] as soon as its 4 bytes (and then the
//! id byte) are in, before anything of the claimed size is buffered. Checks happen in order of
//! the bytes they need, so the result does not depend on how the stream was chunked.

use bytes::{Buf, BytesMut};

use crate::error::WireError;
use crate::handshake::{check_protocol_prefix, HandshakeHead, HANDSHAKE_HEAD_LEN};
use crate::message::{check_length, id, Message, BLOCK_LEN_MAX, LENGTH_PREFIX_LEN};
use crate::peer_id::{PeerId, PEER_ID_LEN};

/// Default bound on a message's length prefix (id byte and payload), except piece messages:
/// 1 MiB. That holds the bitfield of 8 million pieces and any extension message we accept
/// (extension payloads are parsed with `bitswarm_bencode::Limits::MESSAGE`, also 1 MiB).
pub const MESSAGE_LEN_MAX: u32 = 1 << 20;

/// Bounds the decoder enforces on incoming frames; a frame beyond them is an error and the
/// connection is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLimits {
    /// Largest length prefix (id byte plus payload) of any message but a piece message.
    pub message_len_max: u32,
    /// Largest block a piece message may carry; its length prefix may be 9 more.
    pub block_len_max: u32,
}

impl FrameLimits {
    /// [`MESSAGE_LEN_MAX`] and [`BLOCK_LEN_MAX`]: a piece message is at most 16 KiB + 13
    /// bytes on the wire, anything else at most 1 MiB + 4.
    pub const DEFAULT: Self = Self {
        message_len_max: MESSAGE_LEN_MAX,
        block_len_max: BLOCK_LEN_MAX,
    };

    /// The largest length prefix allowed for message `id`.
    #[must_use]
    pub fn len_max_for(self, id: u8) -> u32 {
        if id == id::PIECE {
            self.block_len_max.saturating_add(9)
        } else {
            self.message_len_max
        }
    }

    /// The largest length prefix allowed for any message (checked before the id is known).
    fn len_max_any(self) -> u32 {
        self.message_len_max.max(self.len_max_for(id::PIECE))
    }
}

impl Default for FrameLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// What the decoder found at the front of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// The first 48 bytes of the handshake: look up the torrent, answer, then expect the peer id.
    HandshakeHead(HandshakeHead),
    /// The last 20 bytes of the handshake.
    PeerId(PeerId),
    /// A message.
    Message(Message),
}

/// Where in the stream the decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for the first 48 bytes of the handshake.
    HandshakeHead,
    /// Waiting for the peer id.
    PeerId,
    /// Decoding messages.
    Messages,
    /// A previous call failed; the stream cannot be framed any more.
    Failed,
}

/// Splits a peer's byte stream into frames. Holds no buffer and does no I/O.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    phase: Phase,
    limits: FrameLimits,
    error: Option<WireError>,
}

impl FrameDecoder {
    /// A decoder for a new connection: handshake first, then messages, with default limits.
    #[must_use]
    pub fn new() -> Self {
        Self::with_limits(FrameLimits::DEFAULT)
    }

    /// A decoder for a new connection with the given limits.
    #[must_use]
    pub fn with_limits(limits: FrameLimits) -> Self {
        Self {
            phase: Phase::HandshakeHead,
            limits,
            error: None,
        }
    }

    /// A decoder for a stream whose handshake was already consumed: messages only.
    #[must_use]
    pub fn after_handshake(limits: FrameLimits) -> Self {
        Self {
            phase: Phase::Messages,
            limits,
            error: None,
        }
    }

    /// Where in the stream the decoder is.
    #[must_use]
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The limits in force.
    #[must_use]
    pub fn limits(&self) -> FrameLimits {
        self.limits
    }

    /// Takes the next complete frame off the front of `buf`: `Ok(None)` when more bytes are
    /// needed (nothing is consumed then). After an error the stream is out of step: this and
    /// every later call return that error, and the connection must be dropped.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, WireError> {
        if let Some(error) = &self.error {
            return Err(error.clone());
        }
        let result = match self.phase {
            Phase::HandshakeHead => self.decode_head(buf),
            Phase::PeerId => Ok(self.decode_peer_id(buf)),
            Phase::Messages | Phase::Failed => {
                decode_message(buf, self.limits).map(|m| m.map(Frame::Message))
            }
        };
        if let Err(error) = &result {
            self.phase = Phase::Failed;
            self.error = Some(error.clone());
        }
        result
    }

    fn decode_head(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, WireError> {
        check_protocol_prefix(buf)?;
        let Some(bytes) = buf.get(..HANDSHAKE_HEAD_LEN) else {
            return Ok(None);
        };
        let head = HandshakeHead::parse(bytes)?;
        buf.advance(HANDSHAKE_HEAD_LEN);
        self.phase = Phase::PeerId;
        Ok(Some(Frame::HandshakeHead(head)))
    }

    fn decode_peer_id(&mut self, buf: &mut BytesMut) -> Option<Frame> {
        let bytes: [u8; PEER_ID_LEN] = buf.get(..PEER_ID_LEN)?.try_into().ok()?;
        buf.advance(PEER_ID_LEN);
        self.phase = Phase::Messages;
        Some(Frame::PeerId(PeerId(bytes)))
    }
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new()
    }
}

/// One message off the front of `buf`, or `None` if it is not all there yet.
fn decode_message(buf: &mut BytesMut, limits: FrameLimits) -> Result<Option<Message>, WireError> {
    let Some(prefix) = buf.get(..LENGTH_PREFIX_LEN) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
    if len > limits.len_max_any() {
        return Err(WireError::MessageTooLarge {
            id: None,
            len: u64::from(len),
            max: u64::from(limits.len_max_any()),
        });
    }
    if len == 0 {
        buf.advance(LENGTH_PREFIX_LEN);
        return Ok(Some(Message::KeepAlive));
    }
    let Some(&id) = buf.get(LENGTH_PREFIX_LEN) else {
        return Ok(None);
    };
    let max = limits.len_max_for(id);
    if len > max {
        return Err(WireError::MessageTooLarge {
            id: Some(id),
            len: u64::from(len),
            max: u64::from(max),
        });
    }
    check_length(id, len)?;
    let frame_len = LENGTH_PREFIX_LEN + len as usize;
    if buf.len() < frame_len {
        buf.reserve(frame_len - buf.len());
        return Ok(None);
    }
    let mut frame = buf.split_to(frame_len).freeze();
    frame.advance(LENGTH_PREFIX_LEN);
    Message::parse(frame).map(Some)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::handshake::{Handshake, Reserved};

    fn handshake() -> Handshake {
        Handshake {
            reserved: Reserved::NONE.with_fast(true),
            info_hash: [7; 20],
            peer_id: PeerId(*b"-TR4050-000000000000"),
        }
    }

    fn decode_all(dec: &mut FrameDecoder, buf: &mut BytesMut) -> Vec<Frame> {
        let mut out = Vec::new();
        while let Some(frame) = dec.decode(buf).unwrap() {
            out.push(frame);
        }
        out
    }

    #[test]
    fn handshake_then_messages() {
        let hs = handshake();
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&hs.encode());
        buf.extend_from_slice(&Message::HaveAll.to_bytes().unwrap());
        buf.extend_from_slice(&[0, 0, 0, 0]);
        buf.extend_from_slice(&[0, 0, 0, 5, 4, 0]);
        let mut dec = FrameDecoder::new();
        let frames = decode_all(&mut dec, &mut buf);
        assert_eq!(
            frames,
            vec![
                Frame::HandshakeHead(hs.head()),
                Frame::PeerId(hs.peer_id),
                Frame::Message(Message::HaveAll),
                Frame::Message(Message::KeepAlive),
            ]
        );
        assert_eq!(buf.len(), 6, "partial have stays in the buffer");
        assert!(
            buf.capacity() >= 9,
            "room reserved for the rest of the frame"
        );
        buf.extend_from_slice(&[0, 0, 9]);
        assert_eq!(
            dec.decode(&mut buf).unwrap(),
            Some(Frame::Message(Message::Have { piece: 9 }))
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn peer_id_may_arrive_later() {
        let hs = handshake().encode();
        let mut dec = FrameDecoder::new();
        let mut buf = BytesMut::from(&hs[..48]);
        assert!(matches!(
            dec.decode(&mut buf),
            Ok(Some(Frame::HandshakeHead(_)))
        ));
        assert_eq!(dec.phase(), Phase::PeerId);
        assert_eq!(dec.decode(&mut buf), Ok(None));
        buf.extend_from_slice(&hs[48..]);
        assert!(matches!(dec.decode(&mut buf), Ok(Some(Frame::PeerId(_)))));
        assert_eq!(dec.phase(), Phase::Messages);
    }

    #[test]
    fn refuses_non_bittorrent_from_the_first_byte() {
        let mut dec = FrameDecoder::new();
        let mut buf = BytesMut::from(&b"G"[..]);
        assert_eq!(dec.decode(&mut buf), Err(WireError::BadProtocol));
        assert_eq!(dec.phase(), Phase::Failed);
        buf.extend_from_slice(b"ET / HTTP/1.1\r\n");
        assert_eq!(
            dec.decode(&mut buf),
            Err(WireError::BadProtocol),
            "error is sticky"
        );
    }

    #[test]
    fn oversized_prefix_is_refused_without_buffering() {
        let mut dec = FrameDecoder::after_handshake(FrameLimits::DEFAULT);
        let mut buf = BytesMut::from(&[0x7f, 0xff, 0xff, 0xff][..]);
        assert_eq!(
            dec.decode(&mut buf),
            Err(WireError::MessageTooLarge {
                id: None,
                len: 0x7fff_ffff,
                max: u64::from(MESSAGE_LEN_MAX)
            })
        );
        assert!(buf.capacity() < 1 << 20, "claimed size never allocated");
    }

    #[test]
    fn piece_messages_have_their_own_bound() {
        let limits = FrameLimits::DEFAULT;
        let len = 9 + BLOCK_LEN_MAX + 1;
        let mut dec = FrameDecoder::after_handshake(limits);
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&len.to_be_bytes());
        buf.extend_from_slice(&[id::PIECE]);
        assert_eq!(
            dec.decode(&mut buf),
            Err(WireError::MessageTooLarge {
                id: Some(id::PIECE),
                len: u64::from(len),
                max: u64::from(9 + BLOCK_LEN_MAX)
            })
        );
        // The same length is fine for a bitfield.
        let mut dec = FrameDecoder::after_handshake(limits);
        buf[4] = id::BITFIELD;
        assert_eq!(dec.decode(&mut buf), Ok(None));
    }

    #[test]
    fn wrong_fixed_length_fails_at_the_id_byte() {
        let mut dec = FrameDecoder::after_handshake(FrameLimits::DEFAULT);
        let mut buf = BytesMut::from(&[0, 0, 0x10, 0, id::CHOKE][..]);
        assert_eq!(
            dec.decode(&mut buf),
            Err(WireError::BadLength {
                id: id::CHOKE,
                len: 0x1000
            })
        );
    }

    #[test]
    fn piece_data_shares_the_receive_buffer() {
        let data = Bytes::from(vec![0x5a; BLOCK_LEN_MAX as usize]);
        let msg = Message::Piece {
            piece: 3,
            offset: 0,
            data,
        };
        let mut buf = BytesMut::with_capacity(2 * msg.encoded_len());
        msg.encode_into(&mut buf).unwrap();
        msg.encode_into(&mut buf).unwrap();
        let base = buf.as_ptr() as usize;
        let mut dec = FrameDecoder::after_handshake(FrameLimits::DEFAULT);
        for i in 0..2 {
            let Some(Frame::Message(Message::Piece { data, .. })) = dec.decode(&mut buf).unwrap()
            else {
                panic!("expected a piece");
            };
            assert_eq!(data.as_ptr() as usize, base + i * msg.encoded_len() + 13);
            assert_eq!(data.len(), BLOCK_LEN_MAX as usize);
        }
    }
}
