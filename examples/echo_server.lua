-- An echo server. From the checkout root:
--   make
--   LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/5.4/?.so;;' \
--     lua5.4 examples/echo_server.lua 8080
-- Arguments: port (8080; 0 picks a free one) and host (127.0.0.1). Prints
-- "PORT <n>" once listening, then echoes every message back with its kind
-- until interrupted. With the rock installed and `luarocks path`
-- evaluated (README, "Installing"), `lua5.4 examples/echo_server.lua 8080`.
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
