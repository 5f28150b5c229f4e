--- Opening client connections on the event loop: `ws.connect(url, opts)`.
-- @module ws.connect
local core = require "ws.core"
local loop = require "ws.loop"
local url_mod = require "ws.url"
local options = require "ws.options"
local schema = require "ws.schema"
local opening = require "ws.opening"
local Socket = require "ws.transport.socket"
local Conn = require "ws.connection"

local type, error, tostring = type, error, tostring
local now = core.now

local failed = opening.failed
local DEFAULT_TIMEOUT = schema.field(options.connect.fields, "timeout")
  .default

local function do_connect(u, opts, o, ctx, request, key)
  local deadline = now() + (opts.timeout or DEFAULT_TIMEOUT)
  local sock, err, msg = Socket.connect_tcp(u, deadline, opts.family)
  if not sock then return failed(err, msg) end

  if ctx then
    local ok
    ok, err, msg = Socket.tls_handshake(sock, ctx, u.host, deadline)
    if not ok then
      loop.forget_fd(sock:fd())
      sock:close()
      if err == "timeout" then
        return failed("timeout", "TLS handshake timed out")
      end
      return failed("tls", "TLS handshake with " .. u.host .. " failed: "
        .. tostring(msg))
    end
  end

  local t = Socket.new(sock)
  local resp, rest, ev = opening.connect(t, u, opts, deadline, request,
    key)
  if not resp then
    t:abort()
    return nil, rest, ev
  end
  return Conn.new(t, "client", o, {
    leftover = rest, protocol = resp.protocol, response = resp,
    deflate = resp.deflate,
  })
end

--- Open a client connection. Blocks (yields inside a task) until the
-- connection is open or failed.
-- @tparam string url ws://host[:port]/path or wss://...
-- @tparam[opt] table opts protocols, headers, origin, timeout (30 s for
--   TCP + TLS + handshake), tls = {verify, ca_file, ca_path, cert_file,
--   key_file, ...}, family, and the connection options (max_message_size,
--   close_timeout, max_buffered, ...): the schema ws.options.connect,
--   documented in doc/options.md
-- @return conn | nil, message, close_event (code 1006, or 1015 for TLS;
--   error "dns" | "refused" | "timeout" | "tls" | "http" | "handshake")
local function connect(url, opts)
  if type(url) ~= "string" then
    error("bad argument #1 to 'connect' (string expected, got " .. type(url)
      .. ")", 2)
  end
  local u, perr = url_mod.parse(url)
  if not u then error("bad argument #1 to 'connect' (" .. perr .. ")", 2) end
  opts = options.check(options.connect, opts, 2)
  local o = options.connection(opts)
  local request, key = opening.request(u, opts, "connect", 2, 2)
  local ctx
  if u.secure then
    local err, msg
    ctx, err, msg = Socket.tls_context("client", opts.tls, 2)
    if not ctx then return failed("tls", msg) end
  end
  return loop.blocking(do_connect, u, opts, o, ctx, request, key)
end

return { connect = connect }
