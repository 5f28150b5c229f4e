-- A LÖVE 11 echo/chat client for lua-ws.
--
--   make luajit && love examples/love ws://127.0.0.1:8080/
-- from the checkout root, with examples/echo_server.lua running on 8080
-- (the URL may be left out: LUAWS_URL=ws://..., else that one).
--
-- The whole network side runs from one call a frame: ws.step(0) in
-- love.update polls the sockets and runs lua-ws's tasks without waiting.
-- A ws.client reconnects by policy when the server goes away, pings run in
-- a task (ws.spawn) so their wait never holds up a frame, and love.quit
-- closes the connection with a closing handshake.
--
-- Automated mode (CI, screenshots), all optional:
--   LUAWS_LOVE_AUTO=N          type and send N messages, wait for the
--                              echoes and a ping, screenshot, quit
--   LUAWS_LOVE_RESTART=1       then print "love-echo: restart-server" and
--                              expect the server to go away and come back
--                              (run_headless.sh restarts it)
--   LUAWS_LOVE_SCREENSHOT=path also write the screenshot there (it always
--                              goes to the save directory as love-echo.png)
--   LUAWS_LOVE_TIMEOUT=s       give up after s seconds (20)
-- It prints one result line and exits 0 on success, 1 otherwise:
--   love-echo: sent=6 echoed=6 reconnects=1 frames=812 ... ok

-- Find lua-ws: LUAWS_ROOT, else the checkout this example lives in
-- (examples/love/../..), with ws.core built for LuaJIT by `make luajit`.
-- LUA_PATH/LUA_CPATH work too (LÖVE's LuaJIT reads them); an installed
-- rock needs neither.
do
  local root = os.getenv("LUAWS_ROOT")
  if not root then
    local src = love.filesystem.getSource()
    root = src:match("^(.*)/examples/love/?$")
  end
  local probe = root and io.open(root .. "/lua/ws/init.lua", "r")
  if probe then
    probe:close()
    package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;"
      .. package.path
    package.cpath = root .. "/build/jit/?.so;" .. package.cpath
  end
end

local ws = require "ws"
local utf8 = require "utf8"

local getenv = os.getenv
local now = ws.now

local DEFAULT_URL = "ws://127.0.0.1:8080/"
local PING_EVERY = 2      -- seconds between pings
local LOG_LINES = 17      -- lines of history on screen
local MAX_INPUT = 200     -- characters in the input line

local AUTO = tonumber(getenv("LUAWS_LOVE_AUTO") or "")
local AUTO_RESTART = getenv("LUAWS_LOVE_RESTART") == "1"
local AUTO_SHOT = getenv("LUAWS_LOVE_SCREENSHOT")
local AUTO_TIMEOUT = tonumber(getenv("LUAWS_LOVE_TIMEOUT") or "") or 20

local app = {
  url = DEFAULT_URL,
  client = nil,
  started = 0,
  log = {},           -- { text =, color = } newest last
  input = "",
  frames = 0,
  sent = 0,           -- messages the client accepted
  echoed = 0,         -- echoes that matched a sent message
  opens = 0,
  reconnects = 0,     -- opens after the first
  pending = {},       -- text -> list of send times, for echo latency
  rtt = nil,          -- last ping round trip, seconds
  pings = 0,
  ping_busy = false,
  next_ping = 0,
  retry_at = nil,     -- when the next attempt starts, while reconnecting
  attempt = 0,
  last_close = nil,
  step_max = 0,       -- longest ws.step(0), seconds
  step_total = 0,
  closed = false,
}

local colors = {
  bg = { 0.10, 0.11, 0.14 }, panel = { 0.15, 0.16, 0.20 },
  text = { 0.90, 0.91, 0.93 }, dim = { 0.55, 0.58, 0.64 },
  out = { 0.55, 0.75, 1.00 }, echo = { 0.60, 0.90, 0.60 },
  sys = { 0.95, 0.80, 0.45 }, bad = { 1.00, 0.45, 0.45 },
  open = { 0.35, 0.85, 0.45 }, wait = { 0.95, 0.75, 0.25 },
  closed = { 0.95, 0.35, 0.35 },
}

local fonts = {}

local function add_log(text, color)
  local log = app.log
  log[#log + 1] = { text = ("%6.2f  %s"):format(now() - app.started, text),
    color = color or colors.text }
  if #log > LOG_LINES then table.remove(log, 1) end
  -- the same lines on stdout, for terminals and CI logs
  io.stdout:write("  ", log[#log].text, "\n")
  io.stdout:flush()
end

local function describe_close(ev)
  local s = ("%d %s"):format(ev.code or 0, ev.name or "?")
  if ev.error then s = s .. " (" .. ev.error .. ")" end
  if ev.reason and ev.reason ~= "" then s = s .. " \"" .. ev.reason .. "\"" end
  return s
end

-- Send what is in the input line. While the connection is down the
-- client queues it and sends it after reconnecting.
local function submit()
  local text = app.input
  if text == "" then return end
  app.input = ""
  local queued = app.client.state ~= "open"
  local ok, err = app.client:send(text)
  if not ok then
    add_log("not sent: " .. tostring(err), colors.bad)
    return
  end
  app.sent = app.sent + 1
  local times = app.pending[text] or {}
  times[#times + 1] = now()
  app.pending[text] = times
  add_log("> " .. text .. (queued and "   (queued)" or ""), colors.out)
end

local function start_client()
  local client = ws.client(app.url, {
    timeout = 5,
    close_timeout = 1, linger = 0.5,   -- quitting never waits long
    queue = { max = 32 },
    -- LÖVE seeds love.math's generator, not math.random: without this
    -- every copy of the game would draw the same backoff jitter
    random = love.math.random,
    -- retry transport failures quickly (a local server restarting),
    -- everything else as ws.reconnect.default decides
    reconnect = ws.reconnect.by_class{
      retry = ws.reconnect.exponential{ initial = 0.25, max = 5,
        jitter = "full" },
      restart = ws.reconnect.default, overload = ws.reconnect.default,
    },
  })
  client:on("open", function(conn)
    app.opens = app.opens + 1
    if app.opens > 1 then app.reconnects = app.reconnects + 1 end
    app.retry_at, app.attempt = nil, 0
    app.next_ping = now()
    add_log("open" .. (conn.protocol and (" (" .. conn.protocol .. ")") or ""),
      colors.open)
  end)
  client:on("message", function(_, data, kind)
    local times = app.pending[data]
    local t0 = times and table.remove(times, 1)
    if times and #times == 0 then app.pending[data] = nil end
    if t0 then app.echoed = app.echoed + 1 end
    local shown = kind == "binary" and ("[%d bytes]"):format(#data) or data
    add_log("< " .. shown .. (t0 and ("   %.2f ms"):format((now() - t0) * 1000)
      or ""), colors.echo)
  end)
  client:on("close", function(_, ev)
    app.last_close = ev
    add_log("closed " .. describe_close(ev), colors.bad)
  end)
  client:on("reconnecting", function(_, _, delay, attempt)
    app.retry_at, app.attempt = now() + delay, attempt
    add_log(("reconnecting in %.2f s (attempt %d)"):format(delay, attempt),
      colors.sys)
  end)
  client:on("give_up", function(_, ev, unsent)
    add_log(("gave up after %s, %d unsent"):format(describe_close(ev),
      #unsent), colors.bad)
  end)
  return client
end

-- Measure the round trip with conn:ping. It waits for the pong, so it runs
-- in its own task; ws.step(0) advances it a little each frame.
local function maybe_ping()
  local client = app.client
  if client.state ~= "open" or app.ping_busy or now() < app.next_ping then
    return
  end
  local conn = client.conn
  app.ping_busy = true
  ws.spawn(function()
    local rtt = conn:ping(nil, 5)
    app.ping_busy = false
    app.next_ping = now() + PING_EVERY
    if rtt then
      app.rtt = rtt
      app.pings = app.pings + 1
    end
  end)
end

-- Close with a closing handshake (bounded by close_timeout and linger).
local function close_client(code, reason)
  if app.closed or not app.client then return app.last_close end
  app.closed = true
  local ev = app.client:close(code, reason)
  return ev or app.last_close
end

---------------------------------------------------------------------------
-- Automated mode: types into the same input line a user would.
---------------------------------------------------------------------------

local SCRIPT = { "hello from LÖVE", "ws.step(0) once a frame",
  "nothing blocks love.update", "Grüße, ¿qué tal?", "the fifth message" }

local auto = { phase = "wait_open", typing = nil, to_send = {},
  next_key = 0, shot_done = false, pings_before = 0 }

local function finish(ok, why)
  local ev = close_client("normal", "done")
  local clean = ev and ev.code == 1000 and ev.clean
  if ok and not clean then ok, why = false, "close was not clean" end
  if ok and app.echoed ~= app.sent then ok, why = false, "echoes missing" end
  io.stdout:write(("love-echo: sent=%d echoed=%d reconnects=%d frames=%d "
    .. "ping_ms=%.2f step_max_ms=%.2f close=%s %s\n"):format(app.sent,
    app.echoed, app.reconnects, app.frames, (app.rtt or 0) * 1000,
    app.step_max * 1000, ev and (ev.code .. "/" .. ev.name) or "none",
    ok and "ok" or ("FAIL: " .. tostring(why))))
  io.stdout:flush()
  auto.phase = "done"
  love.event.quit(ok and 0 or 1)
end

-- Type the queued texts one character at a time, then press Enter.
local function type_some(t)
  if t < auto.next_key then return end
  auto.next_key = t + 0.02
  if not auto.typing then
    local text = table.remove(auto.to_send, 1)
    if not text then return end
    auto.typing = { text = text, pos = 1, enter = auto.enter }
  end
  local ty = auto.typing
  if ty.pos > #ty.text then
    if ty.enter then love.keypressed("return") end
    auto.typing = nil
    return
  end
  local stop = utf8.offset(ty.text, 2, ty.pos) or #ty.text + 1
  love.textinput(ty.text:sub(ty.pos, stop - 1))
  ty.pos = stop
end

local function auto_messages(n)
  local list = {}
  for i = 1, n do list[i] = SCRIPT[i] or ("message #" .. i) end
  return list
end

local function auto_step()
  local t = now()
  if auto.phase == "done" then return end
  if t - app.started > AUTO_TIMEOUT then
    return finish(false, "timeout in phase " .. auto.phase)
  end
  local client = app.client
  local phase = auto.phase
  if phase == "wait_open" then
    if client.state == "open" then
      auto.to_send, auto.enter = auto_messages(AUTO), true
      auto.phase = "typing"
    elseif client.state == "closed" then
      return finish(false, "could not connect")
    end
  elseif phase == "typing" then
    type_some(t)
    if not auto.typing and #auto.to_send == 0 then auto.phase = "wait_echo" end
  elseif phase == "wait_echo" then
    if app.echoed == AUTO and app.pings > 0 then
      if AUTO_RESTART then
        io.stdout:write("love-echo: restart-server\n")
        io.stdout:flush()
        auto.phase = "wait_drop"
      else
        auto.phase = "screenshot"
      end
    end
  elseif phase == "wait_drop" then
    if client.state ~= "open" then
      -- sent while the server is away: queued, delivered after reconnecting
      app.input = "sent while the server was down"
      submit()
      auto.pings_before = app.pings
      auto.phase = "wait_reopen"
    end
  elseif phase == "wait_reopen" then
    if client.state == "closed" then return finish(false, "gave up") end
    if client.state == "open" and app.reconnects >= 1 and
        app.echoed == app.sent and app.pings > auto.pings_before then
      auto.phase = "screenshot"
    end
  elseif phase == "screenshot" then
    -- leave a half-typed line in the input box for the picture
    auto.to_send, auto.enter = { "type here, Enter sends" }, false
    auto.phase = "type_partial"
  elseif phase == "type_partial" then
    type_some(t)
    if not auto.typing and #auto.to_send == 0 then
      love.graphics.captureScreenshot(function(image)
        local data = image:encode("png", "love-echo.png")
        if AUTO_SHOT then
          local f = assert(io.open(AUTO_SHOT, "wb"))
          f:write(data:getString())
          f:close()
        end
        add_log("screenshot: " .. (AUTO_SHOT or
          (love.filesystem.getSaveDirectory() .. "/love-echo.png")), colors.dim)
        auto.shot_done = true
      end)
      auto.phase = "wait_shot"
    end
  elseif phase == "wait_shot" then
    if auto.shot_done then finish(true) end
  end
end

---------------------------------------------------------------------------
-- LÖVE callbacks
---------------------------------------------------------------------------

function love.load(args)
  for _, a in ipairs(args or {}) do
    if a:match("^wss?://") then app.url = a end
  end
  if app.url == DEFAULT_URL then app.url = getenv("LUAWS_URL") or DEFAULT_URL end
  fonts.title = love.graphics.newFont(20)
  fonts.body = love.graphics.newFont(15)
  fonts.small = love.graphics.newFont(13)
  love.keyboard.setKeyRepeat(true)
  app.started = now()
  add_log("connecting to " .. app.url .. " with " .. ws._VERSION, colors.dim)
  app.client = start_client()
end

function love.update()
  -- The frame's only network call: poll, run ready tasks, never wait.
  local t0 = now()
  ws.step(0)
  local took = now() - t0
  app.frames = app.frames + 1
  app.step_total = app.step_total + took
  if took > app.step_max then app.step_max = took end
  maybe_ping()
  if AUTO then auto_step() end
end

function love.textinput(text)
  if utf8.len(app.input) < MAX_INPUT then app.input = app.input .. text end
end

function love.keypressed(key)
  if key == "return" or key == "kpenter" then
    submit()
  elseif key == "backspace" then
    local last = utf8.offset(app.input, -1)
    if last then app.input = app.input:sub(1, last - 1) end
  elseif key == "escape" then
    love.event.quit()
  end
end

function love.quit()
  local ev = close_client("going_away", "window closed")
  if ev and not AUTO then
    io.stdout:write("closed: ", describe_close(ev), "\n")
  end
end

local function state_line()
  local client = app.client
  local state = client.state
  if state == "open" then
    return colors.open, "open"
  elseif state == "connecting" then
    return colors.wait, "connecting..."
  elseif state == "reconnecting" then
    local left = app.retry_at and app.retry_at - now()
    if left and left > 0 then
      return colors.wait, ("reconnecting in %.1f s (attempt %d)"):format(left,
        app.attempt)
    end
    return colors.wait, ("reconnecting (attempt %d)..."):format(app.attempt)
  end
  local ev = app.last_close
  return colors.closed, "closed" .. (ev and (" " .. describe_close(ev)) or "")
end

function love.draw()
  local g = love.graphics
  local w, h = g.getDimensions()
  g.clear(colors.bg)

  g.setFont(fonts.title)
  g.setColor(colors.text)
  g.print("lua-ws echo client", 20, 16)
  g.setFont(fonts.small)
  g.setColor(colors.dim)
  local major, minor, rev = love.getVersion()
  g.print(("%s  -  LÖVE %d.%d.%d, %s"):format(app.url, major, minor, rev,
    jit and jit.version or _VERSION), 20, 44)

  -- connection state
  local color, text = state_line()
  g.setColor(color)
  g.circle("fill", 28, 79, 7)
  g.setFont(fonts.body)
  g.print(text, 44, 69)

  -- numbers
  g.setFont(fonts.small)
  g.setColor(colors.dim)
  local avg = app.frames > 0 and app.step_total / app.frames or 0
  g.print(("ping %s   sent %d   echoed %d   reconnects %d"):format(
    app.rtt and ("%.2f ms"):format(app.rtt * 1000) or "-", app.sent,
    app.echoed, app.reconnects), 20, 96)
  g.print(("ws.step(0): avg %.3f ms, max %.2f ms   %d fps   frame %d"):format(
    avg * 1000, app.step_max * 1000, love.timer.getFPS(), app.frames), 20, 114)

  -- history
  local top, bottom = 140, h - 90
  g.setColor(colors.panel)
  g.rectangle("fill", 14, top, w - 28, bottom - top, 6)
  g.setFont(fonts.body)
  local line_h = fonts.body:getHeight() + 4
  local y = top + 8
  local first = math.max(1, #app.log - math.floor((bottom - top - 12) / line_h)
    + 1)
  for i = first, #app.log do
    local entry = app.log[i]
    g.setColor(entry.color)
    g.print(entry.text, 24, y)
    y = y + line_h
  end

  -- input line
  local iy = h - 76
  g.setColor(colors.panel)
  g.rectangle("fill", 14, iy, w - 28, 34, 6)
  g.setColor(colors.out)
  g.rectangle("line", 14, iy, w - 28, 34, 6)
  g.setColor(colors.text)
  local shown = "> " .. app.input
  g.print(shown, 24, iy + 8)
  if math.floor(now() * 2) % 2 == 0 or AUTO then
    local cx = 24 + fonts.body:getWidth(shown) + 1
    g.rectangle("fill", cx, iy + 8, 2, fonts.body:getHeight())
  end
  g.setFont(fonts.small)
  g.setColor(colors.dim)
  g.print("Enter sends   Backspace deletes   Esc quits (closes with 1001)",
    20, h - 32)
end
