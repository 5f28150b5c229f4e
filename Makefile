SHELL := /bin/bash
# lua-ws. `make` builds ws.core for Lua 5.4 into build/5.4/ws/core.so.
#   make test   sanitized (ASan+UBSan) C tests (spec/c) and Lua 5.4 specs,
#               then LuaJIT specs
#   make demo   the in-memory client/server demo
#   make doc    the API reference with the guides, build/doc/index.html
#               (LDoc, config.ld); fails on any LDoc warning
#   make doc-check  every code block of README.md and doc/*.md, run
#   make options-doc  regenerate doc/options.md from lua/ws/options.lua
#                   (spec/options_spec.lua fails when it is stale)
#   make codes-doc  regenerate doc/close-codes.md from ws.codes.explain
#                   (spec/codes_spec.lua fails when it is stale)
#   make bench  core microbenchmarks
#   make fuzz   every fuzz target for FUZZ_TIME seconds, one per core at a
#               time (.ci/fuzz.sh)
#   make test-versions  full specs on Lua 5.3, core specs on PUC Lua 5.1
#   make soak      1000 connections for 60 s, direct and through a fault
#                  proxy (SHORT=1: 200 for 10 s), bench/soak/README.md
#   make lint      clang-tidy and cppcheck over csrc/ (doc/static-analysis.md)
#   make valgrind  core specs under valgrind memcheck (plain -O1 -g build)
#   make rock-versions  luarocks make + load on Lua 5.4, 5.3, 5.1, LuaJIT
#   make nginx-bench    ws.resty vs lua-resty-websocket in one nginx
#   make perf           the speed table: C floor, Node ws, lua-ws, ratios;
#                       clients and TLS beside Node ws; idle memory
#   make client-bench   our client and wss:// beside Node ws (QUICK=1)
#   make cpu-echo       user and kernel CPU time per echo: floor, Node ws,
#                       lua-ws on 5.4 and LuaJIT (SIZE=1024 for 1 KiB)
#   make idle-bench     RSS per idle connection: 10 000 to our server and to
#                       Node ws in one run (QUICK=1: a smoke run)
#   make love-demo      the LÖVE example under Xvfb (LOVE_SHOT=file.png)
# Build for another Lua: make LUA_INC=/usr/include/lua5.3 BUILD=build/5.3

CC        ?= cc
LUA_INC   ?= /usr/include/lua5.4
LUAJIT_INC ?= /usr/include/luajit-2.1
BUILD     ?= build/5.4
LUA       ?= lua5.4
LUAJIT    ?= luajit
BUSTED    ?= /usr/bin/busted
FUZZ_TIME ?= 30

WARN   = -std=c11 -Wall -Wextra -Werror -pedantic
CFLAGS ?= -O2
SOFLAGS = -fPIC -shared -fvisibility=hidden
LIBS    = -lssl -lcrypto -lz -pthread

# csrc/ is in folders by layer: core (sans-IO), net (sockets, TLS,
# poller, resolver), lua (the binding).
CORE_SRC = csrc/core/ws_utf8.c csrc/core/ws_mask.c csrc/core/ws_frame.c \
           csrc/core/ws_codes.c csrc/core/ws_error.c \
           csrc/core/ws_handshake.c csrc/core/ws_engine.c \
           csrc/core/ws_deflate.c csrc/core/ws_pmd.c
NET_SRC  = csrc/net/ws_net.c csrc/net/ws_tls.c csrc/net/ws_resolve.c
LUA_SRC  = csrc/lua/ws_lua.c csrc/lua/ws_lua_engine.c \
           csrc/lua/ws_lua_handshake.c csrc/lua/ws_lua_net.c \
           csrc/lua/ws_lua_resolve.c csrc/lua/ws_lua_pmd.c \
           csrc/lua/ws_lua_proc.c csrc/lua/ws_lua_alloc.c
