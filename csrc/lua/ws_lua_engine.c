/*
 * ws.core engine userdata: the sans-IO engine of csrc/core as a Lua object
 * (core.engine), with __gc/__close, its event queue, and the tables events
 * become. Every close event comes from the engine: the closing handshake's
 * and a violation's from feed/event, the others from lost, expire and
 * abort. Programmer errors (wrong types, unknown kinds, codes that may not
 * be sent) raise; conditions of the data or the connection come back as
 * nil, message, name.
 */
#include <stdlib.h>
#include <string.h>

#include "ws.h"
#include "ws_lua.h"

#define ENGINE_MT "ws.core.engine"

/* The engine userdata. Events wait in a queue, a table in the userdata's
 * user value (made at the first event): event k (head <= k < tail) is two
 * slots, [2k + 1] its value and [2k + 2] its tag (see TAG_*), so that a
 * message queues one string and no table. The indexes go back to 0
 * whenever it empties. */
typedef struct {
  ws_engine e;
  int live;      /* 0 once freed: every method then reports "closed" */
  int hold;      /* output stays queued in the engine (a transport
                    writes it); send & co. return the queued size */
  int has_queue; /* the user value is the queue table */
  int head, tail;
  /* Part mode: input held back once a call has queued PART_BUDGET bytes
   * of parts (a compressed read can inflate a thousandfold), run by
   * engine:drain() when the host has room again. malloc'd; blen bytes. */
  uint8_t *backlog;
  size_t blen, bcap;
} lengine;

/* Queue tags. A close event's value is its table; the others' is their
 * data. A part's tag is TAG_PART + (binary) + 2 * (fin). */
enum {
  TAG_CLOSE = 0,
  TAG_TEXT,   /* a whole text message */
  TAG_BINARY, /* a whole binary message */
  TAG_PING,
  TAG_PONG,
  TAG_PART /* .. TAG_PART + 3 */
};

/* The registry key of the engine metatable besides its name: checking a
 * userdata by it is a pointer lookup, where luaL_checkudata's by name
 * interns the name each call. */
static const char engine_mt_key = 0;

/* Bytes of parts one call queues before the rest of its input waits in
 * the backlog. */
#define PART_BUDGET ((size_t)65536)
/* Strings from this size on make LuaJIT's collector step (push_data):
 * LuaJIT's allocator maps blocks over 128 KiB, so those are the ones a
 * late collector costs. Smaller ones would pay the step for nothing (at
 * 64 KiB it halved the echo rate). */
#define GC_STEP_MIN ((size_t)131072)

/* The engine userdata at idx (freed or not). Its metatable is found by
 * a registry pointer (engine_mt_key), not luaL_checkudata's lookup by
 * name, which interns the name on every call; anything else gets
 * luaL_checkudata's error. */
static lengine *engine_at(lua_State *L, int idx) {
  return (lengine *)ws_lua_checkudata_p(L, idx, &engine_mt_key, ENGINE_MT);
}

/* The same, raising if it was freed. */
static lengine *live_engine_at(lua_State *L, int idx) {
  lengine *le = engine_at(L, idx);
  if (!le->live) luaL_error(L, "attempt to use a freed protocol engine");
  return le;
}

static lengine *to_engine(lua_State *L) { return engine_at(L, 1); }
static lengine *check_engine(lua_State *L) { return live_engine_at(L, 1); }

static const char *state_name(ws_state s) {
  return s == WS_STATE_OPEN ? "open"
         : s == WS_STATE_CLOSING ? "closing"
                                 : "closed";
}

static lua_Integer opt_limit(lua_State *L, int idx, const char *name,
                             lua_Integer def) {
  lua_Number v;
  if (lua_isnoneornil(L, idx)) return def;
  if (lua_type(L, idx) != LUA_TNUMBER)
    return luaL_error(L, "bad option '%s' (number expected, got %s)", name,
                      luaL_typename(L, idx));
  v = lua_tonumber(L, idx);
  if (!(v >= 1 && v <= 9007199254740992.0) || v != (lua_Number)(lua_Integer)v)
    return luaL_error(L, "bad option '%s' (positive integer expected)", name);
  return (lua_Integer)v;
}

/* core.engine(role, max_message_size, max_frame_size, max_fragments,
 *             auto_pong) */
static int l_engine(lua_State *L) {
  static const char *const roles[] = {"client", "server", NULL};
  int role = luaL_checkoption(L, 1, NULL, roles);
  ws_config cfg;
  lengine *le;

  ws_config_init(&cfg, role == 0 ? WS_ROLE_CLIENT : WS_ROLE_SERVER);
  cfg.max_message_size = (uint64_t)opt_limit(L, 2, "max_message_size",
                                             (lua_Integer)cfg.max_message_size);
  cfg.max_frame_size =
      (uint64_t)opt_limit(L, 3, "max_frame_size", (lua_Integer)cfg.max_message_size);
  cfg.max_fragments =
      (size_t)opt_limit(L, 4, "max_fragments", (lua_Integer)cfg.max_fragments);
  if (!lua_isnoneornil(L, 5)) cfg.auto_pong = lua_toboolean(L, 5);

  /* Create the userdata in a safe, freed state first: if anything below
   * raises, __gc finds nothing to release. */
  le = (lengine *)ws_newuserdata(L, sizeof *le);
  memset(le, 0, sizeof *le);
  ws_setmetatable(L, ENGINE_MT);
  if (ws_engine_init(&le->e, &cfg) != 0)
    return luaL_error(L, "cannot initialise the protocol engine");
  le->live = 1;
  return 1;
}

