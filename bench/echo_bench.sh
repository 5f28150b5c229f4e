#!/usr/bin/env bash
# Echo benchmark: the same load from bench/loadgen (C, on our core) against
# several WebSocket echo servers in one run, and a table comparing them.
#
# Servers, each started on port 0 (it prints "PORT <n>" on stdout):
#   C floor   build/bench/floor_echo (bench/floor_echo.c: epoll, no
#             validation), unless FLOOR=0: what the kernel alone costs
#   node ws   bench/node_echo.js, always; the reference for the ratios
#   lua-ws    the command in $LUAWS_ECHO_CMD, if set (run with bash -c)
#   lua-ws LuaJIT  the command in $LUAWS_JIT_ECHO_CMD, if set: the same
#             server under LuaJIT (make perf sets it)
#   python    bench/py_echo.py under /usr/bin/python3 (Debian's websockets),
#             if that imports; PY_ECHO=0 leaves it out
# Cases (connections x message size): 1x16 B, 50x16 B, 50x1 KiB,
# 10x64 KiB, 2x1 MiB, one message in flight per connection.
#
# Environment:
#   DURATION  measured seconds per case and server (default 5)
#   WARMUP    seconds of load before measuring (default 1)
#   QUICK=1   a smoke run: DURATION=1, WARMUP=0.2 (about 15 s in all)
#   KIND      binary (default) or text
#   REPEAT    runs per case and server, servers taking turns; the table
#             shows the median of each figure (default 1)
#   OTHER_LIMIT  flag a run ('!') in which other processes used more than
#             this % of a core (default 15)
#   CC        compiler for bench/loadgen (default cc)
#   PIN=1     servers on CPU 0 and the load generator on CPU 1 (taskset),
#             as the figures in bench/README.md were measured
#
# Every server started here is killed on exit. Exit status 1 if any run
# failed (a mismatched echo, a lost connection, nothing echoed, a server
# that died), 2 if a server could not be started.
#
# The load generator is one thread and each server here is (mostly) one
# thread, so on a 2-core machine they get a core each, and the loopback
# network stack (softirq time) takes what is left. Anything else running
# at the same time moves the figures: each RESULT line ends with the CPU
# used by the server, the load generator and all other processes, and the
# table marks disturbed cells.
set -euo pipefail

cd "$(dirname "$0")/.."

DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
if [[ ${QUICK:-0} == 1 ]]; then
  DURATION=1
  WARMUP=0.2
fi
KIND=${KIND:-binary}
REPEAT=${REPEAT:-1}
CC=${CC:-cc}
LOADGEN=build/bench/loadgen
FLOOR_BIN=build/bench/floor_echo
SERVER_PIN=()
LOADGEN_PIN=()
if [[ ${PIN:-0} == 1 ]]; then
  SERVER_PIN=(taskset -c 0)
  LOADGEN_PIN=(taskset -c 1)
fi
CASES=("1 16" "50 16" "50 1024" "10 65536" "2 1048576")
CORE_SRC=(csrc/core/ws_utf8.c csrc/core/ws_mask.c csrc/core/ws_frame.c
          csrc/core/ws_codes.c csrc/core/ws_error.c csrc/core/ws_handshake.c
          csrc/core/ws_engine.c csrc/core/ws_deflate.c csrc/core/ws_pmd.c)

TMP=$(mktemp -d)
PIDS=()

# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
  local pid i state
  for pid in "${PIDS[@]}"; do
    # Each server leads its own process group (setsid), so helpers it
    # spawned go with it.
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    # Give it 3 s to go quietly (a zombie has gone), then force the group.
    for i in $(seq 30); do
      state=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -c1) || true
      [[ -z $state || $state == Z ]] && break
      sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() {
  echo "echo_bench: $*" >&2
  exit 2
}

# ------------------------------------------------------------ prerequisites

