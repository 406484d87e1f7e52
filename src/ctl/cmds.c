/*
 * cmds.c — fleetcertctl's subcommands, one small function each, and their
 * table ctl_cmds. Each parses its own options, makes its requests through
 * http.c and prints a table (or, with --json, the API's JSON).
 * New endpoints get a function and a line in ctl_cmds.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "fc.h"

#define IMPORT_MAX	(64u << 20)

/* Runs getopt_long from the start of a subcommand's argv. */
static int
opt_next(int argc, char **argv, const struct option *lo)
{
	return getopt_long(argc, argv, "", lo, NULL);
}

static int
usage_err(const char *cmd)
{
	const struct ctl_cmd *c;

	for (c = ctl_cmds; c->name != NULL; c++)
		if (strcmp(c->name, cmd) == 0)
			fprintf(stderr, "usage: fleetcertctl %s %s\n", c->name,
			    c->args);
	return CTL_USAGE;
}

/* GET path; on 200 *out gets the JSON (caller decrefs). CTL_* code. */
static int
get_json(struct ctl *c, const char *path, json_t **out)
{
	struct ctl_resp r;

	if (ctl_request(c, "GET", path, NULL, NULL, 0, 0, &r) < 0)
		return CTL_FAIL;
	if (r.status != 200 || r.json == NULL) {
		int rc = ctl_fail(c, &r);

		ctl_resp_clear(&r);
		return rc;
	}
	*out = json_incref(r.json);
	ctl_resp_clear(&r);
	return CTL_OK;
}

/* Appends "&name=escaped(value)" (or '?' first) to buf. */
static int
add_query(struct ctl *c, char *buf, size_t len, const char *name,
    const char *value)
{
	char *e;
	size_t n = strlen(buf);

	if (value == NULL)
		return 0;
	if ((e = ctl_escape(c, value)) == NULL)
		return -1;
	snprintf(buf + n, len - n, "%c%s=%s", strchr(buf, '?') ? '&' : '?',
	    name, e);
	free(e);
	return strlen(buf) + 1 < len ? 0 : -1;
}

static int
cmd_status(struct ctl *c, int argc, char **argv)
{
	static const char *const heads[] = { "COMPONENT", "OK", "REASON",
	    "SINCE" };
	struct ctl_resp r;
	struct ctl_table t;
	const char *name;
	json_t *comp;
	int rc;

	if (argc != 1)
		return usage_err("status");
	if (ctl_request(c, "GET", "/v1/health", NULL, NULL, 0, 0, &r) < 0)
		return CTL_FAIL;
	if ((r.status != 200 && r.status != 503) || r.json == NULL) {
		rc = ctl_fail(c, &r);
		ctl_resp_clear(&r);
		return rc;
	}
	if (c->json) {
		ctl_json_print(r.json);
	} else {
		printf("status: %s\n", ctl_str(r.json, "status"));
		ctl_table_init(&t, heads, 4);
		json_object_foreach(json_object_get(r.json, "components"),
		    name, comp) {
			const char *row[4] = { name, json_is_true(
			    json_object_get(comp, "ok")) ? "yes" : "NO",
			    ctl_str(comp, "reason"), ctl_str(comp, "since") };

			ctl_table_row(&t, row);
		}
		ctl_table_print(&t);
		ctl_table_free(&t);
	}
	rc = r.status == 200 ? CTL_OK : CTL_FAIL;
	ctl_resp_clear(&r);
	return rc;
}

static void
device_row(struct ctl_table *t, const json_t *d)
{
	const json_t *cert = json_object_get(d, "certificate");
	const char *row[8] = { ctl_str(d, "deviceId"), ctl_str(d, "serial"),
	    ctl_str(d, "status"), ctl_str(d, "owner"), ctl_str(d, "batch"),
	    ctl_str(cert, "serial"), ctl_str(cert, "status"),
	    ctl_str(cert, "notAfter") };

	ctl_table_row(t, row);
}

