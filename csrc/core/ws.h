/*
 * lua-ws core: a sans-IO WebSocket (RFC 6455) engine.
 *
 * Nothing in this header touches a socket or a Lua state. Callers own every
 * buffer they pass in; lengths are size_t; functions that can fail return a
 * negative WS_E* code (see WS_ERRNO_MAP) and never abort. The engine keeps no
 * global state: everything lives in caller-allocated structs.
 */
#ifndef LUA_WS_H
#define LUA_WS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- errors */

/* Error codes, one table (X-macro): id, value, a short stable machine name
 * for hosts to match on, and a message for people. */
#define WS_ERRNO_MAP(X)                                                      \
  X(INCOMPLETE, -2, "incomplete", "incomplete input")                       \
  X(INVALID, -3, "invalid", "invalid argument")                             \
  X(NOSPACE, -4, "nospace", "output buffer too small")                      \
  X(NOMEM, -5, "nomem", "out of memory")                                    \
  X(STATE, -6, "state", "not allowed in the connection's current state")    \
  X(CODE, -7, "code", "close code may not be sent")                         \
  X(REASON, -8, "reason", "close reason longer than 123 bytes")             \
  X(UTF8, -9, "utf8", "text is not valid UTF-8")                            \
  X(CONTROL, -10, "control", "control frame payload longer than 125 bytes") \
  X(RAND, -11, "rand", "random number generator failed")                    \
  X(HANDSHAKE, -12, "handshake", "handshake rejected")                      \
  X(TOOBIG, -13, "toobig", "message larger than the configured limit")      \
  X(FRAGMENT, -14, "fragment", "a fragmented message is already being sent") \
  X(NOFRAGMENT, -15, "nofragment", "no fragmented message is being sent")   \
  X(REASON_UTF8, -16, "reason_utf8", "close reason is not valid UTF-8")   \
  X(NOCODE, -17, "reason_nocode", "a close reason needs a close code") \
  X(DEFLATE, -18, "deflate", "deflate: compressor failed")                \
  X(INFLATE, -19, "inflate", "inflate: corrupt deflate stream")           \
  X(INFLATE_LIMIT, -20, "inflate_limit",                                  \
    "inflate: message larger than the configured limit")                \
  X(EXTENSION, -21, "extension", "extension negotiation failed")

enum {
  WS_OK = 0,
#define WS_ERRNO_ENUM(name, val, errname, msg) WS_E##name = (val),
  WS_ERRNO_MAP(WS_ERRNO_ENUM)
#undef WS_ERRNO_ENUM
};

/* Message for a WS_E* code; "success" for 0, "unknown error" for anything
 * else. Static storage. */
const char *ws_strerror(int err);

/* Machine name of a WS_E* code ("nomem"); "ok" for 0, "unknown" for
 * anything else. Static storage. */
const char *ws_errname(int err);

/* -------------------------------------------------------------- random */

/* A random source: fill buf with n bytes, return 0 or nonzero on failure.
 * The default (ws_rand_openssl) is OpenSSL RAND_bytes, a CSPRNG. */
typedef int (*ws_rand_fn)(void *ud, uint8_t *buf, size_t n);
int ws_rand_openssl(void *ud, uint8_t *buf, size_t n);

/* --------------------------------------------------------------- UTF-8 */

/* Incremental UTF-8 validation. The state is one word: 0 means "at a
 * character boundary"; any other value means "inside a sequence". Feed a
 * message in as many chunks as it arrives; call ws_utf8_complete at the
 * end. */
typedef uint32_t ws_utf8_state;
#define WS_UTF8_ACCEPT 0u

/* Validate len bytes starting from *state. Returns 0 if every byte so far
 * is valid (updating *state), or WS_EUTF8 on the first invalid byte, with
 * *bad (if not NULL) set to its offset in buf. Overlongs, surrogates,
 * code points above U+10FFFF and the bytes C0, C1, F5..FF are invalid. */
int ws_utf8_validate(ws_utf8_state *state, const uint8_t *buf, size_t len,
                     size_t *bad);

/* 1 if the state ends a complete text (no sequence cut off), else 0. */
static inline int ws_utf8_complete(ws_utf8_state state) {
  return state == WS_UTF8_ACCEPT;
}

/* One-shot check of a whole string: 1 valid, 0 invalid. */
int ws_utf8_valid(const uint8_t *buf, size_t len);

/* Long texts are checked with SIMD where the CPU has it: "avx2" or
 * "sse4.1" on x86 (chosen at first use from cpuid, the widest available),
 * else "scalar". ws_utf8_impl names the one in use. ws_utf8_use picks one
 * by name (tests and benchmarks force each path this way; NULL goes back
 * to the CPU's choice): 0, or WS_EINVALID for a name this build or CPU
 * does not have. Results are the same whatever the choice. */
const char *ws_utf8_impl(void);
int ws_utf8_use(const char *name);

/* ------------------------------------------------------------- masking */

/* XOR buf with the 4-byte key in place, starting at key byte `phase`
 * (0..3). Returns the phase for the next chunk ((phase + len) & 3), so a
 * payload can be unmasked in pieces as it arrives. Works a word at a time. */
unsigned ws_mask(uint8_t *buf, size_t len, const uint8_t key[4],
                 unsigned phase);

/* Same, copying: dst = src ^ key. dst and src may be equal but must not
 * otherwise overlap. */
unsigned ws_mask_copy(uint8_t *dst, const uint8_t *src, size_t len,
                      const uint8_t key[4], unsigned phase);

/* -------------------------------------------------------------- frames */

typedef enum {
  WS_OP_CONTINUATION = 0x0,
  WS_OP_TEXT = 0x1,
  WS_OP_BINARY = 0x2,
  WS_OP_CLOSE = 0x8,
  WS_OP_PING = 0x9,
  WS_OP_PONG = 0xA
} ws_opcode;

#define WS_FRAME_MAX_HEADER 14 /* 2 + 8 (length) + 4 (mask key) */
#define WS_CONTROL_MAX 125

typedef struct {
  unsigned fin;    /* 1 if FIN is set */
  unsigned rsv;    /* the three RSV bits as 0..7 (RSV1 = 4) */
  unsigned opcode; /* 0..15, as on the wire */
  unsigned masked; /* 1 if a mask key follows */
  uint8_t key[4];  /* the mask key when masked */
  uint64_t length; /* payload length */
} ws_frame_header;

/* Decode one frame header from buf. Returns the header's size in bytes
 * (2..14), WS_EINCOMPLETE if buf holds only part of it, or WS_EINVALID if
 * the 64-bit length has its top bit set. Checks nothing else: opcode, RSV
 * and masking rules are the engine's job. */
