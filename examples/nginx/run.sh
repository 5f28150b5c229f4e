#!/usr/bin/env bash
# Run examples/nginx/nginx.conf: nginx with ws.resty on 127.0.0.1:PORT
# (default 8080). `--check` instead starts it on a free port, runs the
# nginx-side client (/probe) and examples/echo_client.lua against /echo,
# and stops it.
#   examples/nginx/run.sh [PORT]     examples/nginx/run.sh --check
# Needs nginx with lua-nginx-module (.ci/deps.sh nginx) and curl.
set -euo pipefail
cd "$(dirname "$0")/../.."
make --no-print-directory -s all luajit

check=0
port=${1:-8080}
if [[ $port == --check ]]; then
  check=1
  port=$(lua5.4 -e 'package.cpath = "build/5.4/?.so"
    local l = assert(require("ws.core").tcp_listen("127.0.0.1", 0))
    print(l:port()) l:close()')
fi
prefix=$(mktemp -d)
mkdir -p "$prefix/tmp"
sed -e "s|@ROOT@|$(pwd)|g" -e "s|@PREFIX@|$prefix|g" -e "s|@PORT@|$port|g" \
  examples/nginx/nginx.conf >"$prefix/nginx.conf"

if [[ $check == 0 ]]; then
  echo "ws://127.0.0.1:$port/echo  (http://127.0.0.1:$port/probe runs the"
  echo "nginx-side client); log in $prefix/error.log; Ctrl-C stops"
  exec nginx -p "$prefix" -c "$prefix/nginx.conf" -e "$prefix/error.log"
fi

nginx -p "$prefix" -c "$prefix/nginx.conf" -e "$prefix/error.log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$prefix"' EXIT
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.05
done
curl -sS -m 20 --fail "http://127.0.0.1:$port/probe"
LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH='./build/5.4/?.so;;' \
  lua5.4 examples/echo_client.lua "ws://127.0.0.1:$port/echo"
if grep -E '\[(error|alert|crit)\]' "$prefix/error.log"; then exit 1; fi
grep -o 'closed: .*, client' "$prefix/error.log" | sed 's/, client$//'
