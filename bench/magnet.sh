#!/usr/bin/env bash
# Magnet metadata benchmark (BEP 9): how long from starting `bitswarm download MAGNET --peer
# SEEDER` to its `metadata:` line, next to libtorrent fetching the same magnet link from the
# same seeder in the same run (python3-libtorrent, `metadata_received_alert`), alternating
# round by round, best of RUNS, with the ratio. The seeder is libtorrent with ut_metadata,
# over loopback, no tracker, no DHT.
#
#   bench/magnet.sh                    # 1 GiB torrent in 256 KiB pieces (80 KiB of metadata)
#   SIZE_MIB=4096 RUNS=10 bench/magnet.sh
#
# Env: SIZE_MIB (1024: the payload is a sparse file of zeros, so the size only sets the number
# of pieces and so the metadata size), PIECE (256K), RUNS (5), WORK_DIR
# (${TMPDIR:-/tmp}/bitswarm-magnet-bench), BITSWARM (binary; default target/release/bitswarm
# built here). Needs (Debian): python3-libtorrent.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB=${SIZE_MIB:-1024}
PIECE=${PIECE:-256K}
RUNS=${RUNS:-5}
WORK_DIR=${WORK_DIR:-${TMPDIR:-/tmp}/bitswarm-magnet-bench}
PY=/usr/bin/python3
LT_MAGNET=crates/bitswarm/tests/support/lt_magnet.py

die() { echo "magnet.sh: $*" >&2; exit 1; }
$PY -c 'import libtorrent' 2>/dev/null || die "python3-libtorrent missing (apt-get install python3-libtorrent)"
if [ -z "${BITSWARM:-}" ]; then
    cargo build --release --quiet -p bitswarm
    BITSWARM=target/release/bitswarm
fi
BITSWARM=$(realpath "$BITSWARM")

mkdir -p "$WORK_DIR/seed"
data="$WORK_DIR/seed/magnet-${SIZE_MIB}M.bin"
torrent="$WORK_DIR/magnet-${SIZE_MIB}M-${PIECE}.torrent"
if [ ! -f "$data" ] || [ "$(stat -c %s "$data")" -ne $((SIZE_MIB * 1048576)) ]; then
    rm -f "$data"
    truncate -s $((SIZE_MIB * 1048576)) "$data"
    rm -f "$torrent"
fi
if [ ! -f "$torrent" ]; then
    "$BITSWARM" create --no-date --piece-size "$PIECE" "$data" -o "$torrent" >/dev/null 2>&1 ||
        die "cannot make $torrent with $BITSWARM create"
fi
info=$("$BITSWARM" info --json "$torrent")
hash=$(echo "$info" | $PY -c 'import json,sys; print(json.load(sys.stdin)["info_hash"])')
pieces=$(echo "$info" | $PY -c 'import json,sys; d=json.load(sys.stdin); print(-(-d["total_size"] // d["piece_size"]))')
magnet="magnet:?xt=urn:btih:$hash"

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) cores," \
    "kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "torrent: $SIZE_MIB MiB, $PIECE pieces ($pieces pieces, ~$(( (pieces * 20 + 1023) / 1024 )) KiB of metadata); best of $RUNS"
echo "seeder: libtorrent $($PY -c 'import libtorrent; print(libtorrent.__version__)') (lt_magnet.py seed), loopback"
$PY bench/magnet-run.py "$BITSWARM" "$LT_MAGNET" "$torrent" "$WORK_DIR/seed" "$magnet" "$WORK_DIR" "$RUNS"
