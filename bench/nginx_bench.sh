#!/usr/bin/env bash
# ws.resty against lua-resty-websocket (Debian's lua-nginx-websocket) in
# the same nginx: one worker, two echo locations, the same load from
# bench/loadgen against each, the two taking turns. Prints a table of
# echoes per second and the ratio ws.resty / lua-resty-websocket.
#
#   bench/nginx_bench.sh            (make nginx-bench)
#
# Environment:
#   DURATION  measured seconds per case and location (default 5)
#   WARMUP    seconds of load before measuring (default 1)
#   QUICK=1   a smoke run: DURATION=1, WARMUP=0.2
#   REPEAT    runs per case and location; the table shows the medians
#             (default 1)
#   KIND      binary (default) or text (ws.resty validates UTF-8,
#             lua-resty-websocket does not)
#   BENCH_CASES  "conns size" pairs separated by commas, e.g. "50 1024,1 16"
#             (default: 1x16, 50x16, 50x20, 50x1024, 10x65536, 2x1048576;
#             50x20 because payloads of exactly 16 bytes run 3-6 times
#             slower than 15 or 17 through this nginx, for both servers)
#
# Both locations echo whole messages; lua-resty-websocket's loop answers
# pings and closes like its documentation's example. nginx runs with
# master_process off and one worker, so it and the load generator get a
# core each on a 2-core machine. Exit status 1 if a run failed.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
if [[ ${QUICK:-0} == 1 ]]; then
  DURATION=1
  WARMUP=0.2
fi
REPEAT=${REPEAT:-1}
KIND=${KIND:-binary}
CASES=("1 16" "50 16" "50 20" "50 1024" "10 65536" "2 1048576")
if [[ -n ${BENCH_CASES:-} ]]; then IFS=, read -r -a CASES <<<"$BENCH_CASES"; fi
LOCATIONS=(ws-resty lua-resty-websocket)

make --no-print-directory -s build/jit/ws/core.so build/bench/loadgen

TMP=$(mktemp -d)
NGINX_PID=""
cleanup() {
  if [[ -n $NGINX_PID ]]; then
    kill "$NGINX_PID" 2>/dev/null || true
    wait "$NGINX_PID" 2>/dev/null || true
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT

# A free loopback port: bind port 0 with ws.core, read it back, let it go.
PORT=$(luajit -e 'package.cpath = "build/jit/?.so"
  local l = assert(require("ws.core").tcp_listen("127.0.0.1", 0))
  print(l:port()) l:close()')
ROOT=$(pwd)
mkdir -p "$TMP/logs" "$TMP/tmp"
cat >"$TMP/nginx.conf" <<EOF
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
daemon off;
master_process off;
worker_processes 1;
pid $TMP/logs/nginx.pid;
error_log $TMP/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $TMP/tmp;
  proxy_temp_path $TMP/tmp;
  fastcgi_temp_path $TMP/tmp;
  uwsgi_temp_path $TMP/tmp;
  scgi_temp_path $TMP/tmp;
  lua_package_path '$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;;';
  lua_package_cpath '$ROOT/build/jit/?.so;;';
  lua_socket_log_errors off;
  server {
    listen 127.0.0.1:$PORT;
    location = /ws-resty {
      content_by_lua_block {
        require("ws.resty").serve{ max_message_size = 4 * 1024 * 1024,
          handler = function(conn)
            for data, kind in conn:messages() do conn:send(data, kind) end
          end }
      }
    }
    location = /lua-resty-websocket {
      content_by_lua_block {
        local server = require "nginx.websocket.server"
        local wb, err = server:new{ timeout = 60000,
          max_payload_len = 4 * 1024 * 1024 }
        if not wb then
          ngx.log(ngx.ERR, "handshake: ", err)
          return ngx.exit(444)
        end
        while true do
          local data, typ, rerr = wb:recv_frame()
          if not data then
            if not (rerr and rerr:find("timeout", 1, true)) then break end
          elseif typ == "close" then
            wb:send_close(1000, "")
            break
          elseif typ == "ping" then
            wb:send_pong(data)
          elseif typ == "text" then
            wb:send_text(data)
          elseif typ == "binary" then
            wb:send_binary(data)
          end
        end
      }
    }
  }
}
EOF

nginx -p "$TMP" -c "$TMP/nginx.conf" -e "$TMP/logs/error.log" \
  >"$TMP/logs/stdout" 2>&1 </dev/null &
NGINX_PID=$!
for _ in $(seq 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
  sleep 0.05
done
(exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null || {
  cat "$TMP/logs/error.log" "$TMP/logs/stdout" >&2
  echo "nginx did not start" >&2
  exit 2
}

echo "nginx $(nginx -v 2>&1 | sed 's/.*nginx\///') on port $PORT," \
  "one worker; ${DURATION}s per run, ${REPEAT} run(s), $KIND messages"

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

failed=0
declare -A RATE P50 P99
for case in "${CASES[@]}"; do
  read -r conns size <<<"$case"
  for loc in "${LOCATIONS[@]}"; do : >"$TMP/$loc-$conns-$size"; done
  for _ in $(seq "$REPEAT"); do
    for loc in "${LOCATIONS[@]}"; do
      if out=$(build/bench/loadgen -p "$PORT" -P "/$loc" -c "$conns" \
          -s "$size" -d "$DURATION" -w "$WARMUP" -t "$KIND" 2>&1); then
        grep '^RESULT' <<<"$out" >>"$TMP/$loc-$conns-$size"
      else
        echo "FAILED: $loc ${conns}x$size: $out" >&2
        failed=1
      fi
    done
  done
  for loc in "${LOCATIONS[@]}"; do
    f="$TMP/$loc-$conns-$size"
    field() { grep -o " $1=[0-9.]*" "$f" | cut -d= -f2 | median; }
    if [[ -s $f ]]; then
      RATE[$loc,$case]=$(field rate)
      P50[$loc,$case]=$(field p50_us)
      P99[$loc,$case]=$(field p99_us)
    fi
  done
done

printf '\n| conns x size | lua-resty-websocket echoes/s (p50/p99 us) | ws.resty echoes/s (p50/p99 us) | ws.resty / lua-resty-websocket |\n'
printf '|---|---|---|---|\n'
for case in "${CASES[@]}"; do
  read -r conns size <<<"$case"
  a=${RATE[lua-resty-websocket,$case]:-}
  b=${RATE[ws-resty,$case]:-}
  ratio="-"
  if [[ -n $a && -n $b ]]; then
    ratio=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", b / a }')
  fi
  printf '| %s x %s B | %s (%s/%s) | %s (%s/%s) | %s |\n' "$conns" "$size" \
    "${a:--}" "${P50[lua-resty-websocket,$case]:--}" \
    "${P99[lua-resty-websocket,$case]:--}" "${b:--}" \
    "${P50[ws-resty,$case]:--}" "${P99[ws-resty,$case]:--}" "$ratio"
done

if grep -E '\[(error|alert|crit)\]' "$TMP/logs/error.log" >&2; then
  echo "nginx logged errors (above)" >&2
  failed=1
fi
exit "$failed"
