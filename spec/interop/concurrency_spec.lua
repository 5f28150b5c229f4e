-- 200 concurrent clients against one of our servers, every message
-- checked on both ends: Node `ws` and Python `websockets` clients (one
-- process opening 200 connections), and 200 of our own clients in tasks.
-- Each client sends 20 numbered messages "client I message J <payload>",
-- one at a time, and checks each echo; the server checks each message's
-- client, sequence number and payload as it echoes it.
local ws = require "ws"
local peers = require "interop.peers"

local CLIENTS, MESSAGES = 200, 20

local function message(i, j)
  return ("client %d message %d %s"):format(i, j,
    peers.payload("text", (i * 31 + j * 7) % 200))
end

-- A server that echoes and checks: stats.good counts messages that are
-- the next message of the client that sent the first one on that
-- connection; stats.peak is the most connections open at once.
local function checking_server()
  local stats = { active = 0, peak = 0, good = 0, bad = 0, closes = {} }
  local server = assert(ws.listen({ host = "127.0.0.1", port = 0,
    handler = function(conn)
      stats.active = stats.active + 1
      if stats.active > stats.peak then stats.peak = stats.active end
      local client, j = nil, 0
      for data, kind in conn:messages() do
        j = j + 1
        client = client or tonumber(data:match("^client (%d+) "))
        if kind == "text" and client and data == message(client, j) then
          stats.good = stats.good + 1
        else
          stats.bad = stats.bad + 1
        end
        conn:send(data, kind)
      end
      local ev = conn.close_event
      local key = ("%d %s %s %s"):format(ev.code, ev.initiator,
        tostring(ev.clean), ev.reason == ("client %s done"):format(client)
        and "reason-ok" or ev.reason)
      stats.closes[key] = (stats.closes[key] or 0) + 1
      stats.active = stats.active - 1
    end }))
  return server, stats
end

describe("200 concurrent clients", function()
  for _, impl in ipairs({ "node", "python" }) do
    it(("from one %s process exchange 20 messages each with our server")
        :format(impl), function()
      local server, stats = checking_server()
      local lines = peers.run_client(impl,
        ("ws://127.0.0.1:%d/many"):format(server.port),
        { ("many %d %d"):format(CLIENTS, MESSAGES) }, { timeout = 60 })
      peers.drive("our handlers to finish", function()
        if stats.active == 0 then return true end
      end, 10)
      server:close(2)
      assert.are.same({ ("many %d %d: ok=%d bad=0 closed=%d"):format(
        CLIENTS, MESSAGES, CLIENTS * MESSAGES, CLIENTS) }, lines)
      assert.are.same({ good = CLIENTS * MESSAGES, bad = 0 },
        { good = stats.good, bad = stats.bad })
      -- all 200 were open at once, besides the client's first connection
      assert.are.equal(CLIENTS + 1, stats.peak)
      assert.are.same({
        ["1000 remote true reason-ok"] = CLIENTS,
        -- the first connection only waited, then closed without a reason
        ["1000 remote true "] = 1,
      }, stats.closes)
    end)
  end

  it("of ours, in tasks, exchange 20 messages each with our server",
      function()
    local server, stats = checking_server()
    local url = ("ws://127.0.0.1:%d/ours"):format(server.port)
    local connected, results = 0, {}
    for i = 1, CLIENTS do
      ws.spawn(function()
        local conn, err = ws.connect(url, { timeout = 20 })
        if not conn then
          results[i] = "connect failed: " .. tostring(err)
          return
        end
        connected = connected + 1
        -- start sending once every client is connected
        local deadline = ws.now() + 20
        while connected < CLIENTS and ws.now() < deadline do
          ws.sleep(0.005)
        end
        local ok = 0
        for j = 1, MESSAGES do
          conn:send(message(i, j))
          local data, kind = conn:receive(20)
          if data == message(i, j) and kind == "text" then ok = ok + 1 end
        end
        local ev = conn:close(1000, ("client %d done"):format(i))
        results[i] = ("ok=%d close=%d %s %s"):format(ok, ev.code,
          ev.initiator, tostring(ev.clean))
      end)
    end
    local expected, n = {}, 0
    for i = 1, CLIENTS do
      expected[i] = ("ok=%d close=1000 local true"):format(MESSAGES)
    end
    peers.drive("our 200 clients", function()
      n = 0
      for i = 1, CLIENTS do if results[i] then n = n + 1 end end
      if n == CLIENTS and stats.active == 0 then return true end
    end, 60)
    server:close(2)
    assert.are.same(expected, results)
    assert.are.same({ good = CLIENTS * MESSAGES, bad = 0 },
      { good = stats.good, bad = stats.bad })
    assert.are.equal(CLIENTS, stats.peak)
    assert.are.same({ ["1000 remote true reason-ok"] = CLIENTS },
      stats.closes)
  end)
end)
