//! Which swarms a tracker serves: everyone's (open), only listed info-hashes (allow-list), or
//! all but listed ones (deny-list). The list is parsed from text here; reading the file and
//! swapping in a reloaded list is the runtime's job.

use std::collections::HashSet;

use crate::error::TrackerError;
use crate::types::InfoHash;

/// How the list is applied.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum AccessMode {
    /// Every info-hash is served; the list is ignored.
    #[default]
    Open,
    /// Only listed info-hashes are served.
    Allow,
    /// Listed info-hashes are refused.
    Deny,
}

/// An access mode with its set of info-hashes.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct AccessList {
    mode: AccessMode,
    hashes: HashSet<InfoHash>,
}

impl AccessList {
    /// Serves every swarm.
    #[must_use]
    pub fn open() -> Self {
        Self::default()
    }

    /// A list in `mode` with the given info-hashes.
    #[must_use]
    pub fn new(mode: AccessMode, hashes: impl IntoIterator<Item = InfoHash>) -> Self {
        Self {
            mode,
            hashes: hashes.into_iter().collect(),
        }
    }

    /// Parses `text`: one 40-digit hexadecimal info-hash per line; blank lines and lines
    /// starting with `#` are skipped, surrounding whitespace ignored. Any other line is an
    /// error naming it, so a typo never silently opens or closes a swarm.
    pub fn parse(mode: AccessMode, text: &str) -> Result<Self, TrackerError> {
        let mut hashes = HashSet::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let hash =
                InfoHash::from_hex(line).ok_or(TrackerError::AccessListLine { line: i + 1 })?;
            hashes.insert(hash);
        }
        Ok(Self { mode, hashes })
    }

    /// The mode.
    #[must_use]
    pub fn mode(&self) -> AccessMode {
        self.mode
    }

    /// Number of listed info-hashes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether no info-hash is listed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// Whether announces and scrapes for `info_hash` are served.
    #[must_use]
    pub fn permits(&self, info_hash: &InfoHash) -> bool {
        match self.mode {
            AccessMode::Open => true,
            AccessMode::Allow => self.hashes.contains(info_hash),
            AccessMode::Deny => !self.hashes.contains(info_hash),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0123456789abcdef0123456789abcdef01234567";
    const B: &str = "89ABCDEF0123456789ABCDEF0123456789ABCDEF";

    #[test]
    fn modes() {
        let text = format!("# swarms we host\n{A}\n\n  {B}  \n");
        let a = InfoHash::from_hex(A).unwrap();
        let c = InfoHash::from_bytes([7; 20]);
        let allow = AccessList::parse(AccessMode::Allow, &text).unwrap();
        assert_eq!(allow.len(), 2);
        assert!(allow.permits(&a) && !allow.permits(&c));
        let deny = AccessList::parse(AccessMode::Deny, &text).unwrap();
        assert!(!deny.permits(&a) && deny.permits(&c));
        assert!(AccessList::parse(AccessMode::Open, &text)
            .unwrap()
            .permits(&a));
    }

    #[test]
    fn bad_line_is_named() {
        let text = format!("{A}\nnot-a-hash\n");
        assert_eq!(
            AccessList::parse(AccessMode::Allow, &text),
            Err(TrackerError::AccessListLine { line: 2 })
        );
        let short = &A[..39];
        assert_eq!(
            AccessList::parse(AccessMode::Allow, short),
            Err(TrackerError::AccessListLine { line: 1 })
        );
    }
}
