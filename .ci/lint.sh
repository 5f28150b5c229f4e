#!/usr/bin/env bash
# Static analysis of the C core: clang-tidy (checks in .clang-tidy) and
# cppcheck over every csrc/*/*.c, against Lua 5.4's headers and, for the Lua
# binding, LuaJIT's too (ws_lua.h differs between them); clang-tidy
# also sees ws_net.c's poll(2) backend, which Linux builds leave out. Exits
# non-zero on any finding. Installs what is missing (Debian packages).
# The chosen checks and why some are left out: doc/static-analysis.md.
set -euo pipefail
cd "$(dirname "$0")/.."

CLANG_TIDY=${CLANG_TIDY:-clang-tidy}
CPPCHECK=${CPPCHECK:-cppcheck}
LUA_INC=${LUA_INC:-/usr/include/lua5.4}
LUAJIT_INC=${LUAJIT_INC:-/usr/include/luajit-2.1}

# ----------------------------------------------------------- dependencies
.ci/deps.sh lint

# Every csrc/*/*.c is part of ws.core; the binding files (csrc/lua/)
# include lua.h.
all=(csrc/core/*.c csrc/net/*.c csrc/lua/*.c)
binding=(csrc/lua/*.c)
# The Makefile's language mode. Its -Wall -Wextra -Werror -pedantic are
# already enforced by the gcc and clang builds, so they are not repeated.
std=(-std=c11 -Icsrc/core -Icsrc/net -Icsrc/lua)
status=0
jobs=$(nproc 2>/dev/null || echo 2)

# ------------------------------------------------------------- clang-tidy
# One process per file, $jobs at a time; .clang-tidy makes every warning
# an error, so any finding fails that file. "N warnings generated" counts
# what was filtered out (system headers) and is dropped.
tidy() { # extra-flags file...
  local -a extra
  read -r -a extra <<< "$1"
  shift
  printf '%s\n' "$@" | xargs -P "$jobs" -I{} \
    "$CLANG_TIDY" --quiet {} -- "${std[@]}" "${extra[@]}" 2>&1 \
    | { grep -vE '^[0-9]+ warnings? (and [0-9]+ errors? )?generated\.$' || true; }
  return "${PIPESTATUS[1]}"
}

start=$SECONDS
echo "== clang-tidy $("$CLANG_TIDY" --version | sed -n 's/.*version \([0-9.]*\).*/\1/p' | head -1)" \
     "(${#all[@]} files, Lua 5.4; ${#binding[@]} binding files, LuaJIT;" \
     "ws_net.c with WS_NET_USE_POLL)"
tidy "-I$LUA_INC" "${all[@]}" || status=1
tidy "-I$LUAJIT_INC" "${binding[@]}" || status=1
tidy "-DWS_NET_USE_POLL" csrc/net/ws_net.c || status=1
echo "clang-tidy: $([ $status -eq 0 ] && echo clean || echo FINDINGS)" \
     "($((SECONDS - start))s)"

# --------------------------------------------------------------- cppcheck
# --force: check every preprocessor configuration, not the first 12.
# LUA_USER_H is LuaJIT's hook for a user header that does not exist here.
start=$SECONDS
cpp_status=0
cpp=("$CPPCHECK" "--enable=warning,style,performance,portability"
     --error-exitcode=1 --std=c11 --inline-suppr --force --quiet
     --library=posix --library=lua --library=openssl
     -Icsrc/core -Icsrc/net -Icsrc/lua)
echo "== $("$CPPCHECK" --version)"
"${cpp[@]}" -I"$LUA_INC" "${all[@]}" 2>&1 || cpp_status=1
"${cpp[@]}" -I"$LUAJIT_INC" -ULUA_USER_H "${binding[@]}" 2>&1 \
  || cpp_status=1
echo "cppcheck: $([ $cpp_status -eq 0 ] && echo clean || echo FINDINGS)" \
     "($((SECONDS - start))s)"

[ $status -eq 0 ] && [ $cpp_status -eq 0 ]
