--- The sans-IO protocol engine, for hosts that own the socket.
--
-- Feed it the bytes you read, write the bytes it returns, and drain its
-- events. It never touches a socket and never raises on bad input: a
-- protocol violation becomes a close event with the right code.
--
--     local p = ws.protocol.new{ role = "client" }
--     sock:send(p:send("hi"))
--     p:feed(sock:receive())
--     for ev in p:events() do ... end
--     sock:send(p:take_output())   -- automatic pongs, close replies
-- @module ws.protocol
local core = require "ws.core"
local codes = require "ws.codes"
local options = require "ws.options"

local type, error, setmetatable, tostring = type, error, setmetatable, tostring
local rawget = rawget

local Protocol = {}
local mt = { __name = "ws.protocol" }

local function check(self)
  if type(self) ~= "table" or getmetatable(self) ~= mt then
    error("bad self (ws.protocol object expected)", 3)
  end
  return self._e
end

--- Create an engine.
-- @tparam[opt] table opts `role` ("client" default, or "server"),
--   `max_message_size` (16 MiB), `max_frame_size` (= max_message_size),
--   `max_fragments` (65536), `auto_pong` (true), `deflate` (the
--   permessage-deflate parameters a handshake agreed), `stream` (false:
--   events give data messages in parts):
--   @{options.md.ws_protocol_new_opts_|ws.protocol.new's options}
-- @return a protocol object; `p.state` is "open", "closing" or "closed"
function Protocol.new(opts)
  opts = options.check(options.protocol, opts, 2)
  local role = opts.role or "client"
  local e = core.engine(role, opts.max_message_size, opts.max_frame_size,
    opts.max_fragments, opts.auto_pong)
  if opts.stream then e:stream(true) end
  local self = setmetatable({ _e = e, role = role, extensions = {} }, mt)
  local d = opts.deflate
  if d then
    local params = {
      server_no_context_takeover = d.server_no_context_takeover == true,
      client_no_context_takeover = d.client_no_context_takeover == true,
      server_max_window_bits = d.server_max_window_bits or 15,
      client_max_window_bits = d.client_max_window_bits or 15,
    }
    e:deflate(params, d.level or 6, d.mem_level or 8, d.threshold or 128)
    self.extensions["permessage-deflate"] = params
  end
  return self
end

--- Feed bytes read from the transport. Never raises on bad input.
-- @tparam string bytes
-- @treturn integer how many events are now queued
function Protocol:feed(bytes)
  local e = check(self)
  if type(bytes) ~= "string" then
    error("bad argument #1 to 'feed' (string expected, got " .. type(bytes)
      .. ")", 2)
  end
  return e:feed(bytes)
end

--- The transport ended. Queues a 1006 close event unless the connection
-- already reported its close.
function Protocol:eof()
  check(self):lost("eof")
end

--- Iterate over queued events, oldest first, removing them. A protocol
-- violation found after other events is acted on (its close frame queued,
-- its close event returned) only once those were taken, so replies made
-- to them in the loop's body go out before the close frame.
--
-- | `type` | other fields |
-- | --- | --- |
-- | `"message"` | `data`, `kind` ("text" or "binary") |
-- | `"ping"`, `"pong"` | `data` (pings are answered by `take_output` unless `auto_pong = false`) |
-- | `"close"` | the close event: `code`, `name`, `reason`, `clean`, `initiator`, `error`, `sent`, `received` (@{closing.md.The_close_event|fields}); exactly one per connection |
-- @return iterator yielding event tables
function Protocol:events()
  local e = check(self)
  return function()
    local ev = e:event()
    -- With `stream`, input a feed held back (a compressed read that
    -- inflates to many parts) is run a read's worth at a time, as the
    -- events are taken.
    for _ = 1, 1e9 do
      if ev or e:backlog() == 0 then break end
      e:drain()
      ev = e:event()
    end
    -- Application codes named with ws.codes.define get their names here.
    if ev and ev.type == "close" and ev.name == nil then
      ev.name = codes[ev.code]
    end
    return ev
  end
end

--- Frame a message.
-- @tparam string data
-- @tparam[opt="text"] string kind "text" or "binary"
-- @tparam[opt] table opts `fragment`: split into frames of at most this
--   many payload bytes; `compress` (with `deflate`): false sends it
--   uncompressed, true compresses it whatever its size
-- @treturn string bytes to write (including any pending automatic output),
--   or nil, error ("connection is closing", "text is not valid UTF-8")
function Protocol:send(data, kind, opts)
  local e = check(self)
  if type(data) ~= "string" then
    error("bad argument #1 to 'send' (string expected, got " .. type(data)
      .. ")", 2)
  end
  return e:send(data, kind, options.send_opts(opts, 2))
end

--- Send one frame of a message that is produced piece by piece.
-- @tparam string data
-- @tparam string kind "text" or "binary" (used by the first part)
-- @tparam boolean fin true for the last part
-- @treturn string bytes to write, or nil, error
function Protocol:send_part(data, kind, fin)
  local e = check(self)
  if type(data) ~= "string" then
    error("bad argument #1 to 'send_part' (string expected, got "
      .. type(data) .. ")", 2)
  end
  return e:send_part(data, kind, fin)
end

--- Byte counts of permessage-deflate (see ws.connection's
-- deflate_stats): tx_raw, tx_wire, rx_wire, rx_raw.
function Protocol:deflate_stats()
  return check(self):deflate_stats()
end

--- Frame a ping (payload at most 125 bytes).
-- @tparam[opt=""] string data
-- @treturn string bytes to write, or nil, error
function Protocol:ping(data)
  return check(self):ping(data)
end

--- Frame an unsolicited pong.
function Protocol:pong(data)
  return check(self):pong(data)
end

--- Start the closing handshake.
-- @param[opt] code a number or a name ("normal", "going_away", ...);
--   nil sends a close frame without a code
-- @tparam[opt=""] string reason at most 123 bytes of UTF-8
-- @treturn string bytes to write, or nil, error
function Protocol:close(code, reason)
  local e = check(self)
  local n = options.close_args(code, reason, 2)
  return e:close(n, reason)
end

--- Take the bytes the engine queued on its own (automatic pongs, the reply
-- to a close), "" when there are none.
-- @treturn string
function Protocol:take_output()
  local out = check(self):take_output() -- one value: hosts pass it on
  return out
end

--- Bytes queued and not yet taken.
function Protocol:buffered_amount()
  return check(self):buffered_amount()
end

--- Release the engine's buffers now (also done by the garbage collector).
function Protocol:free()
  check(self):free()
end

mt.__index = function(self, k)
  if k == "state" then return rawget(self, "_e"):state() end
  return Protocol[k]
end
mt.__close = function(self) rawget(self, "_e"):free() end

return { new = Protocol.new }
