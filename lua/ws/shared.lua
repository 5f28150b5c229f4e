--- Option checks and handler lists shared by every kind of connection
-- (ws.conn, ws.client, ws.resty). No I/O and no event loop, so hosts
-- that bring their own (nginx) can load it.
-- @module ws.shared
local codes = require "ws.codes"

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

--- Check the arguments of a `close(code, reason)` call before anything
-- is sent: a code (number or name; nil for a close frame without one)
-- that may go on the wire, and a reason of at most 123 bytes. Raises
-- naming the argument at `level` + 1; returns the code number.
function shared.check_close(code, reason, level)
  local n = codes.check(code, "close", level + 1)
  if n ~= nil and not codes.valid(n) then
    local name = codes[n]
    error(("bad argument #1 to 'close' (close code %s%s may not be sent)")
      :format(tostring(n), name and (" (" .. name .. ")") or ""), level + 1)
  end
  if reason ~= nil then
    if type(reason) ~= "string" then
      error("bad argument #2 to 'close' (string expected, got "
        .. type(reason) .. ")", level + 1)
    end
    if n == nil and #reason > 0 then
      error("bad argument #2 to 'close' (a reason needs a close code)",
        level + 1)
    end
    if #reason > 123 then
      error(("bad argument #2 to 'close' (reason is %d bytes, at most 123 "
        .. "allowed)"):format(#reason), level + 1)
    end
  end
  return n
end

return shared
