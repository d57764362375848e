//! Metadata exchange (BEP 9, `ut_metadata`): fetching the info dictionary from peers in
//! 16 KiB pieces. A message is a bencoded header, followed in `data` messages by the raw
//! piece bytes, which stay a zero-copy slice of the payload.

use bitswarm_bencode::{decode_prefix, Limits, OwnedValue};
use bytes::Bytes;

use super::{as_dict, required_int};
use crate::error::WireError;
use crate::message::Message;

/// Bytes in every metadata piece but the last.
pub const METADATA_PIECE_LEN: usize = 16 * 1024;

/// One `ut_metadata` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataMessage {
    /// `msg_type` 0: send me metadata piece `piece`.
    Request {
        /// The metadata piece index.
        piece: u32,
    },
    /// `msg_type` 1: metadata piece `piece` of a `total_size`-byte info dictionary.
    Data {
        /// The metadata piece index.
        piece: u32,
        /// Size of the whole info dictionary.
        total_size: u64,
        /// The piece's bytes: [`METADATA_PIECE_LEN`], or the remainder for the last piece.
        data: Bytes,
    },
    /// `msg_type` 2: I will not send metadata piece `piece`.
    Reject {
        /// The metadata piece index.
        piece: u32,
    },
    /// A `msg_type` this crate does not know; BEP 9 says to ignore it.
    Unknown {
        /// The message type.
        msg_type: i64,
    },
}

impl MetadataMessage {
    /// Parses the payload of a `ut_metadata` extended message. A data message's length must
    /// match its piece index and total size; request and reject may not carry extra bytes.
    pub fn parse(payload: &Bytes) -> Result<Self, WireError> {
        // The bencoded header is small; only the part the limits allow is offered to the
        // decoder, so a large data message is not refused for its size.
        let head = payload
            .get(..Limits::MESSAGE.input_len_max)
            .unwrap_or(payload);
        let (value, used) = decode_prefix(head, &Limits::MESSAGE)?;
        let dict = as_dict(&value)?;
        let msg_type: i64 = required_int(dict, "msg_type")?;
        let trailing = payload.len() - used;
        match msg_type {
            0 | 2 => {
                let piece = required_int(dict, "piece")?;
                if trailing != 0 {
                    return Err(WireError::MetadataTrailingBytes {
                        msg_type,
                        count: trailing,
                    });
                }
                Ok(if msg_type == 0 {
                    Self::Request { piece }
                } else {
                    Self::Reject { piece }
                })
            }
            1 => {
                let piece = required_int(dict, "piece")?;
                let total_size: u64 = required_int(dict, "total_size")?;
                let data = payload.slice(used..);
                check_data_len(piece, total_size, data.len())?;
                Ok(Self::Data {
                    piece,
                    total_size,
                    data,
                })
            }
            _ => Ok(Self::Unknown { msg_type }),
        }
    }

    /// The payload bytes (the data of a data message is copied in; metadata is small and
    /// exchanged once per torrent).
    #[must_use]
    pub fn encode(&self) -> Bytes {
        let (msg_type, piece, total_size, data) = match self {
            Self::Request { piece } => (0, Some(*piece), None, None),
            Self::Data {
                piece,
                total_size,
                data,
            } => (1, Some(*piece), Some(*total_size), Some(data)),
            Self::Reject { piece } => (2, Some(*piece), None, None),
            Self::Unknown { msg_type } => (*msg_type, None, None, None),
        };
        let mut dict = OwnedValue::dict().insert("msg_type", OwnedValue::Int(msg_type));
        if let Some(piece) = piece {
            dict = dict.insert("piece", OwnedValue::Int(i64::from(piece)));
        }
        if let Some(size) = total_size {
            let size = i64::try_from(size).unwrap_or(i64::MAX);
            dict = dict.insert("total_size", OwnedValue::Int(size));
        }
        let mut out = dict.encode();
        if let Some(data) = data {
            out.extend_from_slice(data);
        }
        Bytes::from(out)
    }

