--- lua-ws: WebSocket (RFC 6455) for Lua with a C protocol core.
--
--     local ws = require "ws"
--     local conn = assert(ws.connect("wss://example.com/feed"))
--     conn:send("hello")
--     print(conn:receive(5))
--     conn:close()
--
-- `require "ws"` gives every entry point: `ws.codes` (close codes),
-- `ws.protocol` (the sans-IO engine), `ws.handshake` (the opening
-- handshake); `ws.connect`, `ws.listen`, `ws.client` (reconnecting, with
-- `ws.reconnect` policies) and the loop functions for networked use. The
-- networking modules load on first use, so hosts that bring their own
-- sockets (OpenResty, game engines) never create a poller.
--
-- Start with `ws.connect` or `ws.listen`; a connection's methods are in
-- `ws.connection`, the way every connection ends in @{closing.md}, and
-- every option in @{options.md}.
-- @module ws

--- "lua-ws " and the version of the C core.
-- @field _VERSION

--- Close codes by number and by name: `ws.codes`.
-- @field codes

--- The sans-IO protocol engine: `ws.protocol`.
-- @field protocol

--- The opening handshake: `ws.handshake`.
-- @field handshake

--- Reconnect policies: `ws.reconnect`.
-- @field reconnect

--- The event loop: `ws.loop`.
-- @field loop

--- Open a client connection: `ws.connection` | nil, message, close
-- event. See `ws.connect.connect`.
-- @function connect
-- @tparam string url ws:// or wss://
-- @tparam[opt] table opts @{options.md.ws_connect_url__opts_|options}

--- Start a server: `server` | nil, errname, message. See
-- `ws.server.listen`.
-- @function listen
-- @tparam table opts @{options.md.ws_listen_opts_|options}; `handler` is
-- required

--- A long-lived client that reconnects by policy. See
-- `ws.client.client`.
-- @function client
-- @tparam string url ws:// or wss://
-- @tparam[opt] table opts @{options.md.ws_client_url__opts_|options}

--- Run the loop until no task, timer or socket is left (`ws.loop.run`).
-- @function run

--- One turn of the loop, waiting at most `timeout` seconds for
-- something to happen; a frame loop calls `ws.step(0)` once per frame
-- (`ws.loop.step`).
-- @function step
-- @tparam[opt] number timeout

--- Start `fn(...)` in a new task (`ws.loop.spawn`); inside it, calls that
-- wait yield to the loop.
-- @function spawn
-- @tparam function fn
-- @param ... its arguments
-- @return the task

--- Suspend the current task for `s` seconds (in the main thread: run the
-- loop meanwhile) (`ws.loop.sleep`).
-- @function sleep
-- @tparam number s

--- Run this program in `n` processes, so a server uses every core
-- (`ws.loop.workers`; @{scaling.md}).
-- @function workers
-- @tparam integer n workers in all
-- @return this process's worker number (1 in the first)

--- The monotonic clock, in seconds, that every deadline uses.
-- @function now
-- @treturn number
local core = require "ws.core"

local ws = {
  _VERSION = "lua-ws " .. core.version,
  codes = require "ws.codes",
  protocol = require "ws.protocol",
  handshake = require "ws.handshake",
}

local lazy = {
  connect = function() return require("ws.connect").connect end,
  client = function() return require "ws.client" end,
  reconnect = function() return require "ws.reconnect" end,
  listen = function() return require "ws.server" end,
  loop = function() return require "ws.loop" end,
  run = function() return require("ws.loop").run end,
  step = function() return require("ws.loop").step end,
  spawn = function() return require("ws.loop").spawn end,
  sleep = function() return require("ws.loop").sleep end,
  workers = function() return require("ws.loop").workers end,
  now = function() return core.now end,
}

return setmetatable(ws, {
  __index = function(t, k)
    local f = lazy[k]
    if not f then return nil end
    local v = f()
    rawset(t, k, v)
    return v
  end,
})
