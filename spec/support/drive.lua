-- Driving the loop from specs, always bounded in time.
local ws = require "ws"

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

return drive
