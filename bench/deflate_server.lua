-- Echo server for bench/deflate_bench.sh, on the public API only.
-- Usage: lua5.4 bench/deflate_server.lua [port] [on|off]
--   (lua/ and ws.core on the paths; port 0 or none: any free port)
-- "on" accepts permessage-deflate with the server's defaults (deflate =
-- true: windows 12, mem_level 5, level 6, threshold 128); "off" declines
-- it. Prints "PORT <n>" on stdout once listening, then once a second on
-- stderr
--   STAT conns <open> heap_kib <collectgarbage count> tx_raw <n>
--        tx_wire <n> rx_wire <n> rx_raw <n> deflated <n>
-- where the byte counts are conn:deflate_stats() summed over connections
-- that have ended and `deflated` counts those that agreed on
-- permessage-deflate (no collection is forced).
local ws = require "ws"

local port = tonumber(arg and arg[1]) or 0
local mode = arg and arg[2] or "on"
assert(mode == "on" or mode == "off", "mode: on or off")

local total = { tx_raw = 0, tx_wire = 0, rx_wire = 0, rx_raw = 0 }
local deflated = 0

local server = assert(ws.listen{
  host = "127.0.0.1", port = port,
  deflate = mode == "on",
  max_connections = 1000000, -- the memory runs may pass the default cap
  handler = function(conn)
    for data, kind in conn:messages() do conn:send(data, kind) end
    if conn.extensions["permessage-deflate"] then
      deflated = deflated + 1
      local st = conn:deflate_stats()
      for k in pairs(total) do total[k] = total[k] + st[k] end
    end
  end,
})
print("PORT " .. server.port)
io.stdout:flush()

ws.spawn(function()
  -- bounded: the benchmark kills the server long before this ends
  for _ = 1, 7200 do
    io.stderr:write(("STAT conns %d heap_kib %.1f tx_raw %d tx_wire %d "
      .. "rx_wire %d rx_raw %d deflated %d\n"):format(server:count(),
      collectgarbage("count"), total.tx_raw, total.tx_wire, total.rx_wire,
      total.rx_raw, deflated))
    io.stderr:flush()
    ws.sleep(1)
  end
end)

ws.run()
