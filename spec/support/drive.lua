-- Driving the loop from specs, always bounded in time.
local ws = require "ws"
local core = require "ws.core"
local loop = require "ws.loop"

local drive = {}
local unpack = table.unpack or unpack

--- Run fn in a task and step the loop until it finishes (at most `limit`
-- seconds, 10 by default); re-raises its error, returns its results.
function drive.run(fn, limit)
  local t = ws.spawn(fn)
  t.joined = true
  local deadline = ws.now() + (limit or 10)
  while not t.done and ws.now() < deadline do ws.step(0.02) end
  assert(t.done, "task did not finish in time")
  if t.err then error(t.err, 0) end
  return unpack(t.results, 1, t.results.n)
end

--- Step the loop until pred() holds (at most `limit` seconds).
function drive.until_true(pred, limit)
  local deadline = ws.now() + (limit or 10)
  while not pred() and ws.now() < deadline do ws.step(0.02) end
  assert(pred(), "condition not reached in time")
end

--- Connect a raw TCP socket to 127.0.0.1:port, write `bytes` (or call write(sock)),
-- then read until EOF; returns everything read and the time it took.
function drive.raw_exchange(port, write, limit)
  local sock = assert(core.tcp_connect("127.0.0.1", port))
  local t0 = ws.now()
  local got = ""
  drive.run(function()
    loop.wait_fd(sock:fd(), "w", ws.now() + 2, sock)
    if type(write) == "string" then sock:write(write) else write(sock) end
    local deadline = ws.now() + (limit or 5)
    while ws.now() < deadline do
      local d, err = sock:read(65536)
      if d then got = got .. d
      elseif err == "wantread" then
        loop.wait_fd(sock:fd(), "r", deadline, sock)
      else break end
    end
  end, (limit or 5) + 2)
  loop.forget_fd(sock:fd())
  sock:close()
  return got, ws.now() - t0
end

return drive
