//! The extension handshake (BEP 10, extended id 0): which extensions a peer supports under
//! which ids, and what it tells about itself (listen port, client, our address as it sees it,
//! request queue depth, metadata size).
//!
//! Parsing is lenient, as BEP 10 asks: every item is optional and an item with a wrong type
//! or an out-of-range value is treated as absent (clients in the wild send `p` = 0, `yourip`
//! of odd sizes, negative sizes). Only a payload that is not a bencoded dictionary is an error.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bitswarm_bencode::{Dict, OwnedValue, Value};
use bytes::Bytes;

use super::{as_dict, decode_dict, HANDSHAKE_ID};
use crate::error::WireError;
use crate::message::Message;

/// Longest client name (`v`) kept, in bytes; a longer one is ignored.
pub const CLIENT_NAME_LEN_MAX: usize = 256;

/// The extension handshake dictionary, with the items this engine uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtendedHandshake {
    /// `m`: extension names and the extended ids the sender wants them sent with. An id of 0
    /// means the extension is disabled (a later handshake may disable one this way); entries
    /// whose name is not UTF-8 or whose id is not in 0..=255 are dropped.
    pub extensions: BTreeMap<String, u8>,
    /// `p`: the sender's TCP listen port (never 0).
    pub port: Option<u16>,
    /// `v`: the sender's client name and version (lossily decoded UTF-8).
    pub client: Option<String>,
    /// `yourip`: the receiver's address as the sender sees it.
    pub your_ip: Option<IpAddr>,
    /// `ipv4`: the sender's IPv4 address.
    pub ipv4: Option<Ipv4Addr>,
    /// `ipv6`: the sender's IPv6 address.
    pub ipv6: Option<Ipv6Addr>,
    /// `reqq`: how many outstanding requests the sender queues without dropping (positive).
    pub request_queue_len: Option<u32>,
    /// `metadata_size` (BEP 9): size of the info dictionary in bytes (positive).
    pub metadata_size: Option<u64>,
    /// `upload_only` (BEP 21): the sender only uploads (a seed or a partial seed).
    pub upload_only: Option<bool>,
}

impl ExtendedHandshake {
    /// Parses the payload of an extended message with id 0.
    pub fn parse(payload: &[u8]) -> Result<Self, WireError> {
        let value = decode_dict(payload)?;
        let dict = as_dict(&value)?;
        Ok(Self {
            extensions: parse_m(dict),
            port: positive_int(dict, b"p").and_then(|n| u16::try_from(n).ok()),
            client: client_name(dict),
            your_ip: dict
                .get(b"yourip")
                .and_then(Value::as_bytes)
                .and_then(ip_from),
            ipv4: fixed_bytes::<4>(dict, b"ipv4").map(Ipv4Addr::from),
            ipv6: fixed_bytes::<16>(dict, b"ipv6").map(Ipv6Addr::from),
            request_queue_len: positive_int(dict, b"reqq").map(saturate_u32),
            metadata_size: positive_int(dict, b"metadata_size").and_then(|n| u64::try_from(n).ok()),
            upload_only: dict
                .get(b"upload_only")
                .and_then(Value::as_int)
                .map(|n| n != 0),
        })
    }

    /// The id the sender wants extension `name` sent with, if it supports it (non-zero).
    #[must_use]
    pub fn extension_id(&self, name: &str) -> Option<u8> {
        self.extensions.get(name).copied().filter(|&id| id != 0)
    }

    /// The canonical bencoding of this handshake (`m` is always present).
    #[must_use]
    pub fn encode(&self) -> Bytes {
        let m = self
            .extensions
            .iter()
            .map(|(name, id)| (name.as_bytes().to_vec(), OwnedValue::Int(i64::from(*id))))
            .collect();
        let int = |n: i64| OwnedValue::Int(n);
        let mut dict = BTreeMap::new();
        dict.insert(b"m".to_vec(), OwnedValue::Dict(m));
        put(&mut dict, "p", self.port.map(|p| int(p.into())));
        put(&mut dict, "v", self.client.as_deref().map(OwnedValue::from));
        put(
            &mut dict,
            "yourip",
            self.your_ip.map(|ip| OwnedValue::Bytes(ip_bytes(ip))),
        );
        put(
            &mut dict,
            "ipv4",
            self.ipv4.map(|ip| OwnedValue::bytes(ip.octets())),
        );
        put(
            &mut dict,
            "ipv6",
            self.ipv6.map(|ip| OwnedValue::bytes(ip.octets())),
        );
        put(
            &mut dict,
            "reqq",
            self.request_queue_len.map(|n| int(n.into())),
        );
        let size = self
            .metadata_size
            .map(|n| i64::try_from(n).unwrap_or(i64::MAX));
        put(&mut dict, "metadata_size", size.map(int));
        put(
            &mut dict,
            "upload_only",
            self.upload_only.map(|b| int(b.into())),
        );
        Bytes::from(OwnedValue::Dict(dict).encode())
    }

    /// This handshake as an extended message (id 0).
    #[must_use]
    pub fn to_message(&self) -> Message {
        Message::Extended {
            id: HANDSHAKE_ID,
            payload: self.encode(),
        }
    }
}

fn put(dict: &mut BTreeMap<Vec<u8>, OwnedValue>, key: &str, value: Option<OwnedValue>) {
    if let Some(value) = value {
        dict.insert(key.as_bytes().to_vec(), value);
    }
}

