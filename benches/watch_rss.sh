#!/usr/bin/env bash
# Resident memory of the exporter over a long run: `portlab watch --listen` sampling a
# churning client every INTERVAL while /metrics is scraped every 100 ms, VmRSS read from
# /proc/PID/status every EVERY seconds.
#
# The client (tests/fixtures/watch_client.py) runs in a private network namespace
# (`unshare -n`: ports 1024-65535, its sockets never touch the host's) at RATE connections/s
# to 8 destinations (127.0.0.1:9000-9007), each closed by the client first, so it always
# holds RATE x 60 s TIME_WAIT sockets that come and go. portlab watches it with --pid and
# serves /metrics on 127.0.0.1 in this shell's namespace. Every loop is bounded by DURATION.
# Needs root or unprivileged user namespaces (unshare -rn), python3 and curl.
#
# Usage: benches/watch_rss.sh [DURATION=600] [INTERVAL=10ms] [RATE=200] [EVERY=5]
#   PORTLAB=path/to/portlab to measure another build (default target/release/portlab).
# Prints one line per RSS sample, then first / min / max / last VmRSS, the samples taken
# (DURATION / INTERVAL) and the scrapes that answered 200.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-600}
interval=${2:-10ms}
rate=${3:-200}
every=${4:-5}
bin=${PORTLAB:-target/release/portlab}
[ -x "$bin" ] || cargo build --release
for tool in python3 curl unshare; do
  command -v "$tool" >/dev/null || { echo "watch_rss: SKIPPED ($tool not found)"; exit 0; }
done
unshare_flags=-n
[ "$(id -u)" = 0 ] || unshare_flags=-rn
out=$(mktemp -d)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# The client: lives DURATION + 30 s (portlab is stopped first), connects for DURATION.
unshare $unshare_flags sh -c '
  ip link set lo up &&
  echo "1024 65535" > /proc/sys/net/ipv4/ip_local_port_range &&
  exec python3 tests/fixtures/watch_client.py "$1" "$2" "$2" \
    --ports 9000,9001,9002,9003,9004,9005,9006,9007' \
  client "$rate" "$((duration + 30))" >"$out/client.out" 2>"$out/client.err" &
client=$!
for _ in $(seq 100); do grep -q READY "$out/client.out" && break; sleep 0.1; done
grep -q READY "$out/client.out" || { echo "the client did not start: $(cat "$out/client.err")"; exit 1; }

"$bin" watch --pid "$client" --listen "127.0.0.1:$port" --interval "$interval" \
  >"$out/watch.out" 2>"$out/watch.err" &
pid=$!
for _ in $(seq 100); do grep -q serving "$out/watch.out" && break; sleep 0.1; done
grep -q serving "$out/watch.out" || { echo "portlab watch did not start: $(cat "$out/watch.err")"; kill "$client"; exit 1; }

# The scraper: every 100 ms until DURATION, counting answers.
(
  ok=0 failed=0
  end=$((SECONDS + duration))
  while [ "$SECONDS" -lt "$end" ]; do
    if curl -sf -o "$out/last.prom" --max-time 2 "http://127.0.0.1:$port/metrics"; then
      ok=$((ok + 1))
    else
      failed=$((failed + 1))
    fi
    sleep 0.1
  done
  echo "$ok $failed" >"$out/scrapes"
) &
scraper=$!

samples=()
start=$SECONDS
while [ $((SECONDS - start)) -lt "$duration" ] && kill -0 "$pid" 2>/dev/null; do
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
  if [ -n "$rss" ]; then
    samples+=("$rss")
    printf '%6ds  VmRSS %7d kB\n' $((SECONDS - start)) "$rss"
  fi
  sleep "$every"
done
wait "$scraper" || true
alive=yes
kill -0 "$pid" 2>/dev/null || alive="no (see $out/watch.err)"
kill "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
kill "$client" 2>/dev/null || true
wait "$client" 2>/dev/null || true

printf '%s\n' "${samples[@]}" | sort -n | awk -v first="${samples[0]:-0}" -v last="${samples[-1]:-0}" '
  NR == 1 {min = $1} {max = $1}
  END {printf "VmRSS kB: first %d, min %d, max %d, last %d (%d readings)\n", first, min, max, last, NR}'
read -r ok failed <"$out/scrapes"
echo "scrapes: $ok answered, $failed failed; portlab still running at the end: $alive"
echo "last scrape: $(grep -c '^portlab_' "$out/last.prom" || true) series, $(grep -m1 'time_wait' "$out/last.prom" || true)"
echo "results: $out"