int ws_frame_decode(const uint8_t *buf, size_t len, ws_frame_header *h);

/* Size of the header ws_frame_encode writes for this payload length. */
size_t ws_frame_header_size(uint64_t length, int masked);

/* Encode a header into out (at least WS_FRAME_MAX_HEADER bytes, or exactly
 * ws_frame_header_size). Uses the shortest length form. Returns the number
 * of bytes written, or WS_ENOSPACE. */
int ws_frame_encode(uint8_t *out, size_t cap, const ws_frame_header *h);

/* The header of a whole unmasked text or binary message sent as one frame
 * (FIN set, no RSV bits), as a server sends it: followed by the `len`
 * payload bytes it makes the frame ws_engine_send_framed queues, so a
 * message sent to many connections is framed, and its UTF-8 checked, once.
 * Writes the header into out and returns its size (2..10), WS_EUTF8 for
 * text that is not UTF-8, or WS_EINVALID for another kind or data NULL
 * with a length. */
int ws_frame_message_header(uint8_t out[WS_FRAME_MAX_HEADER], ws_opcode kind,
                            const uint8_t *data, size_t len);

/* --------------------------------------------------------- close codes */

/* The registry (RFC 6455 7.4.1 and IANA). Application codes 3000-4999 have
 * no built-in names; the Lua layer lets callers name them. */
#define WS_CODE_MAP(X)                \
  X(1000, normal)                     \
  X(1001, going_away)                 \
  X(1002, protocol_error)             \
  X(1003, unsupported_data)           \
  X(1004, reserved)                   \
  X(1005, no_status)                  \
  X(1006, abnormal)                   \
  X(1007, invalid_payload)            \
  X(1008, policy_violation)           \
  X(1009, message_too_big)            \
  X(1010, mandatory_extension)        \
  X(1011, internal_error)             \
  X(1012, service_restart)            \
  X(1013, try_again_later)            \
  X(1014, bad_gateway)                \
  X(1015, tls_handshake)

enum {
#define WS_CODE_ENUM(code, name) WS_CLOSE_##name = (code),
  WS_CODE_MAP(WS_CODE_ENUM)
#undef WS_CODE_ENUM
};

/* Name of a registry code ("normal", ...), or NULL if it has none. */
const char *ws_code_name(int code);
/* Code for a registry name, or 0 if there is none. */
int ws_code_by_name(const char *name, size_t len);
/* Walk the registry: the i-th (code, name) pair, i from 0; 0 past the end. */
int ws_code_at(size_t i, const char **name);
/* 1 if a close frame may carry this code on the wire (1000-1003,
 * 1007-1014, 3000-4999), else 0. Both what we accept and what we send. */
int ws_code_valid(int code);

/* Check the arguments of a close frame we would send: 0, or WS_ECODE (a
 * code that fails ws_code_valid; 0 means no code), WS_ENOCODE (a reason
 * without a code), WS_EREASON (over 123 bytes), WS_EREASON_UTF8,
 * WS_EINVALID (reason NULL with a length). ws_engine_close checks the
 * same, first; hosts call this to refuse bad arguments up front. */
int ws_close_check(int code, const uint8_t *reason, size_t reason_len);

/* Parse a close frame payload (already unmasked). On success sets *code
 * (1005 when the payload is empty) and the reason span, and returns 0.
 * Returns WS_EINVALID for a 1-byte payload or a code not valid on the wire,
 * WS_EUTF8 for a reason that is not UTF-8, WS_ECONTROL above 125 bytes. */
int ws_close_parse(const uint8_t *p, size_t len, int *code,
                   const uint8_t **reason, size_t *reason_len);

/* ------------------------------------------------------------ handshake */

#define WS_KEY_LEN 24    /* base64 of 16 bytes */
#define WS_ACCEPT_LEN 28 /* base64 of a SHA-1 digest */

/* Make a Sec-WebSocket-Key: 16 random bytes, base64. out gets 24 chars and
 * a NUL. rnd NULL means OpenSSL. Returns 0 or WS_ERAND. */
int ws_hs_key(char out[WS_KEY_LEN + 1], ws_rand_fn rnd, void *ud);

/* Sec-WebSocket-Accept for a key: base64(SHA-1(key + GUID)). out gets 28
 * chars and a NUL. Returns 0, or WS_EINVALID if OpenSSL fails. */
int ws_hs_accept(const char *key, size_t key_len,
                 char out[WS_ACCEPT_LEN + 1]);

/* A span inside the caller's buffer. */
typedef struct {
  const char *p;
  size_t len;
} ws_span;

typedef struct {
  ws_span name;
  ws_span value; /* optional whitespace trimmed */
} ws_header;

typedef struct {
  size_t max_bytes;   /* request/response head incl. final CRLF; 0 -> 8192 */
  size_t max_headers; /* 0 -> 64; never more than the caller's array */
} ws_hs_limits;

/* Why a handshake was refused: an id, a short machine name and the HTTP
 * status a server should answer with. */
#define WS_HS_ERROR_MAP(X)                                             \
  X(NONE, "none", 0)                                                   \
  X(TOO_LARGE, "header_too_large", 431)                                \
  X(TOO_MANY_HEADERS, "too_many_headers", 431)                         \
  X(BAD_REQUEST_LINE, "bad_request_line", 400)                         \
  X(METHOD, "method_not_get", 405)                                     \
  X(HTTP_VERSION, "http_version", 505)                                 \
  X(BAD_HEADER, "bad_header", 400)                                     \
  X(NO_HOST, "missing_host", 400)                                      \
  X(NO_UPGRADE, "missing_upgrade", 400)                                \
  X(NO_CONNECTION, "missing_connection_upgrade", 400)                  \
  X(BAD_KEY, "bad_key", 400)                                           \
  X(VERSION, "unsupported_version", 426)                               \
  X(BAD_STATUS_LINE, "bad_status_line", 0)                             \
  X(STATUS, "unexpected_status", 0)                                    \
  X(BAD_ACCEPT, "bad_accept", 0)                                       \
  X(PROTOCOL, "unexpected_protocol", 0)                                \
  X(EXTENSION, "unexpected_extension", 0)

typedef enum {
#define WS_HS_ERROR_ENUM(id, name, status) WS_HS_##id,
  WS_HS_ERROR_MAP(WS_HS_ERROR_ENUM)
#undef WS_HS_ERROR_ENUM
  WS_HS__COUNT
} ws_hs_error;

/* Short machine name of a handshake error ("bad_key"). */
const char *ws_hs_error_name(ws_hs_error e);
/* HTTP status a server answers a request refused with e (0 for client-side
 * errors). */
int ws_hs_error_status(ws_hs_error e);

/* A parsed opening request (server side). Every span points into the
 * buffer given to ws_hs_parse_request. */
