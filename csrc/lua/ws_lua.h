/*
 * The binding's one internal header: the few Lua C API differences between
 * 5.1/LuaJIT and 5.2-5.4 that the binding touches, papered over in one
 * place, and what the binding files share. Calls between the files run one
 * way: ws_lua.c opens every part; ws_lua_net.c uses the engine file's
 * check function; ws_lua_resolve.c uses ws_lua_net.c's helpers; the engine
 * file uses nothing from the others.
 */
#ifndef LUA_WS_LUA_H
#define LUA_WS_LUA_H

#include <lauxlib.h>
#include <lua.h>

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
#else
#define ws_rawlen(L, i) lua_rawlen(L, (i))
#define ws_newlib(L, l) luaL_newlib(L, (l))
#define ws_setfuncs(L, l, n) luaL_setfuncs(L, (l), (n))
#define ws_testudata(L, i, t) luaL_testudata(L, (i), (t))
#define ws_setmetatable(L, tname) luaL_setmetatable(L, (tname))
#endif

/* lua_newuserdata is a macro for lua_newuserdatauv(L, sz, 1) in 5.4. */
#define ws_newuserdata(L, sz) lua_newuserdata(L, (sz))

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

/* For transports in other binding files (ws_lua_engine.c defines these). */
/* The engine inside the ws.core engine userdata at idx; raises if idx is
 * not a live engine. */
#include "ws.h"
ws_engine *ws_lua_check_engine(lua_State *L, int idx);
/* Run buf (writable; unmasked in place) through the engine, appending one
 * event table per event at queue[tail + 1], ...; returns the new tail. */
lua_Integer ws_lua_deliver(lua_State *L, ws_engine *e, uint8_t *buf,
                           size_t len, int queue, lua_Integer tail);

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
