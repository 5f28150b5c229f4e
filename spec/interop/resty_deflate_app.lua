-- The Lua side of spec/resty_deflate_spec.lua: ws.resty locations with
-- permessage-deflate inside a real nginx. Loaded there as
-- "interop.resty_deflate_app"; records go to the shared dict "seen"
-- (lua_shared_dict seen 4m), one line each, per request path.
local resty = require "ws.resty"

local app = {}

local function record(key, line)
  local seen = ngx.shared.seen
  local old = seen:get(key)
  seen:set(key, old and (old .. "\n" .. line) or line)
end

--- "ext -" or "ext snct=B cnct=B smwb=N cmwb=N" for conn.extensions.
function app.extensions(conn)
  local p = conn.extensions["permessage-deflate"]
  if not p then return "ext -" end
  return ("ext snct=%s cnct=%s smwb=%s cmwb=%s"):format(
    tostring(p.server_no_context_takeover),
    tostring(p.client_no_context_takeover),
    tostring(p.server_max_window_bits), tostring(p.client_max_window_bits))
end

--- "stats tx_raw=N tx_wire=N rx_wire=N rx_raw=N" for conn:deflate_stats().
function app.stats(conn)
  local s = conn:deflate_stats()
  return ("stats tx_raw=%d tx_wire=%d rx_wire=%d rx_raw=%d"):format(
    s.tx_raw, s.tx_wire, s.rx_wire, s.rx_raw)
end

--- An echo location with `deflate` (ws.resty.serve's option). Records
-- "offer <Sec-WebSocket-Extensions|->", app.extensions, one
-- "<kind> <length>" per message, then app.stats and
-- "close <code> <clean>".
function app.serve(deflate)
  local path = ngx.var.uri
  record(path, "offer " .. (ngx.var.http_sec_websocket_extensions or "-"))
  resty.serve{
    deflate = deflate,
    max_message_size = 64 * 1024 * 1024,
    handler = function(conn)
      record(path, app.extensions(conn))
      for data, kind in conn:messages() do
        record(path, kind .. " " .. #data)
        conn:send(data, kind)
      end
      record(path, app.stats(conn))
      local ev = conn.close_event
      record(path, ("close %d %s"):format(ev.code, tostring(ev.clean)))
    end,
  }
end

local function json(n)
  local lines, length, i = {}, 0, 0
  while length < n do
    local line = ('{"seq":%d,"user":"user-%d","event":"tick","ok":true}\n')
      :format(i, i % 97)
    lines[#lines + 1] = line
    length = length + #line
    i = i + 1
  end
  return table.concat(lines):sub(1, n)
end

local function binary(n)
  local t = {}
  for i = 0, 255 do t[i + 1] = string.char((31 * i + 7) % 256) end
  local block = table.concat(t)
  return block:rep(math.floor(n / 256) + 1):sub(1, n)
end

--- /client?url=U[&nct=1]: our resty client (deflate on; both
-- no_context_takeover with nct) against U: says app.extensions, echoes
-- JSON text and binary of 0 B to 16 MiB, single frames and in frames of
-- 4096 bytes, one line each, then app.stats and the close.
function app.client()
  local args = ngx.req.get_uri_args()
  local deflate = true
  if args.nct then
    deflate = { server_no_context_takeover = true,
      client_no_context_takeover = true }
  end
  local conn, err = resty.connect(args.url, { timeout = 10,
    deflate = deflate, max_message_size = 64 * 1024 * 1024 })
  if not conn then
    ngx.say("connect-failed ", err)
    return
  end
  ngx.say(app.extensions(conn))
  for _, size in ipairs({ 0, 125, 126, 65536, 1024 * 1024, 16 * 1024 * 1024 }) do
    for _, c in ipairs({ { "text", json }, { "binary", binary } }) do
      for _, fragment in ipairs({ false, 4096 }) do
        local msg = c[2](size)
        assert(conn:send(msg, c[1], fragment and { fragment = fragment } or nil))
        local data, kind = conn:receive(30)
        ngx.say(("echo %s %d%s: %s %s"):format(c[1], size,
          fragment and " fragmented" or "", tostring(kind),
          data == msg and "ok" or "mismatch"))
      end
    end
  end
  ngx.say(app.stats(conn))
  local ev = conn:close(1000, "bye")
  ngx.say(("close %d %s"):format(ev.code, tostring(ev.clean)))
end

return app
