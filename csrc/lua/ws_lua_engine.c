/*
 * ws.core engine userdata: the sans-IO engine of csrc/core as a Lua object
 * (core.engine), with __gc/__close. Programmer errors (wrong types, unknown
 * kinds, codes that may not be sent) raise; conditions of the data or the
 * connection come back as nil, message.
 */
#include <stdlib.h>
#include <string.h>

#include "ws.h"
#include "ws_lua.h"

#define ENGINE_MT "ws.core.engine"
#define SCRATCH_KEEP_MAX (1u << 20)

typedef struct {
  ws_engine e;
  int live;        /* 0 once freed: every method then reports "closed" */
  int hold;        /* output stays queued in the engine (a transport
                      writes it); send & co. return the queued size */
  uint8_t *scratch; /* writable copy of the bytes being fed */
  size_t scratch_cap;
} lengine;

static lengine *check_engine(lua_State *L) {
  lengine *le = (lengine *)luaL_checkudata(L, 1, ENGINE_MT);
  if (!le->live) luaL_error(L, "attempt to use a freed protocol engine");
  return le;
}

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

static void engine_release(lengine *le) {
  if (le->live) ws_engine_free(&le->e);
  free(le->scratch);
  le->scratch = NULL;
  le->scratch_cap = 0;
  le->live = 0;
}

static int l_engine_gc(lua_State *L) {
  engine_release((lengine *)luaL_checkudata(L, 1, ENGINE_MT));
  return 0;
}

static void set_str(lua_State *L, const char *k, const void *p, size_t n) {
  lua_pushlstring(L, (const char *)p, n);
  lua_setfield(L, -2, k);
}

static void set_int(lua_State *L, const char *k, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}

static void set_lit(lua_State *L, const char *k, const char *v) {
  lua_pushstring(L, v);
  lua_setfield(L, -2, k);
}

static void push_code_reason(lua_State *L, int code, const uint8_t *r,
                             size_t rlen) {
  lua_createtable(L, 0, 2);
  set_int(L, "code", code);
  set_str(L, "reason", r, rlen);
}

/* Turn an event into the table DESIGN.md describes. */
static void push_event(lua_State *L, const ws_engine *e, const ws_event *ev) {
  const char *name;
  switch (ev->type) {
    case WS_EV_MESSAGE:
      lua_createtable(L, 0, 3);
      set_lit(L, "type", "message");
      set_str(L, "data", ev->data, ev->len);
      set_lit(L, "kind", ev->kind == WS_OP_TEXT ? "text" : "binary");
      return;
    case WS_EV_PING:
    case WS_EV_PONG:
      lua_createtable(L, 0, 2);
      set_lit(L, "type", ev->type == WS_EV_PING ? "ping" : "pong");
      set_str(L, "data", ev->data, ev->len);
      return;
    default:
      break;
  }
  lua_createtable(L, 0, 10);
  set_lit(L, "type", "close");
  set_int(L, "code", ev->code);
  name = ws_code_name(ev->code);
  if (name) set_lit(L, "name", name);
  set_str(L, "reason", ev->reason, ev->reason_len);
  lua_pushboolean(L, ev->clean);
  lua_setfield(L, -2, "clean");
  set_lit(L, "initiator", ev->initiator == WS_BY_LOCAL    ? "local"
                          : ev->initiator == WS_BY_REMOTE ? "remote"
                                                          : "transport");
  if (ev->error_name) set_lit(L, "error", ev->error_name);
  if (ev->sent_code) {
    push_code_reason(L, ev->sent_code, ev->sent_reason, ev->sent_reason_len);
    lua_setfield(L, -2, "sent");
  }
  if (ev->received_code) {
    push_code_reason(L, ev->received_code, e->received_reason,
                     e->received_reason_len);
    lua_setfield(L, -2, "received");
  }
}

lua_Integer ws_lua_deliver(lua_State *L, ws_engine *e, uint8_t *buf,
                           size_t len, int queue, lua_Integer tail) {
  size_t pos = 0;
  for (;;) {
    ws_event ev;
    pos += ws_engine_recv(e, buf + pos, len - pos, &ev);
    if (ev.type == WS_EV_NONE) break;
    push_event(L, e, &ev);
    lua_rawseti(L, queue, (int)++tail);
  }
  {
    /* This queue-passing form fails at once (no deferral). */
    ws_event ev;
    if (ws_engine_fail_pending(e, &ev)) {
      push_event(L, e, &ev);
      lua_rawseti(L, queue, (int)++tail);
    }
  }
  return tail;
}

ws_engine *ws_lua_check_engine(lua_State *L, int idx) {
  lengine *le = (lengine *)luaL_checkudata(L, idx, ENGINE_MT);
  if (!le->live) luaL_error(L, "attempt to use a freed protocol engine");
  return &le->e;
}

/* engine:feed(bytes, queue, tail) -> new tail. Appends an event table at
 * queue[tail + 1], ... for everything the bytes complete. */
static int l_feed(lua_State *L) {
  lengine *le = check_engine(L);
  size_t len;
  const char *s = luaL_checklstring(L, 2, &len);
  lua_Integer tail;
  luaL_checktype(L, 3, LUA_TTABLE);
  tail = luaL_checkinteger(L, 4);
  if (len > le->scratch_cap) {
    size_t cap = le->scratch_cap ? le->scratch_cap : 4096;
    uint8_t *p;
    while (cap < len) cap = cap > SIZE_MAX / 2 ? len : cap * 2;
    p = (uint8_t *)realloc(le->scratch, cap);
    if (p == NULL) return luaL_error(L, "not enough memory");
    le->scratch = p;
    le->scratch_cap = cap;
  }
  if (len) memcpy(le->scratch, s, len);
  tail = ws_lua_deliver(L, &le->e, le->scratch, len, 3, tail);
  /* Don't let one huge read pin a huge buffer for the connection's life. */
  if (le->scratch_cap > SCRATCH_KEEP_MAX) {
    free(le->scratch);
    le->scratch = NULL;
    le->scratch_cap = 0;
  }
  lua_pushinteger(L, tail);
  return 1;
}

