"""Driver of bench/swarm.sh: runs one swarm (tracker, seeder, N leechers, one process per host
namespace), records when each leecher completes, verifies the data, and reports against the
fluid-model bound.

    run.py run --client bitswarm|libtorrent --hosts HOSTS --switch-ns NS --work DIR ... --out JSON
    run.py report --hosts HOSTS --torrent-size BYTES RESULT.json...
    run.py sample                   (inside the switch namespace: interface byte counters)

HOSTS is the tab-separated table bench/swarm.sh writes: role, name, address, upload kbit/s,
download kbit/s, bridge-side veth, namespace. `run` runs on the tracker's host (so it can
scrape the tracker itself) and starts every other process with `ip netns exec`. Every wait is
bounded; on any failure every process it started is stopped. Debian's /usr/bin/python3.
"""
import argparse
import hashlib
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

PY = "/usr/bin/python3"
TRACKER_PORT = 6969
PEER_PORT = 6881
READY_TIMEOUT_S = 60
STOP_TIMEOUT_S = 20
SAMPLE_INTERVAL_S = 0.5
# TCP payload per byte htb counts on a 1500-byte MTU link: 1448 (MSS with timestamps) / 1514.
TCP_PAYLOAD_FRACTION = 1448 / 1514


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--client", choices=["bitswarm", "libtorrent"], required=True)
    r.add_argument("--hosts", required=True)
    r.add_argument("--switch-ns", required=True)
    r.add_argument("--work", required=True)
    r.add_argument("--bitswarm", required=True)
    r.add_argument("--torrent", required=True)
    r.add_argument("--data", required=True, help="folder holding the seeder's data")
    r.add_argument("--lt-client", required=True)
    r.add_argument("--timeout", type=float, default=600)
    r.add_argument("--announce-interval", type=int, default=60, help="the tracker's interval_s")
    r.add_argument("--lt-local-class", action="store_true",
                   help="libtorrent keeps its LAN treatment of 10/8 (no unchoke limit)")
    r.add_argument("--out", required=True)
    rep = sub.add_parser("report")
    rep.add_argument("--hosts", required=True)
    rep.add_argument("--torrent-size", type=int, required=True)
    rep.add_argument("results", nargs="+")
    sub.add_parser("sample")
    args = p.parse_args()
    if args.cmd == "run":
        sys.exit(run(args))
    elif args.cmd == "report":
        report(args)
    else:
        sample()


# --- processes -----------------------------------------------------------------------------

class Proc:
    """A process in a namespace whose stdout lines are timestamped (monotonic clock)."""

    def __init__(self, name, ns, cmd, log_dir, stdin=False):
        self.name = name
        self.lines = []
        self.cond = threading.Condition()
        self.err = open(os.path.join(log_dir, f"{name}.err"), "wb")
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns] + cmd,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=self.err, start_new_session=True)
        self.started = time.monotonic()
        self.out = open(os.path.join(log_dir, f"{name}.out"), "w")
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            now = time.monotonic()
            self.out.write(f"{now - self.started:9.3f} {line}\n")
            self.out.flush()
            with self.cond:
                self.lines.append((now, line))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def first(self, prefix):
        """(time, line) of the first stdout line starting with prefix, or None."""
        with self.cond:
            return next(((t, ln) for t, ln in self.lines if ln.startswith(prefix)), None)

    def wait_for(self, prefix, timeout):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                hit = next(((t, ln) for t, ln in self.lines if ln.startswith(prefix)), None)
                if hit:
                    return hit
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self.reader.is_alive()):
                    raise RuntimeError(f"{self.name}: no `{prefix}` line "
                                       f"(exit status {self.proc.poll()}; see {self.err.name})")
                self.cond.wait(min(left, 0.5))

    def send(self, text):
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def reap(self, deadline):
        try:
            self.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.reader.join(5)
        self.err.close()


def read_hosts(path):
    hosts = []
    with open(path) as f:
        for line in f:
            role, name, addr, up, down, vdev, ns = line.rstrip("\n").split("\t")
            hosts.append({"role": role, "name": name, "addr": addr, "up_kbit": int(up),
                          "down_kbit": int(down), "vdev": vdev, "ns": ns})
    return hosts


def peer_cmd(args, host, data_dir, seeding, state_dir):
    """The command that runs `args.client` on `host`."""
    listen = f"{host['addr']}:{PEER_PORT}"
    if args.client == "bitswarm":
        state = ["--state", os.path.join(state_dir, f"{host['name']}.sqlite")]
        if seeding:
            return [args.bitswarm, "seed", args.torrent, data_dir, "--listen", listen,
                    "--no-dht"] + state
        return [args.bitswarm, "download", args.torrent, "-o", data_dir, "--seed",
                "--listen", listen, "--no-dht"] + state
    cmd = [PY, args.lt_client, args.torrent, data_dir, "--listen", host["addr"]]
    cmd += ["--local-class"] if args.lt_local_class else []
    return cmd + (["--seed"] if seeding else ["--wait-go"])


