/*
 * A cache of large freed blocks in front of the Lua state's allocator.
 *
 * Every message a connection receives becomes a Lua string of its size,
 * freed by the collector later. With glibc's malloc, a 64 KiB or 1 MiB
 * block freed at the top of the heap is given back to the kernel (brk
 * trim, munmap), and the next message maps and faults the same pages in
 * again: measured on the echo benchmark, that churn cost 30-45 % of the
 * 64 KiB rate and three quarters of the 1 MiB rate. LuaJIT's own
 * allocator maps every block over 128 KiB by itself and unmaps it when
 * freed (one mmap and one munmap per 1 MiB message: half the 1 MiB rate).
 * Here blocks of at least CACHE_MIN bytes that the collector frees are
 * kept (at most CACHE_SLOTS of them and CACHE_BYTES in all, the oldest
 * given back first) and handed out again for a request they fit, so a
 * steady stream of large messages allocates nothing. Blocks are reused
 * only for a request of at least 3/4 of their size, so little is wasted;
 * new large blocks are rounded up to an eighth of a power of two so that
 * later requests of nearby sizes fit.
 *
 * Only blocks this cache handed out are kept when freed (up to TRACKED
 * alive at once, with the size asked of the allocator for them, which is
 * what they can hold). Under PUC Lua only strings are (the type Lua gives
 * for a new object tells them): a table's or a buffer's old parts (a
 * table that grew to 10 000 entries leaves a trail of them) go straight
 * back. LuaJIT gives no type; its tables and buffers grow by realloc,
 * which the cache leaves alone, so what it sees are mostly strings too.
 *
 * Installed only where that is safe: the state's allocator is the
 * standard one (lauxlib's realloc and free under Lua 5.2-5.4 on glibc,
 * LuaJIT's own), which ignores the old size it is given. Elsewhere (Lua
 * 5.1, a host's own allocator, another libc) nothing changes. At
 * lua_close the cache is emptied and the standard allocator put back (a
 * finalizer on a registry userdata); core.alloc_trim() empties it at any
 * time, core.alloc_stats() tells what it holds.
 */
#include "ws_lua.h"

#if (LUA_VERSION_NUM >= 502 && defined(__GLIBC__)) || defined(WS_LUAJIT)
#include <stdlib.h>
#include <string.h>

#define CACHE_MIN ((size_t)16 * 1024)
#define CACHE_MAX_BLOCK ((size_t)8 * 1024 * 1024)
#define CACHE_SLOTS 16
#define CACHE_BYTES ((size_t)16 * 1024 * 1024)
#define TRACKED 64 /* large strings alive at once whose blocks may be kept */

typedef struct {
  lua_Alloc f; /* the state's own allocator (lauxlib's) */
  void *ud;
  size_t bytes; /* bytes held (sizes asked of the allocator) */
  int n;
  struct {
    void *p;
    size_t cap; /* the size asked of the allocator for it */
  } slot[CACHE_SLOTS], track[TRACKED]; /* kept; handed out and alive */
  int nstr; /* entries of track */
  /* counters for core.alloc_stats (specs, benchmarks) */
  lua_Integer hits, misses, kept;
} block_cache;

static const char cache_key = 0;

/* The registry userdata: the cache, NULL once lua_close emptied it. */
typedef struct {
  block_cache *c;
} cache_box;

/* n rounded up to a multiple of an eighth of its highest power of two */
static size_t round_class(size_t n) {
  size_t p = 1;
  while (p <= n / 2) p *= 2; /* p: highest power of two <= n */
  p /= 8;
  if (p == 0) return n;
  return (n + p - 1) / p * p;
}

