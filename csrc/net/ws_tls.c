/*
 * TLS through OpenSSL on a non-blocking socket. See ws_tls.h.
 */
#define _POSIX_C_SOURCE 200809L

#include "ws_tls.h"

#include <arpa/inet.h>
#include <sys/socket.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "ws_net.h"

#define MSG_MAX 256

struct ws_tls_ctx {
  SSL_CTX *ssl_ctx;
  /* Our own socket BIO: OpenSSL's writes with write(2), which raises
   * SIGPIPE when the peer is gone and kills a process that did not
   * ignore it. A library must not change signal dispositions, so we
   * send with MSG_NOSIGNAL (ws_net_write) instead. One method per
   * context, because there may be no global state. */
  BIO_METHOD *bio_method;
  unsigned char *alpn;
  size_t alpn_len;
  int server, verify;
  unsigned refs;
};

struct ws_tls {
  SSL *ssl;
  ws_tls_ctx *ctx;
  int fd;
  int sys_err; /* errno of the last failed socket call in the BIO */
  int fatal;   /* a fatal error happened: no more I/O, no close_notify */
  int short_read; /* the last socket read got less than it asked for */
  char msg[MSG_MAX];
};

void ws_tls_config_init(ws_tls_config *cfg, int server) {
  static const unsigned char http11[] = "\x08http/1.1";
  memset(cfg, 0, sizeof *cfg);
  cfg->server = server;
  cfg->verify = 1;
  cfg->alpn = http11;
  cfg->alpn_len = sizeof http11 - 1;
}

/* ------------------------------------------------------------- errors */

/* Messages here are cut to the caller's buffer when too long, and a cut
 * message is still the best report there is: hence the (void) on every
 * snprintf (CERT ERR33-C), whose would-be length nothing needs. */

/* The text of the earliest error on OpenSSL's queue (the root cause; later
 * entries are the layers that passed it up), then empty the queue. */
static void queue_text(char *buf, size_t cap, const char *fallback) {
  unsigned long e = ERR_get_error();
  const char *reason;
  if (e == 0) {
    (void)snprintf(buf, cap, "%s", fallback);
    return;
  }
  reason = ERR_reason_error_string(e);
#ifdef ERR_SYSTEM_ERROR
  if (reason == NULL && ERR_SYSTEM_ERROR(e))
    reason = strerror((int)ERR_GET_REASON(e));
#endif
  if (reason == NULL && ERR_GET_LIB(e) == ERR_LIB_SYS)
    reason = strerror((int)ERR_GET_REASON(e));
  if (reason != NULL)
    (void)snprintf(buf, cap, "%s", reason);
  else
    ERR_error_string_n(e, buf, cap);
  ERR_clear_error();
}

static void ctx_error(char *err, size_t errlen, const char *what,
                      const char *file) {
  char reason[MSG_MAX];
  queue_text(reason, sizeof reason, "unknown error");
  if (file)
    (void)snprintf(err, errlen, "%s '%s': %s", what, file, reason);
  else
    (void)snprintf(err, errlen, "%s: %s", what, reason);
}

/* ------------------------------------------------------ the socket BIO */

static int bio_write(BIO *b, const char *buf, int len) {
  ws_tls *t = (ws_tls *)BIO_get_data(b);
  size_t n;
  int err;
  BIO_clear_retry_flags(b);
  err = ws_net_write(t->fd, buf, (size_t)len, &n);
  if (err == EAGAIN) {
    BIO_set_retry_write(b);
    return -1;
  }
  if (err != 0) {
    t->sys_err = err;
    return -1;
  }
  return (int)n;
}

