-- Echo server for bench/idle_bench.sh, on the public API only.
-- Usage: lua5.4 bench/idle_server.lua   (lua/ and ws.core on the paths)
-- Prints "PORT <n>" on stdout once listening, then once a second on
-- stderr "STAT conns <open connections> heap_kib <collectgarbage count>"
-- (no collection is forced: the heap as the running server has it).
local ws = require "ws"

local server = assert(ws.listen{
  host = "127.0.0.1", port = 0,
  -- the default cap is 10000; the benchmark may go past it
  max_connections = 1000000,
  handler = function(conn)
    for data, kind in conn:messages() do conn:send(data, kind) end
  end,
})
print("PORT " .. server.port)
io.stdout:flush()

ws.spawn(function()
  -- bounded: the benchmark kills the server long before this ends
  for _ = 1, 3600 do
    io.stderr:write(("STAT conns %d heap_kib %.1f\n"):format(
      server:count(), collectgarbage("count")))
    io.stderr:flush()
    ws.sleep(1)
  end
end)

ws.run()