static int
cmd_list(struct ctl *c, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "status", required_argument, NULL, 's' },
		{ "owner", required_argument, NULL, 'o' },
		{ "batch", required_argument, NULL, 'b' },
		{ "hub", required_argument, NULL, 'H' },
		{ "expiring-within", required_argument, NULL, 'e' },
		{ "limit", required_argument, NULL, 'l' },
		{ NULL, 0, NULL, 0 } };
	static const char *const heads[] = { "DEVICE", "SE-SERIAL", "STATUS",
	    "OWNER", "BATCH", "CERT-SERIAL", "CERT-STATUS", "NOT-AFTER" };
	const char *status = NULL, *owner = NULL, *batch = NULL, *hub = NULL,
	    *within = NULL, *cursor;
	char base[2048] = "/v1/devices", path[4096];
	struct ctl_table t;
	json_t *page = NULL, *it;
	long limit = -1, got = 0;
	size_t i;
	int o, rc = CTL_FAIL;

	while ((o = opt_next(argc, argv, lo)) != -1) {
		switch (o) {
		case 's': status = optarg; break;
		case 'o': owner = optarg; break;
		case 'b': batch = optarg; break;
		case 'H': hub = optarg; break;
		case 'e': within = optarg; break;
		case 'l':
			if ((limit = atol(optarg)) < 1)
				return usage_err("list");
			break;
		default: return usage_err("list");
		}
	}
	if (optind != argc)
		return usage_err("list");
	if (add_query(c, base, sizeof(base), "status", status) < 0 ||
	    add_query(c, base, sizeof(base), "owner", owner) < 0 ||
	    add_query(c, base, sizeof(base), "batch", batch) < 0 ||
	    add_query(c, base, sizeof(base), "hub", hub) < 0 ||
	    add_query(c, base, sizeof(base), "expiringWithin", within) < 0)
		return usage_err("list");
	ctl_table_init(&t, heads, 8);
	/* Follow the cursor to the end (or to --limit devices), printing
	 * each page as it comes: a fleet of a million stays out of memory.
	 * --json prints one array, an element per line. */
	snprintf(path, sizeof(path), "%s%climit=%ld", base,
	    strchr(base, '?') ? '&' : '?', limit > 0 && limit < 1000 ? limit :
	    1000L);
	for (;;) {
		if ((rc = get_json(c, path, &page)) != CTL_OK)
			goto out;
		json_array_foreach(json_object_get(page, "items"), i, it) {
			if (limit > 0 && got >= limit)
				break;
			if (c->json) {
				fputs(got > 0 ? ",\n" : "[\n", stdout);
				json_dumpf(it, stdout, JSON_COMPACT);
			} else
				device_row(&t, it);
			got++;
		}
		if (!c->json)
			ctl_table_print(&t);
		cursor = json_string_value(json_object_get(page, "nextCursor"));
		if (cursor == NULL || (limit > 0 && got >= limit))
			break;
		snprintf(path, sizeof(path), "%s%climit=%ld", base,
		    strchr(base, '?') ? '&' : '?', limit > 0 &&
		    limit - got < 1000 ? limit - got : 1000L);
		if (add_query(c, path, sizeof(path), "cursor", cursor) < 0) {
			rc = CTL_FAIL;
			goto out;
		}
		json_decref(page);
		page = NULL;
	}
	rc = CTL_OK;
out:
	/* An error after some pages still leaves a closed array. */
	if (c->json && (got > 0 || rc == CTL_OK))
		fputs(got > 0 ? "\n]\n" : "[]\n", stdout);
	ctl_table_free(&t);
	json_decref(page);
	return rc;
}

static int
device_path(struct ctl *c, char *buf, size_t len, const char *id,
    const char *suffix)
{
	char *e = ctl_escape(c, id);

	if (e == NULL)
		return -1;
	snprintf(buf, len, "/v1/devices/%s%s", e, suffix);
	free(e);
	return 0;
}

