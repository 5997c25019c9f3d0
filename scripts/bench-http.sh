#!/usr/bin/env bash
# HTTP overhead benchmark: a hello-world axum app bare, behind AdaptiveThrottleLayer, and behind
# tower_governor's GovernorLayer, each under wrk on loopback, in one run; prints throughput and
# p99 latency per mode (median over rounds, modes interleaved) and the ratios to bare.
#
#   scripts/bench-http.sh                 # 3 rounds × 10 s per mode
#   ROUNDS=5 DURATION=20 CONNECTIONS=64 scripts/bench-http.sh
#
# On a machine with at least 2 cores the server runs on CPU 1 with one tokio worker and wrk on
# CPU 0 (taskset), so the two do not fight over a core. Needs `wrk` (apt-get install -y wrk).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
WARMUP=${WARMUP:-2}
PORT=${PORT:-38080}
MODES=(bare adaptive governor)

command -v wrk >/dev/null || { echo "wrk not found: apt-get install -y wrk" >&2; exit 1; }
cargo build --release --quiet --example bench_server --features axum
BIN=${CARGO_TARGET_DIR:-target}/release/examples/bench_server

pin_server=() pin_wrk=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  pin_server=(taskset -c 1) pin_wrk=(taskset -c 0)
fi

tmp=$(mktemp -d)
server_pid=
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

cpu_ticks() { # user + system CPU time of a process, in clock ticks
  awk '{print $14 + $15}' "/proc/$1/stat"
}
HZ=$(getconf CLK_TCK)

to_ms() { # wrk latency ("812.00us", "1.20ms", "1.01s") -> milliseconds
  awk -v v="$1" 'BEGIN {
    n = v + 0; u = v; sub(/^[0-9.]+/, "", u);
    if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000;
    printf "%.3f", n }'
}

for round in $(seq 1 "$ROUNDS"); do
  for mode in "${MODES[@]}"; do
    "${pin_server[@]}" "$BIN" --mode "$mode" --port "$PORT" --workers 1 2>"$tmp/server.log" &
    server_pid=$!
    for _ in $(seq 1 100); do
      grep -q "bench_server:" "$tmp/server.log" 2>/dev/null && break
      sleep 0.05
    done
    "${pin_wrk[@]}" wrk -t1 -c"$CONNECTIONS" -d"${WARMUP}s" "http://127.0.0.1:$PORT/" >/dev/null
    cpu0=$(cpu_ticks "$server_pid")
    "${pin_wrk[@]}" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency \
      "http://127.0.0.1:$PORT/" >"$tmp/wrk.txt"
    cpu1=$(cpu_ticks "$server_pid")
    kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=
    rps=$(awk '/^Requests\/sec/ {print $2}' "$tmp/wrk.txt")
    p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$tmp/wrk.txt")")
    non2xx=$(awk '/Non-2xx/ {print $NF}' "$tmp/wrk.txt"); non2xx=${non2xx:-0}
    requests=$(awk '/requests in/ {print $1}' "$tmp/wrk.txt")
    # Server CPU time per request: robust to other load on the machine, unlike req/s.
    cpu_us=$(awk -v t=$((cpu1 - cpu0)) -v hz="$HZ" -v n="$requests" 'BEGIN {printf "%.2f", t / hz * 1e6 / n}')
    printf 'round %d  %-9s %10.0f req/s   p99 %7.3f ms   server CPU %6.2f us/req   non-2xx %s\n' \
      "$round" "$mode" "$rps" "$p99" "$cpu_us" "$non2xx"
    echo "$mode $rps $p99 $cpu_us" >>"$tmp/results"
  done
done

echo
echo "wrk -t1 -c$CONNECTIONS -d${DURATION}s, $ROUNDS rounds, median per mode" \
  "(server: 1 tokio worker${pin_server:+, pinned to CPU 1; wrk pinned to CPU 0})"
printf '%-9s %12s %10s %12s %10s %14s %10s\n' mode "req/s" "vs bare" "p99 (ms)" "vs bare" "CPU (us/req)" "vs bare"
median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
bare_rps=$(awk '$1 == "bare" {print $2}' "$tmp/results" | median)
bare_p99=$(awk '$1 == "bare" {print $3}' "$tmp/results" | median)
bare_cpu=$(awk '$1 == "bare" {print $4}' "$tmp/results" | median)
for mode in "${MODES[@]}"; do
  rps=$(awk -v m="$mode" '$1 == m {print $2}' "$tmp/results" | median)
  p99=$(awk -v m="$mode" '$1 == m {print $3}' "$tmp/results" | median)
  cpu=$(awk -v m="$mode" '$1 == m {print $4}' "$tmp/results" | median)
  awk -v m="$mode" -v r="$rps" -v p="$p99" -v c="$cpu" -v br="$bare_rps" -v bp="$bare_p99" -v bc="$bare_cpu" 'BEGIN {
    printf "%-9s %12.0f %9.1f%% %12.3f %9.2fx %14.2f %9.2fx\n", m, r, 100 * r / br, p, p / bp, c, c / bc }'
done
