//! Peer messages after the handshake (BEP 3, BEP 5's port, BEP 6's fast extension, BEP 10's
//! extended envelope): the [`Message`] type, parsing one frame, and emitting one.
//!
//! Payload is never copied: a parsed [`Message::Piece`] holds a [`Bytes`] slice of the frame it
//! came from, and [`Message::encode_header_into`] writes everything except the payload so a
//! runtime can send header and block with one vectored write (or the header then `sendfile`).

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::WireError;

/// Message ids (the byte after the length prefix).
pub mod id {
    /// BEP 3: stop serving requests.
    pub const CHOKE: u8 = 0;
    /// BEP 3: start serving requests.
    pub const UNCHOKE: u8 = 1;
    /// BEP 3: the sender wants pieces the receiver has.
    pub const INTERESTED: u8 = 2;
    /// BEP 3: the sender wants nothing from the receiver.
    pub const NOT_INTERESTED: u8 = 3;
    /// BEP 3: the sender has completed and verified a piece.
    pub const HAVE: u8 = 4;
    /// BEP 3: which pieces the sender has, right after the handshake.
    pub const BITFIELD: u8 = 5;
    /// BEP 3: ask for a block.
    pub const REQUEST: u8 = 6;
    /// BEP 3: a block of data.
    pub const PIECE: u8 = 7;
    /// BEP 3: withdraw a request.
    pub const CANCEL: u8 = 8;
    /// BEP 5: the sender's DHT port.
    pub const PORT: u8 = 9;
    /// BEP 6: "you might like this piece".
    pub const SUGGEST_PIECE: u8 = 13;
    /// BEP 6: the sender has every piece.
    pub const HAVE_ALL: u8 = 14;
    /// BEP 6: the sender has no piece.
    pub const HAVE_NONE: u8 = 15;
    /// BEP 6: a request will not be served.
    pub const REJECT_REQUEST: u8 = 16;
    /// BEP 6: the receiver may request this piece even while choked.
    pub const ALLOWED_FAST: u8 = 17;
    /// BEP 10: an extension protocol message.
    pub const EXTENDED: u8 = 20;
}

/// The block size every current client requests (BEP 3: 16 KiB); the default bound on the data
/// a piece message may carry.
pub const BLOCK_LEN_MAX: u32 = 16 * 1024;
/// Bytes before the block data in a piece message: length prefix, id, index, offset.
pub const PIECE_HEADER_LEN: usize = 13;
/// Bytes in a message's length prefix.
pub const LENGTH_PREFIX_LEN: usize = 4;

/// A block of a piece: what a request, cancel or reject names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockRef {
    /// The piece index.
    pub piece: u32,
    /// Byte offset of the block within the piece.
    pub offset: u32,
    /// Length of the block in bytes.
    pub length: u32,
}

impl BlockRef {
    /// One past the block's last byte within the piece (cannot overflow).
    #[must_use]
    pub fn end(&self) -> u64 {
        u64::from(self.offset) + u64::from(self.length)
    }
}

/// One peer message. Payload-carrying variants hold [`Bytes`] that share the receive buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A zero-length frame: the sender is still there.
    KeepAlive,
    /// BEP 3 `choke`.
    Choke,
    /// BEP 3 `unchoke`.
    Unchoke,
    /// BEP 3 `interested`.
    Interested,
    /// BEP 3 `not interested`.
    NotInterested,
    /// BEP 3 `have`.
    Have {
        /// The piece the sender now has.
        piece: u32,
    },
    /// BEP 3 `bitfield`, raw: the piece count is not known here, so check it with
    /// [`Bitfield::from_bytes`](crate::Bitfield::from_bytes).
    Bitfield(Bytes),
    /// BEP 3 `request`.
    Request(BlockRef),
    /// BEP 3 `piece`: a block of data.
    Piece {
        /// The piece index.
        piece: u32,
        /// Byte offset of the block within the piece.
        offset: u32,
        /// The block, sharing the receive buffer.
        data: Bytes,
    },
    /// BEP 3 `cancel`.
    Cancel(BlockRef),
    /// BEP 5 `port`: the sender's DHT UDP port.
    Port(u16),
    /// BEP 6 `suggest piece`.
    SuggestPiece {
        /// The suggested piece.
        piece: u32,
    },
    /// BEP 6 `have all`.
    HaveAll,
    /// BEP 6 `have none`.
    HaveNone,
    /// BEP 6 `reject request`.
    RejectRequest(BlockRef),
    /// BEP 6 `allowed fast`.
    AllowedFast {
        /// A piece the receiver may request while choked.
        piece: u32,
    },
    /// BEP 10 `extended`: the extended message id (0 is the extension handshake; others are
    /// the ids the receiver chose in its handshake) and the rest of the message.
    Extended {
        /// The extended message id.
        id: u8,
        /// The bytes after the extended id.
        payload: Bytes,
    },
    /// A message id this crate does not know. BEP 3 says to ignore such messages (libtorrent
    /// does), so the decoder hands them up instead of failing; the engine drops them. Parsing
    /// never produces a known id here; emitting one with a known id writes that message.
    Unknown {
        /// The message id.
        id: u8,
        /// The bytes after the id.
        payload: Bytes,
    },
}

