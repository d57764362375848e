//! End-to-end tests of `bitswarm create` and `bitswarm info` as a user runs them.

mod common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{bitswarm, json, run_ok, sample_tree, write_file};

#[test]
fn create_then_info_reports_the_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = sample_tree(tmp.path());
    let torrent = tmp.path().join("s.torrent");
    run_ok(
        bitswarm()
            .arg("create")
            .arg(&dir)
            .arg("-o")
            .arg(&torrent)
            .args([
                "--tracker",
                "http://127.0.0.1:1/announce,http://127.0.0.1:2/announce",
                "--tracker",
                "udp://127.0.0.1:3",
                "--web-seed",
                "http://127.0.0.1:4/files/",
                "--piece-size",
                "32K",
                "--private",
                "--comment",
                "hello",
                "--no-date",
            ]),
    );
    let out = run_ok(bitswarm().arg("info").arg(&torrent).arg("--json"));
    let info = json(&out);
    assert_eq!(info["name"], "sample");
    assert_eq!(info["piece_size"], 32 * 1024);
    let total: u64 = 300_001 + 4_321 + 1_000_000 + 77_777;
    assert_eq!(info["total_size"], total);
    assert_eq!(info["piece_count"], total.div_ceil(32 * 1024));
    assert_eq!(info["private"], true);
    assert_eq!(info["comment"], "hello");
    assert_eq!(
        info["trackers"],
        serde_json::json!([
            ["http://127.0.0.1:1/announce", "http://127.0.0.1:2/announce"],
            ["udp://127.0.0.1:3"]
        ])
    );
    assert_eq!(
        info["web_seeds"],
        serde_json::json!(["http://127.0.0.1:4/files/"])
    );
    let paths: Vec<&str> = info["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "a.bin",
            "docs/deeper/c.bin",
            "docs/empty",
            "docs/readme.txt",
            "z-last.bin"
        ]
    );
    assert!(info["magnet"].as_str().unwrap().starts_with(&format!(
        "magnet:?xt=urn:btih:{}",
        info["info_hash"].as_str().unwrap()
    )));

    // The text form names the same things.
    let text = String::from_utf8(run_ok(bitswarm().arg("info").arg(&torrent)).stdout).unwrap();
    assert!(text.contains(info["info_hash"].as_str().unwrap()), "{text}");
    assert!(text.contains("tier 2: udp://127.0.0.1:3"), "{text}");
    assert!(text.contains("deeper/"), "{text}");
}

#[test]
fn create_is_deterministic_without_a_date() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = sample_tree(tmp.path());
    let a = tmp.path().join("a.torrent");
    let b = tmp.path().join("b.torrent");
    for (out, threads) in [(&a, "1"), (&b, "3")] {
        run_ok(bitswarm().arg("create").arg(&dir).arg("-o").arg(out).args([
            "--no-date",
            "--threads",
            threads,
        ]));
    }
    assert_eq!(fs::read(&a).unwrap(), fs::read(&b).unwrap());
}

#[test]
fn create_refuses_to_overwrite_without_force() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("one.bin");
    write_file(&file, 100_000, 9);
    let out_path = tmp.path().join("one.torrent");
    fs::write(&out_path, b"precious").unwrap();
    let out = bitswarm()
        .arg("create")
        .arg(&file)
        .arg("-o")
        .arg(&out_path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
    assert_eq!(fs::read(&out_path).unwrap(), b"precious");
    run_ok(
        bitswarm()
            .arg("create")
            .arg(&file)
            .arg("-o")
            .arg(&out_path)
            .arg("--force"),
    );
    assert_ne!(fs::read(&out_path).unwrap(), b"precious");
}

#[test]
fn info_errors_are_one_clear_line() {
    let tmp = tempfile::tempdir().unwrap();
    let cases: Vec<(std::path::PathBuf, &str)> = {
        let missing = tmp.path().join("missing.torrent");
        let text = tmp.path().join("text.torrent");
        fs::write(&text, "this is just text\n").unwrap();
        let file = tmp.path().join("data.bin");
        write_file(&file, 50_000, 5);
        let good = tmp.path().join("good.torrent");
        run_ok(bitswarm().arg("create").arg(&file).arg("-o").arg(&good));
        let bytes = fs::read(&good).unwrap();
        let truncated = tmp.path().join("truncated.torrent");
        fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
        vec![
            (missing, "cannot read"),
            (text, "is not a .torrent file"),
            (truncated, "is truncated"),
        ]
    };
    for (path, expected) in cases {
        let out = bitswarm().arg("info").arg(&path).output().unwrap();
        assert!(!out.status.success(), "{path:?} should fail");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "one line expected: {stderr}");
        assert!(stderr.starts_with("error: "), "{stderr}");
        assert!(
            stderr.contains(expected),
            "{path:?}: expected '{expected}' in: {stderr}"
        );
    }
}

#[test]
fn info_reads_magnet_links() {
    let magnet = "magnet:?xt=urn:btih:c12fe1c06bba254a9dc9f519b335aa7c1367a88a&dn=Some%20Name&tr=udp%3A%2F%2F127.0.0.1%3A6969&xl=1234";
    let info = json(&run_ok(bitswarm().args(["info", magnet, "--json"])));
    assert_eq!(
        info["info_hash"],
        "c12fe1c06bba254a9dc9f519b335aa7c1367a88a"
    );
    assert_eq!(info["name"], "Some Name");
    assert_eq!(
        info["trackers"],
        serde_json::json!(["udp://127.0.0.1:6969"])
    );
    assert_eq!(info["exact_length"], 1234);
    let out = bitswarm()
        .args(["info", "magnet:?dn=nothing"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: not a usable magnet link"));
}

/// Ctrl-C during hashing leaves no output file and no temporary file behind.
#[test]
fn interrupted_create_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let big = tmp.path().join("big.bin");
    // A sparse file: no disk space, but hashing it on one thread takes seconds.
    fs::File::create(&big).unwrap().set_len(16 << 30).unwrap();
    let out_path = tmp.path().join("out").join("big.torrent");
    fs::create_dir_all(out_path.parent().unwrap()).unwrap();
    let mut child = bitswarm()
        .arg("create")
        .arg(&big)
        .arg("-o")
        .arg(&out_path)
        .args(["--threads", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Plain progress lines (stderr is not a terminal) show hashing is under way.
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(
        line.starts_with("hashing:"),
        "unexpected first line: {line}"
    );
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "create did not stop after Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert!(rest.contains("interrupted"), "{rest}");
    let left: Vec<_> = fs::read_dir(out_path.parent().unwrap()).unwrap().collect();
    assert!(left.is_empty(), "files left behind: {left:?}");
}
