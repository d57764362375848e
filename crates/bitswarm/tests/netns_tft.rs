//! Tit-for-tat over real, shaped links: in network namespaces, a free-rider (a leecher that
//! downloads but never uploads) finishes markedly later than bitswarm leechers with the same
//! links that upload, while optimistic unchokes still give it a start. The in-process
//! simulator shows the same in virtual time; this is the once-in-real-networking check
//! (issue 7).
//!
//! The free-rider is libtorrent told never to unchoke anyone (`bench/swarm/lt_client.py
//! --free-ride`), not a bitswarm with its upload shaped to zero: such a peer still unchokes
//! and serves, its slow piece data then sits in front of its own requests on every TCP
//! stream (and its request segments are dropped and backed off), so it would finish late for
//! reasons that have nothing to do with the others' chokers.
//!
//! Needs root, iproute2 (`ip`, `tc` with htb) and python3-libtorrent, so it is `#[ignore]`d;
//! run it with `cargo test -p bitswarm --test netns_tft -- --ignored --nocapture`. Run, it
//! fails (never skips) when it is not root or a tool is missing. Everything it creates is
//! named `bswt<pid>-*` and removed on drop, also when an assertion fails. With
//! `NETNS_TFT_LOGS=DIR` the processes' stderr (progress lines) is kept in DIR; with
//! `NETNS_TFT_CONTRIBUTORS=libtorrent` the contributors are libtorrent (a control run showing
//! what an established client's choker does in the same swarm).

mod common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{python_with_libtorrent, require, run_ok, write_file};

/// Leechers that upload (bitswarm); more than the unchoke slots, so slots are contested.
const CONTRIBUTORS: usize = 10;
/// Every leecher's links (the free-rider's too), kbit/s.
const LEECHER_DOWN_KBIT: u32 = 8_000;
const LEECHER_UP_KBIT: u32 = 2_000;
const SEEDER_UP_KBIT: u32 = 4_000;
const FILE_BYTES: usize = 32 << 20;
/// Every wait of the test ends by then.
const TEST_TIMEOUT: Duration = Duration::from_secs(480);
/// The free-rider's share of the file when half the contributors have completed: at least this
/// (optimistic unchokes got it started), at most this (it was not served like a contributor).
const FREE_RIDER_SHARE_MIN: f64 = 0.02;
const FREE_RIDER_SHARE_MAX: f64 = 0.75;
/// How much later than the median contributor the free-rider must complete, at least.
const LATE_RATIO_MIN: f64 = 1.2;

#[test]
#[ignore = "needs root, iproute2, python3-libtorrent: cargo test -p bitswarm --test netns_tft -- --ignored"]
fn free_rider_finishes_markedly_later_than_contributors() {
    require_root_and_tools();
    let python = python_with_libtorrent();
    let tmp = tempfile::Builder::new()
        .prefix("bitswarm-netns-tft-")
        .tempdir()
        .expect("temp dir");
    let logs =
        std::env::var_os("NETNS_TFT_LOGS").map_or_else(|| tmp.path().to_owned(), PathBuf::from);
    fs::create_dir_all(&logs).expect("log dir");
    let mut net = Net::new();
    let tracker_ns = net.add_host("trk", "10.78.0.1", 10_000, 10_000);
    let seeder_ns = net.add_host("seed", "10.78.0.2", SEEDER_UP_KBIT, 40_000);
    let hosts = leecher_hosts(&mut net);
    let data_dir = tmp.path().join("data");
    write_file(&data_dir.join("file.bin"), FILE_BYTES, 77);
    let torrent = tmp.path().join("file.torrent");
    run_ok(
        Command::new(env!("CARGO_BIN_EXE_bitswarm"))
            .args(["create", "--no-date", "-p", "256K", "-t"])
            .arg("http://10.78.0.1:6969/announce")
            .arg(data_dir.join("file.bin"))
            .arg("-o")
            .arg(&torrent),
    );
    let deadline = Instant::now() + TEST_TIMEOUT;
    let bin = env!("CARGO_BIN_EXE_bitswarm");
    let tracker = Proc::start(
        &tracker_ns,
        &[bin, "tracker", "--http", "10.78.0.1:6969"],
        &logs,
        "tracker",
    );
    tracker.wait_line("listening http", deadline);
    let seed_state = tmp.path().join("seed.sqlite");
    let mut seed_args = bitswarm_args("seed", &torrent, "10.78.0.2", &seed_state);
    seed_args.insert(3, data_dir.display().to_string());
    let seeder = Proc::start(&seeder_ns, &seed_args, &logs, "seeder");
    seeder.wait_line("listening on", deadline);
    wait_seeder_at_tracker(&tracker_ns, &torrent, deadline);

    let start = Instant::now();
    let leechers = start_leechers(&hosts, &python, &torrent, tmp.path(), &logs);
    // The free-rider's link counters when half the contributors have completed (the median
    // is steadier than the last, which one straggler can delay).
    wait_completions(
        &leechers[..CONTRIBUTORS],
        CONTRIBUTORS.div_ceil(2),
        deadline,
    );
    let (received, sent) = net.link_bytes(&hosts[CONTRIBUTORS].2);
    let mut contributor_times: Vec<f64> = leechers[..CONTRIBUTORS]
        .iter()
        .map(|p| secs(start, p.wait_line("complete:", deadline)))
        .collect();
    contributor_times.sort_by(f64::total_cmp);
    let median_contributor = contributor_times[(CONTRIBUTORS - 1) / 2];
    let free_rider_time = secs(
        start,
        leechers[CONTRIBUTORS].wait_line("complete:", deadline),
    );
    let want = fs::read(data_dir.join("file.bin")).expect("seed file");
    for i in 0..=CONTRIBUTORS {
        let got = fs::read(tmp.path().join(format!("l{i}/file.bin"))).expect("downloaded file");
        assert!(got == want, "leecher l{i} wrote different bytes");
    }
    report_and_check(&Measured {
        contributor_times,
        median_contributor,
        received,
        sent,
        free_rider_time,
    });
}

