#!/usr/bin/env bash
# `portlab merge` of long shards: maximum resident memory and wall time, measured
# by /usr/bin/time -v, for a one-hour shard at the default 1 s interval (3,600 intervals)
# and a 20 s shard at --interval 10ms (2,000 intervals), and three one-hour shards at once.
# The shards are synthetic: benches/long_shards.py repeats a real run's interval
# (tests/fixtures/shards/shard-0: its five histograms and its timeline row) with the
# summary's duration, attempts and interval set to match, since a real one-hour run per
# figure is too long for a bench. The merged output of the same shards is compared byte for
# byte between the two builds when PORTLAB_BEFORE is given.
#
# Usage: benches/merge_rss.sh
#   PORTLAB=path/to/portlab (default target/release/portlab)
#   PORTLAB_BEFORE=path/to/older/portlab adds its row for each case (a build that does not
#   stream the merge needs about 1.85 MB per interval: 6.7 GB for the one-hour shard).
# Needs python3 and GNU time (/usr/bin/time); sends no traffic.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${PORTLAB:-target/release/portlab}
[ -x "$bin" ] || cargo build --release --bin portlab
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
src=tests/fixtures/shards/shard-0
python3 benches/long_shards.py "$src" "$work/1h" 3600 1
python3 benches/long_shards.py "$src" "$work/20s" 2000 0.01
cp -r "$work/1h" "$work/1h-b"
cp -r "$work/1h" "$work/1h-c"
measure() { # label binary shards...
  local label=$1 b=$2
  shift 2
  rm -rf "$work/out-$label"
  /usr/bin/time -v "$b" merge "$@" --out "$work/out-$label" >/dev/null 2>"$work/time-$label"
  awk -v l="$label" '/Maximum resident/ {rss=$6} /Elapsed/ {t=$8}
    END {printf "%-22s max RSS %8.1f MB  wall %s\n", l, rss/1024, t}' "$work/time-$label"
}
for case in 1h 20s; do
  measure "$case" "$bin" "$work/$case"
  if [ -n "${PORTLAB_BEFORE:-}" ]; then
    measure "$case-before" "$PORTLAB_BEFORE" "$work/$case"
    for f in summary.json timeline.csv histograms.hlog; do
      cmp -s "$work/out-$case/$f" "$work/out-$case-before/$f" || echo "  $f differs from the older build's"
    done
  fi
done
measure "3x1h" "$bin" "$work/1h" "$work/1h-b" "$work/1h-c"
