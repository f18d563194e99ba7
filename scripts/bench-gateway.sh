#!/usr/bin/env bash
# The gateway against nginx, printed as the tables of BENCHMARKS.md#gateway:
#
#   1. wrk (2 threads, 64 connections, SECONDS s per run) through the
#      sysblocks gateway and through nginx configured as the same proxy in
#      front of the same upstream-sim, on three routes: plain pass-through;
#      a route limited per client address (a limit high enough never to
#      deny: the limiter's cost, not its refusals); cache hits. The two
#      proxies take turns, ROUNDS times: requests/s and p99 latency, and
#      the gateway's ratios to nginx (median, min and max over the rounds).
#   2. Memory: both proxies loaded at once for MINUTES minutes, every
#      request with a new client key (its own limiter state) and a new path
#      (its own cache entry), so that only the keyed limiter's cap and the
#      cache's bound keep memory flat. Resident memory is sampled every
#      10 s; the growth after the first minute is what "flat" is judged by.
#
# Usage: scripts/bench-gateway.sh [ROUNDS] [SECONDS] [MINUTES]
#        (default 5 rounds of 10 s, 5 minutes, 0 for none; loopback only; stops
#        everything it started, also on failure or Ctrl-C). Installs nginx
#        and wrk from the Debian packages when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
seconds=${2:-10}
minutes=${3:-5}

if ! command -v nginx >/dev/null && [ -x /usr/sbin/nginx ]; then PATH=$PATH:/usr/sbin; fi
if ! command -v nginx >/dev/null || ! command -v wrk >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq nginx wrk >/dev/null
    PATH=$PATH:/usr/sbin
  else
    echo "bench-gateway.sh: needs nginx and wrk: sudo apt-get install -y nginx wrk" >&2
    exit 1
  fi
