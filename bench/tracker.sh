#!/usr/bin/env bash
# Tracker server benchmark, all in one run: `bitswarm tracker`, opentracker and aquatic_udp,
# each pinned to one core with taskset while a load generator runs on the other core, over
# loopback only. Both generators run against each server they can load: ours
# (bitswarm-tracker-load) and aquatic_udp_load_test. Prints one table: responses per second,
# p99 latency, ratio to aquatic_udp, and the server's peak RSS.
#
# usage: bench/tracker.sh [DURATION_S=10]
# env:   ROUNDS=3                  rounds, servers interleaved in each; the table shows each
#                                  pairing's best round (most responses/s), as other load on a
#                                  shared machine only ever makes a round slower
#        SERVER_CPU=0 LOAD_CPU=1   cores for the server and the generator
#        BATCH=32                  bitswarm's datagrams per recvmmsg/sendmmsg (1: plain calls)
#        AQUATIC_UDP, AQUATIC_LOAD paths of aquatic_udp and aquatic_udp_load_test
#                                  (default: found on PATH or in ~/.cargo/bin; install them with
#                                  `cargo install aquatic_udp --no-default-features` and
#                                  `cargo install aquatic_udp_load_test`)
# Needs: opentracker (Debian package; its build is whitelist-only, so the generator's
# info-hashes are written to its whitelist), taskset, python3. Every run is bounded by
# DURATION_S plus a warm-up; every server is stopped at the end.
set -euo pipefail

duration=${1:-10}
server_cpu=${SERVER_CPU:-0}
load_cpu=${LOAD_CPU:-1}
batch=${BATCH:-32}
rounds=${ROUNDS:-3}
top=$(cd "$(dirname "$0")/.." && pwd)
find_bin() { command -v "$1" 2>/dev/null || { [ -x "$HOME/.cargo/bin/$1" ] && echo "$HOME/.cargo/bin/$1"; } || true; }
aquatic_udp=${AQUATIC_UDP:-$(find_bin aquatic_udp)}
aquatic_load=${AQUATIC_LOAD:-$(find_bin aquatic_udp_load_test)}
command -v opentracker >/dev/null || { echo "opentracker is missing: apt-get install opentracker" >&2; exit 1; }
command -v taskset >/dev/null || { echo "taskset is missing: apt-get install util-linux" >&2; exit 1; }