static int bio_read(BIO *b, char *buf, int len) {
  ws_tls *t = (ws_tls *)BIO_get_data(b);
  size_t n;
  int err;
  BIO_clear_retry_flags(b);
  err = ws_net_read(t->fd, buf, (size_t)len, &n);
  if (err == EAGAIN) {
    BIO_set_retry_read(b);
    return -1;
  }
  if (err != 0) {
    t->sys_err = err;
    return -1;
  }
  t->short_read = n < (size_t)len;
  return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr) {
  (void)b;
  (void)num;
  (void)ptr;
  /* The socket has no buffer of its own to flush; everything else
   * (kTLS, datagram controls, ...) is not supported. */
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int bio_create(BIO *b) {
  BIO_set_init(b, 1);
  return 1;
}

static int bio_destroy(BIO *b) {
  (void)b;
  return 1;
}

/* -------------------------------------------------------------- contexts */

static int proto_version(ws_tls_version v) {
  return v == WS_TLS_1_3 ? TLS1_3_VERSION : TLS1_2_VERSION;
}

/* Server side of ALPN: our first protocol the client also offers. Written
 * out rather than SSL_select_next_proto, whose fallback answer is the
 * client's first protocol even when we support none of them. */
static int alpn_select(SSL *ssl, const unsigned char **out,
                       unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg) {
  const ws_tls_ctx *c = (const ws_tls_ctx *)arg;
  size_t i = 0;
  (void)ssl;
  while (i < c->alpn_len) {
    size_t len = c->alpn[i], j = 0;
    const unsigned char *name = c->alpn + i + 1;
    while (j < inlen) {
      size_t clen = in[j];
      if (j + 1 + clen > inlen) break; /* malformed: stop looking */
      if (clen == len && memcmp(in + j + 1, name, len) == 0) {
        *out = in + j + 1;
        *outlen = (unsigned char)clen;
        return SSL_TLSEXT_ERR_OK;
      }
      j += 1 + clen;
    }
    i += 1 + len;
  }
  return SSL_TLSEXT_ERR_NOACK;
}

static int alpn_valid(const unsigned char *p, size_t len) {
  size_t i = 0;
  if (len > 65535) return 0;
  while (i < len) {
    if (p[i] == 0 || i + 1 + p[i] > len) return 0;
    i += 1 + (size_t)p[i];
  }
  return 1;
}

static int load_trust(SSL_CTX *sc, const ws_tls_config *cfg, char *err,
                      size_t errlen) {
  if (cfg->ca_file == NULL && cfg->ca_path == NULL) {
    if (SSL_CTX_set_default_verify_paths(sc) != 1) {
      ctx_error(err, errlen, "cannot load the system trust store", NULL);
      return 0;
    }
    return 1;
  }
  if (SSL_CTX_load_verify_locations(sc, cfg->ca_file, cfg->ca_path) != 1) {
    ctx_error(err, errlen, cfg->ca_file ? "cannot load ca_file" : "cannot load ca_path",
              cfg->ca_file ? cfg->ca_file : cfg->ca_path);
    return 0;
  }
  return 1;
}

static int load_identity(SSL_CTX *sc, const ws_tls_config *cfg, char *err,
                         size_t errlen) {
  if (SSL_CTX_use_certificate_chain_file(sc, cfg->cert_file) != 1) {
    ctx_error(err, errlen, "cannot load cert_file", cfg->cert_file);
    return 0;
  }
  if (SSL_CTX_use_PrivateKey_file(sc, cfg->key_file, SSL_FILETYPE_PEM) != 1) {
    unsigned long e = ERR_peek_error();
    if (ERR_GET_LIB(e) == ERR_LIB_X509 &&
        ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH)
      goto mismatch;
    ctx_error(err, errlen, "cannot load key_file", cfg->key_file);
    return 0;
  }
  if (SSL_CTX_check_private_key(sc) == 1) return 1;
mismatch:
  ERR_clear_error();
  (void)snprintf(err, errlen, "key_file '%s' does not match cert_file '%s'",
                 cfg->key_file, cfg->cert_file);
  return 0;
}

static int configure(ws_tls_ctx *c, const ws_tls_config *cfg, char *err,
                     size_t errlen) {
  SSL_CTX *sc = c->ssl_ctx;
  int min = proto_version(cfg->min_version ? cfg->min_version : WS_TLS_1_2);

  if (SSL_CTX_set_min_proto_version(sc, min) != 1 ||
      (cfg->max_version &&
       SSL_CTX_set_max_proto_version(sc, proto_version(cfg->max_version)) != 1)) {
    ctx_error(err, errlen, "cannot set the TLS versions", NULL);
    return 0;
  }
  /* One call per option: the options type differs between 1.1.1 (unsigned
   * long) and 3.x (uint64_t). */
#ifdef SSL_OP_NO_RENEGOTIATION
  SSL_CTX_set_options(sc, SSL_OP_NO_RENEGOTIATION);
#endif
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
  /* A TCP close without close_notify reads as end of stream, as with plain
   * TCP: WebSocket frames its own messages and has its own close, so
   * truncation is detected above this layer. */
  SSL_CTX_set_options(sc, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
  if (cfg->server) SSL_CTX_set_options(sc, SSL_OP_CIPHER_SERVER_PREFERENCE);
  /* Partial writes and a moving buffer: the caller's outgoing buffer
   * grows (and may be reallocated) while a write is pending. */
  SSL_CTX_set_mode(sc, SSL_MODE_ENABLE_PARTIAL_WRITE |
                           SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                           SSL_MODE_RELEASE_BUFFERS);
  /* Read what the socket holds, not a record's header and then its body:
   * one recv for any number of records instead of two for each. */
  SSL_CTX_set_read_ahead(sc, 1);

  if (cfg->ciphers && SSL_CTX_set_cipher_list(sc, cfg->ciphers) != 1) {
    ctx_error(err, errlen, "bad ciphers", cfg->ciphers);
    return 0;
  }
  if (cfg->ciphersuites && SSL_CTX_set_ciphersuites(sc, cfg->ciphersuites) != 1) {
    ctx_error(err, errlen, "bad ciphersuites", cfg->ciphersuites);
    return 0;
  }
  if ((cfg->cert_file != NULL) != (cfg->key_file != NULL) ||
      (cfg->server && cfg->cert_file == NULL)) {
    (void)snprintf(err, errlen, "%s",
                   cfg->server ? "a server needs cert_file and key_file"
                               : "cert_file and key_file go together");
    return 0;
  }
  if (cfg->cert_file && !load_identity(sc, cfg, err, errlen)) return 0;

  if (cfg->server) {
    if (cfg->verify_client) {
      if (!load_trust(sc, cfg, err, errlen)) return 0;
      if (cfg->ca_file) {
        /* Tell clients which CAs we accept, so one holding several
         * certificates can pick. */
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg->ca_file);
        if (names) SSL_CTX_set_client_CA_list(sc, names);
        ERR_clear_error();
      }
      SSL_CTX_set_verify(sc, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                         NULL);
    }
    /* Needed for session resumption once client certificates are on. */
    SSL_CTX_set_session_id_context(sc, (const unsigned char *)"lua-ws", 6);
    if (c->alpn_len) SSL_CTX_set_alpn_select_cb(sc, alpn_select, c);
  } else {
    if (cfg->verify) {
      if (!load_trust(sc, cfg, err, errlen)) return 0;
      SSL_CTX_set_verify(sc, SSL_VERIFY_PEER, NULL);
    } else {
      SSL_CTX_set_verify(sc, SSL_VERIFY_NONE, NULL);
    }
    /* Note the inverted convention: 0 is success here. */
    if (c->alpn_len &&
        SSL_CTX_set_alpn_protos(sc, c->alpn, (unsigned)c->alpn_len) != 0) {
      ctx_error(err, errlen, "cannot set ALPN", NULL);
      return 0;
    }
  }
  return 1;
}

ws_tls_ctx *ws_tls_ctx_new(const ws_tls_config *cfg, char *err,
                           size_t errlen) {
  ws_tls_ctx *c;
  ERR_clear_error();
  if (cfg->alpn_len && !alpn_valid(cfg->alpn, cfg->alpn_len)) {
    (void)snprintf(err, errlen, "malformed ALPN protocol list");
    return NULL;
  }
  if (cfg->max_version && cfg->min_version > cfg->max_version) {
    (void)snprintf(err, errlen, "min_version is above max_version");
    return NULL;
  }
  if (OPENSSL_init_ssl(0, NULL) != 1 ||
      (c = (ws_tls_ctx *)calloc(1, sizeof *c)) == NULL) {
    (void)snprintf(err, errlen, "out of memory");
    return NULL;
  }
  c->refs = 1;
  c->server = cfg->server;
  c->verify = cfg->verify;
  if (cfg->alpn_len) {
    c->alpn = (unsigned char *)malloc(cfg->alpn_len);
    if (c->alpn == NULL) goto nomem;
    memcpy(c->alpn, cfg->alpn, cfg->alpn_len);
    c->alpn_len = cfg->alpn_len;
  }
  /* Not BIO_get_new_index(): it counts process-wide and past 255 runs into
   * the type's flag bits (or fails, in some versions), and contexts may be
   * made per connection. Nothing looks this type up. */
  c->bio_method = BIO_meth_new(BIO_TYPE_SOURCE_SINK, "lua-ws socket");
  if (c->bio_method == NULL || BIO_meth_set_write(c->bio_method, bio_write) != 1 ||
      BIO_meth_set_read(c->bio_method, bio_read) != 1 ||
      BIO_meth_set_ctrl(c->bio_method, bio_ctrl) != 1 ||
      BIO_meth_set_create(c->bio_method, bio_create) != 1 ||
      BIO_meth_set_destroy(c->bio_method, bio_destroy) != 1)
    goto nomem;
  c->ssl_ctx = SSL_CTX_new(cfg->server ? TLS_server_method() : TLS_client_method());
  if (c->ssl_ctx == NULL) goto nomem;
  if (!configure(c, cfg, err, errlen)) {
    ws_tls_ctx_release(c);
    return NULL;
  }
  return c;
nomem:
  ctx_error(err, errlen, "cannot create a TLS context", NULL);
  ws_tls_ctx_release(c);
  return NULL;
}

void ws_tls_ctx_retain(ws_tls_ctx *ctx) { ctx->refs++; }

void ws_tls_ctx_release(ws_tls_ctx *ctx) {
  if (ctx == NULL || --ctx->refs > 0) return;
  SSL_CTX_free(ctx->ssl_ctx);
  if (ctx->bio_method) BIO_meth_free(ctx->bio_method);
  free(ctx->alpn);
  free(ctx);
}

int ws_tls_ctx_is_server(const ws_tls_ctx *ctx) { return ctx->server; }

/* ----------------------------------------------------------- connections */

/* Point the connection at the name the certificate has to match. */
static int set_peer_name(ws_tls *t, const char *hostname, char *err,
                         size_t errlen) {
  char host[256];
  size_t len = strlen(hostname);
  int is_ip;
  unsigned char bin[16];
  /* "[::1]" as written in URLs; a trailing dot is the DNS root, which
   * neither SNI nor certificates carry. */
  if (len >= 2 && hostname[0] == '[' && hostname[len - 1] == ']') {
    hostname++;
    len -= 2;
  }
  if (len > 0 && hostname[len - 1] == '.') len--;
  if (len == 0 || len >= sizeof host) {
    (void)snprintf(err, errlen, "bad host name for TLS");
    return 0;
  }
  memcpy(host, hostname, len);
  host[len] = '\0';
  if (strchr(host, ':') != NULL) {
    char *zone = strchr(host, '%'); /* a scope id is not in certificates */
    if (zone) *zone = '\0';
    is_ip = inet_pton(AF_INET6, host, bin) == 1;
  } else {
    is_ip = inet_pton(AF_INET, host, bin) == 1;
  }
  /* RFC 6066 3: SNI carries DNS names only, never addresses. */
  if (!is_ip && SSL_set_tlsext_host_name(t->ssl, host) != 1) {
    ctx_error(err, errlen, "cannot set SNI", NULL);
    return 0;
  }
  if (!t->ctx->verify) return 1;
  if (is_ip) {
    if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), host) != 1) {
      ctx_error(err, errlen, "cannot set the expected IP address", NULL);
      return 0;
    }
  } else {
    /* "*.example.com" only, never "w*.example.com" (RFC 6125 6.4.3). */
    SSL_set_hostflags(t->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (SSL_set1_host(t->ssl, host) != 1) {
      ctx_error(err, errlen, "cannot set the expected host name", NULL);
      return 0;
    }
  }
  return 1;
}

