//! Typed access to bencode dictionary fields, shared by the info and metainfo parsers: required
//! fields become typed errors, optional fields with the wrong type become warnings.

use bitswarm_bencode::{Dict, Value};

use crate::error::{MetainfoError, Warning};

/// Parsing context: collects warnings, reporting each kind of per-field oddity once so that a
/// torrent with a million odd files cannot produce a million identical warnings.
#[derive(Debug, Default)]
pub(crate) struct Ctx {
    pub(crate) warnings: Vec<Warning>,
    once: Vec<&'static str>,
}

impl Ctx {
    pub(crate) fn warn(&mut self, warning: Warning) {
        self.warnings.push(warning);
    }

    /// Reports a warning about `field` only the first time it happens.
    pub(crate) fn warn_once(&mut self, field: &'static str, warning: Warning) {
        if !self.once.contains(&field) {
            self.once.push(field);
            self.warnings.push(warning);
        }
    }

    pub(crate) fn ignored(&mut self, field: &'static str, reason: &'static str) {
        self.warn_once(field, Warning::FieldIgnored { field, reason });
    }

    /// A byte string as text; bytes that are not UTF-8 are replaced (with a warning).
    pub(crate) fn lossy(&mut self, bytes: &[u8], field: &'static str) -> String {
        if let Ok(s) = std::str::from_utf8(bytes) {
            s.to_owned()
        } else {
            self.warn_once(field, Warning::InvalidUtf8 { field });
            String::from_utf8_lossy(bytes).into_owned()
        }
    }

    /// An optional text field, preferring `key.utf-8` when present and valid. Absent, or of
    /// the wrong type (with a warning): `None`.
    pub(crate) fn opt_text(
        &mut self,
        dict: &Dict<'_>,
        key: &'static str,
        utf8_key: Option<&'static str>,
    ) -> Option<String> {
        if let Some(text) = utf8_key.and_then(|k| self.utf8_variant(dict, k)) {
            return Some(text);
        }
        let value = dict.get(key.as_bytes())?;
        if let Some(bytes) = value.as_bytes() {
            Some(self.lossy(bytes, key))
        } else {
            self.ignored(key, "not a byte string");
            None
        }
    }

    /// The `*.utf-8` variant of a field, if present and valid UTF-8 (else a warning).
    pub(crate) fn utf8_variant(&mut self, dict: &Dict<'_>, key: &'static str) -> Option<String> {
        let value = dict.get(key.as_bytes())?;
        if let Some(s) = value.as_str() {
            return Some(s.to_owned());
        }
        self.ignored(key, "not a valid UTF-8 string");
        None
    }

    /// An optional integer field; the wrong type gives a warning and `None`.
    pub(crate) fn opt_int(&mut self, dict: &Dict<'_>, key: &'static str) -> Option<i64> {
        let value = dict.get(key.as_bytes())?;
        let n = value.as_int();
        if n.is_none() {
            self.ignored(key, "not an integer");
        }
        n
    }
}

/// A required field.
pub(crate) fn required<'d, 'a>(
    dict: &'d Dict<'a>,
    key: &[u8],
    field: &'static str,
) -> Result<&'d Value<'a>, MetainfoError> {
    dict.get(key).ok_or(MetainfoError::MissingField { field })
}

/// A required integer field.
pub(crate) fn required_int(
    dict: &Dict<'_>,
    key: &[u8],
    field: &'static str,
) -> Result<i64, MetainfoError> {
    required(dict, key, field)?
        .as_int()
        .ok_or(MetainfoError::WrongType {
            field,
            expected: "an integer",
        })
}

/// A required byte-string field.
pub(crate) fn required_bytes<'a>(
    dict: &Dict<'a>,
    key: &[u8],
    field: &'static str,
) -> Result<&'a [u8], MetainfoError> {
    required(dict, key, field)?
        .as_bytes()
        .ok_or(MetainfoError::WrongType {
            field,
            expected: "a byte string",
        })
}

/// Whether any dictionary in `value` (at any depth) repeats a key. Only non-canonical
/// dictionaries can, so canonical ones are skipped without sorting.
pub(crate) fn has_duplicate_keys(value: &Value<'_>) -> bool {
    if let Some(items) = value.as_list() {
        return items.iter().any(has_duplicate_keys);
    }
    let Some(dict) = value.as_dict() else {
        return false;
    };
    if !dict.is_canonical() {
        let mut keys: Vec<&[u8]> = dict.iter().map(|(k, _)| k).collect();
        keys.sort_unstable();
        if keys.windows(2).any(|w| w[0] == w[1]) {
            return true;
        }
    }
    dict.iter().any(|(_, v)| has_duplicate_keys(v))
}
