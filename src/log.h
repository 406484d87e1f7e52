/*
 * log.h — the one logging API of fleetcert. stderr when run by hand; when
 * stderr is connected to the journal (JOURNAL_STREAM), each line carries an
 * sd-daemon priority prefix so the journal records its level.
 * Callers name the object in the message ("device %s: ...", "cert %s: ...")
 * and never pass a secret. Thread-safe.
 */
#ifndef FC_LOG_H
#define FC_LOG_H

enum log_level { LOG_LVL_ERROR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* ident names the program in each line; called once from main(). */
void log_init(const char *ident, enum log_level level);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Parses "error|warn|info|debug"; -1 when unknown. */
int log_level_parse(const char *s);

void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Logs OpenSSL's error queue (then clears it) after msg, at warn level. */
void log_openssl(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Logs at error level and exits 1. */
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
