-- Every core: listen with reuse_port, and ws.workers forking worker
-- processes that each accept on the same port (examples/workers.lua, run
-- as a separate program, against real clients on loopback).
local ws = require "ws"
local core = require "ws.core"
local peers = require "interop.peers"

describe("reuse_port", function()
  it("lets two servers listen on one port, which plain servers cannot",
      function()
    local a = assert(ws.listen{ port = 0, reuse_port = true,
      handler = function() end })
    local b = assert(ws.listen{ port = a.port, reuse_port = true,
      handler = function() end })
    assert.are.equal(a.port, b.port)
    local c, err = ws.listen{ port = a.port, handler = function() end }
    assert.is_nil(c)
    assert.are.equal("addrinuse", err)
    a:close() b:close()
  end)

  it("is checked as a boolean", function()
    assert.error_matches(function()
      ws.listen{ port = 0, reuse_port = 1, handler = function() end }
    end, "bad argument #1 to 'listen' (option 'reuse_port': boolean expected, got number)",
      nil, true)
  end)
end)

describe("ws.workers", function()
  it("raises on a bad count, and once the loop has run", function()
    assert.error_matches(function() ws.workers(0) end,
      "bad argument #1 to 'workers' (integer from 1 to 1024 expected, got 0)",
      nil, true)
    assert.error_matches(function() ws.workers(1.5) end,
      "bad argument #1 to 'workers' (integer from 1 to 1024 expected, got 1.5)",
      nil, true)
    ws.step(0) -- the loop has run in this process (the other specs too)
    assert.error_matches(function() ws.workers(2) end,
      "workers: call it before the loop runs", nil, true)
  end)

  it("spreads connections over two worker processes on one port", function()
    local p = peers.start(peers.lua_program("examples/workers.lua", "0", "2",
      "w"))
    local ok, err = pcall(function()
      local port = tonumber(p:wait_prefix("PORT ", 10))
      local seen, conns = {}, {}
      for i = 1, 40 do
        conns[i] = assert(ws.connect("ws://127.0.0.1:" .. port .. "/"))
        assert.is_true(conns[i]:send("hi " .. i))
      end
      for i = 1, 40 do
        local reply = assert(conns[i]:receive(5))
        local worker, rest = reply:match("^w(%d+) (.*)$")
        assert.are.equal("hi " .. i, rest)
        seen[worker] = (seen[worker] or 0) + 1
        conns[i]:close()
      end
      -- 40 connections hashed over two sockets: both get some (all on one
      -- has odds of 2^-39)
      assert.is_true((seen["1"] or 0) > 0 and (seen["2"] or 0) > 0,
        "workers seen: 1=" .. tostring(seen["1"]) .. " 2=" .. tostring(seen["2"]))
      assert.are.equal(40, seen["1"] + seen["2"])
      -- worker 2 goes when worker 1 goes
      -- (without the sanitizer runtime make test preloads: pgrep under
      -- it can hang)
      local kids = io.popen("env -u LD_PRELOAD pgrep -P " .. p.pid)
        :read("*a")
      local kid = tonumber(kids:match("%d+"))
      assert.is_not_nil(kid, "no child process of worker 1")
      assert.is_true(core.kill(p.pid, "TERM"))
      peers.drive("worker 2 to exit", function()
        if not core.kill(kid, "TERM") then return true end
      end, 10)
    end)
    p:stop()
    if not ok then error(err, 0) end
  end)
end)
