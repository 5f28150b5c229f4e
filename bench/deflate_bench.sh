#!/usr/bin/env bash
# permessage-deflate benchmark (RFC 7692): our server and Node `ws` with
# compression off and on, in one run.
#
# Part 1, echo (PARTS has "echo"): bench/loadgen (C, our core) against four
# servers started at once on port 0, each printing "PORT <n>":
#   lua-ws   bench/deflate_server.lua off | on (deflate = true: the
#            server's defaults, windows 12 bits, mem_level 5, level 6,
#            threshold 128)
#   node ws  bench/node_deflate.js off | on (perMessageDeflate with the same
#            windows, level, memLevel and threshold; zlib on libuv's pool)
# Cases: payload json (text: JSON-like order records, every number drawn
# afresh) or random (binary, incompressible) x message size 1 KiB and
# 64 KiB x mode:
#   off  the "off" server, no extension offered
#   on   the "on" server; loadgen offers "permessage-deflate;
#        client_max_window_bits" and compresses with zlib level 1 (so it
#        spends less than the server; the server inflates that and
#        compresses its echo with its own settings)
#   nct  as on, also offering server_ and client_no_context_takeover
# CONNS connections, one message in flight each. Runs take turns: every
# repetition runs every case, and within a case every mode on both
# servers, so a slow spell hits all of them; the tables show medians.
# "wire/raw" is the server's compression ratio: what loadgen received on
# the wire over what it inflated (its ws_engine_deflate_stats).
#
# Part 2, memory (PARTS has "memory"): for lua-ws and node ws, off and on,
# a fresh server, then MEM_CONNS connections from loadgen (-n 1: each
# sends one 1 KiB JSON message, compressed when on, gets the compressed
# echo, then holds; so both of the connection's zlib streams, which are
# allocated at first use, exist). bytes/conn = (server VmRSS once loadgen
# holds every connection and RSS has settled - VmRSS before) / MEM_CONNS.
# No GC is forced (the memory a user would see), as in bench/idle_bench.sh.
#
# Environment:
#   DURATION   measured seconds per run (default 3)
#   WARMUP     seconds of load before measuring (default 0.5)
#   REPEAT     runs per cell, the table shows the median (default 3)
#   CONNS      connections in part 1 (default 10)
#   MEM_CONNS  connections in part 2 (default 2000)
#   QUICK=1    DURATION=1 WARMUP=0.2 REPEAT=1 MEM_CONNS=500 (about 1 min)
#   PARTS      "echo memory" (default), or one of them
#   LUA        interpreter (default lua5.4), BUILD its build dir (build/5.4)
#   OTHER_LIMIT  mark a cell '!' when other processes used more than this
#              % of a core during one of its runs (default 15)
# Exit status 1 if a run failed (a mismatched echo, a lost connection, a
# server that died, deflate not agreed), 2 if setup failed. Every process
# started here is killed on exit.
set -euo pipefail

cd "$(dirname "$0")/.."

DURATION=${DURATION:-3}
WARMUP=${WARMUP:-0.5}
REPEAT=${REPEAT:-3}
MEM_CONNS=${MEM_CONNS:-2000}
if [[ ${QUICK:-0} == 1 ]]; then
  DURATION=1
  WARMUP=0.2
  REPEAT=1
  MEM_CONNS=500
fi
CONNS=${CONNS:-10}
PARTS=${PARTS:-echo memory}
LUA=${LUA:-lua5.4}
BUILD=${BUILD:-build/5.4}
OTHER_LIMIT=${OTHER_LIMIT:-15}
SETTLE_MAX=${SETTLE_MAX:-10}
LOADGEN=build/bench/loadgen
PAYLOADS=(json random)
SIZES=(1024 65536)
MODES=(off on nct)
SERVERS=(lua node)

TMP=$(mktemp -d)
PIDS=()

# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
  local pid i state
  for pid in "${PIDS[@]}"; do
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    for i in $(seq 30); do
      state=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -c1) || true
      [[ -z $state || $state == Z ]] && break
      sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() { echo "deflate_bench: $*" >&2; exit 2; }
log() { echo "deflate_bench: $*" >&2; }

# ------------------------------------------------------------ prerequisites

command -v "$LUA" >/dev/null || die "$LUA not found"
command -v node >/dev/null || die "node not found"
make -s --no-print-directory all "$LOADGEN" >&2 || die "make failed"
if [[ ! -f spec/interop/node_modules/ws/package.json ]]; then
  npm ci --prefix spec/interop --no-audit --no-fund >&2 || die "npm ci failed"
