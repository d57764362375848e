#!/usr/bin/env bash
# Torrent creation benchmark: bitswarm vs mktorrent vs libtorrent (python3-libtorrent) on one
# file read from the page cache, all with the same piece size, best of RUNS each, interleaved;
# plus OpenSSL's single-core SHA-1 speed × cores as the ceiling. Checks that all three give
# the same info-hash.
#
#   bench/create.sh                      # 2 GiB file, 3 runs each
#   SIZE_MIB=512 RUNS=5 bench/create.sh  # other sizes / run counts
#
# Env: SIZE_MIB (2048), RUNS (3), WORK_DIR (${TMPDIR:-/tmp}/bitswarm-create-bench; the data
# file is kept there and reused), PIECE_EXP (default: bitswarm's automatic piece length for
# the size, at least 2^15, mktorrent's minimum), BITSWARM (a command to use instead of
# `target/release/bitswarm create`; it gets `--no-date --piece-size BYTES PATH -o OUT`).
# Needs (Debian): mktorrent, python3-libtorrent, openssl, time.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB=${SIZE_MIB:-2048}
RUNS=${RUNS:-3}
WORK_DIR=${WORK_DIR:-${TMPDIR:-/tmp}/bitswarm-create-bench}
PY=/usr/bin/python3
NPROC=$(nproc)

die() { echo "create.sh: $*" >&2; exit 1; }
command -v mktorrent >/dev/null || die "mktorrent missing (apt-get install mktorrent)"
command -v openssl >/dev/null || die "openssl missing (apt-get install openssl)"
[ -x /usr/bin/time ] || die "/usr/bin/time missing (apt-get install time)"
$PY -c 'import libtorrent' 2>/dev/null || die "python3-libtorrent missing (apt-get install python3-libtorrent)"

# The piece size: bitswarm's automatic rule (smallest power of two giving <= 2000 pieces,
# 16 KiB..16 MiB), raised to mktorrent's minimum of 2^15, unless PIECE_EXP is given.
size=$((SIZE_MIB * 1048576))
if [ -z "${PIECE_EXP:-}" ]; then
    PIECE_EXP=14
    while [ $(((1 << PIECE_EXP) * 2000)) -lt "$size" ] && [ "$PIECE_EXP" -lt 24 ]; do
        PIECE_EXP=$((PIECE_EXP + 1))
    done
    [ "$PIECE_EXP" -ge 15 ] || PIECE_EXP=15
fi
PIECE=$((1 << PIECE_EXP))

# bitswarm: the CLI when it has `create`, else this crate's example binary.
if [ -n "${BITSWARM:-}" ]; then
    read -r -a BS <<<"$BITSWARM"
    BS+=(--no-date --piece-size "$PIECE")
else
    cargo build --release --quiet -p bitswarm 2>/dev/null ||
        echo "(cargo build -p bitswarm failed; trying an existing target/release/bitswarm)"
    if target/release/bitswarm create --help >/dev/null 2>&1; then
        BS=(target/release/bitswarm create --no-date --piece-size "$PIECE")
    else
        echo "(target/release/bitswarm has no create subcommand: using the bitswarm-create example)"
        cargo build --release --quiet -p bitswarm-create --example create
        BS=(target/release/examples/create --no-date --piece-size "$PIECE")
    fi
fi

# Our SHA-1 alone (same 16 KiB blocks as `openssl speed`), to compare the implementations.
cargo build --release --quiet -p bitswarm-create --example sha1_speed 2>/dev/null ||
    echo "(cannot build the sha1_speed example: no RustCrypto SHA-1 figure this time)"

mkdir -p "$WORK_DIR"
DATA=$WORK_DIR/data-$SIZE_MIB.bin
if [ ! -f "$DATA" ] || [ "$(stat -c %s "$DATA")" != "$size" ]; then
    echo "writing $SIZE_MIB MiB of random data to $DATA"
    head -c "$size" /dev/urandom >"$DATA.tmp" && mv "$DATA.tmp" "$DATA"
fi
cat "$DATA" >/dev/null # warm the page cache

echo "machine: $NPROC cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')," \
    "SHA-NI: $(grep -qw sha_ni /proc/cpuinfo && echo yes || echo no)"
echo "data: $SIZE_MIB MiB in one file, piece size 2^$PIECE_EXP = $PIECE bytes, best of $RUNS runs"
echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(date -u +%Y-%m-%d)"
echo "bitswarm: ${BS[*]}"
echo "load average before the runs: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews wall times; CPU s less so)"

# time_run NAME CMD...: runs CMD under /usr/bin/time, appends "NAME wall cpu" to $RESULTS.
RESULTS=$WORK_DIR/results.txt
: >"$RESULTS"
time_run() {
    local name=$1
    shift
    /usr/bin/time -f "%e %U %S" -o "$WORK_DIR/time.txt" "$@" >"$WORK_DIR/$name.log" 2>&1 ||
        die "$name failed: $(tail -3 "$WORK_DIR/$name.log")"
    read -r wall user sys <"$WORK_DIR/time.txt"
    echo "$name $wall $user $sys" >>"$RESULTS"
}

