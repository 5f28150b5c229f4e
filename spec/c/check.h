/*
 * The C tests' one assertion: count a check, and name it on stderr when
 * it fails. Each test's main prints "<name>: N passed, M failed" and
 * returns failed != 0.
 */
#ifndef LUA_WS_SPEC_CHECK_H
#define LUA_WS_SPEC_CHECK_H

#include <stdio.h>

static int passed, failed;

static void check(int ok, const char *what) {
  if (ok) {
    passed++;
  } else {
    failed++;
    fprintf(stderr, "FAIL: %s\n", what);
  }
}

#endif