fi
need=$((MEM_CONNS + 256))
if (($(ulimit -Sn) < need)); then
  if (($(ulimit -Hn) < need)); then
    ulimit -Hn "$need" 2>/dev/null ||
      die "cannot raise the fd limit to $need (lower MEM_CONNS)"
  fi
  ulimit -Sn "$need"
fi

LUA_ENV=(env "LUA_PATH=./lua/?.lua;./lua/?/init.lua;;" "LUA_CPATH=./$BUILD/?.so;;")

# start_server NAME CMD...: start it in its own session and wait for its
# PORT line (10 s at most); sets SPID and SPORT.
start_server() {
  local name=$1 i
  shift
  : >"$TMP/$name.out"
  : >"$TMP/$name.err"
  setsid "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" </dev/null &
  SPID=$!
  PIDS+=("$SPID")
  SPORT=""
  for i in $(seq 100); do
    SPORT=$(awk '$1 == "PORT" { print $2; exit }' "$TMP/$name.out")
    [[ -n $SPORT ]] && return 0
    if ! kill -0 "$SPID" 2>/dev/null; then
      sed 's/^/  /' "$TMP/$name.err" >&2
      die "$name exited before printing its port"
    fi
    sleep 0.1
  done
  die "$name printed no PORT line within 10 s"
}

stop_server() {
  kill -TERM -- "-$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# start_named NAME lua|node on|off: start_server with that server's command.
start_named() {
  if [[ $2 == lua ]]; then
    start_server "$1" "${LUA_ENV[@]}" "$LUA" bench/deflate_server.lua 0 "$3"
  else
    start_server "$1" node bench/node_deflate.js 0 "$3"
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

# median FORMAT NUMBER...
median() {
  local fmt=$1
  shift
  printf '%s\n' "$@" | sort -g | awk -v fmt="$fmt" '{ v[NR] = $1 } END {
    if (NR == 0) { print "-"; exit }
    m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf fmt "\n", m }'
}

ratio() { # a b -> a/b with 2 decimals, "-" if either is missing
  awk -v a="$1" -v b="$2" 'BEGIN {
    if (a == "-" || b == "-" || a == "" || b == "" || b + 0 == 0) print "-"
    else printf "%.2f", a / b }'
}

human_size() {
  local n=$1
  if ((n >= 1024 && n % 1024 == 0)); then echo "$((n / 1024)) KiB"; else echo "$n B"; fi
}

HZ=$(getconf CLK_TCK)
busy_jiffies() { awk '/^cpu / { print $2 + $3 + $4; exit }' /proc/stat; }
proc_jiffies() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $12 + $13 }'; }
now_s() { date +%s.%N; }

FAILED=0
echo "permessage-deflate benchmark: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $(nproc) cores," \
  "load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "  node $(node --version), ws $(node -p "require('./spec/interop/node_modules/ws/package.json').version")," \
  "$($LUA -v 2>&1 | cut -d' ' -f1-2), zlib $(awk '/define ZLIB_VERSION /{gsub(/"/,"",$3); print $3}' /usr/include/zlib.h 2>/dev/null || echo '?')"

# ------------------------------------------------------------ part 1: echo

declare -A RATE P50 WIRE SCPU LCPU DISTURBED STATUS PORT SERVER_PID