for run in $(seq "$RUNS"); do
    rm -f "$WORK_DIR"/*.torrent
    time_run bitswarm "${BS[@]}" "$DATA" -o "$WORK_DIR/bitswarm.torrent"
    time_run mktorrent mktorrent -d -t "$NPROC" -l "$PIECE_EXP" -o "$WORK_DIR/mktorrent.torrent" "$DATA"
    time_run libtorrent $PY bench/create-libtorrent.py "$DATA" "$WORK_DIR/libtorrent.torrent" "$PIECE"
    # Single-core SHA-1 on 16 KiB blocks: OpenSSL per wall second (-elapsed) and per CPU
    # second (its default), and ours (RustCrypto sha1) over 1 GiB, both ways.
    openssl speed -elapsed -evp sha1 -bytes 16384 -seconds 2 2>/dev/null |
        awk '/^sha1/ { sub("k", "", $2); print "ossl_wall", $2 * 1000 / 1048576 }' >>"$RESULTS"
    openssl speed -evp sha1 -bytes 16384 -seconds 2 2>/dev/null |
        awk '/^sha1/ { sub("k", "", $2); print "ossl_cpu", $2 * 1000 / 1048576 }' >>"$RESULTS"
    if [ -x target/release/examples/sha1_speed ]; then
        /usr/bin/time -f "%U %S" -o "$WORK_DIR/time.txt" target/release/examples/sha1_speed 1024 >"$WORK_DIR/sha1.log"
        awk -v cpu="$(awk '{ print $1 + $2 }' "$WORK_DIR/time.txt")" \
            '{ print "rust_wall", $2 / $4; print "rust_cpu", $2 / cpu }' "$WORK_DIR/sha1.log" >>"$RESULTS"
    fi
    echo "run $run/$RUNS done"
done

# Info-hashes must agree (same data, name and piece size).
hashes=$($PY - "$WORK_DIR" <<'EOF'
import sys, libtorrent as lt
for name in ("bitswarm", "mktorrent", "libtorrent"):
    ti = lt.torrent_info(f"{sys.argv[1]}/{name}.torrent")
    print(name, ti.info_hashes().v1, ti.piece_length())
EOF
)
echo "$hashes" | sed 's/^/info-hash: /'
[ "$(echo "$hashes" | awk '{print $2, $3}' | sort -u | wc -l)" = 1 ] || die "info-hashes differ"

awk -v mib="$SIZE_MIB" -v nproc="$NPROC" '
    $1 ~ /^(ossl|rust)_/ { if ($2 > best[$1]) best[$1] = $2; next }
    # /usr/bin/time has 10 ms resolution: floor at 0.01 s so tiny SIZE_MIB runs do not divide by 0.
    { w = $2 < 0.01 ? 0.01 : $2; c = $3 + $4 < 0.01 ? 0.01 : $3 + $4
      if (!($1 in wall) || w < wall[$1]) { wall[$1] = w; cpu[$1] = c } }
    END {
        sha = best["ossl_wall"]
        printf "\n| tool | best wall s | its CPU s | MiB/s | MiB per CPU s |\n|---|---|---|---|---|\n"
        n = split("bitswarm mktorrent libtorrent", tools, " ")
        for (i = 1; i <= n; i++) {
            t = tools[i]
            printf "| %s | %.2f | %.2f | %.0f | %.0f |\n", t, wall[t], cpu[t], mib / wall[t], mib / cpu[t]
        }
        printf "| OpenSSL SHA-1 x %d cores (ceiling) | %.2f | | %.0f | %.0f |\n", nproc, mib / (sha * nproc), sha * nproc, best["ossl_cpu"]
        rust = ("rust_wall" in best) ? sprintf("%.0f / %.0f", best["rust_wall"], best["rust_cpu"]) : "n/a"
        printf "\nsingle-core SHA-1, 16 KiB blocks, MiB/s per wall s / per CPU s: OpenSSL %.0f / %.0f, RustCrypto sha1 (ours) %s\n",
            sha, best["ossl_cpu"], rust
        b = mib / wall["bitswarm"]
        printf "bitswarm/mktorrent %.2f, bitswarm/libtorrent %.2f, bitswarm/(OpenSSL SHA-1 x cores) %.2f\n",
            b / (mib / wall["mktorrent"]), b / (mib / wall["libtorrent"]), b / (sha * nproc)
        printf "CPU efficiency, bitswarm MiB per CPU s / OpenSSL MiB per CPU s: %.2f\n", (mib / cpu["bitswarm"]) / best["ossl_cpu"]
    }' "$RESULTS"
echo
echo "rerun: SIZE_MIB=$SIZE_MIB RUNS=$RUNS bench/create.sh"
