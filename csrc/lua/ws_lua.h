/*
 * The binding's one internal header: the few Lua C API differences between
 * 5.1/LuaJIT and 5.2-5.4 that the binding touches, papered over in one
 * place, and what the binding files share. Calls between the files run one
 * way: ws_lua.c opens every part; ws_lua_net.c feeds engines through the
 * engine file's functions, and ws_lua_handshake.c builds a failed
 * handshake's close event with them; ws_lua_resolve.c uses ws_lua_net.c's
 * helpers; the engine file uses nothing from the others.
 */
#ifndef LUA_WS_LUA_H
#define LUA_WS_LUA_H

#include <stdint.h>

#include <lauxlib.h>
#include <lua.h>

/* LuaJIT: its luaconf.h names its directory; or its own header is there */
#if defined(LUA_LJDIR)
#define WS_LUAJIT 1
#elif defined(__has_include)
#if __has_include(<luajit.h>)
#define WS_LUAJIT 1
#endif
#endif

#if LUA_VERSION_NUM < 502
#define ws_rawlen(L, i) lua_objlen(L, (i))
#define ws_newlib(L, l) (lua_newtable(L), ws_setfuncs(L, (l), 0))
#define ws_setfuncs(L, l, n) ws_compat_setfuncs(L, (l), (n))
static inline void ws_compat_setfuncs(lua_State *L, const luaL_Reg *l,
                                      int nup) {
  luaL_checkstack(L, nup + 1, "too many upvalues");
  for (; l->name != NULL; l++) {
    int i;
    for (i = 0; i < nup; i++) lua_pushvalue(L, -nup);
    lua_pushcclosure(L, l->func, nup);
    lua_setfield(L, -(nup + 2), l->name);
  }
  lua_pop(L, nup);
}
static inline void *ws_testudata(lua_State *L, int i, const char *tname) {
  void *p = lua_touserdata(L, i);
  if (p == NULL || !lua_getmetatable(L, i)) return NULL;
  lua_getfield(L, LUA_REGISTRYINDEX, tname);
  if (!lua_rawequal(L, -1, -2)) p = NULL;
  lua_pop(L, 2);
  return p;
}
#define ws_setmetatable(L, tname) \
  (lua_getfield(L, LUA_REGISTRYINDEX, (tname)), lua_setmetatable(L, -2))
/* t[p] for a light userdata key p, t at a pseudo-index or absolute i */
#define ws_rawgetp(L, i, p) (lua_pushlightuserdata(L, (void *)(p)), \
                             lua_rawget(L, (i)))
#define ws_rawsetp(L, i, p) (lua_pushlightuserdata(L, (void *)(p)), \
                             lua_insert(L, -2), lua_rawset(L, (i)))
#else
#define ws_rawgetp(L, i, p) ((void)lua_rawgetp(L, (i), (p)))
#define ws_rawsetp(L, i, p) lua_rawsetp(L, (i), (p))
#define ws_rawlen(L, i) lua_rawlen(L, (i))
#define ws_newlib(L, l) luaL_newlib(L, (l))
#define ws_setfuncs(L, l, n) luaL_setfuncs(L, (l), (n))
#define ws_testudata(L, i, t) luaL_testudata(L, (i), (t))
#define ws_setmetatable(L, tname) luaL_setmetatable(L, (tname))
#endif

/* lua_newuserdata is a macro for lua_newuserdatauv(L, sz, 1) in 5.4. */
#define ws_newuserdata(L, sz) lua_newuserdata(L, (sz))

/* A userdata's one user value: 5.4's first user value, 5.2/5.3's user
 * value, 5.1/LuaJIT's environment table (a table only). get pushes it;
 * set pops the value at the top into the userdata at index i (absolute). */
#if LUA_VERSION_NUM >= 504
#define ws_getuservalue(L, i) ((void)lua_getiuservalue(L, (i), 1))
#define ws_setuservalue(L, i) ((void)lua_setiuservalue(L, (i), 1))
#elif LUA_VERSION_NUM >= 502
#define ws_getuservalue(L, i) ((void)lua_getuservalue(L, (i)))
#define ws_setuservalue(L, i) lua_setuservalue(L, (i))
#else
#define ws_getuservalue(L, i) lua_getfenv(L, (i))
#define ws_setuservalue(L, i) ((void)lua_setfenv(L, (i)))
#endif

/* The read buffer: one per Lua state, shared by every socket read and
 * engine feed of that state, so that no connection owns one. It is a
 * userdata in the registry. Taking it pushes it (the stack keeps it
 * alive) and clears the registry slot until it is given back, so a call
 * re-entered meanwhile (a finalizer run by an allocation) takes a fresh
 * one instead of overwriting bytes still in use. After an error it is
 * simply not given back, and the next take makes a new one. It holds
 * 256 KiB so that a frame of up to that size read at once is whole in
 * it: the engine then unmasks it in place and hands the payload out from
 * there, instead of gathering it in its message buffer (one copy less). */
