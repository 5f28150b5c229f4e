-- WebSockets over Unix domain sockets (doc/unix-sockets.md): our client
-- and our server over real sockets in a temporary directory, TLS over a
-- Unix socket, Node ws and python-websockets both ways, what happens to
-- the socket file (stale, live, not a socket, permissions, removal at
-- close), the URL form, and the command-line tool. Every wait is bounded.
local ws = require "ws"
local core = require "ws.core"
local proxy = require "ws.proxy"
local certs = require "support.certs"
local peers = require "interop.peers"

local quote, read_file = peers.quote, peers.read_file

local dir

local function sh(cmd)
  local ok = os.execute(cmd .. " >/dev/null 2>&1")
  assert(ok == true or ok == 0, "command failed: " .. cmd)
end

local function capture(cmd)
  local p = assert(io.popen(cmd))
  local s = p:read("*a")
  p:close()
  return (s:gsub("%s+$", ""))
end

-- A fresh socket path in the spec's directory.
local n = 0
local function path(name)
  n = n + 1
  return ("%s/%s%d.sock"):format(dir, name or "s", n)
end

local function exists(p)
  return capture("test -e " .. quote(p) .. " && echo yes || echo no") == "yes"
end

local function file_type(p)
  return capture("stat -c %F " .. quote(p) .. " 2>/dev/null")
end

