/*
 * lua-ws transport: TLS over a non-blocking socket, through OpenSSL
 * (1.1.1 or later). No Lua, no global state beyond OpenSSL's own.
 *
 * A context (ws_tls_ctx) holds the configuration shared by many
 * connections: role, trust anchors, our certificate, versions, ALPN. A
 * connection (ws_tls) runs TLS on one socket descriptor the caller owns.
 * Every operation is non-blocking and returns a ws_tls_status; on
 * WS_TLS_ERROR, ws_tls_message() says what went wrong in words a person
 * can act on ("certificate verify failed: hostname mismatch").
 *
 * Secure by default: a client context verifies the server against the
 * system trust store, and a connection given a host name checks that the
 * certificate is for that name (or IP address). TLS 1.2 is the minimum.
 */
#ifndef LUA_WS_TLS_H
#define LUA_WS_TLS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  WS_TLS_DEFAULT = 0, /* min: TLS 1.2; max: the highest OpenSSL knows */
  WS_TLS_1_2 = 12,
  WS_TLS_1_3 = 13
} ws_tls_version;

typedef struct {
  int server;        /* 1 for a server context, 0 for a client */
  int verify;        /* client: verify the server (default 1) */
  int verify_client; /* server: require a client certificate (default 0) */
  const char *ca_file, *ca_path; /* NULL: the system trust store */
  const char *cert_file, *key_file; /* PEM; required for a server */
  const char *ciphers;      /* TLS 1.2 cipher list; NULL: OpenSSL's */
  const char *ciphersuites; /* TLS 1.3 suites; NULL: OpenSSL's */
  /* ALPN protocols in wire format (each name preceded by its length
   * byte). A client offers them; a server picks the first of its own the
   * client also offered, and carries on without ALPN if there is none.
   * alpn_len 0 disables ALPN. */
  const unsigned char *alpn;
  size_t alpn_len;
  ws_tls_version min_version, max_version;
} ws_tls_config;

/* Defaults for a client (server 0) or a server: verification on, ALPN
 * "http/1.1", TLS 1.2 minimum, no files. */
void ws_tls_config_init(ws_tls_config *cfg, int server);

typedef struct ws_tls_ctx ws_tls_ctx;

/* Build a context. Copies everything it needs from cfg. Returns NULL on
 * failure with a message in err (errlen bytes, NUL-terminated), e.g. a
 * file that cannot be loaded or a key that does not match the
 * certificate. The caller holds one reference. */
ws_tls_ctx *ws_tls_ctx_new(const ws_tls_config *cfg, char *err,
                           size_t errlen);

/* Take or drop a reference. Each connection holds one, so a context lives
 * as long as the last connection made from it. */
void ws_tls_ctx_retain(ws_tls_ctx *ctx);
void ws_tls_ctx_release(ws_tls_ctx *ctx);

/* 1 for a server context, 0 for a client. */
int ws_tls_ctx_is_server(const ws_tls_ctx *ctx);

typedef enum {
  WS_TLS_OK = 0,
  WS_TLS_WANT_READ = 1,  /* retry once the socket is readable */
  WS_TLS_WANT_WRITE = 2, /* retry once the socket is writable */
  WS_TLS_EOF = 3,        /* the peer closed (close_notify or TCP FIN) */
  WS_TLS_ERROR = 4       /* fatal: see ws_tls_message, ws_tls_sys_errno */
} ws_tls_status;

typedef struct ws_tls ws_tls;

/* Start TLS on a connected, non-blocking socket (the caller keeps owning
 * fd and must keep it open until ws_tls_free). For a client, hostname is
 * sent as SNI unless it is an IP literal, and when the context verifies,
 * the certificate must match it: DNS names by X509_check_host rules (no
 * partial wildcards), IP literals ("127.0.0.1", "::1", "[::1]") against
 * IP subjectAltNames. A verifying client without a hostname is refused
 * (a chain valid for some other name proves nothing); hostname is
 * optional with verify off, and ignored for a server. Returns NULL with a
 * message in err on failure. The connection retains ctx. */
ws_tls *ws_tls_new(ws_tls_ctx *ctx, int fd, const char *hostname, char *err,
                   size_t errlen);

/* Free the connection (without sending anything; see ws_tls_close_notify)
 * and release its context. NULL is fine. */
void ws_tls_free(ws_tls *t);

/* Drive the handshake: WS_TLS_OK when done, WANT_READ/WANT_WRITE, or
 * WS_TLS_ERROR (a peer that closes mid-handshake is an error too). */
ws_tls_status ws_tls_handshake(ws_tls *t);

/* Read up to cap decrypted bytes into buf: WS_TLS_OK with *n > 0, or
 * WANT_READ / WANT_WRITE / EOF / ERROR with *n == 0. Finishes the
 * handshake first if it is not done. */
ws_tls_status ws_tls_read(ws_tls *t, void *buf, size_t cap, size_t *n);

/* After a read: 1 when another would only say WANT_READ for now, because
 * the last socket read found the kernel's buffer empty (it got less than
 * it asked for) and OpenSSL holds no bytes it has not handed out. */
int ws_tls_drained(const ws_tls *t);

/* Write up to len bytes: WS_TLS_OK with *n > 0 bytes taken (partial writes
 * are normal), or WANT_WRITE / WANT_READ / ERROR with *n == 0. After a
 * WANT_*, call again with the same bytes first (the buffer may move and
 * grow, not shrink or change): OpenSSL has already sealed some of them
 * into a record. */
ws_tls_status ws_tls_write(ws_tls *t, const void *buf, size_t len,
                           size_t *n);

/* Send close_notify once, best effort and without waiting for the peer's.
 * Does nothing before the handshake finished or after a fatal error. */
void ws_tls_close_notify(ws_tls *t);

/* What the last WS_TLS_ERROR was about. Never NULL. */
const char *ws_tls_message(const ws_tls *t);

/* The errno value behind the last WS_TLS_ERROR when the socket itself
 * failed (ECONNRESET, ...), else 0 (a TLS-level failure). */
int ws_tls_sys_errno(const ws_tls *t);

/* After the handshake: protocol version ("TLSv1.3") and cipher name,
 * static strings. */
const char *ws_tls_version_name(const ws_tls *t);
const char *ws_tls_cipher(const ws_tls *t);

/* The negotiated ALPN protocol (not NUL-terminated), or NULL with *len 0
 * when none was. Valid while the connection lives. */
const unsigned char *ws_tls_alpn(const ws_tls *t, size_t *len);

/* The peer certificate's subject as an RFC 2253 string in buf (truncated
 * to cap - 1 bytes). Returns 1, or 0 if the peer sent no certificate. */
int ws_tls_peer_subject(const ws_tls *t, char *buf, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
