#!/usr/bin/env bash
# Idle-connection memory: CONNS idle WebSocket connections to our server
# and to a Node `ws` server in one run, and the server's resident memory
# per connection for each:
#
#   bytes/conn = (VmRSS once all CONNS handshakes are done and RSS has
#                 settled - VmRSS before any connection) / CONNS
#
# Servers (each started on port 0, printing "PORT <n>", and once a second
# "STAT conns <n> heap_kib <k>" on stderr):
#   lua-ws   bench/idle_server.lua (public API only: ws.listen + ws.run)
#            on the lua/ and build/5.4/ws/core.so of $LUAWS_DIR
#   node ws  bench/node_idle.js (the options of bench/node_echo.js)
# Client: bench/idle_client.c (epoll, at most INFLIGHT handshakes at a
# time), built into a temporary directory with $CC -O2 -lcrypto. It checks
# every 101 and its Sec-WebSocket-Accept, then holds the sockets open and
# sends nothing. All traffic is on 127.0.0.1.
#
# RSS is read from /proc/PID/status; no GC is forced in either server (the
# memory a user would see). "Settled": two samples 1 s apart within 1 %,
# at most SETTLE_MAX samples (default 10), taken before the first
# connection and again once the client has all its handshakes and the
# server counts every connection. The heap column is the server's own
# figure: Lua collectgarbage("count") / V8 heapUsed, garbage included.
#
# Environment:
#   CONNS      connections per server (default 10000; QUICK=1: 500)
#   QUICK=1    smoke run (about 10 s); at 500 connections the figures
#              carry the servers' step-wise heap growth, so use CONNS=10000
#              (about 15 s) for numbers
#   LUAWS_DIR  the lua-ws checkout to measure (default: this one); `make`
#              is run there first
#   LUA        interpreter (default lua5.4); CC (default cc)
#   INFLIGHT   handshakes in progress at once (default 200)
#   OPEN_TIMEOUT  seconds for all handshakes to one server (default 60)
#
# Needs CONNS + 256 file descriptors: the soft limit is raised (and the
# hard one too when running as root). Every process started here is
# killed on exit, also on failure. Exit status: 0 ok; 1 a run failed (a
# handshake failed, a connection was lost, a server died or did not count
# every connection); 2 setup failed.
set -euo pipefail

HERE=$(cd "$(dirname "$0")/.." && pwd)
LUAWS_DIR=$(cd "${LUAWS_DIR:-$HERE}" && pwd)
if [[ ${QUICK:-0} == 1 ]]; then CONNS=${CONNS:-500}; fi
CONNS=${CONNS:-10000}
LUA=${LUA:-lua5.4}
CC=${CC:-cc}
INFLIGHT=${INFLIGHT:-200}
OPEN_TIMEOUT=${OPEN_TIMEOUT:-60}
SETTLE_MAX=${SETTLE_MAX:-10}

TMP=$(mktemp -d)
PIDS=()

# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
  local pid i
  for pid in "${PIDS[@]}"; do
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    for i in $(seq 30); do
      kill -0 "$pid" 2>/dev/null || break
      [[ $(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -c1) == Z ]] && break
      sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() { echo "idle_bench: $*" >&2; exit 2; }
log() { echo "idle_bench: $*" >&2; }

[[ $CONNS =~ ^[0-9]+$ && $CONNS -gt 0 ]] || die "CONNS must be a positive integer"

# --- setup: file descriptors, our build, Node ws, the client
need=$((CONNS + 256))
if (( $(ulimit -Sn) < need )); then
  if (( $(ulimit -Hn) < need )); then
    ulimit -Hn "$need" 2>/dev/null || die "cannot raise the fd hard limit to $need (ulimit -Hn is $(ulimit -Hn); run as root or lower CONNS)"
  fi
  ulimit -Sn "$need"
fi
command -v "$LUA" >/dev/null || die "$LUA not found (make deps / .ci/deps.sh bench)"
command -v node >/dev/null || die "node not found"
make -s -C "$LUAWS_DIR" >&2 || die "make failed in $LUAWS_DIR"
[[ -f $LUAWS_DIR/build/5.4/ws/core.so ]] || die "no $LUAWS_DIR/build/5.4/ws/core.so"
if [[ ! -f $HERE/spec/interop/node_modules/ws/package.json ]]; then
  npm ci --prefix "$HERE/spec/interop" --no-audit --no-fund >&2 || die "npm ci failed"
fi
"$CC" -O2 -o "$TMP/idle_client" "$HERE/bench/idle_client.c" -lcrypto \
  || die "cannot build bench/idle_client.c"

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }
last_stat() { # file field -> the field of the last STAT line
  awk -v f="$2" '$1 == "STAT" { for (i = 2; i < NF; i += 2) if ($i == f) v = $(i + 1) } END { print v }' "$1"
}

# settle PID: print "RSS_KIB STABLE(0|1)" once two samples 1 s apart are
# within 1 %, at most SETTLE_MAX samples.
settle() {
  local pid=$1 a b i
  a=$(rss_kib "$pid")
  [[ -n $a ]] || return 1
  for ((i = 1; i < SETTLE_MAX; i++)); do
    sleep 1
    b=$(rss_kib "$pid")
    [[ -n $b ]] || return 1
    if (( (b > a ? b - a : a - b) * 100 <= a )); then
      echo "$b 1"
      return 0
    fi
    a=$b
  done
  echo "$b 0"
}

