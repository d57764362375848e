#!/usr/bin/env bash
# Swarm benchmark: one tracker, one seeder and N leechers, each on its own host (network
# namespace) behind a shaped access link, against the fluid-model bound
#   T* = max(F/u_s, N*F/(u_s + sum u_i), F/d_min)
# (F file size, u_s seeder upload, u_i leecher uploads, d_min smallest download). Runs the
# same swarm twice on the same links and the same tracker (`bitswarm tracker`): bitswarm
# everywhere, then libtorrent everywhere (bench/swarm/lt_client.py), and prints each leecher's
# completion time, the last one, and the ratios to T*.
#
#   bench/swarm.sh            # N=20 leechers
#   bench/swarm.sh 10
#   SIZE_MIB=16 CLIENTS=bitswarm bench/swarm.sh 5
#
# Topology: a "switch" namespace holds a bridge; every host namespace has one veth (eth0)
# to it. A host's upload is shaped on eth0's egress inside the host, its download on the
# egress of its bridge-side veth, each with htb (leaf bfifo of about 200 ms of the rate).
# Addresses are 10.77.0.0/16 inside these namespaces only; nothing is added to the root
# namespace. Everything (processes, namespaces, the work dir it made unless KEEP=1) is
# removed on exit, also on failure, Ctrl-C or SIGTERM.
#
# Env (defaults): SIZE_MIB (64), PIECE (256K), UP_MIN_KBIT/UP_MAX_KBIT (2000/8000: leecher
# uploads spread evenly), DOWN_FACTOR (4: a leecher's download = 4 x its upload), SEED_UP_KBIT
# (10000), SEED_DOWN_KBIT (40000), TRACKER_KBIT (10000, both ways), QUEUE_MS (200),
# CLIENTS ("bitswarm libtorrent"), RUN_TIMEOUT_S (600), ANNOUNCE_INTERVAL_S (60: the
# tracker's interval, so every client re-announces during the run as in a long download),
# LT_LOCAL_CLASS=1 (libtorrent keeps its LAN mode for 10/8 peers: every interested peer
# unchoked; by default they are put in its global class, i.e. treated as internet peers),
# WORK_DIR (default: a new dir under $TMPDIR or /tmp, removed at exit; a given WORK_DIR is
# kept), BITSWARM (a binary to use instead of building target/release/bitswarm), KEEP=1
# (keep the work dir: logs, results JSON, per-process output).
# Needs: root, iproute2 (ip, tc), Debian's /usr/bin/python3 with python3-libtorrent.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
N=${1:-20}
SIZE_MIB=${SIZE_MIB:-64}
PIECE=${PIECE:-256K}
UP_MIN_KBIT=${UP_MIN_KBIT:-2000}
UP_MAX_KBIT=${UP_MAX_KBIT:-8000}
DOWN_FACTOR=${DOWN_FACTOR:-4}
SEED_UP_KBIT=${SEED_UP_KBIT:-10000}
SEED_DOWN_KBIT=${SEED_DOWN_KBIT:-40000}
TRACKER_KBIT=${TRACKER_KBIT:-10000}
QUEUE_MS=${QUEUE_MS:-200}
CLIENTS=${CLIENTS:-bitswarm libtorrent}
RUN_TIMEOUT_S=${RUN_TIMEOUT_S:-600}
ANNOUNCE_INTERVAL_S=${ANNOUNCE_INTERVAL_S:-60}
PY=/usr/bin/python3
PFX="bsw$$"
SW="$PFX-sw"
NAMESPACES=()
WORK=""
# The work dir is removed at exit only when this script made it.
MADE_WORK=0

die() { echo "swarm.sh: $*" >&2; exit 1; }

