/*
 * testutil.c — temporary directories and files for the Check suites.
 */
#include "fc_build.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

static char *dirs[64];
static int ndirs;
static pid_t owner;	/* the process whose atexit handler owns dirs[] */

static void
cleanup(void)
{
	char cmd[4200];
	int i;

	if (getpid() != owner)
		return;
	for (i = 0; i < ndirs; i++) {
		if (getenv("FC_KEEP_TMP") == NULL) {
			snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dirs[i]);
			(void)!system(cmd);
		}
		free(dirs[i]);
	}
	ndirs = 0;
}

const char *
tu_tmpdir(void)
{
	char tmpl[] = "/tmp/fleetcert-test.XXXXXX";
	char *d;

	if (mkdtemp(tmpl) == NULL) {
		perror("mkdtemp");
		abort();
	}
	d = strdup(tmpl);
	if (d == NULL || ndirs >= 64)
		abort();
	/* Check forks each test: a child forgets its parent's directories
	 * and removes only its own. */
	if (owner != getpid()) {
		int i;
		for (i = 0; i < ndirs; i++)
			free(dirs[i]);
		ndirs = 0;
		owner = getpid();
		atexit(cleanup);
	}
	dirs[ndirs++] = d;
	return d;
}

char *
tu_write(const char *dir, const char *name, const void *data, size_t len,
    unsigned mode)
{
	char *path = NULL;
	int fd;

	if (asprintf(&path, "%s/%s", dir, name) < 0)
		abort();
	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	if (fd < 0 || write(fd, data, len) != (ssize_t)len) {
		perror(path);
		abort();
	}
	fchmod(fd, mode);
	close(fd);
	return path;
}

char *
tu_write_str(const char *dir, const char *name, const char *s)
{
	return tu_write(dir, name, s, strlen(s), 0600);
}
