-- An echo server.
--   lua5.4 examples/echo_server.lua [port] [host]
-- Prints "PORT <n>" once listening (port 0 picks a free one), then echoes
-- every message back with its kind until interrupted.
local ws = require "ws"

local port = tonumber(arg and arg[1]) or 8080
local host = arg and arg[2] or "127.0.0.1"

local server = assert(ws.listen{
  host = host, port = port,
  handler = function(conn)
    for data, kind in conn:messages() do
      conn:send(data, kind)
    end
  end,
})
print("PORT " .. server.port)
io.stdout:flush()
ws.run()