cleanup() {
    trap - EXIT INT TERM HUP
    set +e
    for ns in "${NAMESPACES[@]}"; do
        # Whatever still runs inside our namespaces was started by this script.
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -TERM "$pid" 2>/dev/null; done
    done
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        left=0
        for ns in "${NAMESPACES[@]}"; do
            [ -n "$(ip netns pids "$ns" 2>/dev/null)" ] && left=1
        done
        [ "$left" = 0 ] && break
        sleep 0.5
    done
    for ns in "${NAMESPACES[@]}"; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
        ip netns del "$ns" 2>/dev/null
    done
    if [ "$MADE_WORK" = 1 ] && [ -d "$WORK" ]; then
        if [ "${KEEP:-0}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
    elif [ -n "$WORK" ]; then
        echo "results and logs in $WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

[ "$(id -u)" = 0 ] || die "needs root (network namespaces, tc)"
command -v ip >/dev/null && command -v tc >/dev/null || die "needs iproute2 (ip, tc)"
$PY -c 'import libtorrent' 2>/dev/null || die "python3-libtorrent missing (apt-get install python3-libtorrent)"
[ "$N" -ge 1 ] && [ "$N" -le 250 ] || die "N must be 1..250"

if [ -n "${WORK_DIR:-}" ]; then
    WORK=$WORK_DIR
    [ ! -e "$WORK/hosts-ns.tsv" ] || die "$WORK holds an earlier run: give an empty WORK_DIR"
    mkdir -p "$WORK"
else
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/bsw-swarm.XXXXXX")
    MADE_WORK=1
fi
# A private copy of the binary: other builds may replace target/release/bitswarm mid-run.
if [ -z "${BITSWARM:-}" ]; then
    cargo build --release --quiet -p bitswarm || die "release build failed (set BITSWARM=path to use a built binary)"
    BITSWARM=target/release/bitswarm
fi
mkdir -p "$WORK/bin"
cp "$BITSWARM" "$WORK/bin/bitswarm"
BIN="$WORK/bin/bitswarm"

# --- hosts: role name ip up_kbit down_kbit ---------------------------------------------------
hosts="$WORK/hosts.tsv"
{
    printf 'tracker\ttrk\t10.77.0.1\t%s\t%s\n' "$TRACKER_KBIT" "$TRACKER_KBIT"
    printf 'seeder\tseed\t10.77.0.2\t%s\t%s\n' "$SEED_UP_KBIT" "$SEED_DOWN_KBIT"
    for ((i = 0; i < N; i++)); do
        if [ "$N" -gt 1 ]; then
            up=$((UP_MIN_KBIT + ((UP_MAX_KBIT - UP_MIN_KBIT) * i + (N - 1) / 2) / (N - 1)))
        else
            up=$UP_MIN_KBIT
        fi
        printf 'leecher\tl%02d\t10.77.%d.%d\t%s\t%s\n' "$i" $((1 + i / 200)) $((10 + i % 200)) \
            "$up" $((up * DOWN_FACTOR))
    done
} >"$hosts"

# --- network -----------------------------------------------------------------------------------
# htb on DEV's egress at RATE kbit/s, a byte FIFO of QUEUE_MS of that rate (at least 20 packets).
shape() {
    local ns=$1 dev=$2 rate=$3
    local limit=$((rate * 1000 / 8 * QUEUE_MS / 1000))
    [ "$limit" -ge 30000 ] || limit=30000
    tc -n "$ns" qdisc add dev "$dev" root handle 1: htb default 1
    tc -n "$ns" class add dev "$dev" parent 1: classid 1:1 htb rate "${rate}kbit" ceil "${rate}kbit" quantum 1514
    tc -n "$ns" qdisc add dev "$dev" parent 1:1 handle 10: bfifo limit "$limit"
    # One MSS per skb: without segmentation offload a 64 KiB GSO burst cannot jump the queue.
    ip -n "$ns" link set dev "$dev" gso_max_segs 1 2>/dev/null || true
}

ip netns add "$SW"
NAMESPACES+=("$SW")
ip -n "$SW" link set lo up
ip -n "$SW" link add br0 type bridge
ip -n "$SW" link set br0 up
k=0
while IFS=$'\t' read -r role name addr up down; do
    ns="$PFX-$name"
    ip netns add "$ns"
    NAMESPACES+=("$ns")
    ip -n "$SW" link add "v$k" type veth peer name eth0 netns "$ns"
    ip -n "$SW" link set "v$k" master br0 up
    ip -n "$ns" link set lo up
    ip -n "$ns" addr add "$addr/16" dev eth0
    ip -n "$ns" link set eth0 up
    shape "$ns" eth0 "$up"
    shape "$SW" "v$k" "$down"
    printf '%s\t%s\t%s\t%s\t%s\tv%d\t%s\n' "$role" "$name" "$addr" "$up" "$down" "$k" "$ns" >>"$WORK/hosts-ns.tsv"
    k=$((k + 1))
done <"$hosts"
# Bounded wait for the last host to reach the tracker host through the bridge.
last_ns=$(tail -n1 "$WORK/hosts-ns.tsv" | cut -f7)
ok=0
for _ in $(seq 1 20); do
    # A refused connection (RST from the tracker host's kernel) proves the path works.
    if ip netns exec "$last_ns" $PY -c 'import socket,sys
try: socket.create_connection(("10.77.0.1", 9), timeout=1)
except ConnectionRefusedError: sys.exit(0)
except OSError: sys.exit(1)' 2>/dev/null; then ok=1; break; fi
    sleep 0.25
done
[ "$ok" = 1 ] || die "hosts cannot reach each other over the bridge"

# --- data and torrent --------------------------------------------------------------------------
mkdir -p "$WORK/data"
head -c $((SIZE_MIB * 1048576)) /dev/urandom >"$WORK/data/swarm.bin"
"$BIN" create --no-date -p "$PIECE" -t http://10.77.0.1:6969/announce \
    -o "$WORK/swarm.torrent" "$WORK/data/swarm.bin" >/dev/null 2>&1 || die "bitswarm create failed"

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) cores," \
    "kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "bitswarm $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo '+dirty')," \
    "libtorrent $($PY -c 'import libtorrent; print(libtorrent.__version__)'), TCP $(cat /proc/sys/net/ipv4/tcp_congestion_control)"
echo "swarm: $N leechers, $SIZE_MIB MiB file, $PIECE pieces; leecher up ${UP_MIN_KBIT}-${UP_MAX_KBIT} kbit/s," \
    "down ${DOWN_FACTOR}x up; seeder up $SEED_UP_KBIT down $SEED_DOWN_KBIT kbit/s; htb + ${QUEUE_MS} ms bfifo"
echo "rerun: SIZE_MIB=$SIZE_MIB PIECE=$PIECE UP_MIN_KBIT=$UP_MIN_KBIT UP_MAX_KBIT=$UP_MAX_KBIT" \
    "DOWN_FACTOR=$DOWN_FACTOR SEED_UP_KBIT=$SEED_UP_KBIT SEED_DOWN_KBIT=$SEED_DOWN_KBIT" \
    "ANNOUNCE_INTERVAL_S=$ANNOUNCE_INTERVAL_S QUEUE_MS=$QUEUE_MS${LT_LOCAL_CLASS:+ LT_LOCAL_CLASS=1} bench/swarm.sh $N"

# --- runs --------------------------------------------------------------------------------------
results=()
for client in $CLIENTS; do
    echo "== $client"
    out="$WORK/result-$client.json"
    # The driver runs on the tracker host, so it can scrape the tracker directly. It runs in
    # the background so that Ctrl-C or SIGTERM reach the traps at once (bash runs a trap only
    # after a foreground command ends; `wait` returns early); cleanup then stops the driver
    # with everything else in the namespaces.
    ip netns exec "$PFX-trk" $PY "$REPO/bench/swarm/run.py" run --client "$client" \
        --hosts "$WORK/hosts-ns.tsv" --switch-ns "$SW" --work "$WORK" --bitswarm "$BIN" \
        --torrent "$WORK/swarm.torrent" --data "$WORK/data" --lt-client "$REPO/bench/swarm/lt_client.py" \
        --timeout "$RUN_TIMEOUT_S" --announce-interval "$ANNOUNCE_INTERVAL_S" \
        ${LT_LOCAL_CLASS:+--lt-local-class} --out "$out" &
    wait $! || die "$client run failed (logs in $WORK/$client/logs; KEEP=1 keeps them)"
    results+=("$out")
done
$PY "$REPO/bench/swarm/run.py" report --hosts "$WORK/hosts-ns.tsv" --torrent-size $((SIZE_MIB * 1048576)) "${results[@]}"
echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