typedef struct {
  ws_span method, target;
  int minor_version; /* HTTP/1.x */
  ws_header *headers; /* caller's array */
  size_t num_headers; /* in: capacity of headers; out: count */
  ws_span host, key, origin;
  int version;        /* Sec-WebSocket-Version, -1 if absent or garbled */
  ws_hs_error error;  /* why it was refused */
} ws_hs_request;

/* Parse and validate a client's opening handshake (RFC 6455 4.2.1).
 * On WS_EINCOMPLETE num_headers is left as it was, so the same struct can
 * be passed again once more bytes have arrived. Checks run in the order
 * request line, Host, Upgrade, Connection, version, key, so a client on the
 * wrong version always gets the 426.
 * Returns the number of bytes of the head (through the blank line) on
 * success, WS_EINCOMPLETE when more bytes are needed, or WS_EHANDSHAKE with
 * req->error saying why (and ws_hs_error_status the status to answer). */
int ws_hs_parse_request(const char *buf, size_t len, ws_hs_request *req,
                        const ws_hs_limits *lim);

/* A parsed response (client side); spans point into the buffer. */
typedef struct {
  int status;
  ws_span reason;
  ws_header *headers;
  size_t num_headers; /* in: capacity; out: count */
  ws_span protocol;   /* chosen subprotocol, len 0 if none */
  ws_hs_error error;
} ws_hs_response;

/* Parse and validate the server's answer (RFC 6455 4.1): status 101,
 * Upgrade: websocket, Connection: upgrade, the accept value for key, a
 * subprotocol among the comma-separated `protocols` offered (NULL or "" for
 * none) and no extension we did not offer (`extensions`, same form).
 * Returns the head's size, WS_EINCOMPLETE, or WS_EHANDSHAKE with
 * resp->error set (WS_HS_STATUS keeps resp->status and headers for the
 * caller to inspect, e.g. Retry-After). */
int ws_hs_parse_response(const char *buf, size_t len, ws_hs_response *resp,
                         const char *key, size_t key_len,
                         const char *protocols, const char *extensions,
                         const ws_hs_limits *lim);

/* 1 if the comma-separated header list `value` has `token`
 * (case-insensitive), else 0. */
int ws_hs_has_token(ws_span value, const char *token, size_t token_len);

/* Find the first header named `name` (case-insensitive); NULL if none. */
const ws_header *ws_hs_header(const ws_header *h, size_t n,
                              const char *name);

/* Build the client's request into out. `extra` is zero or more complete
 * "Name: value\r\n" lines, or NULL; protocols and origin may be NULL.
 * Returns the length written (no NUL is written), WS_ENOSPACE, or
 * WS_EINVALID for a NULL or empty host/target/key, a value holding CR, LF
 * or another control character, or a malformed `extra`. The other build
 * functions below follow the same rules. */
int ws_hs_build_request(char *out, size_t cap, const char *host,
                        const char *target, const char *key,
                        const char *protocols, const char *origin,
                        const char *extra);

/* Build the 101 answer for a request with this key. protocol may be NULL. */
int ws_hs_build_response(char *out, size_t cap, const char *key,
                         size_t key_len, const char *protocol,
                         const char *extra);

/* Build a refusal: status line, Content-Length: 0, Connection: close, plus
 * Sec-WebSocket-Version: 13 for 426, plus extra. */
int ws_hs_build_error(char *out, size_t cap, int status, const char *extra);

/* -------------------------------------------------------------- engine */

typedef enum { WS_ROLE_CLIENT = 0, WS_ROLE_SERVER = 1 } ws_role;

typedef enum {
  WS_STATE_OPEN = 0,
  WS_STATE_CLOSING = 1, /* we sent a close frame, waiting for the reply */
  WS_STATE_CLOSED = 2
} ws_state;

typedef enum {
  WS_EV_NONE = 0,
  WS_EV_MESSAGE,
  WS_EV_PING,
  WS_EV_PONG,
  WS_EV_CLOSE,
  WS_EV_PART /* a piece of a data message (ws_engine_stream) */
} ws_event_type;

typedef enum {
  WS_BY_LOCAL = 0,
  WS_BY_REMOTE = 1,
  WS_BY_TRANSPORT = 2
} ws_initiator;

/* Why the engine failed a connection on what it read (RFC 6455 7.1.7):
 * id, machine name, close code. The close event's initiator is always
 * WS_BY_LOCAL: we failed the connection. */
#define WS_VIOLATION_MAP(X)                                              \
  X(NONE, "none", 0)                                                     \
  X(RESERVED_OPCODE, "protocol:reserved_opcode", 1002)                   \
  X(RSV_BITS, "protocol:rsv_bits", 1002)                                 \
  X(FRAGMENTED_CONTROL, "protocol:fragmented_control", 1002)             \
  X(CONTROL_TOO_LONG, "protocol:control_too_long", 1002)                 \
  X(UNEXPECTED_CONTINUATION, "protocol:unexpected_continuation", 1002)   \
  X(EXPECTED_CONTINUATION, "protocol:expected_continuation", 1002)       \
  X(MASKED_FRAME, "protocol:masked_frame", 1002)                         \
  X(UNMASKED_FRAME, "protocol:unmasked_frame", 1002)                     \
  X(LENGTH_TOP_BIT, "protocol:length_top_bit", 1002)                     \
  X(BAD_CLOSE_PAYLOAD, "protocol:bad_close_payload", 1002)               \
  X(INVALID_CLOSE_CODE, "protocol:invalid_close_code", 1002)             \
  X(INVALID_UTF8, "protocol:invalid_utf8", 1007)                         \
  X(INVALID_CLOSE_REASON, "protocol:invalid_close_reason", 1007)         \
  X(MESSAGE_TOO_BIG, "protocol:message_too_big", 1009)                   \
  X(FRAME_TOO_BIG, "protocol:frame_too_big", 1009)                       \
  X(TOO_MANY_FRAGMENTS, "protocol:too_many_fragments", 1009)             \
  X(COMPRESSED_CONTROL, "protocol:compressed_control", 1002)             \
  X(COMPRESSED_CONTINUATION, "protocol:compressed_continuation", 1002)   \
  X(BAD_DEFLATE, "protocol:bad_deflate", 1007)                           \
  X(NOMEM, "internal:out_of_memory", 1011)

typedef enum {
#define WS_VIOLATION_ENUM(id, name, code) WS_V_##id,
  WS_VIOLATION_MAP(WS_VIOLATION_ENUM)
#undef WS_VIOLATION_ENUM
  WS_V__COUNT
} ws_violation;

