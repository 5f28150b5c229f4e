-- Streaming messages on connections (the `stream` option, receive{ partial
-- = true }, send_part), over real loopback sockets against our own server
-- and client and a raw peer that writes exact frames.
local ws = require "ws"
local wire = require "support.wire"
local raw_peer = require "support.raw_peer"
local drive = require "support.drive"

local function url(port) return "ws://127.0.0.1:" .. port .. "/" end

-- Parts until the one with fin (bounded): the list of { data, kind, fin }.
local function parts_of(conn, limit)
  local out = {}
  for _ = 1, limit or 10000 do
    local data, kind, fin = conn:receive{ partial = true, timeout = 5 }
    assert(data, kind)
    out[#out + 1] = { data, kind, fin }
    if fin then return out end
  end
  error("no last part")
end

local function joined(parts)
  local t = {}
  for i, p in ipairs(parts) do t[i] = p[1] end
  return table.concat(t)
end

-- Every part but the last has fin false; all have `kind`.
local function assert_shape(parts, kind)
  for i, p in ipairs(parts) do
    assert.are.equal(kind, p[2])
    assert.are.equal(i == #parts, p[3])
  end
end

-- A server whose handler is `fn(conn)`; closed by the caller.
local function server(fn, opts)
  opts = opts or {}
  opts.port, opts.host = 0, "127.0.0.1"
  opts.handler = fn
  return assert(ws.listen(opts))
end

describe("receiving in parts", function()
  it("gives a message sent in parts as parts, then whole messages as one", function()
    local s = server(function(conn)
      conn:send_part("ab", "text", false)
      conn:send_part("cd", nil, false)
      conn:send_part("ef", nil, true)
      conn:send("whole", "binary")
      conn:receive(5)
    end)
    local c = assert(ws.connect(url(s.port), { stream = true }))
    local parts = parts_of(c)
    assert.are.equal("abcdef", joined(parts))
    assert_shape(parts, "text")
    parts = parts_of(c)
    assert.are.equal("whole", joined(parts))
    assert_shape(parts, "binary")
    c:close()
    s:close(1)
  end)

  it("gives each whole message as one part with fin on a connection without stream", function()
    local s = server(function(conn)
      conn:send_part("ab", "binary", false)
      conn:send_part("cd", nil, true)
      conn:send("", "text")
      conn:receive(5)
    end)
    local c = assert(ws.connect(url(s.port)))
    assert.are.same({ "abcd", "binary", true },
      { c:receive{ partial = true, timeout = 5 } })
    assert.are.same({ "", "text", true },
      { c:receive{ partial = true, timeout = 5 } })
    c:close()
    s:close(1)
  end)

  it("still gives whole messages to receive(), messages() and handlers", function()
    local big = ("0123456789"):rep(30000) -- 300 KB, larger than the inbox
    local s = server(function(conn)
      for i = 1, #big, 10000 do
        conn:send_part(big:sub(i, i + 9999), "binary", i + 10000 > #big)
      end
      conn:send("two", "text")
      conn:send("three", "text")
      conn:receive(5)
    end)
    local c = assert(ws.connect(url(s.port), { stream = true,
      inbox_max_bytes = 65536 }))
    assert.are.same({ big, "binary" }, { c:receive(5) })
    local got = {}
    local h = ws.connect(url(s.port), { stream = true })
    h:on("message", function(_, data, kind) got[#got + 1] = { #data, kind } end)
    drive.until_true(function() return #got == 3 end, 5)
    assert.are.same({ { #big, "binary" }, { 3, "text" }, { 5, "text" } }, got)
    for data in c:messages() do
      assert.are.equal("two", data)
      break
    end
    c:close()
    h:close()
    s:close(1)
  end)

  it("joins text whose characters straddle parts", function()
    local s = server(function(conn)
      conn:send_part("a\xC3", "text", false)        -- é cut after its lead byte
      conn:send_part("\xA9\xE2\x82", nil, false)     -- € cut inside
      conn:send_part("\xAC\xF0\x9F", nil, false)     -- 😀 cut in half
      conn:send_part("\x98\x80", nil, true)
      conn:send_part("\xE2\x82", "text", false)
      conn:send_part("\xAC", nil, true)
      conn:receive(5)
    end)
    local c = assert(ws.connect(url(s.port), { stream = true }))
    local parts = parts_of(c)
    assert.are.equal("aé€😀", joined(parts))
    assert_shape(parts, "text")
    assert.are.same({ "€", "text" }, { c:receive(5) })
    c:close()
    s:close(1)
  end)

  it("raises on receive() while a message is half read in parts", function()
    local s = server(function(conn)
      conn:send_part("ab", "text", false)
      ws.sleep(0.3)
      conn:send_part("cd", nil, true)
      conn:receive(5)
    end)
    local c = assert(ws.connect(url(s.port), { stream = true }))
    assert.are.same({ "ab", "text", false },
      { c:receive{ partial = true, timeout = 5 } })
    assert.error_matches(function() c:receive(1) end,
      "cannot receive a whole message: one is half read in parts "
        .. "(call receive{ partial = true } until its last part)", nil, true)
    assert.are.same({ "cd", "text", true },
      { c:receive{ partial = true, timeout = 5 } })
    c:close()
    s:close(1)
  end)

  it("times out, keeping what a whole receive() had joined", function()
    local s = server(function(conn)
      conn:send_part("ab", "text", false)
      ws.sleep(0.5)
      conn:send_part("cd", nil, true)
      conn:receive(5)
    end)
    local c = assert(ws.connect(url(s.port), { stream = true }))
    assert.are.same({ nil, "timeout" }, { c:receive(0.2) })
    assert.are.same({ "abcd", "text" }, { c:receive(5) })
    c:close()
    s:close(1)
  end)

  it("fails with 1007 on invalid UTF-8 mid-message, after the valid parts", function()
    local peer = raw_peer.start(function(p)
      p:write(p.frame(1, "good", false))
      ws.sleep(0.2)
      p:write(p.frame(0, "ba\xFFd", true))
      p:read_for(0.5)
    end)
    local c = assert(ws.connect(url(peer.port), { stream = true }))
    assert.are.same({ "good", "text", false },
      { c:receive{ partial = true, timeout = 5 } })
    local data, err, ev = c:receive{ partial = true, timeout = 5 }
    assert.are.same({ nil, "closed" }, { data, err })
    assert.are.same({ 1007, "protocol:invalid_utf8", "local" },
      { ev.code, ev.error, ev.initiator })
    peer:wait()
    local frames = wire.parse(peer.received)
    assert.are.same({ 8, wire.close_payload(1007, "protocol:invalid_utf8") },
      { frames[#frames].opcode, frames[#frames].payload })
  end)

  it("fails with 1009 when the parts pass max_message_size", function()
    local peer = raw_peer.start(function(p)
      p:write(p.frame(2, "123456", false))
      ws.sleep(0.2)
      p:write(p.frame(0, "789012", true))
      p:read_for(0.5)
    end)
    local c = assert(ws.connect(url(peer.port), { stream = true,
      max_message_size = 10 }))
    assert.are.same({ "123456", "binary", false },
      { c:receive{ partial = true, timeout = 5 } })
    local _, err, ev = c:receive{ partial = true, timeout = 5 }
    assert.are.equal("closed", err)
    assert.are.same({ 1009, "protocol:message_too_big" }, { ev.code, ev.error })
    peer:wait()
  end)

  for _, deflate in ipairs({ true, false }) do
    it("streams a 4 MiB message in bounded parts, deflate " .. tostring(deflate), function()
      local block = ("lua-ws streams %08d "):rep(64)
      local t = {}
      for i = 1, 4 * 2 ^ 20 / #block do t[i] = block end
      local msg = table.concat(t):sub(1, 4 * 2 ^ 20)
      local s = server(function(conn)
        for i = 1, #msg, 300000 do
          assert(conn:send_part(msg:sub(i, i + 299999), "text",
            i + 300000 > #msg))
        end
        conn:receive(5)
      end, { deflate = deflate })
      local c = assert(ws.connect(url(s.port), { stream = true,
        deflate = deflate }))
      assert.are.equal(deflate, c.extensions["permessage-deflate"] ~= nil)
      local parts = parts_of(c, 100000)
      assert.is_true(joined(parts) == msg)
      assert_shape(parts, "text")
      local largest = 0
      for _, p in ipairs(parts) do largest = math.max(largest, #p[1]) end
      -- a read's worth (64 KiB) plain; 16 KiB (+ a held-back match) inflated
      assert.is_true(largest <= (deflate and 16384 + 258 or 65536), largest)
      assert.is_true(#parts >= #msg / 65536)
      c:close()
      s:close(1)
    end)
  end
end)

describe("sending in parts", function()
  it("refuses bad arguments, naming them", function()
    local s = server(function(conn) conn:receive(5) end)
    local c = assert(ws.connect(url(s.port)))
    assert.error_matches(function() c:send_part(1) end,
      "bad argument #1 to 'send_part' (string expected, got number)", nil, true)
    assert.error_matches(function() c:send_part("x", "json") end,
      "bad argument #2 to 'send_part' (\"text\" or \"binary\" expected, got \"json\")",
      nil, true)
    assert.error_matches(function() c:send_part("x", "text", 1) end,
      "bad argument #3 to 'send_part' (boolean expected, got number)", nil, true)
    assert.error_matches(function() c:send_part("x", "text", true, { fragment = 2 }) end,
      "bad argument #4 to 'send_part' (unknown option 'fragment')", nil, true)
    assert.error_matches(function() c:send_part("x", "text", true, { timeout = -1 }) end,
      "bad argument #4 to 'send_part' (option 'timeout': positive number expected, got -1)",
      nil, true)
    assert.error_matches(function() c:receive{ partial = "yes" } end,
      "bad argument #1 to 'receive' (option 'partial': boolean expected, got string)",
      nil, true)
    assert.error_matches(function() c:receive(true) end,
      "bad argument #1 to 'receive' (number or table expected, got boolean)",
      nil, true)
    assert.is_true(c:send_part("x", "binary"))
    assert.error_matches(function() c:send_part("y", "text") end,
      "bad argument #2 to 'send_part' (the message being sent is binary)",
      nil, true)
    c:abort()
    s:close(1)
  end)

  it("holds other messages back while a part message is open", function()
    local got
    local s = server(function(conn)
      got = { conn:receive(5) }
      got[3] = conn:receive(5)
    end)
    local c = assert(ws.connect(url(s.port)))
    assert.is_true(c:send_part("he", "text"))
    assert.are.same({ nil, "a message is being sent in parts: end it with "
      .. "send_part(data, kind, true) first" }, { c:send("other") })
    assert.are.same({ nil, "text is not valid UTF-8" },
      { c:send_part("\xFF", nil, true) })
    assert.is_true(c:send_part("llo", nil, true))
    assert.is_true(c:send("other"))
    drive.until_true(function() return got and got[3] end, 5)
    assert.are.same({ "hello", "text", "other" }, got)
    c:close()
    assert.are.same({ nil, "closed" }, { c:send_part("x") })
    s:close(1)
  end)

  it("sends the chunks a function returns as one message", function()
    local got = {}
    local s = server(function(conn)
      for data, kind in conn:messages() do got[#got + 1] = { data, kind } end
    end)
    local c = assert(ws.connect(url(s.port)))
    local i = 0
    assert.is_true(c:send(function()
      i = i + 1
      if i <= 3 then return ("chunk%d "):format(i) end
    end, "binary"))
    assert.is_true(c:send(function() return nil end))
    assert.error_matches(function() c:send(function() return 5 end) end,
      "bad argument #1 to 'send' (the function returned a number: string or nil expected)",
      nil, true)
    assert.error_matches(function()
      c:send(function() end, "text", { fragment = 2 })
    end, "bad argument #3 to 'send' (option 'fragment' does not apply to a "
      .. "function: each chunk is a frame)", nil, true)
    assert.is_true(c:send("after"))
    drive.until_true(function() return #got == 3 end, 5)
    assert.are.same({ { "chunk1 chunk2 chunk3 ", "binary" }, { "", "text" },
      { "after", "text" } }, got)
    c:close()
    s:close(1)
  end)

  it("lists parts never written in the close event's unsent, with fin", function()
    local peer = raw_peer.start(function() ws.sleep(1) end) -- never reads
    local c = assert(ws.connect(url(peer.port), { max_buffered = 65536 }))
    local part = ("x"):rep(65536)
    local accepted = 0
    for i = 1, 400 do
      if not c:send_part(part .. i, "binary", false, { timeout = 0.1 }) then
        break
      end
      accepted = i
    end
    assert.is_true(accepted > 0 and accepted < 400)
    local ev = c:abort()
    local unsent = ev.unsent
    assert.is_true(#unsent > 0)
    for k, u in ipairs(unsent) do
      assert.are.same({ "binary", true, false }, { u.kind, u.part, u.fin })
      assert.are.equal(part .. (accepted - #unsent + k), u.data)
    end
    peer:wait()
  end)
end)

-- The child runs the plain build without the sanitizers `make test` loads
-- into this process (their quarantine alone would hold freed parts).
local CHILD_ENV = "env -u LD_PRELOAD -u ASAN_OPTIONS -u UBSAN_OPTIONS "

describe("a 1 GiB message streamed through our client and server", function()
  it("keeps the process under 100 MiB of peak RSS", function()
    local cmd = CHILD_ENV .. "LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' "
      .. "LUA_CPATH='./build/5.4/?.so;;' lua5.4 spec/support/stream_gib.lua"
    local f = assert(io.popen(cmd .. " 2>&1"))
    local out = f:read("*a")
    f:close()
    local bytes, parts, fin, kind, bad, hwm = out:match(
      "^bytes (%d+) parts (%d+) fin (%a+) kind (%a+) bad (%d+) hwm_kib (%d+)")
    assert(bytes, out)
    assert.are.same({ "1073741824", "true", "binary", "0" },
      { bytes, fin, kind, bad })
    assert.is_true(tonumber(parts) >= 16384, parts)
    assert.is_true(tonumber(hwm) < 100 * 1024, "VmHWM " .. hwm .. " KiB")
  end)

  it("and 256 MiB compressed 1000:1 the same", function()
    local cmd = CHILD_ENV .. "LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' "
      .. "LUA_CPATH='./build/5.4/?.so;;' lua5.4 spec/support/stream_gib.lua "
      .. "268435456 deflate"
    local f = assert(io.popen(cmd .. " 2>&1"))
    local out = f:read("*a")
    f:close()
    local bytes, _, fin, _, bad, hwm = out:match(
      "^bytes (%d+) parts (%d+) fin (%a+) kind (%a+) bad (%d+) hwm_kib (%d+)")
    assert(bytes, out)
    assert.are.same({ "268435456", "true", "0" }, { bytes, fin, bad })
    assert.is_true(tonumber(hwm) < 100 * 1024, "VmHWM " .. hwm .. " KiB")
  end)
end)

describe("against Node ws", function()
  local peers = require "interop.peers"
  local SIZE = 128 * 2 ^ 20

  it("receives its big fragmented and single-frame messages in parts, and send_part's message arrives whole, in under 64 MiB", function()
    local node = peers.start({ "node", "spec/interop/node_stream.js",
      ("%d"):format(SIZE) })
    local port = peers.drive("node_stream.js to listen", function()
      local first = node:lines()[1]
      return first and assert(tonumber(first:match("^PORT (%d+)$")), first)
    end, 15)
    local f = assert(io.popen(CHILD_ENV .. "LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' "
      .. "LUA_CPATH='./build/5.4/?.so;;' lua5.4 spec/support/stream_node.lua "
      .. port .. " " .. ("%d"):format(SIZE) .. " 2>&1"))
    local out = f:read("*a")
    f:close()
    node:stop()
    local lines = {}
    for line in out:gmatch("[^\n]+") do lines[#lines + 1] = line end
    assert.are.equal(4, #lines, out)
    -- a message bigger than the limit below, so none was held whole
    for i = 1, 2 do
      local bytes, parts, fin, kind, bad = lines[i]:match(
        "^msg (%d+) (%d+) (%a+) (%a+) (%d+)$")
      assert.are.same({ ("%d"):format(SIZE), "true", "binary", "0" },
        { bytes, fin, kind, bad }, out)
      assert.is_true(tonumber(parts) >= SIZE / 65536, out)
    end
    assert.is_truthy(lines[3]:match("^node ok " .. ("%d"):format(SIZE)
      .. " %x+$"), out)
    local hwm = tonumber(lines[4]:match("^hwm_kib (%d+)$"))
    assert.is_true(hwm < 64 * 1024, "VmHWM " .. tostring(hwm) .. " KiB")
  end)
end)

describe("inside nginx (ws.resty)", function()
  local nginx = require "support.nginx"

  it("streams a message each way with stream = true", function()
    if not nginx.available() then
      error("nginx with lua-nginx-module is not installed: run .ci/deps.sh nginx")
    end
    local server = nginx.start([[
      location = /stream {
        content_by_lua_block { require("support.resty_stream_app").serve() }
      }
    ]])
    local ok, err = pcall(function()
      local size = 8 * 2 ^ 20
      local chunk = ("0123456789abcdef"):rep(4096)
      local c = assert(ws.connect(server:url("/stream"), { stream = true,
        max_message_size = size }))
      for i = 1, size / #chunk do
        assert(c:send_part(chunk, "binary", i == size / #chunk))
      end
      local reply, kind = c:receive(10)
      assert.are.equal("text", kind)
      -- nginx read it in parts (how many depends on its reads), all in place
      local bytes, nparts, bad = reply:match("^got (%d+) (%d+) (%d+)$")
      assert.are.same({ ("%d"):format(size), "0" }, { bytes, bad }, reply)
      assert.is_true(tonumber(nparts) > 1, reply)
      local parts = parts_of(c, 100000)
      assert.are.equal(size, #joined(parts))
      assert.is_true(joined(parts) == chunk:rep(size / #chunk))
      assert_shape(parts, "binary")
      assert.is_true(#parts >= size / 65536)
      c:close()
    end)
    local log = server:error_log()
    server:stop()
    if not ok then error(err, 0) end
    assert.is_nil(log:match("[^\n]*runtime error[^\n]*"))
  end)
end)

describe("a 60 Hz frame loop (ws.step(0) once a frame)", function()
  local FRAME = 1 / 60

  -- Run up to n frames, calling each(frame) after ws.step(0); returns the
  -- frame at which each returned true, and the longest ws.step(0).
  local function frames(n, each)
    local longest, next_frame = 0, ws.now()
    for f = 1, n do
      local t0 = ws.now()
      ws.step(0)
      longest = math.max(longest, ws.now() - t0)
      if each(f) then return f, longest end
      next_frame = next_frame + FRAME
      while ws.now() < next_frame do end
    end
    return nil, longest
  end

  it("gets a streamed message whole in a handler, and in parts by polling", function()
    local big = ("frame-loop "):rep(200000) -- 2.2 MB
    local s = server(function(conn)
      for i = 1, #big, 65536 do
        assert(conn:send_part(big:sub(i, i + 65535), "binary", i + 65536 > #big))
      end
      conn:receive(10)
    end)
    local client = ws.client(url(s.port), { stream = true })
    assert.is_true(client._connect_opts.stream)
    local got
    client:on("message", function(_, data, kind) got = { data, kind } end)
    local at, longest = frames(300, function() return got ~= nil end)
    assert.is_number(at)
    assert.are.equal("binary", got[2])
    assert.is_true(got[1] == big)
    assert.is_true(longest < 0.1, "a step took " .. longest .. " s")
    client:close()

    -- polling parts each frame with a zero timeout, never waiting
    local conn = assert(ws.connect(url(s.port), { stream = true }))
    local parts = {}
    at, longest = frames(300, function()
      for _ = 1, 100 do
        local data, kind, fin = conn:receive{ partial = true, timeout = 0 }
        if not data then return false end
        parts[#parts + 1] = { data, kind, fin }
        if fin then return true end
      end
    end)
    assert.is_number(at)
    assert.is_true(joined(parts) == big)
    assert_shape(parts, "binary")
    assert.is_true(longest < 0.1, "a step took " .. longest .. " s")
    conn:close()
    s:close(1)
  end)
end)
