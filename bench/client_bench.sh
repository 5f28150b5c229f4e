#!/usr/bin/env bash
# Clients and TLS, side by side in one run (the servers on CPU 0 and the
# clients on CPU 1 when the machine has 2 cores or more):
#   1. client echo rate: our client (bench/client_echo.lua) and Node ws's
#      (bench/node_client_echo.js) against the C floor server
#      (bench/floor_echo.c), which costs the least, so the client is what
#      is measured;
#   2. wss:// servers: our server (bench/echo_server_tls.lua) and Node ws's
#      over https (bench/node_echo.js with TLS_CERT), both under Node ws's
#      client;
#   3. wss:// clients: ours and Node ws's against Node ws's TLS server.
# Each row: echoes/s of each side, and ours / Node's. A certificate for
# 127.0.0.1 is made with openssl for the run.
# Environment: DURATION (5 s per run), REPEAT (1: runs per cell, the
# median is shown), CASES ("1 16;50 16;50 1024;10 65536"), LUA (lua5.4),
# BUILD (build/5.4), QUICK=1 (1 s, two cases).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-5}
REPEAT=${REPEAT:-1}
LUA=${LUA:-lua5.4}
BUILD=${BUILD:-build/5.4}
CASES_TEXT=${CASES:-"1 16;50 16;50 1024;10 65536"}
if [[ ${QUICK:-0} == 1 ]]; then
  DURATION=1
  CASES_TEXT="1 16;50 1024"
fi
IFS=';' read -r -a CASES <<<"$CASES_TEXT"
SPIN=() CPIN=()
if (($(nproc) >= 2)); then SPIN=(taskset -c 0) CPIN=(taskset -c 1); fi
export LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH="./$BUILD/?.so;;"

TMP=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

make --no-print-directory -s build/bench/floor_echo
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$TMP/key.pem" \
  -out "$TMP/cert.pem" 2>/dev/null

# start NAME CMD...: a server printing "PORT <n>"; sets PORT to its port
# (not run in a subshell: PIDS must keep the pid for the cleanup)
start() {
  local name=$1 i
  shift
  "${SPIN[@]}" "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
  PIDS+=($!)
  for i in $(seq 100); do
    PORT=$(awk '/^PORT /{print $2; exit}' "$TMP/$name.out")
    [[ -n $PORT ]] && return
    sleep 0.1
  done
  cat "$TMP/$name.err" >&2
  echo "client_bench: $name printed no port" >&2
  exit 2
}

# rate CLIENT URL CONNS SIZE -> echoes/s (median of REPEAT runs)
rate() {
  local client=$1 url=$2 conns=$3 size=$4 r out runs=()
  for ((r = 1; r <= REPEAT; r++)); do
    if [[ $client == ours ]]; then
      out=$(CA_FILE="$TMP/cert.pem" "${CPIN[@]}" "$LUA" bench/client_echo.lua \
        "$url" "$conns" "$size" "$DURATION")
    else
      out=$(CA_FILE="$TMP/cert.pem" "${CPIN[@]}" node bench/node_client_echo.js \
        "$url" "$conns" "$size" "$DURATION")
    fi
    runs+=("$(awk '/^RESULT/ { for (i = 1; i <= NF; i++)
      if ($i ~ /^rate=/) print substr($i, 6) }' <<<"$out")")
  done
  printf '%s\n' "${runs[@]}" | sort -g | awk '{ v[NR] = $1 } END {
    print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}

start floor build/bench/floor_echo 0
floor=$PORT
start ours_tls "$LUA" bench/echo_server_tls.lua 0 "$TMP/cert.pem" "$TMP/key.pem"
ours_tls=$PORT
TLS_CERT="$TMP/cert.pem" TLS_KEY="$TMP/key.pem" start node_tls node bench/node_echo.js 0
node_tls=$PORT

echo "client and TLS benchmark: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $(nproc) cores," \
  "${DURATION} s per run, median of $REPEAT, node $(node --version)"
row() { # title a b
  printf '%-12s %12s %12s %8s\n' "$1" "$2" "$3" \
    "$(awk -v a="$2" -v b="$3" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')"
}
# table TITLE OURS_CLIENT OURS_URL NODE_CLIENT NODE_URL: one row per case
table() {
  local c conns size
  echo
  echo "$1"
  printf '%-12s %12s %12s %8s\n' "conns x size" "lua-ws" "node ws" "ratio"
  for c in "${CASES[@]}"; do
    read -r conns size <<<"$c"
    row "$conns x $size" "$(rate "$2" "$3" "$conns" "$size")" \
      "$(rate "$4" "$5" "$conns" "$size")"
  done
}
table "1. clients against the C floor server (ws://), echoes/s" \
  ours "ws://127.0.0.1:$floor/" node "ws://127.0.0.1:$floor/"
table "2. wss:// servers under Node ws's client, echoes/s" \
  node "wss://127.0.0.1:$ours_tls/" node "wss://127.0.0.1:$node_tls/"
table "3. wss:// clients against Node ws's TLS server, echoes/s" \
  ours "wss://127.0.0.1:$node_tls/" node "wss://127.0.0.1:$node_tls/"