run_echo() { # server mode payload size
  local srv=$1 mode=$2 payload=$3 size=$4 smode=on key kind out rc line t0 t1 b0 b1 s0 s1 cpu
  local args=()
  [[ $mode == off ]] && smode=off
  key="$srv/$mode/$payload/$size"
  kind=binary
  [[ $payload == json ]] && kind=text
  [[ $mode != off ]] && args+=(-z)
  [[ $mode == nct ]] && args+=(-Z)
  if ! kill -0 "${SERVER_PID[$srv/$smode]}" 2>/dev/null; then
    STATUS[$key]=dead
    FAILED=1
    return
  fi
  t0=$(now_s) b0=$(busy_jiffies) s0=$(proc_jiffies "${SERVER_PID[$srv/$smode]}")
  set +e
  out=$(timeout --foreground -k 5 "$LIMIT" "$LOADGEN" -p "${PORT[$srv/$smode]}" \
    -c "$CONNS" -s "$size" -d "$DURATION" -w "$WARMUP" -t "$kind" -f "$payload" \
    "${args[@]}" 2>"$TMP/loadgen.err")
  rc=$?
  set -e
  t1=$(now_s) b1=$(busy_jiffies) s1=$(proc_jiffies "${SERVER_PID[$srv/$smode]}")
  line=$(grep '^RESULT ' <<<"$out" || true)
  cpu=$(awk -v t="$t1-$t0" -v hz="$HZ" -v b0="$b0" -v b1="$b1" \
    -v s0="${s0:-0}" -v s1="${s1:-0}" -v l="$(field cpu_s "$line")" 'BEGIN {
      split(t, w, "-"); wall = w[1] - w[2]; if (wall <= 0) wall = 1
      srv = (s1 - s0) / hz; oth = (b1 - b0) / hz - srv - l; if (oth < 0) oth = 0
      printf "%.0f %.0f %.0f", 100 * srv / wall, 100 * l / wall, 100 * oth / wall }')
  read -r scpu lcpu ocpu <<<"$cpu"
  echo "RESULT server=$srv mode=$mode payload=$payload ${line#RESULT } server_cpu=$scpu% loadgen_cpu=$lcpu% other_cpu=$ocpu%"
  if ((ocpu > OTHER_LIMIT)); then DISTURBED[$key]='!'; fi
  if ((rc != 0)) || [[ -z $line ]]; then
    STATUS[$key]=FAIL
    FAILED=1
    sed 's/^/  /' "$TMP/loadgen.err" | head -5 >&2
    return
  fi
  [[ -n ${STATUS[$key]:-} ]] || STATUS[$key]=ok
  RATE[$key]+=" $(field rate "$line")"
  P50[$key]+=" $(field p50_us "$line")"
  SCPU[$key]+=" $scpu"
  LCPU[$key]+=" $lcpu"
  if [[ $mode != off ]]; then
    WIRE[$key]+=" $(awk -v w="$(field rx_wire "$line")" -v r="$(field rx_raw "$line")" \
      'BEGIN { if (r > 0) printf "%.4f", w / r; else print 0 }')"
  fi
}

