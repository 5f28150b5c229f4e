--- Event handler lists: `on(event, fn)` for connections and clients,
-- with close events named by code ("close:protocol_error") or by number
-- ("close:4001").
-- @module ws.handlers
local codes = require "ws.codes"

local type, error, tostring, pcall, tonumber = type, error, tostring, pcall,
  tonumber

local handlers = {}

-- A code a close event can carry: the registry (1000-1015, including the
-- ones only reported locally) and the application range.
local function reportable(n)
  return n ~= nil and n % 1 == 0 and
    ((n >= 1000 and n <= 1015) or (n >= 3000 and n <= 4999))
end

--- The event a close handler suffix names, or nil plus why not.
local function close_key(suffix)
  if suffix:match("^%d+$") then
    local n = tonumber(suffix)
    if not reportable(n) then
      return nil, "close code " .. suffix .. " is never reported"
    end
    return "close:" .. n
  end
  local n = codes.lookup(suffix)
  if not n then
    return nil, "unknown close code name '" .. suffix
      .. "' (see ws.codes; name application codes with ws.codes.define)"
  end
  return "close:" .. suffix
end

--- Check an `on(event, fn)` call against the `known` event names (plus
-- "close:<name>" and "close:<code>") and append fn to list[event].
-- Raises naming the bad argument at `level`. Returns the handler list.
function handlers.add(lists, known, event, fn, level)
  if type(event) ~= "string" then
    error("bad argument #1 to 'on' (string expected, got " .. type(event)
      .. ")", level)
  end
  local key = known[event] and event
  if not key then
    local suffix = event:match("^close:(.+)$")
    if not suffix then
      error("bad argument #1 to 'on' (unknown event " .. tostring(event)
        .. ")", level)
    end
    local why
    key, why = close_key(suffix)
    if not key then error("bad argument #1 to 'on' (" .. why .. ")", level) end
  end
  if type(fn) ~= "function" then
    error("bad argument #2 to 'on' (function expected, got " .. type(fn)
      .. ")", level)
  end
  local list = lists[key]
  if not list then
    list = {}
    lists[key] = list
  end
  list[#list + 1] = fn
  return list
end

--- Call every function of `list` with the arguments; errors go to
-- report(message) and do not stop the others.
function handlers.call(list, report, ...)
  if not list then return end
  for i = 1, #list do
    local ok, err = pcall(list[i], ...)
    if not ok then report("handler: " .. tostring(err)) end
  end
end

--- Call the close handlers for event `ev`: "close", "close:<name>" (when
-- the code has one) and "close:<code>", with the arguments before it.
function handlers.close(lists, report, a, ev)
  local call = handlers.call
  call(lists.close, report, a, ev)
  local name = ev.name or codes[ev.code]
  if name then call(lists["close:" .. name], report, a, ev) end
  if ev.code then call(lists["close:" .. ev.code], report, a, ev) end
end

return handlers
