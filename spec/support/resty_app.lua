-- The Lua side of the nginx specs (spec/resty_spec.lua): locations served
-- by ws.resty inside a real nginx. Loaded there as "support.resty_app";
-- records go to the shared dict "seen" (lua_shared_dict seen 4m).
local resty = require "ws.resty"

local app = {}

local function words(text)
  local t = {}
  for w in text:gmatch("%S+") do t[#t + 1] = w end
  return t
end

local function pair(t)
  if not t then return "-" end
  return t.code .. "/" .. t.reason
end

--- One line describing a close event, for the spec to compare.
function app.describe(ev)
  return ("code=%s name=%s reason=%s clean=%s initiator=%s error=%s "
    .. "sent=%s received=%s unsent=%d"):format(ev.code, tostring(ev.name),
    ev.reason, tostring(ev.clean), tostring(ev.initiator),
    tostring(ev.error), pair(ev.sent), pair(ev.received), #(ev.unsent or {}))
end

local function record(key, line)
  local seen = ngx.shared.seen
  local old = seen:get(key)
  seen:set(key, old and (old .. "\n" .. line) or line)
end

--- /echo/...: echo every message; "cmd:" text messages are commands:
-- close CODE REASON, ping PAYLOAD (ping the client, answer "pinged
-- PAYLOAD ok"), frag N TEXT (send TEXT in frames of N bytes), ticks N
-- (a second light thread sends "tick 1" .. "tick N" while this one goes
-- on reading and echoing), abort. Records per request path: the
-- messages ("text 5"), then the close event.
function app.commands(opts)
  opts = opts or {}
  local path = ngx.var.uri
  resty.serve{
    protocols = { "chat" },
    max_message_size = opts.max_message_size or 64 * 1024 * 1024,
    heartbeat = opts.heartbeat,
    handler = function(conn)
      record(path, "protocol " .. (conn.protocol or "-"))
      local writer
      for data, kind in conn:messages() do
        if kind == "text" and data:sub(1, 4) == "cmd:" then
          record(path, data)
          local w = words(data:sub(5))
          if w[1] == "close" then
            conn:close(tonumber(w[2]), data:match("^cmd:close %d+ ?(.*)$"))
          elseif w[1] == "ping" then
            local payload = data:match("^cmd:ping (.*)$")
            local rtt, err = conn:ping(payload, 5)
            conn:send("pinged " .. payload .. " "
              .. (type(rtt) == "number" and "ok" or tostring(err)))
          elseif w[1] == "frag" then
            conn:send(data:match("^cmd:frag %d+ (.*)$"), "text",
              { fragment = tonumber(w[2]) })
          elseif w[1] == "ticks" then
            writer = ngx.thread.spawn(function(n)
              for i = 1, n do
                conn:send("tick " .. i)
                if i % 10 == 0 then ngx.sleep(0) end
              end
              return n
            end, tonumber(w[2]))
          elseif w[1] == "abort" then
            conn:abort()
          end
        else
          record(path, kind .. " " .. #data)
          conn:send(data, kind)
        end
      end
      if writer then
        local ok, n = ngx.thread.wait(writer)
        record(path, "writer " .. tostring(ok) .. " " .. tostring(n))
      end
      record(path, "close " .. app.describe(conn.close_event))
    end,
  }
end

--- /handlers: the same echo with an on("message") handler; the main
-- thread only waits for the close (conn:wait()).
function app.handlers()
  local path = ngx.var.uri
  resty.serve{ handler = function(conn)
    conn:on("message", function(c, data, kind) c:send(data, kind) end)
    conn:on("close:going_away", function(_, ev)
      record(path, "going_away handler " .. ev.code)
    end)
    -- messages go to the handler: receive refuses, wait waits for the close
    local ok, err = pcall(conn.receive, conn)
    record(path, ("receive %s %s"):format(tostring(ok), tostring(err)))
    record(path, "close " .. app.describe(conn:wait()))
  end }
end

--- /refuse: authorize says no with 403 and a header.
function app.refuse()
  local conn, reason, status = resty.upgrade{
    authorize = function(req)
      return false, 403, { ["X-Reason"] = "no " .. req.path }
    end,
  }
  record(ngx.var.uri, ("upgrade %s %s %s"):format(tostring(conn),
    tostring(reason), tostring(status)))
end

--- /seen?path=P: what was recorded for P.
function app.seen()
  ngx.print(ngx.shared.seen:get(ngx.req.get_uri_args().path) or "")
end

local function payload(n, seed)
  local t = {}
  for i = 1, 256 do t[i] = string.char((seed * i + 7) % 256) end
  local block = table.concat(t)
  return block:rep(math.floor(n / 256) + 1):sub(1, n)
end

--- /client?url=U&mode=M: our resty client inside nginx against U.
-- mode echo: messages of several sizes (to 16 MiB), fragmented text, a
-- ping, then close 4002; mode wait: report how the server ends it; mode
-- close: close(1000, "bye") and say how long it took; mode threads: a writer light thread sends 200 messages while this thread
-- reads the echoes.
function app.client()
  local args = ngx.req.get_uri_args()
  local mode = args.mode or "echo"
  local conn, err, ev = resty.connect(args.url, {
    protocols = args.protocol and { args.protocol }, timeout = 10,
    heartbeat = args.heartbeat and { interval = 0.2, timeout = 0.3 },
    max_message_size = 64 * 1024 * 1024,
    max_buffered = tonumber(args.max_buffered),
    linger = tonumber(args.linger),
    tls = args.server_name and { server_name = args.server_name } or nil,
  })
  if not conn then
    ngx.say("connect-failed ", err)
    ngx.say("event ", app.describe(ev), " http_status=",
      tostring(ev.http_status))
    return
  end
  ngx.say("open ", tostring(conn.protocol))
  if mode == "echo" then
    for i, size in ipairs({ 0, 125, 126, 65535, 65536, 16 * 1024 * 1024 }) do
      local msg = payload(size, 2 * i + 1)
      assert(conn:send(msg, "binary"))
      local data, kind = conn:receive(20)
      ngx.say("echo binary ", size, ": ", tostring(kind), " ",
        data == msg and "ok" or "mismatch")
    end
    local text = ("h\195\169llo \226\156\147 \240\157\132\158 "):rep(300)
    conn:send(text, "text", { fragment = 7 })
    local data, kind = conn:receive(10)
    ngx.say("fragmented text ", #text, ": ", tostring(kind), " ",
      data == text and "ok" or "mismatch")
    local rtt = conn:ping("from resty", 5)
    ngx.say("ping ", type(rtt) == "number" and "ok" or tostring(rtt))
    ngx.say("close ", app.describe(conn:close(4002, "resty bye")))
  elseif mode == "close" then
    ngx.update_time()
    local t0 = ngx.now()
    local cev = conn:close(1000, "bye")
    ngx.update_time()
    ngx.say("close ", app.describe(cev))
    ngx.say(("took %.1f"):format(ngx.now() - t0))
  elseif mode == "threads" then
    local n = 200
    local writer = ngx.thread.spawn(function()
      for i = 1, n do
        conn:send("message " .. i)
        if i % 20 == 0 then ngx.sleep(0) end
      end
    end)
    local got, in_order = 0, true
    for i = 1, n do
      local data = conn:receive(10)
      if not data then break end
      got = got + 1
      if data ~= "message " .. i then in_order = false end
    end
    ngx.thread.wait(writer)
    ngx.say("threads ", got, " in order ", tostring(in_order))
    ngx.say("close ", app.describe(conn:close()))
  elseif mode == "waiters" then
    -- a reader, two pingers and a sender above max_buffered wait on the
    -- connection at the same time
    local n, size = 20, 65536
    local reader = ngx.thread.spawn(function()
      local got = 0
      for _ = 1, n do
        local data = conn:receive(10)
        if not data then break end
        if #data == size then got = got + 1 end
      end
      return got
    end)
    local function pinger(tag)
      local res = {}
      for i = 1, 3 do
        local rtt, perr = conn:ping(tag .. i, 5)
        res[i] = type(rtt) == "number" and "ok" or tostring(perr)
      end
      return table.concat(res, ",")
    end
    local p1 = ngx.thread.spawn(pinger, "a")
    local p2 = ngx.thread.spawn(pinger, "b")
    local sender = ngx.thread.spawn(function()
      local sent = 0
      for _ = 1, n do
        if conn:send(("s"):rep(size), "binary") then sent = sent + 1 end
      end
      return sent
    end)
    local _, sent = ngx.thread.wait(sender)
    local _, r1 = ngx.thread.wait(p1)
    local _, r2 = ngx.thread.wait(p2)
    local _, got = ngx.thread.wait(reader)
    ngx.say("waiters sent=", tostring(sent), " received=", tostring(got),
      " pings=", tostring(r1), " ", tostring(r2))
    ngx.say("close ", app.describe(conn:close()))
  elseif mode == "unsent" then
    -- the server resets the connection; our sends find out
    ngx.sleep(0.3)
    for _, msg in ipairs({ "first", "second" }) do
      local ok, serr = conn:send(msg)
      ngx.say("send ", msg, " ", tostring(ok), " ", tostring(serr))
    end
    local cev = conn.close_event
    ngx.say("close ", cev and app.describe(cev) or "none")
    for _, m in ipairs(cev and cev.unsent or {}) do
      ngx.say("unsent ", m.kind, " ", m.data)
    end
  elseif mode == "wait" then
    if args.send then conn:send(args.send) end
    local data, rerr, cev
    for _ = 1, 100 do
      data, rerr, cev = conn:receive(10)
      if not data then break end
      ngx.say("message ", data)
    end
    ngx.say("receive ", tostring(rerr))
    if cev then ngx.say("close ", app.describe(cev)) end
  end
end

--- /errors: wrong arguments to ws.resty; one line per call: the error
-- message as raised, or what the call returned.
function app.errors()
  -- f is called from a Lua function here, so a raised error's position
  -- shows whether it blames the caller (this file)
  local function try(f, ...)
    local ok, a, b = pcall(function(...)
      local r1, r2 = f(...)
      return r1, r2
    end, ...)
    if ok then
      ngx.say("returned ", tostring(a), " ", tostring(b))
    else
      ngx.say(tostring(a))
    end
  end
  local url = "ws://127.0.0.1:" .. ngx.var.server_port .. "/echo/errors"
  try(resty.connect, 42)
  try(resty.connect, "http://x/")
  try(resty.connect, url, { bogus = 1 })
  try(resty.connect, url, { timeout = -1 })
  try(resty.connect, url, { tls = { foo = 1 } })
  try(resty.connect, url, { heartbeat = { interval = 0 } })
  try(resty.connect, url, { headers = { ["Bad Name"] = "x" } })
  try(resty.serve, {})
  try(resty.upgrade, { authorize = 5 })
  try(resty.upgrade, "x")
  local conn = assert(resty.connect(url))
  try(conn.send, conn, 42)
  try(conn.send, conn, "x", "text", { fragment = 0 })
  try(conn.send, conn, "\255", "text")
  try(conn.receive, conn, "soon")
  try(conn.close, conn, 999)
  try(conn.close, conn, 1000, 5)
  try(conn.close, conn, 1000, "ok\255\254")
  try(conn.close, conn, 1000, ("r"):rep(124))
  try(conn.send, conn, "still open")
  try(conn.on, conn, "nope", print)
  try(conn.on, conn, "message", 5)
  try(conn.ping, conn, 5)
  try(conn.send, {}, "x")
  conn:close()
  try(conn.send, conn, "late")
end

return app
