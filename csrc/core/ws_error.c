/*
 * Messages for error codes and names for connection failures, from the
 * tables in ws.h.
 */
#include "ws.h"

const char *ws_strerror(int err) {
  switch (err) {
    case WS_OK:
      return "success";
#define WS_ERRNO_CASE(name, val, msg) \
  case WS_E##name:                    \
    return msg;
      WS_ERRNO_MAP(WS_ERRNO_CASE)
#undef WS_ERRNO_CASE
    default:
      return "unknown error";
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
