#!/usr/bin/env bash
# Fill rate: ports per second to exhaust a real-size range, portlab's
# per-socket port slices (IP_LOCAL_PORT_RANGE, Linux 6.3+) against the kernel's global port
# search (PORTLAB_PORT_SLICES=off), side by side in one run, rounds interleaved.
#
# Each run: `portlab run --lab` (its own private network namespace: the host is not touched)
# with the range as ip_local_port_range, tcp_tw_reuse = 0, a closed loop (--rate max,
# --concurrency 64) bounded to P + 2000 attempts and 60 s. Fill rate = P / the time the first
# attempt that found no port began (exhaustion.due_s); fail rate = the failing connects per
# second after it. Needs root or unprivileged user namespaces.
#
# Usage: benches/fill_rate.sh [ROUNDS=2] [RANGES="49152-65535 32768-60999"]
#   PORTLAB=path/to/portlab to time another build (default target/release/portlab).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-2}
ranges=${2:-"49152-65535 32768-60999"}
bin=${PORTLAB:-target/release/portlab}
[ -x "$bin" ] || cargo build --release
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
printf '%-12s %6s %-8s %5s %10s %12s %12s %8s\n' range ports search round fill_s "ports/s" "fail conn/s" dropped
for round in $(seq 1 "$rounds"); do
  for range in $ranges; do
    lo=${range%-*}; hi=${range#*-}; ports=$((hi - lo + 1))
    # Alternate which goes first, so neither always runs on a warmer or quieter machine.
    if [ $((round % 2)) -eq 1 ]; then order="slices global"; else order="global slices"; fi
    for search in $order; do
      if [ "$search" = slices ]; then env=on; else env=off; fi
      dir="$out/$range-$search-$round"
      PORTLAB_PORT_SLICES=$env timeout 90 "$bin" run --lab --lab-port-range "$range" \
        --lab-tw-reuse 0 --rate max --concurrency 64 --count $((ports + 2000)) \
        --duration 60s --out "$dir" -q --format json >"$dir.json" 2>"$dir.err" || true
      python3 - "$dir.json" "$range" "$ports" "$search" "$round" <<'PY'
import json, sys
path, rng, ports, search, rnd = sys.argv[1:]
try:
    s = json.load(open(path))
except Exception as e:
    print(f"{rng:<12} {ports:>6} {search:<8} {rnd:>5}   no summary ({e})")
    sys.exit(0)
e = s["exhaustion"]
due = e.get("due_s")
if due is None:
    print(f"{rng:<12} {ports:>6} {search:<8} {rnd:>5}   not exhausted in {s['load_duration_s']:.1f} s ({s['attempts']} attempts)")
    sys.exit(0)
tail = max(s["load_duration_s"] - e["first_s"], 1e-9)
print(f"{rng:<12} {ports:>6} {search:<8} {rnd:>5} {due:10.3f} {int(ports)/due:12.0f} {s['failed']/tail:12.0f} {s['dropped']:8d}")
PY
    done
  done
done
