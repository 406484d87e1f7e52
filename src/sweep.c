/*
 * sweep.c — one revocation sweep (sweep.h): pending bulk requests and the
 * drop-in directory, revocation in the inventory, the CRL (published before
 * the hub is worked), propagation, expiry, reconciliation, and the summary.
 * Runs on the thread that drives the context's hubs: the stand-alone
 * `fleetcertd --sweep` process (holding the database lock) or the daemon's
 * revocation worker. Touches the database, [sweep] dropin_dir, the CRL file.
 */
#include "fc_build.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "config.h"
#include "inventory.h"
#include "log.h"
#include "reconcile.h"
#include "sweep.h"

#define DROPIN_MAX	(16u << 20)	/* bytes of one drop-in file */
#define DROPIN_FILES	64		/* files taken per sweep */

static double
mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void __attribute__((format(printf, 2, 3)))
fail(struct sweep_summary *s, const char *fmt, ...)
{
	va_list ap;

	s->errors++;
	va_start(ap, fmt);
	vsnprintf(s->error, sizeof(s->error), fmt, ap);
	va_end(ap);
}

static int
apply_cb(void *arg, int64_t id)
{
	struct revoke_ctx *ctx = ((void **)arg)[0];
	struct sweep_summary *s = ((void **)arg)[1];
	int64_t n = 0;

	if (revoke_request_apply(ctx->db, id, ctx->actor, &n) == FC_OK) {
		s->requests++;
		s->revoked += n;
	} else {
		fail(s, "revocation request %lld could not be applied",
		    (long long)id);
	}
	return 0;
}

/*
 * One drop-in file: device ids, one a line, '#' comments, blank lines.
 * Good lines are revoked (one bulk request named after the file); a bad
 * line (malformed or unknown id) is reported in FILE.error and the file is
 * left in place. A clean file moves to done/.
 */
static void
dropin_one(struct revoke_ctx *ctx, const char *dir, const char *name,
    struct sweep_summary *s)
{
	char path[4096], epath[4200], dpath[4200], *buf = NULL, *line, *save;
	json_t *ids = json_array(), *sel = NULL;
	struct inv_device d;
	FILE *ef = NULL;
	size_t len = 0;
	int lineno = 0, bad = 0;
	int64_t id = 0, matched = 0, n = 0;
	double est;
	char err[256];

	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >=
	    (int)sizeof(path) || snprintf(epath, sizeof(epath), "%s.error",
	    path) >= (int)sizeof(epath) || snprintf(dpath, sizeof(dpath),
	    "%s/done/%s", dir, name) >= (int)sizeof(dpath)) {
		fail(s, "drop-in %s: path too long", name);
		goto out;
	}
	if (ids == NULL || fc_file_read(path, DROPIN_MAX, &buf, &len) != FC_OK) {
		fail(s, "drop-in %s: cannot read (or over 16 MiB)", name);
		goto out;
	}
	if (strlen(buf) != len) {
		fail(s, "drop-in %s: contains NUL bytes", name);
		goto out;
	}
	for (line = buf; line != NULL; line = save) {
		char *p = line, *e;
		save = strchr(line, '\n');
		if (save != NULL)
			*save++ = '\0';
		else if (*line == '\0')
			break;
		lineno++;
		while (*p == ' ' || *p == '\t')
			p++;
		if ((e = strchr(p, '#')) != NULL)
			*e = '\0';
		e = p + strlen(p);
		while (e > p && (e[-1] == ' ' || e[-1] == '\t' ||
		    e[-1] == '\r'))
			*--e = '\0';
		if (*p == '\0')
			continue;
		memset(&d, 0, sizeof(d));
		if (!fc_device_id_valid(p) ||
		    inv_device_get(ctx->db, p, &d) != FC_OK) {
			if (ef == NULL)
				ef = fopen(epath, "w");
			if (ef != NULL)
				fprintf(ef, "%s:%d: %s\n", name, lineno,
				    fc_device_id_valid(p) ? "unknown device" :
				    "not a valid device id");
			bad++;
			continue;
		}
		inv_device_clear(&d);
		json_array_append_new(ids, json_string(p));
	}
	s->dropin_bad += bad;
	if (json_array_size(ids) > 0) {
		sel = json_pack("{s:O}", "deviceIds", ids);
		if (sel == NULL || revoke_request_create(ctx->db, ctx->cfg, sel,
		    "keyCompromise", 0, ctx->actor, &id, &matched, &est, err,
		    sizeof(err)) != FC_OK || revoke_request_apply(ctx->db, id,
		    ctx->actor, &n) != FC_OK) {
			fail(s, "drop-in %s: could not be revoked", name);
			goto out;
		}
		s->revoked += n;
		s->requests++;
	}
	s->dropins++;
	if (bad > 0) {
		log_warn("sweep: drop-in %s: %d bad line(s), see %s", name, bad,
		    epath);
		fail(s, "drop-in %s has bad lines", name);
		goto out;
	}
	(void)remove(epath);
	if (rename(path, dpath) != 0)
		fail(s, "drop-in %s: cannot move it to done/", name);
	log_info("sweep: drop-in %s: %lld device(s) revoked", name,
	    (long long)n);
out:
	if (ef != NULL)
		fclose(ef);
	json_decref(ids);
	json_decref(sel);
	free(buf);
}

