//! Crafted hostile torrents: every file path (and symlink target) must stay inside the download
//! directory, checked lexically and by actually creating each file under a temporary directory.
// Debug formatting shows hostile names with their control characters escaped; the extension
// checks compare against what the test itself wrote.
#![allow(
    clippy::unnecessary_debug_formatting,
    clippy::case_sensitive_file_extension_comparisons
)]

mod common;

use std::fs;
use std::path::{Component, Path, PathBuf};

use bitswarm_bencode::OwnedValue;
use bitswarm_metainfo::{Info, Metainfo, Warning};
use common::{file, file_raw, multi_info, single_info, torrent, with};

/// Parses, checks every path, creates every non-pad file under a fresh temporary directory
/// (`create_new`, so two files sharing a path fail the test) and returns the torrent.
fn check(bytes: &[u8]) -> Metainfo {
    let m = Metainfo::from_bytes(bytes).expect("hostile torrents are sanitised, not rejected");
    let dir = tempfile::tempdir().expect("temp dir");
    let root = fs::canonicalize(dir.path()).expect("canonical temp dir");
    for f in &m.info.files {
        assert_portable(&f.relative_path());
        let rel = m.info.file_path(f);
        assert_portable(&rel);
        let lexical = join_lexically(&root, &rel);
        assert!(lexical.starts_with(&root), "{rel:?} leaves the root");
        if let Some(target) = f.symlink_target() {
            assert_portable(&target);
            let torrent_root = if m.info.multi_file {
                root.join(&m.info.name)
            } else {
                root.clone()
            };
            assert!(join_lexically(&torrent_root, &target).starts_with(&torrent_root));
        }
        if !f.is_pad() {
            create_inside(&root, &rel);
        }
    }
    m
}

/// Every component is a plain name that no platform reads as a separator, drive, device,
/// current or parent directory.
fn assert_portable(rel: &Path) {
    assert!(rel.is_relative(), "{rel:?} is absolute");
    assert!(rel.components().next().is_some(), "empty path");
    for c in rel.components() {
        let Component::Normal(name) = c else {
            panic!("{rel:?} has a non-normal component {c:?}");
        };
        let name = name.to_str().expect("sanitised paths are UTF-8");
        assert!(!name.is_empty());
        assert!(!name.contains(['/', '\\', ':', '\0']), "{name:?}");
        assert!(
            !name.ends_with(['.', ' ']),
            "{name:?} ends with a dot or space"
        );
        let stem = name
            .split('.')
            .next()
            .unwrap_or_default()
            .trim_end()
            .to_uppercase();
        let device = ["CON", "PRN", "AUX", "NUL"].contains(&stem.as_str())
            || ((stem.starts_with("COM") || stem.starts_with("LPT"))
                && stem.len() == 4
                && stem.as_bytes()[3].is_ascii_digit());
        assert!(!device, "{name:?} is a Windows device name");
    }
}

fn join_lexically(root: &Path, rel: &Path) -> PathBuf {
    let mut p = root.to_path_buf();
    for c in rel.components() {
        match c {
            Component::ParentDir => {
                p.pop();
            }
            Component::Normal(n) => p.push(n),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return PathBuf::from("/"),
        }
    }
    p
}

fn create_inside(root: &Path, rel: &Path) {
    let full = root.join(rel);
    fs::create_dir_all(full.parent().expect("has a parent")).expect("create parent dirs");
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&full)
        .unwrap_or_else(|e| panic!("creating {full:?}: {e} (two files share a path?)"));
    let resolved = fs::canonicalize(&full).expect("canonicalize");
    assert!(
        resolved.starts_with(root),
        "{resolved:?} is outside {root:?}"
    );
}

fn paths(info: &Info) -> Vec<String> {
    info.files.iter().map(|f| f.path.join("/")).collect()
}

fn multi(files: Vec<OwnedValue>) -> Metainfo {
    check(&torrent(multi_info(b"t", files, 16384)))
}

#[test]
fn dotdot_etc_passwd() {
    let m = multi(vec![file(&["..", "..", "etc", "passwd"], 10)]);
    assert_eq!(paths(&m.info), ["etc/passwd"]);
    assert_eq!(
        m.info.file_path(&m.info.files[0]),
        Path::new("t/etc/passwd")
    );
    assert!(m.warnings.contains(&Warning::PathSanitised {
        file_index: Some(0),
        original: "../../etc/passwd".into(),
        sanitised: "etc/passwd".into(),
    }));
}

#[test]
fn absolute_paths_and_names() {
    let m = multi(vec![file(&["/abs"], 1), file(&["/", "etc", "x"], 1)]);
    assert_eq!(paths(&m.info), ["_abs", "_/etc/x"]);
    let single = check(&torrent(single_info(b"/etc/passwd", 5, 16384)));
    assert_eq!(single.info.name, "_etc_passwd");
    assert_eq!(paths(&single.info), ["_etc_passwd"]);
    assert!(single.warnings.iter().any(|w| matches!(
        w,
        Warning::PathSanitised {
            file_index: None,
            ..
        }
    )));
}

#[test]
fn windows_drive_prefixes() {
    let m = multi(vec![
        file(&["C:\\x"], 1),
        file(&["C:", "Windows", "win.ini"], 1),
    ]);
    assert_eq!(paths(&m.info), ["C__x", "C_/Windows/win.ini"]);
}

#[test]
fn traversal_inside_one_component() {
    let m = multi(vec![
        file(&["a/../../b"], 1),
        file(&["ok", "../../../c"], 1),
    ]);
    assert_eq!(paths(&m.info), ["a_.._.._b", "ok/.._.._.._c"]);
}