static int
cmd_show(struct ctl *c, int argc, char **argv)
{
	static const char *const keys[] = { "deviceId", "serial", "status",
	    "authType", "owner", "batch", "hub" };
	static const char *const ckeys[] = { "serial", "status", "notBefore",
	    "notAfter", "sha256", "issuedBy", "renewedFrom" };
	char path[1024];
	json_t *d = NULL, *cert;
	size_t i;
	int rc;

	if (argc != 2)
		return usage_err("show");
	if (device_path(c, path, sizeof(path), argv[1], "") < 0)
		return CTL_FAIL;
	if ((rc = get_json(c, path, &d)) != CTL_OK)
		return rc;
	if (c->json) {
		ctl_json_print(d);
	} else {
		for (i = 0; i < FC_ARRAY_LEN(keys); i++)
			printf("%-20s %s\n", keys[i], ctl_str(d, keys[i]));
		printf("%-20s %s\n", "needsReenrol", json_is_true(
		    json_object_get(d, "needsReenrol")) ? "yes" : "no");
		cert = json_object_get(d, "certificate");
		if (!json_is_object(cert))
			printf("%-20s none\n", "certificate");
		for (i = 0; json_is_object(cert) && i < FC_ARRAY_LEN(ckeys);
		    i++)
			printf("certificate.%-8s %s\n", ckeys[i],
			    ctl_str(cert, ckeys[i]));
	}
	json_decref(d);
	return CTL_OK;
}

static int
cmd_certs(struct ctl *c, int argc, char **argv)
{
	static const char *const heads[] = { "SERIAL", "STATUS", "NOT-BEFORE",
	    "NOT-AFTER", "ISSUED-BY", "RENEWED-FROM" };
	struct ctl_table t;
	char path[1024];
	json_t *j = NULL, *it;
	size_t i;
	int rc;

	if (argc != 2)
		return usage_err("certs");
	if (device_path(c, path, sizeof(path), argv[1], "/certificates") < 0)
		return CTL_FAIL;
	if ((rc = get_json(c, path, &j)) != CTL_OK)
		return rc;
	if (c->json) {
		ctl_json_print(j);
	} else {
		ctl_table_init(&t, heads, 6);
		json_array_foreach(json_object_get(j, "items"), i, it) {
			const char *row[6] = { ctl_str(it, "serial"),
			    ctl_str(it, "status"), ctl_str(it, "notBefore"),
			    ctl_str(it, "notAfter"), ctl_str(it, "issuedBy"),
			    ctl_str(it, "renewedFrom") };

			ctl_table_row(&t, row);
		}
		ctl_table_print(&t);
		ctl_table_free(&t);
	}
	json_decref(j);
	return CTL_OK;
}

static int
cmd_import(struct ctl *c, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "skip-bad", no_argument, NULL, 's' },
		{ "owner", required_argument, NULL, 'o' },
		{ "batch", required_argument, NULL, 'b' },
		{ "hub", required_argument, NULL, 'H' },
		{ "auth-type", required_argument, NULL, 'a' },
		{ NULL, 0, NULL, 0 } };
	static const char *const heads[] = { "LINE", "MESSAGE" };
	const char *owner = NULL, *batch = NULL, *hub = NULL, *auth = NULL,
	    *ctype = "text/csv";
	char path[2048] = "/v1/imports", *buf = NULL, line[32];
	struct ctl_resp r;
	struct ctl_table t;
	json_t *it;
	size_t len = 0, i;
	int o, skip = 0, rc;

	while ((o = opt_next(argc, argv, lo)) != -1) {
		switch (o) {
		case 's': skip = 1; break;
		case 'o': owner = optarg; break;
		case 'b': batch = optarg; break;
		case 'H': hub = optarg; break;
		case 'a': auth = optarg; break;
		default: return usage_err("import");
		}
	}
	if (optind + 1 != argc)
		return usage_err("import");
	if (fc_file_read(argv[optind], IMPORT_MAX, &buf, &len) != FC_OK) {
		fprintf(stderr, "fleetcertctl: %s: cannot read (or larger "
		    "than 64 MiB)\n", argv[optind]);
		return CTL_FAIL;
	}
	for (i = 0; i < len && strchr(" \t\r\n", buf[i]); i++)
		;
	if (i < len && (buf[i] == '[' || buf[i] == '{'))
		ctype = "application/json";
	if ((skip && add_query(c, path, sizeof(path), "skipBad", "true") < 0) ||
	    add_query(c, path, sizeof(path), "owner", owner) < 0 ||
	    add_query(c, path, sizeof(path), "batch", batch) < 0 ||
	    add_query(c, path, sizeof(path), "hub", hub) < 0 ||
	    add_query(c, path, sizeof(path), "authType", auth) < 0) {
		free(buf);
		return usage_err("import");
	}
	rc = ctl_request(c, "POST", path, ctype, buf, len, 1, &r);
	free(buf);
	if (rc < 0)
		return CTL_FAIL;
	if ((r.status != 200 && r.status != 422) || r.json == NULL) {
		rc = ctl_fail(c, &r);
		ctl_resp_clear(&r);
		return rc;
	}
	if (c->json) {
		ctl_json_print(r.json);
	} else {
		printf("imported %lld, skipped %lld\n", (long long)
		    json_integer_value(json_object_get(r.json, "imported")),
		    (long long)json_integer_value(json_object_get(r.json,
		    "skipped")));
		ctl_table_init(&t, heads, 2);
		json_array_foreach(json_object_get(r.json, "errors"), i, it) {
			const char *row[2] = { line, ctl_str(it, "message") };

			snprintf(line, sizeof(line), "%lld", (long long)
			    json_integer_value(json_object_get(it, "line")));
			ctl_table_row(&t, row);
		}
		if (t.nrows > 0)
			ctl_table_print(&t);
		ctl_table_free(&t);
	}
	if (r.status != 200)
		fprintf(stderr, "fleetcertctl: nothing was imported\n");
	rc = r.status == 200 ? CTL_OK : CTL_FAIL;
	ctl_resp_clear(&r);
	return rc;
}

