-- An echo server on every core: one listening socket per worker process
-- on the same port (SO_REUSEPORT), the kernel spreading connections over
-- them. From the checkout root:
--   make
--   LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/5.4/?.so;;' \
--     lua5.4 examples/workers.lua 8080 2
-- Arguments: port (8080; 0 picks a free one), workers (the number of
-- cores) and a name: with one, every answer is "<name><worker> <message>"
-- instead of the message (the specs use it to see who answered). Worker 1
-- prints "PORT <n>" once every worker is started. Stopping worker 1
-- (Ctrl-C, SIGTERM) stops the others.
local ws = require "ws"

local port = tonumber(arg and arg[1]) or 8080
local n = tonumber(arg and arg[2])
if not n then
  local f = io.popen("nproc")
  n = f and tonumber(f:read("*l")) or 1
  if f then f:close() end
end
local name = arg and arg[3]

local me -- this process's worker number, set below
local server = assert(ws.listen{
  port = port, reuse_port = true,
  handler = function(conn)
    for data, kind in conn:messages() do
      conn:send(name and (name .. me .. " " .. data) or data, kind)
    end
  end,
})
me = assert(ws.workers(n))
if me == 1 then
  print("PORT " .. server.port)
  io.stdout:flush()
end
ws.run()