fn parse_m(dict: &Dict<'_>) -> BTreeMap<String, u8> {
    let mut extensions = BTreeMap::new();
    let Some(m) = dict.get(b"m").and_then(|v| v.as_dict()) else {
        return extensions;
    };
    for (name, id) in m.iter() {
        let (Ok(name), Some(id)) = (
            std::str::from_utf8(name),
            id.as_int().and_then(|n| u8::try_from(n).ok()),
        ) else {
            continue;
        };
        extensions.entry(name.to_owned()).or_insert(id);
    }
    extensions
}

fn client_name(dict: &Dict<'_>) -> Option<String> {
    let bytes = dict.get(b"v")?.as_bytes()?;
    if bytes.len() > CLIENT_NAME_LEN_MAX {
        return None;
    }
    // Checked again after replacement characters (3 bytes each) may have grown it, so that
    // what we keep is also what we would accept back.
    let name = String::from_utf8_lossy(bytes).into_owned();
    (name.len() <= CLIENT_NAME_LEN_MAX).then_some(name)
}

fn positive_int(dict: &Dict<'_>, key: &[u8]) -> Option<i64> {
    dict.get(key)?.as_int().filter(|&n| n > 0)
}

fn saturate_u32(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn fixed_bytes<const N: usize>(dict: &Dict<'_>, key: &[u8]) -> Option<[u8; N]> {
    dict.get(key)?.as_bytes()?.try_into().ok()
}

fn ip_from(bytes: &[u8]) -> Option<IpAddr> {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        return Some(IpAddr::from(v4));
    }
    <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from)
}

fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(ip) => ip.octets().to_vec(),
        IpAddr::V6(ip) => ip.octets().to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example from BEP 10, whose `v` is "µTorrent 1.2" in UTF-8.
    #[test]
    fn bep10_example() {
        let raw = b"d1:md11:LT_metadatai1e6:ut_pexi2ee1:pi6881e1:v13:\xc2\xb5Torrent 1.2e";
        let hs = ExtendedHandshake::parse(raw).unwrap();
        assert_eq!(hs.extension_id("LT_metadata"), Some(1));
        assert_eq!(hs.extension_id("ut_pex"), Some(2));
        assert_eq!(hs.extension_id("ut_metadata"), None);
        assert_eq!(hs.port, Some(6881));
        assert_eq!(hs.client.as_deref(), Some("\u{b5}Torrent 1.2"));
        assert_eq!(&hs.encode()[..], &raw[..], "the example is canonical");
    }

    /// What libtorrent 2.0 sends, field for field.
    #[test]
    fn libtorrent_style_handshake() {
        let raw = b"d12:complete_agoi-1e1:md11:lt_donthavei7e10:share_modei8e11:upload_onlyi3e12:ut_holepunchi4e11:ut_metadatai2e6:ut_pexi1ee13:metadata_sizei5202e4:reqqi500e11:upload_onlyi1e1:v18:libtorrent 2.0.9.06:yourip4:\x7f\0\0\x01e";
        let hs = ExtendedHandshake::parse(raw).unwrap();
        assert_eq!(hs.extension_id("ut_metadata"), Some(2));
        assert_eq!(hs.extension_id("ut_pex"), Some(1));
        assert_eq!(hs.metadata_size, Some(5202));
        assert_eq!(hs.request_queue_len, Some(500));
        assert_eq!(hs.upload_only, Some(true));
        assert_eq!(hs.your_ip, Some(IpAddr::from([127, 0, 0, 1])));
        assert_eq!(hs.port, None);
        assert_eq!(hs.extensions.len(), 6);
    }

    #[test]
    fn odd_items_are_ignored() {
        let raw = b"d1:md1:ai0e1:bi300e1:ci-1e1:dlee1:pi0e4:reqqi-5e6:yourip3:abc4:ipv44:\x0a\0\0\x014:ipv63:xyze";
        let hs = ExtendedHandshake::parse(raw).unwrap();
        assert_eq!(hs.extensions.len(), 1);
        assert_eq!(hs.extensions.get("a"), Some(&0));
        assert_eq!(hs.extension_id("a"), None, "id 0 means disabled");
        assert_eq!(
            (hs.port, hs.request_queue_len, hs.your_ip, hs.ipv6),
            (None, None, None, None)
        );
        assert_eq!(hs.ipv4, Some(Ipv4Addr::new(10, 0, 0, 1)));
    }

    #[test]
    fn not_a_dictionary() {
        assert_eq!(
            ExtendedHandshake::parse(b"li1ee"),
            Err(WireError::NotADictionary { found: "list" })
        );
        assert!(matches!(
            ExtendedHandshake::parse(b"d1:m"),
            Err(WireError::Bencode(_))
        ));
    }

    #[test]
    fn round_trip_all_fields() {
        let hs = ExtendedHandshake {
            extensions: [("ut_metadata".to_owned(), 3), ("ut_pex".to_owned(), 1)].into(),
            port: Some(51413),
            client: Some("bitswarm 0.1.0".to_owned()),
            your_ip: Some("2001:db8::1".parse().unwrap()),
            ipv4: Some(Ipv4Addr::new(192, 0, 2, 7)),
            ipv6: Some("2001:db8::2".parse().unwrap()),
            request_queue_len: Some(250),
            metadata_size: Some(31235),
            upload_only: Some(false),
        };
        let message = hs.to_message();
        let Message::Extended { id: 0, payload } = message else {
            panic!("not an extension handshake");
        };
        assert_eq!(ExtendedHandshake::parse(&payload), Ok(hs));
    }
}