static int l_engine_gc(lua_State *L) {
  lengine *le = (lengine *)luaL_checkudata(L, 1, ENGINE_MT);
  if (le->live) ws_engine_free(&le->e);
  le->live = 0;
  free(le->backlog);
  le->backlog = NULL;
  le->blen = le->bcap = 0;
  return 0;
}

/* Keep p[n] after the backlog: 0, or raises on memory. */
static void backlog_add(lua_State *L, lengine *le, const uint8_t *p,
                        size_t n) {
  if (n == 0) return;
  if (le->blen + n > le->bcap) {
    size_t cap = (le->blen + n) * 2;
    uint8_t *b = realloc(le->backlog, cap);
    if (b == NULL) {
      luaL_error(L, "not enough memory");
      return;
    }
    le->backlog = b;
    le->bcap = cap;
  }
  memcpy(le->backlog + le->blen, p, n);
  le->blen += n;
}

/* ------------------------------------------------------------- events */

static void set_lit(lua_State *L, const char *k, const char *v) {
  lua_pushstring(L, v);
  lua_setfield(L, -2, k);
}

/* t[k] = the value at stack index v (absolute). */
static void set_val(lua_State *L, const char *k, int v) {
  lua_pushvalue(L, v);
  lua_setfield(L, -2, k);
}

static void set_code_reason(lua_State *L, const char *k, int code, int r) {
  lua_createtable(L, 0, 2);
  lua_pushinteger(L, code);
  lua_setfield(L, -2, "code");
  set_val(L, "reason", r);
  lua_setfield(L, -2, k);
}

/* An event's bytes may point into the engine's buffers or the shared read
 * buffer, so they are all copied into Lua strings before the table is
 * made: no allocation between them can run a finalizer (which might feed
 * or free this engine) while a pointer is still to be read, since
 * lua_pushlstring copies before it collects, and the engine frees nothing
 * of a close event's until it is freed itself. */
void ws_lua_push_event(lua_State *L, const ws_event *ev) {
  int top = lua_gettop(L), sent = 0, received = 0;
  const char *name;
  switch (ev->type) {
    case WS_EV_MESSAGE:
    case WS_EV_PING:
    case WS_EV_PONG:
      lua_pushlstring(L, (const char *)ev->data, ev->len);
      lua_createtable(L, 0, 3);
      set_lit(L, "type", ev->type == WS_EV_MESSAGE ? "message"
                         : ev->type == WS_EV_PING  ? "ping"
                                                   : "pong");
      set_val(L, "data", top + 1);
      if (ev->type == WS_EV_MESSAGE)
        set_lit(L, "kind", ev->kind == WS_OP_TEXT ? "text" : "binary");
      lua_remove(L, top + 1);
      return;
    case WS_EV_PART:
      lua_pushlstring(L, (const char *)ev->data, ev->len);
      lua_createtable(L, 0, 4);
      set_lit(L, "type", "part");
      set_val(L, "data", top + 1);
      set_lit(L, "kind", ev->kind == WS_OP_TEXT ? "text" : "binary");
      lua_pushboolean(L, ev->fin);
      lua_setfield(L, -2, "fin");
      lua_remove(L, top + 1);
      return;
    default:
      break;
  }
  lua_pushlstring(L, (const char *)ev->reason, ev->reason_len);
  if (ev->sent_code) {
    lua_pushlstring(L, (const char *)ev->sent_reason, ev->sent_reason_len);
    sent = lua_gettop(L);
  }
  if (ev->received_code) {
    lua_pushlstring(L, (const char *)ev->received_reason,
                    ev->received_reason_len);
    received = lua_gettop(L);
  }
  if (ev->error_name) lua_pushstring(L, ev->error_name);
  lua_createtable(L, 0, 12);
  set_lit(L, "type", "close");
  lua_pushinteger(L, ev->code);
  lua_setfield(L, -2, "code");
  name = ws_code_name(ev->code);
  if (name) set_lit(L, "name", name);
  set_val(L, "reason", top + 1);
  lua_pushboolean(L, ev->clean);
  lua_setfield(L, -2, "clean");
  set_lit(L, "initiator", ev->initiator == WS_BY_LOCAL    ? "local"
                          : ev->initiator == WS_BY_REMOTE ? "remote"
                                                          : "transport");
  if (ev->error_name) set_val(L, "error", lua_gettop(L) - 1);
  if (sent) set_code_reason(L, "sent", ev->sent_code, sent);
  if (received) set_code_reason(L, "received", ev->received_code, received);
  lua_replace(L, top + 1);
  lua_settop(L, top + 1);
}