build_loadgen() {
  local src stale=0
  [[ -x $LOADGEN ]] || stale=1
  for src in bench/loadgen.c csrc/core/ws.h "${CORE_SRC[@]}"; do
    [[ $src -nt $LOADGEN ]] && stale=1
  done
  if ((stale)); then
    mkdir -p "$(dirname "$LOADGEN")"
    echo "building $LOADGEN" >&2
    "$CC" -std=c11 -Wall -Wextra -Werror -pedantic -O2 -Icsrc/core \
      bench/loadgen.c "${CORE_SRC[@]}" -lcrypto -lz -o "$LOADGEN"
  fi
}

build_loadgen
if [[ ${FLOOR:-1} != 0 ]]; then
  stale=0
  [[ -x $FLOOR_BIN ]] || stale=1
  for src in bench/floor_echo.c csrc/core/ws.h "${CORE_SRC[@]}"; do
    [[ $src -nt $FLOOR_BIN ]] && stale=1
  done
  if ((stale)); then
    echo "building $FLOOR_BIN" >&2
    "$CC" -std=c11 -Wall -Wextra -Werror -pedantic -O2 -Icsrc/core \
      bench/floor_echo.c "${CORE_SRC[@]}" -lcrypto -lz -o "$FLOOR_BIN"
  fi
fi
command -v node >/dev/null || die "node not found"
if [[ ! -d spec/interop/node_modules/ws ]]; then
  echo "installing Node ws into spec/interop/node_modules" >&2
  npm ci --prefix spec/interop >&2
fi

# ------------------------------------------------------------------ servers

NAMES=()   # short names, in column order
LABELS=()  # column headings
PORTS=()
SERVER_PIDS=()
NOTES=()

# start_server NAME LABEL CMD...: start it in its own session, wait for its
# PORT line (10 s at most).
start_server() {
  local name=$1 label=$2 port="" i pid
  shift 2
  : >"$TMP/$name.out"
  setsid "${SERVER_PIN[@]}" "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" </dev/null &
  pid=$!
  PIDS+=("$pid")
  for i in $(seq 100); do
    port=$(awk '/^PORT [0-9]+/ { print $2; exit }' "$TMP/$name.out")
    [[ -n $port ]] && break
    if ! kill -0 "$pid" 2>/dev/null; then
      cat "$TMP/$name.err" >&2
      die "$label exited before printing its port"
    fi
    sleep 0.1
  done
  [[ -n $port ]] || die "$label printed no PORT line within 10 s"
  NAMES+=("$name")
  LABELS+=("$label")
  PORTS+=("$port")
  SERVER_PIDS+=("$pid")
}

if [[ ${FLOOR:-1} != 0 ]]; then
  start_server floor "C floor" "$FLOOR_BIN" 0
fi
start_server node "node ws" node bench/node_echo.js 0

if [[ -n ${LUAWS_ECHO_CMD:-} ]]; then
  start_server luaws "lua-ws" bash -c "exec $LUAWS_ECHO_CMD"
else
  NOTES+=("lua-ws: skipped, LUAWS_ECHO_CMD is not set (a command that starts our echo server on port 0 and prints 'PORT <n>')")
fi

# the same server under LuaJIT (make perf sets it; nginx and LÖVE run
# LuaJIT)
if [[ -n ${LUAWS_JIT_ECHO_CMD:-} ]]; then
  start_server luajit "lua-ws LuaJIT" bash -c "exec $LUAWS_JIT_ECHO_CMD"
fi

if [[ ${PY_ECHO:-1} == 0 ]]; then
  NOTES+=("python websockets: skipped, PY_ECHO=0")
elif /usr/bin/python3 -c 'import websockets' 2>/dev/null; then
  start_server python "python websockets" /usr/bin/python3 bench/py_echo.py 0
else
  NOTES+=("python websockets: skipped, /usr/bin/python3 cannot import websockets")
fi

# --------------------------------------------------------------------- runs

human_size() {
  local n=$1
  if ((n >= 1048576 && n % 1048576 == 0)); then echo "$((n / 1048576)) MiB"
  elif ((n >= 1024 && n % 1024 == 0)); then echo "$((n / 1024)) KiB"
  else echo "$n B"
  fi
}

