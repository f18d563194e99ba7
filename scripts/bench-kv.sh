#!/usr/bin/env bash
# The kv service's benchmarks, printed as the tables of BENCHMARKS.md#kv:
#
#   1. redis-benchmark (SET and GET, 50 clients, 100-byte values, 100,000
#      keys) against one kv-node (N=1) and against redis-server on this
#      machine, interleaved, ROUNDS times: ops/s and p99, and their ratios
#      (median, min and max over the rounds). Redis is run twice: as it
#      ships (no fsync) and with appendfsync always (durable, like kv).
#   2. The same against a 3-node cluster (N=3, W=2, R=2), to show the cost
#      of replication.
#   3. Repair bytes against the bytes of the missed writes, for d = 1, 100
#      and 10,000 writes missed by one node of three, over 100,000 keys.
#   4. A node's resident memory at 1,000,000 keys of 100-byte values, and
#      its restart time (rebuilding its summaries from disk).
#
# Usage: scripts/bench-kv.sh [ROUNDS]   (default 5; loopback only; stops
# everything it started, also on failure or Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}

if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq redis-server redis-tools >/dev/null
  else
    echo "bench-kv.sh: needs redis-server and redis-benchmark: sudo apt-get install -y redis-server redis-tools" >&2
    exit 1
  fi
fi

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sysblocks/target}
cargo build --release -q -p sysblocks-kv --bins
bin=$CARGO_TARGET_DIR/release
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