/* Push the queue table, making it at the first use. idx is absolute. */
static void push_queue(lua_State *L, int idx, lengine *le) {
  if (le->has_queue) {
    ws_getuservalue(L, idx);
    return;
  }
  lua_createtable(L, 4, 0);
  lua_pushvalue(L, -1);
  ws_setuservalue(L, idx);
  le->has_queue = 1;
}

/* Append the event value at the top (popped), with its tag, to the
 * queue at q. */
static void enqueue(lua_State *L, int q, lengine *le, int tag) {
  lua_rawseti(L, q, 2 * le->tail + 1);
  lua_pushinteger(L, tag);
  lua_rawseti(L, q, 2 * le->tail + 2);
  le->tail++;
}

/* A message's or part's bytes as a Lua string. Under LuaJIT a large one
 * also pays its share of garbage collection at once: LuaJIT's collector
 * steps by a fixed amount whatever was allocated, so behind a stream of
 * 1 MiB messages it fell some 30 strings behind, and the dead ones came
 * back to the allocator in bursts the large block cache could not hold
 * (half its requests missed, each a fresh mmap: ws_lua_alloc.c). PUC
 * Lua's collector already steps in proportion to what was allocated.
 * Under LuaJIT a step (this one, as collectgarbage("step") there) also
 * ends a collectgarbage("stop"): its stop is only a raised threshold,
 * which a step sets anew, and the C API cannot tell it was stopped. */
static void push_data(lua_State *L, const uint8_t *p, size_t n) {
  lua_pushlstring(L, (const char *)p, n);
#ifdef WS_LUAJIT
  if (n >= GC_STEP_MIN) lua_gc(L, LUA_GCSTEP, (int)(n >> 10));
#endif
}

/* An event of the engine for the queue: its value pushed, its tag
 * returned. Data events are their bytes (copied now: see
 * ws_lua_push_event); a close event is its table. */
static int push_queued(lua_State *L, const ws_event *ev) {
  switch (ev->type) {
    case WS_EV_MESSAGE:
      push_data(L, ev->data, ev->len);
      return ev->kind == WS_OP_TEXT ? TAG_TEXT : TAG_BINARY;
    case WS_EV_PING:
    case WS_EV_PONG:
      lua_pushlstring(L, (const char *)ev->data, ev->len);
      return ev->type == WS_EV_PING ? TAG_PING : TAG_PONG;
    case WS_EV_PART:
      push_data(L, ev->data, ev->len);
      return TAG_PART + (ev->kind != WS_OP_TEXT) + 2 * (ev->fin != 0);
    default:
      ws_lua_push_event(L, ev);
      return TAG_CLOSE;
  }
}

/* Queue the close event of a call that ended the connection. */
static void queue_event(lua_State *L, int idx, lengine *le,
                        const ws_event *ev, int message) {
  int q;
  push_queue(L, idx, le);
  q = lua_gettop(L);
  ws_lua_push_event(L, ev);
  if (message) set_val(L, "message", message);
  enqueue(L, q, le, TAG_CLOSE);
  lua_pop(L, 1);
}

/* Run buf[len] through the engine into the queue; returns the bytes
 * used, fewer than len only when PART_BUDGET bytes of parts were
 * queued. */
static size_t run_input(lua_State *L, int idx, lengine *le, uint8_t *buf,
                        size_t len) {
  size_t pos = 0, parts = 0;
  int q;
  push_queue(L, idx, le);
  q = lua_gettop(L);
  /* le->live: a finalizer run by an allocation may have freed it */
  while (le->live) {
    ws_event ev;
    pos += ws_engine_recv(&le->e, buf + pos, len - pos, &ev);
    if (ev.type == WS_EV_NONE) break;
    enqueue(L, q, le, push_queued(L, &ev));
    if (ev.type == WS_EV_PART && (parts += ev.len) >= PART_BUDGET &&
        pos < len)
      break;
  }
  lua_pop(L, 1);
  return pos;
}

int ws_lua_engine_deliver(lua_State *L, int idx, uint8_t *buf, size_t len) {
  lengine *le = live_engine_at(L, idx);
  size_t pos;
  if (ws_engine_failing(&le->e) != WS_V_NONE) return 1;
  if (le->blen > 0) { /* after what waits, in order */
    backlog_add(L, le, buf, len);
    return 1;
  }
  pos = run_input(L, idx, le, buf, len);
  if (le->live && pos < len) {
    backlog_add(L, le, buf + pos, len - pos);
    return 1;
  }
  return le->live && ws_engine_failing(&le->e) != WS_V_NONE;
}

lua_Integer ws_lua_engine_settle(lua_State *L, int idx) {
  lengine *le = engine_at(L, idx);
  ws_event ev;
  if (le->live && le->head == le->tail &&
      ws_engine_fail_pending(&le->e, &ev))
    queue_event(L, idx, le, &ev, 0);
  return (lua_Integer)(le->tail - le->head);
}

ws_engine *ws_lua_check_engine(lua_State *L, int idx) {
  return &live_engine_at(L, idx)->e;
}

static lengine *le_of(lua_State *L) { return (lengine *)lua_touserdata(L, 1); }

