-- An echo client: sends a few messages, checks the echoes, pings, closes.
-- With examples/echo_server.lua running on port 8080 (see its header), from
-- the checkout root:
--   make
--   LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/5.4/?.so;;' \
--     lua5.4 examples/echo_client.lua ws://127.0.0.1:8080/
local ws = require "ws"

local url = arg and arg[1] or "ws://127.0.0.1:8080/"
local conn, err, ev = ws.connect(url, { timeout = 5 })
if not conn then
  print(("could not connect: %s (close %d %s, error=%s)"):format(err, ev.code,
    ev.name, ev.error))
  os.exit(1)
end

for _, msg in ipairs{ "hello", "wörld", ("x"):rep(70000) } do
  assert(conn:send(msg))
  local echo, kind = conn:receive(5)
  print(("sent %d bytes, got %s back as %s"):format(#msg,
    echo == msg and "them" or "something else", tostring(kind)))
end
assert(conn:send("\0\1\2", "binary"))
print("binary echo ok:", select(1, conn:receive(5)) == "\0\1\2")

local rtt = conn:ping()
print(("ping round trip: %.3f ms"):format(rtt * 1000))

local close = conn:close("normal", "done")
print(("closed: %d %s, clean=%s, initiator=%s"):format(close.code, close.name,
  tostring(close.clean), close.initiator))