static int
cmd_expiry(struct ctl *c, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "week", no_argument, NULL, 'w' },
		{ "count", required_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 } };
	char path[128], **labels = NULL;
	long long *counts = NULL;
	json_t *j = NULL, *it, *b;
	long n = 0;
	size_t i, nb;
	int o, week = 0, rc;

	while ((o = opt_next(argc, argv, lo)) != -1) {
		switch (o) {
		case 'w': week = 1; break;
		case 'n':
			if ((n = atol(optarg)) < 1 || n > 400)
				return usage_err("expiry");
			break;
		default: return usage_err("expiry");
		}
	}
	if (optind != argc)
		return usage_err("expiry");
	snprintf(path, sizeof(path), "/v1/expiry?bucket=%s", week ? "week" :
	    "day");
	if (n > 0)
		snprintf(path + strlen(path), sizeof(path) - strlen(path),
		    "&count=%ld", n);
	if ((rc = get_json(c, path, &j)) != CTL_OK)
		return rc;
	if (c->json) {
		ctl_json_print(j);
		json_decref(j);
		return CTL_OK;
	}
	b = json_object_get(j, "buckets");
	nb = json_array_size(b);
	labels = calloc(nb + 1, sizeof(*labels));
	counts = calloc(nb + 1, sizeof(*counts));
	if (labels == NULL || counts == NULL) {
		rc = CTL_FAIL;
		goto out;
	}
	printf("certificates by expiry, per %s, from %s\n", week ? "week" :
	    "day", ctl_str(j, "from"));
	labels[0] = strdup("expired");
	counts[0] = json_integer_value(json_object_get(j, "expired"));
	json_array_foreach(b, i, it) {
		labels[i + 1] = strndup(ctl_str(it, "start"), 10);
		counts[i + 1] = json_integer_value(json_object_get(it,
		    "count"));
	}
	for (i = 0; i <= nb; i++)
		if (labels[i] == NULL) {
			rc = CTL_FAIL;
			goto out;
		}
	ctl_histogram_print((const char *const *)labels, counts, nb + 1);
out:
	for (i = 0; labels != NULL && i <= nb; i++)
		free(labels[i]);
	free(labels);
	free(counts);
	json_decref(j);
	return rc;
}

static int
audit_verify(struct ctl *c)
{
	json_t *j = NULL;
	int rc, ok;

	if ((rc = get_json(c, "/v1/audit/verify", &j)) != CTL_OK)
		return rc;
	ok = json_is_true(json_object_get(j, "ok"));
	if (c->json)
		ctl_json_print(j);
	else if (ok)
		printf("audit log intact: %lld entries\n", (long long)
		    json_integer_value(json_object_get(j, "count")));
	else
		printf("audit log BROKEN at entry %lld (of %lld checked)\n",
		    (long long)json_integer_value(json_object_get(j, "badId")),
		    (long long)json_integer_value(json_object_get(j, "count")));
	json_decref(j);
	return ok ? CTL_OK : CTL_FAIL;
}