/* Machine name of a violation ("protocol:rsv_bits"); "none" for NONE. */
const char *ws_violation_name(ws_violation v);
/* The close code a violation is failed with. */
int ws_violation_code(ws_violation v);

/* The ways a connection ends off the wire, which the host reports with
 * ws_engine_end: id, machine name, close code, initiator.
 *   EOF                the transport ended (TCP FIN, TLS close_notify)
 *   TRANSPORT          the transport failed; the host names how ("reset",
 *                      "pipe", "tls", "timeout"...), "transport" if not
 *   HEARTBEAT_TIMEOUT  the peer stopped answering our pings; if the engine
 *                      is still open a close frame 1011 "heartbeat
 *                      timeout" is queued first (the event's sent)
 *   CLOSE_TIMEOUT      we sent a close frame and no reply came in time
 *   ABORTED            the host dropped the connection on purpose
 *   HANDSHAKE          the opening handshake failed (ws_hs_failed_event);
 *                      the host names how, and "tls" is reported as 1015
 */
#define WS_END_MAP(X)                                                    \
  X(NONE, "none", 0, WS_BY_TRANSPORT)                                    \
  X(EOF, "eof", 1006, WS_BY_TRANSPORT)                                   \
  X(TRANSPORT, "transport", 1006, WS_BY_TRANSPORT)                       \
  X(HEARTBEAT_TIMEOUT, "heartbeat_timeout", 1006, WS_BY_TRANSPORT)       \
  X(CLOSE_TIMEOUT, "close_timeout", 1006, WS_BY_LOCAL)                   \
  X(ABORTED, "aborted", 1006, WS_BY_LOCAL)                               \
  X(HANDSHAKE, "handshake", 1006, WS_BY_TRANSPORT)

typedef enum {
#define WS_END_ENUM(id, name, code, by) WS_END_##id,
  WS_END_MAP(WS_END_ENUM)
#undef WS_END_ENUM
  WS_END__COUNT
} ws_end;

/* Machine name of an end cause ("heartbeat_timeout"); "none" for NONE,
 * "unknown" out of range. */
const char *ws_end_name(ws_end cause);
/* Its close code (1006), and who the close event says ended it. */
int ws_end_code(ws_end cause);
ws_initiator ws_end_initiator(ws_end cause);

/* An event. Pointers stay valid until the next call into the engine (they
 * point into the caller's input or into the engine's own buffers), except
 * error_name, which is static or the host's own string. */
typedef struct {
  ws_event_type type;
  ws_opcode kind;      /* WS_OP_TEXT or WS_OP_BINARY for messages */
  unsigned rsv;        /* RSV bits of the message's first frame */
  int fin;             /* WS_EV_PART: 1 on the message's last part */
  const uint8_t *data; /* message / part / ping / pong payload */
  size_t len;
  /* WS_EV_CLOSE only: */
  int code;            /* 1000.., 1005 for no status, 1006 abnormal */
  const uint8_t *reason;
  size_t reason_len;
  int clean;           /* 1 if a close frame went each way */
  ws_initiator initiator;
  ws_violation error;  /* what we detected, WS_V_NONE if nothing */
  ws_end end;          /* how it ended off the wire, WS_END_NONE if not */
  const char *error_name; /* machine name of error or end (for TRANSPORT
                             and HANDSHAKE the host's), NULL for a clean
                             close */
  int sent_code;       /* code in the close frame we sent, 0 if none */
  int received_code;   /* code in the close frame received, 0 if none,
                          1005 if it had no code */
  const uint8_t *sent_reason; /* the reasons in those frames */
  size_t sent_reason_len;
  const uint8_t *received_reason;
  size_t received_reason_len;
} ws_event;

/* Fill *ev with the close event of a failed opening handshake, which
 * needs no engine: code 1015 (tls_handshake) when name is "tls", else
 * 1006; empty reason, not clean, initiator transport, end
 * WS_END_HANDSHAKE, error_name = name (the caller's string, kept as the
 * pointer; NULL means "handshake"), nothing sent or received. */
void ws_hs_failed_event(ws_event *ev, const char *name);

/* Fill *ev with the close event of a connection a host ended on its own
 * side while no connection was open (a reconnecting client stopped between
 * attempts, or failing): `code` and the reason it was asked to close with
 * (code 0: 1006, and no reason), not clean, initiator local, end
 * WS_END_ABORTED, error_name = name (kept as the pointer; NULL means
 * "aborted"), nothing sent or received. Returns 0, or WS_EINVALID for a
 * reason without a code or NULL with a length. */
int ws_local_end_event(ws_event *ev, int code, const uint8_t *reason,
                       size_t reason_len, const char *name);

typedef void *(*ws_alloc_fn)(void *ud, void *ptr, size_t osize,
                             size_t nsize);

/* The allocator used when a config's alloc is NULL: realloc, and free
 * when nsize is 0. */
void *ws_default_alloc(void *ud, void *ptr, size_t osize, size_t nsize);

typedef struct {
  ws_role role;
  uint64_t max_message_size; /* bytes in one reassembled message */
  uint64_t max_frame_size;   /* payload bytes in one frame */
  size_t max_fragments;      /* frames in one message */
  int auto_pong;             /* answer pings (default 1) */
  unsigned allowed_rsv;      /* RSV bits a negotiated extension owns
                                (RSV1 = 4); 0 without extensions */
  ws_alloc_fn alloc;         /* NULL: realloc/free */
  void *alloc_ud;
  ws_rand_fn rand;           /* NULL: OpenSSL RAND_bytes */
  void *rand_ud;
} ws_config;

/* Defaults: 16 MiB messages and frames, 65536 fragments, auto pong on. */
void ws_config_init(ws_config *cfg, ws_role role);

/* A growable byte buffer owned by the engine. */
typedef struct {
  uint8_t *p;
  size_t len, cap, off;
} ws_buf;

/* Random bytes kept for client mask keys (a multiple of 4). */
#define WS_MASK_POOL 256

/* State most connections never need, allocated at its first use (private
 * to ws_engine.c): a control frame payload that arrives in pieces, and the
 * reasons of the closing handshake. */
struct ws_engine_cold;

/* permessage-deflate's state (private to ws_engine.c): allocated by
 * ws_engine_deflate once the extension is agreed, its zlib streams at their
 * first message. */
struct ws_engine_pmd;

/* The engine. Allocate it anywhere (stack, userdata); treat the fields as
 * private. `data` is the host's. */
