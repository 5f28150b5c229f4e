--- Opening client connections: `ws.connect(url, opts)`.
-- @module ws.connect
local core = require "ws.core"
local loop = require "ws.loop"
local url_mod = require "ws.url"
local handshake = require "ws.handshake"
local transport = require "ws.transport"
local Conn = require "ws.conn"
local shared = require "ws.shared"

local type, error, pairs, tostring = type, error, pairs, tostring
local now = core.now

local option_names = {
  protocols = true, headers = true, origin = true, timeout = true,
  tls = true, max_message_size = true, max_frame_size = true,
  max_fragments = true, close_timeout = true, max_buffered = true,
  linger = true, inbox_max = true, family = true, heartbeat = true,
}

local failed = shared.connect_failed

-- An IPv4 or IPv6 literal: resolving it never waits.
local function numeric(host)
  return host:find(":", 1, true) ~= nil or
    host:match("^%d+%.%d+%.%d+%.%d+$") ~= nil
end

-- Resolve a host name without blocking the loop: the lookup runs in a
-- thread of ws.core's and we wait for its descriptor like for a socket.
local function resolve(host, port, family, deadline)
  if numeric(host) then return core.resolve(host, port, family) end
  local r = core.resolve_start(host, port, family)
  if not r then return core.resolve(host, port, family) end -- no thread
  local fd = r:fd()
  local addrs, err, msg
  for _ = 1, 100 do -- the fd turns readable once, when the lookup is done
    addrs, err, msg = r:result()
    if addrs or err then break end
    if not loop.wait_fd(fd, "r", deadline, r) then
      err, msg = "timeout", "name lookup timed out"
      break
    end
  end
  loop.forget_fd(fd)
  r:close()
  return addrs, err, msg
end

local function connect_tcp(u, deadline, family)
  local addrs, err, msg = resolve(u.host, u.port, family, deadline)
  if err == "timeout" then return nil, "timeout", msg end
  if not addrs or #addrs == 0 then
    return nil, "dns", "cannot resolve " .. u.host .. ": " .. tostring(msg)
  end
  local last_err, last_msg = "refused", "no address to try"
  for i = 1, #addrs do
    local a = addrs[i]
    local sock, err, emsg = core.tcp_connect(a.addr, a.port)
    if sock then
      local ok
      while true do
        ok, err, emsg = sock:connected()
        if ok or err ~= "wantwrite" then break end
        if not loop.wait_fd(sock:fd(), "w", deadline, sock) then
          err, emsg = "timeout", "connect timed out"
          break
        end
      end
      loop.forget_fd(sock:fd())
      if ok then return sock end
      sock:close()
    end
    last_err = err
    last_msg = ("%s (%s port %d)"):format(tostring(emsg or err), a.addr,
      a.port)
    if err == "timeout" then break end
  end
  return nil, last_err, last_msg
end

local function check_opts(opts, level)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    error("bad argument #2 to 'connect' (table expected, got " .. type(opts)
      .. ")", level or 3)
  end
  for k in pairs(opts) do
    if not option_names[k] then
      error("bad argument #2 to 'connect' (unknown option '" .. tostring(k)
        .. "')", level or 3)
    end
  end
  if opts.timeout ~= nil and (type(opts.timeout) ~= "number" or
      opts.timeout <= 0) then
    error("bad option 'timeout' (positive number expected)", level or 3)
  end
  shared.check_heartbeat(opts.heartbeat, level or 3)
  return opts
end

local function do_connect(u, opts)
  local deadline = now() + (opts.timeout or 30)
  local ctx
  if u.secure then
    local err, msg
    ctx, err, msg = transport.tls_context("client", opts.tls)
    if not ctx then return failed("tls", msg) end
  end

  local sock, err, msg = connect_tcp(u, deadline, opts.family)
  if not sock then return failed(err, msg) end

  if ctx then
    local ok
    ok, err, msg = sock:tls_start(ctx, u.host)
    if ok then ok, err, msg = transport.tls_handshake(sock, deadline) end
    if not ok then
      loop.forget_fd(sock:fd())
      sock:close()
      if err == "timeout" then return failed("timeout", "TLS handshake timed out") end
      return failed("tls", "TLS handshake with " .. u.host .. " failed: "
        .. tostring(msg))
    end
  end

  local protocols = opts.protocols
  if type(protocols) == "string" then protocols = { protocols } end
  local request, key = handshake.request{
    host = u.host_header, path = u.target, protocols = protocols,
    origin = opts.origin, headers = opts.headers,
  }
  local ok
  ok, err, msg = transport.write_all(sock, request, deadline)
  if ok then
    local resp, rest, status, rtable = transport.read_head(sock, function(buf)
      return handshake.parse_response(buf, { key = key, protocols = protocols })
    end, deadline)
    if resp then
      local conn = Conn.new(sock, "client", opts, {
        leftover = rest, protocol = resp.protocol, response = resp,
      })
      return conn
    end
    err = rest
    if err == "unexpected_status" then
      loop.forget_fd(sock:fd())
      sock:close()
      return failed("http", ("server answered HTTP %d instead of 101")
        :format(status), { http_status = status,
          http_headers = rtable and rtable.headers })
    end
    msg = status
  end
  loop.forget_fd(sock:fd())
  sock:close()
  if err == "timeout" then
    return failed("timeout", "opening handshake timed out")
  end
  if err == "eof" then
    return failed("handshake", "server closed the connection during the "
      .. "opening handshake")
  end
  if err == "reset" then
    return failed("reset", "connection reset during the opening handshake")
  end
  return failed("handshake", "opening handshake failed: " .. tostring(err)
    .. (msg and (" (" .. tostring(msg) .. ")") or ""))
end

--- Open a client connection. Blocks (yields inside a task) until the
-- connection is open or failed.
-- @tparam string url ws://host[:port]/path or wss://...
-- @tparam[opt] table opts protocols, headers, origin, timeout (30 s for
--   TCP + TLS + handshake), tls = {verify, ca_file, ca_path, cert_file,
--   key_file, ...}, max_message_size, max_frame_size, max_fragments,
--   close_timeout, max_buffered
-- @return conn | nil, message, close_event (code 1006, or 1015 for TLS;
--   error "dns" | "refused" | "timeout" | "tls" | "http" | "handshake")
local function connect(url, opts)
  if type(url) ~= "string" then
    error("bad argument #1 to 'connect' (string expected, got " .. type(url)
      .. ")", 2)
  end
  local u, perr = url_mod.parse(url)
  if not u then error("bad argument #1 to 'connect' (" .. perr .. ")", 2) end
  return loop.blocking(do_connect, u, check_opts(opts))
end

return {
  connect = connect,
  --- Validate ws.connect options (raises naming the bad one).
  check_options = function(opts, level)
    return check_opts(opts, (level or 1) + 2)
  end,
}
