#!/usr/bin/env bash
# HTTP, one connection per request, against nginx: portlab against oha,
# wrk, ab and hey, measured in the same run, in the same private network namespace,
# interleaved round by round; prints req/s and portlab's ratio to each.
#
# Everything runs inside a namespace this script makes (unshare -n as root, unshare -rn
# otherwise): lo up, tcp_tw_reuse = 1, ports 1024-65535. nginx gets 1 worker and
# `return 200`, its config and logs in a temporary directory. The host is not touched.
#
#   portlab  --payload http --close passive (sends Connection: close, reads to EOF) --rate max
#   oha      --disable-keepalive
#   wrk      -H "Connection: close"
#   ab       (HTTP/1.0, no keep-alive)
#   hey      -disable-keepalive
# each with C connections for SECS seconds. A tool that is not installed is skipped, and
# said so. oha is looked for on PATH and in /tmp/oha/bin.
#
# Usage: benches/http_compare.sh [SECS=10] [ROUNDS=3] [C=50]
#   PORTLAB=path to use another portlab build (default target/release/portlab, built if missing).
#   PORTLAB_BEFORE=path adds an earlier build as one more tool (before/after in the same run).
#   PEERS="wrk oha" measures only those peers (default: oha wrk ab hey).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
rounds=${2:-3}
conns=${3:-50}

if [ -z "${HTTP_COMPARE_INNER:-}" ]; then
  command -v nginx >/dev/null || { echo "http_compare: SKIPPED (nginx is not installed)"; exit 0; }
  command -v unshare >/dev/null || { echo "http_compare: SKIPPED (no unshare)"; exit 0; }
  bin=${PORTLAB:-target/release/portlab}
  [ -x "$bin" ] || cargo build --release
  export PORTLAB=$(realpath "$bin")
  [ -n "${PORTLAB_BEFORE:-}" ] && export PORTLAB_BEFORE=$(realpath "$PORTLAB_BEFORE")
  if [ "$(id -u)" = 0 ]; then ns=(unshare -n); else ns=(unshare -rn); fi
  HTTP_COMPARE_INNER=1 exec "${ns[@]}" "$0" "$@"
fi

# Inside the private namespace from here on.
ip link set lo up
sysctl -qw net.ipv4.tcp_tw_reuse=1
sysctl -qw net.ipv4.ip_local_port_range="1024 65535"
export PATH="$PATH:/tmp/oha/bin:/usr/sbin"

dir=$(mktemp -d)
trap '[ -f "$dir/nginx.pid" ] && kill "$(cat "$dir/nginx.pid")" 2>/dev/null; rm -rf "$dir"' EXIT
port=8080
url="http://127.0.0.1:$port/"
cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $dir;
  proxy_temp_path $dir;
  fastcgi_temp_path $dir;
  uwsgi_temp_path $dir;
  scgi_temp_path $dir;
  server {
    listen 127.0.0.1:$port backlog=4096;
    location / { return 200; }
  }
}
EOF
nginx -p "$dir" -c "$dir/nginx.conf"
for _ in $(seq 50); do
  curl -fs -o /dev/null "$url" 2>/dev/null && break
  (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break
  sleep 0.1
done

# One measurement each: prints req/s (successful responses per second) or nothing.
run_portlab() { portlab_with "$PORTLAB"; }
run_before() { portlab_with "$PORTLAB_BEFORE"; }
portlab_with() {
  local out=$dir/portlab
  rm -rf "$out"
  timeout $((secs + 60)) "$1" run --target "127.0.0.1:$port" --payload http --close passive \
    --rate max --concurrency "$conns" --duration "${secs}s" --format json --quiet --out "$out" \
    >/dev/null 2>"$dir/portlab.err" || true
  python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); ok=s["http_status"].get("200",0); print(round(ok/s["load_duration_s"],1))' \
    "$out/summary.json" 2>/dev/null || true
}
run_oha() {
  timeout $((secs + 60)) oha -z "${secs}s" -c "$conns" --disable-keepalive --no-tui \
    --output-format json "$url" 2>/dev/null |
    python3 -c 'import json,sys; s=json.load(sys.stdin); c=s.get("statusCodeDistribution",{}).get("200",0); t=s["summary"]["total"]; print(round(c/t,1))' 2>/dev/null || true
}
run_wrk() {
  timeout $((secs + 60)) wrk -t2 -c "$conns" -d "${secs}s" -H "Connection: close" "$url" 2>/dev/null |
    awk '/^Requests\/sec/ {print $2}'
}
run_ab() {
  timeout $((secs + 60)) ab -q -c "$conns" -t "$secs" -n 100000000 "$url" 2>/dev/null |
    awk '/^Requests per second/ {print $4}'
}
run_hey() {
  timeout $((secs + 60)) hey -z "${secs}s" -c "$conns" -disable-keepalive "$url" 2>/dev/null |
    awk '/Requests\/sec/ {print $2}'
}

tools=(portlab)
[ -n "${PORTLAB_BEFORE:-}" ] && tools+=(before)
for t in ${PEERS:-oha wrk ab hey}; do
  if command -v "$t" >/dev/null; then tools+=("$t"); else echo "http_compare: $t is not installed: skipped"; fi
done
echo "http_compare: nginx $(nginx -v 2>&1 | sed 's/.*\///'), 1 worker, return 200; $conns connections, ${secs} s per run, $rounds rounds interleaved; private netns, tcp_tw_reuse 1"
declare -A results
n=${#tools[@]}
for ((r = 0; r < rounds; r++)); do
  for ((i = 0; i < n; i++)); do
    t=${tools[$(((i + r) % n))]}
    v=$("run_$t")
    printf '  round %d: %-8s %10s req/s\n' "$r" "$t" "${v:-failed}"
    [ -n "$v" ] && results[$t]+="$v "
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {if (NR == 0) print ""; else if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
pl=$(echo "${results[portlab]:-}" | median)
echo
printf '%-8s %12s %18s\n' tool "req/s" "portlab / tool"
best=0
for t in "${tools[@]}"; do
  m=$(echo "${results[$t]:-}" | median)
  if [ -z "$m" ]; then printf '%-8s %12s\n' "$t" failed; continue; fi
  ratio=$(awk -v a="$pl" -v b="$m" 'BEGIN {if (a == "" || b == 0) print "-"; else printf "%.3f", a / b}')
  printf '%-8s %12.0f %18s\n' "$t" "$m" "$ratio"
  if [ "$t" != portlab ] && [ "$t" != before ]; then best=$(awk -v a="$best" -v b="$m" 'BEGIN {print (b > a) ? b : a}'); fi
done
if [ "$best" != 0 ] && [ -n "$pl" ]; then
  awk -v a="$pl" -v b="$best" 'BEGIN {printf "goal (portlab >= best of the others): %s (%.0f vs %.0f req/s, ratio %.3f)\n", (a >= b) ? "met" : "NOT met", a, b, a / b}'
fi