/// What the run measured; the free-rider's bytes are its link's, when half the contributors
/// had completed.
struct Measured {
    /// Sorted.
    contributor_times: Vec<f64>,
    median_contributor: f64,
    received: u64,
    sent: u64,
    free_rider_time: f64,
}

/// Waits until `count` of `procs` have printed `complete:`.
fn wait_completions(procs: &[Proc], count: usize, deadline: Instant) {
    while procs
        .iter()
        .filter(|p| p.find("complete:").is_some())
        .count()
        < count
    {
        assert!(
            Instant::now() < deadline,
            "fewer than {count} contributors completed in time"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// The leechers' hosts: (namespace, address, bridge-side veth); the last one is the
/// free-rider's.
fn leecher_hosts(net: &mut Net) -> Vec<(String, String, String)> {
    (0..=CONTRIBUTORS)
        .map(|i| {
            let addr = format!("10.78.0.{}", 10 + i);
            let ns = net.add_host(&format!("l{i}"), &addr, LEECHER_UP_KBIT, LEECHER_DOWN_KBIT);
            (ns, addr, format!("v{}", net.hosts - 1))
        })
        .collect()
}

/// Starts the contributors (bitswarm, or libtorrent for the control run) and the free-rider
/// at once; each downloads into `dir/l<i>`. Contributors leave once complete: the free-rider
/// cannot live off them then.
fn start_leechers(
    hosts: &[(String, String, String)],
    python: &Path,
    torrent: &Path,
    dir: &Path,
    logs: &Path,
) -> Vec<Proc> {
    let lt_contributors = std::env::var("NETNS_TFT_CONTRIBUTORS").is_ok_and(|v| v == "libtorrent");
    hosts
        .iter()
        .enumerate()
        .map(|(i, (ns, addr, _))| {
            let out = dir.join(format!("l{i}"));
            fs::create_dir_all(&out).expect("leecher dir");
            let args = if i == CONTRIBUTORS {
                lt_args(python, torrent, &out, addr, "--free-ride")
            } else if lt_contributors {
                lt_args(python, torrent, &out, addr, "--leave")
            } else {
                let state = dir.join(format!("l{i}.sqlite"));
                let mut args = bitswarm_args("download", torrent, addr, &state);
                args.extend(["-o".to_owned(), out.display().to_string()]);
                args
            };
            Proc::start(ns, &args, logs, &format!("l{i}"))
        })
        .collect()
}

/// Prints the measured figures and checks them against the bounds.
fn report_and_check(m: &Measured) {
    #[allow(clippy::cast_precision_loss)] // ratios for display and comparison
    let (share, sent_share) = (
        m.received as f64 / FILE_BYTES as f64,
        m.sent as f64 / FILE_BYTES as f64,
    );
    let ratio = m.free_rider_time / m.median_contributor;
    println!(
        "contributors complete at {:.1?} s (median {:.1} s); when half had, the free-rider had \
         received {:.0} % and sent {:.1} % of the file's size (link bytes); it completed at \
         {:.1} s: {ratio:.2}x the median contributor",
        m.contributor_times,
        m.median_contributor,
        share * 100.0,
        sent_share * 100.0,
        m.free_rider_time
    );
    // Requests and ACKs only (one ACK per one or two 1448-byte segments): well under 10 %.
    assert!(
        sent_share < 0.10,
        "the free-rider uploaded: {} bytes",
        m.sent
    );
    assert!(
        (FREE_RIDER_SHARE_MIN..FREE_RIDER_SHARE_MAX).contains(&share),
        "the free-rider had {:.0} % of the file when half the contributors had completed (expected \
         {:.0}..{:.0} %)",
        share * 100.0,
        FREE_RIDER_SHARE_MIN * 100.0,
        FREE_RIDER_SHARE_MAX * 100.0
    );
    assert!(
        ratio >= LATE_RATIO_MIN,
        "the free-rider completed only {ratio:.2}x later than the median contributor"
    );
}

fn require_root_and_tools() {
    require("ip", "iproute2");
    // tc lives in sbin, where `require` does not look.
    assert!(
        ["/usr/sbin/tc", "/sbin/tc", "/usr/bin/tc"]
            .iter()
            .any(|p| Path::new(p).exists()),
        "this test needs `tc` from the Debian package `iproute2`; install the test dependencies \
         with `scripts/install-test-deps` (as root)"
    );
    let status = fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .expect("Uid line");
    assert_eq!(
        uid, "0",
        "this test makes network namespaces and must run as root"
    );
}

/// The command line of `bitswarm seed|download TORRENT` on a host.
fn bitswarm_args(sub: &str, torrent: &Path, addr: &str, state: &Path) -> Vec<String> {
    vec![
        env!("CARGO_BIN_EXE_bitswarm").to_owned(),
        sub.to_owned(),
        torrent.display().to_string(),
        "--listen".to_owned(),
        format!("{addr}:6881"),
        "--no-dht".to_owned(),
        "--state".to_owned(),
        state.display().to_string(),
    ]
}

/// Waits until the tracker's scrape counts one seeder, so that every leecher's first announce
/// returns it. Scraped from inside the tracker's namespace with bash's `/dev/tcp`.
fn wait_seeder_at_tracker(tracker_ns: &str, torrent: &Path, deadline: Instant) {
    let info = common::json(&run_ok(
        Command::new(env!("CARGO_BIN_EXE_bitswarm"))
            .args(["info", "--json"])
            .arg(torrent),
    ));
    let hex = info["info_hash"].as_str().expect("info_hash");
    // Every byte percent-escaped: "%" before each pair of hex digits.
    let mut escaped = String::new();
    for (i, c) in hex.chars().enumerate() {
        if i % 2 == 0 {
            escaped.push('%');
        }
        escaped.push(c);
    }
    let script = format!(
        "exec 3<>/dev/tcp/10.78.0.1/6969 && \
         printf '%s\\r\\n\\r\\n' 'GET /scrape?info_hash={escaped} HTTP/1.0' >&3 && cat <&3"
    );
    loop {
        let out = Command::new("ip")
            .args([
                "netns", "exec", tracker_ns, "timeout", "2", "bash", "-c", &script,
            ])
            .output()
            .expect("run bash in the tracker's namespace");
        if String::from_utf8_lossy(&out.stdout).contains("8:completei1e") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the seeder never showed up in the tracker's scrape"
        );
        thread::sleep(Duration::from_millis(200));
    }
}

/// A libtorrent leecher: the free-rider (`--free-ride`: never unchokes anyone) or, for the
/// control run, a contributor (`--leave`: exits once complete).
fn lt_args(python: &Path, torrent: &Path, out: &Path, addr: &str, role: &str) -> Vec<String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/swarm/lt_client.py");
    assert!(script.exists(), "{} is missing", script.display());
    vec![
        python.display().to_string(),
        script.display().to_string(),
        torrent.display().to_string(),
        out.display().to_string(),
        "--listen".to_owned(),
        addr.to_owned(),
        role.to_owned(),
    ]
}

fn secs(start: Instant, at: Instant) -> f64 {
    at.duration_since(start).as_secs_f64()
}

/// Namespaces on one bridge: a switch namespace holding the bridge, one namespace per host.
struct Net {
    prefix: String,
    switch: String,
    namespaces: Vec<String>,
    hosts: usize,
}

impl Net {
    fn new() -> Self {
        let prefix = format!("bswt{}", std::process::id());
        let switch = format!("{prefix}-sw");
        let mut net = Self {
            prefix,
            switch: switch.clone(),
            namespaces: Vec::new(),
            hosts: 0,
        };
        ip(&["netns", "add", &switch]);
        net.namespaces.push(switch.clone());
        ip(&["-n", &switch, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &switch, "link", "set", "br0", "up"]);
        net
    }

    /// Adds a host at `addr`/16, its upload and download shaped with htb; returns its
    /// namespace.
    fn add_host(&mut self, name: &str, addr: &str, up: u32, down: u32) -> String {
        let ns = format!("{}-{name}", self.prefix);
        let veth = format!("v{}", self.hosts);
        self.hosts += 1;
        ip(&["netns", "add", &ns]);
        self.namespaces.push(ns.clone());
        ip(&[
            "-n",
            &self.switch,
            "link",
            "add",
            &veth,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &ns,
        ]);
        ip(&[
            "-n",
            &self.switch,
            "link",
            "set",
            &veth,
            "master",
            "br0",
            "up",
        ]);
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{addr}/16"),
            "dev",
            "eth0",
        ]);
        ip(&["-n", &ns, "link", "set", "eth0", "up"]);
        shape(&ns, "eth0", up);
        shape(&self.switch, &veth, down);
        ns
    }

    /// Bytes the host behind `veth` has received and sent so far (the switch's counters).
    fn link_bytes(&self, veth: &str) -> (u64, u64) {
        let count = |counter: &str| -> u64 {
            let path = format!("/sys/class/net/{veth}/statistics/{counter}");
            let out =
                run_ok(Command::new("ip").args(["netns", "exec", &self.switch, "cat", &path]));
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .expect("a byte count")
        };
        (count("tx_bytes"), count("rx_bytes"))
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            // Whatever still runs in our namespaces was started by this test.
            if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-KILL", pid]).status();
                }
            }
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn ip(args: &[&str]) {
    run_ok(Command::new("ip").args(args));
}