# --- one run -------------------------------------------------------------------------------

def run(args):
    hosts = read_hosts(args.hosts)
    tracker = next(h for h in hosts if h["role"] == "tracker")
    seeder = next(h for h in hosts if h["role"] == "seeder")
    leechers = [h for h in hosts if h["role"] == "leecher"]
    base = os.path.join(args.work, args.client)
    logs, states, dl = (os.path.join(base, d) for d in ("logs", "state", "dl"))
    for d in (logs, states, dl):
        os.makedirs(d, exist_ok=True)
    procs = []
    try:
        return run_swarm(args, tracker, seeder, leechers, logs, states, dl, procs)
    finally:
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for p in reversed(procs):
            p.stop()
        for p in reversed(procs):
            p.reap(deadline)


def run_swarm(args, tracker, seeder, leechers, logs, states, dl, procs):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_before = before.ru_utime + before.ru_stime
    config = os.path.join(args.work, "tracker.toml")
    with open(config, "w") as f:
        # Every peer in the swarm in one answer; re-announces as often as asked.
        f.write(f"[announce]\ninterval_s = {args.announce_interval}\n"
                f"min_interval_s = {min(10, args.announce_interval)}\n"
                "numwant_default = 300\nnumwant_max = 300\n")
    trk = Proc("tracker", tracker["ns"], [args.bitswarm, "tracker", "--http",
                                           f"{tracker['addr']}:{TRACKER_PORT}", "-c", config], logs)
    procs.append(trk)
    trk.wait_for("listening http", READY_TIMEOUT_S)
    sampler = Proc("sampler", args.switch_ns, [PY, os.path.abspath(__file__), "sample"], logs)
    procs.append(sampler)
    seed = Proc("seeder", seeder["ns"], peer_cmd(args, seeder, args.data, True, states), logs)
    procs.append(seed)
    seed.wait_for("ready" if args.client == "libtorrent" else "listening on", READY_TIMEOUT_S)
    wait_seeder_announced(tracker["addr"], args.torrent)
    leech = []
    for h in leechers:
        out = os.path.join(dl, h["name"])
        os.makedirs(out, exist_ok=True)
        p = Proc(h["name"], h["ns"], peer_cmd(args, h, out, False, states), logs,
                 stdin=args.client == "libtorrent")
        procs.append(p)
        leech.append((h, p))
    if args.client == "libtorrent":
        # Python and libtorrent start-up stays outside the measured time: the clock starts
        # when every session is up and is told to add the torrent.
        for _, p in leech:
            p.wait_for("armed", READY_TIMEOUT_S)
        t0 = time.monotonic()
        for _, p in leech:
            p.send("go\n")
    else:
        # bitswarm's process start-up (state database, listening) is inside the measured time.
        t0 = min(p.started for _, p in leech)
    wait_complete(leech, t0, args.timeout)
    t_end = time.monotonic()
    for p in [p for _, p in leech] + [seed]:
        p.stop()
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for p in [p for _, p in leech] + [seed]:
        p.reap(deadline)
    sampler.stop()
    sampler.reap(time.monotonic() + 5)
    # CPU of every process reaped so far (seeder, leechers, sampler; not the tracker).
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = collect(args, leech, seed, sampler, t0, t_end, dl)
    result["cpu_s"] = used.ru_utime + used.ru_stime - cpu_before
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    bad = [r["name"] for r in result["leechers"] if not r["ok"]]
    if bad:
        print(f"{args.client}: data differs from the seed's at {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


def wait_seeder_announced(tracker_addr, torrent):
    """Waits (bounded) until the tracker counts one seeder for the torrent, via HTTP scrape."""
    import libtorrent as lt
    info_hash = lt.torrent_info(torrent).info_hash().to_bytes()
    url = (f"http://{tracker_addr}:{TRACKER_PORT}/scrape?info_hash="
           + urllib.parse.quote_from_bytes(info_hash))
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            body = urllib.request.urlopen(url, timeout=2).read()
            if b"8:completei1e" in body:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the seeder did not show up at the tracker")


def wait_complete(leech, t0, timeout):
    deadline = t0 + timeout
    next_note = time.monotonic() + 10
    while True:
        done = sum(1 for _, p in leech if p.first("complete:"))
        if done == len(leech):
            return
        dead = [p.name for _, p in leech if p.proc.poll() is not None]
        if dead:
            raise RuntimeError(f"leecher(s) exited before completing: {', '.join(dead)}")
        now = time.monotonic()
        if now > deadline:
            raise RuntimeError(f"only {done} of {len(leech)} leechers completed in {timeout:.0f} s")
        if now >= next_note:
            next_note = now + 10
            print(f"  {now - t0:6.1f} s: {done}/{len(leech)} complete", flush=True)
        time.sleep(0.1)


def parse_summary(proc):
    hit = proc.first("summary:")
    if not hit:
        return {}
    fields = dict(kv.split("=", 1) for kv in hit[1].split()[1:])
    return {k: int(v) for k, v in fields.items()}


def sha1_file(path):
    h = hashlib.sha1()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def collect(args, leech, seed, sampler, t0, t_end, dl):
    names = os.listdir(args.data)
    want = {n: sha1_file(os.path.join(args.data, n)) for n in names}
    rows = []
    for h, p in leech:
        ready = p.first("ready") or p.first("listening on")
        done = p.first("complete:")
        ok = all(os.path.exists(os.path.join(dl, h["name"], n))
                 and sha1_file(os.path.join(dl, h["name"], n)) == digest
                 for n, digest in want.items())
        rows.append({**{k: h[k] for k in ("name", "addr", "up_kbit", "down_kbit", "vdev")},
                     "ready_s": ready[0] - t0 if ready else None,
                     "complete_s": done[0] - t0 if done else None, "ok": ok, **parse_summary(p)})
    samples = []
    for t, line in sampler.lines:
        parts = line.split()
        if len(parts) < 2:
            continue
        counters = {}
        for item in parts[1:]:
            dev, rx, tx = item.split(":")
            counters[dev] = [int(rx), int(tx)]
        samples.append([float(parts[0]) - t0, counters])
    return {"client": args.client, "duration_s": t_end - t0, "leechers": rows,
            "seeder": parse_summary(seed), "samples": samples}


# --- sampler -------------------------------------------------------------------------------

def sample():
    """Prints `MONOTONIC dev:rx:tx ...` for the switch's veths every SAMPLE_INTERVAL_S.
    A veth's rx is what its host sent (upload), its tx what the host received."""
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    while not stop:
        with open("/proc/net/dev") as f:
            rows = f.read().splitlines()[2:]
        items = []
        for row in rows:
            dev, data = row.split(":", 1)
            dev = dev.strip()
            if dev.startswith("v"):
                cols = data.split()
                items.append(f"{dev}:{cols[0]}:{cols[8]}")
        print(f"{time.monotonic():.3f} " + " ".join(items), flush=True)
        time.sleep(SAMPLE_INTERVAL_S)


# --- report --------------------------------------------------------------------------------

def bound(hosts, size):
    """T* in seconds and its three terms, from the link rates."""
    seeder = next(h for h in hosts if h["role"] == "seeder")
    leechers = [h for h in hosts if h["role"] == "leecher"]
    bits = size * 8
    u_s = seeder["up_kbit"] * 1000
    u_sum = sum(h["up_kbit"] for h in leechers) * 1000
    d_min = min(h["down_kbit"] for h in leechers) * 1000
    terms = {"F/u_s": bits / u_s, "N*F/(u_s+sum u_i)": len(leechers) * bits / (u_s + u_sum),
             "F/d_min": bits / d_min}
    return max(terms.values()), terms


def upload_used(result, hosts, t_last):
    """Bytes each host sent over [0, t_last] (from the switch's counters), by veth."""
    samples = result["samples"]
    if len(samples) < 2:
        return {}

    def at(t):
        # Counters at time t, linearly interpolated between samples.
        prev = samples[0]
        for s in samples[1:]:
            if s[0] >= t:
                span = s[0] - prev[0] or 1
                w = (t - prev[0]) / span
                return {d: prev[1][d][0] + w * (s[1][d][0] - prev[1][d][0]) for d in s[1]}
            prev = s
        return {d: v[0] for d, v in samples[-1][1].items()}

    start, end = at(0.0), at(t_last)
    return {h["vdev"]: end.get(h["vdev"], 0) - start.get(h["vdev"], 0) for h in hosts}


def report(args):
    hosts = read_hosts(args.hosts)
    results = []
    for path in args.results:
        with open(path) as f:
            results.append(json.load(f))
    t_star, terms = bound(hosts, args.torrent_size)
    leechers = [h for h in hosts if h["role"] == "leecher"]
    seeder = next(h for h in hosts if h["role"] == "seeder")
    mib = args.torrent_size / 1048576
    print(f"\nfluid bound: F = {mib:.0f} MiB, N = {len(leechers)}, u_s = {seeder['up_kbit']} kbit/s, "
          f"sum u_i = {sum(h['up_kbit'] for h in leechers)} kbit/s, "
          f"d_min = {min(h['down_kbit'] for h in leechers)} kbit/s")
    print("  " + ", ".join(f"{k} = {v:.1f} s" for k, v in terms.items()))
    print(f"  T* = {t_star:.1f} s (link rates); {t_star / TCP_PAYLOAD_FRACTION:.1f} s at TCP's "
          f"payload share of a 1514-byte frame ({TCP_PAYLOAD_FRACTION:.3f})")
    print_per_leecher(results, leechers)
    print("\n| client | first s | median s | last s | last / T* | upload used to last | "
          "seeder sent (copies of F) | CPU s (all peers) | all data verified |")
    print("|---|---|---|---|---|---|---|---|---|")
    lasts = {}
    for r in results:
        times = sorted(x["complete_s"] for x in r["leechers"])
        last = times[-1]
        lasts[r["client"]] = last
        used = upload_used(r, hosts, last)
        cap = sum(h["up_kbit"] for h in leechers + [seeder]) * 1000 / 8 * last
        share = sum(used.get(h["vdev"], 0) for h in leechers + [seeder]) / cap if used else float("nan")
        sent = r["seeder"].get("uploaded", 0) / args.torrent_size
        ok = all(x["ok"] for x in r["leechers"])
        print(f"| {r['client']} | {times[0]:.1f} | {times[len(times) // 2]:.1f} | {last:.1f} | "
              f"**{last / t_star:.3f}** | {share * 100:.1f} % | {sent:.2f} | {r.get('cpu_s', float('nan')):.1f} | "
              f"{'yes' if ok else 'NO'} |")
    if "bitswarm" in lasts and "libtorrent" in lasts:
        print(f"\nbitswarm last / libtorrent last = {lasts['bitswarm'] / lasts['libtorrent']:.3f}")
    print_timeline(results, hosts, leechers + [seeder])
    for r in results:
        print_host_windows(r, [seeder] + leechers)


def print_per_leecher(results, leechers):
    cols = [r["client"] for r in results]
    print("\n| leecher | up kbit/s | down kbit/s | "
          + " | ".join(f"{c} done s | {c} up MiB" for c in cols) + " |")
    print("|---|---|---|" + "---|---|" * len(cols))
    by_client = [{x["name"]: x for x in r["leechers"]} for r in results]
    for h in leechers:
        cells = []
        for rows in by_client:
            x = rows.get(h["name"], {})
            done = x.get("complete_s")
            up = x.get("uploaded")
            cells.append(f"{done:.1f}" if done is not None else "-")
            cells.append(f"{up / 1048576:.1f}" if up is not None else "-")
        print(f"| {h['name']} | {h['up_kbit']} | {h['down_kbit']} | " + " | ".join(cells) + " |")


def print_timeline(results, hosts, uploaders):
    """Aggregate upload in use per 10 s window, as a share of all upload capacity."""
    cap = sum(h["up_kbit"] for h in uploaders) * 1000 / 8
    devs = [h["vdev"] for h in uploaders]
    print("\nupload in use (all hosts' sent bytes / all upload capacity), per 10 s window:")
    for r in results:
        s = r["samples"]
        cells = []
        last = max(x["complete_s"] for x in r["leechers"])
        t = 0.0
        while t < last and s:
            a = next((x for x in s if x[0] >= t), s[-1])
            b = next((x for x in s if x[0] >= min(t + 10, last)), s[-1])
            if b[0] <= a[0]:
                break
            sent = sum(b[1][d][0] - a[1][d][0] for d in devs if d in a[1])
            cells.append(f"{sent / (b[0] - a[0]) / cap * 100:.0f}")
            t += 10
        print(f"  {r['client']:>10}: " + " ".join(cells) + " %")


def print_host_windows(result, hosts):
    """Each host's download and upload per 10 s window, as a share of its link's rate."""
    s = result["samples"]
    if len(s) < 2:
        return
    last = max(x["complete_s"] for x in result["leechers"])
    print(f"\n{result['client']}: per host and 10 s window, download | upload in use "
          "(% of the link's rate; the last window ends at the last completion)")
    for h in hosts:
        down, up = [], []
        t = 0.0
        while t < last:
            a = next((x for x in s if x[0] >= t), s[-1])
            b = next((x for x in s if x[0] >= min(t + 10, last)), s[-1])
            if b[0] <= a[0] or h["vdev"] not in a[1]:
                break
            span = b[0] - a[0]
            rx0, tx0 = a[1][h["vdev"]]
            rx1, tx1 = b[1][h["vdev"]]
            down.append(f"{(tx1 - tx0) / span / (h['down_kbit'] * 125) * 100:3.0f}")
            up.append(f"{(rx1 - rx0) / span / (h['up_kbit'] * 125) * 100:3.0f}")
            t += 10
        print(f"  {h['name']:>4} {' '.join(down)} | {' '.join(up)}")


if __name__ == "__main__":
    main()