static int
cmd_audit(struct ctl *c, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "after", required_argument, NULL, 'a' },
		{ "limit", required_argument, NULL, 'l' },
		{ "device", required_argument, NULL, 'd' },
		{ NULL, 0, NULL, 0 } };
	static const char *const heads[] = { "ID", "AT", "ACTOR", "ACTION",
	    "DEVICE", "SERIAL" };
	const char *after = NULL, *limit = NULL, *dev = NULL;
	char path[2048] = "/v1/audit", id[32];
	struct ctl_table t;
	json_t *j = NULL, *it;
	size_t i;
	int o, rc;

	while ((o = opt_next(argc, argv, lo)) != -1) {
		switch (o) {
		case 'a': after = optarg; break;
		case 'l': limit = optarg; break;
		case 'd': dev = optarg; break;
		default: return usage_err("audit");
		}
	}
	if (optind < argc) {
		if (optind + 1 == argc && strcmp(argv[optind], "verify") == 0 &&
		    after == NULL && limit == NULL && dev == NULL)
			return audit_verify(c);
		return usage_err("audit");
	}
	if (add_query(c, path, sizeof(path), "after", after) < 0 ||
	    add_query(c, path, sizeof(path), "limit", limit) < 0 ||
	    add_query(c, path, sizeof(path), "deviceId", dev) < 0)
		return usage_err("audit");
	if ((rc = get_json(c, path, &j)) != CTL_OK)
		return rc;
	if (c->json) {
		ctl_json_print(j);
	} else {
		ctl_table_init(&t, heads, 6);
		json_array_foreach(json_object_get(j, "items"), i, it) {
			const char *row[6] = { id, ctl_str(it, "at"),
			    ctl_str(it, "actor"), ctl_str(it, "action"),
			    ctl_str(it, "deviceId"), ctl_str(it, "serial") };

			snprintf(id, sizeof(id), "%lld", (long long)
			    json_integer_value(json_object_get(it, "id")));
			ctl_table_row(&t, row);
		}
		ctl_table_print(&t);
		ctl_table_free(&t);
	}
	json_decref(j);
	return CTL_OK;
}

const struct ctl_cmd ctl_cmds[] = {
	{ "status", "", "health of the daemon's components", cmd_status },
	{ "list", "[--status S] [--owner O] [--batch B] [--hub H] "
	    "[--expiring-within D] [--limit N]", "list devices", cmd_list },
	{ "show", "DEVICE", "one device and its current certificate",
	    cmd_show },
	{ "certs", "DEVICE", "a device's certificates", cmd_certs },
	{ "import", "FILE [--skip-bad] [--owner O] [--batch B] [--hub H] "
	    "[--auth-type T]", "import factory records (CSV or manifest)",
	    cmd_import },
	{ "expiry", "[--week] [--count N]", "expiry histogram", cmd_expiry },
	{ "audit", "[verify] | [--after ID] [--limit N] [--device D]",
	    "read or verify the audit log", cmd_audit },
	/* Revocation (cmds_revoke.c). */
	{ "revoke", "DEVICE [--reason R] | --batch B | --owner O | --serial S "
	    "| --lineage SERIAL | --issued-between FROM,TO | --file IDS "
	    "[--reason R] [--dry-run]",
	    "revoke one device, or every device a selector matches",
	    ctl_cmd_revoke },
	{ "revocation", "ID", "state of a bulk revocation", ctl_cmd_revocation },
	{ "transfer", "DEVICE OWNER",
	    "new owner: old certificate revoked, a new one issued",
	    ctl_cmd_transfer },
	{ "decommission", "DEVICE",
	    "revoke, delete from the hub, keep the history", ctl_cmd_decommission },
	{ "crl", "[--pem]", "the published CRL to stdout", ctl_cmd_crl },
	{ "drift", "", "differences between inventory and hub", ctl_cmd_drift },
	{ NULL, NULL, NULL, NULL },
};
