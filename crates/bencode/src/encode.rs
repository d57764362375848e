//! Canonical encoding: an owned value tree with sorted dictionaries, and the primitive writers
//! for code that emits bencode directly into a buffer.

use std::collections::BTreeMap;

use crate::value::{Kind, Value};

/// An owned bencode value. Dictionaries are ordered maps, so [`OwnedValue::encode`] always
/// produces the canonical form (keys sorted as raw bytes, no duplicates).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OwnedValue {
    /// A signed 64-bit integer.
    Int(i64),
    /// A byte string.
    Bytes(Vec<u8>),
    /// A list.
    List(Vec<OwnedValue>),
    /// A dictionary.
    Dict(BTreeMap<Vec<u8>, OwnedValue>),
}

impl OwnedValue {
    /// The canonical encoding of this value.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// Appends the canonical encoding of this value to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Self::Int(n) => write_int(out, *n),
            Self::Bytes(b) => write_bytes(out, b),
            Self::List(items) => {
                out.push(b'l');
                for item in items {
                    item.encode_into(out);
                }
                out.push(b'e');
            }
            Self::Dict(map) => {
                out.push(b'd');
                for (k, v) in map {
                    write_bytes(out, k);
                    v.encode_into(out);
                }
                out.push(b'e');
            }
        }
    }

    /// A byte string value from anything byte-like.
    pub fn bytes(b: impl Into<Vec<u8>>) -> Self {
        Self::Bytes(b.into())
    }

    /// An empty dictionary, to fill with [`OwnedValue::insert`].
    #[must_use]
    pub fn dict() -> Self {
        Self::Dict(BTreeMap::new())
    }

    /// Inserts `key => value` if this is a dictionary (other kinds are left unchanged) and
    /// returns `self` for chaining.
    #[must_use]
    pub fn insert(mut self, key: impl Into<Vec<u8>>, value: OwnedValue) -> Self {
        if let Self::Dict(map) = &mut self {
            map.insert(key.into(), value);
        }
        self
    }
}

impl From<&Value<'_>> for OwnedValue {
    /// Copies a decoded value. Where a decoded dictionary repeats a key, the first entry wins,
    /// matching [`Dict::get`](crate::Dict::get).
    fn from(value: &Value<'_>) -> Self {
        match value.kind() {
            Kind::Int(n) => Self::Int(*n),
            Kind::Bytes(b) => Self::Bytes(b.to_vec()),
            Kind::List(items) => Self::List(items.iter().map(Self::from).collect()),
            Kind::Dict(d) => {
                let mut map = BTreeMap::new();
                for (k, v) in d.iter() {
                    map.entry(k.to_vec()).or_insert_with(|| Self::from(v));
                }
                Self::Dict(map)
            }
        }
    }
}

impl From<i64> for OwnedValue {
    fn from(n: i64) -> Self {
        Self::Int(n)
    }
}

impl From<&str> for OwnedValue {
    fn from(s: &str) -> Self {
        Self::Bytes(s.as_bytes().to_vec())
    }
}

impl From<String> for OwnedValue {
    fn from(s: String) -> Self {
        Self::Bytes(s.into_bytes())
    }
}

/// Appends `i<n>e`.
pub fn write_int(out: &mut Vec<u8>, n: i64) {
    out.push(b'i');
    write_decimal(out, n.unsigned_abs(), n < 0);
    out.push(b'e');
}

/// Appends `<len>:<bytes>`.
pub fn write_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    write_decimal(out, bytes.len() as u64, false);
    out.push(b':');
    out.extend_from_slice(bytes);
}

/// Appends a decimal number without allocating.
fn write_decimal(out: &mut Vec<u8>, mut n: u64, negative: bool) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if negative {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[i..]);
}
