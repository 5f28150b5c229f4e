-- lua-ws demo: a client engine and a server engine talking through
-- in-memory buffers (no sockets), showing the close events by name.
--
-- From the checkout root:
--   make
--   LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/5.4/?.so;;' \
--     lua5.4 examples/sansio_demo.lua
local ws = require "ws"

local function show(who, ev)
  if ev.type == "close" then
    print(string.format("  %-6s close  %d %-15s initiator=%-9s clean=%-5s%s%s",
      who, ev.code, ev.name or "?", ev.initiator, tostring(ev.clean),
      ev.reason ~= "" and ("  reason=%q"):format(ev.reason) or "",
      ev.error and ("  error=" .. ev.error) or ""))
  else
    print(string.format("  %-6s %-6s %s", who, ev.type,
      ev.kind and ("%s %q"):format(ev.kind, ev.data) or ("%q"):format(ev.data)))
  end
end

-- Deliver bytes to an engine and print what it reports; return the
-- bytes it wants to send back (automatic pongs, close replies).
local function deliver(who, p, bytes)
  p:feed(bytes)
  for ev in p:events() do show(who, ev) end
  return p:take_output()
end

local function pair()
  return ws.protocol.new{ role = "client" }, ws.protocol.new{ role = "server" }
end

print("1. A conversation that ends with a normal close")
do
  local client, server = pair()
  local wire = client:send("hello") .. client:send("\0\1\2", "binary")
    .. client:ping("are you there?")
  local back = deliver("server", server, wire)
  back = back .. server:send("hi, client")
  deliver("client", client, back)
  local close = assert(client:close("normal", "bye"))
  local reply = deliver("server", server, close)
  deliver("client", client, reply)
  print("  states: client " .. client.state .. ", server " .. server.state)
end

print("\n2. A corrupted frame: the server fails the connection")
do
  local client, server = pair()
  local frame = client:send("a message that will be damaged")
  -- set RSV1, which no extension was negotiated for
  frame = string.char(frame:byte(1) + 0x40) .. frame:sub(2)
  local reply = deliver("server", server, client:send("fine") .. frame)
  deliver("client", client, reply)
end

print("\n3. The byte stream ends without a close frame")
do
  local client, server = pair()
  deliver("server", server, client:send("last words"))
  server:eof()
  for ev in server:events() do show("server", ev) end
end

print("\nSec-WebSocket-Accept for the RFC 6455 sample key: "
  .. ws.handshake.accept("dGhlIHNhbXBsZSBub25jZQ=="))
