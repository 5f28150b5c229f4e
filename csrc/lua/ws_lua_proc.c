/*
 * Processes, for running a server on every core (ws.workers): fork, signal
 * and reap worker processes. POSIX; Linux also gets the parent-death
 * signal so a worker never outlives its parent.
 *
 *   core.fork()              -> pid (0 in the child) | nil, errname, message
 *   core.kill(pid[, sig])    sig "TERM" (default), "KILL" or "INT"
 *                            -> true | nil, errname, message
 *   core.wait(pid[, block])  -> nil (still running, only when block is
 *                            false) | "exited", status | "signaled", signal
 *                            | nil, errname, message
 *   core.getpid()            -> pid
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "ws_lua.h"

static int push_errno(lua_State *L, int err) {
  lua_pushnil(L);
  lua_pushstring(L, err == EAGAIN ? "again" : err == ESRCH ? "nosuch"
                    : err == ECHILD ? "nochild" : err == EPERM ? "perm"
                    : "system");
  lua_pushstring(L, strerror(err));
  return 3;
}

static int l_fork(lua_State *L) {
  pid_t parent = getpid(), pid;
  (void)fflush(NULL); /* nothing buffered is written twice */
  pid = fork();
  if (pid < 0) return push_errno(L, errno);
#ifdef __linux__
  if (pid == 0) {
    /* die with the parent; if it is gone already, go now */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(1);
  }
#else
  (void)parent;
#endif
  lua_pushinteger(L, (lua_Integer)pid);
  return 1;
}

static int l_kill(lua_State *L) {
  lua_Integer pid = luaL_checkinteger(L, 1);
  static const char *const names[] = {"TERM", "KILL", "INT", NULL};
  static const int sigs[] = {SIGTERM, SIGKILL, SIGINT};
  int which = luaL_checkoption(L, 2, "TERM", names);
  if (pid <= 0) return luaL_argerror(L, 1, "a process id > 0 expected");
  if (kill((pid_t)pid, sigs[which]) != 0) return push_errno(L, errno);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_wait(lua_State *L) {
  lua_Integer pid = luaL_checkinteger(L, 1);
  int block = lua_isnoneornil(L, 2) ? 1 : lua_toboolean(L, 2);
  int status = 0;
  pid_t r;
  if (pid <= 0) return luaL_argerror(L, 1, "a process id > 0 expected");
  do {
    r = waitpid((pid_t)pid, &status, block ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r < 0) return push_errno(L, errno);
  if (r == 0) {
    lua_pushnil(L);
    return 1;
  }
  if (WIFEXITED(status)) {
    lua_pushliteral(L, "exited");
    lua_pushinteger(L, WEXITSTATUS(status));
  } else {
    lua_pushliteral(L, "signaled");
    lua_pushinteger(L, WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  }
  return 2;
}

static int l_getpid(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)getpid());
  return 1;
}

static const luaL_Reg proc_functions[] = {{"fork", l_fork},
                                          {"kill", l_kill},
                                          {"wait", l_wait},
                                          {"getpid", l_getpid},
                                          {NULL, NULL}};

/* Declared in ws_lua.h; called from luaopen_ws_core. */
void ws_lua_open_proc(lua_State *L) { ws_setfuncs(L, proc_functions, 0); }
