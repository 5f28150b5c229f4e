-- Our client's echo rate: N connections, one message in flight each,
-- against any echo server.
--   lua5.4 bench/client_echo.lua ws://127.0.0.1:PORT/ [conns] [size] [secs]
-- wss:// trusts the CA file in $CA_FILE when set.
-- Prints a RESULT line like bench/loadgen's.
local ws = require "ws"

local url = assert(arg[1], "usage: client_echo.lua URL [conns] [size] [secs]")
local conns = tonumber(arg[2]) or 50
local size = tonumber(arg[3]) or 16
local secs = tonumber(arg[4]) or 5

local count, bad, failed = 0, 0, 0
local t_start, t_end
local payload = ("x"):rep(size)

for c = 1, conns do
  ws.spawn(function()
    local conn, err = ws.connect(url, { timeout = 10, deflate = false,
      tls = os.getenv("CA_FILE") and { ca_file = os.getenv("CA_FILE") } })
    if not conn then
      failed = failed + 1
      io.stderr:write("connect: ", err, "\n")
      return
    end
    local n = 0
    while not t_end or ws.now() < t_end do
      n = n + 1
      -- stamp the message so a stale or foreign echo is caught
      local msg = (c .. ":" .. n .. ":" .. payload):sub(1, math.max(size, 1))
      if #msg < size then msg = msg .. payload:sub(#msg + 1) end
      conn:send(msg, "binary")
      local echo = conn:receive(10)
      if echo ~= msg then bad = bad + 1 break end
      if t_start and ws.now() >= t_start then count = count + 1 end
    end
    conn:close()
  end)
end

local t0 = ws.now()
t_start, t_end = t0 + 1, t0 + 1 + secs   -- 1 s warm-up
ws.run()
print(("RESULT client=lua-ws conns=%d size=%d echoes=%d secs=%.2f rate=%.1f "
  .. "mismatches=%d conn_errors=%d"):format(conns, size, count, secs,
  count / secs, bad, failed))
os.exit((bad == 0 and failed == 0 and count > 0) and 0 or 1)