/// The 13 bytes that precede a block of `block_len` bytes in a piece message, for a runtime
/// that sends the block from elsewhere (a file with `sendfile`, a cache `Bytes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PieceHeader {
    /// The piece index.
    pub piece: u32,
    /// Byte offset of the block within the piece.
    pub offset: u32,
    /// Length of the block that will follow the header.
    pub block_len: u32,
}

impl PieceHeader {
    /// The header bytes: length prefix (9 + block length), id 7, index, offset.
    pub fn encode(&self) -> Result<[u8; PIECE_HEADER_LEN], WireError> {
        let len = self
            .block_len
            .checked_add(9)
            .ok_or(WireError::MessageTooLarge {
                id: Some(id::PIECE),
                len: u64::from(self.block_len) + 9,
                max: u64::from(u32::MAX),
            })?;
        let mut out = [0u8; PIECE_HEADER_LEN];
        out[0..4].copy_from_slice(&len.to_be_bytes());
        out[4] = id::PIECE;
        out[5..9].copy_from_slice(&self.piece.to_be_bytes());
        out[9..13].copy_from_slice(&self.offset.to_be_bytes());
        Ok(out)
    }
}

impl From<BlockRef> for PieceHeader {
    fn from(block: BlockRef) -> Self {
        Self {
            piece: block.piece,
            offset: block.offset,
            block_len: block.length,
        }
    }
}

impl Message {
    /// The message id, or `None` for a keep-alive.
    #[must_use]
    pub fn id(&self) -> Option<u8> {
        Some(match self {
            Self::KeepAlive => return None,
            Self::Choke => id::CHOKE,
            Self::Unchoke => id::UNCHOKE,
            Self::Interested => id::INTERESTED,
            Self::NotInterested => id::NOT_INTERESTED,
            Self::Have { .. } => id::HAVE,
            Self::Bitfield(_) => id::BITFIELD,
            Self::Request(_) => id::REQUEST,
            Self::Piece { .. } => id::PIECE,
            Self::Cancel(_) => id::CANCEL,
            Self::Port(_) => id::PORT,
            Self::SuggestPiece { .. } => id::SUGGEST_PIECE,
            Self::HaveAll => id::HAVE_ALL,
            Self::HaveNone => id::HAVE_NONE,
            Self::RejectRequest(_) => id::REJECT_REQUEST,
            Self::AllowedFast { .. } => id::ALLOWED_FAST,
            Self::Extended { .. } => id::EXTENDED,
            Self::Unknown { id, .. } => *id,
        })
    }

    /// The block a piece message carries, as a [`BlockRef`] (length saturates at `u32::MAX`).
    #[must_use]
    pub fn piece_block(&self) -> Option<BlockRef> {
        match self {
            Self::Piece {
                piece,
                offset,
                data,
            } => Some(BlockRef {
                piece: *piece,
                offset: *offset,
                length: u32::try_from(data.len()).unwrap_or(u32::MAX),
            }),
            _ => None,
        }
    }

