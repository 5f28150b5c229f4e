#!/usr/bin/env bash
# Instructions per echo: user-space instructions the lua-ws echo server
# (examples/echo_server.lua) executes per message it echoes, counted by
# valgrind's callgrind. Unlike a rate this does not move with whatever else
# the machine does, so it compares two builds of the Lua path exactly (run
# it in each checkout: `make instr-echo` here and in the other tree). The
# kernel's share (the syscalls) is not counted; echo_bench.sh measures that.
#
# For each load (connections x size) bench/loadgen sends N messages per
# connection (-n); callgrind's counters are zeroed once every connection is
# open and warm (a first round of WARM messages) by a first dump, and the
# second dump holds the measured round alone: start-up and handshakes are
# not counted.
#
# Environment: LUA (lua5.4), BUILD (build/5.4), MSGS (messages per
# connection per round, default 400), CASES ("50 16;50 1024;1 16").
# Output: one line per load, "instr_echo <conns>x<size> <instructions per
# echo>", and the callgrind files are kept in $OUT
# (default build/bench/instr) for callgrind_annotate.
set -euo pipefail
cd "$(dirname "$0")/.."

LUA=${LUA:-lua5.4}
BUILD=${BUILD:-build/5.4}
MSGS=${MSGS:-400}
WARM=${WARM:-50}
OUT=${OUT:-build/bench/instr}
IFS=';' read -r -a CASES <<< "${CASES:-50 16;50 1024;1 16}"
LOADGEN=build/bench/loadgen

command -v valgrind >/dev/null || { echo "instr_echo: valgrind not found" >&2; exit 2; }
[[ -x $LOADGEN ]] || make --no-print-directory "$LOADGEN" >&2
mkdir -p "$OUT"
TMP=$(mktemp -d)
SPID=
cleanup() {
  [[ -n $SPID ]] && kill "$SPID" 2>/dev/null
  [[ -n $SPID ]] && wait "$SPID" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT

for case in "${CASES[@]}"; do
  read -r conns size <<< "$case"
  name="${conns}x${size}"
  rm -f "$OUT/$name".*
  LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH="$BUILD/?.so;;" \
    valgrind --tool=callgrind --compress-strings=no --callgrind-out-file="$OUT/$name.%p" \
    "$LUA" examples/echo_server.lua 0 > "$TMP/server.out" 2> "$TMP/server.err" &
  SPID=$!
  port=
  for _ in $(seq 200); do
    port=$(sed -n 's/^PORT //p' "$TMP/server.out")
    [[ -n $port ]] && break
    sleep 0.1
  done
  [[ -n $port ]] || { cat "$TMP/server.err" >&2; echo "instr_echo: server did not start" >&2; exit 2; }
  # warm: every connection open, each path taken, then zero
  "$LOADGEN" -p "$port" -c "$conns" -s "$size" -n "$WARM" -h 0 -w 0 -d 600 > "$TMP/warm" ||
    { cat "$TMP/warm" >&2; exit 1; }
  callgrind_control -d "$SPID" > /dev/null 2>&1
  "$LOADGEN" -p "$port" -c "$conns" -s "$size" -n "$MSGS" -h 0 -w 0 -d 600 > "$TMP/load" ||
    { cat "$TMP/load" >&2; exit 1; }
  callgrind_control -d "$SPID" > /dev/null 2>&1
  kill "$SPID"; wait "$SPID" 2>/dev/null || true
  SPID=
  # each dump holds what ran since the one before: part 2 is the load
  f=$(ls "$OUT/$name".*.2 2>/dev/null | head -n 1)
  [[ -n $f ]] || { echo "instr_echo: no callgrind dump" >&2; exit 1; }
  total=$(sed -n 's/^summary: //p;s/^totals: //p' "$f" | head -n 1 | awk '{print $1}')
  echoes=$((conns * MSGS))
  awk -v n="$name" -v t="$total" -v e="$echoes" \
    'BEGIN { printf "instr_echo %s %.0f\n", n, t / e }'
done