/* engine:drain() -> how many events are queued now: run input held back
 * in part mode (see engine:backlog) through the engine, again at most
 * one read's worth of parts. */
static int l_drain(lua_State *L) {
  lengine *le = check_engine(L);
  lua_settop(L, 1);
  if (le->blen > 0 && ws_engine_failing(&le->e) == WS_V_NONE) {
    size_t used = run_input(L, 1, le, le->backlog, le->blen);
    if (used < le->blen)
      memmove(le->backlog, le->backlog + used, le->blen - used);
    le->blen -= used;
  } else if (ws_engine_failing(&le->e) != WS_V_NONE) {
    le->blen = 0; /* the engine would ignore it */
  }
  lua_pushinteger(L, ws_lua_engine_settle(L, 1));
  return 1;
}

/* engine:backlog() -> bytes of input held back (part mode): a call that
 * queued a read's worth of parts keeps the rest of its input for
 * engine:drain(), so a compressed read that inflates a thousandfold does
 * not all land in the queue at once. */
static int l_backlog(lua_State *L) {
  lengine *le = check_engine(L);
  lua_pushinteger(L, (lua_Integer)le->blen);
  return 1;
}

/* engine:feed(bytes) -> how many events are queued now. The bytes go
 * through the Lua state's read buffer (the engine unmasks in place), a
 * buffer at a time. */
static int l_feed(lua_State *L) {
  size_t len;
  const char *s;
  check_engine(L);
  s = luaL_checklstring(L, 2, &len);
  lua_settop(L, 2);
  if (len > 0) {
    uint8_t *buf = ws_lua_buffer_take(L);
    size_t off = 0;
    int failing = 0;
    while (off < len && !failing) {
      size_t n = len - off < WS_LUA_BUF_SIZE ? len - off : WS_LUA_BUF_SIZE;
      memcpy(buf, s + off, n);
      failing = ws_lua_engine_deliver(L, 1, buf, n);
      off += n;
    }
    ws_lua_buffer_give(L, 3);
    /* held back (part mode): the rest waits too, in order */
    if (off < len && le_of(L)->blen > 0)
      backlog_add(L, le_of(L), (const uint8_t *)s + off, len - off);
  }
  lua_pushinteger(L, ws_lua_engine_settle(L, 1));
  return 1;
}

/* Take the oldest queued event: push its value and its tag (at 2 and 3:
 * call it with the engine alone on the stack). */
static void take_queued(lua_State *L, lengine *le) {
  int k = 2 * le->head;
  push_queue(L, 1, le);
  lua_rawgeti(L, 2, k + 1);
  lua_rawgeti(L, 2, k + 2);
  lua_pushnil(L);
  lua_rawseti(L, 2, k + 1);
  lua_pushnil(L);
  lua_rawseti(L, 2, k + 2);
  lua_remove(L, 2);
  if (++le->head == le->tail) le->head = le->tail = 0;
}

/* Upvalues of engine:next and engine:event: the names they return,
 * pushed from here rather than interned on every call. */
enum { UV_MESSAGE = 1, UV_PART, UV_PING, UV_PONG, UV_CLOSE, UV_TEXT,
       UV_BINARY, UV_COUNT = UV_BINARY };

/* engine:next([hold]) -> type, value[, kind[, fin]] | nil, failing:
 * engine:event without the table. "message", data, kind, more; "part",
 * data, kind, fin; "ping" or "pong", data; "close", the close event's
 * table. With nothing to take, failing tells whether a violation waits
 * (held: engine:failing()). A message's more is false when the next call
 * would return nil, false (nothing queued, no violation waiting), so a
 * reader draining the queue stops without that call. */
static int l_next(lua_State *L) {
  lengine *le = check_engine(L);
  int hold = lua_toboolean(L, 2), tag;
  lua_settop(L, 1);
  if (le->head == le->tail) {
    ws_event ev;
    if (hold || !ws_engine_fail_pending(&le->e, &ev)) {
      lua_pushnil(L);
      lua_pushboolean(L, ws_engine_failing(&le->e) != WS_V_NONE);
      return 2;
    }
    lua_pushvalue(L, lua_upvalueindex(UV_CLOSE));
    ws_lua_push_event(L, &ev);
    return 2;
  }
  take_queued(L, le); /* value at 2, tag at 3 */
  tag = (int)lua_tointeger(L, 3);
  lua_settop(L, 2);
  switch (tag) {
    case TAG_TEXT:
    case TAG_BINARY:
      lua_pushvalue(L, lua_upvalueindex(UV_MESSAGE));
      lua_insert(L, 2);
      lua_pushvalue(L, lua_upvalueindex(tag == TAG_TEXT ? UV_TEXT
                                                         : UV_BINARY));
      lua_pushboolean(L, le->head != le->tail ||
                             ws_engine_failing(&le->e) != WS_V_NONE);
      return 4;
    case TAG_PING:
    case TAG_PONG:
      lua_pushvalue(L, lua_upvalueindex(tag == TAG_PING ? UV_PING : UV_PONG));
      lua_insert(L, 2);
      return 2;
    case TAG_CLOSE:
      lua_pushvalue(L, lua_upvalueindex(UV_CLOSE));
      lua_insert(L, 2);
      return 2;
    default:
      lua_pushvalue(L, lua_upvalueindex(UV_PART));
      lua_insert(L, 2);
      lua_pushvalue(L, lua_upvalueindex((tag - TAG_PART) % 2 == 0
                                            ? UV_TEXT
                                            : UV_BINARY));
      lua_pushboolean(L, tag - TAG_PART >= 2);
      return 4;
  }
}