fn tc(ns: &str, args: &[&str]) {
    run_ok(Command::new("tc").args(["-n", ns]).args(args));
}

/// htb at `kbit` on `dev`'s egress with a ~200 ms byte FIFO, one MSS per packet.
fn shape(ns: &str, dev: &str, kbit: u32) {
    let rate = format!("{kbit}kbit");
    let limit = (kbit * 25).max(30_000).to_string();
    tc(
        ns,
        &[
            "qdisc", "add", "dev", dev, "root", "handle", "1:", "htb", "default", "1",
        ],
    );
    tc(
        ns,
        &[
            "class", "add", "dev", dev, "parent", "1:", "classid", "1:1", "htb", "rate", &rate,
            "ceil", &rate, "quantum", "1514",
        ],
    );
    tc(
        ns,
        &[
            "qdisc", "add", "dev", dev, "parent", "1:1", "bfifo", "limit", &limit,
        ],
    );
    ip(&["-n", ns, "link", "set", "dev", dev, "gso_max_segs", "1"]);
}

/// A process in a namespace (`args[0]` is the program), its stdout lines timestamped. Killed
/// on drop.
struct Proc {
    label: String,
    child: Child,
    lines: Arc<Mutex<Vec<(Instant, String)>>>,
    /// Set when stdout closed (the process ended).
    closed: Arc<AtomicBool>,
    stderr_log: PathBuf,
}