ws_tls *ws_tls_new(ws_tls_ctx *ctx, int fd, const char *hostname, char *err,
                   size_t errlen) {
  ws_tls *t;
  BIO *bio;
  ERR_clear_error();
  t = (ws_tls *)calloc(1, sizeof *t);
  if (t == NULL) {
    (void)snprintf(err, errlen, "out of memory");
    return NULL;
  }
  t->fd = fd;
  t->ctx = ctx;
  ws_tls_ctx_retain(ctx);
  t->ssl = SSL_new(ctx->ssl_ctx);
  bio = t->ssl ? BIO_new(ctx->bio_method) : NULL;
  if (bio == NULL) {
    ctx_error(err, errlen, "cannot start TLS", NULL);
    ws_tls_free(t);
    return NULL;
  }
  BIO_set_data(bio, t);
  SSL_set_bio(t->ssl, bio, bio); /* one reference, taken over by ssl */
  if (ctx->server) {
    SSL_set_accept_state(t->ssl);
  } else {
    SSL_set_connect_state(t->ssl);
    if (hostname == NULL || *hostname == '\0') {
      /* A valid chain for some other name proves nothing: fail closed. */
      if (ctx->verify) {
        (void)snprintf(err, errlen,
                       "a host name is needed to verify the server "
                       "(or a context with verify = false)");
        ws_tls_free(t);
        return NULL;
      }
    } else if (!set_peer_name(t, hostname, err, errlen)) {
      ws_tls_free(t);
      return NULL;
    }
  }
  return t;
}

