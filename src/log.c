/*
 * log.c — stderr / journal logging. Used from every thread and both
 * processes (main and signer). Each line is written with one write(2) so
 * lines from threads do not interleave.
 */
#include "fc_build.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>

#include "log.h"

static const char *log_ident = "fleetcert";
static _Atomic int log_level = LOG_LVL_INFO;
static int log_journal;		/* stderr is the journal: use <N> prefixes */

static int
stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long dev, ino;
	struct stat st;

	if (js == NULL || sscanf(js, "%lu:%lu", &dev, &ino) != 2)
		return 0;
	if (fstat(STDERR_FILENO, &st) != 0)
		return 0;
	return (unsigned long)st.st_dev == dev && (unsigned long)st.st_ino == ino;
}

void
log_init(const char *ident, enum log_level level)
{
	log_ident = ident;
	atomic_store(&log_level, (int)level);
	log_journal = stderr_is_journal();
}

void
log_set_level(enum log_level level)
{
	atomic_store(&log_level, (int)level);
}

enum log_level
log_get_level(void)
{
	return (enum log_level)atomic_load(&log_level);
}

int
log_level_parse(const char *s)
{
	static const char *names[] = { "error", "warn", "info", "debug" };
	int i;

	for (i = 0; i < 4; i++)
		if (strcmp(s, names[i]) == 0)
			return i;
	return -1;
}

static void
log_vemit(enum log_level lvl, const char *fmt, va_list ap, const char *tail)
{
	static const char *names[] = { "error", "warn", "info", "debug" };
	static const int prio[] = { 3, 4, 6, 7 };
	char line[2048];
	int n = 0, m;
	size_t i;

	if ((int)lvl > atomic_load(&log_level))
		return;
	if (log_journal) {
		n = snprintf(line, sizeof(line), "<%d>", prio[lvl]);
	} else {
		char ts[32];
		struct tm tm;
		time_t now = time(NULL);
		gmtime_r(&now, &tm);
		strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
		n = snprintf(line, sizeof(line), "%s %s[%ld] %s: ", ts,
		    log_ident, (long)getpid(), names[lvl]);
	}
	m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	if (m < 0)
		m = 0;
	n += m;
	if ((size_t)n >= sizeof(line) - 1)
		n = (int)sizeof(line) - 2;
	if (tail != NULL && tail[0] != '\0') {
		/* Room left, keeping one byte for the newline. */
		size_t room = sizeof(line) - 1 - (size_t)n, tl = strlen(tail);

		if (room > 2) {
			memcpy(line + n, ": ", 2);
			n += 2;
			room -= 2;
			if (tl > room)
				tl = room;
			memcpy(line + n, tail, tl);
			n += (int)tl;
		}
	}
	/* One record per line: control characters from outside data
	 * cannot forge extra log lines. */
	for (i = 0; i < (size_t)n; i++)
		if ((unsigned char)line[i] < 0x20 && line[i] != '\t')
			line[i] = '?';
	line[n++] = '\n';
	(void)!write(STDERR_FILENO, line, (size_t)n);
}

#define LOG_FN(name, lvl)					\
void								\
name(const char *fmt, ...)					\
{								\
	va_list ap;						\
	va_start(ap, fmt);					\
	log_vemit(lvl, fmt, ap, NULL);				\
	va_end(ap);						\
}

LOG_FN(log_error, LOG_LVL_ERROR)
LOG_FN(log_warn, LOG_LVL_WARN)
LOG_FN(log_info, LOG_LVL_INFO)
LOG_FN(log_debug, LOG_LVL_DEBUG)

void
log_openssl(const char *fmt, ...)
{
	char tail[512] = "";
	unsigned long e;
	va_list ap;

	/* Only the reason of the first queued error: OpenSSL's data strings
	 * may echo a key URI, which can carry a PIN. */
	e = ERR_peek_error();
	if (e != 0)
		ERR_error_string_n(e, tail, sizeof(tail));
	ERR_clear_error();
	va_start(ap, fmt);
	log_vemit(LOG_LVL_WARN, fmt, ap, tail);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_LVL_ERROR, fmt, ap, NULL);
	va_end(ap);
	exit(1);
}