typedef struct {
  void *data;
  ws_config cfg;
  ws_state state;
  int failed;       /* closed by a violation or an end; input is ignored */
  int close_reported;
  ws_violation pending; /* a violation found but not yet acted on */
  /* Within each group below the fields run from widest to narrowest
   * alignment, so the struct carries little padding. */
  /* receive side */
  ws_frame_header fh;
  uint64_t remaining;
  uint64_t msg_total; /* payload bytes of the current message so far */
  size_t msg_frames;
  ws_buf msg;       /* reassembly of data messages */
  size_t ctl_len;
  int in_payload;   /* header decoded, payload bytes pending */
  unsigned hdr_len;
  unsigned mask_phase;
  int in_message;   /* inside a fragmented data message */
  ws_opcode msg_kind;
  unsigned msg_rsv;
  int discard;      /* skipping a data frame received after our close */
  int inflating;    /* the current message is compressed (RSV1) */
  int stream;       /* data messages come out as WS_EV_PART events */
  ws_utf8_state utf8;
  uint8_t hdr[WS_FRAME_MAX_HEADER];
  /* send side */
  ws_buf out;
  uint8_t *rnd;     /* WS_MASK_POOL random bytes for mask keys, allocated
                       at a client's first frame (servers never mask) */
  size_t rnd_pos;
  int sending;      /* a fragmented message is being sent */
  ws_opcode send_kind;
  ws_utf8_state send_utf8;
  /* closing handshake */
  size_t sent_reason_len;
  size_t received_reason_len;
  int sent_code;
  int received_code;
  struct ws_engine_cold *cold; /* NULL until needed */
  struct ws_engine_pmd *pmd;   /* NULL unless ws_engine_deflate was called */
  uint64_t rx_frames, tx_frames;
  uint64_t out_queued;  /* output bytes ever queued */
  uint64_t out_written; /* output bytes ever consumed by the transport */
  uint64_t close_end;   /* out_queued just past our close frame, 0 if none */
} ws_engine;

/* Set up an engine (cfg NULL means ws_config_init defaults for a client).
 * Allocates nothing. Returns 0 or WS_EINVALID. */
int ws_engine_init(ws_engine *e, const ws_config *cfg);

/* Release the engine's buffers. Safe to call twice and on a zeroed
 * struct. */
void ws_engine_free(ws_engine *e);

/* Feed received bytes. Processes input until one event is complete or the
 * input is used up; returns how many bytes it consumed (>= 0) and fills *ev
 * (ev->type is WS_EV_NONE when no event is ready, and then all of the
 * input was consumed). Call again with the rest of the input after each
 * event. The engine unmasks payloads in place, so `in` is modified; event
 * data may point into `in`. Never fails.
 *
 * Protocol violations (WS_VIOLATION_MAP) are failed in two steps, so that
 * a valid message read before the violation can be answered before the
 * close frame goes out:
 *  1. The call that finds the violation consumes (ignores) the rest of its
 *     input, returns with WS_EV_NONE and leaves the failure pending:
 *     ws_engine_failing() returns it. Nothing is queued yet and the state
 *     does not change, so sends, pings, pongs and ws_engine_close made now
 *     are accepted as usual and their frames go out before the close
 *     frame.
 *  2. The next ws_engine_recv (any input, len 0 included; the input is
 *     ignored and reported consumed), ws_engine_fail_pending or
 *     ws_engine_end acts on it: if no close frame was sent yet, one with
 *     the violation's code (and its name as the reason) is queued; the
 *     state becomes CLOSED and the close event is filled: the violation's
 *     code, empty reason, not clean, initiator WS_BY_LOCAL, error = the
 *     violation, sent = our close frame. Later input is ignored. */
size_t ws_engine_recv(ws_engine *e, uint8_t *in, size_t len, ws_event *ev);

/* Receive data messages in parts (on 1) rather than whole (0, the
 * default). Set it before the first byte is fed: returns 0, or WS_ESTATE
 * once input was fed.
 *
 * In part mode ws_engine_recv reports a data message as WS_EV_PART
 * events as its payload arrives, without waiting for its frame to end:
 * each part is the payload bytes of one frame that the input held (data
 * pointing into the input, unmasked in place), or with permessage-deflate
 * at most 16 KiB of inflated bytes (the last part adds what the
 * message's end decodes to: at most 258 bytes zlib held back, a few KiB
 * from a hostile stream). Nothing of a message is buffered, so memory does
 * not grow with the message, whatever its size or framing. Every part
 * carries the message's kind and rsv; `fin` is 1 on the last part only.
 * Empty frames inside a message give no part, but every message ends
 * with a part with fin (an empty message is one empty part with fin).
 * Text is validated as UTF-8 across parts: a part holding an invalid
 * byte, or a last part that leaves a character cut off, is not reported;
 * the violation (1007) is pending instead, as ws_engine_recv describes,
 * and the parts reported before it stand. max_message_size,
 * max_frame_size and max_fragments apply to the message as a whole, as
 * they do in whole mode (1009), and control frames between a message's
 * frames are reported between its parts. The parts of a message, joined,
 * are exactly the message whole mode would report from the same input,
 * with the same close event (one caveat: an invalid compressed stream
 * that refers past a small agreed window, see ws_inflate_part). */
int ws_engine_stream(ws_engine *e, int on);

/* The violation waiting to be acted on (see ws_engine_recv), or
 * WS_V_NONE. */
static inline ws_violation ws_engine_failing(const ws_engine *e) {
  return e->pending;
}

/* Act on a pending violation now: returns 1 and fills *ev with its close
 * event (a close frame queued as ws_engine_recv describes), or 0 with
 * ev->type WS_EV_NONE if none is pending. */
int ws_engine_fail_pending(ws_engine *e, ws_event *ev);

/* The connection ended off the wire (WS_END_MAP, not WS_END_NONE or
 * WS_END_HANDSHAKE, which are WS_EINVALID). Fills *ev with exactly one
 * close event and returns 1, or returns 0 with ev->type WS_EV_NONE if a
 * close event was already reported. A pending violation wins: its own
 * event is reported instead of the cause's. Otherwise the event has the
 * cause's code (1006) and initiator, an empty reason, clean 0,
 * end = cause, error_name = the cause's name (for WS_END_TRANSPORT, `name`
 * when not NULL: a stable name of the host's, e.g. "reset", kept as the
 * pointer), and sent/received as far as the closing handshake got. A
 * HEARTBEAT_TIMEOUT while open first queues a close frame 1011 "heartbeat
 * timeout". The engine is CLOSED afterwards and ignores input. */
int ws_engine_end(ws_engine *e, ws_end cause, const char *name,
                  ws_event *ev);

/* The transport ended: ws_engine_end(e, WS_END_EOF, NULL, ev). */
int ws_engine_eof(ws_engine *e, ws_event *ev);

/* Queue a whole text or binary message as one frame, or as frames of at
 * most `fragment` payload bytes (0: one frame). Text must be UTF-8.
 * Returns 0, WS_ESTATE after our close, WS_EUTF8, WS_EFRAGMENT while a
 * ws_engine_send_part message is open, WS_EINVALID, WS_ENOMEM, WS_ERAND
 * (clients: no mask key). */