# Every port this script needs, bound at once so that no two are the same;
# next_port sets $port to the next one.
read -r -a ports <<< "$(python3 -c 'import socket
ss = [socket.socket() for _ in range(16)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')"
next_index=0
next_port() { port=${ports[$next_index]}; next_index=$((next_index + 1)); }

wait_port() {
  for _ in $(seq 1 500); do
    if redis-cli -p "$1" PING >/dev/null 2>&1; then return 0; fi
    sleep 0.02
  done
  echo "bench-kv.sh: nothing answers on port $1" >&2
  exit 1
}

# A cluster file of $1 nodes with N=min(3,$1); sets the arrays data_ports.
cluster() {
  local n=$1 dir=$2
  mkdir -p "$dir"
  data_ports=()
  {
    echo "[cluster]"
    echo "client_rps = 1000000000"
  } > "$dir/cluster.toml"
  for i in $(seq 1 "$n"); do
    next_port; local d=$port
    next_port; local a=$port
    next_port; local s=$port
    data_ports+=("$d")
    printf '[[node]]\nid = "n%s"\ndata = "127.0.0.1:%s"\nadmin = "127.0.0.1:%s"\nsync = "127.0.0.1:%s"\n' \
      "$i" "$d" "$a" "$s" >> "$dir/cluster.toml"
  done
  for i in $(seq 1 "$n"); do
    "$bin/kv-node" --id "n$i" --cluster "$dir/cluster.toml" --data "$dir/n$i" 2>"$dir/n$i.log" &
    pids+=($!)
  done
  for p in "${data_ports[@]}"; do wait_port "$p"; done
}

# One redis-benchmark run: "set_rps set_p99 get_rps get_p99".
bench() {
  redis-benchmark -p "$1" -t set,get -n 200000 -c 50 -r 100000 -d 100 --csv 2>/dev/null |
    awk -F'"' '/"SET"/ {s=$4; sp=$14} /"GET"/ {g=$4; gp=$14} END {print s, sp, g, gp}'
}

next_port; redis_port=$port
redis-server --port "$redis_port" --save "" --appendonly no --daemonize no >/dev/null &
pids+=($!)
next_port; durable_port=$port
redis-server --port "$durable_port" --save "" --appendonly yes --appendfsync always \
  --dir "$work" --daemonize no >/dev/null &
pids+=($!)
wait_port "$redis_port"
wait_port "$durable_port"
cluster 1 "$work/one"
one=${data_ports[0]}
cluster 3 "$work/three"
three=${data_ports[0]}

echo "round redis_set redis_set_p99 redis_get redis_get_p99 durable_set durable_set_p99 durable_get durable_get_p99 kv1_set kv1_set_p99 kv1_get kv1_get_p99 kv3_set kv3_set_p99 kv3_get kv3_get_p99" > "$work/rounds"
for r in $(seq 1 "$rounds"); do
  echo "$r $(bench "$redis_port") $(bench "$durable_port") $(bench "$one") $(bench "$three")" >> "$work/rounds"
  echo "round $r of $rounds done" >&2
done

python3 - "$work/rounds" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
head, rows = rows[0], [[float(x) for x in r] for r in rows[1:]]
col = {name: [r[i] for r in rows] for i, name in enumerate(head)}
def spread(values, fmt="{:.2f}"):
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"
print(f"\n### kv-node against redis-server: redis-benchmark, 50 clients, {len(rows)} rounds (median, min-max)\n")
print("| target | SET ops/s | SET p99 ms | GET ops/s | GET p99 ms | SET ratio | GET ratio | SET p99 ratio | GET p99 ratio |")
print("|---|---|---|---|---|---|---|---|---|")
for name, label in [("redis", "redis-server (no fsync, as shipped)"), ("durable", "redis-server, appendfsync always"),
                    ("kv1", "kv-node, N=1"), ("kv3", "3 kv-nodes, N=3 W=2 R=2")]:
    ratios = []
    for op in ["set", "get"]:
        ratios.append(spread([a / b for a, b in zip(col[f"{name}_{op}"], col[f"redis_{op}"])]))
    for op in ["set", "get"]:
        ratios.append(spread([a / b for a, b in zip(col[f"{name}_{op}_p99"], col[f"redis_{op}_p99"])]))
    print(f"| {label} | {spread(col[name + '_set'], '{:.0f}')} | {spread(col[name + '_set_p99'])} | "
          f"{spread(col[name + '_get'], '{:.0f}')} | {spread(col[name + '_get_p99'])} | " + " | ".join(ratios) + " |")
PY

for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
pids=()

echo
echo "### Repair bytes against the missed writes (3 nodes, N=3, 100,000 keys, one node down for d writes)"
echo
echo "| d | repaired bytes | missed bytes | ratio | sync traffic bytes | converged after |"
echo "|---|---|---|---|---|---|"
for d in 1 100 10000; do
  out=$("$bin/kv-cluster" --nodes 3 --keys 100000 --missed "$d" --node-binary "$bin/kv-node")
  python3 - "$d" <<PY
import re, sys
out = """$out"""
m = re.search(r"(\d+) bytes repaired for (\d+) bytes missed \(([\d.]+)x\), (\d+) bytes of sync traffic", out)
c = re.search(r"replicas agree ([^ ]+) later", out)
print(f"| {sys.argv[1]} | {m.group(1)} | {m.group(2)} | {m.group(3)}x | {m.group(4)} | {c.group(1)} |")
PY
done

echo
echo "### Memory and restart at 1,000,000 keys of 100-byte values (one node, redb cache 8 MiB)"
echo
out=$("$bin/kv-cluster" --nodes 1 --keys 1000000 --cache-mb 8 --node-binary "$bin/kv-node")
python3 - <<PY
import re
out = """$out"""
loaded = float(re.search(r"n1 resident memory ([\d.]+) MiB", out).group(1))
m = re.search(r"answering after ([^ ]+) \(summaries rebuilt in (\d+) ms, ([\d.]+) MiB resident\)", out)
after = float(m.group(3))
print("| measure | value |")
print("|---|---|")
print(f"| resident memory after loading 1,000,000 keys | {loaded:.1f} MiB ({loaded * 1048576 / 1e6:.0f} bytes per key) |")
print(f"| resident memory after a restart | {after:.1f} MiB ({after * 1048576 / 1e6:.0f} bytes per key; the data, 112 bytes per key, is on disk) |")
print(f"| restart: spawn to answering | {m.group(1)} |")
print(f"| of which the summary rebuild (one scan of the rows) | {m.group(2)} ms |")
PY
