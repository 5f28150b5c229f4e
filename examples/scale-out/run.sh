#!/usr/bin/env bash
# Scale out past one machine: two lua-ws echo servers (examples/workers.lua,
# one worker each, standing in for two machines) behind nginx, which
# balances WebSocket connections over them (examples/scale-out/nginx.conf).
#   examples/scale-out/run.sh [PORT]     nginx on PORT (8080) until Ctrl-C
#   examples/scale-out/run.sh --check    free ports; 20 clients through
#       nginx must each get an echo, from both servers; then it stops
# Needs nginx (plain; no Lua module) and the build (make).
set -euo pipefail
cd "$(dirname "$0")/../.."
make --no-print-directory -s all

free_port() {
  lua5.4 -e 'package.cpath = "build/5.4/?.so"
    local l = assert(require("ws.core").tcp_listen("127.0.0.1", 0))
    print(l:port()) l:close()'
}
check=0
port=${1:-8080}
if [[ $port == --check ]]; then
  check=1
  port=$(free_port)
fi
prefix=$(mktemp -d)
mkdir -p "$prefix/tmp"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$prefix"' EXIT

# the backends: "a1 <message>" and "b1 <message>" say who answered
backends=()
for name in a b; do
  LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH='./build/5.4/?.so;;' \
    lua5.4 examples/workers.lua 0 1 "$name" >"$prefix/$name.out" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    grep -q '^PORT ' "$prefix/$name.out" && break
    sleep 0.05
  done
  backends+=("$(awk '/^PORT /{print $2; exit}' "$prefix/$name.out")")
done
sed -e "s|@PREFIX@|$prefix|g" -e "s|@PORT@|$port|g" \
  -e "s|@BACKEND1@|${backends[0]}|g" -e "s|@BACKEND2@|${backends[1]}|g" \
  examples/scale-out/nginx.conf >"$prefix/nginx.conf"
nginx -p "$prefix" -c "$prefix/nginx.conf" -e "$prefix/error.log" \
  -g 'daemon off;' &
pids+=($!)
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.05
done
if [[ $check == 0 ]]; then
  echo "ws://127.0.0.1:$port/ -> lua-ws on ports ${backends[*]}; Ctrl-C stops"
  wait
  exit
fi

LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH='./build/5.4/?.so;;' \
  lua5.4 - "ws://127.0.0.1:$port/" <<'LUA'
local ws = require "ws"
local url = arg[1]
local seen, conns = { a = 0, b = 0 }, {}
-- 20 connections open at once: least_conn sends them to both servers
for i = 1, 20 do
  conns[i] = assert(ws.connect(url))
  assert(conns[i]:send("hello " .. i))
end
for i = 1, 20 do
  local reply = assert(conns[i]:receive(5))
  local who, rest = reply:match("^(%a)1 (.*)$")
  assert(rest == "hello " .. i, "echo " .. i .. ": " .. reply)
  seen[who] = seen[who] + 1
end
for i = 1, 20 do
  local ev = conns[i]:close()
  assert(ev.code == 1000 and ev.clean, "close " .. i)
end
print(("20 echoes through nginx: %d from server a, %d from server b")
  :format(seen.a, seen.b))
assert(seen.a > 0 and seen.b > 0, "one server got every connection")
LUA
