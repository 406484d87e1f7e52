/*
 * testutil.h — helpers shared by the Check suites: temporary directories
 * (removed at exit) and small file writers.
 */
#ifndef FC_TESTUTIL_H
#define FC_TESTUTIL_H

#include <stddef.h>

/* Creates a fresh temporary directory, removed (recursively) at exit.
 * Returns a static-lifetime string. Aborts the test on failure. */
const char *tu_tmpdir(void);

/* Writes len bytes to dir/name with mode; returns the malloc'd path. */
char *tu_write(const char *dir, const char *name, const void *data,
    size_t len, unsigned mode);

/* Same with a NUL-terminated string. */
char *tu_write_str(const char *dir, const char *name, const char *s);

#endif