if [[ " $PARTS " == *" echo "* ]]; then
  for srv in "${SERVERS[@]}"; do
    for smode in off on; do
      start_named "$srv-$smode" "$srv" "$smode"
      PORT[$srv/$smode]=$SPORT
      SERVER_PID[$srv/$smode]=$SPID
    done
  done
  LIMIT=$(awk -v d="$DURATION" -v w="$WARMUP" 'BEGIN { printf "%d", d + w + 30 }')
  echo
  echo "part 1, echo: $CONNS connections, one message in flight each, ${DURATION} s" \
    "measured + ${WARMUP} s warm-up a run, $REPEAT run(s) a cell (median)"
  for ((rep = 1; rep <= REPEAT; rep++)); do
    for payload in "${PAYLOADS[@]}"; do
      for size in "${SIZES[@]}"; do
        for mode in "${MODES[@]}"; do
          for srv in "${SERVERS[@]}"; do
            run_echo "$srv" "$mode" "$payload" "$size"
          done
        done
      done
    done
  done
  for key in "${!STATUS[@]}"; do
    [[ ${STATUS[$key]} == ok ]] || continue
    # shellcheck disable=SC2086 # space-separated lists
    {
      RATE[$key]=$(median %.1f ${RATE[$key]})
      P50[$key]=$(median %.0f ${P50[$key]})
      SCPU[$key]=$(median %.0f ${SCPU[$key]})
      LCPU[$key]=$(median %.0f ${LCPU[$key]})
      if [[ -n ${WIRE[$key]:-} ]]; then WIRE[$key]=$(median %.3f ${WIRE[$key]}); fi
    }
  done
  get() { # ARRAY key -> the median, or the status when the cell failed
    local -n a=$1
    if [[ ${STATUS[$2]:-} == ok ]]; then echo "${a[$2]:--}"; else echo "${STATUS[$2]:--}"; fi
  }

  echo
  echo "echoes/s (round trips a second, all connections; '!' = disturbed by"
  echo "other processes), and server / loadgen CPU in % of one core:"
  printf '%-14s %-5s | %9s %9s %9s | %9s %9s %9s\n' case mode \
    "lua e/s" "srv cpu" "lg cpu" "node e/s" "srv cpu" "lg cpu"
  for payload in "${PAYLOADS[@]}"; do
    for size in "${SIZES[@]}"; do
      for mode in "${MODES[@]}"; do
        l="lua/$mode/$payload/$size" n="node/$mode/$payload/$size"
        printf '%-14s %-5s | %9s %9s %9s | %9s %9s %9s\n' \
          "$payload $(human_size "$size")" "$mode" \
          "$(get RATE "$l")${DISTURBED[$l]:-}" "$(get SCPU "$l")" "$(get LCPU "$l")" \
          "$(get RATE "$n")${DISTURBED[$n]:-}" "$(get SCPU "$n")" "$(get LCPU "$n")"
      done
    done
  done

  echo
  echo "ratios of the medians: ours/node = lua-ws echoes/s over node ws's in"
  echo "the same mode; on/off and nct/off = a server's echoes/s with"
  echo "compression over its own without:"
  printf '%-14s | %8s %8s %8s | %8s %8s | %8s %8s\n' case \
    "ours/node" "" "" "lua" "" "node" ""
  printf '%-14s | %8s %8s %8s | %8s %8s | %8s %8s\n' "" off on nct \
    on/off nct/off on/off nct/off
  for payload in "${PAYLOADS[@]}"; do
    for size in "${SIZES[@]}"; do
      row=()
      for mode in "${MODES[@]}"; do
        row+=("$(ratio "$(get RATE "lua/$mode/$payload/$size")" "$(get RATE "node/$mode/$payload/$size")")")
      done
      for srv in "${SERVERS[@]}"; do
        for mode in on nct; do
          row+=("$(ratio "$(get RATE "$srv/$mode/$payload/$size")" "$(get RATE "$srv/off/$payload/$size")")")
        done
      done
      printf '%-14s | %8s %8s %8s | %8s %8s | %8s %8s\n' \
        "$payload $(human_size "$size")" "${row[@]}"
    done
  done

  echo
  echo "compression ratio of the server (wire bytes / raw bytes of what it"
  echo "sent, lower is better), with context takeover (on) and without (nct):"
  printf '%-14s | %8s %8s | %8s %8s\n' case "lua on" "lua nct" "node on" "node nct"
  for payload in "${PAYLOADS[@]}"; do
    for size in "${SIZES[@]}"; do
      printf '%-14s | %8s %8s | %8s %8s\n' "$payload $(human_size "$size")" \
        "$(get WIRE "lua/on/$payload/$size")" "$(get WIRE "lua/nct/$payload/$size")" \
        "$(get WIRE "node/on/$payload/$size")" "$(get WIRE "node/nct/$payload/$size")"
    done
  done
  for srv in "${SERVERS[@]}"; do
    for smode in off on; do
      stop_server "${SERVER_PID[$srv/$smode]}"
    done
  done
  if [[ -f $TMP/lua-on.err ]]; then
    # conn:deflate_stats() summed by the server itself, all cases together
    awk '$1 == "STAT" { l = $0 } END { if (l != "") print "lua-ws server, conn:deflate_stats() over all its connections: " l }' \
      "$TMP/lua-on.err" | sed 's/STAT conns [0-9]* heap_kib [0-9.]* //'
  fi
fi

# ---------------------------------------------------------- part 2: memory

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }
last_stat() { # file field -> the field of the last STAT line
  awk -v f="$2" '$1 == "STAT" { for (i = 2; i < NF; i += 2) if ($i == f) v = $(i + 1) } END { print v }' "$1"
}
# settle PID: "RSS_KIB STABLE(0|1)" once two samples 1 s apart are within 1 %
settle() {
  local pid=$1 a b i
  a=$(rss_kib "$pid")
  [[ -n $a ]] || return 1
  for ((i = 1; i < SETTLE_MAX; i++)); do
    sleep 1
    b=$(rss_kib "$pid")
    [[ -n $b ]] || return 1
    if (((b > a ? b - a : a - b) * 100 <= a)); then
      echo "$b 1"
      return 0
    fi
    a=$b
  done
  echo "$b 0"
}

