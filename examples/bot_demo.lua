-- lua-ws bot demo, all over loopback: a reconnecting client (ws.client)
-- against servers that behave well and badly, printing every close event
-- by name and every reconnect decision.
--   make demo
local ws = require "ws"
local core = require "ws.core"
local loop = require "ws.loop"

local function say(fmt, ...) print(("  " .. fmt):format(...)) end

local function show_close(conn, ev)
  say("close:%-15s code=%d initiator=%s clean=%s%s%s", ev.name or "?",
    ev.code, ev.initiator, tostring(ev.clean),
    ev.error and (" error=" .. ev.error) or "",
    ev.reason ~= "" and (" reason=%q"):format(ev.reason) or "")
  local why = ws.codes.explain(ev.code)
  if why then say("  %s %s", why.meaning, why.action) end
end

-- Run the loop until done() or a time limit.
local function until_done(done, limit)
  local deadline = ws.now() + (limit or 10)
  while not done() and ws.now() < deadline do ws.step(0.05) end
end

-- A bot: a reconnecting client that logs what happens to it.
local function bot(url, opts)
  local c = ws.client(url, opts)
  c:on("open", function() say("open    %s", url) end)
  c:on("message", function(_, data) say("message %q", data) end)
  c:on("close", show_close)
  c:on("reconnecting", function(_, ev, delay, attempt)
    say("reconnecting: attempt %d in %.2f s (after %s)", attempt, delay,
      ev.name or tostring(ev.code))
  end)
  c:on("give_up", function(_, ev, unsent)
    say("give_up after %s; %d unsent message(s)", ev.name or tostring(ev.code),
      #unsent)
  end)
  return c
end

-- A server that speaks WebSocket properly; its behaviour depends on the
-- path it is asked for.
local drops = 0
local server = assert(ws.listen{ port = 0, handler = function(conn, req)
  if req.path == "/drop" then
    drops = drops + 1
    if drops <= 3 then
      conn:send("dropping you (" .. drops .. ")")
      ws.sleep(0.05)
      conn:abort() -- TCP gone, no close frame: the client sees 1006
      return
    end
  end
  for data in conn:messages() do conn:send("echo: " .. data) end
end })
local base = "ws://127.0.0.1:" .. server.port

-- A raw TCP server that completes the handshake and then does `script`:
-- used for a peer that breaks the protocol or goes silent.
local function raw_server(script)
  local l = assert(core.tcp_listen("127.0.0.1", 0))
  ws.spawn(function()
    while true do
      local s = l:accept()
      if s then
        ws.spawn(function()
          local buf = ""
          while true do
            local d, err = s:read()
            if d then
              buf = buf .. d
              local req = ws.handshake.parse_request(buf)
              if req then
                s:write(ws.handshake.response{ key = req.key })
                script(s)
                break
              end
            elseif err == "wantread" then
              loop.wait_fd(s:fd(), "r", ws.now() + 5, s)
            else
              break
            end
          end
          loop.forget_fd(s:fd())
          s:close()
        end)
      else
        loop.wait_fd(l:fd(), "r", nil, l)
      end
    end
  end)
  return "ws://127.0.0.1:" .. l:port()
end

print("1. normal: talk, then close by name")
local c = bot(base .. "/echo")
until_done(function() return c.state == "open" end)
c:send("hello")
ws.sleep(0.2)
c:close("normal", "see you")

print("\n2. protocol_error: the server sends a reserved opcode")
local bad = raw_server(function(s)
  s:write("\131\0")   -- FIN + opcode 3, which RFC 6455 reserves
  ws.sleep(0.5)
end)
c = bot(bad .. "/")
c:on("close:protocol_error", function() say("(handler for close:protocol_error called)") end)
until_done(function() return c.state == "closed" end)

print("\n3. abnormal: the server drops TCP three times; backoff, then it recovers")
c = bot(base .. "/drop", {
  reconnect = ws.reconnect.exponential{ initial = 0.2, factor = 2,
    max = 5, jitter = "none" },
})
until_done(function() return drops > 3 and c.state == "open" end, 15)
c:send("still here")
ws.sleep(0.2)
c:close("going_away", "demo over")

print("\n4. heartbeat: the server stops answering")
local silent = raw_server(function() ws.sleep(3) end)
c = bot(silent .. "/", { heartbeat = { interval = 0.3, timeout = 0.3 },
  reconnect = ws.reconnect.never() })
until_done(function() return c.state == "closed" end)

server:close()
print("\ndone")
os.exit(0)
