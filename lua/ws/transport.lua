--- Socket plumbing shared by clients and servers: writing everything,
-- reading an HTTP head, TLS contexts and handshakes, all with deadlines.
-- @module ws.transport
local core = require "ws.core"
local loop = require "ws.loop"

local type, pairs, tostring, error = type, pairs, tostring, error
local concat, sort = table.concat, table.sort
local now = core.now

local transport = {}

--- Wait for the socket according to a want status; false at the deadline.
local function await(sock, want, deadline)
  return loop.wait_fd(sock:fd(), want == "wantwrite" and "w" or "r", deadline,
    sock)
end
transport.await = await

--- Write all of data before the deadline.
-- @return true | nil, errname, message
function transport.write_all(sock, data, deadline)
  local i, n = 1, #data
  while i <= n do
    local w, err, msg = sock:write(data, i)
    if w then
      i = i + w
    elseif err == "wantwrite" or err == "wantread" then
      if not await(sock, err, deadline) then return nil, "timeout" end
    else
      return nil, err, msg
    end
  end
  return true
end

--- Read until parse(buffer) succeeds, before the deadline. parse returns
-- result, consumed | nil, "incomplete" | nil, err, ...
-- @return result, leftover bytes | nil, errname, ...
function transport.read_head(sock, parse, deadline, max)
  local buf = ""
  while true do
    local data, err, msg = sock:read(max or 16384)
    if data then
      buf = buf .. data
      local res, used, a, b = parse(buf)
      if res then return res, buf:sub(used + 1) end
      if used ~= "incomplete" then return nil, used, a, b end
    elseif err == "wantread" or err == "wantwrite" then
      if not await(sock, err, deadline) then return nil, "timeout" end
    else
      return nil, err, msg
    end
  end
end

--- Run the TLS handshake before the deadline.
-- @return true | nil, errname, message
function transport.tls_handshake(sock, deadline)
  while true do
    local ok, err, msg = sock:tls_handshake()
    if ok then return true end
    if err == "wantread" or err == "wantwrite" then
      if not await(sock, err, deadline) then return nil, "timeout" end
    else
      return nil, err, msg
    end
  end
end

local tls_option_names = {
  verify = true, ca_file = true, ca_path = true, cert_file = true,
  key_file = true, min_version = true, max_version = true, ciphers = true,
  ciphersuites = true, verify_client = true, alpn = true,
}

-- Building a context loads the trust store, so contexts are cached by
-- their options; a changed file needs a new process or a different path.
local ctx_cache = setmetatable({}, { __mode = "v" })

--- A TLS context for these options (cached).
-- @tparam string mode "client" or "server"
-- @tparam[opt] table opts the `tls` option table
-- @return ctx | nil, "tls", message
function transport.tls_context(mode, opts)
  opts = opts or {}
  if type(opts) ~= "table" then
    error("bad option 'tls' (table expected, got " .. type(opts) .. ")", 3)
  end
  local keys = {}
  for k, v in pairs(opts) do
    if not tls_option_names[k] then
      error("bad option 'tls' (unknown key '" .. tostring(k) .. "')", 3)
    end
    keys[#keys + 1] = k .. "=" .. (type(v) == "table" and concat(v, ",")
      or tostring(v))
  end
  sort(keys)
  local key = mode .. "|" .. concat(keys, "|")
  local ctx = ctx_cache[key]
  if ctx then return ctx end
  local args = { mode = mode }
  for k, v in pairs(opts) do args[k] = v end
  if mode == "client" and args.alpn == nil then args.alpn = { "http/1.1" } end
  local err, msg
  ctx, err, msg = core.tls_context(args)
  if not ctx then return nil, err, msg end
  ctx_cache[key] = ctx
  return ctx
end

--- Seconds left until a deadline (never negative).
function transport.left(deadline)
  local d = deadline - now()
  return d > 0 and d or 0
end

return transport
