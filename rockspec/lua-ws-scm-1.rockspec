rockspec_format = "3.0"
package = "lua-ws"
version = "scm-1"
source = {
  url = "git+file:///dev/null", -- built from a checkout: luarocks make
}
description = {
  summary = "WebSocket (RFC 6455) for Lua with a C protocol core",
  detailed = [[
A sans-IO WebSocket engine in C (framing, masking, UTF-8, close codes,
opening handshake) bound to Lua as ws.core, with ws.protocol for hosts
that own their sockets, non-blocking TCP/TLS clients and servers on an
epoll/poll event loop, and close events named by code.
]],
  license = "MIT",
  labels = { "websocket", "network" },
}
dependencies = {
  "lua >= 5.1",
}
external_dependencies = {
  OPENSSL = {
    header = "openssl/ssl.h",
    library = "crypto",
  },
  ZLIB = {
    header = "zlib.h",
    library = "z",
  },
}
build = {
  -- The Makefile's rock-build target compiles ws.core with LuaRocks'
  -- compiler, flags and directories into build/rock/ws/core.so, and
  -- LuaRocks installs the files below. The builtin backend would link it
  -- at ./ws/core.so, where a script run from the checkout loads it before
  -- the installed rock (the default package.cpath starts with ./?.so).
  type = "make",
  build_target = "rock-build",
  build_variables = {
    CC = "$(CC)",
    CFLAGS = "$(CFLAGS)",
    LIBFLAG = "$(LIBFLAG)",
    LUA_INCDIR = "$(LUA_INCDIR)",
    OPENSSL_INCDIR = "$(OPENSSL_INCDIR)",
    OPENSSL_LIBDIR = "$(OPENSSL_LIBDIR)",
    ZLIB_INCDIR = "$(ZLIB_INCDIR)",
    ZLIB_LIBDIR = "$(ZLIB_LIBDIR)",
  },
  install_pass = false,
  install = {
    -- the command-line tool (doc/cli.md); LuaRocks installs a wrapper
    -- that runs it with this Lua and the rock's paths
    bin = {
      ["lua-ws"] = "bin/lua-ws",
    },
    lib = {
      ["ws.core"] = "build/rock/ws/core.so",
    },
    lua = {
      ["ws"] = "lua/ws/init.lua",
      ["ws.cli"] = "lua/ws/cli.lua",
      ["ws.client"] = "lua/ws/client.lua",
      ["ws.codes"] = "lua/ws/codes.lua",
      ["ws.connect"] = "lua/ws/connect.lua",
      ["ws.connection"] = "lua/ws/connection.lua",
      ["ws.handlers"] = "lua/ws/handlers.lua",
      ["ws.handshake"] = "lua/ws/handshake.lua",
      ["ws.loop"] = "lua/ws/loop.lua",
      ["ws.opening"] = "lua/ws/opening.lua",
      ["ws.options"] = "lua/ws/options.lua",
      ["ws.protocol"] = "lua/ws/protocol.lua",
      ["ws.proxy"] = "lua/ws/proxy.lua",
      ["ws.reconnect"] = "lua/ws/reconnect.lua",
      ["ws.resty"] = "lua/ws/resty.lua",
      ["ws.schema"] = "lua/ws/schema.lua",
      ["ws.server"] = "lua/ws/server.lua",
      ["ws.transport.cosocket"] = "lua/ws/transport/cosocket.lua",
      ["ws.transport.memory"] = "lua/ws/transport/memory.lua",
      ["ws.transport.socket"] = "lua/ws/transport/socket.lua",
      ["ws.url"] = "lua/ws/url.lua",
    },
  },
}
test = {
  type = "busted",
}