    /// Bytes this message takes on the wire, length prefix included.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        let (fixed, tail) = self.layout();
        LENGTH_PREFIX_LEN + fixed + tail.map_or(0, Bytes::len)
    }

    /// Writes the message except its variable payload (block data, bitfield, extended or
    /// unknown payload), and returns that payload, which must be sent right after. For a
    /// piece message this writes exactly [`PIECE_HEADER_LEN`] bytes.
    pub fn encode_header_into<'a>(
        &'a self,
        out: &mut impl BufMut,
    ) -> Result<Option<&'a Bytes>, WireError> {
        let (fixed, tail) = self.layout();
        let len = fixed as u64 + tail.map_or(0, |t| t.len() as u64);
        let len = u32::try_from(len).map_err(|_| WireError::MessageTooLarge {
            id: self.id(),
            len,
            max: u64::from(u32::MAX),
        })?;
        out.put_u32(len);
        self.put_fixed(out);
        Ok(tail)
    }

    /// Writes the whole message (copying its payload: for control messages and tests; the
    /// data path uses [`Message::encode_header_into`]).
    pub fn encode_into(&self, out: &mut impl BufMut) -> Result<(), WireError> {
        if let Some(tail) = self.encode_header_into(out)? {
            out.put_slice(tail);
        }
        Ok(())
    }

    /// The whole message as one buffer.
    pub fn to_bytes(&self) -> Result<Bytes, WireError> {
        let mut out = BytesMut::with_capacity(self.encoded_len());
        self.encode_into(&mut out)?;
        Ok(out.freeze())
    }

    /// Parses one frame: the bytes after the length prefix (id then payload). An empty frame
    /// is an error here; the framing layer turns a zero length prefix into a keep-alive.
    /// Payloads are slices of `frame`; nothing is copied.
    pub fn parse(mut frame: Bytes) -> Result<Self, WireError> {
        let id = frame.try_get_u8().map_err(|_| WireError::EmptyFrame)?;
        let len = u32::try_from(frame.len() + 1).map_err(|_| WireError::MessageTooLarge {
            id: Some(id),
            len: frame.len() as u64 + 1,
            max: u64::from(u32::MAX),
        })?;
        check_length(id, len)?;
        parse_body(id, frame).map_err(|_| WireError::BadLength { id, len })
    }

    /// How the message lays out after the length prefix: the size of its fixed part (id and
    /// integers) and its variable payload, if any.
    fn layout(&self) -> (usize, Option<&Bytes>) {
        match self {
            Self::KeepAlive => (0, None),
            Self::Choke
            | Self::Unchoke
            | Self::Interested
            | Self::NotInterested
            | Self::HaveAll
            | Self::HaveNone => (1, None),
            Self::Have { .. } | Self::SuggestPiece { .. } | Self::AllowedFast { .. } => (5, None),
            Self::Request(_) | Self::Cancel(_) | Self::RejectRequest(_) => (13, None),
            Self::Port(_) => (3, None),
            Self::Bitfield(bits) => (1, Some(bits)),
            Self::Piece { data, .. } => (9, Some(data)),
            Self::Extended { payload, .. } => (2, Some(payload)),
            Self::Unknown { payload, .. } => (1, Some(payload)),
        }
    }

    /// Writes the fixed part described by [`Message::layout`].
    fn put_fixed(&self, out: &mut impl BufMut) {
        if let Some(id) = self.id() {
            out.put_u8(id);
        }
        match self {
            Self::Have { piece } | Self::SuggestPiece { piece } | Self::AllowedFast { piece } => {
                out.put_u32(*piece);
            }
            Self::Request(b) | Self::Cancel(b) | Self::RejectRequest(b) => {
                out.put_u32(b.piece);
                out.put_u32(b.offset);
                out.put_u32(b.length);
            }
            Self::Port(port) => out.put_u16(*port),
            Self::Piece { piece, offset, .. } => {
                out.put_u32(*piece);
                out.put_u32(*offset);
            }
            Self::Extended { id, .. } => out.put_u8(*id),
            _ => {}
        }
    }
}