impl Proc {
    fn start<S: AsRef<str>>(ns: &str, args: &[S], dir: &Path, label: &str) -> Self {
        let stderr_log = dir.join(format!("{label}.stderr"));
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args.iter().map(AsRef::as_ref))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&stderr_log).expect("stderr log"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {label}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        let closed = Arc::new(AtomicBool::new(false));
        let closed_flag = Arc::clone(&closed);
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                sink.lock().expect("lines").push((Instant::now(), line));
            }
            closed_flag.store(true, Ordering::Release);
        });
        Self {
            label: label.to_owned(),
            child,
            lines,
            closed,
            stderr_log,
        }
    }

    /// When the first line starting with `prefix` arrived; fails the test at the deadline or
    /// if the process exits first.
    fn wait_line(&self, prefix: &str, deadline: Instant) -> Instant {
        loop {
            let closed = self.closed.load(Ordering::Acquire);
            if let Some(at) = self.find(prefix) {
                return at;
            }
            let stderr = || fs::read_to_string(&self.stderr_log).unwrap_or_default();
            assert!(
                Instant::now() < deadline && !closed,
                "{}: no `{prefix}` line before it exited or the deadline; stderr:\n{}",
                self.label,
                stderr()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Proc {
    /// When the first line starting with `prefix` arrived, if one did.
    fn find(&self, prefix: &str) -> Option<Instant> {
        self.lines
            .lock()
            .expect("lines")
            .iter()
            .find(|(_, l)| l.starts_with(prefix))
            .map(|(at, _)| *at)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