FAILED=0
RESULTS=()

# run_one NAME CMD...: one server through the whole measurement.
run_one() {
  local name=$1; shift
  local out=$TMP/$name.out err=$TMP/$name.err pid cpid port i
  local before before_ok after after_ok heap0 heap1 opened conns alive
  log "$name: starting $*"
  : >"$out"; : >"$err"; : >"$TMP/$name.client"
  setsid "$@" >"$out" 2>"$err" &
  pid=$!
  PIDS+=("$pid")
  for ((i = 0; i < 100; i++)); do
    port=$(awk '$1 == "PORT" { print $2; exit }' "$out")
    [[ -n $port ]] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if [[ -z $port ]]; then
    log "$name: server did not start"; sed 's/^/  /' "$err" >&2
    FAILED=1; return
  fi
  read -r before before_ok < <(settle "$pid") || { log "$name: server died"; FAILED=1; return; }
  heap0=$(last_stat "$err" heap_kib)

  "$TMP/idle_client" "$port" "$CONNS" "$INFLIGHT" "$OPEN_TIMEOUT" 300 \
    >"$TMP/$name.client" 2>"$TMP/$name.client.err" &
  cpid=$!
  PIDS+=("$cpid")
  for ((i = 0; i < (OPEN_TIMEOUT + 10) * 10; i++)); do
    grep -q '^OPEN' "$TMP/$name.client" && break
    kill -0 "$cpid" 2>/dev/null || break
    sleep 0.1
  done
  opened=$(awk '$1 == "OPEN" { print $2, $6 }' "$TMP/$name.client")
  log "$name: client: ${opened:-no result} (open, seconds)"
  opened=${opened:-0 -}
  if [[ ${opened%% *} != "$CONNS" ]]; then
    log "$name: not every handshake succeeded"; sed 's/^/  /' "$TMP/$name.client.err" >&2
    FAILED=1
  fi
  # the server's own count, from its once-a-second STAT line (<= 10 s)
  for ((i = 0; i < 100; i++)); do
    conns=$(last_stat "$err" conns)
    [[ $conns == "$CONNS" ]] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  [[ $conns == "$CONNS" ]] || { log "$name: server counts ${conns:-?} connections, not $CONNS"; FAILED=1; }
  if ! read -r after after_ok < <(settle "$pid"); then
    log "$name: server died"; sed 's/^/  /' "$err" >&2; FAILED=1; return
  fi
  sleep 1.1 # one more STAT line, for the heap at this point
  heap1=$(last_stat "$err" heap_kib)
  kill -USR1 "$cpid" 2>/dev/null || true
  for ((i = 0; i < 30; i++)); do
    grep -q '^ALIVE' "$TMP/$name.client" && break
    sleep 0.1
  done
  alive=$(awk '$1 == "ALIVE" { v = $2 } END { print v }' "$TMP/$name.client")
  if [[ $alive != "$CONNS" ]]; then
    log "$name: ${alive:-?} of $CONNS connections still open at the end"; FAILED=1
  fi
  kill -TERM "$cpid" 2>/dev/null || true
  wait "$cpid" 2>/dev/null || true
  kill -TERM -- "-$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  if grep -qv '^STAT' "$err"; then
    log "$name: server stderr:"; grep -v '^STAT' "$err" | head -5 | sed 's/^/  /' >&2
  fi
  RESULTS+=("$name $before $after $before_ok$after_ok ${heap0:-0} ${heap1:-0} ${opened#* }")
}

run_one lua-ws env LUA_PATH="$LUAWS_DIR/lua/?.lua;$LUAWS_DIR/lua/?/init.lua;;" \
  LUA_CPATH="$LUAWS_DIR/build/5.4/?.so;;" "$LUA" "$HERE/bench/idle_server.lua"
run_one node-ws node "$HERE/bench/node_idle.js"

echo
echo "idle connections: $CONNS per server, server VmRSS, no forced GC (lua-ws from $LUAWS_DIR)"
printf '%-8s %12s %12s %11s %13s %13s %11s %7s\n' server rss0_KiB rss1_KiB B/conn \
  heap0_KiB heap1_KiB heapB/conn open_s
declare -A PER
for r in "${RESULTS[@]}"; do
  read -r name b a ok h0 h1 secs <<<"$r"
  per=$(( (a - b) * 1024 / CONNS ))
  hper=$(awk -v a="$h0" -v b="$h1" -v n="$CONNS" 'BEGIN { printf "%d", (b - a) * 1024 / n }')
  PER[$name]=$per
  mark=""; [[ $ok == 11 ]] || mark=" (RSS not settled within ${SETTLE_MAX} s)"
  printf '%-8s %12s %12s %11s %13s %13s %11s %7s%s\n' "$name" "$b" "$a" "$per" \
    "$h0" "$h1" "$hper" "$secs" "$mark"
  echo "RESULT server=$name conns=$CONNS rss_before_kib=$b rss_after_kib=$a bytes_per_conn=$per heap_before_kib=$h0 heap_after_kib=$h1 heap_bytes_per_conn=$hper" >&2
done
if [[ -n ${PER[lua-ws]:-} && -n ${PER[node-ws]:-} && ${PER[node-ws]} -gt 0 ]]; then
  awk -v a="${PER[lua-ws]}" -v b="${PER[node-ws]}" \
    'BEGIN { printf "ratio lua-ws/node-ws (bytes/conn): %.2f\n", a / b }'
fi
exit "$FAILED"
