/*
 * ctl.h — internals of fleetcertctl, the operator's command line client of
 * the operator API (libcurl over TCP or a Unix socket). main.c parses the
 * global options and the optional config file and runs one subcommand of
 * the table in cmds.c; http.c talks to the API; out.c prints tables,
 * histograms and the progress bar. Single-threaded, short-lived.
 */
#ifndef FC_CTL_H
#define FC_CTL_H

#include <stddef.h>

#include <jansson.h>

/* Exit codes, documented in --help and fleetcertctl(1). */
#define CTL_OK		0
#define CTL_FAIL	1
#define CTL_USAGE	2

struct ctl {
	char		*api;		/* base URL, no trailing slash */
	char		*socket;	/* Unix socket path or NULL */
	char		*token_file;
	int		 json;		/* --json */
	char		*token;		/* secret; wiped at exit */
	size_t		 token_len;
	void		*curl;		/* CURL * */
};

struct ctl_resp {
	long		 status;
	char		*body;
	size_t		 len;
	json_t		*json;		/* parsed when the body is JSON */
};

struct ctl_cmd {
	const char	*name;
	const char	*args;		/* usage after the name */
	const char	*help;
	int		(*fn)(struct ctl *c, int argc, char **argv);
};
extern const struct ctl_cmd ctl_cmds[];	/* ends with a NULL name */

/* Revocation subcommands (cmds_revoke.c). */
int ctl_cmd_revoke(struct ctl *c, int argc, char **argv);
int ctl_cmd_revocation(struct ctl *c, int argc, char **argv);
int ctl_cmd_transfer(struct ctl *c, int argc, char **argv);
int ctl_cmd_decommission(struct ctl *c, int argc, char **argv);
int ctl_cmd_crl(struct ctl *c, int argc, char **argv);
int ctl_cmd_drift(struct ctl *c, int argc, char **argv);

/*
 * One request. path is appended to the API URL (segments already escaped
 * with ctl_escape). body may be NULL. progress: show an upload progress
 * bar when stderr is a terminal. Returns 0 with *out filled (any HTTP
 * status), or -1 after printing why the request could not be made.
 */
int ctl_request(struct ctl *c, const char *method, const char *path,
    const char *ctype, const char *body, size_t len, int progress,
    struct ctl_resp *out);
void ctl_resp_clear(struct ctl_resp *r);

/* Prints the API's error ({"error":{"code","message"}}) or the status to
 * stderr (also in --json mode: the body goes to stdout). Returns CTL_FAIL. */
int ctl_fail(struct ctl *c, const struct ctl_resp *r);

/* Percent-escapes one path segment or query value; caller frees. */
char *ctl_escape(struct ctl *c, const char *s);

/* Prints JSON pretty to stdout. */
void ctl_json_print(const json_t *j);

/* A simple text table: columns sized to their widest cell. */
struct ctl_table {
	size_t		 ncols;
	const char *const *heads;
	char		**cells;
	size_t		 nrows, cap;
	size_t		*w;		/* widths, fixed at the first print */
};
void ctl_table_init(struct ctl_table *t, const char *const *heads,
    size_t ncols);
/* Adds a row of ncols strings (copied; NULL shows as "-"). */
void ctl_table_row(struct ctl_table *t, const char *const *cells);
/* Prints the rows added since the last call (the header the first time);
 * column widths are fixed by the first call, so lists can stream. */
void ctl_table_print(struct ctl_table *t);
void ctl_table_free(struct ctl_table *t);

/* A horizontal bar chart of labelled counts, fitted to the terminal. */
void ctl_histogram_print(const char *const *labels, const long long *counts,
    size_t n);

/* String member of obj or "-" (never NULL). */
const char *ctl_str(const json_t *obj, const char *key);

#endif
