-- A real nginx (Debian's, with lua-nginx-module) for specs and benchmarks:
-- a generated configuration in a temporary prefix, listening on loopback
-- ports picked here, started in the foreground as a child process and
-- stopped again. Lua code in the configuration loads this checkout's
-- lua/ tree and the LuaJIT build of ws.core (build/jit).
local ws = require "ws"
local core = require "ws.core"
local peers = require "interop.peers"

local quote, read_file = peers.quote, peers.read_file

local nginx = {}

local MODULES = "/usr/lib/nginx/modules/"

local function sh_ok(cmd)
  local r = os.execute(cmd)
  return r == true or r == 0
end

local function free_port()
  local l = assert(core.tcp_listen("127.0.0.1", 0))
  local port = l:port()
  l:close()
  return port
end

--- Whether nginx with the Lua module is installed.
function nginx.available()
  return sh_ok("command -v nginx >/dev/null 2>&1") and
    io.open(MODULES .. "ngx_http_lua_module.so") ~= nil
end

local Server = {}
Server.__index = Server

--- Start nginx. `servers` is the text of the `server { }` body (without
-- `listen`), with $PORT and $SSL_PORT replaced by the ports. opts:
-- `ssl` = { cert =, key = } adds a TLS listener; `ipv6` one on [::1]
-- (its port: port6); `http2` a cleartext HTTP/2 one (h2_port); `http` adds directives to the http block; `workers`
-- (1); `log_level` ("warn").
function nginx.start(body, opts)
  opts = opts or {}
  local root = os.getenv("PWD") or io.popen("pwd"):read("*l")
  local dir = os.tmpname()
  os.remove(dir)
  assert(sh_ok("mkdir -p " .. quote(dir .. "/logs") .. " " ..
    quote(dir .. "/tmp")))
  local self = setmetatable({ dir = dir, port = free_port() }, Server)
  local listen = ("listen 127.0.0.1:%d;\n"):format(self.port)
  if opts.ipv6 then
    local l = assert(core.tcp_listen("::1", 0))
    self.port6 = l:port()
    l:close()
    listen = listen .. ("listen [::1]:%d;\n"):format(self.port6)
  end
  if opts.http2 then
    self.h2_port = free_port()
    listen = listen .. ("listen 127.0.0.1:%d http2;\n"):format(self.h2_port)
  end
  if opts.ssl then
    self.ssl_port = free_port()
    listen = listen .. ("listen 127.0.0.1:%d ssl;\nssl_certificate %s;\n"
      .. "ssl_certificate_key %s;\n"):format(self.ssl_port, opts.ssl.cert,
      opts.ssl.key)
  end
  body = body:gsub("%$SSL_PORT", tostring(self.ssl_port or 0))
    :gsub("%$PORT", tostring(self.port))
  local conf = table.concat({
    "load_module " .. MODULES .. "ndk_http_module.so;",
    "load_module " .. MODULES .. "ngx_http_lua_module.so;",
    "daemon off;",
    "master_process " .. (opts.workers and "on" or "off") .. ";",
    "worker_processes " .. (opts.workers or 1) .. ";",
    (opts.workers and sh_ok("test $(id -u) = 0")) and "user root;" or "",
    "pid " .. dir .. "/logs/nginx.pid;",
    "error_log " .. dir .. "/logs/error.log " .. (opts.log_level or "warn")
      .. ";",
    "events { worker_connections 4096; }",
    "http {",
    "  access_log off;",
    "  client_body_temp_path " .. dir .. "/tmp;",
    "  proxy_temp_path " .. dir .. "/tmp;",
    "  fastcgi_temp_path " .. dir .. "/tmp;",
    "  uwsgi_temp_path " .. dir .. "/tmp;",
    "  scgi_temp_path " .. dir .. "/tmp;",
    ("  lua_package_path '%s/lua/?.lua;%s/lua/?/init.lua;%s/spec/?.lua;;';")
      :format(root, root, root),
    ("  lua_package_cpath '%s/build/jit/?.so;;';"):format(root),
    "  lua_socket_log_errors off;",
    opts.http or "",
    "  server {",
    listen,
    body,
    "  }",
    "}",
  }, "\n")
  local f = assert(io.open(dir .. "/nginx.conf", "w"))
  f:write(conf)
  f:close()
  local p = assert(io.popen(("env -u LD_PRELOAD -u ASAN_OPTIONS "
    .. "-u UBSAN_OPTIONS nginx -p %s -c %s/nginx.conf -e %s/logs/error.log "
    .. ">%s/logs/stdout 2>&1 </dev/null & echo $!"):format(quote(dir),
    quote(dir), quote(dir), quote(dir))))
  self.pid = tonumber(p:read("*l"))
  p:close()
  local probe = ("bash -c 'exec 3<>/dev/tcp/127.0.0.1/%d' 2>/dev/null")
    :format(self.port)
  for _ = 1, 100 do
    if sh_ok(probe) then return self end
    if not sh_ok("kill -0 " .. self.pid .. " 2>/dev/null") then break end
    ws.sleep(0.05)
  end
  local log = self:error_log()
  self:stop()
  error("nginx did not start:\n" .. log .. read_file(dir .. "/logs/stdout"),
    2)
end

--- ws:// (or wss:// with secure) URL of a path on this nginx.
function Server:url(path, secure)
  if secure then
    return ("wss://127.0.0.1:%d%s"):format(self.ssl_port, path)
  end
  return ("ws://127.0.0.1:%d%s"):format(self.port, path)
end

--- The error log so far.
function Server:error_log()
  return read_file(self.dir .. "/logs/error.log")
end

--- GET http://127.0.0.1:port/path with curl in the background while our
-- loop keeps running (peers in this process go on serving); returns the
-- body. opts: `timeout` (60 s), `port` (this server's), `curl` (more
-- curl arguments, e.g. "--http2-prior-knowledge -w %{http_code}").
function Server:get(path, opts)
  opts = opts or {}
  local timeout = opts.timeout or 60
  local out = os.tmpname()
  os.execute(("(env -u LD_PRELOAD -u ASAN_OPTIONS curl -s -m %d %s %s >%s; "
    .. "echo $? >%s.rc) </dev/null >/dev/null 2>&1 &"):format(timeout,
    opts.curl or "", quote(("http://127.0.0.1:%d%s"):format(
    opts.port or self.port, path)), quote(out), quote(out)))
  local deadline = ws.now() + timeout + 5
  while read_file(out .. ".rc") == "" and ws.now() < deadline do
    ws.step(0.01)
  end
  local body, rc = read_file(out), read_file(out .. ".rc")
  os.remove(out)
  os.remove(out .. ".rc")
  assert(rc ~= "", "curl did not finish: " .. path)
  return body
end

--- Stop nginx and remove its prefix. Idempotent.
function Server:stop()
  if self.stopped then return end
  self.stopped = true
  if self.pid then
    os.execute("kill " .. self.pid .. " 2>/dev/null")
    for _ = 1, 100 do
      if not sh_ok("kill -0 " .. self.pid .. " 2>/dev/null") then break end
      os.execute("sleep 0.05")
    end
  end
  if self.dir:match("^/tmp/") then os.execute("rm -rf " .. quote(self.dir)) end
end

return nginx
