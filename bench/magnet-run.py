"""Times magnet metadata fetches for bench/magnet.sh: one libtorrent seeder (lt_magnet.py seed),
then, alternating round by round, `bitswarm download MAGNET --peer SEEDER` and libtorrent's own
fetch of the same magnet (lt_magnet.py fetch --metadata-only), each from a fresh process and a
fresh directory. Measured per run: wall time from spawning the process to its `metadata:` line
on stdout (process start-up included for both: Python and `import libtorrent` for libtorrent,
the Rust binary for bitswarm). Also shown: each client's own figure (bitswarm's printed time
from starting its fetch; libtorrent's `lt_internal` from add_torrent to metadata_received_alert).

usage: magnet-run.py BITSWARM LT_MAGNET_PY TORRENT SEED_DIR MAGNET WORK_DIR RUNS
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import time

TIMEOUT_S = 60.0


def start(cmd):
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def until_line(proc, prefix, started):
    """Seconds from `started` to the first stdout line starting with `prefix`, and the line."""
    deadline = started + TIMEOUT_S
    for line in proc.stdout:
        if line.startswith(prefix):
            return time.monotonic() - started, line.strip()
        if time.monotonic() > deadline:
            break
    raise SystemExit(f"magnet-run: no `{prefix}` line from {proc.args[:3]}")


def stop(proc):
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def main():
    bitswarm, script, torrent, seed_dir, magnet, work, runs = sys.argv[1:]
    runs = int(runs)
    py = sys.executable
    seeder = start([py, script, "seed", torrent, seed_dir])
    try:
        t0 = time.monotonic()
        _, listen = until_line(seeder, "listening on ", t0)
        until_line(seeder, "ready", t0)
        peer = listen.split()[-1]
        results = {"bitswarm": [], "libtorrent": []}
        own = {"bitswarm": [], "libtorrent": []}
        for i in range(runs):
            for name in ("bitswarm", "libtorrent"):
                out = os.path.join(work, f"run-{name}-{i}")
                shutil.rmtree(out, ignore_errors=True)
                os.makedirs(out)
                if name == "bitswarm":
                    cmd = [bitswarm, "download", magnet, "--peer", peer, "-o", out,
                           "--no-dht", "--listen", "127.0.0.1:0",
                           "--state", os.path.join(out, "state.sqlite")]
                else:
                    cmd = [py, script, "fetch", magnet, out, "--connect", peer, "--metadata-only"]
                started = time.monotonic()
                proc = start(cmd)
                took, line = until_line(proc, "metadata:", started)
                stop(proc)
                shutil.rmtree(out, ignore_errors=True)
                m = re.search(r"lt_internal=([0-9.]+)", line) or re.search(r"in ([0-9.]+) s", line)
                results[name].append(took)
                own[name].append(float(m.group(1)))
                print(f"run {i + 1} {name}: {took:.3f} s to `metadata:` (own figure {own[name][-1]:.3f} s)",
                      flush=True)
        best = {k: min(v) for k, v in results.items()}
        best_own = {k: min(v) for k, v in own.items()}
        print(f"RESULT bitswarm best={best['bitswarm']:.3f}s own={best_own['bitswarm']:.3f}s "
              f"libtorrent best={best['libtorrent']:.3f}s own={best_own['libtorrent']:.3f}s "
              f"ratio(bitswarm/libtorrent)={best['bitswarm'] / best['libtorrent']:.3f} "
              f"own_ratio={best_own['bitswarm'] / max(best_own['libtorrent'], 1e-6):.3f}")
    finally:
        stop(seeder)


if __name__ == "__main__":
    main()
