--- Headless Chromium as an interop peer: opens spec/interop/browser/
-- deflate.html (see there), whose WebSocket connects to our server and is
-- remote-controlled by it. The browser runs in a process group of its
-- own (setsid), under `timeout` so that a killed spec run leaves nothing
-- behind for long, with a temporary profile; stop() ends the whole group
-- and removes the profile.
local peers = require "interop.peers"

local browser = {}

browser.CHROMIUM = "/usr/bin/chromium"
local PAGE = "spec/interop/browser/deflate.html"
local LIFETIME = 120 -- seconds; the group is killed then whatever happens

local function succeeded(...)
  local r = ...
  return r == true or r == 0
end

-- Commands run without the sanitizer runtime `make test` preloads into
-- this process (ps deadlocks under it).
local CLEAN_ENV = "env -u LD_PRELOAD -u ASAN_OPTIONS -u UBSAN_OPTIONS "

local function sh(cmd)
  return succeeded(os.execute(CLEAN_ENV .. "sh -c " .. peers.quote(cmd)))
end

local function urlencode(s)
  return (s:gsub("[^%w%-%._~]", function(c)
    return ("%%%02X"):format(c:byte())
  end))
end

local function cwd()
  local p = assert(io.popen(CLEAN_ENV .. "pwd"))
  local dir = p:read("*l")
  p:close()
  return dir
end

--- Whether Chromium is installed.
function browser.available()
  local f = io.open(browser.CHROMIUM, "r")
  if f then f:close() end
  return f ~= nil
end

local Browser = {}
Browser.__index = Browser

--- Start Chromium on the page, connecting to `ws_url` and reporting how
-- that connection closed to `report_url`. Returns a handle with stop()
-- and stderr().
function browser.open(ws_url, report_url)
  local profile = os.tmpname()
  os.remove(profile)
  assert(sh("mkdir -p " .. peers.quote(profile)))
  local url = ("file://%s/%s?ws=%s&report=%s"):format(cwd(), PAGE,
    urlencode(ws_url), urlencode(report_url))
  local p = peers.start({ "setsid", "timeout", "-s", "KILL",
    tostring(LIFETIME), browser.CHROMIUM, "--headless", "--no-sandbox",
    "--disable-background-networking", "--disable-gpu", "--no-first-run",
    "--disable-extensions", "--disable-sync", "--mute-audio",
    "--user-data-dir=" .. profile, url }, "/dev/null")
  return setmetatable({ process = p, profile = profile }, Browser)
end

--- What Chromium wrote to stderr (for failure messages).
function Browser:stderr()
  return self.process:stderr()
end

--- End Chromium's process group, wait (bounded) until it is gone and
-- remove the profile. Idempotent.
function Browser:stop()
  if self.stopped then return end
  self.stopped = true
  local group = "-" .. self.process.pid
  sh("kill -TERM " .. group .. " 2>/dev/null")
  -- gone when nothing of its session is left but zombies (which init
  -- reaps in its own time)
  local alive = ("ps -o stat= -s %d | grep -qv '^Z'"):format(self.process.pid)
  local gone = false
  for _ = 1, 50 do
    if not sh(alive) then
      gone = true
      break
    end
    sh("sleep 0.1")
  end
  if not gone then sh("kill -KILL " .. group .. " 2>/dev/null") end
  self.process:stop()
  if self.profile:match("^/tmp/") then
    sh("rm -rf " .. peers.quote(self.profile))
  end
end

return browser
