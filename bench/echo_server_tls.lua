-- The echo server of bench/client_bench.sh over wss://: examples/
-- echo_server.lua with TLS.
--   lua5.4 bench/echo_server_tls.lua PORT CERT_FILE KEY_FILE
-- Prints "PORT <n>" once listening.
local ws = require "ws"

local server = assert(ws.listen{
  port = tonumber(arg[1]) or 0,
  tls = { cert_file = arg[2], key_file = arg[3] },
  handler = function(conn)
    for data, kind in conn:messages() do conn:send(data, kind) end
  end,
})
print("PORT " .. server.port)
io.stdout:flush()
ws.run()