    /// This message as an extended message with the id the receiver chose for `ut_metadata`.
    #[must_use]
    pub fn to_message(&self, extended_id: u8) -> Message {
        Message::Extended {
            id: extended_id,
            payload: self.encode(),
        }
    }
}

/// Checks that metadata piece `piece` of a `total_size`-byte dictionary has `len` bytes.
fn check_data_len(piece: u32, total_size: u64, len: usize) -> Result<(), WireError> {
    let start = u64::from(piece) * METADATA_PIECE_LEN as u64;
    let expected = total_size
        .checked_sub(start)
        .filter(|&rest| rest > 0)
        .map_or(0, |rest| rest.min(METADATA_PIECE_LEN as u64) as usize);
    if expected == 0 || len != expected {
        return Err(WireError::MetadataBlockLength {
            piece,
            len,
            expected,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Result<MetadataMessage, WireError> {
        MetadataMessage::parse(&Bytes::copy_from_slice(bytes))
    }

    /// The examples of BEP 9.
    #[test]
    fn bep9_examples() {
        assert_eq!(
            parse(b"d8:msg_typei0e5:piecei0ee"),
            Ok(MetadataMessage::Request { piece: 0 })
        );
        assert_eq!(
            parse(b"d8:msg_typei2e5:piecei0ee"),
            Ok(MetadataMessage::Reject { piece: 0 })
        );
        let mut data = b"d8:msg_typei1e5:piecei0e10:total_sizei3425ee".to_vec();
        data.extend_from_slice(&[b'x'; 3425]);
        let payload = Bytes::from(data);
        let MetadataMessage::Data {
            piece: 0,
            total_size: 3425,
            data,
        } = MetadataMessage::parse(&payload).unwrap()
        else {
            panic!("not a data message");
        };
        assert_eq!(
            data.as_ptr(),
            payload[payload.len() - 3425..].as_ptr(),
            "no copy"
        );
        assert_eq!(
            MetadataMessage::Request { piece: 0 }.encode(),
            &b"d8:msg_typei0e5:piecei0ee"[..]
        );
    }

    #[test]
    fn data_length_must_fit_piece_and_total() {
        let data = |piece: u32, total: u64, len: usize| MetadataMessage::Data {
            piece,
            total_size: total,
            data: Bytes::from(vec![1; len]),
        };
        let ok = data(1, 20_000, 20_000 - 16_384);
        assert_eq!(MetadataMessage::parse(&ok.encode()), Ok(ok));
        let full = data(0, 20_000, 16_384);
        assert_eq!(MetadataMessage::parse(&full.encode()), Ok(full));
        for (piece, total, len, expected) in
            [(0, 20_000, 100, 16_384), (2, 20_000, 1, 0), (0, 10, 11, 10)]
        {
            assert_eq!(
                MetadataMessage::parse(&data(piece, total, len).encode()),
                Err(WireError::MetadataBlockLength {
                    piece,
                    len,
                    expected
                })
            );
        }
    }

    #[test]
    fn malformed_headers() {
        assert_eq!(
            parse(b"d5:piecei0ee"),
            Err(WireError::MissingField { field: "msg_type" })
        );
        assert_eq!(
            parse(b"d8:msg_typei0ee"),
            Err(WireError::MissingField { field: "piece" })
        );
        assert_eq!(
            parse(b"d8:msg_typei0e5:piecei-1ee"),
            Err(WireError::BadField { field: "piece" })
        );
        assert_eq!(
            parse(b"d8:msg_type1:0e"),
            Err(WireError::BadField { field: "msg_type" })
        );
        assert_eq!(
            parse(b"d8:msg_typei0e5:piecei0eexx"),
            Err(WireError::MetadataTrailingBytes {
                msg_type: 0,
                count: 2
            })
        );
        assert_eq!(
            parse(b"i1e"),
            Err(WireError::NotADictionary { found: "integer" })
        );
        assert!(matches!(parse(b""), Err(WireError::Bencode(_))));
        assert_eq!(
            parse(b"d8:msg_typei9ee"),
            Ok(MetadataMessage::Unknown { msg_type: 9 })
        );
    }
}