void ws_tls_free(ws_tls *t) {
  if (t == NULL) return;
  SSL_free(t->ssl);
  ws_tls_ctx_release(t->ctx);
  free(t);
}

/* Turn a failed SSL_* return into a status, composing the message for a
 * fatal error. */
static ws_tls_status classify(ws_tls *t, int ret) {
  int e = SSL_get_error(t->ssl, ret);
  unsigned long q;
  switch (e) {
    case SSL_ERROR_WANT_READ:
      return WS_TLS_WANT_READ;
    case SSL_ERROR_WANT_WRITE:
      return WS_TLS_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN:
      return WS_TLS_EOF;
    case SSL_ERROR_SYSCALL:
      /* OpenSSL 1.1.1 reports a TCP close without close_notify this way;
       * 3.x does too when SSL_OP_IGNORE_UNEXPECTED_EOF is absent. */
      if (t->sys_err == 0 && ERR_peek_error() == 0) return WS_TLS_EOF;
      break;
    default:
      break;
  }
  t->fatal = 1;
  q = ERR_peek_error();
  if (t->sys_err != 0) {
    (void)snprintf(t->msg, sizeof t->msg, "%s", ws_net_strerror(t->sys_err));
    ERR_clear_error();
  } else if (q != 0 && ERR_GET_LIB(q) == ERR_LIB_SSL &&
             ERR_GET_REASON(q) == SSL_R_CERTIFICATE_VERIFY_FAILED &&
             SSL_get_verify_result(t->ssl) != X509_V_OK) {
    (void)snprintf(
        t->msg, sizeof t->msg, "certificate verify failed: %s",
        X509_verify_cert_error_string(SSL_get_verify_result(t->ssl)));
    ERR_clear_error();
  } else {
    queue_text(t->msg, sizeof t->msg, "TLS failure");
  }
  return WS_TLS_ERROR;
}

