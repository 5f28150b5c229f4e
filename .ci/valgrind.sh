#!/usr/bin/env bash
# The core specs under valgrind memcheck, against a plain (no sanitizer)
# -O1 -g build of ws.core in build/valgrind/. Fails on any memcheck error
# and on any definite leak; "still reachable" blocks (the interpreter's and
# busted's, alive at exit) are fine. Installs what is missing (Debian
# packages). See doc/static-analysis.md.
set -euo pipefail
cd "$(dirname "$0")/.."

CC=${CC:-cc}
LUA=${LUA:-lua5.4}
LUA_INC=${LUA_INC:-/usr/include/lua5.4}
BUSTED=${BUSTED:-/usr/bin/busted}
OUT=build/valgrind

# ----------------------------------------------------------- dependencies
.ci/deps.sh valgrind

# ------------------------------------------------------------------ build
# The Makefile's warnings and shared-object flags, without sanitizers
# (their runtimes and valgrind do not mix) and at -O1 -g for exact lines.
mkdir -p "$OUT/ws"
"$CC" -std=c11 -Wall -Wextra -Werror -pedantic -O1 -g \
  -fPIC -shared -fvisibility=hidden -I"$LUA_INC" -Icsrc/core -Icsrc/net -Icsrc/lua \
  csrc/core/*.c csrc/net/*.c csrc/lua/*.c -o "$OUT/ws/core.so" -lssl -lcrypto -lz -pthread

# -------------------------------------------------------------------- run
# By default the specs that drive the C core in-process (no sockets, no
# child processes); VALGRIND_SPECS="spec/a_spec.lua ..." runs others.
# --keep-debuginfo: Lua unloads ws.core at lua_close, before the leak
# check, and a leak report should still name our lines.
specs=(spec/core_spec.lua spec/protocol_spec.lua spec/split_spec.lua
       spec/codes_spec.lua spec/handshake_spec.lua spec/url_spec.lua
       spec/pmd_spec.lua spec/deflate_spec.lua spec/stream_engine_spec.lua)
if [ -n "${VALGRIND_SPECS:-}" ]; then
  read -r -a specs <<< "$VALGRIND_SPECS"
fi
start=$SECONDS
echo "== valgrind $(valgrind --version | sed 's/^valgrind-//'): ${specs[*]}"
valgrind --tool=memcheck --error-exitcode=1 --leak-check=full \
  --errors-for-leak-kinds=definite --track-origins=yes --keep-debuginfo=yes \
  "$LUA" "$BUSTED" --cpath="./$OUT/?.so" -o spec/support/summary.lua \
  "${specs[@]}"
echo "valgrind: clean ($((SECONDS - start))s)"