declare -A PER
MEM_ROWS=()
run_mem() { # server mode
  local srv=$1 mode=$2 name="mem-$1-$2" before after ok0 ok1 conns lpid i
  local args=()
  [[ $mode == on ]] && args+=(-z)
  start_named "$name" "$srv" "$mode"
  read -r before ok0 < <(settle "$SPID") || { log "$name: server died"; FAILED=1; return; }
  "$LOADGEN" -p "$SPORT" -c "$MEM_CONNS" -s 1024 -t text -f json -n 1 -w 0 \
    -d 60 -h 120 "${args[@]}" >"$TMP/$name.lg" 2>"$TMP/$name.lg.err" &
  lpid=$!
  PIDS+=("$lpid")
  for ((i = 0; i < 700; i++)); do
    grep -q '^HOLD' "$TMP/$name.lg" && break
    kill -0 "$lpid" 2>/dev/null || break
    sleep 0.1
  done
  if [[ $(awk '$1 == "HOLD" { print $2 }' "$TMP/$name.lg") != "$MEM_CONNS" ]]; then
    log "$name: not every connection had its echo"
    sed 's/^/  /' "$TMP/$name.lg.err" | head -5 >&2
    FAILED=1
  fi
  for ((i = 0; i < 30; i++)); do # the server's own count, once a second
    conns=$(last_stat "$TMP/$name.err" conns)
    [[ $conns == "$MEM_CONNS" ]] && break
    sleep 0.1
  done
  [[ $conns == "$MEM_CONNS" ]] || { log "$name: server counts ${conns:-?} connections"; FAILED=1; }
  read -r after ok1 < <(settle "$SPID") || { log "$name: server died"; FAILED=1; return; }
  kill -USR1 "$lpid" 2>/dev/null || true
  wait "$lpid" || { log "$name: loadgen failed"; sed 's/^/  /' "$TMP/$name.lg.err" | head -5 >&2; FAILED=1; }
  stop_server "$SPID"
  PER[$srv/$mode]=$(((after - before) * 1024 / MEM_CONNS))
  MEM_ROWS+=("$srv $mode $before $after ${PER[$srv/$mode]} $ok0$ok1")
  echo "RESULT part=memory server=$srv mode=$mode conns=$MEM_CONNS rss_before_kib=$before rss_after_kib=$after bytes_per_conn=${PER[$srv/$mode]}" >&2
}

if [[ " $PARTS " == *" memory "* ]]; then
  for srv in "${SERVERS[@]}"; do
    for mode in off on; do
      run_mem "$srv" "$mode"
    done
  done
  echo
  echo "part 2, memory: $MEM_CONNS connections per server, each having sent one"
  echo "1 KiB JSON message and received its echo (compressed both ways when on),"
  echo "server VmRSS, no forced GC:"
  printf '%-6s %-4s | %10s %10s %11s | %s\n' server mode rss0_KiB rss1_KiB B/conn note
  for r in "${MEM_ROWS[@]}"; do
    read -r srv mode b a per ok <<<"$r"
    note=""
    [[ $ok == 11 ]] || note="RSS not settled within ${SETTLE_MAX} s"
    printf '%-6s %-4s | %10s %10s %11s | %s\n' "$srv" "$mode" "$b" "$a" "$per" "$note"
  done
  for srv in "${SERVERS[@]}"; do
    on=${PER[$srv/on]:-} off=${PER[$srv/off]:-}
    if [[ -n $on && -n $off ]]; then
      echo "$srv: deflate on costs $((on - off)) bytes/conn more than off (on/off $(ratio "$on" "$off"))"
    fi
  done
  if [[ -n ${PER[lua/on]:-} && -n ${PER[node/on]:-} ]]; then
    echo "ours/node bytes/conn: off $(ratio "${PER[lua/off]:-}" "${PER[node/off]:-}"), on $(ratio "${PER[lua/on]}" "${PER[node/on]}")"
  fi
  # The same connection's heap, counted by the engine's allocator rather
  # than by touched pages (bench/deflate_conn_mem.c).
  CORE_SRC=(csrc/core/ws_utf8.c csrc/core/ws_mask.c csrc/core/ws_frame.c
            csrc/core/ws_codes.c csrc/core/ws_error.c csrc/core/ws_handshake.c
            csrc/core/ws_engine.c csrc/core/ws_deflate.c csrc/core/ws_pmd.c)
  if "${CC:-cc}" -std=c11 -O2 -Icsrc/core bench/deflate_conn_mem.c "${CORE_SRC[@]}" \
      -lz -lcrypto -o "$TMP/deflate_conn_mem"; then
    echo
    echo "heap one lua-ws server engine keeps after one 1 KiB message each way"
    echo "(bench/deflate_conn_mem.c, the engine's allocator; Lua objects not included):"
    for nct in "" nct; do
      "$TMP/deflate_conn_mem" 1024 $nct | awk '/^RESULT/ { print "  " $0 }'
    done
  else
    log "cannot build bench/deflate_conn_mem.c"
    FAILED=1
  fi
fi

echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
if ((FAILED)); then echo "deflate_bench: some runs FAILED (see above)" >&2; fi
exit "$FAILED"
