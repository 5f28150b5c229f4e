--- The opening handshake over any transport (ws.connection's interface),
-- written once for the event loop and nginx: the client's request and the
-- check of the answer; the server's reading of a request, the
-- `authorize` hook and the answer.
-- @module ws.opening
local core = require "ws.core"
local handshake = require "ws.handshake"

local type, tostring, pcall = type, tostring, pcall

local opening = {}

local EMPTY = {}

--- A `deflate` option (checked by ws.options: nil, a boolean or a table)
-- for a side, with the defaults of doc/options.md filled in: `cfg` (the
-- negotiation config: the offer's, or the most a server agrees to), and
-- the engine's level, mem_level and threshold;
-- nil when off. Clients offer by default, servers accept only when asked.
function opening.deflate(d, role)
  if d == nil then d = role == "client" end
  if not d then return nil end
  if d == true then d = EMPTY end
  local server = role == "server"
  local cmwb = d.client_max_window_bits -- false: a client leaves it out
  if cmwb == nil and server then cmwb = 12 end
  return {
    cfg = {
      server_no_context_takeover = d.server_no_context_takeover,
      client_no_context_takeover = d.client_no_context_takeover,
      server_max_window_bits = d.server_max_window_bits
        or (server and 12 or nil),
      client_max_window_bits = cmwb,
      -- the default client window is a wish: a client that cannot be
      -- limited keeps 15
      client_window_optional = server and d.client_max_window_bits == nil
        or nil,
    },
    level = d.level or 6,
    mem_level = d.mem_level or (server and 5 or 8),
    threshold = d.threshold or 128,
  }
end

-- What Conn.new takes: the agreed params and the engine's tuning.
local function agreed(s, params)
  return { params = params, level = s.level, mem_level = s.mem_level,
    threshold = s.threshold }
end

--- What a connect that failed before the connection opened returns:
-- nil, message, close event (made by the engine's table: 1006, or 1015
-- when TLS failed) with the HTTP status and headers when there were some.
function opening.failed(kind, message, status, headers)
  local ev = core.handshake_failed(kind, message, status)
  ev.http_headers = headers
  return nil, message, ev
end
local failed = opening.failed

--- Read until parse(buffer) succeeds, before the deadline. parse returns
-- result, consumed | nil, "incomplete" | nil, reason, ...
-- @return result, leftover bytes | nil, reason, ... | nil, errname, msg
function opening.read_head(t, parse, deadline)
  local buf = ""
  for _ = 1, 4096 do
    local data, err, msg = t:read(deadline)
    if not data then return nil, err, msg end
    buf = buf .. data
    local res, used, a, b = parse(buf)
    if res then return res, buf:sub(used + 1) end
    if used ~= "incomplete" then return nil, used, a, b end
  end
  return nil, "too_many_reads"
end

--- The client's side: write the request for url `u` and read the answer.
--- The opening request for URL `u` with opts' protocols, origin and
-- headers, built at the call so that a bad header name or value or a
-- protocol that is not a token raises there, naming argument `argn` of
-- `fname`, at `level` (counted from the caller of this).
-- @return request, key
function opening.request(u, opts, fname, argn, level)
  local z = opening.deflate(opts.deflate, "client")
  local ok, request, key = pcall(handshake.request, {
    host = u.host_header, path = u.target, protocols = opts.protocols,
    origin = opts.origin, headers = opts.headers,
    extensions = z and handshake.deflate_offer(z.cfg),
  })
  if not ok then
    local why = tostring(request):gsub("^[^\n]-:%d+: ", "")
      :gsub("^ws%.handshake%.request: ", ""):gsub("\n.*", "")
    error(("bad argument #%d to '%s' (%s)"):format(argn, fname, why),
      level + 1)
  end
  return request, key
end

-- @param t the transport
-- @tparam table u the parsed URL (ws.url)
-- @tparam table opts protocols (list), origin, headers
-- @tparam number deadline
-- @param[opt] request, key the request opening.request built
-- @return response (its `deflate`: what Conn.new takes, when
--   permessage-deflate was agreed), leftover bytes | nil, message, close
--   event
function opening.connect(t, u, opts, deadline, request, key)
  local protocols = opts.protocols
  if type(protocols) == "string" then protocols = { protocols } end
  local z = opening.deflate(opts.deflate, "client")
  if not request then
    request, key = handshake.request{
      host = u.host_header, path = u.target, protocols = protocols,
      origin = opts.origin, headers = opts.headers,
      extensions = z and handshake.deflate_offer(z.cfg),
    }
  end
  local ok, err, msg = t:write(request, deadline)
  local resp, rest, status, rtable
  if ok then
    resp, rest, status, rtable = opening.read_head(t, function(buf)
      return handshake.parse_response(buf, { key = key, protocols = protocols,
        extensions = z and { "permessage-deflate" } })
    end, deadline)
    if resp and z then
      local params, why, name = handshake.deflate_response(
        resp.headers["sec-websocket-extensions"], z.cfg)
      if params == nil then
        -- RFC 7692 5.1: the client fails the connection
        return failed("extension", ("the server's Sec-WebSocket-Extensions "
          .. "is refused: %s (%s)"):format(why, name))
      end
      if params then resp.deflate = agreed(z, params) end
    end
    if resp then return resp, rest end
    err, msg = rest, status
  end
  if err == "unexpected_status" then
    return failed("http", ("server answered HTTP %d instead of 101")
      :format(status), status, rtable and rtable.headers)
  elseif err == "timeout" then
    return failed("timeout", "opening handshake timed out")
  elseif err == "unexpected_extension" then
    return failed("extension", "the server's Sec-WebSocket-Extensions is "
      .. "refused: the server accepted an extension that was not offered "
      .. "(unexpected_extension)")
  elseif err == "eof" or err == "closed" then
    return failed("handshake", "server closed the connection during the "
      .. "opening handshake")
  elseif err == "reset" then
    return failed("reset", "connection reset during the opening handshake")
  end
  return failed("handshake", "opening handshake failed: " .. tostring(err)
    .. (msg and (" (" .. tostring(msg) .. ")") or ""))
end

--- The server's side, once a request has been parsed (ws.handshake
-- .parse_request): ask `authorize(request)` and build the answer.
-- @tparam table req the request
-- @tparam table opts authorize, headers (extra response headers)
-- @tparam function report where an error raised by authorize goes
-- With opts.deflate the first permessage-deflate offer it can accept is
-- agreed; a Sec-WebSocket-Extensions header that breaks the grammar is
-- refused with 400 (RFC 6455 9.1).
-- @return the 101 answer, what Conn.new takes as `deflate` (nil: no
--   compression) | nil, reason, status, refusal bytes
function opening.answer(req, opts, report)
  if opts.authorize then
    local ok, allowed, status, headers = pcall(opts.authorize, req)
    if not ok then
      report("authorize: " .. tostring(allowed))
      return nil, "authorize_failed", 500, handshake.error_response(500)
    end
    if not allowed then
      status = status or 403
      local bok, bytes = pcall(handshake.error_response, status, headers)
      if not bok then
        status = 500
        bytes = handshake.error_response(500)
      end
      return nil, "refused", status, bytes
    end
  end
  local z, value, deflate = opening.deflate(opts.deflate, "server")
  if z then
    local header = req.headers["sec-websocket-extensions"]
    local params, why, name = handshake.deflate_accept(header, z.cfg)
    if name == "extension_syntax" or name == "extension_too_long" then
      return nil, name, 400, handshake.error_response(400)
    end
    if params then value, deflate = why, agreed(z, params) end
  end
  return handshake.response{ key = req.key, protocol = req.protocol,
    headers = opts.headers, extensions = value }, deflate
end

return opening