/* engine:eof(queue, tail) -> new tail */
static int l_eof(lua_State *L) {
  lengine *le = check_engine(L);
  lua_Integer tail;
  ws_event ev;
  luaL_checktype(L, 2, LUA_TTABLE);
  tail = luaL_checkinteger(L, 3);
  if (ws_engine_eof(&le->e, &ev)) {
    push_event(L, &le->e, &ev);
    lua_rawseti(L, 2, (int)++tail);
  }
  lua_pushinteger(L, tail);
  return 1;
}

/* Push all pending output as one string and mark it written. */
static int push_output(lua_State *L, ws_engine *e) {
  size_t n;
  const uint8_t *p = ws_engine_output(e, &n);
  lua_pushlstring(L, (const char *)p, n);
  ws_engine_output_consume(e, n);
  return 1;
}

/* Map a failed call to nil, message (data or state problems) or raise
 * (programmer errors). */
static int send_result(lua_State *L, lengine *le, int r, const char *fn) {
  if (r == 0) {
    if (le->hold) {
      /* the stream position just past these bytes (see positions) */
      lua_pushnumber(L, (lua_Number)ws_engine_queued(&le->e));
      return 1;
    }
    return push_output(L, &le->e);
  }
  switch (r) {
    case WS_ESTATE:
      lua_pushnil(L);
      lua_pushfstring(L, "connection is %s", state_name(le->e.state));
      return 2;
    case WS_EUTF8:
    case WS_ENOMEM:
    case WS_ERAND:
      lua_pushnil(L);
      lua_pushstring(L, ws_strerror(r));
      return 2;
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

/* engine:send(data, kind, fragment) -> bytes | nil, err */
static int l_send(lua_State *L) {
  lengine *le = check_engine(L);
  size_t len;
  const char *s = luaL_checklstring(L, 2, &len);
  ws_opcode kind = check_kind(L, 3, "send");
  lua_Integer frag = luaL_optinteger(L, 4, 0);
  if (frag < 0) return luaL_argerror(L, 4, "fragment size must be >= 0");
  if (le->e.sending)
    return luaL_error(L, "send: %s", ws_strerror(WS_EFRAGMENT));
  return send_result(L, le,
                     ws_engine_send(&le->e, kind, (const uint8_t *)s, len,
                                    (size_t)frag),
                     "send");
}

/* engine:send_part(data, kind, fin) -> bytes | nil, err */
static int l_send_part(lua_State *L) {
  lengine *le = check_engine(L);
  size_t len;
  const char *s = luaL_checklstring(L, 2, &len);
  ws_opcode kind = check_kind(L, 3, "send_part");
  return send_result(L, le,
                     ws_engine_send_part(&le->e, kind, (const uint8_t *)s, len,
                                         lua_toboolean(L, 4)),
                     "send_part");
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

/* engine:close(code, reason) -> bytes | nil, err. code 0 or nil: no
 * status code in the frame. */
static int l_close(lua_State *L) {
  lengine *le = check_engine(L);
  lua_Integer code = luaL_optinteger(L, 2, 0);
  size_t rlen;
  const char *reason = luaL_optlstring(L, 3, "", &rlen);
  int r;
  if (code != 0 && !ws_code_valid((int)code)) {
    const char *name =
        code > 0 && code < 65536 ? ws_code_name((int)code) : NULL;
    return luaL_error(L,
                      "bad argument #1 to 'close' (close code %d%s%s%s may "
                      "not be sent)",
                      (int)code, name ? " (" : "", name ? name : "",
                      name ? ")" : "");
  }
  if (code == 0 && rlen > 0)
    return luaL_error(L, "bad argument #2 to 'close' (a reason needs a "
                         "close code)");
  if (rlen > WS_CONTROL_MAX - 2)
    return luaL_error(L, "bad argument #2 to 'close' (reason is %d bytes, "
                         "at most 123 allowed)", (int)rlen);
  r = ws_engine_close(&le->e, (int)code, (const uint8_t *)reason, rlen);
  if (r == WS_EREASON_UTF8) {
    lua_pushnil(L);
    lua_pushstring(L, "close reason is not valid UTF-8");
    return 2;
  }
  return send_result(L, le, r, "close");
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
  lengine *le = (lengine *)luaL_checkudata(L, 1, ENGINE_MT);
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
    {"feed", l_feed},   {"eof", l_eof},
    {"send", l_send},   {"send_part", l_send_part},
    {"ping", l_ping},   {"pong", l_pong},
    {"close", l_close}, {"take_output", l_take_output},
    {"state", l_state}, {"buffered_amount", l_buffered},
    {"hold_output", l_hold_output}, {"written", l_written},
    {"free", l_engine_gc}, {NULL, NULL}};

static const luaL_Reg engine_functions[] = {{"engine", l_engine},
                                            {NULL, NULL}};

/* Declared in ws_lua.h; called from luaopen_ws_core. */
void ws_lua_open_engine(lua_State *L) {
  if (luaL_newmetatable(L, ENGINE_MT)) {
    lua_pushcfunction(L, l_engine_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, l_engine_gc);
    lua_setfield(L, -2, "__close");
    ws_newlib(L, engine_methods);
    lua_setfield(L, -2, "__index");
    lua_pushliteral(L, ENGINE_MT);
    lua_setfield(L, -2, "__name");
  }
  lua_pop(L, 1);
  ws_setfuncs(L, engine_functions, 0);
}