CORE_HDRS = csrc/core/ws.h
HDRS     = $(CORE_HDRS) csrc/net/ws_net.h csrc/net/ws_tls.h csrc/lua/ws_lua.h
CORE_INC = -Icsrc/core
ALL_INC  = -Icsrc/core -Icsrc/net -Icsrc/lua
SAN      = -fsanitize=address,undefined -fno-sanitize-recover=undefined \
           -fno-omit-frame-pointer

.PHONY: all luajit test demo bench echo-bench fuzz clean deps rock rock-build doc doc-check options-doc codes-doc lint valgrind test-versions soak \
        rock-versions love-demo nginx-bench idle-bench

all: $(BUILD)/ws/core.so

$(BUILD)/ws/core.so: $(CORE_SRC) $(NET_SRC) $(LUA_SRC) $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(WARN) $(CFLAGS) $(SOFLAGS) -I$(LUA_INC) $(ALL_INC) \
	  $(CORE_SRC) $(NET_SRC) $(LUA_SRC) -o $@ $(LIBS)

build/jit/ws/core.so: $(CORE_SRC) $(NET_SRC) $(LUA_SRC) $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(WARN) $(CFLAGS) $(SOFLAGS) -I$(LUAJIT_INC) $(ALL_INC) \
	  $(CORE_SRC) $(NET_SRC) $(LUA_SRC) -o $@ $(LIBS)

build/asan/ws/core.so: $(CORE_SRC) $(NET_SRC) $(LUA_SRC) $(HDRS)
	@mkdir -p $(@D)
	gcc $(WARN) -O1 -g $(SAN) $(SOFLAGS) -I$(LUA_INC) $(ALL_INC) \
	  $(CORE_SRC) $(NET_SRC) $(LUA_SRC) -o $@ $(LIBS)

luajit: build/jit/ws/core.so

build/asan/guard_test: spec/c/guard_test.c $(CORE_SRC) $(CORE_HDRS)
	@mkdir -p $(@D)
	gcc $(WARN) -O1 -g $(SAN) $(CORE_INC) spec/c/guard_test.c $(CORE_SRC) -o $@ $(LIBS)

build/asan/deflate_test: spec/c/deflate_test.c spec/c/check.h $(CORE_SRC) $(CORE_HDRS)
	@mkdir -p $(@D)
	gcc $(WARN) -O1 -g $(SAN) $(CORE_INC) spec/c/deflate_test.c $(CORE_SRC) -o $@ $(LIBS)

build/asan/stream_test: spec/c/stream_test.c spec/c/check.h $(CORE_SRC) $(CORE_HDRS)
	@mkdir -p $(@D)
	gcc $(WARN) -O1 -g $(SAN) $(CORE_INC) spec/c/stream_test.c $(CORE_SRC) -o $@ $(LIBS)

build/asan/direct_test: spec/c/direct_test.c spec/c/check.h $(CORE_SRC) $(CORE_HDRS)
	@mkdir -p $(@D)
	gcc $(WARN) -O1 -g $(SAN) $(CORE_INC) spec/c/direct_test.c $(CORE_SRC) -o $@ $(LIBS)

deps:
	@.ci/deps.sh test

# Interop peers: Node's ws, pinned by the committed package-lock.json.
spec/interop/node_modules/.package-lock.json: spec/interop/package-lock.json
	npm ci --prefix spec/interop --no-audit --no-fund

# The specs talk to loopback only; ws.connect honours proxy variables from
# the environment (doc/proxies.md), so they are cleared for spec runs.
NO_PROXY_ENV = env -u http_proxy -u HTTP_PROXY -u https_proxy -u HTTPS_PROXY \
  -u all_proxy -u ALL_PROXY -u ws_proxy -u WS_PROXY -u wss_proxy -u WSS_PROXY