int ws_engine_send(ws_engine *e, ws_opcode kind, const uint8_t *data,
                   size_t len, size_t fragment);

/* ws_engine_send with flags: WS_SEND_NO_COMPRESS sends this message
 * uncompressed, WS_SEND_COMPRESS compresses it whatever its size (both
 * only matter once permessage-deflate was agreed). ws_engine_send is
 * flags 0: compress messages of at least the threshold's size. Also returns
 * WS_EDEFLATE when the compressor fails. */
#define WS_SEND_NO_COMPRESS 1
#define WS_SEND_COMPRESS 2
int ws_engine_send_ex(ws_engine *e, ws_opcode kind, const uint8_t *data,
                      size_t len, size_t fragment, unsigned flags);

/* Streaming send: one frame of a message; kind is TEXT/BINARY for the
 * first part (ignored for the rest); fin ends the message. UTF-8 is
 * checked across parts. With permessage-deflate a streamed message is
 * compressed as one stream unless its first part's flags say
 * WS_SEND_NO_COMPRESS; zlib may hold a part's bytes back until a later
 * part (the last one flushes everything), so a part's frame can be empty. */
int ws_engine_send_part(ws_engine *e, ws_opcode kind, const uint8_t *data,
                        size_t len, int fin);
int ws_engine_send_part_ex(ws_engine *e, ws_opcode kind, const uint8_t *data,
                           size_t len, int fin, unsigned flags);

/* Queue a message framed with ws_frame_message_header (servers only: a client
 * masks every frame with a key of its own). The bytes must be exactly one
 * FIN text or binary frame, unmasked, without RSV bits, else WS_EINVALID;
 * text is not checked again. Returns 0, WS_ESTATE after our close,
 * WS_EFRAGMENT while a ws_engine_send_part message is open, WS_EINVALID
 * (also for a client engine), WS_ENOMEM. The frame is queued as it is,
 * uncompressed even when permessage-deflate was agreed (RSV1 clear is
 * always allowed). */
int ws_engine_send_framed(ws_engine *e, const uint8_t *frame, size_t len);

/* A whole message written by the caller straight from its own memory,
 * without the copy into the output (servers: a client masks every frame
 * into the output). ws_engine_send_direct checks as ws_engine_send does
 * (WS_EINVALID, WS_ESTATE, WS_EFRAGMENT, WS_EUTF8) and then, if the
 * output is empty, this engine is a server's and permessage-deflate would
 * not compress the message, puts the frame header in hdr
 * (WS_FRAME_MAX_HEADER bytes), sets *hlen and returns 0: the frame is
 * hdr[0..*hlen) and data[0..len). Room for all of it is reserved in the
 * output first (WS_ENOMEM), so that ws_engine_sent_direct cannot fail. It
 * returns 1 when the message must go through ws_engine_send instead.
 * After 0 the caller writes what it can of the frame at once and calls
 * ws_engine_sent_direct with the same hdr, data and len and the number of
 * bytes the transport took; the rest is queued as output. Nothing else
 * may touch the engine in between. */
int ws_engine_send_direct(ws_engine *e, ws_opcode kind, const uint8_t *data,
                          size_t len, uint8_t *hdr, size_t *hlen);
void ws_engine_sent_direct(ws_engine *e, const uint8_t *hdr, size_t hlen,
                           const uint8_t *data, size_t len, size_t written);

/* Queue a ping or pong (payload <= 125 bytes): 0, WS_ECONTROL, WS_ESTATE,
 * WS_ENOMEM, WS_ERAND. */
int ws_engine_ping(ws_engine *e, const uint8_t *data, size_t len);
int ws_engine_pong(ws_engine *e, const uint8_t *data, size_t len);

/* Start the closing handshake. code 0 sends a close frame with no payload
 * (the peer then reports 1005). The arguments are checked first, as
 * ws_close_check does (WS_ECODE, WS_ENOCODE, WS_EREASON, WS_EREASON_UTF8),
 * whatever the state; nothing changes when they fail. Returns 0,
 * or WS_ESTATE if a close frame was already sent (a received close is
 * answered automatically), WS_ENOMEM, WS_ERAND. The close event comes
 * from ws_engine_recv when the peer's reply arrives, or ws_engine_end. */
int ws_engine_close(ws_engine *e, int code, const uint8_t *reason,
                    size_t reason_len);

/* Bytes waiting to be written to the transport (frames queued by the calls
 * above, automatic pongs and close replies), in order. */
const uint8_t *ws_engine_output(const ws_engine *e, size_t *len);
/* The transport wrote n of them. */
void ws_engine_output_consume(ws_engine *e, size_t n);

/* Stream positions: every output byte ever queued, and every one the
 * transport took. A message queued when out_queued became Q has been
 * written completely once out_written >= Q, which is how a transport can
 * tell which accepted messages never reached the socket. */
static inline uint64_t ws_engine_queued(const ws_engine *e) {
  return e->out_queued;
}
static inline uint64_t ws_engine_written(const ws_engine *e) {
  return e->out_written;
}

/* 1 once our close frame (queued by ws_engine_close, as a close reply, or
 * when the engine fails or ends the connection) has been consumed
 * completely by the transport: only then has it crossed to the peer. */
static inline int ws_engine_close_written(const ws_engine *e) {
  return e->close_end != 0 && e->out_written >= e->close_end;
}
/* The stream position just past our close frame, 0 if none was queued
 * (for hosts that confirm writes later than they consume output). */
static inline uint64_t ws_engine_close_end(const ws_engine *e) {
  return e->close_end;
}

static inline ws_state ws_engine_state(const ws_engine *e) {
  return e->state;
}

/* -------------------------------------------------- permessage-deflate */

/* Payload compression for permessage-deflate (RFC 7692 7.2), one object per
 * direction: a deflater for what we send, an inflater for what we receive.
 * Both are opaque and allocated through cfg->alloc. Output goes into a
 * ws_buf the caller owns, appended at b->len and grown (geometrically)
 * with the same allocator, so a buffer kept between messages stops
 * allocating once it is large enough; b->off is left alone. Release such a
 * buffer with ws_deflate_buf_free or the same allocator. zlib's own state
 * is reused across messages: with no_context_takeover it is reset after
 * each message, never reallocated. */

typedef struct {
  int window_bits;         /* 8..15: the negotiated *_max_window_bits */
  int level;               /* deflater: 0..9, or -1 for zlib's default */
  int mem_level;           /* deflater: 1..9 */
  int no_context_takeover; /* reset the stream after every message */
  ws_alloc_fn alloc;       /* NULL: realloc/free */
  void *alloc_ud;
} ws_deflate_config;

