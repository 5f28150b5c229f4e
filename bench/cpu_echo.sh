#!/usr/bin/env bash
# CPU time per echo, user and kernel apart: what bounds the small-message
# targets (bench/README.md, "What bounds the small-message targets").
#
# A rate says how fast a server is; this says where its time goes. Each
# server (the C floor, Node ws, lua-ws under Lua 5.4 and LuaJIT) is pinned
# to CPU 0 and bench/loadgen to CPU 1; after a warm-up round on every
# connection, loadgen sends a fixed number of messages per connection and
# the server's utime and stime (/proc/<pid>/stat) are read before and after.
# Dividing by the echoes gives microseconds of user and of system time per
# echo. Whatever the server does beyond the floor's user time is its own
# code; the system time is the kernel's (recvfrom, sendto, epoll_wait, TCP
# on loopback) and near the same for every server making the same calls.
#
# Then bench/min_handler.lua: the least a Lua handler costs per message
# (a task resumed with the message, the messages iterator, a send into C),
# with no I/O and no protocol, under each Lua.
#
# Environment: CONNS (50), SIZE (16), MSGS (messages per connection, 4000),
# LUA (lua5.4), LUAJIT (luajit; LUAJIT= to skip), NODE=0 to skip Node.
# Output: one line per server, "cpu_echo <server> user <us> sys <us> total
# <us> ratio_to_floor <r>", and "min_handler <lua> <us> us per message".
set -euo pipefail
cd "$(dirname "$0")/.."

CONNS=${CONNS:-50}
SIZE=${SIZE:-16}
MSGS=${MSGS:-4000}
LUA=${LUA:-lua5.4}
LUAJIT=${LUAJIT-luajit}
LOADGEN=build/bench/loadgen
FLOOR=build/bench/floor_echo
HZ=$(getconf CLK_TCK)

for bin in "$LOADGEN" "$FLOOR"; do
  [[ -x $bin ]] || { echo "cpu_echo: $bin is missing (make perf builds it)" >&2; exit 1; }
done
if ((MSGS * CONNS < 20000)); then
  echo "cpu_echo: CONNS x MSGS = $((MSGS * CONNS)); use at least 20000 echoes" \
       "(the clock ticks are 1/$HZ s)" >&2
  exit 1
fi

TMP=$(mktemp -d)
SERVER=""
# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
  if [[ -n $SERVER ]]; then kill -- "-$SERVER" 2>/dev/null || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT

# cpu_ticks PID: utime and stime of PID, in clock ticks.
cpu_ticks() { awk '{ print $14, $15 }' "/proc/$1/stat"; }

FLOOR_TOTAL=""

# measure NAME CMD...: start the server in its own session on CPU 0, wait
# for its PORT line, warm it, count its CPU time over CONNS x MSGS echoes.
measure() {
  local name=$1 port="" _ u0 s0 u1 s1 out
  shift
  setsid taskset -c 0 "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" </dev/null &
  SERVER=$!
  for _ in $(seq 100); do
    port=$(awk '/^PORT [0-9]+/ { print $2; exit }' "$TMP/$name.out")
    [[ -n $port ]] && break
    kill -0 "$SERVER" 2>/dev/null || break
    sleep 0.1
  done
  if [[ -z $port ]]; then
    cat "$TMP/$name.err" >&2
    echo "cpu_echo: $name printed no PORT line" >&2
    exit 1
  fi
  # warm-up: handshakes, buffers, JIT traces
  taskset -c 1 "$LOADGEN" -p "$port" -c "$CONNS" -s "$SIZE" -n 200 -h 0 -w 0 -d 60 >/dev/null
  read -r u0 s0 < <(cpu_ticks "$SERVER")
  out=$(taskset -c 1 "$LOADGEN" -p "$port" -c "$CONNS" -s "$SIZE" -n "$MSGS" -h 0 -w 0 -d 600)
  read -r u1 s1 < <(cpu_ticks "$SERVER")
  kill -- "-$SERVER" 2>/dev/null || true
  wait "$SERVER" 2>/dev/null || true
  SERVER=""
  grep -q "^RESULT .* echoes=$((CONNS * MSGS)) .* errors=0 " <<<"$out" || {
    echo "cpu_echo: $name: not every message came back: $out" >&2
    exit 1
  }
  awk -v n="$name" -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v hz="$HZ" \
      -v e=$((CONNS * MSGS)) -v f="$FLOOR_TOTAL" 'BEGIN {
    us = 1e6 / hz / e; t = (u + s) * us
    r = f == "" ? 1 : f / t
    printf "cpu_echo %s user %.2f sys %.2f total %.2f ratio_to_floor %.2f\n",
      n, u * us, s * us, t, r }' | tee "$TMP/line"
  if [[ -z $FLOOR_TOTAL ]]; then FLOOR_TOTAL=$(awk '{ print $8 }' "$TMP/line"); fi
}

echo "# CPU time per echo, ${CONNS} x ${SIZE} B, $((CONNS * MSGS)) echoes," \
     "servers on CPU 0 (microseconds; ratio = floor's total / this total)"
measure floor "$FLOOR" 0
if [[ ${NODE:-1} != 0 ]]; then
  measure node-ws node bench/node_echo.js 0
fi
measure lua-ws-5.4 env LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' \
  LUA_CPATH='./build/5.4/?.so;;' "$LUA" examples/echo_server.lua 0
if [[ -n $LUAJIT ]]; then
  measure lua-ws-luajit env LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' \
    LUA_CPATH='./build/jit/?.so;;' "$LUAJIT" examples/echo_server.lua 0
fi

echo "# the least a Lua handler costs per message (bench/min_handler.lua, CPU 0)"
for lua in "$LUA" ${LUAJIT:+"$LUAJIT"}; do
  printf 'min_handler %s ' "$lua"
  taskset -c 0 "$lua" bench/min_handler.lua
done