/* engine:event([hold]) -> the oldest queued event (removed) as a table,
 * engine:next's values by name ({ type, data, kind, fin }; a close event
 * is its own table) | nil. With the queue empty and a violation pending:
 * nil if hold, else the violation's close event (its close frame now
 * queued in the output). */
static int l_event(lua_State *L) {
  int n = l_next(L), base = lua_gettop(L) - n + 1;
  static const char *const keys[] = {"type", "data", "kind", "fin"};
  int i;
  if (lua_isnil(L, base)) {
    lua_pushnil(L);
    return 1;
  }
  if (lua_rawequal(L, base, lua_upvalueindex(UV_CLOSE))) return 1;
  /* a message's fourth value (more) is next's alone */
  if (lua_rawequal(L, base, lua_upvalueindex(UV_MESSAGE))) n = 3;
  lua_createtable(L, 0, n);
  for (i = 0; i < n; i++) {
    lua_pushvalue(L, base + i);
    lua_setfield(L, -2, keys[i]);
  }
  return 1;
}

/* engine:failing() -> true while a violation waits to be acted on */
static int l_failing(lua_State *L) {
  lengine *le = check_engine(L);
  lua_pushboolean(L, ws_engine_failing(&le->e) != WS_V_NONE);
  return 1;
}

/* Queue the close event of an end (see ws_engine_end) and push whether
 * one was queued. message: stack index of a message string, or 0. */
static int end_with(lua_State *L, lengine *le, ws_end cause,
                    const char *name, int message) {
  ws_event ev;
  int r = ws_engine_end(&le->e, cause, name, &ev);
  if (r == 1)
    queue_event(L, 1, le, &ev, ev.end == cause ? message : 0);
  lua_pushboolean(L, r == 1);
  return 1;
}

/* engine:lost(errname[, message]) -> queued. The transport ended: "eof"
 * (or "closed") for an orderly end, else the transport's own error name
 * ("reset", "pipe", "tls", "timeout", ...), which becomes the event's
 * error; message goes in its message field. A pending violation is
 * reported instead (without the message). */
static int l_lost(lua_State *L) {
  lengine *le = check_engine(L);
  const char *name = luaL_checkstring(L, 2);
  int eof = strcmp(name, "eof") == 0 || strcmp(name, "closed") == 0;
  if (!lua_isnoneornil(L, 3)) luaL_checkstring(L, 3);
  lua_settop(L, 3);
  return end_with(L, le, eof ? WS_END_EOF : WS_END_TRANSPORT, name,
                  lua_isnil(L, 3) ? 0 : 3);
}

/* engine:expire("heartbeat" | "close") -> queued */
static int l_expire(lua_State *L) {
  static const char *const what[] = {"heartbeat", "close", NULL};
  lengine *le = check_engine(L);
  int w = luaL_checkoption(L, 2, NULL, what);
  return end_with(L, le,
                  w == 0 ? WS_END_HEARTBEAT_TIMEOUT : WS_END_CLOSE_TIMEOUT,
                  NULL, 0);
}

/* engine:abort() -> queued: we drop the connection without a close frame */
static int l_abort(lua_State *L) {
  return end_with(L, check_engine(L), WS_END_ABORTED, NULL, 0);
}

/* Push all pending output as one string and mark it written. */
static int push_output(lua_State *L, ws_engine *e) {
  size_t n;
  const uint8_t *p = ws_engine_output(e, &n);
  lua_pushlstring(L, (const char *)p, n);
  ws_engine_output_consume(e, n);
  return 1;
}

/* Map a failed call to nil, message, name (data or state problems) or
 * raise (programmer errors). The name is the state ("closing", "closed")
 * for WS_ESTATE, else ws_errname's. */
static int send_result(lua_State *L, lengine *le, int r, const char *fn) {
  if (r == 0) {
    if (le->hold) {
      /* the stream position just past these bytes (see positions), and
       * the bytes now waiting to be written */
      size_t n;
      lua_pushnumber(L, (lua_Number)ws_engine_queued(&le->e));
      ws_engine_output(&le->e, &n);
      lua_pushinteger(L, (lua_Integer)n);
      return 2;
    }
    return push_output(L, &le->e);
  }
  switch (r) {
    case WS_ESTATE:
      lua_pushnil(L);
      lua_pushfstring(L, "connection is %s", state_name(le->e.state));
      lua_pushstring(L, state_name(le->e.state));
      return 3;
    case WS_EUTF8:
    case WS_EREASON_UTF8:
    case WS_ENOMEM:
    case WS_ERAND:
    case WS_EDEFLATE:
      lua_pushnil(L);
      lua_pushstring(L, ws_strerror(r));
      lua_pushstring(L, ws_errname(r));
      return 3;
    case WS_ECONTROL:
      return luaL_error(L, "bad argument #1 to '%s' (%s)", fn, ws_strerror(r));
    default:
      return luaL_error(L, "%s: %s", fn, ws_strerror(r));
  }
}

