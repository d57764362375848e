//! Turning the file names a torrent *claims* into paths that are safe to create under a
//! download directory on any platform: per-component sanitising, and renaming of files whose
//! paths collide once sanitised.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use crate::error::Warning;
use crate::files::FileEntry;

/// Longest path component kept, in bytes (the common file-system limit).
pub const COMPONENT_LEN_MAX: usize = 255;

/// Makes one path component safe to create inside a directory, on every platform, with the
/// same result on every platform (so a torrent's layout does not depend on the OS):
///
/// 1. `/`, `\`, `:` (drive prefixes like `C:`, NTFS streams), NUL and other ASCII control
///    characters are replaced with `_`; a component can therefore never name another
///    directory or a drive.
/// 2. Windows device names (`CON`, `PRN`, `AUX`, `NUL`, `COM0`-`COM9`, `LPT0`-`LPT9`, also
///    with superscript digits, `CONIN$`, `CONOUT$`), with or without an extension and in any
///    case, get a `_` prefix: `CON.txt` becomes `_CON.txt`.
/// 3. Components longer than [`COMPONENT_LEN_MAX`] bytes are shortened, keeping a short
///    extension.
/// 4. Trailing dots and spaces are removed (Windows drops them silently, which would turn
///    `.. ` into `..`).
///
/// An **empty result means the component must be dropped**: that is what happens to `""`,
/// `.`, `..` and `...`. Characters that are merely invalid on Windows (`<>"|?*`) are kept:
/// they cannot lead outside the download directory, and replacing them would rename
/// legitimate files on every other platform.
#[must_use]
pub fn sanitize_component(component: &str) -> Cow<'_, str> {
    if is_clean(component) {
        return Cow::Borrowed(component);
    }
    let mut s: String = component
        .chars()
        .map(|c| if is_forbidden_char(c) { '_' } else { c })
        .collect();
    if is_device_name(&s) {
        s.insert(0, '_');
    }
    shorten(&mut s);
    let kept = s.trim_end_matches(['.', ' ']).len();
    s.truncate(kept);
    Cow::Owned(s)
}

/// Sanitises every component of a path with [`sanitize_component`] and drops the empty
/// results. The returned path is never empty (a path with nothing left becomes `["_"]`), never
/// absolute and never contains `..`.
#[must_use]
pub fn sanitize_path<S: AsRef<str>>(components: &[S]) -> Vec<String> {
    let mut out: Vec<String> = components
        .iter()
        .map(|c| sanitize_component(c.as_ref()))
        .filter(|c| !c.is_empty())
        .map(Cow::into_owned)
        .collect();
    if out.is_empty() {
        out.push("_".to_owned());
    }
    out
}

/// Renames files whose paths collide — compared case-insensitively, so the layout also works
/// on case-insensitive file systems — or whose path equals another file's directory. The
/// first file keeps its path (directories always win over files); later ones become
/// `stem.N.ext` with the smallest free `N`. Pad files are skipped: they are never written.
pub(crate) fn disambiguate(files: &mut [FileEntry], warnings: &mut Vec<Warning>) {
    let mut dirs: HashSet<String> = HashSet::new();
    for file in files.iter().filter(|f| !f.is_pad()) {
        let mut key = String::new();
        for component in file.path.iter().take(file.path.len().saturating_sub(1)) {
            push_key(&mut key, component);
            dirs.insert(key.clone());
        }
    }
    let mut used: HashSet<String> = HashSet::with_capacity(files.len());
    let mut next_suffix: HashMap<String, u64> = HashMap::new();
    for (index, file) in files.iter_mut().enumerate() {
        if file.is_pad() {
            continue;
        }
        let key = path_key(&file.path);
        if !dirs.contains(&key) && used.insert(key.clone()) {
            continue;
        }
        let Some(last) = file.path.last().cloned() else {
            continue;
        };
        let parent_key = path_key(&file.path[..file.path.len() - 1]);
        let n = next_suffix.entry(key).or_insert(1);
        // Candidates for one colliding path are distinct (they differ in N), and each one
        // rejected is a member of `dirs` or `used`, so this ends within
        // `dirs.len() + used.len() + 1` attempts.
        loop {
            let candidate = with_suffix(&last, *n);
            *n += 1;
            let mut candidate_key = parent_key.clone();
            push_key(&mut candidate_key, &candidate);
            if !dirs.contains(&candidate_key) && used.insert(candidate_key) {
                let original = file.path.join("/");
                if let Some(slot) = file.path.last_mut() {
                    *slot = candidate;
                }
                warnings.push(Warning::DuplicatePathRenamed {
                    file_index: index,
                    original,
                    renamed: file.path.join("/"),
                });
                break;
            }
        }
    }
}

/// Whether `component` is already what [`sanitize_component`] would return.
fn is_clean(component: &str) -> bool {
    !component.is_empty()
        && component.len() <= COMPONENT_LEN_MAX
        && !component.chars().any(is_forbidden_char)
        && !component.ends_with(['.', ' '])
        && !is_device_name(component)
}