/* A kept block for nsize bytes, its size in *cap; NULL if none fits. */
static void *take(block_cache *c, size_t nsize, size_t *cap_out) {
  int i, best = -1;
  for (i = 0; i < c->n; i++) {
    size_t cap = c->slot[i].cap;
    if (cap >= nsize && cap - cap / 4 <= nsize &&
        (best < 0 || cap < c->slot[best].cap))
      best = i;
  }
  if (best < 0) return NULL;
  {
    void *p = c->slot[best].p;
    *cap_out = c->slot[best].cap;
    c->bytes -= c->slot[best].cap;
    c->n--;
    memmove(&c->slot[best], &c->slot[best + 1],
            (size_t)(c->n - best) * sizeof c->slot[0]);
    return p;
  }
}

/* Keep ptr (a block of cap bytes), making room by giving the oldest blocks
 * back: the slots are in the order they were freed, so sizes the
 * program no longer asks for age out. */
static void keep(block_cache *c, void *ptr, size_t cap) {
  while (c->n > 0 && (c->n == CACHE_SLOTS || c->bytes + cap > CACHE_BYTES)) {
    c->f(c->ud, c->slot[0].p, c->slot[0].cap, 0);
    c->bytes -= c->slot[0].cap;
    c->n--;
    memmove(&c->slot[0], &c->slot[1], (size_t)c->n * sizeof c->slot[0]);
  }
  c->slot[c->n].p = ptr;
  c->slot[c->n].cap = cap;
  c->n++;
  c->bytes += cap;
  c->kept++;
}

/* Forget ptr as a block handed out: its size, 0 if it was not one. */
static size_t untrack(block_cache *c, const void *ptr) {
  int i;
  for (i = 0; i < c->nstr; i++) {
    if (c->track[i].p == ptr) {
      size_t cap = c->track[i].cap;
      c->track[i] = c->track[--c->nstr];
      return cap;
    }
  }
  return 0;
}

/* Whether a new block of nsize bytes may come from the cache (osize:
 * the type of the object under PUC Lua; LuaJIT passes 0). */
static int cacheable(const block_cache *c, size_t osize, size_t nsize) {
  if (nsize < CACHE_MIN || nsize > CACHE_MAX_BLOCK || c->nstr == TRACKED)
    return 0;
#ifdef WS_LUAJIT
  (void)osize;
  return 1;
#else
  return (osize & 0x0F) == LUA_TSTRING;
#endif
}

static void *cache_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  block_cache *c = (block_cache *)ud;
  if (ptr == NULL) { /* a new block */
    void *p;
    size_t cap = nsize;
    if (!cacheable(c, osize, nsize)) return c->f(c->ud, NULL, osize, nsize);
    p = take(c, nsize, &cap);
    if (p != NULL) {
      c->hits++;
    } else {
      c->misses++;
      cap = round_class(nsize);
      p = c->f(c->ud, NULL, osize, cap);
      if (p == NULL) return NULL;
    }
    c->track[c->nstr].p = p;
    c->track[c->nstr].cap = cap;
    c->nstr++;
    return p;
  }
  if (osize >= CACHE_MIN && osize <= CACHE_MAX_BLOCK) {
    size_t cap = untrack(c, ptr);
    if (cap != 0 && nsize == 0) { /* a block of ours freed: kept */
      keep(c, ptr, cap);
      return NULL;
    }
    /* a block of ours resized goes on as the allocator's */
  }
  return c->f(c->ud, ptr, osize, nsize); /* a free or a resize */
}

/* lua_close: the blocks go back, and so does the standard allocator
 * (everything the cache handed out came from it). */
static int cache_gc(lua_State *L) {
  cache_box *box = (cache_box *)lua_touserdata(L, 1);
  block_cache *c = box->c;
  int i;
  if (c == NULL) return 0;
  box->c = NULL;
  lua_setallocf(L, c->f, c->ud);
  for (i = 0; i < c->n; i++) c->f(c->ud, c->slot[i].p, c->slot[i].cap, 0);
  c->f(c->ud, c, sizeof *c, 0);
  return 0;
}