static void
dropins(struct revoke_ctx *ctx, struct sweep_summary *s)
{
	const char *dir = ctx->cfg->dropin_dir;
	char done[4096], names[DROPIN_FILES][256];
	struct dirent *de;
	struct stat sb;
	DIR *dp;
	int n = 0, i;

	if (dir == NULL || dir[0] == '\0')
		return;
	dp = opendir(dir);
	if (dp == NULL) {
		if (errno != ENOENT)
			fail(s, "drop-in directory %s: cannot open", dir);
		return;
	}
	snprintf(done, sizeof(done), "%s/done", dir);
	(void)mkdir(done, 0750);
	while (n < DROPIN_FILES && (de = readdir(dp)) != NULL) {
		size_t l = strlen(de->d_name);
		char p[4400];
		if (de->d_name[0] == '.' || l >= sizeof(names[0]) ||
		    (l > 6 && strcmp(de->d_name + l - 6, ".error") == 0))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		if (lstat(p, &sb) != 0 || !S_ISREG(sb.st_mode))
			continue;
		snprintf(names[n++], sizeof(names[0]), "%s", de->d_name);
	}
	closedir(dp);
	for (i = 0; i < n; i++)
		dropin_one(ctx, dir, names[i], s);
}

enum fc_err
sweep_run(struct revoke_ctx *ctx, struct sweep_summary *s)
{
	struct revoke_prop_stats ps;
	struct reconcile_stats rs;
	double t0 = mono(), t1;
	void *pair[2] = { ctx, s };
	enum fc_err result;
	int nexp = 0;

	memset(s, 0, sizeof(*s));
	/* 1. Requests recorded but not applied, and drop-ins. */
	result = inv_rev_request_pending(ctx->db, apply_cb, pair);
	if (result != FC_OK)
		return result;
	dropins(ctx, s);

	/* 2. The CRL first: it protects every relying party at once, the
	 * hub takes minutes. */
	t1 = mono();
	result = revoke_crl_publish(ctx->db, ctx->cfg, &s->crl_number,
	    &s->crl_entries);
	s->crl_seconds = mono() - t1;
	if (result == FC_OK)
		s->crl_published = 1;
	else if (result != FC_EINVAL)
		fail(s, "CRL not published (%s)", fc_strerror(result));

	/* 3. The hub. */
	t1 = mono();
	result = revoke_propagate(ctx, &ps);
	s->propagate_seconds = mono() - t1;
	if (result != FC_OK)
		return result;
	s->propagated = ps.done;
	s->bulk_calls = ps.calls;
	s->pending = ps.pending;
	if (ps.hub_errors > 0)
		fail(s, "%s", ps.last_error);
	(void)inv_rev_request_finish(ctx->db, fc_now());

	/* 4. Expiry. */
	if (inv_expire_mark(ctx->db, fc_now(), &nexp) == FC_OK)
		s->expired = nexp;
	else
		fail(s, "%s", "marking expired certificates failed");

	/* 5. Drift (repairs queue propagation, done now). */
	if (ctx->nhubs > 0 && !(ctx->stop != NULL && *ctx->stop)) {
		if (reconcile_run(ctx, &rs) != FC_OK) {
			fail(s, "%s", "reconciliation failed (hub)");
		} else {
			s->drift = rs.total;
			if (rs.repaired > 0 && revoke_propagate(ctx, &ps) ==
			    FC_OK) {
				s->propagated += ps.done;
				s->pending = ps.pending;
			}
		}
	}
	s->seconds = mono() - t0;
	s->exit_code = s->pending > 0 || s->errors > 0 ? 1 : 0;
	return FC_OK;
}

void
sweep_summary_line(const struct sweep_summary *s, char *buf, size_t len)
{
	char crl[64];

	if (s->crl_published)
		snprintf(crl, sizeof(crl), "CRL #%llu (%lld entries)",
		    (unsigned long long)s->crl_number,
		    (long long)s->crl_entries);
	else
		snprintf(crl, sizeof(crl), "no CRL");
	snprintf(buf, len, "sweep: %s: %lld request(s), %lld drop-in(s) "
	    "(%lld bad lines), %lld revoked, %lld propagated in %lld bulk "
	    "call(s), %lld pending, %lld expired, %lld drift, %s, %.1f s%s%s",
	    s->exit_code == 0 ? "complete" : "incomplete",
	    (long long)s->requests, (long long)s->dropins,
	    (long long)s->dropin_bad, (long long)s->revoked,
	    (long long)s->propagated, (long long)s->bulk_calls,
	    (long long)s->pending, (long long)s->expired, (long long)s->drift,
	    crl, s->seconds, s->error[0] ? "; last error: " : "", s->error);
}

json_t *
sweep_summary_json(const struct sweep_summary *s)
{
	return json_pack("{s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
	    "s:b, s:I, s:I, s:f, s:f, s:f, s:i, s:s?, s:i}",
	    "complete", s->exit_code == 0,
	    "requests", (json_int_t)s->requests,
	    "dropins", (json_int_t)s->dropins,
	    "dropinBadLines", (json_int_t)s->dropin_bad,
	    "revoked", (json_int_t)s->revoked,
	    "propagated", (json_int_t)s->propagated,
	    "bulkCalls", (json_int_t)s->bulk_calls,
	    "pending", (json_int_t)s->pending,
	    "expired", (json_int_t)s->expired,
	    "drift", (json_int_t)s->drift,
	    "crlPublished", s->crl_published,
	    "crlNumber", (json_int_t)s->crl_number,
	    "crlEntries", (json_int_t)s->crl_entries,
	    "crlSeconds", s->crl_seconds,
	    "propagateSeconds", s->propagate_seconds,
	    "seconds", s->seconds, "errors", s->errors,
	    "lastError", s->error[0] ? s->error : NULL,
	    "exitCode", s->exit_code);
}