/// Checks that a length prefix (`len`, id byte included) fits message `id`: fixed-size
/// messages must have their size, piece and extended messages their minimum. Unknown ids and
/// bitfields may have any length (bounded by the framing limits).
pub(crate) fn check_length(id: u8, len: u32) -> Result<(), WireError> {
    let ok = match id {
        id::CHOKE
        | id::UNCHOKE
        | id::INTERESTED
        | id::NOT_INTERESTED
        | id::HAVE_ALL
        | id::HAVE_NONE => len == 1,
        id::HAVE | id::SUGGEST_PIECE | id::ALLOWED_FAST => len == 5,
        id::REQUEST | id::CANCEL | id::REJECT_REQUEST => len == 13,
        id::PORT => len == 3,
        id::PIECE => len >= 9,
        id::EXTENDED => len >= 2,
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(WireError::BadLength { id, len })
    }
}

/// Reads the fields after the id; `body` has the length [`check_length`] accepted, so the
/// `TryGetError` arm is unreachable in practice and only keeps this panic-free.
fn parse_body(id: u8, mut body: Bytes) -> Result<Message, bytes::TryGetError> {
    Ok(match id {
        id::CHOKE => Message::Choke,
        id::UNCHOKE => Message::Unchoke,
        id::INTERESTED => Message::Interested,
        id::NOT_INTERESTED => Message::NotInterested,
        id::HAVE_ALL => Message::HaveAll,
        id::HAVE_NONE => Message::HaveNone,
        id::HAVE => Message::Have {
            piece: body.try_get_u32()?,
        },
        id::SUGGEST_PIECE => Message::SuggestPiece {
            piece: body.try_get_u32()?,
        },
        id::ALLOWED_FAST => Message::AllowedFast {
            piece: body.try_get_u32()?,
        },
        id::REQUEST => Message::Request(block_ref(&mut body)?),
        id::CANCEL => Message::Cancel(block_ref(&mut body)?),
        id::REJECT_REQUEST => Message::RejectRequest(block_ref(&mut body)?),
        id::PORT => Message::Port(body.try_get_u16()?),
        id::BITFIELD => Message::Bitfield(body),
        id::PIECE => Message::Piece {
            piece: body.try_get_u32()?,
            offset: body.try_get_u32()?,
            data: body,
        },
        id::EXTENDED => Message::Extended {
            id: body.try_get_u8()?,
            payload: body,
        },
        _ => Message::Unknown { id, payload: body },
    })
}