/* Defaults: window 15, level -1, mem_level 8, context takeover on, the
 * default allocator. */
void ws_deflate_config_init(ws_deflate_config *cfg);

typedef struct ws_deflater ws_deflater;
typedef struct ws_inflater ws_inflater;

/* Make a deflater. A window of 8 bits compresses with 9 (zlib cannot do 8
 * for raw streams), which still never refers further back than 250 bytes,
 * so a peer keeping a 256-byte window inflates it. Sets *dp and returns 0,
 * or WS_EINVALID (a value out of range), WS_ENOMEM. */
int ws_deflater_new(ws_deflater **dp, const ws_deflate_config *cfg);
/* Free a deflater (NULL is fine). */
void ws_deflater_free(ws_deflater *d);

/* Compress the next piece of a message, appending to out; fin ends the
 * message: the output is flushed (Z_SYNC_FLUSH) and its final 00 00 ff ff
 * dropped, so that out holds the whole payload to send with RSV1 (an empty
 * message gives the single byte 00). Pieces may be of any size, including
 * 0. Returns 0, WS_ENOMEM or WS_EDEFLATE; after an error the deflater
 * keeps returning it and can only be freed. */
int ws_deflate_message(ws_deflater *d, const uint8_t *in, size_t len,
                       int fin, ws_buf *out);

/* Make an inflater for a peer that compresses with at most
 * cfg->window_bits (level and mem_level are ignored). Sets *fp and
 * returns 0,
 * WS_EINVALID or WS_ENOMEM. */
int ws_inflater_new(ws_inflater **fp, const ws_deflate_config *cfg);
/* Free an inflater (NULL is fine). */
void ws_inflater_free(ws_inflater *f);

/* Inflate the next piece (a frame's payload, or part of one) of a
 * compressed message, appending to out; fin marks the message's last
 * piece, after which 00 00 ff ff is inflated too (7.2.2). At most `max`
 * bytes of the message are inflated, zlib writing at most 16 KiB per step:
 * the buffer never grows past max + 1 bytes for the message whatever the
 * input. Returns 0, or
 *   WS_EINFLATE_LIMIT  the message inflates to more than max bytes (the
 *                      engine closes with 1009, message_too_big);
 *   WS_EINFLATE        the stream is not valid DEFLATE. The engine closes
 *                      with 1007 (invalid_payload): the frames were
 *                      well-formed and only their payload is bad, which is
 *                      what 1007 says and what Node's ws sends (its
 *                      inflate errors carry 1007; python-websockets sends
 *                      1002 instead);
 *   WS_ENOMEM, WS_EINVALID.
 * After an error the inflater keeps returning it until ws_inflater_reset.
 * Bytes after a BFINAL block are ignored up to the end of the message; the
 * window is carried over to the next one when context takeover is on. */
int ws_inflate_message(ws_inflater *f, const uint8_t *in, size_t len,
                       int fin, uint64_t max, ws_buf *out);

/* Inflate the next piece of a compressed message like ws_inflate_message
 * (fin 0), but append at most `room` (> 0) bytes to out: zlib stops there
 * and *used says how many input bytes it took; call again with the rest
 * (in + *used) to go on. Output zlib had decoded but could not write (at
 * most one match, 258 bytes) comes out with the next call's input or the
 * message's end, which is ws_inflate_message(f, NULL, 0, 1, max, out)
 * (for a hostile stream that end may decode to a few KiB more: 32 bits of
 * codes). So a message of any size inflates in pieces of at most `room`
 * bytes (plus that little), none of them kept. A stream that refers
 * further back than the agreed window is invalid; zlib catches it only
 * where the distance reaches past its window and the output of the
 * current call, so calls with little room may fail (WS_EINFLATE) on a
 * stream that one call with room for all of it accepts. Returns what
 * ws_inflate_message does, and WS_EINVALID for room 0. */
int ws_inflate_part(ws_inflater *f, const uint8_t *in, size_t len,
                    uint64_t max, size_t room, ws_buf *out, size_t *used);

/* Start over with an empty window and no error: 0 or WS_EINFLATE. */
int ws_inflater_reset(ws_inflater *f);

/* Free a buffer grown by the calls above (cfg as given to them, or NULL
 * for the default allocator) and zero it. */
void ws_deflate_buf_free(const ws_deflate_config *cfg, ws_buf *b);

/* Negotiation of permessage-deflate (RFC 7692 sections 5 and 7.1) over the
 * Sec-WebSocket-Extensions header value (RFC 6455 9.1 grammar; several
 * header lines joined with ", " are one value). Nothing is allocated: a
 * value is parsed one element at a time into fixed arrays on the stack.
 *
 * Names (the extension's and its parameters') are matched without regard
 * to case, for robustness; window values must be the canonical decimals
 * "8".."15" (a quoted value is unquoted first, RFC 7692 7.1).
 *
 * Window 8: a valid RFC value that negotiation agrees to in both
 * directions; inflating with it works as is, and a compressor limited to 8
 * compresses with a 9-bit window that never refers back more than 250
 * bytes (see ws_deflater_new). */

#define WS_PMD_MAX_HEADER 4096 /* longest header value looked at */
#define WS_PMD_MAX_ELEMENTS 32 /* extensions in one header value */
#define WS_PMD_MAX_PARAMS 16   /* parameters of one extension */
#define WS_PMD_MAX_TEXT 128    /* room for any offer or response we build */

/* Why a header was refused or an offer declined: id, machine name,
 * message. */
#define WS_PMD_ERROR_MAP(X)                                                \
  X(NONE, "none", "no error")                                              \
  X(SYNTAX, "extension_syntax",                                            \
    "Sec-WebSocket-Extensions does not follow the RFC 6455 grammar")       \
  X(TOO_LONG, "extension_too_long",                                        \
    "Sec-WebSocket-Extensions is too long or has too many elements")       \
  X(UNOFFERED, "unexpected_extension",                                     \
    "the server accepted an extension that was not offered")               \
  X(DUPLICATE, "duplicate_extension",                                      \
    "the server accepted permessage-deflate more than once")               \
  X(UNKNOWN_PARAM, "unknown_parameter",                                    \
    "unknown permessage-deflate parameter")                                \
  X(DUPLICATE_PARAM, "duplicate_parameter",                                \
    "a permessage-deflate parameter is repeated")                          \
  X(BAD_VALUE, "invalid_parameter_value",                                  \
    "invalid permessage-deflate parameter value")                          \
  X(SERVER_WINDOW, "server_max_window_bits",                               \
    "server_max_window_bits missing or larger than offered")               \
  X(CLIENT_WINDOW_UNOFFERED, "unexpected_client_max_window_bits",          \
    "client_max_window_bits in the response but not in the offer")         \
  X(CLIENT_WINDOW, "client_max_window_bits",                               \
    "client_max_window_bits larger than offered")                          \
  X(NO_CONTEXT_TAKEOVER, "server_no_context_takeover",                     \
    "server_no_context_takeover offered but not in the response")          \
  X(CLIENT_WINDOW_REQUIRED, "client_max_window_bits_required",             \
    "the server limits the client's window but the offer does not allow it")