cargo build --release --quiet --manifest-path "$top/Cargo.toml" -p bitswarm -p bitswarm-tracker-load
target_dir=$(cargo metadata --format-version 1 --no-deps --manifest-path "$top/Cargo.toml" | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
bitswarm="$target_dir/release/bitswarm"
load="$target_dir/release/bitswarm-tracker-load"

tmp=$(mktemp -d)
chmod 755 "$tmp"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
peak_rss_mib() { awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$1/status" 2>/dev/null || echo "?"; }

# Our generator's workload: fixed info-hashes, many requests in flight.
load_args=(--duration-s "$duration" --warmup-s 2 --sockets 16 --in-flight 32 --torrents 1000 --peers 100 --numwant 50)
"$load" "${load_args[@]}" --write-hashes "$tmp/whitelist.txt"

run_ours_gen() { # $1 = port; prints "responses_per_s p99_us"
  taskset -c "$load_cpu" "$load" "${load_args[@]}" --target "127.0.0.1:$1" > "$tmp/gen.out"
  sed -n 's/^RESULT responses_per_s=\([0-9]*\) p50_us=[0-9]* p99_us=\([0-9]*\).*/\1 \2/p' "$tmp/gen.out"
}
run_aquatic_gen() { # $1 = port; prints "responses_per_s -"
  [ -n "$aquatic_load" ] || { echo "n/a -"; return; }
  cat > "$tmp/aqload.toml" <<CONF
server_address = "127.0.0.1:$1"
workers = 1
duration = $duration
summarize_last = $duration
extra_statistics = false
[network]
multiple_client_ipv4s = true
sockets_per_worker = 16
CONF
  timeout $((duration + 30)) taskset -c "$load_cpu" "$aquatic_load" -c "$tmp/aqload.toml" > "$tmp/aqgen.out" 2>&1 || true
  # "Responses in: N/second" (its own summary; it reports no latency percentiles).
  local r
  r=$(grep -i "responses in" "$tmp/aqgen.out" | tail -1 | grep -o '[0-9][0-9.]*' | head -1)
  echo "${r%.*} -"
}
wait_udp() { # a connect request answered within 10 s
  python3 - "$1" <<'PY'
import socket, struct, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.2)
end = time.time() + 10
while time.time() < end:
    s.sendto(struct.pack(">QII", 0x41727101980, 0, 1), ("127.0.0.1", int(sys.argv[1])))
    try:
        s.recv(64); sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit(1)
PY
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
declare -A rps p99 rss cpu
measure() { # $1 = name, $2 = port, $3 = pid, then the generators to run (ours, aquatic)
  wait_udp "$2" || { echo "$1 did not answer on port $2" >&2; exit 1; }
  local t0 t1 s0 s1 gen
  for gen in "${@:4}"; do
    t0=$(cpu_ticks "$3"); s0=$(date +%s.%N)
    read -r rps["$1/$gen/$round"] p99["$1/$gen/$round"] < <(run_${gen}_gen "$2")
    t1=$(cpu_ticks "$3"); s1=$(date +%s.%N)
    # The server's CPU share over the generator's whole run (warm-up included): under 100 %
    # means the generator, not the server, set the pace.
    cpu["$1/$gen/$round"]=$(python3 -c "print('%.0f' % (100.0 * ($t1 - $t0) / $(getconf CLK_TCK) / ($s1 - $s0)))")
    echo "round $round: $1 with $gen generator: ${rps[$1/$gen/$round]} responses/s, p99 ${p99[$1/$gen/$round]} µs, server CPU ${cpu[$1/$gen/$round]} %" >&2
  done
  rss[$1]=$(peak_rss_mib "$3")
  kill "$3"; wait "$3" 2>/dev/null || true
}

for round in $(seq 1 "$rounds"); do
  port=$(free_port)
  taskset -c "$server_cpu" "$bitswarm" tracker --udp "127.0.0.1:$port" -c <(printf '[udp]\nbatch = %s\n' "$batch") > "$tmp/bitswarm.out" 2> "$tmp/bitswarm.err" &
  pids+=($!); measure bitswarm "$port" $! ours aquatic

  port=$(free_port); tcp=$(free_port)
  # opentracker chroots into -d and drops to nobody; its whitelist path is inside the chroot.
  taskset -c "$server_cpu" opentracker -i 127.0.0.1 -P "$port" -p "$tcp" -d "$tmp" -u nobody -w /whitelist.txt > "$tmp/ot.out" 2>&1 &
  pids+=($!); measure opentracker "$port" $! ours
  # Its whitelist cannot hold aquatic_udp_load_test's random info-hashes: that pairing is refusals only.

  if [ -n "$aquatic_udp" ]; then
    port=$(free_port)
    printf 'socket_workers = 1\n[network]\naddress = "127.0.0.1:%s"\n' "$port" > "$tmp/aq.toml"
    taskset -c "$server_cpu" "$aquatic_udp" -c "$tmp/aq.toml" > "$tmp/aq.out" 2>&1 &
    pids+=($!); measure aquatic_udp "$port" $! ours aquatic
  fi
done

best_round() { # $1 = server/generator: the round with the most responses/s
  local r best=1 top=-1 v
  for r in $(seq 1 "$rounds"); do
    v=${rps[$1/$r]:-}
    if [[ "$v" =~ ^[0-9]+$ ]] && [ "$v" -gt "$top" ]; then top=$v; best=$r; fi
  done
  echo "$best"
}
ratio() { # $1 / $2 with two decimals, or "-"
  python3 -c 'import sys
try: print("%.2f" % (float(sys.argv[1]) / float(sys.argv[2])))
except Exception: print("-")' "$1" "$2"
}
echo
echo "Tracker benchmark (best of $rounds rounds): $(date -u +%Y-%m-%d) $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), server on cpu $server_cpu, generator on cpu $load_cpu, ${duration} s, bitswarm batch $batch"
printf '| %-12s | %-22s | %12s | %8s | %10s | %10s | %13s | %9s |\n' server generator "responses/s" "p99 µs" "vs aquatic" "server CPU" "CPU µs/resp" "peak RSS"
printf '|%s|%s|%s|%s|%s|%s|%s|%s|\n' "--------------" "------------------------" "--------------" "----------" "------------" "------------" "---------------" "-----------"
for gen in ours aquatic; do
  gname=$([ $gen = ours ] && echo bitswarm-tracker-load || echo aquatic_udp_load_test)
  base=${rps[aquatic_udp/$gen/$(best_round "aquatic_udp/$gen")]:-x}
  for s in bitswarm aquatic_udp opentracker; do
    [ -n "${rss[$s]+x}" ] || continue
    if [ "$s/$gen" = opentracker/aquatic ]; then
      # Its whitelist cannot hold aquatic_udp_load_test's random info-hashes.
      printf '| %-12s | %-22s | %12s | %8s | %10s | %10s | %13s | %5s MiB |\n' "$s" "$gname" "n/a" "-" "-" "-" "-" "${rss[$s]}"
      continue
    fi
    b=$(best_round "$s/$gen")
    r=${rps[$s/$gen/$b]:-n/a}; c=${cpu[$s/$gen/$b]:-?}
    # Server CPU time per response: less sensitive than responses/s to a generator that
    # cannot keep the server busy, or to other load on the machine.
    per=$(python3 -c 'import sys
try: print("%.2f" % (float(sys.argv[1]) / 100 / float(sys.argv[2]) * 1e6))
except Exception: print("-")' "$c" "$r")
    printf '| %-12s | %-22s | %12s | %8s | %10s | %8s %% | %13s | %5s MiB |\n' "$s" "$gname" "$r" "${p99[$s/$gen/$b]:--}" \
      "$(ratio "$r" "$base")" "$c" "$per" "${rss[$s]}"
  done
done
