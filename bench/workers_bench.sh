#!/usr/bin/env bash
# Scaling over cores: bench/workers_server.lua (examples/workers.lua's
# echo server: SO_REUSEPORT, one listening socket per worker process)
# with 1 worker and with N workers, under bench/loadgen, alternating,
# REPEAT times; prints each run and the median ratio N workers / 1 worker
# per case.
#
# A case is "conns size [work]": work is CPU the handler spends per
# message of its own (iterations of a small arithmetic loop; 3000 is
# about 50 us with Lua 5.4 here), as an application does parsing and
# building its replies.
#
# On a machine with few cores the load generator competes with the
# workers for them: with 2 cores, 2 workers and the load generator share
# 2 cores, so the ratio is bounded by the CPU left over once the load
# generator has its share. For a plain echo the load generator needs
# about half a core; with work per message its share is small, and the
# ratio shows how the workers themselves scale (see bench/README.md).
#
# Environment: WORKERS (2), DURATION (5 s), WARMUP (1 s), REPEAT (3),
# CASES ("50 16;50 1024;50 16 3000"), LUA (lua5.4), BUILD (build/5.4).
set -euo pipefail
cd "$(dirname "$0")/.."
WORKERS=${WORKERS:-2}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
REPEAT=${REPEAT:-3}
LUA=${LUA:-lua5.4}
BUILD=${BUILD:-build/5.4}
IFS=';' read -r -a CASES <<<"${CASES:-50 16;50 1024;50 16 3000}"
LOADGEN=build/bench/loadgen
make --no-print-directory "$LOADGEN" >/dev/null

pid=""
cleanup() { [[ -n $pid ]] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT

# run_case WORKERS CONNS SIZE WORK -> echoes/s
run_case() {
  local n=$1 conns=$2 size=$3 work=$4 out port i
  out=$(mktemp)
  LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH="./$BUILD/?.so;;" \
    "$LUA" bench/workers_server.lua 0 "$n" "$work" >"$out" 2>&1 &
  pid=$!
  for i in $(seq 100); do
    port=$(awk '/^PORT /{print $2; exit}' "$out")
    [[ -n $port ]] && break
    sleep 0.1
  done
  [[ -n $port ]] || { cat "$out" >&2; echo "workers_bench: no PORT" >&2; exit 1; }
  "$LOADGEN" -p "$port" -c "$conns" -s "$size" -d "$DURATION" -w "$WARMUP" |
    awk '/^RESULT/ { for (i = 1; i <= NF; i++) if ($i ~ /^rate=/) print substr($i, 6) }'
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  pid=""
  rm -f "$out"
}

echo "workers benchmark: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $(nproc) cores," \
  "1 vs $WORKERS workers, ${DURATION} s per run, $REPEAT runs each"
for c in "${CASES[@]}"; do
  read -r conns size work <<<"$c"
  work=${work:-0}
  one=() many=()
  for ((r = 1; r <= REPEAT; r++)); do
    one+=("$(run_case 1 "$conns" "$size" "$work")")
    many+=("$(run_case "$WORKERS" "$conns" "$size" "$work")")
  done
  med() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
    print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
  m1=$(med "${one[@]}")
  mn=$(med "${many[@]}")
  printf '%4s x %-7s work %-5s 1 worker: %s  %s workers: %s  median ratio %s\n' \
    "$conns" "$size" "$work" "${one[*]}" "$WORKERS" "${many[*]}" \
    "$(awk -v a="$mn" -v b="$m1" 'BEGIN { printf "%.2f", a / b }')"
done
