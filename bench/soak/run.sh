#!/usr/bin/env bash
# Load and soak test: many reconnecting ws.client connections to one
# ws.listen echo server over loopback, every echo checked by sequence
# number and checksum, the server's RSS watched.
#
# Scenarios (SCENARIOS, default "direct faults"):
#   direct  clients -> server
#   faults  clients -> bench/soak/fault_proxy.lua -> server; the proxy
#           resets (RST both ways) RESET_PCT % of the connections it
#           accepts, at random times in the measured window. Every client
#           must reconnect, and every message must be echoed exactly once
#           or be reported (see clients.lua for the accounting rule).
#
# Environment (defaults; SHORT=1 gives the CI run in brackets):
#   CONNS      connections (1000) [200]
#   DURATION   measured seconds (60) [10]
#   WARMUP     seconds of load before measuring (5) [2]
#   MAX_SIZE   largest message in bytes; sizes are uniform from the 24-byte
#              header up to it (262144) [65536]
#   INTERVAL   seconds between RSS/throughput samples (5) [2]
#   RESET_PCT  share of proxied connections reset, in % (5)
#   SEED       seeds message sizes, payloads and reset choices (1)
#   RSS_PCT, RSS_MIB  the server's RSS may grow from the start to the end
#              of the measured window by the larger of RSS_PCT % of its
#              start value and RSS_MIB MiB (10, 32; see README.md)
#   LUA        the interpreter (lua5.4; Lua 5.3+ integers are needed)
#
# Prints, per scenario: messages/s and MB/s over the measured window, the
# echo round trip, the CPU taken by each process and by everything else
# (the machine may have 2 cores shared with other work: read throughput
# with that in mind), the server's RSS at the start and end of the window
# and every INTERVAL seconds, the clients' and proxy's RSS, and the
# accounting. Exit status 0 when every scenario passed, 1 when one failed
# (a message lost, corrupted, duplicated or out of order, a client that
# did not reconnect, RSS growth over the limit, ...), 2 when a process
# could not be started. Every process started here is killed on exit.
set -euo pipefail

cd "$(dirname "$0")/../.."

if [[ ${SHORT:-0} == 1 ]]; then
  CONNS=${CONNS:-200} DURATION=${DURATION:-10} WARMUP=${WARMUP:-2}
  MAX_SIZE=${MAX_SIZE:-65536} INTERVAL=${INTERVAL:-2}
fi
CONNS=${CONNS:-1000}
DURATION=${DURATION:-60}
WARMUP=${WARMUP:-5}
MAX_SIZE=${MAX_SIZE:-262144}
INTERVAL=${INTERVAL:-5}
RESET_PCT=${RESET_PCT:-5}
SEED=${SEED:-1}
RSS_PCT=${RSS_PCT:-10}
RSS_MIB=${RSS_MIB:-32}
SCENARIOS=${SCENARIOS:-"direct faults"}
LUA=${LUA:-lua5.4}
DRAIN=30
CONNECT_TIMEOUT=60

export LUA_PATH="./lua/?.lua;./lua/?/init.lua;;"
export LUA_CPATH="./build/5.4/?.so;;"

if [[ ! -f build/5.4/ws/core.so ]]; then make >/dev/null; fi

# descriptors: the clients hold CONNS, the proxy 2 * CONNS, the server
# CONNS, plus reconnections in progress and the usual few
need=$((CONNS * 4 + 256))
soft=$(ulimit -Sn)
if [[ $soft != unlimited && $soft -lt $need ]]; then
  hard=$(ulimit -Hn)
  if [[ $hard != unlimited && $hard -lt $need ]]; then
    echo "run.sh: need $need file descriptors, the hard limit is $hard" >&2
    exit 2
  fi
  ulimit -Sn "$need"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/soak.XXXXXX")
