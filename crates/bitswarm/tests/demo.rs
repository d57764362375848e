//! End-to-end tests of `bitswarm demo` as a new user runs it (not on a terminal, so the live
//! view prints plain lines): every leecher finishes, the table names every peer, the copies
//! are verified, and the temporary folder is gone afterwards — also after Ctrl-C.

mod common;

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use common::bitswarm;

/// Longest a small demo may take before the test kills it and fails.
const DEMO_TIME_MAX: Duration = Duration::from_secs(180);

/// Runs `bitswarm demo ARGS` with `TMPDIR=tmp`, killing it after [`DEMO_TIME_MAX`].
fn run_demo(tmp: &Path, args: &[&str]) -> Output {
    let child = bitswarm()
        .arg("demo")
        .args(args)
        .env("TMPDIR", tmp)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run bitswarm demo");
    wait_bounded(child, DEMO_TIME_MAX)
}

/// Waits for `child` at most `limit` (reading its output meanwhile), then kills it and fails.
fn wait_bounded(mut child: Child, limit: Duration) -> Output {
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = Vec::new();
        stdout.read_to_end(&mut s).unwrap();
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = Vec::new();
        stderr.read_to_end(&mut s).unwrap();
        s
    });
    let status = wait_status(&mut child, limit);
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

fn wait_status(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("bitswarm demo did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The folder the demo said it works in.
fn work_dir(stdout: &str) -> PathBuf {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("== working in "))
        .unwrap_or_else(|| panic!("no working folder in:\n{stdout}"));
    PathBuf::from(line.split(" (").next().unwrap())
}

/// The table's rows: sender name -> the numbers on its line (MiB sent to each peer in
/// column order, with `-` for itself as NaN, then sent and received totals).
fn table_rows(stdout: &str, names: &[String]) -> Vec<Vec<f64>> {
    let mut lines = stdout.lines().skip_while(|l| !l.starts_with("from \\ to"));
    let header = lines
        .next()
        .unwrap_or_else(|| panic!("no table in:\n{stdout}"));
    let columns: Vec<&str> = header
        .trim_start_matches("from \\ to")
        .split('|')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(columns, names, "the table's columns");
    names
        .iter()
        .map(|name| {
            let line = lines
                .next()
                .unwrap_or_else(|| panic!("no row for {name} in:\n{stdout}"));
            let mut fields = line.split_whitespace();
            assert_eq!(fields.next(), Some(name.as_str()), "row order: {line}");
            fields
                .filter(|f| *f != "|")
                .map(|f| f.parse::<f64>().unwrap_or(f64::NAN))
                .collect()
        })
        .collect()
}

#[test]
fn demo_runs_a_swarm_verifies_every_copy_and_cleans_up() {
    let tmp = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = run_demo(tmp.path(), &["--size-mib", "8"]);
    let secs = started.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "demo failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    eprintln!("demo took {secs:.1} s:\n{stdout}");

    // Every leecher finished, and said when.
    let names: Vec<String> = std::iter::once("seed".to_owned())
        .chain((1..=5).map(|i| format!("leech-{i}")))
        .collect();
    for name in &names[1..] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(&format!("{name} ")) && l.contains("finished after")),
            "{name} has no finish time:\n{stdout}"
        );
    }
    // The live view printed plain lines for every peer (stderr is not a terminal).
    for name in &names {
        assert!(
            stderr
                .lines()
                .any(|l| l.contains(&format!("] {name} (up "))),
            "no progress line for {name}:\n{stderr}"
        );
    }

    // The table lists each peer; every leecher received at least the whole torrent, and with
    // the seeder limited the leechers traded among themselves.
    let rows = table_rows(&stdout, &names);
    let n = names.len();
    for (i, row) in rows.iter().enumerate().skip(1) {
        let received = row[n + 1];
        assert!(
            received >= 7.99,
            "{} received {received} MiB:\n{stdout}",
            names[i]
        );
    }
    let traded: f64 = (1..n)
        .flat_map(|i| (1..n).filter(move |&j| j != i).map(move |j| (i, j)))
        .map(|(i, j)| rows[i][j])
        .sum();
    assert!(traded > 1.0, "leechers traded only {traded} MiB:\n{stdout}");

    assert!(
        stdout.contains("verified: all 5 copies of 8 MiB are identical to the original"),
        "{stdout}"
    );
    let work = work_dir(&stdout);
    assert!(
        work.starts_with(tmp.path()),
        "{} not under TMPDIR",
        work.display()
    );
    assert!(!work.exists(), "{} was left behind", work.display());
    let left: Vec<_> = fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "left in TMPDIR: {left:?}");
}

#[test]
fn demo_with_dir_keeps_every_copy_and_refuses_a_foreign_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("kept");
    let args = ["--size-mib", "2", "--leechers", "2", "--no-limits"];
    for _ in 0..2 {
        // The second run replaces the first one's files.
        let out = run_demo(
            tmp.path(),
            &[&args[..], &["--dir", dir.to_str().unwrap()]].concat(),
        );
        assert!(
            out.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for copy in ["sample", "leech-1/sample", "leech-2/sample"] {
        let part = dir.join(copy).join("video/part-1.bin");
        assert_eq!(fs::metadata(&part).unwrap().len(), (2 << 20) / 2 + 12_345);
    }
    assert!(dir.join("sample.torrent").is_file());

    let foreign = tmp.path().join("mine");
    fs::create_dir(&foreign).unwrap();
    fs::write(foreign.join("keep-me.txt"), "precious").unwrap();
    let out = run_demo(
        tmp.path(),
        &["--size-mib", "1", "--dir", foreign.to_str().unwrap()],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));
    assert_eq!(
        fs::read_to_string(foreign.join("keep-me.txt")).unwrap(),
        "precious"
    );
}

#[test]
fn interrupted_demo_removes_its_folder() {
    let tmp = tempfile::tempdir().unwrap();
    // Limits low enough that the swarm is still running when Ctrl-C comes.
    let mut child = bitswarm()
        .args([
            "demo",
            "--size-mib",
            "16",
            "--leechers",
            "2",
            "--seed-limit",
            "256K",
        ])
        .env("TMPDIR", tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        stderr.read_to_string(&mut s).unwrap();
        s
    });
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    // Wait (bounded) for the swarm to start: the peers' listening lines.
    for _ in 0..100 {
        let mut line = String::new();
        if stdout.read_line(&mut line).unwrap() == 0 {
            break;
        }
        seen.push_str(&line);
        if line.starts_with("leech-2 ") && line.contains("listening on") {
            break;
        }
    }
    assert!(
        seen.contains("leech-2  listening on"),
        "the swarm did not start:\n{seen}"
    );
    let work = work_dir(&seen);
    assert!(work.exists());
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let status = wait_status(&mut child, Duration::from_secs(30));
    assert!(
        !status.success(),
        "an interrupted demo must not report success"
    );
    let stderr = stderr.join().unwrap();
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(!work.exists(), "{} was left behind", work.display());
    let left: Vec<_> = fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "left in TMPDIR: {left:?}");
}