# The sanitizer runtime has to be loaded before the interpreter starts.
test: deps spec/interop/node_modules/.package-lock.json build/asan/guard_test \
      build/asan/deflate_test build/asan/stream_test build/asan/direct_test \
      build/asan/ws/core.so \
      $(BUILD)/ws/core.so \
      build/jit/ws/core.so
	build/asan/guard_test
	build/asan/deflate_test
	build/asan/stream_test
	build/asan/direct_test
	LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libubsan.so)" \
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  $(NO_PROXY_ENV) $(LUA) $(BUSTED) --cpath='./build/asan/?.so' -o spec/support/summary.lua
	$(NO_PROXY_ENV) $(LUAJIT) $(BUSTED) --cpath='./build/jit/?.so' -o spec/support/summary.lua

demo:
	@.ci/deps.sh demo
	@$(MAKE) --no-print-directory all
	LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH='./$(BUILD)/?.so;;' \
	  $(LUA) examples/bot_demo.lua

build/bench/bench_core: bench/bench_core.c $(CORE_SRC) $(CORE_HDRS)
	@mkdir -p $(@D)
	$(CC) $(WARN) -O2 $(CORE_INC) bench/bench_core.c $(CORE_SRC) -o $@ $(LIBS)

build/bench/floor_echo: bench/floor_echo.c $(CORE_SRC) $(CORE_HDRS)
	@mkdir -p $(@D)
	$(CC) $(WARN) -O2 $(CORE_INC) bench/floor_echo.c $(CORE_SRC) -o $@ $(LIBS)

build/bench/loadgen: bench/loadgen.c $(CORE_SRC) $(CORE_HDRS)
	@mkdir -p $(@D)
	$(CC) $(WARN) -O2 $(CORE_INC) bench/loadgen.c $(CORE_SRC) -o $@ $(LIBS)

# Echo benchmark: our server, Node ws and Python websockets under the C
# load generator (DURATION=5 per case, QUICK=1 for a smoke run).
echo-bench: all build/bench/loadgen spec/interop/node_modules/.package-lock.json
	LUAWS_ECHO_CMD="$${LUAWS_ECHO_CMD:-env LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH='./$(BUILD)/?.so;;' $(LUA) examples/echo_server.lua 0}" \
	  bench/echo_bench.sh

# The speed table (bench/README.md): the C floor (bench/floor_echo.c),
# Node ws and lua-ws (Lua 5.4 and LuaJIT) under the same load with the
# servers on CPU 0 and the load generator on CPU 1, with both ratios; our
# client against Node ws; then memory per idle connection. DURATION, and
# REPEAT (runs per cell, medians), as for echo-bench: REPEAT=3 make perf
# for the README's table.
.PHONY: perf client-bench
perf: build/jit/ws/core.so
	PIN=1 PY_ECHO=0 LUAWS_JIT_ECHO_CMD="env LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH='./build/jit/?.so;;' $(LUAJIT) examples/echo_server.lua 0" \
	  $(MAKE) --no-print-directory echo-bench
	@$(MAKE) --no-print-directory client-bench
	@$(MAKE) --no-print-directory idle-bench

# Our client beside Node ws's client, and wss:// servers and clients beside
# Node ws over TLS (bench/client_bench.sh; QUICK=1 for a smoke run).
client-bench: all spec/interop/node_modules/.package-lock.json
	LUA=$(LUA) BUILD=$(BUILD) bench/client_bench.sh

# CPU time per echo, user and kernel apart, of the floor, Node ws and
# lua-ws (5.4, LuaJIT), and the least a Lua handler costs per message
# (bench/cpu_echo.sh, bench/min_handler.lua). CONNS, SIZE, MSGS.
.PHONY: cpu-echo
cpu-echo: all build/jit/ws/core.so build/bench/loadgen build/bench/floor_echo spec/interop/node_modules/.package-lock.json
	LUA=$(LUA) LUAJIT=$(LUAJIT) bench/cpu_echo.sh

# Instructions per echo of examples/echo_server.lua under callgrind
# (bench/instr_echo.sh): exact, whatever the machine's load, so two
# commits compare by running it in each checkout. CASES, MSGS.
.PHONY: instr-echo
instr-echo: all build/bench/loadgen
	LUA=$(LUA) BUILD=$(BUILD) bench/instr_echo.sh

