-- The lua-ws command-line tool (bin/lua-ws, lua/ws/cli.lua), used as a
-- person would: the interactive client in a real terminal (tmux), and the
-- exit status and output of every close kind against real servers (ours in
-- this process and `lua-ws listen` as a child, Node ws, python-websockets,
-- and misbehaving ones). The tool runs as a child process with the
-- interpreter running these specs; while we wait for it we drive our own
-- loop, so servers in this process keep serving. Every wait is bounded.
local ws = require "ws"
local cli = require "ws.cli"
local peers = require "interop.peers"
local raw_peer = require "support.raw_peer"

local quote, read_file = peers.quote, peers.read_file

local LUA = jit and "luajit" or ("lua" .. _VERSION:match("%d+%.%d+"))
local ABI = jit and "jit" or _VERSION:match("%d+%.%d+")
local CLEAN_ENV = "env -u LD_PRELOAD -u ASAN_OPTIONS -u UBSAN_OPTIONS "
  .. "-u LUA_PATH -u LUA_CPATH -u LUA_PATH_5_4 -u LUA_CPATH_5_4 "
  .. "-u LUA_PATH_5_3 -u LUA_CPATH_5_3 "
  -- loopback only: no proxy from the environment unless a spec sets one
  .. "-u http_proxy -u https_proxy -u ws_proxy -u wss_proxy -u all_proxy "
  .. "-u no_proxy -u HTTP_PROXY -u HTTPS_PROXY -u WS_PROXY -u WSS_PROXY "
  .. "-u ALL_PROXY -u NO_PROXY "

-- bin/lua-ws loads build/<abi>/ws/core.so from the checkout: make sure
-- it is there for this interpreter (`make test` builds only the asan and
-- jit libraries).
local function ensure_built()
  if read_file("build/" .. ABI .. "/ws/core.so") ~= "" then return end
  local target = jit and "luajit" or ("LUA_INC=/usr/include/lua" .. ABI
    .. " BUILD=build/" .. ABI .. " all")
  assert(os.execute(CLEAN_ENV .. "make --no-print-directory " .. target
    .. " >/dev/null"))
end