#[test]
fn backslash_traversal() {
    let m = multi(vec![file(&["..\\..\\windows\\system32\\evil.dll"], 1)]);
    assert_eq!(paths(&m.info), [".._.._windows_system32_evil.dll"]);
}

#[test]
fn windows_device_names() {
    let m = multi(vec![
        file(&["CON.txt"], 1),
        file(&["nul"], 1),
        file(&["aux", "Lpt1.tar.gz"], 1),
        file(&["com9 .log"], 1),
    ]);
    assert_eq!(
        paths(&m.info),
        ["_CON.txt", "_nul", "_aux/_Lpt1.tar.gz", "_com9 .log"]
    );
}

#[test]
fn nul_and_control_bytes() {
    let m = multi(vec![
        file_raw(&[b"a\0b"], 1),
        file_raw(&[b"\x1b[31mred"], 1),
        file_raw(&[b"\xff\xfe"], 1),
    ]);
    assert_eq!(paths(&m.info), ["a_b", "_[31mred", "\u{fffd}\u{fffd}"]);
    assert!(m.warnings.contains(&Warning::InvalidUtf8 {
        field: "info.files[].path"
    }));
}

#[test]
fn dotdot_as_name_becomes_the_info_hash() {
    let m = check(&torrent(multi_info(b"..", vec![file(&["x"], 3)], 16384)));
    assert_eq!(m.info.name, m.info_hash.to_hex());
    assert_eq!(
        m.info.file_path(&m.info.files[0]),
        Path::new(&m.info_hash.to_hex()).join("x")
    );
    let single = check(&torrent(single_info(b".", 3, 16384)));
    assert_eq!(single.info.name, single.info_hash.to_hex());
}

#[test]
fn empty_and_dot_components() {
    let m = multi(vec![
        file(&["", "x", ""], 1),
        file(&[], 1),
        file(&[".", ".."], 1),
        file(&["..  ", "y. . "], 1),
        file(&["..."], 1),
    ]);
    // `_` three times: the second and third are renamed.
    assert_eq!(paths(&m.info), ["x", "_", "_.1", "y", "_.2"]);
}

#[test]
fn symlink_pointing_outside() {
    let link = with(
        with(
            file(&["link"], 0),
            "symlink path",
            OwnedValue::List(
                ["..", "..", "..", "etc", "shadow"]
                    .iter()
                    .map(|c| OwnedValue::from(*c))
                    .collect(),
            ),
        ),
        "attr",
        OwnedValue::from("l"),
    );
    let abs = with(
        with(
            file(&["abs"], 0),
            "symlink path",
            OwnedValue::List(vec![OwnedValue::from("/etc/shadow")]),
        ),
        "attr",
        OwnedValue::from("l"),
    );
    let up = with(
        with(
            file(&["up"], 0),
            "symlink path",
            OwnedValue::List(vec![OwnedValue::from("..")]),
        ),
        "attr",
        OwnedValue::from("l"),
    );
    let m = multi(vec![link, abs, up, file(&["data"], 5)]);
    let f = &m.info.files;
    assert_eq!(
        f[0].symlink_path.as_deref(),
        Some(&["etc".to_owned(), "shadow".to_owned()][..])
    );
    assert_eq!(
        f[1].symlink_path.as_deref(),
        Some(&["_etc_shadow".to_owned()][..])
    );
    // Nothing left: no symlink at all (a link to the root would be a loop).
    assert_eq!(f[2].symlink_path, None);
    assert!(!f[2].attr.symlink);
    assert!(m
        .warnings
        .contains(&Warning::SymlinkWithoutTarget { file_index: 2 }));
}

#[test]
fn collisions_are_renamed_case_insensitively() {
    let m = multi(vec![
        file(&["a.txt"], 1),
        file(&["A.TXT"], 1),
        file(&["a.txt"], 1),
        file(&["sub"], 1),
        file(&["sub", "f"], 1),
        file(&["x", "..", "a.txt"], 1),
    ]);
    assert_eq!(
        paths(&m.info),
        ["a.txt", "A.1.TXT", "a.2.txt", "sub.1", "sub/f", "x/a.txt"]
    );
    let renamed = m
        .warnings
        .iter()
        .filter(|w| matches!(w, Warning::DuplicatePathRenamed { .. }))
        .count();
    assert_eq!(renamed, 3);
}

#[test]
fn utf8_variants_are_sanitised_too() {
    let info = with(
        multi_info(
            b"fine",
            vec![with(
                file(&["fine"], 4),
                "path.utf-8",
                OwnedValue::List(vec![OwnedValue::from(".."), OwnedValue::from("..")]),
            )],
            16384,
        ),
        "name.utf-8",
        OwnedValue::from("../../x"),
    );
    let m = check(&torrent(info));
    assert_eq!(m.info.name, ".._.._x");
    assert_eq!(paths(&m.info), ["_"]);
}

#[test]
fn hostile_pad_file_paths_are_sanitised() {
    let pad = with(
        file(&["..", "..", ".pad", "5"], 5),
        "attr",
        OwnedValue::from("p"),
    );
    let m = multi(vec![file(&["a"], 3), pad.clone(), pad, file(&["b"], 3)]);
    assert_eq!(paths(&m.info), ["a", ".pad/5", ".pad/5", "b"]);
    assert!(m.info.files[1].is_pad() && m.info.files[2].is_pad());
}

#[test]
fn very_long_components_are_shortened() {
    let long = format!("{}.mkv", "ä".repeat(300));
    let m = multi(vec![file(&[&long], 1), file(&[&long], 1)]);
    for f in &m.info.files {
        assert!(f.path[0].len() <= 255, "{}", f.path[0].len());
        assert!(f.path[0].ends_with(".mkv"));
    }
}
