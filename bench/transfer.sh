#!/usr/bin/env bash
# Transfer benchmark: one seeder to one leecher over loopback, a single 1 GiB file, the same
# torrent for every contender, in the same run: bitswarm -> bitswarm (once `bitswarm seed` and
# `bitswarm download` exist) and libtorrent -> libtorrent (python3-libtorrent, plaintext TCP,
# defaults otherwise), alternating round by round, best of RUNS; plus a reference ceiling if
# CEILING_SCRIPT is set. Prints, per contender: MiB/s (payload / wall time from the leecher's
# first connection, or its launch where the client does not report connecting, to its
# `complete:` line), CPU seconds (the seeder's counted from the end of its start-up check of the
# data, which is shown apart; to exit, and also up to the leecher's `complete:` line, since
# bitswarm then syncs the data before recording it and exiting while the others leave writeback
# to the kernel) and peak RSS of seeder and leecher (wait4 rusage), time to first
# byte (bitswarm: the `first block after S s of connecting` line of `bitswarm download`, from
# the handshake to the first payload block; libtorrent: from its dial to the first 50 ms stats
# sample showing payload), and ratios to libtorrent and to the ceiling.
#
#   bench/transfer.sh                                   # 1 GiB, best of 3
#   SIZE_MIB=256 RUNS=5 bench/transfer.sh
#   CEILING_SCRIPT="/usr/bin/python3 /path/to/transfer-ceiling.py" bench/transfer.sh
#
# Env: SIZE_MIB (1024), RUNS (3), WORK_DIR (${TMPDIR:-/tmp}/bitswarm-swarm-bench; the seed
# file and torrent are kept and reused, the leecher's output is written next to them on the
# same filesystem and deleted between runs), BITSWARM (binary; default target/release/bitswarm
# built here), CEILING_SCRIPT (a command; it gets SIZE_MIB as its last argument and prints a
# line with "N MiB/s" and "C cpu-s/GiB"), VERIFY=1 (cmp every output with the seed file).
# Needs (Debian): python3-libtorrent. Transmission is not a contender: it cannot be told to
# dial a peer and ignores loopback peers from trackers (see BENCHMARKS.md).
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB=${SIZE_MIB:-1024}
RUNS=${RUNS:-3}
WORK_DIR=${WORK_DIR:-${TMPDIR:-/tmp}/bitswarm-swarm-bench}
PY=/usr/bin/python3

die() { echo "transfer.sh: $*" >&2; exit 1; }
$PY -c 'import libtorrent' 2>/dev/null || die "python3-libtorrent missing (apt-get install python3-libtorrent)"

if [ -z "${BITSWARM:-}" ]; then
    cargo build --release --quiet -p bitswarm
    BITSWARM=target/release/bitswarm
fi
BITSWARM=$(realpath "$BITSWARM")
bs_args=(--bitswarm "$BITSWARM")
if ! "$BITSWARM" download --help >/dev/null 2>&1 || ! "$BITSWARM" seed --help >/dev/null 2>&1; then
    echo "($BITSWARM has no download/seed subcommands yet: bitswarm left out of this run)"
    bs_args=()
fi

mkdir -p "$WORK_DIR/seed"
data="$WORK_DIR/seed/bench-${SIZE_MIB}M.bin"
torrent="$WORK_DIR/bench-${SIZE_MIB}M.torrent"
if [ ! -f "$data" ] || [ "$(stat -c %s "$data")" -ne $((SIZE_MIB * 1048576)) ]; then
    echo "writing $SIZE_MIB MiB of random data to $data"
    head -c $((SIZE_MIB * 1048576)) /dev/urandom >"$data.tmp"
    mv "$data.tmp" "$data"
    rm -f "$torrent"
fi
if [ ! -f "$torrent" ]; then
    "$BITSWARM" create --no-date "$data" -o "$torrent" >/dev/null 2>&1 ||
        die "cannot make $torrent with $BITSWARM create"
fi
piece=$("$BITSWARM" info --json "$torrent" 2>/dev/null | $PY -c 'import json,sys; print(json.load(sys.stdin)["piece_size"])')

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) cores," \
    "$(free -g | awk '/^Mem:/ {print $2}') GiB RAM, kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "data: $SIZE_MIB MiB single file, $((piece / 1024)) KiB pieces, filesystem $(df -T "$WORK_DIR" | awk 'NR==2 {print $2}'); best of $RUNS"
echo "libtorrent $($PY -c 'import libtorrent; print(libtorrent.__version__)'), bitswarm $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo '+dirty')"
echo "rerun: SIZE_MIB=$SIZE_MIB RUNS=$RUNS${CEILING_SCRIPT:+ CEILING_SCRIPT=\"$CEILING_SCRIPT\"} bench/transfer.sh"
[ -n "${CEILING_SCRIPT:-}" ] || echo "(CEILING_SCRIPT not set: ceiling skipped)"

exec $PY bench/transfer-run.py --work "$WORK_DIR" --seed-file "$data" --torrent "$torrent" \
    --runs "$RUNS" --lt-script crates/bitswarm/tests/support/lt_peer.py \
    --ceiling "${CEILING_SCRIPT:-}" ${VERIFY:+--verify} "${bs_args[@]}"
