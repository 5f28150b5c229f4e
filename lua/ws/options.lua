--- Checks of options and arguments that several entry points share: the
-- options every connection takes (whatever its transport), `heartbeat`,
-- `send`'s options and `close`'s arguments. Errors name the option or
-- argument and blame the caller (`level` as for `error`, counted from the
-- function that calls these).
-- @module ws.options
local codes = require "ws.codes"
local core = require "ws.core"

local type, error, tostring, pairs = type, error, tostring, pairs

local options = {}

--- The options of a connection, whatever carries it, with their
-- defaults. Entry points add their own (see ws.connect, ws.listen,
-- ws.resty).
options.CONNECTION = {
  max_message_size = false, -- engine default: 16 MiB
  max_frame_size = false,   -- engine default: max_message_size
  max_fragments = false,    -- engine default: 65536
  close_timeout = 5,        -- wait this long for the peer's close reply
  linger = 1,               -- then this long for TCP to end (a client
                            -- waits for the server to close it first)
  max_buffered = 4194304,   -- send waits while more is unwritten
  inbox_max = 1024,         -- reading pauses while this many messages wait
  inbox_max_bytes = 1048576, -- ... or this many bytes of them
  heartbeat = false,        -- { interval = s, timeout = s }
}

--- Validate a `heartbeat` option: nil or { interval = s, timeout = s }.
-- Raises naming the option at `level` + 1; returns it.
function options.check_heartbeat(hb, level)
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

local positive = {
  close_timeout = true, linger = true, timeout = true, read_timeout = true,
  send_timeout = true, max_buffered = true, inbox_max = true,
  inbox_max_bytes = true,
}

--- Check the values of the connection options in `opts` (names were
-- checked by the caller) and return a table of them with the defaults
-- filled in.
function options.connection(opts, level)
  for k in pairs(positive) do
    local v = opts[k]
    if v ~= nil and (type(v) ~= "number" or not (v > 0)) then
      error(("bad option '%s' (positive number expected, got %s)"):format(k,
        tostring(v)), level + 1)
    end
  end
  options.check_heartbeat(opts.heartbeat, level + 1)
  local o = {}
  for k, v in pairs(options.CONNECTION) do
    local given = opts[k]
    if given == nil then given = v or nil end
    o[k] = given
  end
  o.read_timeout, o.send_timeout = opts.read_timeout, opts.send_timeout
  return o
end

--- Check an options table's names against `names` (a set). Raises
-- "bad argument #argn to 'fname' (unknown option 'x')".
function options.known(opts, names, fname, argn, level)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    error(("bad argument #%d to '%s' (table expected, got %s)"):format(argn,
      fname, type(opts)), level + 1)
  end
  for k in pairs(opts) do
    if not names[k] then
      error(("bad argument #%d to '%s' (unknown option '%s')"):format(argn,
        fname, tostring(k)), level + 1)
    end
  end
  return opts
end

--- Validate send's options table; returns the fragment size or nil.
-- @param opts nil or { fragment = n }
function options.fragment(opts, level)
  if opts == nil then return nil end
  if type(opts) ~= "table" then
    error("bad argument #3 to 'send' (table expected, got " .. type(opts)
      .. ")", level + 1)
  end
  local fragment = opts.fragment
  if fragment ~= nil and (type(fragment) ~= "number" or fragment < 1) then
    error("bad option 'fragment' (positive integer expected)", level + 1)
  end
  return fragment
end

--- Check the arguments of a `close(code, reason)` call before anything
-- is sent, with the engine's own rules (ws.core.close_check: a code that
-- may go on the wire, a reason of at most 123 bytes of UTF-8, no reason
-- without a code). `code` is a number or name, nil for a close frame
-- without one. Raises naming the argument at `level` + 1; returns the
-- code number.
function options.close_args(code, reason, level)
  local n = codes.check(code, "close", level + 1)
  if reason ~= nil and type(reason) ~= "string" then
    error("bad argument #2 to 'close' (string expected, got "
      .. type(reason) .. ")", level + 1)
  end
  local ok, msg, _, argn = core.close_check(n, reason)
  if not ok then
    error(("bad argument #%d to 'close' (%s)"):format(argn, msg), level + 1)
  end
  return n
end

return options