fn is_forbidden_char(c: char) -> bool {
    matches!(c, '/' | '\\' | ':' | '\u{7f}') || c < ' '
}

/// Windows device names, matched on the part before the first dot, trailing spaces ignored.
fn is_device_name(component: &str) -> bool {
    let stem = component.split('.').next().unwrap_or_default();
    let stem = stem.trim_end_matches(' ');
    let upper = stem.to_uppercase();
    match upper.as_str() {
        "CON" | "PRN" | "AUX" | "NUL" | "CONIN$" | "CONOUT$" => true,
        _ => {
            let (Some(prefix), Some(digit)) = (upper.get(..3), upper.get(3..)) else {
                return false;
            };
            (prefix == "COM" || prefix == "LPT")
                && digit.chars().count() == 1
                && digit
                    .chars()
                    .all(|d| d.is_ascii_digit() || "¹²³".contains(d))
        }
    }
}

/// Shortens `s` to at most [`COMPONENT_LEN_MAX`] bytes on a character boundary, keeping an
/// extension of up to 16 bytes.
fn shorten(s: &mut String) {
    if s.len() <= COMPONENT_LEN_MAX {
        return;
    }
    let ext = match s.rfind('.') {
        Some(dot) if dot > 0 && s.len() - dot <= 16 => s[dot..].to_owned(),
        _ => String::new(),
    };
    let mut cut = COMPONENT_LEN_MAX - ext.len();
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.truncate(cut);
    s.push_str(&ext);
}

/// `stem.ext` → `stem.N.ext`; a name without an extension (or a dot-file) gets `.N` appended.
/// The stem is shortened if the result would exceed [`COMPONENT_LEN_MAX`].
fn with_suffix(name: &str, n: u64) -> String {
    let (stem, ext) = match name.rfind('.') {
        Some(dot) if dot > 0 => name.split_at(dot),
        _ => (name, ""),
    };
    let suffix = format!(".{n}");
    let mut cut = COMPONENT_LEN_MAX
        .saturating_sub(suffix.len() + ext.len())
        .min(stem.len());
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{suffix}{ext}", &stem[..cut])
}

fn path_key(path: &[String]) -> String {
    let mut key = String::new();
    for component in path {
        push_key(&mut key, component);
    }
    key
}

fn push_key(key: &mut String, component: &str) {
    if !key.is_empty() {
        key.push('/');
    }
    key.push_str(&component.to_lowercase());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_components_are_borrowed() {
        for ok in [
            "a", "file.txt", "..a", ".hidden", "CONSOLE", "COM10", "x?y", "ü.mkv", "éé", "ÉÉÉ.x",
        ] {
            assert!(matches!(sanitize_component(ok), Cow::Borrowed(_)), "{ok}");
        }
    }

    #[test]
    fn traversal_and_separators() {
        assert_eq!(sanitize_component(".."), "");
        assert_eq!(sanitize_component("."), "");
        assert_eq!(sanitize_component(""), "");
        assert_eq!(sanitize_component("..  "), "");
        assert_eq!(sanitize_component("a/../../b"), "a_.._.._b");
        assert_eq!(sanitize_component("/abs"), "_abs");
        assert_eq!(sanitize_component("C:\\x"), "C__x");
        assert_eq!(sanitize_component("a\0b"), "a_b");
        assert_eq!(sanitize_component("name. . "), "name");
    }

    #[test]
    fn device_names() {
        assert_eq!(sanitize_component("CON"), "_CON");
        assert_eq!(sanitize_component("con.txt"), "_con.txt");
        assert_eq!(sanitize_component("Lpt9.tar.gz"), "_Lpt9.tar.gz");
        assert_eq!(sanitize_component("COM²"), "_COM²");
        assert_eq!(sanitize_component("nul .txt"), "_nul .txt");
        assert_eq!(sanitize_component("AUX."), "_AUX");
    }

    #[test]
    fn long_components_keep_extension_and_char_boundaries() {
        let long = format!("{}.mkv", "é".repeat(200));
        let s = sanitize_component(&long);
        assert!(s.len() <= COMPONENT_LEN_MAX);
        assert!(s.ends_with(".mkv"));
        let no_ext = "x".repeat(300);
        assert_eq!(sanitize_component(&no_ext).len(), COMPONENT_LEN_MAX);
    }

    #[test]
    fn sanitize_path_never_empty() {
        assert_eq!(
            sanitize_path(&["..", "..", "etc", "passwd"]),
            ["etc", "passwd"]
        );
        assert_eq!(sanitize_path(&["..", "."]), ["_"]);
        assert_eq!(sanitize_path::<&str>(&[]), ["_"]);
    }

    #[test]
    fn suffixes() {
        assert_eq!(with_suffix("a.txt", 1), "a.1.txt");
        assert_eq!(with_suffix("a", 2), "a.2");
        assert_eq!(with_suffix(".bashrc", 3), ".bashrc.3");
        let long = format!("{}.mkv", "é".repeat(126));
        let renamed = with_suffix(&long, 7);
        assert!(renamed.len() <= COMPONENT_LEN_MAX && renamed.ends_with("é.7.mkv"));
    }
}