/* Fatal errors stick: OpenSSL must not be driven further after one. */
static int failed(ws_tls *t) {
  if (!t->fatal) return 0;
  if (t->msg[0] == '\0') (void)snprintf(t->msg, sizeof t->msg, "TLS failure");
  return 1;
}

ws_tls_status ws_tls_handshake(ws_tls *t) {
  int r;
  ws_tls_status st;
  if (failed(t)) return WS_TLS_ERROR;
  ERR_clear_error();
  t->sys_err = 0;
  r = SSL_do_handshake(t->ssl);
  if (r == 1) return WS_TLS_OK;
  st = classify(t, r);
  if (st == WS_TLS_EOF) {
    t->fatal = 1;
    (void)snprintf(t->msg, sizeof t->msg,
                   "connection closed during the TLS handshake");
    return WS_TLS_ERROR;
  }
  return st;
}

ws_tls_status ws_tls_read(ws_tls *t, void *buf, size_t cap, size_t *n) {
  int r;
  *n = 0;
  if (failed(t)) return WS_TLS_ERROR;
  ERR_clear_error();
  t->sys_err = 0;
  r = SSL_read(t->ssl, buf, cap > INT_MAX ? INT_MAX : (int)cap);
  if (r > 0) {
    *n = (size_t)r;
    return WS_TLS_OK;
  }
  return classify(t, r);
}

