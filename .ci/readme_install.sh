#!/usr/bin/env bash
# The README's LuaRocks install commands, run verbatim: each block marked
# <!-- doc-run: install=LUA --> is taken out of README.md by
# .ci/doc_blocks.lua (never retyped) and run with bash in a fresh clone of
# this repository's HEAD, with a throwaway HOME. Then, in the same shell
# (so with the block's `eval "$(luarocks ... path)"`), from the clone's
# root, where a stray ./ws/core.so would come first on LuaRocks'
# LUA_CPATH, the plain interpreter loads ws and must have mapped the
# core.so installed under $HOME/.luarocks, and the build must have left
# no ./ws/ and no object files in the clone.
# Usage: .ci/readme_install.sh [5.4|5.3|5.1|luajit]...   (default: all four)
set -euo pipefail
cd "$(dirname "$0")/.."

want=("$@")
[ ${#want[@]} -eq 0 ] && want=(5.4 5.3 5.1 luajit)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
git clone -q "$PWD" "$tmp/clone"

# Run by the interpreter under test, after the README's block.
cat > "$tmp/check.lua" <<'EOF'
local want = arg[1]
local ws = require "ws"
local maps = assert(io.open("/proc/self/maps", "r"))
local loaded = {}
for line in maps:lines() do
  local file = line:match("%s(/%S*/ws/core%.so)$")
  if file then loaded[file] = true end
end
maps:close()
local n = 0
for file in pairs(loaded) do
  n = n + 1
  if file ~= want then
    io.stderr:write("loaded ", file, ", not the installed ", want, "\n")
    os.exit(1)
  end
end
if n ~= 1 then
  io.stderr:write("ws.core is not mapped from ", want, "\n")
  os.exit(1)
end
assert(ws.handshake.accept("dGhlIHNhbXBsZSBub25jZQ==")
  == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
io.write(ws._VERSION, " from ", want, "\n")
EOF

failed=()
for lua in "${want[@]}"; do
  case $lua in
    5.4|5.3|5.1) interp=lua$lua abi=$lua ;;
    luajit) interp=luajit abi=5.1 ;;
    *) echo "unknown Lua '$lua' (5.4, 5.3, 5.1, luajit)" >&2; exit 2 ;;
  esac
  home="$tmp/home-$lua"
  mkdir -p "$home"
  block=$(lua5.4 .ci/doc_blocks.lua --extract "install=$lua" "$tmp/clone/README.md")
  printf '%s\n' "$block" > "$tmp/install-$lua.sh"
  cat >> "$tmp/install-$lua.sh" <<EOF
if [ -e ws ] || compgen -G 'csrc/*/*.o' >/dev/null; then
  echo "the build left ./ws or object files in the checkout" >&2; exit 1
fi
$interp "$tmp/check.lua" "$home/.luarocks/lib/lua/$abi/ws/core.so"
EOF
  echo "== README install for $lua:"
  sed 's/^/   $ /' <<<"$block"
  if (cd "$tmp/clone" && env -u LUA_PATH -u LUA_CPATH -u LUA_PATH_5_4 \
        -u LUA_CPATH_5_4 -u LUA_PATH_5_3 -u LUA_CPATH_5_3 -u LUA_INIT \
        HOME="$home" bash -e "$tmp/install-$lua.sh" >"$tmp/$lua.log" 2>&1); then
    echo "readme install $lua: ok ($(tail -1 "$tmp/$lua.log"))"
  else
    cat "$tmp/$lua.log" >&2
    echo "readme install $lua: FAILED" >&2
    failed+=("$lua")
  fi
  (cd "$tmp/clone" && git clean -qfdx)
done

if [ ${#failed[@]} -ne 0 ]; then
  echo "README install: FAILED on ${failed[*]}" >&2
  exit 1
fi