-- Our echo server on a Unix socket; records each request in `requests`
-- and each close event in `closes`. "cmd:close CODE REASON" closes.
local function echo_server(p, extra)
  local requests, closes = {}, {}
  local opts = { unix = p, handler = function(conn, req)
    requests[#requests + 1] = req
    for data, kind in conn:messages() do
      local code, reason = data:match("^cmd:close (%d+) ?(.*)$")
      if code then conn:close(tonumber(code), reason)
      else conn:send(data, kind) end
    end
    closes[#closes + 1] = conn.close_event
  end }
  for k, v in pairs(extra or {}) do opts[k] = v end
  local server = assert(ws.listen(opts))
  return server, requests, closes
end

-- Run fn in a task and drive the loop until it ends (10 s at most).
local function run(fn)
  local done, ok, err = false, nil, nil
  ws.spawn(function()
    ok, err = pcall(fn)
    done = true
  end)
  peers.drive("the task", function() if done then return true end end, 10)
  if not ok then error(err, 0) end
end

-- Leave a stale socket file at p: a socket bound there by a process that
-- has exited.
local function stale_socket(p)
  sh("env -u LD_PRELOAD -u ASAN_OPTIONS -u UBSAN_OPTIONS /usr/bin/python3 -c "
    .. quote("import socket, sys; "
    .. "socket.socket(socket.AF_UNIX).bind(sys.argv[1])") .. " " .. quote(p))
  assert(file_type(p) == "socket", "no stale socket made at " .. p)
end

setup(function()
  dir = os.tmpname()
  os.remove(dir)
  sh("mkdir -p " .. quote(dir))
end)

teardown(function()
  if dir and dir:match("^/tmp/") then sh("rm -rf " .. quote(dir)) end
end)

describe("a Unix socket server and client", function()
  it("exchange text and binary messages and close with a code both ways",
    function()
      local p = path()
      local server, requests, closes = echo_server(p)
      assert.are.same({ p, nil, nil }, { server.unix, server.port,
        server.host })
      assert.are.equal("socket", file_type(p))
      run(function()
        local conn = assert(ws.connect("ws+unix://" .. p .. ":/chat?room=1"))
        local seen
        conn:on("close", function(_, ev) seen = ev.code end)
        assert.is_true(conn:send("héllo"))
        assert.are.same({ "héllo", "text" }, { conn:receive(5) })
        assert.is_true(conn:send("\0\1\2\255", "binary"))
        assert.are.same({ "\0\1\2\255", "binary" }, { conn:receive(5) })
        local ev = conn:close(4001, "client done")
        assert.are.same({ 4001, "client done", true, "local" },
          { ev.code, ev.reason, ev.clean, ev.initiator })
        assert.are.equal(4001, seen)
        assert.are.equal("/chat?room=1", requests[1].path)
        assert.are.equal("localhost", requests[1].headers.host)
        assert.are.same({ addr = "", port = 0, unix = p }, requests[1].peer)

        conn = assert(ws.connect("ws+unix://" .. p))
        assert.is_true(conn:send("cmd:close 4002 server done"))
        local _, err, cev = conn:receive(5)
        assert.are.equal("closed", err)
        assert.are.same({ 4002, "server done", true, "remote" },
          { cev.code, cev.reason, cev.clean, cev.initiator })
        assert.are.equal("/", requests[2].path)
      end)
      peers.drive("the server's close event", function()
        if closes[2] then return true end
      end, 5)
      assert.are.same({ 4001, "remote" }, { closes[1].code,
        closes[1].initiator })
      assert.are.same({ 4002, "local" }, { closes[2].code,
        closes[2].initiator })
      server:close(1)
    end)

  it("connects a ws:// URL over a socket with the unix option, Host from "
    .. "the URL", function()
    local p = path()
    local server, requests = echo_server(p)
    run(function()
      local conn = assert(ws.connect("ws://example.com:8080/feed",
        { unix = p }))
      assert.is_true(conn:send("x"))
      assert.are.equal("x", (conn:receive(5)))
      conn:close()
    end)
    assert.are.same({ "/feed", "example.com:8080" },
      { requests[1].path, requests[1].headers.host })
    server:close(1)
  end)

  it("never goes through a proxy, from the environment or the option",
    function()
      local p = path()
      local server = echo_server(p)
      local saved = proxy.getenv
      -- a proxy nobody listens on: using it would fail the connect
      proxy.getenv = function(name)
        if name == "http_proxy" or name == "all_proxy" then
          return "http://127.0.0.1:9"
        end
      end
      local ok, err = pcall(run, function()
        local conn = assert(ws.connect("ws+unix://" .. p .. ":/"))
        conn:close()
        conn = assert(ws.connect("ws://h/", { unix = p,
          proxy = "http://127.0.0.1:9" }))
        conn:close()
      end)
      proxy.getenv = saved
      server:close(1)
      assert(ok, err)
    end)

  it("reports a missing socket as a failed connect (1006 notfound)",
    function()
      run(function()
        local p = dir .. "/nobody.sock"
        local conn, msg, ev = ws.connect("ws+unix://" .. p .. ":/")
        assert.is_nil(conn)
        assert.are.equal("No such file or directory (" .. p .. ")", msg)
        assert.are.same({ 1006, "notfound", false },
          { ev.code, ev.error, ev.clean })
      end)
    end)

  it("reconnects a ws.client over a socket", function()
    local p = path()
    local server = echo_server(p)
    local opens, closes, got = 0, {}, {}
    local client = ws.client("ws+unix://" .. p .. ":/feed", {
      reconnect = ws.reconnect.fixed(0.05) })
    client:on("open", function(conn)
      opens = opens + 1
      conn:send(opens == 1 and "cmd:close 1012 restart" or "again")
    end)
    client:on("message", function(_, data) got[#got + 1] = data end)
    client:on("close", function(_, ev) closes[#closes + 1] = ev.code end)
    peers.drive("the second connection's echo", function()
      if got[1] then return true end
    end, 5)
    client:close()
    run(function() client:wait(2) end)
    assert.are.same({ 2, { "again" }, { 1012, 1000 } }, { opens, got, closes })
    server:close(1)
  end)
end)

describe("the socket file", function()
  local function umask_mode(p, mode)
    local server = echo_server(p, { unix_mode = mode })
    local m = capture("stat -c %a " .. quote(p))
    server:close(1)
    return m
  end

  it("gets unix_mode, an octal string or a number", function()
    assert.are.equal("640", umask_mode(path(), "0640"))
    assert.are.equal("600", umask_mode(path(), "600"))
    assert.are.equal("660", umask_mode(path(), 432))
  end)

  it("is removed when the server closes", function()
    local p = path()
    local server = echo_server(p)
    assert.is_true(exists(p))
    server:close(1)
    assert.is_false(exists(p))
  end)

  it("is left alone at close when another server has replaced it",
    function()
      local p = path()
      local a = echo_server(p)
      os.remove(p)
      local b = echo_server(p)
      a:close(1)
      assert.are.equal("socket", file_type(p))
      run(function()
        local conn = assert(ws.connect("ws+unix://" .. p .. ":/"))
        conn:close()
      end)
      b:close(1)
      assert.is_false(exists(p))
    end)

  it("is replaced when stale (nothing accepts on it)", function()
    local p = path()
    stale_socket(p)
    local server = echo_server(p)
    run(function()
      local conn = assert(ws.connect("ws+unix://" .. p .. ":/"))
      assert.is_true(conn:send("fresh"))
      assert.are.equal("fresh", (conn:receive(5)))
      conn:close()
    end)
    server:close(1)
  end)

  it("is refused as address in use while a server answers there", function()
    local p = path()
    local server = echo_server(p)
    assert.are.same({ nil, "addrinuse",
      "address in use: a server is listening on " .. p },
      { ws.listen{ unix = p, handler = function() end } })
    run(function() -- the first server still serves
      local conn = assert(ws.connect("ws+unix://" .. p .. ":/"))
      assert.is_true(conn:send("still here"))
      assert.are.equal("still here", (conn:receive(5)))
      conn:close()
    end)
    server:close(1)
  end)

  it("is refused and kept when it is not a socket", function()
    local p = dir .. "/regular"
    local f = assert(io.open(p, "w"))
    f:write("keep me")
    f:close()
    assert.are.same({ nil, "notsock",
      p .. " exists and is not a socket (left as it is)" },
      { ws.listen{ unix = p, handler = function() end } })
    assert.are.equal("keep me", read_file(p))
  end)

  it("may not be longer than sun_path allows", function()
    local max = core.unix_max()
    local long = "/tmp/" .. ("x"):rep(max)
    local ok, err = pcall(ws.listen, { unix = long, handler = function() end })
    assert.is_false(ok)
    assert.are.equal(("bad argument #1 to 'listen' (option 'unix': socket "
      .. "path of 1 to %d bytes expected, got %q)"):format(max, long),
      err:match("bad argument.*"))
    ok, err = pcall(ws.connect, "ws+unix://" .. long .. ":/")
    assert.is_false(ok)
    assert.are.equal(("bad argument #1 to 'connect' (socket path of at most "
      .. "%d bytes expected, got %d: %s)"):format(max, #long, long),
      err:match("bad argument.*"))
    assert.are.same({ nil, "toolong", ("Unix socket path is %d bytes, longer "
      .. "than the %d this system allows: %s"):format(#long, max, long) },
      { core.unix_connect(long) })
  end)
end)

describe("unix options", function()
  local function raised(fn, ...)
    local ok, err = pcall(fn, ...)
    assert.is_false(ok)
    return (tostring(err):match("bad argument.*"))
  end
  local h = function() end

  it("refuse unix with host or port", function()
    assert.are.equal("bad argument #1 to 'listen' (option 'unix' excludes "
      .. "'host' and 'port')", raised(ws.listen, { unix = "/tmp/x.sock",
        port = 0, handler = h }))
    assert.are.equal("bad argument #1 to 'listen' (option 'unix' excludes "
      .. "'host' and 'port')", raised(ws.listen, { unix = "/tmp/x.sock",
        host = "127.0.0.1", handler = h }))
  end)

  it("refuse unix_mode without unix, or a bad one", function()
    assert.are.equal("bad argument #1 to 'listen' (option 'unix_mode' needs "
      .. "'unix')", raised(ws.listen, { port = 0, unix_mode = "0600",
        handler = h }))
    assert.are.equal("bad argument #1 to 'listen' (option 'unix_mode': "
      .. "octal string such as \"0660\" or integer from 0 to 511 expected, "
      .. "got \"0689\")", raised(ws.listen, { unix = "/tmp/x.sock",
        unix_mode = "0689", handler = h }))
    assert.are.equal("bad argument #1 to 'listen' (option 'unix_mode': "
      .. "octal string such as \"0660\" or integer from 0 to 511 expected, "
      .. "got 512)", raised(ws.listen, { unix = "/tmp/x.sock",
        unix_mode = 512, handler = h }))
  end)

  it("still require a port without unix", function()
    assert.are.equal("bad argument #1 to 'listen' (option 'port': integer "
      .. "from 0 to 65535 expected, got nil)", raised(ws.listen,
        { handler = h }))
  end)

  it("refuse a unix option with a ws+unix URL, and an empty path", function()
    assert.are.equal("bad argument #2 to 'connect' (option 'unix': the URL "
      .. "names a socket already)", raised(ws.connect,
        "ws+unix:///tmp/a.sock:/", { unix = "/tmp/b.sock" }))
    assert.are.equal(("bad argument #2 to 'connect' (option 'unix': socket "
      .. "path of 1 to %d bytes expected, got \"\")"):format(core.unix_max()),
      raised(ws.connect, "ws://h/", { unix = "" }))
  end)
end)

describe("TLS over a Unix socket", function()
  local cdir
  lazy_setup(function() cdir = certs.make() end)
  lazy_teardown(function() certs.remove(cdir) end)

  it("verifies the server as localhost for wss+unix:, the URL's host with "
    .. "the unix option", function()
    local p = path()
    local server = echo_server(p, { tls = {
      cert_file = cdir .. "/server.pem", key_file = cdir .. "/server.key" } })
    run(function()
      local conn = assert(ws.connect("wss+unix://" .. p .. ":/secure",
        { tls = { ca_file = cdir .. "/ca.pem" } }))
      assert.is_true(conn:send("secret"))
      assert.are.equal("secret", (conn:receive(5)))
      conn:close()
      conn = assert(ws.connect("wss://localhost/", { unix = p,
        tls = { ca_file = cdir .. "/ca.pem" } }))
      conn:close()
      local none, msg, ev = ws.connect("wss://other.example/", { unix = p,
        tls = { ca_file = cdir .. "/ca.pem" } })
      assert.is_nil(none)
      assert.are.same({ 1015, "tls" }, { ev.code, ev.error })
      assert.matches("[Hh]ostname mismatch", msg)
    end)
    server:close(1)
  end)
end)

describe("Unix socket interop", function()
  for _, impl in ipairs({ "node", "python" }) do
    it("our client talks to a " .. impl .. " server on a Unix socket",
      function()
        local p = path(impl)
        local peer = peers.server(impl, { unix = p })
        local ok, err = pcall(run, function()
          local conn = assert(ws.connect(peer.url("/lua")))
          assert.is_true(conn:send("cmd:header host"))
          assert.are.equal("header host localhost", (conn:receive(5)))
          assert.is_true(conn:send("\1\2\3", "binary"))
          assert.are.same({ "\1\2\3", "binary" }, { conn:receive(5) })
          assert.is_true(conn:send("cmd:close 4003 from " .. impl))
          local _, why, ev = conn:receive(5)
          assert.are.equal("closed", why)
          assert.are.same({ 4003, "from " .. impl, true },
            { ev.code, ev.reason, ev.clean })
        end)
        peer:stop()
        assert(ok, err)
      end)

    it("a " .. impl .. " client talks to our server with ws+unix:",
      function()
        local p = path(impl)
        local server, requests, closes = echo_server(p)
        local lines = peers.run_client(impl, "ws+unix://" .. p
          .. ":/" .. impl .. "?x=1", { "echo text 100", "echo binary 70000",
            "close 4004 bye" }, { timeout = 20 })
        -- our server answers a close with its code alone
        assert.are.same({ "echo text 100: text 100 ok",
          "echo binary 70000: binary 70000 ok", "closed 4004 " }, lines)
        assert.are.same({ "/" .. impl .. "?x=1", "localhost" },
          { requests[1].path, requests[1].headers.host })
        assert.are.same({ 4004, "bye", "remote" }, { closes[1].code,
          closes[1].reason, closes[1].initiator })
        server:close(1)
      end)
  end
end)

describe("lua-ws over a Unix socket", function()
  local LUA = jit and "luajit" or ("lua" .. _VERSION:match("%d+%.%d+"))
  local ABI = jit and "jit" or _VERSION:match("%d+%.%d+")
  local ENV = "env -u LD_PRELOAD -u ASAN_OPTIONS -u UBSAN_OPTIONS "
    .. "-u LUA_PATH -u LUA_CPATH -u LUA_PATH_5_4 -u LUA_CPATH_5_4 "

  lazy_setup(function()
    if read_file("build/" .. ABI .. "/ws/core.so") ~= "" then return end
    sh(ENV .. "make --no-print-directory " .. (jit and "luajit"
      or ("LUA_INC=/usr/include/lua" .. ABI .. " BUILD=build/" .. ABI
        .. " all")))
  end)

  -- Run lua-ws to its end, driving our loop; exit status, stdout, stderr.
  local function cli(args)
    local words = { LUA, "bin/lua-ws" }
    for _, a in ipairs(args) do words[#words + 1] = quote(a) end
    local base = os.tmpname()
    sh(("(%stimeout -k 2 10 %s </dev/null >%s 2>%s; echo $? >%s) &")
      :format(ENV, table.concat(words, " "), quote(base .. ".out"),
        quote(base .. ".err"), quote(base .. ".st")))
    local status = peers.drive("lua-ws", function()
      local s = read_file(base .. ".st")
      if s:match("\n") then return tonumber(s) end
    end, 15)
    local o, e = read_file(base .. ".out"), read_file(base .. ".err")
    for _, s in ipairs({ "", ".out", ".err", ".st" }) do
      os.remove(base .. s)
    end
    return status, o, e
  end

  it("connects to a ws+unix: URL", function()
    local p = path("cli")
    local server = echo_server(p)
    local status, out = cli({ "connect", "ws+unix://" .. p .. ":/cli",
      "-x", "over unix", "-w", "0.2" })
    assert.are.same({ 0, "over unix\n" }, { status, out })
    status = cli({ "connect", "ws://h/", "--unix", p, "-x", "x", "-w", "0" })
    assert.are.equal(0, status)
    server:close(1)
    local err
    status, _, err = cli({ "connect", "ws+unix://" .. p .. ":/cli" })
    assert.are.equal(3, status)
    assert.matches("error=notfound", err)
  end)

  it("listens with --unix and --unix-mode", function()
    local p = path("cli")
    local child = peers.start({ LUA, "bin/lua-ws", "listen", "--unix", p,
      "--unix-mode", "0600" })
    local ok, err = pcall(function()
      peers.drive("lua-ws listen", function()
        if child:stderr():find("listening: ws+unix://" .. p .. ":/ (echo)",
            1, true) then
          return true
        end
      end, 10)
      assert.are.equal("600", capture("stat -c %a " .. quote(p)))
      run(function()
        local conn = assert(ws.connect("ws+unix://" .. p .. ":/x"))
        assert.is_true(conn:send("echoed"))
        assert.are.equal("echoed", (conn:receive(5)))
        conn:close()
      end)
    end)
    child:stop()
    assert(ok, err)
    local status, _, e = cli({ "listen", "8080", "--unix", p })
    assert.are.same({ 2, "lua-ws: listen: --unix excludes PORT and --host\n" },
      { status, e })
  end)
end)