fi

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sysblocks/target}
cargo build --release -q -p sysblocks-gateway --bins
bin=$CARGO_TARGET_DIR/release
work=$(mktemp -d)
pids=()
cleanup() {
  # nginx's master stops its workers and cache manager on TERM (killed
  # first, it would leave them behind; its children killed first, it would
  # start new ones).
  if [ -f "$work/nginx.pid" ]; then
    master=$(cat "$work/nginx.pid")
    kill -TERM "$master" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$master" 2>/dev/null || break; sleep 0.05; done
    pkill -9 -P "$master" 2>/dev/null || true
  fi
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

read -r up gw ng <<< "$(python3 -c 'import socket
ss = [socket.socket() for _ in range(3)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')"

# Waits until something listens on port $1.
wait_port() {
  for _ in $(seq 1 500); do
    if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 0.2).close()" \
      "$1" 2>/dev/null; then return 0; fi
    sleep 0.02
  done
  echo "bench-gateway.sh: nothing listens on port $1" >&2
  exit 1
}

"$bin/upstream-sim" --name up --listen "127.0.0.1:$up" >/dev/null 2>&1 &
pids+=($!)

limit='rate = "100000000/s", burst = 1000000'
cat > "$work/gateway.toml" <<EOF
listen = "127.0.0.1:$gw"

[[upstream]]
name = "up"
servers = ["127.0.0.1:$up"]

[[route]]
name = "pass"
prefix = "/pass"
upstream = "up"

[[route]]
name = "limited"
prefix = "/limited"
upstream = "up"
limit = { key = "client_ip", algorithm = "token_bucket", $limit }

[[route]]
name = "cached"
prefix = "/cached"
upstream = "up"
cache = { max_bytes = 16777216 }

[[route]]
name = "mem"
prefix = "/mem"
upstream = "up"
limit = { key = "header:x-client-key", algorithm = "token_bucket", $limit }
cache = { max_bytes = 16777216 }
EOF
RUST_LOG=error "$bin/gateway" --config "$work/gateway.toml" >"$work/gateway.log" 2>&1 &
gateway_pid=$!
pids+=("$gateway_pid")

# nginx as the same proxy: the same upstream over kept-alive connections,
# limit_req per client address (and per client key), proxy_cache with
# proxy_cache_lock (its single flight) honouring the upstream's
# Cache-Control. Two workers, as the gateway has two threads.
mkdir -p "$work/cache" "$work/temp"
# nginx's workers run as an unprivileged user when started as root.
chmod 755 "$work"
chmod 777 "$work/cache" "$work/temp"
cat > "$work/nginx.conf" <<EOF
worker_processes 2;
daemon off;
pid $work/nginx.pid;
error_log stderr error;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/temp/body;
  proxy_temp_path $work/temp/proxy;
  fastcgi_temp_path $work/temp/fastcgi;
  uwsgi_temp_path $work/temp/uwsgi;
  scgi_temp_path $work/temp/scgi;
  upstream up { server 127.0.0.1:$up; keepalive 64; }
  limit_req_zone \$binary_remote_addr zone=perip:10m rate=100000000r/s;
  limit_req_zone \$http_x_client_key zone=perkey:16m rate=100000000r/s;
  proxy_cache_path $work/cache levels=1:2 keys_zone=cache:16m max_size=16m inactive=10m use_temp_path=off;
  server {
    listen 127.0.0.1:$ng;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    location /pass { proxy_pass http://up; }
    location /limited { limit_req zone=perip burst=1000000 nodelay; proxy_pass http://up; }
    location /cached { proxy_cache cache; proxy_cache_lock on; proxy_pass http://up; }
    location /mem {
      limit_req zone=perkey burst=1000000 nodelay;
      proxy_cache cache; proxy_cache_lock on; proxy_pass http://up;
    }
  }
}
EOF
nginx -p "$work" -c "$work/nginx.conf" -e stderr >"$work/nginx.log" 2>&1 &
pids+=($!)

wait_port "$up"
wait_port "$gw"
wait_port "$ng"

cached='/cached/item?cache=max-age%3D600&bytes=512'
declare -A paths=([pass]='/pass/item' [limited]='/limited/item' [cached]="$cached")
for port in "$gw" "$ng"; do
  wrk -t1 -c1 -d1s "http://127.0.0.1:$port$cached" >/dev/null # fills the cache
done

# One wrk run: "requests/s p99_ms non_2xx".
run() {
  wrk -t2 -c64 -d"${seconds}s" --latency "$1" | awk '
    /Requests\/sec/ { rps = $2 }
    $1 == "99%" { v = $2; unit = v; sub(/[0-9.]+/, "", unit); sub(/[a-z]+$/, "", v)
                  p99 = (unit == "us") ? v / 1000 : (unit == "s") ? v * 1000 : v }
    /Non-2xx/ { bad = $NF }
    END { printf "%s %s %d\n", rps, p99, bad }'
}

echo "round row proxy rps p99_ms non_2xx" > "$work/rounds"
for r in $(seq 1 "$rounds"); do
  for row in pass limited cached; do
    for proxy in gateway nginx; do
      port=$gw; [ "$proxy" = nginx ] && port=$ng
      echo "$r $row $proxy $(run "http://127.0.0.1:$port${paths[$row]}")" >> "$work/rounds"
    done
  done
  echo "round $r of $rounds done" >&2
done

python3 - "$work/rounds" "$seconds" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])][1:]
runs = {}
for r, row, proxy, rps, p99, bad in rows:
    runs.setdefault((row, proxy), []).append((float(rps), float(p99), int(bad)))
