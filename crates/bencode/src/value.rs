//! The decoded tree: borrowed views into the input, each knowing its exact source bytes.

/// One decoded bencode value, borrowing from the input it was decoded from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value<'a> {
    pub(crate) raw: &'a [u8],
    pub(crate) offset: usize,
    pub(crate) kind: Kind<'a>,
}

/// The four kinds of bencode value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind<'a> {
    /// `i<digits>e`: a signed 64-bit integer.
    Int(i64),
    /// `<len>:<bytes>`: a byte string (not necessarily UTF-8).
    Bytes(&'a [u8]),
    /// `l...e`: a list.
    List(Vec<Value<'a>>),
    /// `d...e`: a dictionary with byte-string keys.
    Dict(Dict<'a>),
}

/// A decoded dictionary: its entries in the order they appeared in the input.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dict<'a> {
    pub(crate) entries: Vec<(&'a [u8], Value<'a>)>,
    pub(crate) canonical: bool,
}

impl<'a> Value<'a> {
    /// The exact bytes this value was decoded from (for the info-hash).
    #[must_use]
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// Offset of this value's first byte in the decoded input.
    #[must_use]
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Which kind of value this is, with its contents.
    #[must_use]
    pub fn kind(&self) -> &Kind<'a> {
        &self.kind
    }

    /// The integer, if this is one.
    #[must_use]
    pub fn as_int(&self) -> Option<i64> {
        match self.kind {
            Kind::Int(n) => Some(n),
            _ => None,
        }
    }

    /// The byte string, if this is one.
    #[must_use]
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match self.kind {
            Kind::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The byte string as UTF-8 text, if this is a byte string holding valid UTF-8.
    #[must_use]
    pub fn as_str(&self) -> Option<&'a str> {
        self.as_bytes().and_then(|b| std::str::from_utf8(b).ok())
    }

    /// The list items, if this is a list.
    #[must_use]
    pub fn as_list(&self) -> Option<&[Value<'a>]> {
        match &self.kind {
            Kind::List(items) => Some(items),
            _ => None,
        }
    }

    /// The dictionary, if this is one.
    #[must_use]
    pub fn as_dict(&self) -> Option<&Dict<'a>> {
        match &self.kind {
            Kind::Dict(d) => Some(d),
            _ => None,
        }
    }

    /// A short name of this value's kind, for error messages.
    #[must_use]
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            Kind::Int(_) => "integer",
            Kind::Bytes(_) => "byte string",
            Kind::List(_) => "list",
            Kind::Dict(_) => "dictionary",
        }
    }

    /// Whether this value and everything inside it is in canonical form (dictionary keys
    /// sorted and unique). Integers and lengths are always canonical once decoded, since the
    /// decoder rejects leading zeros and `-0`.
    #[must_use]
    pub fn is_canonical(&self) -> bool {
        match &self.kind {
            Kind::Int(_) | Kind::Bytes(_) => true,
            Kind::List(items) => items.iter().all(Value::is_canonical),
            Kind::Dict(d) => d.canonical && d.entries.iter().all(|(_, v)| v.is_canonical()),
        }
    }
}

impl<'a> Dict<'a> {
    /// The value of the first entry with this key.
    #[must_use]
    pub fn get(&self, key: &[u8]) -> Option<&Value<'a>> {
        self.entries.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The entries in input order.
    pub fn iter(&self) -> impl Iterator<Item = (&'a [u8], &Value<'a>)> + '_ {
        self.entries.iter().map(|(k, v)| (*k, v))
    }

    /// Number of entries (duplicates counted).
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the dictionary has no entries.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether this dictionary's own keys are strictly ascending (sorted and unique), as the
    /// canonical form requires. Nested values are not considered; see [`Value::is_canonical`].
    #[must_use]
    pub fn is_canonical(&self) -> bool {
        self.canonical
    }
}