static ws_opcode check_kind(lua_State *L, int idx, const char *fn) {
  const char *k = luaL_optstring(L, idx, "text");
  if (strcmp(k, "text") == 0) return WS_OP_TEXT;
  if (strcmp(k, "binary") == 0) return WS_OP_BINARY;
  luaL_error(L, "bad argument #%d to '%s' (\"text\" or \"binary\" expected, "
             "got \"%s\")", idx - 1, fn, k);
  return WS_OP_TEXT;
}

/* The `compress` argument at idx: nil (the threshold decides), true
 * (always) or false (never). */
static unsigned compress_flags(lua_State *L, int idx) {
  if (lua_isnoneornil(L, idx)) return 0;
  luaL_checktype(L, idx, LUA_TBOOLEAN);
  return lua_toboolean(L, idx) ? WS_SEND_COMPRESS : WS_SEND_NO_COMPRESS;
}

/* engine:send(data, kind, fragment, compress) -> bytes (or, holding
 * output, the stream position and the bytes waiting) | nil, message,
 * name */
static int l_send(lua_State *L) {
  lengine *le = check_engine(L);
  size_t len;
  const char *s = luaL_checklstring(L, 2, &len);
  ws_opcode kind = check_kind(L, 3, "send");
  lua_Integer frag = luaL_optinteger(L, 4, 0);
  unsigned flags = compress_flags(L, 5);
  if (frag < 0) return luaL_argerror(L, 4, "fragment size must be >= 0");
  if (le->e.sending)
    return luaL_error(L, "send: %s", ws_strerror(WS_EFRAGMENT));
  return send_result(L, le,
                     ws_engine_send_ex(&le->e, kind, (const uint8_t *)s, len,
                                       (size_t)frag, flags),
                     "send");
}

int ws_lua_engine_send_direct(lua_State *L, ws_lua_write2 w, void *ctx) {
  lengine *le = live_engine_at(L, 2);
  size_t len, hlen = 0;
  const uint8_t *s;
  ws_opcode kind;
  uint8_t hdr[WS_FRAME_MAX_HEADER];
  int r = 1;
  s = (const uint8_t *)luaL_checklstring(L, 3, &len);
  kind = check_kind(L, 4, "send_message");
  if (le->hold && w != NULL)
    r = ws_engine_send_direct(&le->e, kind, s, len, hdr, &hlen);
  if (r == 1) {
    r = ws_engine_send_ex(&le->e, kind, s, len, 0, 0);
  } else if (r == 0) {
    size_t n = 0;
    /* a failed write leaves the frame queued: the next flush reports it */
    if (w(ctx, hdr, hlen, s, len, &n) != 0) n = 0;
    ws_engine_sent_direct(&le->e, hdr, hlen, s, len, n);
  }
  return send_result(L, le, r, "send_message");
}

/* engine:send_part(data, kind, fin, compress) -> bytes | nil, message,
 * name */
static int l_send_part(lua_State *L) {
  lengine *le = check_engine(L);
  size_t len;
  const char *s = luaL_checklstring(L, 2, &len);
  ws_opcode kind = check_kind(L, 3, "send_part");
  unsigned flags = compress_flags(L, 5);
  return send_result(L, le,
                     ws_engine_send_part_ex(&le->e, kind, (const uint8_t *)s,
                                            len, lua_toboolean(L, 4), flags),
                     "send_part");
}

/* engine:send_framed(frame) -> bytes | nil, message, name: a message
 * framed once by core.frame (servers). */
static int l_send_framed(lua_State *L) {
  lengine *le = check_engine(L);
  size_t len;
  const char *s = luaL_checklstring(L, 2, &len);
  int r = ws_engine_send_framed(&le->e, (const uint8_t *)s, len);
  if (r == WS_EFRAGMENT || r == WS_EINVALID) {
    lua_pushnil(L);
    lua_pushstring(L, ws_strerror(r));
    lua_pushstring(L, ws_errname(r));
    return 3;
  }
  return send_result(L, le, r, "send_framed");
}

/* core.frame(data [, kind]) -> frame | nil, message, name: a whole message
 * as one unmasked frame, for engine:send_framed on many connections. */
static int l_frame(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  const char *k = luaL_optstring(L, 2, "text");
  ws_opcode kind = strcmp(k, "binary") == 0 ? WS_OP_BINARY : WS_OP_TEXT;
  uint8_t hdr[WS_FRAME_MAX_HEADER];
  int n;
  if (kind == WS_OP_TEXT && strcmp(k, "text") != 0)
    return luaL_error(L, "bad argument #2 to 'frame' (\"text\" or \"binary\" "
                      "expected, got \"%s\")", k);
  n = ws_frame_message_header(hdr, kind, (const uint8_t *)s, len);
  if (n < 0) {
    lua_pushnil(L);
    lua_pushstring(L, ws_strerror(n));
    lua_pushstring(L, ws_errname(n));
    return 3;
  }
  lua_pushlstring(L, (const char *)hdr, (size_t)n);
  lua_pushvalue(L, 1);
  lua_concat(L, 2);
  return 1;
}

