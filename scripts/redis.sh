#!/usr/bin/env bash
# Starts or stops the throwaway Redis servers the sysblocks tests use.
#
#   scripts/redis.sh start        start a standalone server and a 3-master
#                                 cluster on free loopback ports, in a new temp
#                                 dir, persisting nothing; print the variables
#                                 to export (eval "$(scripts/redis.sh start)")
#   scripts/redis.sh stop [DIR]   stop exactly the servers started in DIR (by
#                                 their pid files; default $SYSBLOCKS_REDIS_DIR)
#                                 and remove DIR
set -euo pipefail

die() { echo "redis.sh: $*" >&2; exit 1; }

# A port is free when nothing accepts a connection on it.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Picks a free port (and, for cluster nodes, a free bus port at +10000) that
# no other server of this run has taken.
taken=" "
pick_port() {
  local need_bus=$1 port tries=0
  while :; do
    tries=$((tries + 1)); [ "$tries" -lt 500 ] || die "no free loopback port found"
    port=$((20000 + RANDOM % 30000))
    case "$taken" in *" $port "*|*" $((port + 10000)) "*) continue ;; esac
    port_free "$port" || continue
    if [ "$need_bus" = 1 ]; then port_free $((port + 10000)) || continue; fi
    taken="$taken$port $((port + 10000)) "
    echo "$port"; return 0
  done
}

wait_ping() {
  local port=$1 i
  for i in $(seq 1 500); do
    [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ] && return 0
    sleep 0.02
  done
  return 1
}

# Starts a server on a port picked free (with its cluster bus port when
# "$2" is 1) and prints the port. A port can still be taken between the
# check and the bind (the bus port by some connection's local end, say): the
# server then exits, and another port is tried, up to five.
start_server() {
  local dir=$1 need_bus=$2 port attempt; shift 2
  for attempt in 1 2 3 4 5; do
    port=$(pick_port "$need_bus")
    local args=("$@")
    if [ "$need_bus" = 1 ]; then
      mkdir -p "$dir/node-$port"
      args+=(--cluster-enabled yes --cluster-config-file "$dir/node-$port/nodes.conf"
        --cluster-node-timeout 5000)
    fi
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
      --daemonize yes --dir "$dir" --pidfile "$dir/redis-$port.pid" \
      --logfile "$dir/redis-$port.log" "${args[@]}" >/dev/null || true
    if wait_ping "$port"; then
      echo "$port"
      return 0
    fi
    echo "redis.sh: redis-server on port $port did not start (attempt $attempt): $(tail -1 "$dir/redis-$port.log" 2>/dev/null)" >&2
    [ -s "$dir/redis-$port.pid" ] && kill "$(cat "$dir/redis-$port.pid")" 2>/dev/null
    rm -f "$dir/redis-$port.pid"
  done
  return 1
}

start() {
  command -v redis-server >/dev/null || die "redis-server is not on PATH (scripts/test.sh installs it)"
  command -v redis-cli >/dev/null || die "redis-cli is not on PATH (scripts/test.sh installs it)"
  local dir; dir=$(mktemp -d "${TMPDIR:-/tmp}/sysblocks-redis.XXXXXX")
  # If anything below fails, stop what was started so far.
  trap 'stop "$dir" >/dev/null 2>&1 || true' ERR

  local standalone
  standalone=$(start_server "$dir" 0) || { stop "$dir" >/dev/null 2>&1; die "redis-server did not start"; }

  local nodes=() port
  for _ in 1 2 3; do
    port=$(start_server "$dir" 1) || { stop "$dir" >/dev/null 2>&1; die "a cluster node did not start"; }
    nodes+=("$port")
  done
  redis-cli --cluster create "${nodes[@]/#/127.0.0.1:}" --cluster-replicas 0 --cluster-yes \
    >"$dir/cluster-create.log" 2>&1 || die "redis-cli --cluster create failed: $(tail -5 "$dir/cluster-create.log")"
  # Every node must agree the cluster is healthy before tests use it.
  local i ok
  for i in $(seq 1 500); do
    ok=1
    for port in "${nodes[@]}"; do
      redis-cli -h 127.0.0.1 -p "$port" cluster info 2>/dev/null | grep -q '^cluster_state:ok' || ok=0
    done
    [ "$ok" = 1 ] && break
    sleep 0.02
  done
  [ "$ok" = 1 ] || die "the cluster did not reach cluster_state:ok"
  trap - ERR

  local urls; urls=$(printf 'redis://127.0.0.1:%s/,' "${nodes[@]}")
  echo "export SYSBLOCKS_REDIS_DIR='$dir'"
  echo "export REDIS_URL='redis://127.0.0.1:$standalone/'"
  echo "export REDIS_CLUSTER_NODES='${urls%,}'"
}

stop() {
  local dir=${1:-${SYSBLOCKS_REDIS_DIR:-}}
  [ -n "$dir" ] || die "stop: which servers? pass the dir that start printed (SYSBLOCKS_REDIS_DIR)"
  [ -d "$dir" ] || return 0
  case "$(basename "$dir")" in sysblocks-redis.*) ;; *) die "stop: $dir was not made by redis.sh start" ;; esac
  local pidfile pid pids=()
  for pidfile in "$dir"/redis-*.pid; do
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    # Only a redis-server whose pid file is ours; never any other process.
    if [ -n "$pid" ] && grep -q redis-server "/proc/$pid/cmdline" 2>/dev/null; then
      kill "$pid" 2>/dev/null && pids+=("$pid")
    fi
  done
  local i
  for pid in "${pids[@]}"; do
    for i in $(seq 1 250); do kill -0 "$pid" 2>/dev/null || break; sleep 0.02; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
  done
  rm -rf "$dir"
  echo "stopped ${#pids[@]} redis-server process(es) from $dir" >&2
}

case "${1:-}" in
  start) start ;;
  stop) stop "${2:-}" ;;
  *) echo "usage: scripts/redis.sh start | stop [DIR]" >&2; exit 2 ;;
esac