int ws_tls_drained(const ws_tls *t) {
  return t->short_read && !SSL_has_pending(t->ssl);
}

ws_tls_status ws_tls_write(ws_tls *t, const void *buf, size_t len,
                           size_t *n) {
  int r;
  *n = 0;
  if (failed(t)) return WS_TLS_ERROR;
  if (len == 0) return WS_TLS_OK;
  ERR_clear_error();
  t->sys_err = 0;
  /* SSL_write takes an int. A fixed cap keeps a retry after WANT_WRITE at
   * least as long as the first try, which OpenSSL insists on. */
  r = SSL_write(t->ssl, buf, len > (1u << 30) ? (1 << 30) : (int)len);
  if (r > 0) {
    *n = (size_t)r;
    return WS_TLS_OK;
  }
  return classify(t, r);
}

void ws_tls_close_notify(ws_tls *t) {
  if (t == NULL || t->fatal || !SSL_is_init_finished(t->ssl)) return;
  if (SSL_get_shutdown(t->ssl) & SSL_SENT_SHUTDOWN) return;
  ERR_clear_error();
  (void)SSL_shutdown(t->ssl);
  ERR_clear_error();
}

const char *ws_tls_message(const ws_tls *t) {
  return t->msg[0] ? t->msg : "no error";
}

int ws_tls_sys_errno(const ws_tls *t) { return t->sys_err; }

const char *ws_tls_version_name(const ws_tls *t) {
  return SSL_get_version(t->ssl);
}

const char *ws_tls_cipher(const ws_tls *t) {
  const char *c = SSL_get_cipher_name(t->ssl);
  return c ? c : "(NONE)";
}

const unsigned char *ws_tls_alpn(const ws_tls *t, size_t *len) {
  const unsigned char *p = NULL;
  unsigned int n = 0;
  SSL_get0_alpn_selected(t->ssl, &p, &n);
  *len = n;
  return n ? p : NULL;
}

int ws_tls_peer_subject(const ws_tls *t, char *buf, size_t cap) {
  X509 *cert;
  BIO *mem;
  int n;
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
  cert = SSL_get1_peer_certificate(t->ssl);
#else
  cert = SSL_get_peer_certificate(t->ssl);
#endif
  if (cert == NULL || cap == 0) {
    X509_free(cert);
    return 0;
  }
  mem = BIO_new(BIO_s_mem());
  n = mem ? X509_NAME_print_ex(mem, X509_get_subject_name(cert), 0,
                               XN_FLAG_RFC2253)
          : -1;
  if (n < 0) {
    buf[0] = '\0';
  } else {
    n = BIO_read(mem, buf, (int)(cap - 1 > INT_MAX ? INT_MAX : cap - 1));
    buf[n > 0 ? n : 0] = '\0';
  }
  BIO_free(mem);
  X509_free(cert);
  ERR_clear_error();
  return 1;
}