pids=()
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_port LOG PID: the port a child printed as "PORT <n>" (5 s at most)
wait_port() {
  local i
  for ((i = 0; i < 50; i++)); do
    if grep -qs '^PORT ' "$1"; then
      awk '/^PORT /{print $2; exit}' "$1"
      return 0
    fi
    if ! kill -0 "$2" 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "run.sh: no port from $1:" >&2
  cat "$1" >&2
  return 1
}

stop() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# run_scenario NAME: 0 pass, 1 fail, 2 could not start
run_scenario() {
  local name=$1 dir="$tmp/$1" spid cpid ppid="" sport pport url rc=0
  local max_time=$((CONNECT_TIMEOUT + WARMUP + DURATION + DRAIN + 120))
  mkdir -p "$dir"
  echo "=== scenario $name: $CONNS connections, ${DURATION} s, messages up to" \
    "$MAX_SIZE bytes$([[ $name == faults ]] && echo ", ${RESET_PCT}% of" \
    "connections reset")"
  "$LUA" bench/soak/server.lua port=0 max_size="$MAX_SIZE" \
    interval="$INTERVAL" max_time="$max_time" stats="$dir/server.stats" \
    >"$dir/server.log" 2>&1 &
  spid=$!
  pids+=("$spid")
  sport=$(wait_port "$dir/server.log" "$spid") || return 2
  url="ws://127.0.0.1:$sport/"
  local extra=(faults=0)
  if [[ $name == faults ]]; then
    "$LUA" bench/soak/fault_proxy.lua upstream="$sport" pct="$RESET_PCT" \
      seed="$SEED" control="$dir/control" stats="$dir/proxy.stats" \
      max_time="$max_time" >"$dir/proxy.log" 2>&1 &
    ppid=$!
    pids+=("$ppid")
    pport=$(wait_port "$dir/proxy.log" "$ppid") || return 2
    url="ws://127.0.0.1:$pport/"
    extra=(faults=1 proxy_pid="$ppid" proxy_stats="$dir/proxy.stats"
      control="$dir/control")
  fi
  # in the background so that a signal to this script is handled at once
  timeout -k 5 "$max_time" "$LUA" bench/soak/clients.lua url="$url" \
    conns="$CONNS" duration="$DURATION" warmup="$WARMUP" \
    max_size="$MAX_SIZE" seed="$SEED" interval="$INTERVAL" drain="$DRAIN" \
    connect_timeout="$CONNECT_TIMEOUT" server_pid="$spid" \
    server_stats="$dir/server.stats" rss_pct="$RSS_PCT" rss_mib="$RSS_MIB" \
    clk_tck="$(getconf CLK_TCK)" label="$name" "${extra[@]}" &
  cpid=$!
  pids+=("$cpid")
  wait "$cpid" || rc=$?
  if [[ $rc == 124 || $rc == 137 ]]; then
    echo "$name: FAIL: the clients did not finish within $max_time s"
  fi
  if ! kill -0 "$spid" 2>/dev/null; then
    echo "$name: FAIL: the server died"
    rc=1
  fi
  stop "$spid"
  [[ -n $ppid ]] && stop "$ppid"
  echo "server log (last lines):"
  tail -n 3 "$dir/server.log" | sed 's/^/  /'
  if [[ -n $ppid ]]; then
    echo "proxy log (last lines):"
    tail -n 3 "$dir/proxy.log" | sed 's/^/  /'
  fi
  [[ $rc == 0 ]] || return 1
}

echo "soak: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)" \
  "before starting; $LUA; fd limit $(ulimit -Sn)"
start=$SECONDS
status=0
for s in $SCENARIOS; do
  rc=0
  run_scenario "$s" || rc=$?
  if [[ $rc -gt $status ]]; then status=$rc; fi
  echo
done
echo "soak: $([[ $status == 0 ]] && echo PASS || echo FAIL)" \
  "($SCENARIOS) in $((SECONDS - start)) s"
exit "$status"