fn block_ref(body: &mut Bytes) -> Result<BlockRef, bytes::TryGetError> {
    Ok(BlockRef {
        piece: body.try_get_u32()?,
        offset: body.try_get_u32()?,
        length: body.try_get_u32()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Result<Message, WireError> {
        Message::parse(Bytes::copy_from_slice(bytes))
    }

    /// Byte vectors written out by hand from BEP 3, 5, 6 and 10.
    #[test]
    fn known_vectors() {
        let block = BlockRef {
            piece: 1,
            offset: 0x4000,
            length: 0x4000,
        };
        let cases: Vec<(Message, &[u8])> = vec![
            (Message::KeepAlive, b"\0\0\0\0"),
            (Message::Choke, b"\0\0\0\x01\x00"),
            (Message::Unchoke, b"\0\0\0\x01\x01"),
            (Message::Interested, b"\0\0\0\x01\x02"),
            (Message::NotInterested, b"\0\0\0\x01\x03"),
            (
                Message::Have { piece: 0x0102_0304 },
                b"\0\0\0\x05\x04\x01\x02\x03\x04",
            ),
            (
                Message::Bitfield(Bytes::from_static(b"\xff\x80")),
                b"\0\0\0\x03\x05\xff\x80",
            ),
            (
                Message::Request(block),
                b"\0\0\0\x0d\x06\0\0\0\x01\0\0\x40\0\0\0\x40\0",
            ),
            (
                Message::Piece {
                    piece: 2,
                    offset: 16,
                    data: Bytes::from_static(b"abc"),
                },
                b"\0\0\0\x0c\x07\0\0\0\x02\0\0\0\x10abc",
            ),
            (
                Message::Cancel(block),
                b"\0\0\0\x0d\x08\0\0\0\x01\0\0\x40\0\0\0\x40\0",
            ),
            (Message::Port(6881), b"\0\0\0\x03\x09\x1a\xe1"),
            (
                Message::SuggestPiece { piece: 7 },
                b"\0\0\0\x05\x0d\0\0\0\x07",
            ),
            (Message::HaveAll, b"\0\0\0\x01\x0e"),
            (Message::HaveNone, b"\0\0\0\x01\x0f"),
            (
                Message::RejectRequest(block),
                b"\0\0\0\x0d\x10\0\0\0\x01\0\0\x40\0\0\0\x40\0",
            ),
            (
                Message::AllowedFast { piece: 9 },
                b"\0\0\0\x05\x11\0\0\0\x09",
            ),
            (
                Message::Extended {
                    id: 0,
                    payload: Bytes::from_static(b"de"),
                },
                b"\0\0\0\x04\x14\x00de",
            ),
            (
                Message::Unknown {
                    id: 21,
                    payload: Bytes::from_static(b"xy"),
                },
                b"\0\0\0\x03\x15xy",
            ),
        ];
        for (message, wire) in cases {
            assert_eq!(message.to_bytes().unwrap(), wire, "{message:?}");
            assert_eq!(message.encoded_len(), wire.len());
            if message != Message::KeepAlive {
                assert_eq!(parse(&wire[4..]).unwrap(), message);
            }
        }
    }

    #[test]
    fn piece_header_is_thirteen_bytes_and_matches_full_encoding() {
        let data = Bytes::from(vec![0xab; 16384]);
        let message = Message::Piece {
            piece: 5,
            offset: 32768,
            data: data.clone(),
        };
        let mut header = BytesMut::new();
        let tail = message.encode_header_into(&mut header).unwrap().unwrap();
        assert_eq!(header.len(), PIECE_HEADER_LEN);
        assert_eq!(
            tail.as_ptr(),
            data.as_ptr(),
            "payload is handed back, not copied"
        );
        let block = message.piece_block().unwrap();
        assert_eq!(
            block,
            BlockRef {
                piece: 5,
                offset: 32768,
                length: 16384
            }
        );
        assert_eq!(PieceHeader::from(block).encode().unwrap()[..], header[..]);
        assert_eq!(message.to_bytes().unwrap()[..13], header[..]);
        let too_big = PieceHeader {
            piece: 0,
            offset: 0,
            block_len: u32::MAX - 8,
        };
        assert!(matches!(
            too_big.encode(),
            Err(WireError::MessageTooLarge { .. })
        ));
    }

    #[test]
    fn parsed_payload_shares_the_frame() {
        let frame = Bytes::from_static(b"\x07\0\0\0\x02\0\0\0\x10abc");
        let Message::Piece { data, .. } = Message::parse(frame.clone()).unwrap() else {
            panic!("not a piece");
        };
        assert_eq!(data.as_ptr(), frame[9..].as_ptr());
    }

    #[test]
    fn rejects_wrong_lengths() {
        let cases: &[(&[u8], u8, u32)] = &[
            (b"\x00\x00", 0, 2),
            (b"\x04\0\0\0", 4, 4),
            (b"\x06\0\0\0\0\0\0\0\0\0\0\0", 6, 12),
            (b"\x07\0\0\0\0\0\0\0", 7, 8),
            (b"\x09\x1a", 9, 2),
            (b"\x0e\x00", 14, 2),
            (b"\x11\0\0\0\0\0", 17, 6),
            (b"\x14", 20, 1),
        ];
        for (frame, id, len) in cases {
            assert_eq!(
                parse(frame),
                Err(WireError::BadLength { id: *id, len: *len })
            );
        }
        assert_eq!(parse(b""), Err(WireError::EmptyFrame));
        assert_eq!(parse(b"\x05").unwrap(), Message::Bitfield(Bytes::new()));
        assert_eq!(
            parse(b"\x07\0\0\0\x01\0\0\0\x02").unwrap(),
            Message::Piece {
                piece: 1,
                offset: 2,
                data: Bytes::new()
            }
        );
    }

    #[test]
    fn block_end_does_not_overflow() {
        let b = BlockRef {
            piece: 0,
            offset: u32::MAX,
            length: u32::MAX,
        };
        assert_eq!(b.end(), 2 * u64::from(u32::MAX));
    }
}