# Lua lines per echo of the echo server, by function and by line
# (bench/lua_profile.sh, a debug.sethook line hook). CONNS, SIZE, MSGS.
.PHONY: lua-profile
lua-profile: all build/bench/loadgen
	LUA=$(LUA) BUILD=$(BUILD) bench/lua_profile.sh

# permessage-deflate: echo rates with compression off, on and without
# context takeover, ours beside Node ws, compression ratios, and server
# memory per connection (bench/deflate_bench.sh: about 5 min; QUICK=1
# about 1 min; DURATION, REPEAT, CONNS, MEM_CONNS, PARTS).
.PHONY: deflate-bench
deflate-bench: all build/bench/loadgen spec/interop/node_modules/.package-lock.json
	LUA=$(LUA) BUILD=$(BUILD) bench/deflate_bench.sh

bench:
	@.ci/deps.sh bench
	@$(MAKE) --no-print-directory build/bench/bench_core
	build/bench/bench_core $(BENCH_ARGS)

FUZZ_TARGETS = $(patsubst fuzz/%.c,%,$(wildcard fuzz/fuzz_*.c))

build/fuzz/%: fuzz/%.c $(CORE_SRC) $(CORE_HDRS) $(wildcard fuzz/*.h)
	@mkdir -p $(@D)
	clang -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined \
	  -fno-sanitize-recover=undefined $(CORE_INC) $< $(CORE_SRC) -o $@ $(LIBS)

fuzz:
	@.ci/deps.sh fuzz
	@$(MAKE) --no-print-directory -j$$(nproc) $(addprefix build/fuzz/,$(FUZZ_TARGETS))
	@FUZZ_TIME=$(FUZZ_TIME) .ci/fuzz.sh $(FUZZ_TARGETS)

rock:
	@.ci/deps.sh rock
	luarocks --lua-version=5.4 make --tree build/rocktree rockspec/lua-ws-scm-1.rockspec

# The rock's build step (rockspec: build.type "make", build_target
# rock-build), run by `luarocks make` with LuaRocks' CC, CFLAGS, LIBFLAG
# and directories for the Lua it builds for. The library goes to
# build/rock/ws/core.so: never to ./ws/, where a script run from the
# checkout would load it before the installed rock. Rebuilt on every run,
# since one checkout may build the rock for several Luas in turn.
ROCK_SO        ?= build/rock/ws/core.so
LIBFLAG        ?= -shared
LUA_INCDIR     ?= $(LUA_INC)
OPENSSL_INCDIR ?= /usr/include
OPENSSL_LIBDIR ?= /usr/lib
ZLIB_INCDIR    ?= /usr/include
ZLIB_LIBDIR    ?= /usr/lib

rock-build:
	@mkdir -p $(dir $(ROCK_SO))
	$(CC) -std=c11 $(CFLAGS) -fPIC -fvisibility=hidden $(LIBFLAG) \
	  -I$(LUA_INCDIR) -I$(OPENSSL_INCDIR) -I$(ZLIB_INCDIR) $(ALL_INC) \
	  $(CORE_SRC) $(NET_SRC) $(LUA_SRC) -o $(ROCK_SO) -L$(OPENSSL_LIBDIR) \
	  -L$(ZLIB_LIBDIR) $(LIBS)

# Lua 5.3 runs everything; PUC Lua 5.1 cannot yield across pcall, so the
# networked layer needs 5.2+ or LuaJIT there and 5.1 runs the core specs.
CORE_SPECS = spec/core_spec.lua spec/protocol_spec.lua spec/split_spec.lua \
             spec/codes_spec.lua spec/handshake_spec.lua spec/url_spec.lua \
             spec/rockspec_spec.lua spec/reconnect_spec.lua \
             spec/options_spec.lua spec/pmd_spec.lua spec/deflate_spec.lua \
             spec/stream_engine_spec.lua

test-versions:
	@.ci/deps.sh versions
	@$(MAKE) --no-print-directory LUA_INC=/usr/include/lua5.3 BUILD=build/5.3 all
	@$(MAKE) --no-print-directory LUA_INC=/usr/include/lua5.1 BUILD=build/5.1 all
	$(NO_PROXY_ENV) lua5.3 $(BUSTED) --cpath='./build/5.3/?.so' -o spec/support/summary.lua
	$(NO_PROXY_ENV) lua5.1 $(BUSTED) --cpath='./build/5.1/?.so' -o spec/support/summary.lua $(CORE_SPECS)

# Every code block of README.md and doc/*.md, run against build/5.4 with
# the results the text states checked (.ci/doc_blocks.lua, which also
# describes the <!-- doc-run: ... --> markers).
doc-check:
	@.ci/deps.sh build
	@$(MAKE) --no-print-directory all
	LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH='./$(BUILD)/?.so;;' \
	  $(LUA) .ci/doc_blocks.lua README.md doc/*.md

# The API reference: LDoc reads the modules listed in config.ld and the
# guides in doc/ (its topics) and writes build/doc/index.html. Markdown
# goes through .ci/ldoc/ldoc_gfm.lua (Debian's LDoc has no Markdown
# processor of its own). LDoc 1.4.6 exits 0 after most warnings, so its
# output is the check: any line but its two progress lines is a warning,
# and fails the target. Then every relative link of the pages must
# resolve, anchors included (.ci/ldoc/check_links.lua).
LDOC_INFO = ^(reading configuration from config\.ld|output written to .*/build/doc)$$
doc:
	@.ci/deps.sh doc
	@rm -rf build/doc && mkdir -p build
	@env -u LUA_PATH_5_1 -u LUA_PATH_5_2 LUA_PATH='./.ci/ldoc/?.lua;;' \
	  ldoc --fatalwarnings . > build/ldoc.log 2>&1; rc=$$?; \
	  warnings=$$(grep -Ev '$(LDOC_INFO)' build/ldoc.log); \
	  if [ $$rc -ne 0 ] || [ -n "$$warnings" ]; then \
	    cat build/ldoc.log >&2; \
	    echo "make doc: LDoc failed (exit $$rc) or warned (above)" >&2; exit 1; \
	  fi
	@$(LUA) .ci/ldoc/check_links.lua build/doc
	@echo "API reference: build/doc/index.html"

