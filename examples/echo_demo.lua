-- lua-ws demo over loopback: starts examples/echo_server.lua in another
-- process, then a client exchanges messages, pings and closes by name.
-- From the checkout root:
--   make
--   LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/5.4/?.so;;' \
--     lua5.4 examples/echo_demo.lua
local ws = require "ws"

local lua = arg and arg[-1] or "lua5.4"
local server = assert(io.popen(lua .. " examples/echo_server.lua 0 & echo PID $!"))
local port, pid
for _ = 1, 2 do
  local line = server:read("*l") or ""
  pid = pid or line:match("^PID (%d+)")
  port = port or tonumber(line:match("^PORT (%d+)"))
end
assert(port, "the echo server did not start")
print(("echo server (pid %s) listening on 127.0.0.1:%d"):format(pid, port))

local url = "ws://127.0.0.1:" .. port .. "/demo"
local conn, err, ev = ws.connect(url, { timeout = 5 })
if not conn then
  print("connect failed: " .. err .. " (" .. ev.name .. ")")
  os.exit(1)
end
print("connected to " .. url)

conn:on("close:normal", function(_, e)
  print(("  on('close:normal') called: %d %s, reason %q"):format(e.code, e.name,
    e.reason))
end)

for _, msg in ipairs{ "hello", "¡hola!", ("big "):rep(20000) } do
  conn:send(msg)
  local echo = conn:receive(5)
  print(("  sent %6d bytes of text, echo %s"):format(#msg,
    echo == msg and "matches" or "DIFFERS"))
end
conn:send("\0\1\2\3", "binary")
local data, kind = conn:receive(5)
print(("  sent 4 bytes of binary, echo is %s and %s"):format(kind,
  data == "\0\1\2\3" and "matches" or "DIFFERS"))

local rtt = conn:ping("are you there?")
print(("  ping answered in %.3f ms"):format(rtt * 1000))

local close = conn:close("normal", "demo done")
print(("closed: code %d (%s), clean=%s, initiator=%s, server replied %d")
  :format(close.code, close.name, tostring(close.clean), close.initiator,
    close.received and close.received.code or 0))

-- a connection that ends without a closing handshake
local c2 = assert(ws.connect(url, { timeout = 5 }))
os.execute("kill " .. pid)
local _, why, ev2 = c2:receive(5)
print(("server process killed: receive says %q, close event %d (%s), "
  .. "error=%s"):format(why, ev2.code, ev2.name, tostring(ev2.error)))
server:close()
