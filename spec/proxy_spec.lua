-- HTTP CONNECT proxies: ws.proxy (the choice of a proxy, the request, the
-- answer), and ws.connect / ws.client through a real tinyproxy started
-- here on loopback with a generated configuration. That the request went
-- through the proxy is read from tinyproxy's log. A small CONNECT proxy
-- written here (it tunnels to a fixed port, whatever host it is asked
-- for) shows that wss:// is verified against the target's name and
-- covers proxies that misbehave. Every wait is bounded.
local ws = require "ws"
local core = require "ws.core"
local loop = require "ws.loop"
local proxy = require "ws.proxy"
local reconnect = require "ws.reconnect"
local certs = require "support.certs"
local peers = require "interop.peers"

local quote, read_file = peers.quote, peers.read_file

local function free_port()
  local l = assert(core.tcp_listen("127.0.0.1", 0))
  local port = l:port()
  l:close()
  return port
end

local function sh_ok(cmd)
  local r = os.execute(cmd)
  return r == true or r == 0
end

-- Whether something accepts TCP on 127.0.0.1:port now.
local function accepts(port)
  local s = core.tcp_connect("127.0.0.1", port)
  if not s then return false end
  local ok = loop.wait_fd(s:fd(), "w", ws.now() + 1, s)
  loop.forget_fd(s:fd())
  local connected = ok and s:connected()
  s:close()
  return connected == true
end

------------------------------------------------------------- tinyproxy

local Tiny = {}
Tiny.__index = Tiny