static int param_int(lua_State *L, int idx, const char *field) {
  int v;
  lua_getfield(L, idx, field);
  v = lua_isboolean(L, -1) ? lua_toboolean(L, -1)
                           : (int)luaL_optinteger(L, -1, 0);
  lua_pop(L, 1);
  return v;
}

/* engine:deflate(params, level, mem_level, threshold): turn on
 * permessage-deflate with what was agreed (core.pmd_accept's or
 * core.pmd_response's params table). Raises on bad values. */
static int l_deflate(lua_State *L) {
  lengine *le = check_engine(L);
  ws_pmd_params p;
  int r;
  luaL_checktype(L, 2, LUA_TTABLE);
  p.server_no_context_takeover =
      param_int(L, 2, "server_no_context_takeover");
  p.client_no_context_takeover =
      param_int(L, 2, "client_no_context_takeover");
  p.server_max_window_bits = param_int(L, 2, "server_max_window_bits");
  p.client_max_window_bits = param_int(L, 2, "client_max_window_bits");
  r = ws_engine_deflate(&le->e, &p, (int)luaL_optinteger(L, 3, -1),
                        (int)luaL_optinteger(L, 4, 8),
                        (size_t)luaL_optinteger(L, 5, 0));
  if (r != 0) return luaL_error(L, "deflate: %s", ws_strerror(r));
  return 0;
}

/* engine:deflate_stats() -> { tx_raw, tx_wire, rx_wire, rx_raw } */
static int l_deflate_stats(lua_State *L) {
  lengine *le = check_engine(L);
  ws_deflate_stats st;
  ws_engine_deflate_stats(&le->e, &st);
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, (lua_Integer)st.tx_raw);
  lua_setfield(L, -2, "tx_raw");
  lua_pushinteger(L, (lua_Integer)st.tx_wire);
  lua_setfield(L, -2, "tx_wire");
  lua_pushinteger(L, (lua_Integer)st.rx_wire);
  lua_setfield(L, -2, "rx_wire");
  lua_pushinteger(L, (lua_Integer)st.rx_raw);
  lua_setfield(L, -2, "rx_raw");
  return 1;
}

static int l_ping(lua_State *L) {
  lengine *le = check_engine(L);
  size_t len;
  const char *s = luaL_optlstring(L, 2, "", &len);
  return send_result(L, le, ws_engine_ping(&le->e, (const uint8_t *)s, len),
                     "ping");
}

static int l_pong(lua_State *L) {
  lengine *le = check_engine(L);
  size_t len;
  const char *s = luaL_optlstring(L, 2, "", &len);
  return send_result(L, le, ws_engine_pong(&le->e, (const uint8_t *)s, len),
                     "pong");
}

/* engine:close(code, reason) -> bytes | nil, message, name. code 0 or nil: no
 * status code in the frame. */
/* Push the message for a ws_close_check failure and return the number
 * of the argument it blames (1 the code, 2 the reason). One wording for
 * engine:close and core.close_check, so every close refuses alike. */
static int push_close_error(lua_State *L, int r, lua_Integer code,
                            size_t rlen) {
  const char *name;
  switch (r) {
  case WS_ECODE:
    name = code > 0 && code < 65536 ? ws_code_name((int)code) : NULL;
    lua_pushfstring(L, "close code %d%s%s%s may not be sent", (int)code,
                    name ? " (" : "", name ? name : "", name ? ")" : "");
    return 1;
  case WS_EREASON:
    lua_pushfstring(L, "reason is %d bytes, at most 123 allowed", (int)rlen);
    return 2;
  default: /* WS_ENOCODE, WS_EREASON_UTF8 */
    lua_pushstring(L, ws_strerror(r));
    return 2;
  }
}

/* The close code argument as ws_close_check takes it: out of int range
 * becomes -1, which no check accepts. */
static int close_code_arg(lua_State *L, int i) {
  lua_Integer code = luaL_optinteger(L, i, 0);
  return code < 0 || code > 65535 ? -1 : (int)code;
}

/* core.close_check([code], [reason]) -> true | nil, message, errname,
 * argn: whether close(code, reason) may be sent (code nil or 0 for a
 * close frame without one). errname comes from WS_ERRNO_MAP ("code",
 * "reason", "reason_utf8", "reason_nocode"); argn is the argument to
 * blame. */
