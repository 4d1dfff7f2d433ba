#!/bin/sh
# Redraws docs/img/quickstart-timewait.png: the "TIME_WAIT against the model" chart of a real
# quick-start run's report.html (drawn by portlab as SVG), rasterised by headless chromium.
# Needs root or user namespaces (the lab) and Debian's chromium. Run from the repository root.
set -eu
repo=$(pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo build -q
(cd "$work" && "$repo/target/debug/portlab" run quickstart --quiet --out run >/dev/null)
# The page holds three charts, in this order: connections, TIME_WAIT, latency. Keep the second.
python3 - "$work/run/report.html" "$work/chart.html" <<'PY'
import re, sys
page = open(sys.argv[1]).read()
svg = re.findall(r"<svg.*?</svg>", page, re.S)[1]
open(sys.argv[2], "w").write(
    "<!doctype html><html><body style='margin:0;background:#fff'>" + svg + "</body></html>")
PY
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir="$work/profile" \
    --window-size=960,380 --screenshot="$repo/docs/img/quickstart-timewait.png" \
    "file://$work/chart.html" 2>/dev/null