# field KEY LINE: the value of KEY=... in a RESULT line.
field() {
  local kv
  for kv in $2; do
    [[ $kv == "$1="* ]] && { echo "${kv#*=}"; return; }
  done
  echo ""
}

# CPU accounting per run, in % of one core over the loadgen's lifetime:
# the server's, the load generator's, and everything else's (other
# sessions, builds...). A run where "other" is high was disturbed.
HZ=$(getconf CLK_TCK)
OTHER_LIMIT=${OTHER_LIMIT:-15}
# Only user, nice and system time: softirq time (the loopback network
# stack, heavy here) is charged to no process, so counting it would make
# our own traffic look like someone else's.
busy_jiffies() { awk '/^cpu / { print $2 + $3 + $4; exit }' /proc/stat; }
proc_jiffies() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $12 + $13 }'; }
now_s() { date +%s.%N; }

declare -A RATE P50 P99 STATUS DISTURBED
FAILED=0

echo "echo benchmark: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $(nproc) cores," \
  "load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "  ${DURATION} s measured + ${WARMUP} s warm-up per run, $REPEAT run(s) per" \
  "cell (median), $KIND messages," \
  "node $(node --version), ws $(node -p "require('./spec/interop/node_modules/ws/package.json').version")"
for n in "${NOTES[@]}"; do echo "  note: $n"; done
echo

# median FORMAT NUMBER...: the middle number (mean of the two middle ones),
# printed with the awk printf FORMAT.
median() {
  local fmt=$1
  shift
  printf '%s\n' "$@" | sort -g | awk -v fmt="$fmt" '{ v[NR] = $1 } END {
    if (NR == 0) exit
    m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf fmt "\n", m }'
}

