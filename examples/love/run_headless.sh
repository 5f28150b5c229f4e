#!/usr/bin/env bash
# Run the LÖVE echo client (examples/love) headless under Xvfb against
# examples/echo_server.lua: it types and sends five messages, waits for the
# echoes and a ping, then the server is killed and restarted on the same
# port and the client must reconnect and deliver the message it queued
# meanwhile. Checks the client's result line and exit status.
#
#   examples/love/run_headless.sh [screenshot.png]
#
# Needs love, xvfb, xauth, Mesa (.ci/deps.sh love) and the build tools
# (.ci/deps.sh build). Environment: LUA (lua5.4) runs the server,
# LUAWS_LOVE_AUTO (5) messages, LUAWS_LOVE_RESTART (1; 0 skips the
# restart), LUAWS_LOVE_TIMEOUT (20) seconds for the client.
set -euo pipefail

shot=""
if [ -n "${1:-}" ]; then shot=$(realpath -m -- "$1"); fi   # before the cd
cd "$(dirname "$0")/../.."
lua=${LUA:-lua5.4}
messages=${LUAWS_LOVE_AUTO:-5}
restart=${LUAWS_LOVE_RESTART:-1}
limit=${LUAWS_LOVE_TIMEOUT:-20}

make --no-print-directory -s all luajit   # build/5.4 (server), build/jit (LÖVE)

tmp=$(mktemp -d)
server_pid=""
love_pid=""
cleanup() {
  # love runs in its own session (setsid): end xvfb-run, Xvfb and love
  # together through the process group (xvfb-run's auth files are in $tmp)
  if [ -n "$love_pid" ]; then kill -TERM -- "-$love_pid" 2>/dev/null || true; fi
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

fail() { echo "run_headless: $*" >&2; exit 1; }

# Start the echo server on port $1 (0: a free one); it prints "PORT n".
start_server() {
  : >"$tmp/server.out"
  LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH='./build/5.4/?.so;;' \
    "$lua" examples/echo_server.lua "$1" >"$tmp/server.out" 2>&1 &
  server_pid=$!
  for _ in $(seq 50); do
    grep -q '^PORT ' "$tmp/server.out" && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$tmp/server.out" >&2; fail "server exited"; }
    sleep 0.1
  done
  port=$(awk '/^PORT /{print $2; exit}' "$tmp/server.out")
  [ -n "$port" ] || fail "server printed no port"
}

stop_server() {
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}

start=$(date +%s.%N)
start_server 0
echo "echo server on port $port"

LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH='./build/jit/?.so;;' \
LUAWS_URL="ws://127.0.0.1:$port/" LUAWS_LOVE_AUTO="$messages" \
LUAWS_LOVE_RESTART="$restart" LUAWS_LOVE_TIMEOUT="$limit" \
LUAWS_LOVE_SCREENSHOT="$tmp/love-echo.png" TMPDIR="$tmp" \
  setsid xvfb-run -a -s "-screen 0 1024x768x24" \
    timeout --foreground -k 5 $((limit + 10)) love examples/love >"$tmp/love.out" 2>"$tmp/love.err" &
love_pid=$!

if [ "$restart" = 1 ]; then
  # wait (bounded) for the client to ask for the restart, or to end
  asked=""
  for _ in $(seq $((limit * 10))); do
    if grep -q '^love-echo: restart-server' "$tmp/love.out"; then asked=1; break; fi
    kill -0 "$love_pid" 2>/dev/null || break
    sleep 0.1
  done
  if [ -n "$asked" ]; then
    stop_server
    echo "server killed; restarting it on port $port"
    start_server "$port"
  fi
fi

rc=0
wait "$love_pid" || rc=$?
love_pid=""
stop_server
elapsed=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN{printf "%.1f", e - s}')

cat "$tmp/love.out"
result=$(grep '^love-echo: sent=' "$tmp/love.out" || true)
if [ "$rc" -ne 0 ] || [ -z "$result" ]; then
  echo "--- love stderr:" >&2
  cat "$tmp/love.err" >&2
  fail "love exited with $rc${result:+: $result}"
fi
# every message sent came back, and the run said ok
[[ "$result" =~ sent=([0-9]+)\ echoed=([0-9]+) ]] || fail "bad result line"
if [ "${BASH_REMATCH[1]}" != "${BASH_REMATCH[2]}" ] || [ "${BASH_REMATCH[1]}" -eq 0 ]; then
  fail "echoes missing: $result"
fi
[[ "$result" == *" ok" ]] || fail "$result"
if [ "$restart" = 1 ]; then
  [[ "$result" =~ reconnects=[1-9] ]] || fail "no reconnect: $result"
fi

if [ -n "$shot" ]; then
  cp "$tmp/love-echo.png" "$shot"
  echo "screenshot: $shot"
fi
echo "run_headless: ok in ${elapsed}s"