-- Start tinyproxy on a free loopback port. opts: `user`, `password`
-- (BasicAuth), `connect_port` (allow CONNECT only to that port; by
-- default every port).
local function tinyproxy(opts)
  opts = opts or {}
  local dir = os.tmpname()
  os.remove(dir)
  assert(sh_ok("mkdir -p " .. quote(dir)))
  local self = setmetatable({ dir = dir, log = dir .. "/log" }, Tiny)
  for _ = 1, 5 do -- the port may be taken between our check and its bind
    self.port = free_port()
    local conf = {
      "Port " .. self.port, "Listen 127.0.0.1", "Timeout 10",
      ('LogFile "%s"'):format(self.log), "LogLevel Connect",
      "MaxClients 20", "Allow 127.0.0.1", "DisableViaHeader Yes",
    }
    if opts.user then
      conf[#conf + 1] = ("BasicAuth %s %s"):format(opts.user, opts.password)
    end
    if opts.connect_port then
      conf[#conf + 1] = "ConnectPort " .. opts.connect_port
    end
    local f = assert(io.open(dir .. "/conf", "w"))
    f:write(table.concat(conf, "\n"), "\n")
    f:close()
    self.proc = peers.start({ "tinyproxy", "-d", "-c", dir .. "/conf" })
    local deadline = ws.now() + 5
    while ws.now() < deadline and not accepts(self.port) do
      ws.sleep(0.02)
    end
    if accepts(self.port) then
      self.url = "http://127.0.0.1:" .. self.port
      return self
    end
    self.proc:stop()
  end
  error("tinyproxy did not start: " .. read_file(dir .. "/log"))
end

-- How many CONNECT requests for `target` ("host:port") the log has.
function Tiny:connects(target)
  local n = 0
  local pattern = "CONNECT " .. target:gsub("%p", "%%%0") .. " HTTP/1.1"
  for line in read_file(self.log):gmatch("[^\n]+") do
    if line:find(pattern) then n = n + 1 end
  end
  return n
end

-- Wait (bounded) until the log has `n` CONNECT requests for target.
function Tiny:wait_connects(target, n)
  local deadline = ws.now() + 5
  while self:connects(target) < n and ws.now() < deadline do
    ws.sleep(0.02)
  end
  return self:connects(target)
end

function Tiny:stop()
  if self.proc then self.proc:stop() end
  os.execute("rm -rf " .. quote(self.dir))
end

------------------------------------------------- a CONNECT proxy of ours

local function close(sock)
  loop.forget_fd(sock:fd())
  sock:close()
end

-- Copy a to b until either ends.
local function pump(pair, a, b)
  while not pair.dead do
    local data, err = a:read(65536)
    if data then
      local i = 1
      while i <= #data do
        local n, werr = b:write(data, i)
        if n then i = i + n
        elseif werr == "wantwrite" then
          loop.wait_fd(b:fd(), "w", ws.now() + 1, b)
        else break end
      end
    elseif err == "wantread" then
      loop.wait_fd(a:fd(), "r", ws.now() + 0.2, a)
    else
      break
    end
  end
  if not pair.dead then
    pair.dead = true
    close(a)
    close(b)
  end
end

-- A proxy on loopback that records each request head and answers with
-- `answer` (a string, or nil to say nothing); after a 2xx answer it
-- tunnels to 127.0.0.1:upstream, whatever the request named.
local function fake_proxy(answer, upstream)
  local l = assert(core.tcp_listen("127.0.0.1", 0))
  local self = { port = l:port(), requests = {}, silent = {} }
  self.url = "http://127.0.0.1:" .. self.port
  local function serve(c)
    local buf = ""
    local deadline = ws.now() + 5
    while not buf:find("\r\n\r\n", 1, true) and ws.now() < deadline do
      local data, err = c:read(4096)
      if data then buf = buf .. data
      elseif err == "wantread" then
        loop.wait_fd(c:fd(), "r", deadline, c)
      else return close(c) end
    end
    self.requests[#self.requests + 1] = buf
    if not answer then -- c stays open, silent, until stop()
      self.silent[#self.silent + 1] = c
      return
    end
    c:write(answer)
    if not answer:match("^HTTP/1%.1 2") then return close(c) end
    local u = assert(core.tcp_connect("127.0.0.1", upstream))
    loop.wait_fd(u:fd(), "w", ws.now() + 2, u)
    loop.forget_fd(u:fd())
    local pair = {}
    ws.spawn(pump, pair, c, u)
    ws.spawn(pump, pair, u, c)
  end
  ws.spawn(function()
    while not self.closed do
      local c = l:accept()
      if c then
        ws.spawn(serve, c)
      else
        loop.wait_fd(l:fd(), "r", ws.now() + 0.2, l)
      end
    end
  end)
  function self.stop()
    self.closed = true
    loop.forget_fd(l:fd())
    l:close()
    for _, c in ipairs(self.silent) do close(c) end
  end
  return self
end

------------------------------------------------------------------ specs

local ECHO = function(conn)
  for d, k in conn:messages() do conn:send(d, k) end
end

local function echo_round_trip(conn)
  assert.is_true(conn:send("through"))
  assert.are.equal("through", (conn:receive(5)))
  assert.are.equal(1000, conn:close().code)
end

-- Run fn with proxy.getenv reading `vars` only.
local function with_env(vars, fn)
  local saved = proxy.getenv
  proxy.getenv = function(name) return vars[name] end
  local ok, err = pcall(fn)
  proxy.getenv = saved
  if not ok then error(err, 0) end
end

describe("proxy URLs", function()
  it("parses host, port and credentials, percent-decoding them", function()
    local p = assert(proxy.parse(
      "http://al%20ice:p%40ss%3Aw@Proxy.Example:3128/"))
    assert.are.same({ host = "proxy.example", port = 3128,
      authority = "proxy.example:3128",
      auth = "Basic " .. proxy.base64("al ice:p@ss:w") }, p)
    assert.are.equal("Basic YWwgaWNlOnBAc3M6dw==", p.auth)
  end)

  it("takes port 80 by default and IPv6 in brackets", function()
    assert.are.same({ host = "::1", port = 80, authority = "[::1]:80" },
      proxy.parse("http://[::1]"))
  end)

  it("refuses what it cannot use, with the reason", function()
    assert.are.same({ nil, "unsupported scheme 'socks5': http expected" },
      { proxy.parse("socks5://h:1080") })
    assert.are.same({ nil, "unsupported scheme 'https': http expected" },
      { proxy.parse("https://h:443") })
    assert.are.same({ nil, "no scheme: http:// expected" },
      { proxy.parse("h:3128") })
    assert.are.same({ nil, "a user name without a password" },
      { proxy.parse("http://alice@h:3128") })
    assert.are.same({ nil, "a proxy URL has no path, query or fragment" },
      { proxy.parse("http://h:3128/x") })
    assert.are.same({ nil, "port out of range" },
      { proxy.parse("http://h:70000") })
    assert.are.same({ nil, "a bad percent-escape in the user name or "
      .. "password" }, { proxy.parse("http://a:b%zz@h:1") })
  end)

  it("reads host:port without a scheme from the environment as http",
    function()
      assert.are.equal("h:3128", proxy.parse("h:3128", true).authority)
    end)

  it("builds the CONNECT request, with Basic credentials", function()
    local u = assert(require("ws.url").parse("wss://[::1]:8443/x"))
    assert.are.equal("CONNECT [::1]:8443 HTTP/1.1\r\nHost: [::1]:8443\r\n"
      .. "Proxy-Authorization: Basic YTpi\r\n\r\n",
      proxy.request(assert(proxy.parse("http://a:b@h:1")), u))
  end)

  it("parses the answer head, and bounds its size", function()
    local r, n = proxy.parse_response("HTTP/1.1 407 Proxy Authentication "
      .. "Required\r\nProxy-Authenticate: Basic realm=\"x\"\r\n\r\nrest")
    assert.are.same({ status = 407, reason = "Proxy Authentication Required",
      headers = { ["proxy-authenticate"] = 'Basic realm="x"' } }, r)
    assert.are.equal(#"HTTP/1.1 407 Proxy Authentication Required\r\n"
      + #"Proxy-Authenticate: Basic realm=\"x\"\r\n\r\n", n)
    assert.are.same({ nil, "incomplete" },
      { proxy.parse_response("HTTP/1.1 200 OK\r\n") })
    assert.are.same({ nil, "too_large" },
      { proxy.parse_response("HTTP/1.1 200 OK\r\n" .. ("x"):rep(9000)) })
    assert.are.same({ nil, "bad_response" },
      { proxy.parse_response("SSH-2.0-OpenSSH\r\n\r\n") })
  end)
end)

describe("choosing a proxy from the environment", function()
  local url = require("ws.url")
  local function chosen(s, vars, opt)
    local p, from
    with_env(vars, function() p, from = proxy.select(url.parse(s), opt) end)
    return p and p.authority or p, from
  end

  it("uses wss_proxy, then https_proxy, then all_proxy for wss://",
    function()
      local all = { wss_proxy = "http://a:1", https_proxy = "http://b:2",
        http_proxy = "http://c:3", all_proxy = "http://d:4" }
      assert.are.same({ "a:1", "wss_proxy" }, { chosen("wss://h/", all) })
      all.wss_proxy = nil
      assert.are.same({ "b:2", "https_proxy" }, { chosen("wss://h/", all) })
      all.https_proxy = nil
      assert.are.same({ "d:4", "all_proxy" }, { chosen("wss://h/", all) })
    end)

  it("uses ws_proxy, https_proxy, http_proxy, then all_proxy for ws://",
    function()
      local all = { ws_proxy = "http://a:1", https_proxy = "http://b:2",
        http_proxy = "http://c:3", all_proxy = "http://d:4" }
      assert.are.same({ "a:1", "ws_proxy" }, { chosen("ws://h/", all) })
      all.ws_proxy = nil
      assert.are.same({ "b:2", "https_proxy" }, { chosen("ws://h/", all) })
      all.https_proxy = nil
      assert.are.same({ "c:3", "http_proxy" }, { chosen("ws://h/", all) })
      all.http_proxy = nil
      assert.are.same({ "d:4", "all_proxy" }, { chosen("ws://h/", all) })
    end)

  it("reads upper-case names, the lower-case one winning", function()
    assert.are.equal("b:2", chosen("wss://h/", { HTTPS_PROXY = "http://b:2" }))
    assert.are.equal("a:1", chosen("wss://h/", { https_proxy = "http://a:1",
      HTTPS_PROXY = "http://b:2" }))
    assert.is_nil(chosen("wss://h/", { https_proxy = "",
      HTTPS_PROXY = "http://b:2" }))
  end)

  it("ignores HTTP_PROXY in a CGI program (httpoxy)", function()
    assert.are.equal("c:3", chosen("ws://h/", { HTTP_PROXY = "http://c:3" }))
    assert.is_nil(chosen("ws://h/", { HTTP_PROXY = "http://c:3",
      REQUEST_METHOD = "GET" }))
  end)

  it("connects directly to what no_proxy names", function()
    local function direct(host, list)
      return chosen("ws://" .. host .. "/", { http_proxy = "http://p:1",
        no_proxy = list }) == nil
    end
    assert.is_true(direct("example.com", "example.com"))
    assert.is_true(direct("a.example.com", "example.com"))
    assert.is_true(direct("a.example.com", ".example.com"))
    assert.is_true(direct("a.example.com", "*.example.com"))
    assert.is_false(direct("notexample.com", "example.com"))
    assert.is_false(direct("example.com.org", "example.com"))
    assert.is_true(direct("anything", "*"))
    assert.is_true(direct("b.org", "a.org, B.ORG ,c.org"))
    assert.is_true(direct("example.com:8080", "example.com:8080"))
    assert.is_false(direct("example.com:8081", "example.com:8080"))
    assert.is_true(direct("[::1]:9", "::1"))
    assert.is_true(direct("[::1]:9", "[::1]:9"))
    assert.is_false(direct("example.com", ""))
    assert.are.equal("p:1", chosen("ws://h/", { http_proxy = "http://p:1",
      NO_PROXY = "other" }))
    assert.is_nil(chosen("ws://h/", { http_proxy = "http://p:1",
      NO_PROXY = "h" }))
  end)

  it("lets the option win over the environment", function()
    local vars = { http_proxy = "http://env:1", no_proxy = "*" }
    assert.is_nil(chosen("ws://h/", vars, false))
    assert.are.same({ "opt:2", "option" },
      { chosen("ws://h/", vars, "http://opt:2") })
  end)

  it("says which variable holds a proxy URL it cannot use", function()
    assert.are.same({ nil, "bad proxy URL in https_proxy: unsupported "
      .. "scheme 'socks5h': http expected" },
      { chosen("wss://h/", { https_proxy = "socks5h://p:1080" }) })
  end)
end)

describe("the proxy option", function()
  it("is checked at the call", function()
    assert.has_error(function()
      ws.connect("ws://h/", { proxy = "ftp://x" })
    end,
      "bad argument #2 to 'connect' (option 'proxy': "
        .. "http://[user:pass@]host[:port] or false (unsupported scheme "
        .. "'ftp': http expected) expected, got \"ftp://x\")")
    assert.has_error(function() ws.connect("ws://h/", { proxy = true }) end,
      "bad argument #2 to 'connect' (option 'proxy': "
        .. "http://[user:pass@]host[:port] or false expected, got true)")
    assert.has_error(function() ws.client("ws://h/", { proxy = "x" }) end,
      "bad argument #2 to 'client' (option 'proxy': "
        .. "http://[user:pass@]host[:port] or false (no scheme: http:// "
        .. "expected) expected, got \"x\")")
  end)

  it("classes a proxy's 407 as auth for reconnecting", function()
    assert.are.equal("auth", reconnect.classify({ code = 1006,
      error = "proxy", http_status = 407 }))
    assert.are.equal("retry", reconnect.classify({ code = 1006,
      error = "proxy", http_status = 502 }))
    assert.are.equal("retry", reconnect.classify({ code = 1006,
      error = "proxy" }))
  end)
end)

describe("connecting through tinyproxy", function()
  local dir, plain, secure, open, auth, strict
  local saved_getenv
  local env = {}

  lazy_setup(function()
    dir = certs.make()
    plain = assert(ws.listen{ port = 0, handler = ECHO })
    secure = assert(ws.listen{ port = 0, handler = ECHO, tls = {
      cert_file = dir .. "/server.pem", key_file = dir .. "/server.key" } })
    open = tinyproxy()
    auth = tinyproxy{ user = "alice", password = "s3cr3t" }
    strict = tinyproxy{ connect_port = 1 }
  end)
  lazy_teardown(function()
    for _, p in ipairs({ open, auth, strict }) do p:stop() end
    if plain then plain:close(1) end
    if secure then secure:close(1) end
    certs.remove(dir)
  end)
  before_each(function()
    saved_getenv = proxy.getenv
    for k in pairs(env) do env[k] = nil end
    proxy.getenv = function(name) return env[name] end
  end)
  after_each(function() proxy.getenv = saved_getenv end)

  local function ws_url() return "ws://127.0.0.1:" .. plain.port .. "/" end
  local function wss_url() return "wss://localhost:" .. secure.port .. "/" end
  local function plain_target() return "127.0.0.1:" .. plain.port end
  local function secure_target() return "localhost:" .. secure.port end
  local TLS = function() return { ca_file = dir .. "/ca.pem" } end

  it("carries ws:// through the tunnel", function()
    local n = open:connects(plain_target())
    local conn = assert(ws.connect(ws_url(), { proxy = open.url,
      timeout = 5 }))
    echo_round_trip(conn)
    assert.are.equal(n + 1, open:wait_connects(plain_target(), n + 1))
  end)

  it("carries wss:// through the tunnel, verified against the target",
    function()
      local n = open:connects(secure_target())
      local conn = assert(ws.connect(wss_url(), { proxy = open.url,
        tls = TLS(), timeout = 5 }))
      echo_round_trip(conn)
      assert.are.equal(n + 1, open:wait_connects(secure_target(), n + 1))
    end)

  it("fails with error proxy when no proxy listens", function()
    local port = free_port()
    local conn, err, ev = ws.connect(ws_url(), {
      proxy = "http://127.0.0.1:" .. port, timeout = 5 })
    assert.is_nil(conn)
    assert.are.same({ 1006, "abnormal", "proxy", "transport", false },
      { ev.code, ev.name, ev.error, ev.initiator, ev.clean })
    assert.is_nil(ev.http_status)
    assert.matches("^cannot reach proxy 127%.0%.0%.1:" .. port .. ": ", err)
    assert.are.equal(err, ev.message)
  end)

  it("reports a proxy's 407 without credentials", function()
    local conn, err, ev = ws.connect(ws_url(), { proxy = auth.url,
      timeout = 5 })
    assert.is_nil(conn)
    assert.are.same({ 1006, "proxy", 407 },
      { ev.code, ev.error, ev.http_status })
    assert.are.equal(("proxy 127.0.0.1:%d refused the tunnel to %s: "
      .. "HTTP 407 Proxy Authentication Required"):format(auth.port,
      plain_target()), err)
    assert.matches("^Basic", ev.http_headers["proxy-authenticate"])
  end)

  it("reports the proxy's status for wrong credentials", function()
    -- tinyproxy answers 401 (others 407): the status is passed on as is,
    -- and both are the auth class for reconnecting
    local _, _, ev = ws.connect(ws_url(), {
      proxy = "http://alice:wrong@127.0.0.1:" .. auth.port, timeout = 5 })
    assert.are.same({ "proxy", 401, "auth" },
      { ev.error, ev.http_status, reconnect.classify(ev) })
  end)

  it("authenticates with percent-encoded credentials", function()
    local conn = assert(ws.connect(wss_url(), {
      proxy = "http://alice:s%33cr3t@127.0.0.1:" .. auth.port,
      tls = TLS(), timeout = 5 }))
    echo_round_trip(conn)
  end)

  it("reports a proxy that refuses the port with its status", function()
    local conn, err, ev = ws.connect(ws_url(), { proxy = strict.url,
      timeout = 5 })
    assert.is_nil(conn)
    assert.are.same({ "proxy", 403 }, { ev.error, ev.http_status })
    assert.matches("refused the tunnel to " .. plain_target():gsub("%.", "%%.")
      .. ": HTTP 403", err)
  end)

  it("picks up http_proxy for ws://", function()
    env.http_proxy = open.url
    local n = open:connects(plain_target())
    echo_round_trip(assert(ws.connect(ws_url(), { timeout = 5 })))
    assert.are.equal(n + 1, open:wait_connects(plain_target(), n + 1))
  end)

  it("picks up HTTPS_PROXY for wss://", function()
    env.HTTPS_PROXY = open.url
    local n = open:connects(secure_target())
    echo_round_trip(assert(ws.connect(wss_url(), { tls = TLS(),
      timeout = 5 })))
    assert.are.equal(n + 1, open:wait_connects(secure_target(), n + 1))
  end)

  it("picks up all_proxy", function()
    env.all_proxy = open.url
    local n = open:connects(plain_target())
    echo_round_trip(assert(ws.connect(ws_url(), { timeout = 5 })))
    assert.are.equal(n + 1, open:wait_connects(plain_target(), n + 1))
  end)

  it("prefers ws_proxy and wss_proxy to the others", function()
    env.ws_proxy, env.wss_proxy = open.url, open.url
    env.http_proxy = "http://127.0.0.1:" .. free_port()
    env.https_proxy = env.http_proxy
    local n, m = open:connects(plain_target()), open:connects(secure_target())
    echo_round_trip(assert(ws.connect(ws_url(), { timeout = 5 })))
    echo_round_trip(assert(ws.connect(wss_url(), { tls = TLS(),
      timeout = 5 })))
    assert.are.equal(n + 1, open:wait_connects(plain_target(), n + 1))
    assert.are.equal(m + 1, open:wait_connects(secure_target(), m + 1))
  end)

  it("connects directly to a host no_proxy names, leaving the proxy alone",
    function()
      env.https_proxy, env.http_proxy = open.url, open.url
      env.no_proxy = "example.org,localhost"
      local n = open:connects(secure_target())
      echo_round_trip(assert(ws.connect(wss_url(), { tls = TLS(),
        timeout = 5 })))
      ws.sleep(0.1)
      assert.are.equal(n, open:connects(secure_target()))
      env.no_proxy = "127.0.0.1:" .. plain.port
      n = open:connects(plain_target())
      echo_round_trip(assert(ws.connect(ws_url(), { timeout = 5 })))
      ws.sleep(0.1)
      assert.are.equal(n, open:connects(plain_target()))
    end)

  it("connects directly with proxy = false whatever the environment says",
    function()
      env.http_proxy = "http://127.0.0.1:" .. free_port() -- nothing there
      echo_round_trip(assert(ws.connect(ws_url(), { proxy = false,
        timeout = 5 })))
    end)

  it("lets an explicit proxy override the environment", function()
    env.http_proxy = "http://127.0.0.1:" .. free_port()
    env.no_proxy = "*"
    local n = open:connects(plain_target())
    echo_round_trip(assert(ws.connect(ws_url(), { proxy = open.url,
      timeout = 5 })))
    assert.are.equal(n + 1, open:wait_connects(plain_target(), n + 1))
  end)

  it("fails with error proxy for a proxy URL in the environment it cannot "
    .. "use", function()
      env.https_proxy = "socks5://127.0.0.1:1080"
      local conn, err, ev = ws.connect(wss_url(), { timeout = 5 })
      assert.is_nil(conn)
      assert.are.equal("proxy", ev.error)
      assert.are.equal("bad proxy URL in https_proxy: unsupported scheme "
        .. "'socks5': http expected", err)
    end)

  it("reconnects ws.client through the proxy", function()
    local n = open:connects(plain_target())
    local got
    local c = ws.client(ws_url(), { proxy = open.url, timeout = 5,
      reconnect = ws.reconnect.never() })
    c:on("open", function(conn) conn:send("via client") end)
    c:on("message", function(conn, data)
      got = data
      conn:close()
    end)
    local deadline = ws.now() + 5
    while got == nil and ws.now() < deadline do ws.step(0.02) end
    c:close()
    assert.are.equal("via client", got)
    assert.are.equal(n + 1, open:wait_connects(plain_target(), n + 1))
  end)
end)

describe("connecting through a CONNECT proxy of the spec's", function()
  local dir, other, server, fakes = nil, nil, nil, {}

  lazy_setup(function()
    dir = certs.make()
    other = assert(ws.listen{ port = 0, handler = ECHO, tls = {
      cert_file = dir .. "/other.pem", key_file = dir .. "/other.key" } })
    server = assert(ws.listen{ port = 0, handler = ECHO, tls = {
      cert_file = dir .. "/server.pem", key_file = dir .. "/server.key" } })
  end)
  lazy_teardown(function()
    for _, f in ipairs(fakes) do f.stop() end
    other:close(1)
    server:close(1)
    certs.remove(dir)
  end)
  local function fake(answer, upstream)
    local f = fake_proxy(answer, upstream)
    fakes[#fakes + 1] = f
    return f
  end
  local OK = "HTTP/1.1 200 Connection established\r\n\r\n"

  it("sends SNI and checks the certificate against the target, not the "
    .. "proxy", function()
      -- other.example resolves nowhere: only the proxy's tunnel reaches it
      local f = fake(OK, other.port)
      local conn = assert(ws.connect("wss://other.example/", {
        proxy = f.url, tls = { ca_file = dir .. "/ca.pem" }, timeout = 5 }))
      echo_round_trip(conn)
      assert.are.equal("CONNECT other.example:443 HTTP/1.1\r\n"
        .. "Host: other.example:443\r\n\r\n", f.requests[1])
    end)

  it("fails TLS (1015) when the target's certificate is for another name",
    function()
      local f = fake(OK, server.port) -- localhost's certificate
      local conn, err, ev = ws.connect("wss://other.example/", {
        proxy = f.url, tls = { ca_file = dir .. "/ca.pem" }, timeout = 5 })
      assert.is_nil(conn)
      assert.are.same({ 1015, "tls" }, { ev.code, ev.error })
      assert.matches("other%.example", err)
    end)

  it("sends Proxy-Authorization with the decoded credentials", function()
    local f = fake(OK, server.port)
    assert(ws.connect("wss://localhost/", {
      proxy = "http://al%20ice:p%40ss%3Aw@" .. f.url:sub(8),
      tls = { ca_file = dir .. "/ca.pem" }, timeout = 5 })):close()
    assert.matches("\r\nProxy%-Authorization: Basic YWwgaWNlOnBAc3M6dw==\r\n",
      f.requests[1])
  end)

  it("times out within `timeout` on a proxy that never answers", function()
    local f = fake(nil)
    local t0 = ws.now()
    local conn, err, ev = ws.connect("ws://localhost/", { proxy = f.url,
      timeout = 0.3 })
    assert.is_nil(conn)
    assert.is_true(ws.now() - t0 < 2)
    assert.are.same({ "proxy", nil }, { ev.error, ev.http_status })
    assert.are.equal(("proxy 127.0.0.1:%d: no answer to CONNECT "
      .. "localhost:80 in time"):format(f.port), err)
  end)

  it("fails with error proxy when the proxy does not speak HTTP", function()
    local f = fake("SSH-2.0-OpenSSH_9\r\n\r\n")
    local _, err, ev = ws.connect("ws://localhost/", { proxy = f.url,
      timeout = 5 })
    assert.are.equal("proxy", ev.error)
    assert.are.equal(("proxy 127.0.0.1:%d did not answer CONNECT with "
      .. "HTTP"):format(f.port), err)
  end)

  it("passes a proxy's 5xx on as http_status", function()
    local f = fake("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
    local _, err, ev = ws.connect("ws://localhost/", { proxy = f.url,
      timeout = 5 })
    assert.are.same({ 1006, "proxy", 502 },
      { ev.code, ev.error, ev.http_status })
    assert.matches("HTTP 502 Bad Gateway$", err)
  end)
end)