# doc/options.md, the reference of every option, from the schemas.
options-doc: all
	LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH='./$(BUILD)/?.so;;' \
	  $(LUA) .ci/options_doc.lua > doc/options.md

codes-doc: all
	LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH='./$(BUILD)/?.so;;' \
	  $(LUA) .ci/codes_doc.lua > doc/close-codes.md

soak: all
	bench/soak/run.sh

lint:
	.ci/lint.sh

valgrind:
	.ci/valgrind.sh

clean:
	rm -rf build

# `luarocks make` into a tree of its own per Lua (5.4, 5.3, 5.1, LuaJIT),
# then each Lua loads the rock from that tree alone (.ci/rock_versions.sh).
rock-versions:
	@.ci/deps.sh rock
	@.ci/deps.sh versions
	.ci/rock_versions.sh

# The LÖVE 11 echo client (examples/love) under Xvfb against the echo
# server, with a server restart in the middle; LOVE_SHOT=file.png keeps
# the screenshot (examples/love/README.md).
love-demo:
	@.ci/deps.sh build
	@.ci/deps.sh love
	examples/love/run_headless.sh $(LOVE_SHOT)

# ws.resty against lua-resty-websocket in one nginx under bench/loadgen
# (DURATION=5 per case, QUICK=1 for a smoke run, REPEAT=n for medians).
nginx-bench:
	@.ci/deps.sh nginx
	bench/nginx_bench.sh

# Memory per idle server connection, ours and Node ws's, in one run
# (bench/idle_bench.sh; CONNS=10000 by default, QUICK=1 for 500).
idle-bench: all spec/interop/node_modules/.package-lock.json
	bench/idle_bench.sh