static int l_close_check(lua_State *L) {
  int code = close_code_arg(L, 1), r, argn;
  size_t rlen;
  const char *reason = luaL_optlstring(L, 2, "", &rlen);
  r = ws_close_check(code, (const uint8_t *)reason, rlen);
  if (r == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushnil(L);
  argn = push_close_error(L, r, luaL_optinteger(L, 1, 0), rlen);
  lua_pushstring(L, ws_errname(r));
  lua_pushinteger(L, argn);
  return 4;
}

/* engine:close([code], [reason]) -> true | nil, message, name. Bad
 * arguments raise (before anything changes); after our close frame went
 * out it is nil, "connection is closing", "closing". */
static int l_close(lua_State *L) {
  lengine *le = check_engine(L);
  int code = close_code_arg(L, 2), r;
  size_t rlen;
  const char *reason = luaL_optlstring(L, 3, "", &rlen);
  r = ws_close_check(code, (const uint8_t *)reason, rlen);
  if (r != 0) {
    int argn = push_close_error(L, r, luaL_optinteger(L, 2, 0), rlen);
    return luaL_error(L, "bad argument #%d to 'close' (%s)", argn,
                      lua_tostring(L, -1));
  }
  r = ws_engine_close(&le->e, code, (const uint8_t *)reason, rlen);
  return send_result(L, le, r, "close");
}

/* engine:close_end() -> the output stream position just past our close
 * frame (compare with engine:written() or the transport's own count), or
 * nil if no close frame was queued. */
static int l_close_end(lua_State *L) {
  lengine *le = check_engine(L);
  uint64_t end = ws_engine_close_end(&le->e);
  if (end == 0) lua_pushnil(L);
  else lua_pushnumber(L, (lua_Number)end);
  return 1;
}

/* engine:take_output() -> bytes, written: the queued output, and the
 * stream position just past it (what engine:written() returns now). */
static int l_take_output(lua_State *L) {
  lengine *le = check_engine(L);
  push_output(L, &le->e);
  lua_pushnumber(L, (lua_Number)ws_engine_written(&le->e));
  return 2;
}

static int l_state(lua_State *L) {
  lengine *le = to_engine(L);
  lua_pushstring(L, le->live ? state_name(le->e.state) : "closed");
  return 1;
}

/* engine:hold_output(on): when on, send/ping/pong/close leave their bytes
 * in the engine for a transport to write (sock:flush) and return the
 * stream position just past them (compare with engine:written()) instead
 * of a string. */
static int l_hold_output(lua_State *L) {
  lengine *le = check_engine(L);
  le->hold = lua_toboolean(L, 2);
  return 0;
}

/* engine:stream(on): data messages come out of event() as parts,
 * { type = "part", data =, kind =, fin = }, as their bytes arrive (see
 * ws_engine_stream). Raises once bytes were fed. */
static int l_stream(lua_State *L) {
  lengine *le = check_engine(L);
  if (ws_engine_stream(&le->e, lua_toboolean(L, 2)) != 0)
    return luaL_error(L, "stream: the engine has been fed already");
  return 0;
}

/* engine:written() -> output bytes the transport has taken so far */
static int l_written(lua_State *L) {
  lengine *le = check_engine(L);
  lua_pushnumber(L, (lua_Number)ws_engine_written(&le->e));
  return 1;
}

static int l_buffered(lua_State *L) {
  lengine *le = check_engine(L);
  size_t n;
  ws_engine_output(&le->e, &n);
  lua_pushinteger(L, (lua_Integer)n);
  return 1;
}

static const luaL_Reg engine_methods[] = {
    {"feed", l_feed},
    {"failing", l_failing}, {"lost", l_lost},
    {"expire", l_expire}, {"abort", l_abort},
    {"send", l_send},   {"send_part", l_send_part},
    {"send_framed", l_send_framed},
    {"ping", l_ping},   {"pong", l_pong},
    {"close", l_close}, {"take_output", l_take_output},
    {"state", l_state}, {"buffered_amount", l_buffered},
    {"hold_output", l_hold_output}, {"written", l_written},
    {"close_end", l_close_end}, {"stream", l_stream},
    {"drain", l_drain}, {"backlog", l_backlog},
    {"deflate", l_deflate}, {"deflate_stats", l_deflate_stats},
    {"free", l_engine_gc}, {NULL, NULL}};

static const luaL_Reg engine_functions[] = {
    {"engine", l_engine}, {"close_check", l_close_check},
    {"frame", l_frame}, {NULL, NULL}};

/* Declared in ws_lua.h; called from luaopen_ws_core. */
void ws_lua_open_engine(lua_State *L) {
  if (luaL_newmetatable(L, ENGINE_MT)) {
    lua_pushcfunction(L, l_engine_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, l_engine_gc);
    lua_setfield(L, -2, "__close");
    lua_pushvalue(L, -1);
    ws_rawsetp(L, LUA_REGISTRYINDEX, &engine_mt_key);
    lua_newtable(L);
    ws_setfuncs(L, engine_methods, 0);
    {
      static const luaL_Reg named[] = {
          {"next", l_next}, {"event", l_event}, {NULL, NULL}};
      lua_pushliteral(L, "message");
      lua_pushliteral(L, "part");
      lua_pushliteral(L, "ping");
      lua_pushliteral(L, "pong");
      lua_pushliteral(L, "close");
      lua_pushliteral(L, "text");
      lua_pushliteral(L, "binary");
      ws_setfuncs(L, named, UV_COUNT);
    }
    lua_setfield(L, -2, "__index");
    lua_pushliteral(L, ENGINE_MT);
    lua_setfield(L, -2, "__name");
  }
  lua_pop(L, 1);
  ws_setfuncs(L, engine_functions, 0);
}

