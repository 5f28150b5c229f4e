#!/usr/bin/env bash
# The rock installs on each Lua: `luarocks make` of the rockspec into a
# tree of its own per Lua (build/rocks/<name>), then that Lua loads lua-ws
# from that tree alone and runs a smoke check. PUC Lua 5.4, 5.3 and 5.1
# through luarocks --lua-version; LuaJIT 2.1 through a throwaway LuaRocks
# config, passed in LUAROCKS_CONFIG in place of the user's config file,
# that names its interpreter and headers. No LuaRocks config is written.
# Usage: .ci/rock_versions.sh [5.4|5.3|5.1|luajit]...   (default: all four)
set -euo pipefail
cd "$(dirname "$0")/.."

ROCKSPEC=rockspec/lua-ws-scm-1.rockspec
LUAJIT_INC=${LUAJIT_INC:-/usr/include/luajit-2.1}
LUAJIT_BIN=${LUAJIT_BIN:-/usr/bin/luajit}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The rock builds ws.core into build/rock/ (the Makefile's rock-build):
# nothing may land at ./ws/, where it would shadow the installed rock for
# a script run from the checkout, nor as objects next to the sources.
strays() { compgen -G 'ws' || compgen -G 'csrc/*/*.o' || true; }
[ -z "$(strays)" ] || { echo "remove these first: $(strays)" >&2; exit 1; }

cat > "$tmp/luajit-config.lua" <<EOF
lua_interpreter = "$(basename "$LUAJIT_BIN")"
variables = {
  LUA_DIR = "/usr",
  LUA_BINDIR = "$(dirname "$LUAJIT_BIN")",
  LUA_INCDIR = "$LUAJIT_INC",
  LUA = "$LUAJIT_BIN",
}
EOF

# The smoke check, run by the interpreter under test with the tree as its
# first argument. Only the tree is on package.path and package.cpath.
cat > "$tmp/check.lua" <<'EOF'
local tree, abi, networked = arg[1], arg[2], arg[3] == "yes"
local lua_dir = tree .. "/share/lua/" .. abi
local lib_dir = tree .. "/lib/lua/" .. abi
package.path = lua_dir .. "/?.lua;" .. lua_dir .. "/?/init.lua"
package.cpath = lib_dir .. "/?.so"

local function fail(msg) io.stderr:write(msg, "\n") os.exit(1) end
local function check(cond, msg) if not cond then fail(msg) end end

-- package.searchpath is missing from PUC Lua 5.1
local function searchpath(name, path)
  name = name:gsub("%.", "/")
  for template in path:gmatch("[^;]+") do
    local file = template:gsub("%?", name)
    local f = io.open(file, "rb")
    if f then f:close() return file end
  end
end

local ok, ws = pcall(require, "ws")
check(ok, "require 'ws' failed: " .. tostring(ws))
-- the modules that work on every Lua, 5.1 included
for _, m in ipairs{ "ws.codes", "ws.reconnect", "ws.url" } do
  local ok2, err = pcall(require, m)
  check(ok2, "require '" .. m .. "' failed: " .. tostring(err))
end
local core = require "ws.core"

local so = searchpath("ws.core", package.cpath)
check(so == lib_dir .. "/ws/core.so", "ws.core not installed in the tree: "
  .. tostring(so))
local src = debug.getinfo(ws.protocol.new, "S").source
check(src == "@" .. lua_dir .. "/ws/protocol.lua",
  "ws.protocol loaded from " .. src)

check(ws.handshake.accept("dGhlIHNhbXBsZSBub25jZQ==")
  == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "ws.handshake.accept: wrong key")

-- a message each way between a client and a server engine
local client = ws.protocol.new{ role = "client" }
local server = ws.protocol.new{ role = "server" }
local function one(p)
  local got = {}
  for ev in p:events() do got[#got + 1] = ev end
  check(#got == 1, "expected one event, got " .. #got)
  return got[1]
end
server:feed(client:send("hello from " .. abi))
local ev = one(server)
check(ev.type == "message" and ev.kind == "text"
  and ev.data == "hello from " .. abi, "server engine: bad message")
client:feed(server:send("\0\1\2", "binary"))
ev = one(client)
check(ev.type == "message" and ev.kind == "binary" and ev.data == "\0\1\2",
  "client engine: bad message")
server:feed(client:close(1000, "bye"))
ev = one(server)
check(ev.type == "close" and ev.code == 1000, "server engine: bad close")

if networked then
  for _, m in ipairs{ "ws.loop", "ws.server", "ws.connect", "ws.client" } do
    local ok2, err = pcall(require, m)
    check(ok2, "require '" .. m .. "' failed: " .. tostring(err))
  end
  -- an echo over loopback
  local srv = assert(ws.listen{
    host = "127.0.0.1", port = 0,
    handler = function(conn)
      for data, kind in conn:messages() do conn:send(data, kind) end
    end,
  })
  local conn, err = ws.connect("ws://127.0.0.1:" .. srv.port .. "/",
    { timeout = 5 })
  check(conn, "ws.connect over loopback: " .. tostring(err))
  conn:send("echo")
  local data, kind = conn:receive(5)
  check(data == "echo" and kind == "text",
    "loopback echo: got " .. tostring(data) .. ", " .. tostring(kind))
  conn:close()
  srv:close(1)
end

io.write(ws._VERSION, networked and ", loopback echo ok" or "", "\n")
EOF

# name  luarocks options             interpreter  ABI  networked layer
rows=(
  "5.4    --lua-version=5.4  lua5.4            5.4  yes"
  "5.3    --lua-version=5.3  lua5.3            5.3  yes"
  "5.1    --lua-version=5.1  lua5.1            5.1  no"
  "luajit --lua-version=5.1  $LUAJIT_BIN       5.1  yes"
)

want=("$@")
[ ${#want[@]} -eq 0 ] && want=(5.4 5.3 5.1 luajit)

run_one() {
  local name=$1 opt=$2 lua=$3 abi=$4 net=$5
  local label="lua$name" tree="build/rocks/$name" log="$tmp/$name.log"
  [ "$name" = luajit ] && label=luajit
  local env=()
  [ "$name" = luajit ] && env=(LUAROCKS_CONFIG="$tmp/luajit-config.lua")

  command -v "$lua" >/dev/null \
    || { echo "rock $label: FAILED, no interpreter $lua" >&2; return 1; }
  rm -rf "$tree"
  if ! env "${env[@]}" luarocks "$opt" make --tree "$tree" "$ROCKSPEC" \
       >"$log" 2>&1; then
    cat "$log" >&2
    echo "rock $label: FAILED, luarocks make did not install" >&2
    return 1
  fi
  if [ -n "$(strays)" ]; then
    echo "rock $label: FAILED, the build left $(strays) in the checkout" >&2
    return 1
  fi
  # LuaRocks must have built against this Lua's headers
  if [ "$name" = luajit ] && ! grep -q -- "-I$LUAJIT_INC" "$log"; then
    cat "$log" >&2
    echo "rock $label: FAILED, not compiled against $LUAJIT_INC" >&2
    return 1
  fi
  local out
  if ! out=$(env -u LUA_INIT -u LUA_INIT_5_2 -u LUA_INIT_5_3 -u LUA_INIT_5_4 \
             "$lua" "$tmp/check.lua" "$PWD/$tree" "$abi" "$net" 2>&1); then
    printf '%s\n' "$out" >&2
    echo "rock $label: FAILED, installed rock does not load or work" >&2
    return 1
  fi
  echo "rock $label: installed and loaded ($out)"
}

failed=()
for w in "${want[@]}"; do
  found=
  for row in "${rows[@]}"; do
    read -r name opt lua abi net <<<"$row"
    [ "$name" = "$w" ] || continue
    found=1
    run_one "$name" "$opt" "$lua" "$abi" "$net" || failed+=("$name")
  done
  [ -n "$found" ] || { echo "unknown Lua '$w' (5.4, 5.3, 5.1, luajit)" >&2; exit 2; }
done

if [ ${#failed[@]} -ne 0 ]; then
  echo "rock: FAILED on ${failed[*]}" >&2
  exit 1
fi
