#!/usr/bin/env bash
# Resident memory over a long run: portlab at RATE conn/s for DURATION in
# its own lab (private network namespace, ports 1024-65535, tcp_tw_reuse = 1, so a client
# closing first never exhausts the ports), VmRSS sampled from /proc/PID/status every EVERY
# seconds. Needs root or unprivileged user namespaces (the lab); nothing on the host changes.
#
# Usage: benches/rss.sh [RATE=10000] [DURATION=600s] [EVERY=5] [CLOSE=active]
#   PORTLAB=path/to/portlab to time another build (default target/release/portlab).
# Prints one line per sample, then min / first / max / last VmRSS and the run's achieved rate.
set -euo pipefail
cd "$(dirname "$0")/.."
rate=${1:-10000}
duration=${2:-600s}
every=${3:-5}
close=${4:-active}
bin=${PORTLAB:-target/release/portlab}
[ -x "$bin" ] || cargo build --release
out=$(mktemp -d)
"$bin" run --lab --lab-port-range 1024-65535 --lab-tw-reuse 1 \
  --rate "$rate" --duration "$duration" --close "$close" \
  --out "$out/run" --format json --quiet >"$out/summary.out" 2>"$out/stderr" &
pid=$!
samples=()
while kill -0 "$pid" 2>/dev/null; do
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
  if [ -n "$rss" ]; then
    samples+=("$rss")
    printf '%6ds  VmRSS %7d kB\n' $(( (${#samples[@]} - 1) * every )) "$rss"
  fi
  sleep "$every"
done
wait "$pid" || echo "portlab exited $? (see $out/stderr)"
printf '%s\n' "${samples[@]}" | sort -n | awk -v first="${samples[0]:-0}" -v last="${samples[-1]:-0}" '
  NR == 1 {min = $1} {max = $1}
  END {printf "VmRSS kB: first %d, min %d, max %d, last %d (%d samples)\n", first, min, max, last, NR}'
grep -o '"achieved_rate": [0-9.]*' "$out/run/summary.json" || true
grep -o '"attempts": [0-9]*' "$out/run/summary.json" | head -1 || true
echo "results: $out"
