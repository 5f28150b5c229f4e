#!/usr/bin/env bash
# Lua lines per echo, by function and by line (bench/lua_profile.lua):
# the echo server under a line hook, bench/loadgen sending CONNS x MSGS
# messages of SIZE bytes. Environment: LUA (lua5.4), BUILD (build/5.4),
# CONNS (50), SIZE (16), MSGS (100), TOP (40 rows).
set -euo pipefail
cd "$(dirname "$0")/.."
LUA=${LUA:-lua5.4}
BUILD=${BUILD:-build/5.4}
CONNS=${CONNS:-50}
SIZE=${SIZE:-16}
MSGS=${MSGS:-100}
TOP=${TOP:-40}
LOADGEN=build/bench/loadgen
[[ -x $LOADGEN ]] || make --no-print-directory "$LOADGEN" >&2
TMP=$(mktemp -d)
SPID=
cleanup() {
  [[ -n $SPID ]] && kill "$SPID" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT
echoes=$((CONNS * MSGS - CONNS))
LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH="$BUILD/?.so;;" \
  "$LUA" bench/lua_profile.lua "$TMP/port" "$echoes" "$TOP" > "$TMP/report" &
SPID=$!
for _ in $(seq 100); do [[ -s $TMP/port ]] && break; sleep 0.1; done
[[ -s $TMP/port ]] || { echo "lua_profile: server did not start" >&2; exit 2; }
# slow under the hook: a generous hold, the report ends the server
"$LOADGEN" -p "$(cat "$TMP/port")" -c "$CONNS" -s "$SIZE" -n "$MSGS" -h 0 \
  -w 0 -d 600 > /dev/null 2>&1 || true
for _ in $(seq 600); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.1; done
SPID=
cat "$TMP/report"