/* core.alloc_stats() -> { installed, blocks, bytes, hits, misses, kept } */
static int l_alloc_stats(lua_State *L) {
  block_cache *c = NULL;
  ws_rawgetp(L, LUA_REGISTRYINDEX, &cache_key);
  if (lua_touserdata(L, -1) != NULL) c = ((cache_box *)lua_touserdata(L, -1))->c;
  lua_pop(L, 1);
  lua_createtable(L, 0, 6);
  lua_pushboolean(L, c != NULL);
  lua_setfield(L, -2, "installed");
  lua_pushinteger(L, c ? c->n : 0);
  lua_setfield(L, -2, "blocks");
  lua_pushinteger(L, c ? (lua_Integer)c->bytes : 0);
  lua_setfield(L, -2, "bytes");
  lua_pushinteger(L, c ? c->hits : 0);
  lua_setfield(L, -2, "hits");
  lua_pushinteger(L, c ? c->misses : 0);
  lua_setfield(L, -2, "misses");
  lua_pushinteger(L, c ? c->kept : 0);
  lua_setfield(L, -2, "kept");
  return 1;
}

/* core.alloc_trim() -> bytes: give every cached block back to the
 * allocator (after a burst of large messages, say). */
static int l_alloc_trim(lua_State *L) {
  block_cache *c = NULL;
  size_t bytes = 0;
  ws_rawgetp(L, LUA_REGISTRYINDEX, &cache_key);
  if (lua_touserdata(L, -1) != NULL) c = ((cache_box *)lua_touserdata(L, -1))->c;
  lua_pop(L, 1);
  if (c != NULL) {
    bytes = c->bytes;
    while (c->n > 0) {
      c->n--;
      c->f(c->ud, c->slot[c->n].p, c->slot[c->n].cap, 0);
    }
    c->bytes = 0;
  }
  lua_pushinteger(L, (lua_Integer)bytes);
  return 1;
}

void ws_lua_open_alloc(lua_State *L) {
  lua_Alloc std, cur;
  void *cur_ud;
  lua_State *probe;
  lua_pushcfunction(L, l_alloc_stats);
  lua_setfield(L, -2, "alloc_stats");
  lua_pushcfunction(L, l_alloc_trim);
  lua_setfield(L, -2, "alloc_trim");
  ws_rawgetp(L, LUA_REGISTRYINDEX, &cache_key);
  if (!lua_isnil(L, -1)) { /* installed already (a second luaopen) */
    lua_pop(L, 1);
    return;
  }
  lua_pop(L, 1);
  /* lauxlib's allocator, as a fresh state has it */
  probe = luaL_newstate();
  if (probe == NULL) return;
  std = lua_getallocf(probe, NULL);
  lua_close(probe);
  cur = lua_getallocf(L, &cur_ud);
  if (cur != std) return; /* a host's own: leave it alone */
  {
    block_cache *c = (block_cache *)cur(cur_ud, NULL, 0, sizeof *c);
    cache_box *box;
    if (c == NULL) return;
    c->f = cur;
    c->ud = cur_ud;
    c->bytes = 0;
    c->n = 0;
    c->nstr = 0;
    c->hits = c->misses = c->kept = 0;
    box = (cache_box *)ws_newuserdata(L, sizeof *box);
    box->c = c;
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, cache_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    ws_rawsetp(L, LUA_REGISTRYINDEX, &cache_key);
    lua_setallocf(L, cache_alloc, c);
  }
}

#else

static int l_alloc_stats(lua_State *L) {
  lua_createtable(L, 0, 1);
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "installed");
  return 1;
}

static int l_alloc_trim(lua_State *L) {
  lua_pushinteger(L, 0);
  return 1;
}

void ws_lua_open_alloc(lua_State *L) {
  lua_pushcfunction(L, l_alloc_stats);
  lua_setfield(L, -2, "alloc_stats");
  lua_pushcfunction(L, l_alloc_trim);
  lua_setfield(L, -2, "alloc_trim");
}

#endif