def spread(values, fmt):
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"
n = len(runs[("pass", "gateway")])
print(f"\n### Gateway against nginx: wrk, 2 threads, 64 connections, {sys.argv[2]} s per run, {n} rounds (median, min-max)\n")
print("| row | gateway req/s | nginx req/s | req/s ratio | gateway p99 ms | nginx p99 ms | p99 ratio |")
print("|---|---|---|---|---|---|---|")
labels = {"pass": "pass-through", "limited": "rate-limited route (never denies)", "cached": "cache hits"}
for row in ["pass", "limited", "cached"]:
    g, x = runs[(row, "gateway")], runs[(row, "nginx")]
    for name, side in [("gateway", g), ("nginx", x)]:
        if any(b for _, _, b in side):
            print(f"WARNING: {name} answered non-2xx on {row}", file=sys.stderr)
    rps = spread([a[0] / b[0] for a, b in zip(g, x)], "{:.2f}")
    p99 = spread([a[1] / b[1] for a, b in zip(g, x)], "{:.2f}")
    print(f"| {labels[row]} | {spread([a[0] for a in g], '{:.0f}')} | {spread([b[0] for b in x], '{:.0f}')} | {rps} | "
          f"{spread([a[1] for a in g], '{:.2f}')} | {spread([b[1] for b in x], '{:.2f}')} | {p99} |")
PY

[ "$minutes" -gt 0 ] || exit 0

# Memory: a new client key and a new path on every request.
cat > "$work/keys.lua" <<'EOF'
local n = 0
math.randomseed(os.time() + math.floor(os.clock() * 1e6))
local prefix = tostring(math.random(1, 1e9))
request = function()
  n = n + 1
  local id = prefix .. "-" .. n
  return wrk.format("GET", "/mem/" .. id .. "?cache=max-age%3D600&bytes=256", { ["X-Client-Key"] = id })
end
EOF
rss_kib() { awk '/^VmRSS/ { s += $2 } END { print s + 0 }' "$@" 2>/dev/null; }
nginx_master=$(cat "$work/nginx.pid")
total=$((minutes * 60))
wrk -t1 -c32 -d"${total}s" -s "$work/keys.lua" "http://127.0.0.1:$gw/" > "$work/wrk-gateway" &
wrk_g=$!
wrk -t1 -c32 -d"${total}s" -s "$work/keys.lua" "http://127.0.0.1:$ng/" > "$work/wrk-nginx" &
wrk_n=$!
echo "seconds gateway_kib nginx_kib" > "$work/memory"
for s in $(seq 10 10 "$total"); do
  sleep 10
  nginx_procs=("/proc/$nginx_master/status")
  for child in $(pgrep -P "$nginx_master"); do nginx_procs+=("/proc/$child/status"); done
  echo "$s $(rss_kib "/proc/$gateway_pid/status") $(rss_kib "${nginx_procs[@]}")" >> "$work/memory"
done
wait "$wrk_g" "$wrk_n"
g_requests=$(awk '/requests in/ { print $1 }' "$work/wrk-gateway")
n_requests=$(awk '/requests in/ { print $1 }' "$work/wrk-nginx")

python3 - "$work/memory" "$minutes" "$g_requests" "$n_requests" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1])][1:]
rows = [(int(s), int(g) / 1024, int(n) / 1024) for s, g, n in rows]
print(f"\n### Resident memory, {sys.argv[2]} minutes, a new client key and path on every request "
      f"(gateway: {int(sys.argv[3]):,} requests; nginx: {int(sys.argv[4]):,})\n")
print("| proxy | at 1 min MiB | highest after MiB | at the end MiB | growth after the first minute |")
print("|---|---|---|---|---|")
for i, name in [(1, "gateway"), (2, "nginx (master and workers)")]:
    base = next(r[i] for r in rows if r[0] >= 60)
    later = [r[i] for r in rows if r[0] >= 60]
    print(f"| {name} | {base:.1f} | {max(later):.1f} | {later[-1]:.1f} | {100 * (max(later) - base) / base:+.1f}% |")
print("\nSamples (s, gateway MiB, nginx MiB): " + ", ".join(f"{s}: {g:.0f}/{n:.0f}" for s, g, n in rows))
PY