# run_one I CONNS SIZE: one loadgen run against server I; appends to the
# per-case lists.
run_one() {
  local i=$1 conns=$2 size=$3 name key t0 t1 b0 b1 s0 s1 out rc line cpu other
  name=${NAMES[$i]}
  key="$name/$conns/$size"
  if ! kill -0 "${SERVER_PIDS[$i]}" 2>/dev/null; then
    STATUS[$key]="dead"
    FAILED=1
    echo "RESULT server=$name conns=$conns size=$size status=server_dead"
    return
  fi
  t0=$(now_s) b0=$(busy_jiffies) s0=$(proc_jiffies "${SERVER_PIDS[$i]}")
  set +e
  out=$(timeout --foreground -k 5 "$limit" "${LOADGEN_PIN[@]}" "$LOADGEN" -p "${PORTS[$i]}" \
    -c "$conns" -s "$size" -d "$DURATION" -w "$WARMUP" -t "$KIND" \
    2>"$TMP/loadgen.err")
  rc=$?
  set -e
  t1=$(now_s) b1=$(busy_jiffies) s1=$(proc_jiffies "${SERVER_PIDS[$i]}")
  line=$(grep '^RESULT ' <<<"$out" || true)
  cpu=$(awk -v t="$t1-$t0" -v hz="$HZ" -v b0="$b0" -v b1="$b1" \
    -v s0="${s0:-0}" -v s1="${s1:-0}" -v l="$(field cpu_s "$line")" 'BEGIN {
      split(t, w, "-"); wall = w[1] - w[2]; if (wall <= 0) wall = 1
      srv = (s1 - s0) / hz; oth = (b1 - b0) / hz - srv - l; if (oth < 0) oth = 0
      printf "server_cpu=%.0f%% loadgen_cpu=%.0f%% other_cpu=%.0f%%",
        100 * srv / wall, 100 * l / wall, 100 * oth / wall }')
  echo "RESULT server=$name ${line#RESULT } $cpu"
  other=${cpu##*other_cpu=}
  if ((${other%\%} > OTHER_LIMIT)); then DISTURBED[$key]=1; fi
  if ((rc != 0)) || [[ -z $line ]]; then
    STATUS[$key]="FAIL"
    FAILED=1
    sed 's/^/  /' "$TMP/loadgen.err" | head -5 >&2
    return
  fi
  [[ -n ${STATUS[$key]:-} ]] || STATUS[$key]="ok"
  RATE[$key]+=" $(field rate "$line")"
  P50[$key]+=" $(field p50_us "$line")"
  P99[$key]+=" $(field p99_us "$line")"
}

limit=$(awk -v d="$DURATION" -v w="$WARMUP" 'BEGIN { printf "%d", d + w + 30 }')
# Servers take turns within a case, so a slow spell hits all of them.
for c in "${CASES[@]}"; do
  read -r conns size <<<"$c"
  for ((rep = 1; rep <= REPEAT; rep++)); do
    for i in "${!NAMES[@]}"; do
      run_one "$i" "$conns" "$size"
    done
  done
  for i in "${!NAMES[@]}"; do
    key="${NAMES[$i]}/$conns/$size"
    [[ ${STATUS[$key]:-} == ok ]] || continue
    # shellcheck disable=SC2086 # the lists are space-separated on purpose
    RATE[$key]=$(median %.1f ${RATE[$key]})
    # shellcheck disable=SC2086
    P50[$key]=$(median %.0f ${P50[$key]})
    # shellcheck disable=SC2086
    P99[$key]=$(median %.0f ${P99[$key]})
  done
done

# -------------------------------------------------------------------- table

echo
echo "echoes/s = round trips completed per second, all connections together;"
echo "p50/p99 = round-trip latency in microseconds; 'x node' = echoes/s"
echo "relative to node ws (above 1.00 is faster), 'x floor' to the C floor;"
echo "'!' = other processes used over ${OTHER_LIMIT}% of a core during one of"
echo "that cell's runs, so it is suspect."
echo
printf '%-14s' "case"
# the columns with ratios: everything but node ws and the floor
has_floor=0
for n in "${NAMES[@]}"; do [[ $n == floor ]] && has_floor=1; done
rated() { [[ $1 != node && $1 != floor ]]; }
for i in "${!NAMES[@]}"; do
  if rated "${NAMES[$i]}"; then
    printf ' | %-*s' $((34 + 8 * has_floor)) "${LABELS[$i]}"
  else
    printf ' | %-26s' "${LABELS[$i]}"
  fi
done
echo
printf '%-14s' "conns x size"
for i in "${!NAMES[@]}"; do
  printf ' | %10s %7s %7s' "echoes/s" "p50" "p99"
  if rated "${NAMES[$i]}"; then
    printf ' %7s' "x node"
    ((has_floor)) && printf ' %7s' "x floor"
  fi
done
echo
for c in "${CASES[@]}"; do
  read -r conns size <<<"$c"
  printf '%-14s' "$conns x $(human_size "$size")"
  nkey="node/$conns/$size"
  for i in "${!NAMES[@]}"; do
    name=${NAMES[$i]}
    key="$name/$conns/$size"
    if [[ ${STATUS[$key]:-} != ok ]]; then
      printf ' | %10s %7s %7s' "${STATUS[$key]}" "-" "-"
      if rated "$name"; then
        printf ' %7s' "-"
        ((has_floor)) && printf ' %7s' "-"
      fi
      continue
    fi
    printf ' | %10s %7s %7s' "${RATE[$key]}${DISTURBED[$key]:+!}" \
      "${P50[$key]}" "${P99[$key]}"
    if rated "$name"; then
      for ref in "$nkey" "floor/$conns/$size"; do
        [[ $ref == floor/* ]] && ((!has_floor)) && continue
        if [[ ${STATUS[$ref]:-} == ok ]]; then
          printf ' %7s' "$(awk -v a="${RATE[$key]}" -v b="${RATE[$ref]}" \
            'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')"
        else
          printf ' %7s' "-"
        fi
      done
    fi
  done
  echo
done
echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
if ((FAILED)); then
  echo "echo_bench: some runs FAILED (see the loadgen errors above)" >&2
fi
exit "$FAILED"
