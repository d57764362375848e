"""Driver of bench/transfer.sh: one seeder to one leecher over loopback, contenders alternating
round by round, best of N. Run through bench/transfer.sh, which builds, makes the data and the
torrent, and passes everything here.

For each run: the seed file is read once (page cache warm), the leecher's output folder and
state are removed, the seeder is started and waited for until it has checked its data, then
the leecher is started with the seeder's address and timed until it reports completion.
CPU seconds and peak RSS of each process come from wait4(2) (the rusage /usr/bin/time prints;
taken directly so that SIGTERM reaches the seeder itself, not a wrapper). The seeder's CPU
seconds count from the moment it is ready: what it spent checking its data at start (hashing
the whole file, for every contender) is read from /proc/PID/stat then and reported apart, as
the ceiling's setup is not counted either.
"""
import argparse
import atexit
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time

PY = "/usr/bin/python3"
MIB = 1 << 20
READY_TIMEOUT_S = 300
TRANSFER_TIMEOUT_S = 600
LIVE = set()  # every child not yet reaped: killed if the bench stops early


@atexit.register
def kill_leftovers():
    for proc in list(LIVE):
        proc.p.kill()


class Proc:
    """A child process whose stdout and stderr lines are collected with arrival times."""

    def __init__(self, name, argv, log_dir):
        self.name = name
        self.argv = argv
        self.lines = []  # (time, stream, line)
        self.cond = threading.Condition()
        self.started = time.perf_counter()
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, bufsize=1)
        self.log_path = os.path.join(log_dir, f"{name}.log")
        self.threads = [threading.Thread(target=self._read, args=(s, tag), daemon=True)
                        for s, tag in ((self.p.stdout, "out"), (self.p.stderr, "err"))]
        for t in self.threads:
            t.start()
        self.rusage = None
        self.status = None
        self.peak_anon_kib = 0
        LIVE.add(self)
        self.sampler = threading.Thread(target=self._sample, daemon=True)
        self.sampler.start()

    def _sample(self):
        # Peak anonymous RSS (heap, stacks): ru_maxrss also counts file pages a process maps,
        # which for libtorrent 2.0 (mmap disk I/O) is most of the file it moves.
        path = f"/proc/{self.p.pid}/status"
        while self.p.returncode is None:
            try:
                with open(path) as f:
                    for line in f:
                        if line.startswith("RssAnon:"):
                            self.peak_anon_kib = max(self.peak_anon_kib, int(line.split()[1]))
            except (FileNotFoundError, ProcessLookupError, ValueError):
                return
            time.sleep(0.02)

    def _read(self, stream, tag):
        for line in stream:
            with self.cond:
                self.lines.append((time.perf_counter(), tag, line.rstrip("\n")))
                self.cond.notify_all()
        with self.cond:
            self.lines.append((time.perf_counter(), tag + "-eof", ""))
            self.cond.notify_all()

    def wait_for(self, pred, timeout, what):
        """The first (time, line) with pred(tag, line) true; exits the bench on timeout/EOF."""
        deadline = time.perf_counter() + timeout
        seen = 0
        with self.cond:
            while True:
                for t, tag, line in self.lines[seen:]:
                    if pred(tag, line):
                        return t, line
                seen = len(self.lines)
                if sum(1 for _, tag, _ in self.lines if tag.endswith("-eof")) == 2:
                    self.die(f"exited before {what}")
                left = deadline - time.perf_counter()
                if left <= 0:
                    self.die(f"no {what} within {timeout} s")
                self.cond.wait(min(left, 0.5))

    def cpu_seconds(self):
        with open(f"/proc/{self.p.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def wait_ready(self, pred, timeout, what):
        """Until pred matches a line, or the process has used no CPU for 0.5 s (whatever it
        does at start is over)."""
        deadline = time.perf_counter() + timeout
        last, idle_since = self.cpu_seconds(), time.perf_counter()
        while time.perf_counter() < deadline:
            if self.first(pred):
                return
            time.sleep(0.1)
            now_cpu = self.cpu_seconds()
            if now_cpu > last + 0.01:
                last, idle_since = now_cpu, time.perf_counter()
            elif time.perf_counter() - idle_since > 0.5:
                return
        self.die(f"no {what} within {timeout} s")

    def first(self, pred):
        with self.cond:
            return next(((t, line) for t, tag, line in self.lines if pred(tag, line)), None)

    def reap(self, timeout):
        """Waits for exit (SIGKILL after timeout); returns (status, rusage)."""
        deadline = time.perf_counter() + timeout
        while True:
            pid, status, ru = os.wait4(self.p.pid, os.WNOHANG)
            if pid:
                self.p.returncode = os.waitstatus_to_exitcode(status)
                self.status, self.rusage = self.p.returncode, ru
                LIVE.discard(self)
                for t in self.threads:
                    t.join(5)
                self.save_log()
                return self.status, ru
            if time.perf_counter() > deadline:
                self.p.kill()
                timeout, deadline = 10, time.perf_counter() + 10
            time.sleep(0.01)

    def stop(self, timeout=60):
        if self.p.returncode is None:
            self.p.send_signal(signal.SIGTERM)
        return self.reap(timeout)

    def save_log(self):
        with open(self.log_path, "w") as f:
            for t, tag, line in self.lines:
                f.write(f"{t - self.started:9.3f} {tag} {line}\n")

    def die(self, msg):
        self.p.kill()
        self.save_log()
        tail = "\n".join(f"  {tag}: {line}" for _, tag, line in self.lines[-20:])
        sys.exit(f"transfer bench: {self.name}: {msg}\n  argv: {shlex.join(self.argv)}\n{tail}\n"
                 f"  (full log: {self.log_path})")


def listen_addr(proc):
    _, line = proc.wait_for(lambda tag, l: tag == "out" and l.startswith("listening on "),
                            READY_TIMEOUT_S, "`listening on` line")
    return line.split()[-1]


def cpu(ru):
    return ru.ru_utime + ru.ru_stime


class Bitswarm:
    name = "bitswarm"

    def __init__(self, binary):
        self.bin = binary

    def seeder(self, a, log_dir):
        p = Proc("bitswarm-seed", [self.bin, "seed", a.torrent, a.seed_dir, "--listen",
                                   "127.0.0.1:0", "--no-dht", "--state",
                                   os.path.join(a.work, "seed.state")], log_dir)
        addr = listen_addr(p)
        # `data checked` is not in the CLI contract, but what `bitswarm seed` prints once its
        # check is done; without it, wait until the seeder goes idle.
        p.wait_ready(lambda tag, l: tag == "err" and "data checked" in l, READY_TIMEOUT_S,
                     "end of the data check")
        return p, addr

    def leecher(self, a, addr, log_dir):
        return Proc("bitswarm-leech", [self.bin, "download", a.torrent, "-o", a.out_dir,
                                       "--listen", "127.0.0.1:0", "--no-dht", "--state",
                                       os.path.join(a.work, "leech.state"), "--peer", addr],
                    log_dir)

    def connected(self, leecher):
        return None  # not reported: timed from the leecher's launch

    def first_byte(self, leecher):
        return None

    def reported_ttfb(self, leecher):
        """`bitswarm download` prints `first block after S s of connecting`: from the
        handshake of the connection the first payload block came on to its arrival."""
        hit = leecher.first(lambda tag, l: tag == "out" and l.startswith("first block after "))
        return hit and float(hit[1].split()[3])


class Libtorrent:
    name = "libtorrent"

    def __init__(self, script):
        self.script = script

    def seeder(self, a, log_dir):
        p = Proc("lt-seed", [PY, self.script, a.torrent, a.seed_dir, "--seed",
                             "--stats-interval", "1"], log_dir)
        addr = listen_addr(p)
        p.wait_for(lambda tag, l: tag == "out" and l == "ready", READY_TIMEOUT_S, "`ready`")
        return p, addr

    def leecher(self, a, addr, log_dir):
        return Proc("lt-leech", [PY, self.script, a.torrent, a.out_dir, "--connect", addr,
                                 "--stats-interval", "0.05"], log_dir)

    def connected(self, leecher):
        hit = leecher.first(lambda tag, l: l.startswith("peer dialing"))
        return hit and hit[0]

    def first_byte(self, leecher):
        hit = leecher.first(lambda tag, l: l.startswith("stats:")
                            and not re.search(r"downloaded=0\b", l))
        return hit and hit[0]

    def reported_ttfb(self, leecher):
        return None


def remove_outputs(a):
    shutil.rmtree(a.out_dir, ignore_errors=True)
    for f in ("leech.state", "seed.state"):
        for suffix in ("", "-wal", "-shm", "-journal"):
            try:
                os.unlink(os.path.join(a.work, f + suffix))
            except FileNotFoundError:
                pass
    os.makedirs(a.out_dir)


def warm(path):
    with open(path, "rb") as f:
        while f.read(16 * MIB):
            pass


def one_run(c, a, log_dir):
    remove_outputs(a)
    os.sync()  # no writeback of earlier runs' data during this one
    warm(a.seed_file)
    seeder, addr = c.seeder(a, log_dir)
    cpu_seed_ready = seeder.cpu_seconds()
    t0 = time.perf_counter()
    leecher = c.leecher(a, addr, log_dir)
    t_done, _ = leecher.wait_for(lambda tag, l: tag == "out" and l.startswith("complete:"),
                                 TRANSFER_TIMEOUT_S, "`complete:` line")
    # CPU up to completion as well: what follows (bitswarm syncs the data to disk before it
    # records it as verified and exits; the others leave writeback to the kernel) is shown apart.
    try:
        cpu_done = leecher.cpu_seconds() + seeder.cpu_seconds() - cpu_seed_ready
    except (FileNotFoundError, ProcessLookupError):
        cpu_done = None  # the leecher already exited: the exit figures stand for it
    l_status, l_ru = leecher.reap(60)
    s_status, s_ru = seeder.stop()
    if l_status != 0 or s_status != 0:
        sys.exit(f"transfer bench: {c.name}: exit codes leecher {l_status} seeder {s_status} "
                 f"(logs in {log_dir})")
    got = os.path.join(a.out_dir, os.path.basename(a.seed_file))
    if os.path.getsize(got) != a.size:
        sys.exit(f"transfer bench: {c.name}: {got} has the wrong size")
    if a.verify and subprocess.run(["cmp", "-s", a.seed_file, got]).returncode != 0:
        sys.exit(f"transfer bench: {c.name}: {got} differs from the seeded file")
    t_conn = c.connected(leecher)
    t_first = c.first_byte(leecher)
    reported = c.reported_ttfb(leecher)
    start = t_conn or t0
    if reported is None and t_first:
        reported = t_first - start
    return {
        "wall": t_done - start,
        "launch_wall": t_done - t0,
        "ttfb": reported,
        "cpu_seed": cpu(s_ru) - cpu_seed_ready, "cpu_seed_check": cpu_seed_ready,
        "cpu_leech": cpu(l_ru),
        "cpu_done": cpu_done if cpu_done is not None else cpu(s_ru) - cpu_seed_ready + cpu(l_ru),
        "rss_seed": s_ru.ru_maxrss / 1024, "rss_leech": l_ru.ru_maxrss / 1024,
        "anon_seed": seeder.peak_anon_kib / 1024, "anon_leech": leecher.peak_anon_kib / 1024,
    }


def run_ceiling(cmd, size_mib):
    out = subprocess.run(shlex.split(cmd) + [str(size_mib)], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"transfer bench: ceiling `{cmd}` failed:\n{out.stdout}{out.stderr}")
    line = out.stdout.strip().splitlines()[-1]
    rate = re.search(r"([\d.]+) MiB/s", line)
    per_gib = re.search(r"([\d.]+) cpu-s/GiB", line)
    if not rate:
        sys.exit(f"transfer bench: cannot read MiB/s from the ceiling's output: {line!r}")
    return {"rate": float(rate.group(1)),
            "cpu_per_gib": float(per_gib.group(1)) if per_gib else None, "line": line}


def describe(name, r, size):
    ttfb = f"{r['ttfb'] * 1000:.1f} ms" if r["ttfb"] is not None else "n/a"
    return (f"{name:<11} {size / MIB / r['wall']:8.1f} MiB/s  wall {r['wall']:6.2f} s "
            f"(from launch {r['launch_wall']:6.2f} s)  cpu seed {r['cpu_seed']:5.2f} s "
            f"(+ check {r['cpu_seed_check']:5.2f} s) "
            f"leech {r['cpu_leech']:5.2f} s (both {r['cpu_done']:5.2f} s at completion)  rss (anon) seed {r['rss_seed']:.0f} "
            f"({r['anon_seed']:.0f}) MiB leech {r['rss_leech']:.0f} ({r['anon_leech']:.0f}) MiB  "
            f"ttfb {ttfb}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--seed-file", required=True)
    ap.add_argument("--torrent", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--bitswarm", help="bitswarm binary (omit to leave bitswarm out)")
    ap.add_argument("--lt-script", required=True)
    ap.add_argument("--ceiling", default="")
    ap.add_argument("--verify", action="store_true", help="cmp every output with the seed")
    a = ap.parse_args()
    a.seed_dir = os.path.dirname(a.seed_file)
    a.out_dir = os.path.join(a.work, "leech")
    a.size = os.path.getsize(a.seed_file)
    log_dir = os.path.join(a.work, "logs")
    os.makedirs(log_dir, exist_ok=True)

    contenders = [Libtorrent(a.lt_script)]
    if a.bitswarm:
        contenders.insert(0, Bitswarm(a.bitswarm))
    results = {c.name: [] for c in contenders}
    ceiling = []
    for rnd in range(a.runs):
        order = contenders[rnd % len(contenders):] + contenders[:rnd % len(contenders)]
        for c in order:
            r = one_run(c, a, log_dir)
            results[c.name].append(r)
            print(f"round {rnd + 1}: {describe(c.name, r, a.size)}", flush=True)
        if a.ceiling:
            remove_outputs(a)
            ceiling.append(run_ceiling(a.ceiling, a.size // MIB))
            print(f"round {rnd + 1}: ceiling     {ceiling[-1]['line']}", flush=True)
    remove_outputs(a)
    report(results, ceiling, a.size)


def report(results, ceiling, size):
    gib = size / (1 << 30)
    best = {name: min(runs, key=lambda r: r["wall"]) for name, runs in results.items()}
    print(f"\nbest of {len(next(iter(results.values())))} (by wall time):")
    print("| contender | MiB/s | wall s | CPU s seeder (after its check) | CPU s leecher "
          "| CPU s/GiB (both) "
          "| peak RSS seeder MiB (anon) | peak RSS leecher MiB (anon) | time to first byte |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in best.items():
        ttfb = f"{r['ttfb'] * 1000:.1f} ms" if r["ttfb"] is not None else "n/a"
        print(f"| {name} | {size / MIB / r['wall']:.0f} | {r['wall']:.2f} | {r['cpu_seed']:.2f} "
              f"| {r['cpu_leech']:.2f} | {(r['cpu_seed'] + r['cpu_leech']) / gib:.2f} "
              f"| {r['rss_seed']:.0f} ({r['anon_seed']:.0f}) "
              f"| {r['rss_leech']:.0f} ({r['anon_leech']:.0f}) | {ttfb} |")
    top = max(ceiling, key=lambda c: c["rate"]) if ceiling else None
    if top:
        print(f"| ceiling | {top['rate']:.0f} | {size / MIB / top['rate']:.2f} | | "
              f"| {top['cpu_per_gib'] if top['cpu_per_gib'] is not None else ''} | | | |")
    else:
        print("(ceiling skipped: set CEILING_SCRIPT to a command taking SIZE_MIB that prints "
              "'... N MiB/s, C cpu-s/GiB ...')")
    lt = best.get("libtorrent")
    for name, r in best.items():
        if name == "libtorrent":
            continue
        rate = size / MIB / r["wall"]
        parts = [f"{name}/libtorrent: throughput {lt['wall'] / r['wall']:.2f}, CPU "
                 f"{(r['cpu_seed'] + r['cpu_leech']) / (lt['cpu_seed'] + lt['cpu_leech']):.2f}, "
                 f"anon RSS seeder {r['anon_seed'] / lt['anon_seed']:.2f} "
                 f"leecher {r['anon_leech'] / lt['anon_leech']:.2f}"]
        if top:
            parts.append(f"{name}/ceiling: throughput {rate / top['rate']:.2f}")
        print("; ".join(parts))
    if top and lt:
        print(f"libtorrent/ceiling: throughput {size / MIB / lt['wall'] / top['rate']:.2f}")
    if ceiling and all(c["cpu_per_gib"] for c in ceiling):
        # Same-round pairs: on a loaded machine the load hits a round's contenders alike.
        for name, runs in results.items():
            ratios = sorted((r["cpu_seed"] + r["cpu_leech"]) / gib / c["cpu_per_gib"]
                            for r, c in zip(runs, ceiling))
            print(f"{name}/ceiling CPU per GiB, round by round (sorted): "
                  + ", ".join(f"{x:.2f}" for x in ratios)
                  + f"; median {ratios[len(ratios) // 2]:.2f}")
            done = sorted(r["cpu_done"] / gib / c["cpu_per_gib"] for r, c in zip(runs, ceiling))
            print(f"{name}/ceiling CPU per GiB up to completion (final sync and exit left out), "
                  "round by round (sorted): " + ", ".join(f"{x:.2f}" for x in done)
                  + f"; median {done[len(done) // 2]:.2f}")


if __name__ == "__main__":
    main()