typedef enum {
#define WS_PMD_ERROR_ENUM(id, name, msg) WS_PMD_##id,
  WS_PMD_ERROR_MAP(WS_PMD_ERROR_ENUM)
#undef WS_PMD_ERROR_ENUM
  WS_PMD__COUNT
} ws_pmd_error;

/* Machine name ("unknown_parameter") and message of a ws_pmd_error;
 * "unknown" for a value outside the table. Static storage. */
const char *ws_pmd_error_name(ws_pmd_error e);
const char *ws_pmd_error_message(ws_pmd_error e);

/* What one side wants. A window of 0 is "not set".
 * Client (the offer): the flags and server_max_window_bits (8..15) are
 * sent as set; client_max_window_bits 0 offers the parameter without a
 * value (as browsers do: the server may pick), 8..15 offers that value,
 * -1 leaves it out.
 * Server: the flags demand no context takeover in that direction even if
 * the offer did not; a window (8..15) is the largest the server agrees
 * to in that direction. A client_max_window_bits limit declines offers
 * that lack the parameter (the server cannot name it to them, 7.1.2.2),
 * unless client_window_optional is 1: then such offers are accepted with
 * the client's window of 15 (what a server wants when the limit is only
 * to save memory). Clients leave client_window_optional 0. */
typedef struct {
  int server_no_context_takeover;
  int client_no_context_takeover;
  int server_max_window_bits;
  int client_max_window_bits;
  int client_window_optional;
} ws_pmd_config;

/* What was agreed: both windows are 8..15, the flags 0 or 1. */
typedef struct {
  int server_no_context_takeover;
  int client_no_context_takeover;
  int server_max_window_bits;
  int client_max_window_bits;
} ws_pmd_params;

typedef struct {
  ws_pmd_params params; /* on success */
  /* ws_pmd_accept only: the accepted offer as the client's config that
   * would have sent it, and its 0-based position among the elements. */
  ws_pmd_config offer;
  size_t index;
  /* Why it failed; for ws_pmd_accept returning 0, why the first
   * permessage-deflate offer was declined (WS_PMD_NONE if none came). */
  ws_pmd_error error;
} ws_pmd_result;

/* 0 if cfg is valid for that role (windows 0 or 8..15; -1 also for a
 * client's client_max_window_bits; flags 0 or 1), else WS_EINVALID. */
int ws_pmd_config_check(const ws_pmd_config *cfg, int is_server);

/* Build a client's offer ("permessage-deflate; client_max_window_bits"
 * for a zeroed config) into out, no NUL. Returns its length, WS_ENOSPACE,
 * or WS_EINVALID for a bad config. */
int ws_pmd_offer(char *out, size_t cap, const ws_pmd_config *cfg);

/* Server: pick the first permessage-deflate offer in header[0..len) that
 * cfg can accept (RFC 7692 5.1, 7.1); offers with an unknown, repeated or
 * invalid parameter, or that cannot meet cfg, are declined. Writes the
 * response header value into out (no NUL) and fills res.
 * Returns the response's length (> 0) when an offer was accepted, 0 when
 * none was (res->error says why the first was declined), WS_EEXTENSION
 * when the header is malformed or over the limits (res->error: SYNTAX or
 * TOO_LONG; RFC 6455 9.1 says to fail the handshake: answer 400),
 * WS_EINVALID for a bad cfg, WS_ENOSPACE. */
int ws_pmd_accept(const char *header, size_t len, const ws_pmd_config *cfg,
                  ws_pmd_result *res, char *out, size_t cap);

/* Client: check the server's Sec-WebSocket-Extensions value against the
 * offer built from `offered` (RFC 7692 5.1, 7.1.1, 7.1.2). header may be
 * NULL (no such header). Returns 1 with res->params when permessage-
 * deflate was agreed, 0 when the response names no extension, WS_EINVALID
 * for a bad config, or WS_EEXTENSION with res->error: the client must fail
 * the connection (RFC 6455 9.1, RFC 7692 5.1). */
int ws_pmd_check_response(const char *header, size_t len,
                          const ws_pmd_config *offered, ws_pmd_result *res);


/* ------------------------------------- permessage-deflate in the engine */

/* Turn on permessage-deflate (RFC 7692) with what the handshake agreed,
 * before any frame is fed or sent:
 *  - receiving: RSV1 becomes the "compressed" bit of a message's first
 *    frame; RSV1 on a control frame (protocol:compressed_control) or a
 *    continuation frame (protocol:compressed_continuation) fails the
 *    connection with 1002. A compressed message is inflated as its bytes
 *    arrive, straight into the message buffer, and its inflated size
 *    counts against max_message_size while inflating, so a small message
 *    that would inflate past it fails with 1009
 *    (protocol:message_too_big) holding at most max_message_size + 1
 *    bytes. Text is checked as UTF-8 after inflating (1007). A stream that
 *    is not valid DEFLATE fails with 1007 (protocol:bad_deflate): the
 *    frames were well-formed and it is their payload that is invalid,
 *    which is what 1007 means. Message events carry the inflated bytes
 *    and their rsv has RSV1 cleared.
 *  - sending: text and binary messages of at least `threshold` bytes are
 *    compressed with `level` (-1 zlib's default, 0..9) and `mem_level`
 *    (1..9), unless a send's flags say otherwise.
 * The zlib streams are allocated at the first message that needs each one
 * (an idle connection carries neither) and kept across messages unless the
 * agreement says no context takeover for that direction, in which case
 * they are reset after each message. Returns 0, WS_EINVALID (bad
 * parameters, or called twice), WS_ENOMEM. */
int ws_engine_deflate(ws_engine *e, const ws_pmd_params *agreed, int level,
                      int mem_level, size_t threshold);

/* Byte counts of permessage-deflate: payload bytes before compression and
 * on the wire, for what we sent and what we received (compressed messages
 * only). All 0 without ws_engine_deflate. */
typedef struct {
  uint64_t tx_raw, tx_wire, rx_wire, rx_raw;
} ws_deflate_stats;
void ws_engine_deflate_stats(const ws_engine *e, ws_deflate_stats *st);

#ifdef __cplusplus
}
#endif
#endif
