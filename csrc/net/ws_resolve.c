/*
 * Name resolution off the caller's thread. getaddrinfo can block for
 * seconds on DNS, which an event loop or a game's frame loop must not do:
 * each lookup runs in a detached thread of its own and reports through a
 * pipe whose read end the caller's poller watches.
 *
 * The resolver is shared by the thread and the caller (two references);
 * whichever lets go last frees it, so a caller may give up on a lookup
 * that is still running.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ws_net.h"

struct ws_resolver {
  pthread_mutex_t lock;
  int refs;           /* the thread's and the caller's */
  int done;           /* set (under lock) once out/n/msg are final */
  int pipe_fd[2];     /* the thread writes one byte when done */
  char *host;
  int port;
  ws_net_family family;
  int n;              /* addresses found, or -1 */
  const char *msg;    /* static, when n == -1 */
  ws_net_addr out[WS_RESOLVE_MAX];
};

static void destroy(ws_resolver *r) {
  if (r->pipe_fd[0] >= 0) close(r->pipe_fd[0]);
  if (r->pipe_fd[1] >= 0) close(r->pipe_fd[1]);
  pthread_mutex_destroy(&r->lock);
  free(r->host);
  free(r);
}

static void release(ws_resolver *r) {
  int last;
  pthread_mutex_lock(&r->lock);
  last = --r->refs == 0;
  pthread_mutex_unlock(&r->lock);
  if (last) destroy(r);
}

static void *run(void *arg) {
  ws_resolver *r = (ws_resolver *)arg;
  const char *msg = NULL;
  /* out[] is the caller's only after done is set, under the lock */
  int n = ws_net_resolve(r->host, r->port, r->family, r->out,
                         WS_RESOLVE_MAX, &msg);
  ssize_t w;
  pthread_mutex_lock(&r->lock);
  r->n = n;
  r->msg = msg;
  r->done = 1;
  pthread_mutex_unlock(&r->lock);
  do {
    w = write(r->pipe_fd[1], "", 1);
  } while (w < 0 && errno == EINTR);
  release(r);
  return NULL;
}

static int set_flags(int fd) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
      fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
    return errno;
  return 0;
}

ws_resolver *ws_resolver_start(const char *host, int port,
                               ws_net_family family, int *err) {
  ws_resolver *r = (ws_resolver *)calloc(1, sizeof *r);
  pthread_attr_t attr;
  pthread_t thread;
  sigset_t all, old;
  int rc;
  if (r == NULL) {
    *err = ENOMEM;
    return NULL;
  }
  r->pipe_fd[0] = r->pipe_fd[1] = -1;
  r->port = port;
  r->family = family;
  r->host = strdup(host);
  if (pthread_mutex_init(&r->lock, NULL) != 0) {
    free(r->host);
    free(r);
    *err = ENOMEM;
    return NULL;
  }
  if (r->host == NULL) {
    destroy(r);
    *err = ENOMEM;
    return NULL;
  }
  if (pipe(r->pipe_fd) != 0) {
    *err = errno;
    destroy(r);
    return NULL;
  }
  if ((rc = set_flags(r->pipe_fd[0])) != 0 ||
      (rc = set_flags(r->pipe_fd[1])) != 0) {
    *err = rc;
    destroy(r);
    return NULL;
  }
  r->refs = 2;
  /* the thread takes no signals: they stay with the host's threads */
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  rc = pthread_attr_init(&attr);
  if (rc == 0) {
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    rc = pthread_create(&thread, &attr, run, r);
    pthread_attr_destroy(&attr);
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc != 0) {
    destroy(r);
    *err = rc;
    return NULL;
  }
  return r;
}

int ws_resolver_fd(const ws_resolver *r) { return r->pipe_fd[0]; }

int ws_resolver_result(ws_resolver *r, const ws_net_addr **out, int *n,
                       const char **msg) {
  int done;
  pthread_mutex_lock(&r->lock);
  done = r->done;
  pthread_mutex_unlock(&r->lock);
  if (!done) return 0;
  *out = r->out;
  *n = r->n;
  *msg = r->msg;
  return 1;
}

void ws_resolver_free(ws_resolver *r) {
  if (r != NULL) release(r);
}
