-- The server of bench/workers_bench.sh: examples/workers.lua's echo
-- server with, per message, a fixed amount of CPU work of the handler's
-- own, as a real application spends parsing and building replies.
-- Arguments: port (0 picks one), workers, and the work per message in
-- iterations of a small arithmetic loop (0: a plain echo).
local ws = require "ws"

local port = tonumber(arg[1]) or 0
local n = tonumber(arg[2]) or 1
local work = tonumber(arg[3]) or 0

local function busy(k)
  local x = 1
  for _ = 1, k do x = (x * 1103515245 + 12345) % 2147483648 end
  return x
end

local server = assert(ws.listen{
  port = port, reuse_port = true,
  handler = function(conn)
    for data, kind in conn:messages() do
      if work > 0 then busy(work) end
      conn:send(data, kind)
    end
  end,
})
local me = assert(ws.workers(n))
if me == 1 then
  print("PORT " .. server.port)
  io.stdout:flush()
end
ws.run()
