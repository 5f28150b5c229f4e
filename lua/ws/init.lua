--- lua-ws: WebSocket (RFC 6455) for Lua with a C protocol core.
--
-- `ws.codes` close codes, `ws.protocol` the sans-IO engine,
-- `ws.handshake` the opening handshake; `ws.connect`, `ws.listen`,
-- `ws.client` (reconnecting, with `ws.reconnect` policies) and the
-- loop functions (`ws.run`, `ws.step`, `ws.spawn`, `ws.sleep`, `ws.now`)
-- for networked use. The networking modules load on first use, so hosts
-- that bring their own sockets (OpenResty, game engines) never create a
-- poller.
-- @module ws
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
