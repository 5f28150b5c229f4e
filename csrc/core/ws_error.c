/*
 * Messages and machine names for error codes, and the names and codes of
 * the ways a connection fails or ends, all from the tables in ws.h.
 */
#include "ws.h"

const char *ws_strerror(int err) {
  switch (err) {
    case WS_OK:
      return "success";
#define WS_ERRNO_CASE(name, val, errname, msg) \
  case WS_E##name:                             \
    return msg;
      WS_ERRNO_MAP(WS_ERRNO_CASE)
#undef WS_ERRNO_CASE
    default:
      return "unknown error";
  }
}

const char *ws_errname(int err) {
  switch (err) {
    case WS_OK:
      return "ok";
#define WS_ERRNO_CASE(name, val, errname, msg) \
  case WS_E##name:                             \
    return errname;
      WS_ERRNO_MAP(WS_ERRNO_CASE)
#undef WS_ERRNO_CASE
    default:
      return "unknown";
  }
}

static const struct {
  const char *name;
  int code;
} violations[] = {
#define WS_VIOLATION_ROW(id, name, code) {name, code},
    WS_VIOLATION_MAP(WS_VIOLATION_ROW)
#undef WS_VIOLATION_ROW
};

const char *ws_violation_name(ws_violation v) {
  if ((unsigned)v >= (unsigned)WS_V__COUNT) return "unknown";
  return violations[v].name;
}

int ws_violation_code(ws_violation v) {
  if ((unsigned)v >= (unsigned)WS_V__COUNT) return WS_CLOSE_protocol_error;
  return violations[v].code;
}

static const struct {
  const char *name;
  int code;
  ws_initiator by;
} ends[] = {
#define WS_END_ROW(id, name, code, by) {name, code, by},
    WS_END_MAP(WS_END_ROW)
#undef WS_END_ROW
};

const char *ws_end_name(ws_end cause) {
  if ((unsigned)cause >= (unsigned)WS_END__COUNT) return "unknown";
  return ends[cause].name;
}

int ws_end_code(ws_end cause) {
  if ((unsigned)cause >= (unsigned)WS_END__COUNT) return WS_CLOSE_abnormal;
  return ends[cause].code;
}

ws_initiator ws_end_initiator(ws_end cause) {
  if ((unsigned)cause >= (unsigned)WS_END__COUNT) return WS_BY_TRANSPORT;
  return ends[cause].by;
}
