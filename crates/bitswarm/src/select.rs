//! `--files` selections: indices, index ranges and glob patterns over a torrent's file paths.

use anyhow::{bail, Result};

/// Which files to download; empty means all.
#[derive(Debug, Default)]
pub struct FileSelection {
    ranges: Vec<(usize, usize)>,
    globs: Vec<String>,
}

impl FileSelection {
    /// Parses `--files` values: comma-separated `N`, `N-M` or glob patterns (`*`, `?`).
    pub fn parse(specs: &[String]) -> Result<Self> {
        let mut selection = Self::default();
        for item in specs
            .iter()
            .flat_map(|s| s.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            if item.chars().all(|c| c.is_ascii_digit() || c == '-') {
                let (a, b) = item.split_once('-').unwrap_or((item, item));
                let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) else {
                    bail!("--files: '{item}' is neither an index, a range like 2-5, nor a pattern");
                };
                if a > b {
                    bail!("--files: range '{item}' is backwards");
                }
                selection.ranges.push((a, b));
            } else {
                selection.globs.push(item.to_owned());
            }
        }
        Ok(selection)
    }

    /// Whether file `index` with path `path` (components joined by `/`) is selected.
    pub fn selects(&self, index: usize, path: &str) -> bool {
        if self.ranges.is_empty() && self.globs.is_empty() {
            return true;
        }
        self.ranges.iter().any(|&(a, b)| (a..=b).contains(&index))
            || self
                .globs
                .iter()
                .any(|g| glob_match(g.as_bytes(), path.as_bytes()))
    }
}

/// `*` matches any run of characters (including `/`), `?` any one character.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_ranges_and_globs() {
        let s = FileSelection::parse(&["0,3-4".into(), "*.iso".into()]).unwrap();
        assert!(s.selects(0, "a.txt"));
        assert!(!s.selects(1, "b.txt"));
        assert!(s.selects(4, "c.txt"));
        assert!(s.selects(9, "dir/linux.iso"));
        assert!(!s.selects(9, "dir/linux.iso.txt"));
        assert!(FileSelection::parse(&[]).unwrap().selects(7, "x"));
        assert!(FileSelection::parse(&["5-2".into()]).is_err());
    }

    #[test]
    fn glob_matching() {
        assert!(glob_match(b"a?c", b"abc"));
        assert!(glob_match(b"*", b""));
        assert!(glob_match(b"*b*", b"aaabccc"));
        assert!(!glob_match(b"*b", b"aaabccc"));
        assert!(glob_match(b"docs/*", b"docs/deeper/c.bin"));
    }
}
