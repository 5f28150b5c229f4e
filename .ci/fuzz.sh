#!/usr/bin/env bash
# Run fuzz targets (built in build/fuzz/) for FUZZ_TIME seconds each, JOBS
# at a time (default: the number of cores), each from its checked-in corpus
# (fuzz/corpus/NAME, copied to build/fuzz/corpus/NAME). Prints each
# target's final stats and any error, and fails if any target failed.
#   FUZZ_TIME=25 JOBS=2 .ci/fuzz.sh fuzz_close fuzz_utf8 ...
set -uo pipefail
cd "$(dirname "$0")/.."
time=${FUZZ_TIME:-30}
jobs=${JOBS:-$(nproc)}
logs=()
pids=()
status=0

finish() { # wait for the oldest running target and report it
  local pid=${pids[0]} log=${logs[0]}
  pids=("${pids[@]:1}")
  logs=("${logs[@]:1}")
  local t=${log#build/fuzz/}
  t=${t%.log}
  if wait "$pid"; then r=0; else r=$?; status=1; fi
  echo "== $t (${time}s)$([ $r -ne 0 ] && echo " FAILED (exit $r)")"
  grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss|==[0-9]+==ERROR|SUMMARY)' "$log"
}

for t in "$@"; do
  c=${t#fuzz_}
  mkdir -p "build/fuzz/corpus/$c"
  if [ -d "fuzz/corpus/$c" ]; then
    cp -n "fuzz/corpus/$c"/* "build/fuzz/corpus/$c/" 2>/dev/null || true
  fi
  [ ${#pids[@]} -ge "$jobs" ] && finish
  "build/fuzz/$t" -max_total_time="$time" -print_final_stats=1 \
    -artifact_prefix="build/fuzz/$t-" "build/fuzz/corpus/$c" \
    > "build/fuzz/$t.log" 2>&1 &
  pids+=($!)
  logs+=("build/fuzz/$t.log")
done
while [ ${#pids[@]} -gt 0 ]; do finish; done
exit $status