#define WS_LUA_BUF_SIZE 262144
/* Its registry key: a pointer (a lookup by a string key would intern the
 * string on every call). Defined in ws_lua.c. */
extern const char ws_lua_buf_key;

static inline uint8_t *ws_lua_buffer_take(lua_State *L) {
  uint8_t *p;
  ws_rawgetp(L, LUA_REGISTRYINDEX, &ws_lua_buf_key);
  p = (uint8_t *)lua_touserdata(L, -1);
  if (p != NULL) {
    lua_pushnil(L);
    ws_rawsetp(L, LUA_REGISTRYINDEX, &ws_lua_buf_key);
    return p;
  }
  lua_pop(L, 1);
  return (uint8_t *)ws_newuserdata(L, WS_LUA_BUF_SIZE);
}

/* Give back the buffer taken to stack index idx (left on the stack). */
static inline void ws_lua_buffer_give(lua_State *L, int idx) {
  lua_pushvalue(L, idx);
  ws_rawsetp(L, LUA_REGISTRYINDEX, &ws_lua_buf_key);
}

/* The userdata at idx if its metatable is the one registered under the
 * registry pointer key (a pointer lookup, where luaL_checkudata's by
 * name interns the name on every call); anything else gets
 * luaL_checkudata's error for the class name. */
static inline void *ws_lua_checkudata_p(lua_State *L, int idx,
                                        const void *key, const char *name) {
  void *p = lua_touserdata(L, idx);
  if (p != NULL && lua_getmetatable(L, idx)) {
    int same;
    ws_rawgetp(L, LUA_REGISTRYINDEX, key);
    same = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    if (same) return p;
  }
  return luaL_checkudata(L, idx, name);
}

/* Exported only from the module's entry point. */
#if defined(__GNUC__)
#define WS_EXPORT __attribute__((visibility("default")))
#else
#define WS_EXPORT
#endif

/* Each part of ws.core registers its functions (and its userdata
 * metatables) into the module table at the top of the stack. Defined in
 * ws_lua_*.c; hidden symbols. */
void ws_lua_open_engine(lua_State *L);
void ws_lua_open_handshake(lua_State *L);
void ws_lua_open_net(lua_State *L);
void ws_lua_open_resolve(lua_State *L);
void ws_lua_open_pmd(lua_State *L);
void ws_lua_open_proc(lua_State *L);
void ws_lua_open_alloc(lua_State *L);

/* Defined in ws_lua_engine.c, for the other binding files. */
#include "ws.h"
/* The engine inside the ws.core engine userdata at idx; raises if idx is
 * not a live engine. */
ws_engine *ws_lua_check_engine(lua_State *L, int idx);
/* Writes a[0..alen) then b[0..blen) as far as it can now: 0 with *n the
 * bytes taken, or nonzero on failure. */
typedef int (*ws_lua_write2)(void *ctx, const uint8_t *a, size_t alen,
                             const uint8_t *b, size_t blen, size_t *n);
/* sock:send_message's body, with the engine at 2, the data at 3 and the
 * kind at 4: engine:send's results. With the output empty (and a server
 * engine holding its output, no compression), the frame goes to w
 * straight from the data string, and only what w did not take is copied
 * into the output; otherwise (and with w NULL) it is engine:send. */
int ws_lua_engine_send_direct(lua_State *L, ws_lua_write2 w, void *ctx);
/* Run len bytes at buf (writable: payloads are unmasked in place) through
 * the engine userdata at idx (absolute; checked), appending one event
 * table per event to its queue. Bytes that come while a violation is
 * pending are not passed on (the engine would ignore them, and act on the
 * violation before the host answered what came first). Returns 1 if a
 * violation is pending afterwards, else 0. */
int ws_lua_engine_deliver(lua_State *L, int idx, uint8_t *buf, size_t len);
/* The bytes of one call are used: if a violation is pending and the queue
 * is empty, act on it now (its close event queued, its close frame in the
 * output). Returns how many events are queued. */
lua_Integer ws_lua_engine_settle(lua_State *L, int idx);
/* Push the table of an event (DESIGN.md's close event for WS_EV_CLOSE). */
void ws_lua_push_event(lua_State *L, const ws_event *ev);

/* Shared by the transport binding files (ws_lua_net.c defines these):
 * push nil, name[, msg] and return their count; the family's name
 * ("inet", "inet6"); check a port argument (1-65535, or 0 when allowed);
 * register a userdata class with __index methods, __gc/__close = close
 * and an optional __tostring. */
#include "ws_net.h"
int ws_lua_push_fail(lua_State *L, const char *name, const char *msg);
const char *ws_lua_family_name(ws_net_family f);
lua_Integer ws_lua_check_port(lua_State *L, int idx, int allow_zero);
void ws_lua_new_class(lua_State *L, const char *name, const luaL_Reg *methods,
                      lua_CFunction close, lua_CFunction tostring);

#endif