local function command_line(args)
  local words = { LUA, "bin/lua-ws" }
  for _, a in ipairs(args) do words[#words + 1] = quote(a) end
  return table.concat(words, " ")
end

-- Run `lua-ws ARGS` (stdin from `input`, else /dev/null; environment
-- variables `env`, "NAME=value ...") to its end, driving our loop
-- meanwhile; returns exit status, stdout, stderr.
local function run(args, input, limit, env)
  local base = os.tmpname()
  local stdin = "/dev/null"
  if input then
    stdin = base .. ".in"
    local f = assert(io.open(stdin, "w"))
    f:write(input)
    f:close()
  end
  local p = assert(io.popen(("(%s%s timeout -k 2 %d %s <%s >%s 2>%s; " ..
    "echo $? >%s) & echo $!"):format(CLEAN_ENV, env or "", limit or 20,
    command_line(args), quote(stdin), quote(base .. ".out"),
    quote(base .. ".err"), quote(base .. ".st"))))
  p:read("*l")
  p:close()
  local status = peers.drive("lua-ws " .. table.concat(args, " "), function()
    local s = read_file(base .. ".st")
    if s:match("\n") then return tonumber(s) end
  end, (limit or 20) + 5)
  local o, e = read_file(base .. ".out"), read_file(base .. ".err")
  for _, suffix in ipairs { "", ".in", ".out", ".err", ".st" } do
    os.remove(base .. suffix)
  end
  return status, o, e
end

-- The "close:" line of the tool's stderr.
local function close_line(err)
  return err:match("close:[^\n]*")
end

-- Our test server: echoes with "echo: " in front, and obeys the node
-- peer's commands ("cmd:close CODE REASON", "cmd:terminate", "cmd:ping
-- DATA", "cmd:raise").
local function our_server(extra)
  local opts = {
    port = 0,
    handler = function(conn)
      for data in conn:messages() do
        local cmd, rest = data:match("^cmd:(%S+) ?(.*)$")
        if cmd == "close" then
          local code, reason = rest:match("^(%d+) ?(.*)$")
          conn:close(tonumber(code), reason)
        elseif cmd == "terminate" then
          conn:abort()
        elseif cmd == "ping" then
          conn:ping(rest)
        elseif cmd == "raise" then
          error("handler failed on purpose")
        else
          conn:send("echo: " .. data)
        end
      end
    end,
  }
  for k, v in pairs(extra or {}) do opts[k] = v end
  local server = assert(ws.listen(opts))
  server:on("error", function() end) -- "raise" is meant
  return server
end

local function url(server, scheme)
  return ("%s://127.0.0.1:%d/"):format(scheme or "ws", server.port)
end

-- A port with nothing listening on it.
local function closed_port()
  local core = require "ws.core"
  local l = assert(core.tcp_listen("127.0.0.1", 0))
  local port = l:port()
  l:close()
  return port
end

setup(ensure_built)

describe("lua-ws: the command line", function()
  it("parses repeatable options in order", function()
    local r = assert(cli.parse { "connect", "ws://h/", "-H", "A: 1",
      "--header=B: 2", "-s", "chat", "-s", "superchat", "-x", "one",
      "-x", "two", "--json" })
    assert.are.same({ "A: 1", "B: 2" }, r.headers)
    assert.are.same({ "chat", "superchat" }, r.protocols)
    assert.are.same({ "one", "two" }, r.execute)
    assert.are.equal("ws://h/", r.url)
    assert.is_true(r.json)
  end)

  it("maps the options onto ws.connect's", function()
    local opts = assert(cli.connect_options(assert(cli.parse { "connect",
      "wss://h/", "-H", "X-Token:  abc ", "--ca", "ca.pem", "--cert", "c.pem",
      "--key", "k.pem", "--origin", "http://o", "--proxy", "http://p:3128" })))
    assert.are.same({ ["X-Token"] = "abc" }, opts.headers)
    assert.are.same({ ca_file = "ca.pem", cert_file = "c.pem",
      key_file = "k.pem", verify = true }, opts.tls)
    assert.are.equal("http://o", opts.origin)
    assert.are.equal("http://p:3128", opts.proxy)
    opts = assert(cli.connect_options(assert(cli.parse { "connect",
      "wss://h/", "--insecure", "--no-proxy" })))
    assert.are.equal(false, opts.tls.verify)
    assert.are.equal(false, opts.proxy)
  end)

  it("refuses a header without a colon", function()
    local _, err = cli.connect_options(assert(cli.parse { "connect", "ws://h/",
      "-H", "nocolon" }))
    assert.are.equal([[connect: -H needs 'Name: value', got "nocolon"]], err)
  end)

  it("writes JSON with escapes, nulls when asked, and base64", function()
    assert.are.equal([[{"a":"x\"y\\\n\u0001","b":1000,"c":true}]],
      cli.json({ "a", "b", "c", "d" }, { a = 'x"y\\\n\1', b = 1000, c = true }))
    assert.are.equal([[{"a":null,"b":0.25}]],
      cli.json({ "a", "b" }, { b = 0.25 }, true))
    assert.are.equal([[{"a":"\u00ff"}]], cli.json({ "a" }, { a = "\255" }))
    assert.are.equal("aGk=", cli.base64("hi"))
    assert.are.equal("AP8A", cli.base64("\0\255\0"))
    assert.are.equal("", cli.base64(""))
  end)

  it("prints help and exits 0", function()
    local status, out = run { "--help" }
    assert.are.equal(0, status)
    assert.truthy(out:find("usage: lua-ws COMMAND", 1, true))
    for _, row in ipairs(cli.STATUS) do
      assert.truthy(out:find(("%2d %-12s"):format(row[1], row[2]), 1, true),
        "row " .. row[1])
    end
    status, out = run { "connect", "--help" }
    assert.are.equal(0, status)
    assert.truthy(out:find("-x, --execute MESSAGE", 1, true))
    status, out = run { "listen", "--help" }
    assert.are.equal(0, status)
    assert.truthy(out:find("--broadcast", 1, true))
  end)

  it("exits 2 with a one-line error on an unknown option", function()
    local status, out, err = run { "connect", "ws://127.0.0.1:1/", "--nope" }
    assert.are.equal(2, status)
    assert.are.equal("", out)
    assert.are.equal("lua-ws: connect: unknown option --nope (try lua-ws "
      .. "connect --help)\n", err)
  end)

  it("exits 2 on an unknown command, a missing URL or value, a bad URL",
    function()
    local status, _, err = run { "frobnicate" }
    assert.are.equal(2, status)
    assert.are.equal("lua-ws: unknown command frobnicate (try lua-ws --help)\n",
      err)
    status, _, err = run { "connect" }
    assert.are.equal(2, status)
    assert.are.equal(1, select(2, err:gsub("\n", "")))
    status, _, err = run { "connect", "ws://127.0.0.1:1/", "-w" }
    assert.are.equal(2, status)
    assert.are.equal("lua-ws: connect: option -w needs a value (SECONDS)\n", err)
    status, _, err = run { "connect", "http://127.0.0.1:1/" }
    assert.are.equal(2, status)
    assert.are.equal(1, select(2, err:gsub("\n", "")))
    status, _, err = run { "connect", "ws://127.0.0.1:1/", "-w", "soon" }
    assert.are.equal(2, status)
    assert.are.equal("lua-ws: connect: -w needs a number of seconds >= 0, "
      .. "got soon\n", err)
  end)
end)

describe("lua-ws explain", function()
  it("explains a code by number", function()
    local status, out = run { "explain", "1006" }
    assert.are.equal(0, status)
    local ex = ws.codes.explain(1006)
    assert.are.equal(("1006 abnormal\nmeaning: %s\ncause: %s\naction: %s\n")
      :format(ex.meaning, ex.cause, ex.action), out)
  end)

  it("explains a code by name, as JSON", function()
    local status, out = run { "explain", "policy_violation", "--json" }
    assert.are.equal(0, status)
    assert.truthy(out:find('^{"code":1008,"name":"policy_violation",'
      .. '"meaning":"Policy violation'))
  end)

  it("exits 1 for a code it has no entry for", function()
    local status, out, err = run { "explain", "2000" }
    assert.are.equal(1, status)
    assert.are.equal("", out)
    assert.truthy(err:find("^lua%-ws: explain: no explanation for 2000"))
  end)
end)

describe("lua-ws connect: exit status by close", function()
  local server, certs, node, python
  setup(function()
    server = our_server()
    certs = peers.certs()
  end)
  teardown(function()
    server:close(1)
    peers.remove_dir(certs)
    if node then node:stop() end
    if python then python:stop() end
  end)
  local function node_server()
    node = node or peers.server("node")
    return node
  end
  local function python_server()
    python = python or peers.server("python")
    return python
  end

  it("0: ours closes cleanly after the -x messages (1000, local)", function()
    local status, out, err = run { "connect", url(server), "-x", "hello",
      "-x", "world", "-w", "0.2" }
    assert.are.equal(0, status)
    assert.are.equal("echo: hello\necho: world\n", out)
    assert.are.equal('close: code=1000 name=normal reason="" clean=true '
      .. "initiator=local error=-", close_line(err))
    assert.truthy(err:find("  meaning: Normal closure", 1, true))
    assert.truthy(err:find("  exit status 0 (normal)", 1, true))
  end)

  it("0: stdin lines are sent; stdin's end closes with 1000", function()
    local status, out = run({ "connect", url(server), "-w", "0.2" },
      "one\ntwo\n")
    assert.are.equal(0, status)
    assert.are.equal("echo: one\necho: two\n", out)
  end)

  it("0: `lua-ws listen` echoes, and prints the close of each connection",
    function()
    local l = peers.start { LUA, "bin/lua-ws", "listen", "0", "--json" }
    local ok, e = pcall(function()
      local first = l:wait_prefix('{"type":"listening"', 10)
      local port = assert(tonumber(first:match('"port":(%d+)')))
      local status, out = run { "connect", "ws://127.0.0.1:" .. port .. "/",
        "-x", "ping me", "-w", "0.2" }
      assert.are.equal(0, status)
      assert.are.equal("ping me\n", out)
      local close = l:wait_prefix('{"type":"close","code":1000,', 10)
      assert.truthy(close:find('"clean":true,"initiator":"remote"', 1, true))
    end)
    l:stop()
    assert(ok, e)
  end)

  it("0: Node ws closes with 1001 going_away", function()
    local status, _, err = run { "connect", node_server().url(),
      "-x", "cmd:close 1001 bye" }
    assert.are.equal(0, status)
    assert.are.equal('close: code=1001 name=going_away reason="bye" '
      .. "clean=true initiator=remote error=-", close_line(err))
  end)

  it("0: python-websockets closes with 1000", function()
    local status, _, err = run { "connect", python_server().url(),
      "-x", "cmd:close 1000 done" }
    assert.are.equal(0, status)
    assert.are.equal('close: code=1000 name=normal reason="done" '
      .. "clean=true initiator=remote error=-", close_line(err))
  end)

  it("1: listen on a port that is taken", function()
    local status, _, err = run { "listen", tostring(server.port) }
    assert.are.equal(1, status)
    assert.truthy(err:find("^lua%-ws: listen: cannot listen on 127%.0%.0%.1 "
      .. "port " .. server.port))
  end)

  it("3: nothing listens on the port (1006 refused)", function()
    local status, _, err = run { "connect", "ws://127.0.0.1:" .. closed_port()
      .. "/" }
    assert.are.equal(3, status)
    assert.are.equal('close: code=1006 name=abnormal reason="" clean=false '
      .. "initiator=transport error=refused", close_line(err))
    assert.truthy(err:find("  exit status 3 (connect)", 1, true))
  end)

  describe("proxies", function()
    local options, schema = require "ws.options", require "ws.schema"
    local supported = schema.field(options.connect.fields, "proxy") ~= nil

    it("3: --proxy names a proxy that is down (error proxy)", function()
      if not supported then return pending("no proxy option yet") end
      local status, _, err = run { "connect", url(server), "--proxy",
        "http://127.0.0.1:" .. closed_port() }
      assert.are.equal(3, status)
      assert.are.equal('close: code=1006 name=abnormal reason="" '
        .. "clean=false initiator=transport error=proxy", close_line(err))
    end)

    it("0: --no-proxy ignores the environment's proxy", function()
      if not supported then return pending("no proxy option yet") end
      local down = "http://127.0.0.1:" .. closed_port()
      local env = ("http_proxy=%s ws_proxy=%s all_proxy=%s "):format(down,
        down, down)
      local status = run({ "connect", url(server), "-x", "x", "-w", "0" },
        nil, nil, env)
      assert.are.equal(3, status)
      status = run({ "connect", url(server), "--no-proxy", "-x", "x",
        "-w", "0" }, nil, nil, env)
      assert.are.equal(0, status)
    end)
  end)

  it("4: our server refuses the handshake with 401", function()
    local s = our_server { authorize = function() return false, 401 end }
    local status, _, err = run { "connect", url(s) }
    s:close(1)
    assert.are.equal(4, status)
    assert.are.equal('close: code=1006 name=abnormal reason="" clean=false '
      .. "initiator=transport error=http http_status=401", close_line(err))
    assert.truthy(err:find("  message: server answered HTTP 401 instead of "
      .. "101", 1, true))
  end)

  it("4: a raw server answers 403, as JSON", function()
    local peer = raw_peer.start(function() end, function()
      return "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"
    end)
    local status, out = run { "connect", "ws://127.0.0.1:" .. peer.port .. "/",
      "--json" }
    peer:wait()
    assert.are.equal(4, status)
    assert.truthy(out:find('^{"type":"close","code":1006,"name":"abnormal",'
      .. '"reason":"","clean":false,"initiator":"transport","error":"http",'
      .. '"http_status":403,'))
    assert.truthy(out:find('"exit_status":4,"status":"handshake"}\n$'))
  end)

  describe("TLS", function()
    local tls_server
    setup(function()
      tls_server = our_server { tls = { cert_file = certs .. "/server.pem",
        key_file = certs .. "/server.key" } }
    end)
    teardown(function() tls_server:close(1) end)

    it("5: the server's certificate is not trusted (1015)", function()
      local status, _, err = run { "connect", url(tls_server, "wss") }
      assert.are.equal(5, status)
      assert.are.equal('close: code=1015 name=tls_handshake reason="" '
        .. "clean=false initiator=transport error=tls", close_line(err))
    end)

    it("0: trusted with --ca", function()
      local status, out = run { "connect", url(tls_server, "wss"), "--ca",
        certs .. "/ca.pem", "-x", "secure", "-w", "0.2" }
      assert.are.equal(0, status)
      assert.are.equal("echo: secure\n", out)
    end)

    it("0: not verified with --insecure", function()
      local status = run { "connect", url(tls_server, "wss"), "--insecure",
        "-x", "x", "-w", "0" }
      assert.are.equal(0, status)
    end)
  end)

  it("6: Node ws drops TCP without a close frame (1006)", function()
    local status, _, err = run { "connect", node_server().url(),
      "-x", "cmd:terminate", "-w", "5" }
    assert.are.equal(6, status)
    assert.are.equal('close: code=1006 name=abnormal reason="" clean=false '
      .. "initiator=transport error=eof", close_line(err))
  end)

  it("6: a raw server drops the connection after the handshake", function()
    local peer = raw_peer.start(function(p) p:read_for(0.3) end)
    local status, _, err = run { "connect", "ws://127.0.0.1:" .. peer.port
      .. "/" }
    peer:wait()
    assert.are.equal(6, status)
    assert.truthy(close_line(err):find("^close: code=1006 name=abnormal "))
  end)

  it("7: a raw server sends a frame with a reserved opcode (1002)", function()
    local peer = raw_peer.start(function(p)
      p:write(p.frame(3, "x"))
      p:read_for(1)
    end)
    local status, _, err = run { "connect", "ws://127.0.0.1:" .. peer.port
      .. "/" }
    peer:wait()
    assert.are.equal(7, status)
    -- the raw peer never answers our close frame: not clean
    assert.are.equal('close: code=1002 name=protocol_error reason="" '
      .. "clean=false initiator=local error=protocol:reserved_opcode",
      close_line(err))
    assert.truthy(err:find("  exit status 7 (protocol)", 1, true))
  end)

  it("7: python-websockets closes with 1007", function()
    local status, _, err = run { "connect", python_server().url(),
      "-x", "cmd:close 1007 bad text" }
    assert.are.equal(7, status)
    assert.are.equal('close: code=1007 name=invalid_payload reason="bad text" '
      .. "clean=true initiator=remote error=-", close_line(err))
  end)

  it("7: Node ws closes with 1009", function()
    local status = run { "connect", node_server().url(),
      "-x", "cmd:close 1009 too big" }
    assert.are.equal(7, status)
  end)

  it("8: python-websockets closes with 1008 policy_violation", function()
    local status, _, err = run { "connect", python_server().url(),
      "-x", "cmd:close 1008 go away" }
    assert.are.equal(8, status)
    assert.truthy(err:find("  meaning: Policy violation", 1, true))
  end)

  it("9: our server's handler raises (1011 internal_error)", function()
    local status, _, err = run { "connect", url(server), "-x", "cmd:raise" }
    assert.are.equal(9, status)
    assert.are.equal('close: code=1011 name=internal_error reason="" '
      .. "clean=true initiator=remote error=-", close_line(err))
  end)

  it("10: Node ws closes with the application code 4000", function()
    local status, out, err = run { "connect", node_server().url(),
      "-x", "cmd:close 4000 bye" }
    assert.are.equal(10, status)
    assert.are.equal("", out)
    assert.are.equal('close: code=4000 name=- reason="bye" clean=true '
      .. "initiator=remote error=-", close_line(err))
    assert.truthy(err:find("  meaning: A private application code", 1, true))
  end)

  it("11: Node ws closes with no code (1005 no_status)", function()
    local status, _, err = run { "connect", node_server().url(),
      "-x", "cmd:close" }
    assert.are.equal(11, status)
    assert.are.equal('close: code=1005 name=no_status reason="" clean=true '
      .. "initiator=remote error=-", close_line(err))
  end)

  it("maps every close kind onto the documented table", function()
    local function s(ev, opened) return (cli.status(ev, opened)) end
    assert.are.equal(0, s({ code = 1000, clean = true }, true))
    assert.are.equal(0, s({ code = 1001, clean = true }, true))
    assert.are.equal(11, s({ code = 1000, clean = false }, true))
    assert.are.equal(3, s({ code = 1006, error = "dns" }, false))
    assert.are.equal(3, s({ code = 1006, error = "timeout" }, false))
    assert.are.equal(3, s({ code = 1006, error = "proxy",
      http_status = 407 }, false))
    assert.are.equal(4, s({ code = 1006, error = "handshake" }, false))
    assert.are.equal(4, s({ code = 1006, error = "extension" }, false))
    assert.are.equal(5, s({ code = 1015, error = "tls" }, false))
    assert.are.equal(6, s({ code = 1006, error = "heartbeat_timeout" }, true))
    for _, c in ipairs { 1002, 1003, 1007, 1009, 1010 } do
      assert.are.equal(7, s({ code = c, clean = true }, true), c)
    end
    assert.are.equal(8, s({ code = 1008, clean = true }, true))
    for _, c in ipairs { 1011, 1012, 1013, 1014 } do
      assert.are.equal(9, s({ code = c, clean = true }, true), c)
    end
    assert.are.equal(10, s({ code = 3000, clean = true }, true))
    assert.are.equal(10, s({ code = 4999, clean = true }, true))
    assert.are.equal(11, s({ code = 1005, clean = true }, true))
  end)
end)

describe("lua-ws connect --json", function()
  local server
  setup(function() server = our_server() end)
  teardown(function() server:close(1) end)

  it("prints open, messages, pings and the close as JSON lines", function()
    local status, out, err = run { "connect", url(server), "--json",
      "-x", "cmd:ping are you there", "-x", "hi", "-w", "0.3" }
    assert.are.equal(0, status)
    assert.are.equal("", err)
    local lines = {}
    for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.are.equal(('{"type":"open","url":"%s","extensions":""}')
      :format(url(server)), lines[1])
    assert.are.equal('{"type":"ping","data":"are you there"}', lines[2])
    assert.are.equal('{"type":"message","kind":"text","data":"echo: hi"}',
      lines[3])
    assert.truthy(lines[4]:find('^{"type":"close","code":1000,'))
    assert.are.equal(4, #lines)
  end)

  it("prints binary messages in base64", function()
    local status, out = run { "connect", url(server), "--json", "--binary",
      "-x", "\1\2",
      "-w", "0.3" }
    assert.are.equal(0, status)
    -- ours answers binary with text "echo: \1\2": not valid as a JSON
    -- string unless escaped
    assert.truthy(out:find('{"type":"message","kind":"text",'
      .. '"data":"echo: \\u0001\\u0002"}', 1, true))
  end)
end)

describe("lua-ws connect in a terminal", function()
  local server, session, socket, seq = nil, nil, nil, 0
  -- each test has a tmux server of its own (-S: its own socket), run
  -- without the sanitizer runtime, and killed after the test
  local function tmux(args)
    local r = os.execute(CLEAN_ENV .. "tmux -S " .. quote(socket) .. " "
      .. args .. " 2>/dev/null")
    return r == true or r == 0
  end
  before_each(function()
    server = our_server()
    seq = seq + 1
    session = ("lua-ws-cli-%d"):format(seq)
    socket = os.tmpname()
    os.remove(socket)
  end)
  after_each(function()
    tmux("kill-server")
    os.remove(socket)
    server:close(1)
  end)

  local function start_terminal(args)
    local cmd = command_line(args) .. "; echo EXIT=$?; sleep 30"
    assert(tmux(("new-session -d -s %s -x 200 -y 50 %s")
      :format(session, quote(cmd))))
  end
  local function screen()
    local p = assert(io.popen(CLEAN_ENV .. "tmux -S " .. quote(socket)
      .. " capture-pane -p -t " .. session .. " 2>/dev/null"))
    local s = p:read("*a")
    p:close()
    return s
  end
  local function wait_screen(pattern, limit)
    return peers.drive(("%q on the terminal"):format(pattern), function()
      local s = screen()
      if s:find(pattern) then return s end
    end, limit or 10)
  end
  local function keys(...)
    local t = {}
    for i = 1, select("#", ...) do t[i] = quote((select(i, ...))) end
    assert(tmux("send-keys -t " .. session .. " " .. table.concat(t, " ")))
  end

  it("sends typed lines and shows the answers and pings; exits with the "
    .. "close", function()
    start_terminal { "connect", url(server) }
    wait_screen("connected: ws://127%.0%.0%.1:%d+/ %(protocol none%)")
    keys("hello there", "Enter")
    wait_screen("\necho: hello there\n")
    keys("cmd:ping knock knock", "Enter")
    wait_screen("\nping: knock knock\n")
    keys("cmd:close 4000 bye", "Enter")
    local s = wait_screen("\nEXIT=%d+")
    assert.truthy(s:find('\nclose: code=4000 name=- reason="bye" clean=true '
      .. "initiator=remote error=-\n", 1, true))
    assert.truthy(s:find("\n  exit status 10 (application)\n", 1, true))
    assert.truthy(s:find("\nEXIT=10\n", 1, true))
  end)

  it("closes with 1000 and exits 0 on Ctrl-D", function()
    start_terminal { "connect", url(server), "-w", "0" }
    wait_screen("connected: ")
    keys("C-d")
    local s = wait_screen("\nEXIT=%d+")
    assert.truthy(s:find('\nclose: code=1000 name=normal reason="" clean=true '
      .. "initiator=local error=-\n", 1, true))
    assert.truthy(s:find("\nEXIT=0\n", 1, true))
  end)

  it("shows the pongs of --ping-interval", function()
    start_terminal { "connect", url(server), "--ping-interval", "0.2" }
    wait_screen("\nsent ping: lua%-ws 1\n")
    wait_screen("\npong: lua%-ws 1\n")
    keys("C-d")
    wait_screen("\nEXIT=0\n")
  end)
end)

describe("lua-ws listen", function()
  local function start_listen(args)
    local l = peers.start(args)
    local first = l:wait_prefix('{"type":"listening"', 10)
    l.port = assert(tonumber(first:match('"port":(%d+)')))
    return l
  end

  it("--print prints messages and answers nothing", function()
    local l = start_listen { LUA, "bin/lua-ws", "listen", "0", "--print",
      "--json" }
    local ok, e = pcall(function()
      local status, out = run { "connect", "ws://127.0.0.1:" .. l.port .. "/",
        "-x", "note this", "-w", "0.2" }
      assert.are.equal(0, status)
      assert.are.equal("", out)
      local m = l:wait_prefix('{"type":"message","kind":"text","data":'
        .. '"note this","peer":"127.0.0.1:', 10)
      assert.truthy(m:match('^%d+"}$'))
    end)
    l:stop()
    assert(ok, e)
  end)

  it("--broadcast sends each message to every client", function()
    local l = start_listen { LUA, "bin/lua-ws", "listen", "0", "--broadcast",
      "--json", "-s", "chat" }
    local ok, e = pcall(function()
      local a = assert(ws.connect("ws://127.0.0.1:" .. l.port .. "/",
        { protocols = { "chat" } }))
      local b = assert(ws.connect("ws://127.0.0.1:" .. l.port .. "/"))
      assert.are.equal("chat", a.protocol)
      l:wait_prefix('{"type":"open","peer":"127.0.0.1:', 5)
      a:send("to all")
      assert.are.equal("to all", (a:receive(5)))
      assert.are.equal("to all", (b:receive(5)))
      a:close()
      b:close()
    end)
    l:stop()
    assert(ok, e)
  end)

  it("serves wss:// with --tls-cert and --tls-key", function()
    local certs = peers.certs()
    local l = start_listen { LUA, "bin/lua-ws", "listen", "0", "--json",
      "--tls-cert", certs .. "/server.pem", "--tls-key", certs .. "/server.key" }
    local ok, e = pcall(function()
      local status, out = run { "connect", "wss://127.0.0.1:" .. l.port .. "/",
        "--ca", certs .. "/ca.pem", "-x", "over tls", "-w", "0.2" }
      assert.are.equal(0, status)
      assert.are.equal("over tls\n", out)
    end)
    l:stop()
    peers.remove_dir(certs)
    assert(ok, e)
  end)

  it("exits 2 on two modes at once", function()
    local status, _, err = run { "listen", "0", "--echo", "--print" }
    assert.are.equal(2, status)
    assert.are.equal("lua-ws: listen: --echo, --broadcast and --print "
      .. "exclude each other\n", err)
  end)
end)
