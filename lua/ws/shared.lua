--- Option checks and handler lists shared by every kind of connection
-- (ws.conn, ws.client, ws.resty). No I/O and no event loop, so hosts
-- that bring their own (nginx) can load it.
-- @module ws.shared
local type, error, tostring, ipairs = type, error, tostring, ipairs

local shared = {}

--- Validate a `heartbeat` option: nil or { interval = s, timeout = s }.
-- Raises naming the option at `level` + 1; returns it.
function shared.check_heartbeat(hb, level)
  if hb == nil then return nil end
  if type(hb) ~= "table" then
    error("bad option 'heartbeat' (table expected, got " .. type(hb) .. ")",
      level + 1)
  end
  for _, k in ipairs({ "interval", "timeout" }) do
    local v = hb[k]
    if type(v) ~= "number" or not (v > 0) or v == math.huge then
      error("bad option 'heartbeat." .. k .. "' (positive number expected, got "
        .. tostring(v) .. ")", level + 1)
    end
  end
  return hb
end

--- Check an `on(event, fn)` call against the known event names (plus
-- "close:<name>") and append fn to handlers[event].
-- Raises naming the bad argument at `level`. Returns the handler list.
function shared.add_handler(handlers, known, event, fn, level)
  if type(event) ~= "string" or not (known[event] or
      event:match("^close:[a-z_][a-z0-9_]*$")) then
    error("bad argument #1 to 'on' (unknown event " .. tostring(event)
      .. ")", level)
  end
  if type(fn) ~= "function" then
    error("bad argument #2 to 'on' (function expected, got " .. type(fn)
      .. ")", level)
  end
  local list = handlers[event]
  if not list then
    list = {}
    handlers[event] = list
  end
  list[#list + 1] = fn
  return list
end

return shared
