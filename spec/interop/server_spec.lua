-- Real clients against our server (ws.listen): Node `ws` and Python
-- `websockets` (spec/interop/node_client.js, py_client.py). Our server
-- runs in this process, driven by ws.step while we wait for the client's
-- results; it echoes, obeys "cmd:" text messages and records what it saw
-- per request path. Loopback only; every wait is bounded.
local ws = require "ws"
local peers = require "interop.peers"

local SIZES = { 0, 125, 126, 65535, 65536, 16 * 1024 * 1024 }

-- Which shared payload a message is, checked byte for byte.
local function classify(data, kind)
  local n = #data
  if data == peers.payload(kind == "binary" and "binary" or "text", n) then
    return kind .. " " .. n .. " pattern"
  end
  local sample = #peers.UTF8_SAMPLE
  if n % sample == 0 and data == peers.payload("utf8", n / sample) then
    return kind .. " " .. n .. " utf8-pattern"
  end
  return kind .. " " .. n .. " other"
end

local function summary(ev)
  return {
    code = ev.code, name = ev.name, reason = ev.reason, clean = ev.clean,
    initiator = ev.initiator, error = ev.error, sent = ev.sent,
    received = ev.received,
  }
end

local function words(text)
  local t = {}
  for w in text:gmatch("%S+") do t[#t + 1] = w end
  return t
end

-- The handler of our server: records into seen[path] the messages (as
-- classify describes them, commands verbatim), the subprotocol and the
-- close event; echoes everything else.
local function make_handler(seen)
  return function(conn, request)
    local rec = { protocol = conn.protocol or "-", messages = {} }
    seen[request.path] = rec
    for data, kind in conn:messages() do
      if kind == "text" and data:sub(1, 4) == "cmd:" then
        rec.messages[#rec.messages + 1] = data
        local w = words(data:sub(5))
        if w[1] == "close" then
          conn:close(tonumber(w[2]), data:match("^cmd:close %d+ ?(.*)$"))
        elseif w[1] == "ping" then
          local payload = data:match("^cmd:ping (.*)$")
          local rtt, err = conn:ping(payload, 5)
          conn:send("pinged " .. payload .. " "
            .. (type(rtt) == "number" and "ok" or tostring(err)))
        end
      else
        rec.messages[#rec.messages + 1] = classify(data, kind)
        conn:send(data, kind)
      end
    end
    rec.close = summary(conn.close_event)
  end
end

for _, impl in ipairs({ "node", "python" }) do
  describe("a " .. impl .. " client against our server", function()
    local server
    local seen = {}
    local count = 0

    lazy_setup(function()
      server = assert(ws.listen({ host = "127.0.0.1", port = 0,
        protocols = { "chat" }, handler = make_handler(seen) }))
    end)

    lazy_teardown(function()
      if server then server:close(2) end
    end)

    -- Run the client with these steps on a new path; returns its result
    -- lines and what our server recorded once its handler finished.
    local function run(steps, opts)
      count = count + 1
      local path = "/" .. impl .. "-" .. count
      local lines = peers.run_client(impl, ("ws://127.0.0.1:%d%s")
        :format(server.port, path), steps, opts)
      local rec = peers.drive("our handler for " .. path, function()
        local r = seen[path]
        if r and r.close then return r end
      end, 10)
      return lines, rec
    end

    it("accepts the client's subprotocol and echoes its text", function()
      local lines, rec = run({ "send hello", "recv" }, { protocol = "chat" })
      assert.are.same({ "recv text 5 hello" }, lines)
      assert.are.equal("chat", rec.protocol)
      assert.are.same({ "text 5 other" }, rec.messages)
    end)

    for _, size in ipairs(SIZES) do
      it(("echoes %d-byte text and binary messages byte for byte")
          :format(size), function()
        local lines, rec = run({
          ("echo text %d"):format(size), ("echo binary %d"):format(size) },
          { timeout = 60 })
        assert.are.same({
          ("echo text %d: text %d ok"):format(size, size),
          ("echo binary %d: binary %d ok"):format(size, size),
        }, lines)
        assert.are.same({
          ("text %d pattern"):format(size),
          ("binary %d pattern"):format(size),
        }, rec.messages)
      end)
    end

    it("echoes text of 1- to 4-byte UTF-8 sequences", function()
      local lines, rec = run({ "echo utf8 3000" })
      assert.are.same({ "echo utf8 3000: text 69000 ok" }, lines)
      assert.are.same({ "text 69000 utf8-pattern" }, rec.messages)
    end)

    it("reassembles fragmented messages from the client", function()
      -- node splits text by bytes, inside characters; websockets by
      -- characters
      local lines, rec = run({ "fragment utf8 100 7",
        "fragment binary 65536 16", "fragment text 0 3" })
      assert.are.same({
        "fragment utf8 100 7: text 2300 ok",
        "fragment binary 65536 16: binary 65536 ok",
        "fragment text 0 3: text 0 ok",
      }, lines)
      assert.are.same({ "text 2300 utf8-pattern", "binary 65536 pattern",
        "text 0 pattern" }, rec.messages)
    end)

    it("answers the client's ping with a pong carrying its payload",
        function()
      local lines = run({ "ping hello there" })
      assert.are.same({ "pong hello there" }, lines)
    end)

    it("pings the client and gets its pong", function()
      local lines = run({ "send cmd:ping from lua", "recv" })
      assert.are.same({ "got-ping from lua", "recv text 18 pinged from lua ok" },
        lines)
    end)

    it("reports the client's close code and reason in its close event",
        function()
      local lines, rec = run({ "close 4003 client bye" })
      -- the client reports the close frame it got back: our reply
      assert.are.same({ "closed 4003 " }, lines)
      assert.are.same({
        code = 4003, reason = "client bye", clean = true,
        initiator = "remote",
        sent = { code = 4003, reason = "" },
        received = { code = 4003, reason = "client bye" },
      }, rec.close)
    end)

    it("closes with a code and reason the client receives", function()
      local lines, rec = run({ "send cmd:close 4004 server bye",
        "wait-close" })
      assert.are.same({ "closed 4004 server bye" }, lines)
      assert.are.same({
        code = 4004, reason = "server bye", clean = true, initiator = "local",
        sent = { code = 4004, reason = "server bye" },
        -- both peers echo the reason in their reply
        received = { code = 4004, reason = "server bye" },
      }, rec.close)
    end)

    it("closes with 1000 normal when the client closes without a reason",
        function()
      local lines, rec = run({ "close 1000 " })
      assert.are.same({ "closed 1000 " }, lines)
      assert.are.same({
        code = 1000, name = "normal", reason = "", clean = true,
        initiator = "remote",
        sent = { code = 1000, reason = "" },
        received = { code = 1000, reason = "" },
      }, rec.close)
    end)
  end)
end
