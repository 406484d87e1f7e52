/*
 * cmds_revoke.c — fleetcertctl's revocation subcommands (revoke, transfer,
 * decommission, revocation, crl, drift), one small function each, listed
 * in ctl_cmds (cmds.c). Same style as cmds.c: own options, requests
 * through http.c, a table or the API's JSON with --json.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "fc.h"

#define IDS_FILE_MAX	(64u << 20)

static int
usage(const char *cmd)
{
	const struct ctl_cmd *c;

	for (c = ctl_cmds; c->name != NULL; c++)
		if (strcmp(c->name, cmd) == 0)
			fprintf(stderr, "usage: fleetcertctl %s %s\n", c->name,
			    c->args);
	return CTL_USAGE;
}

/* method path [JSON body]: prints the answer; CTL_* code. ok2xx lists
 * the accepted statuses besides 200. */
static int
call(struct ctl *c, const char *method, const char *path, json_t *body,
    void (*show)(const json_t *j))
{
	struct ctl_resp r;
	char *text = NULL;
	int rc;

	if (body != NULL && (text = json_dumps(body, JSON_COMPACT)) == NULL)
		return CTL_FAIL;
	rc = ctl_request(c, method, path, text ? "application/json" : NULL,
	    text, text ? strlen(text) : 0, 0, &r);
	free(text);
	if (rc < 0)
		return CTL_FAIL;
	if ((r.status != 200 && r.status != 202) || r.json == NULL) {
		rc = ctl_fail(c, &r);
		ctl_resp_clear(&r);
		return rc;
	}
	if (c->json)
		ctl_json_print(r.json);
	else
		show(r.json);
	/* 202: accepted, the hub not yet: exit 1 so scripts notice. */
	rc = r.status == 200 ? CTL_OK : CTL_FAIL;
	ctl_resp_clear(&r);
	return rc;
}

static char *
dev_path(struct ctl *c, const char *id, const char *suffix)
{
	char *e = ctl_escape(c, id), *p;
	size_t n;

	if (e == NULL)
		return NULL;
	n = strlen(e) + strlen(suffix) + 16;
	if ((p = malloc(n)) != NULL)
		snprintf(p, n, "/v1/devices/%s%s", e, suffix);
	free(e);
	return p;
}

static void
show_revoke(const json_t *j)
{
	printf("%s: %s, %lld certificate(s) revoked; hub: %s%s%s\n",
	    ctl_str(j, "deviceId"), ctl_str(j, "status"),
	    (long long)json_integer_value(json_object_get(j,
	    "revokedCertificates")), ctl_str(j, "propagation"),
	    json_object_get(j, "pendingReason") ? " — " : "",
	    json_object_get(j, "pendingReason") ? ctl_str(j, "pendingReason") :
	    "");
}

static void
show_request(const json_t *j)
{
	printf("revocation %lld: %s%lld device(s) matched, %lld propagated, "
	    "state %s, estimated %.0f s\n",
	    (long long)json_integer_value(json_object_get(j, "id")),
	    json_is_true(json_object_get(j, "dryRun")) ? "dry run: " : "",
	    (long long)json_integer_value(json_object_get(j, "matched")),
	    (long long)json_integer_value(json_object_get(j, "propagated")),
	    ctl_str(j, "state"),
	    json_number_value(json_object_get(j, "estimatedSeconds")));
}

/* Reads device ids from a file ('#' comments, blank lines). */
static json_t *
ids_file(const char *path)
{
	char *buf = NULL, *line, *save = NULL, *h;
	json_t *a;

	if (fc_file_read(path, IDS_FILE_MAX, &buf, NULL) != FC_OK) {
		fprintf(stderr, "fleetcertctl: %s: cannot read\n", path);
		return NULL;
	}
	a = json_array();
	for (line = strtok_r(buf, "\n", &save); a != NULL && line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		if ((h = strchr(line, '#')) != NULL)
			*h = '\0';
		line += strspn(line, " \t");
		line[strcspn(line, " \t\r")] = '\0';
		if (*line != '\0')
			json_array_append_new(a, json_string(line));
	}
	free(buf);
	return a;
}

/*
 * revoke DEVICE [--reason R]  |  revoke --batch B | --owner O | --serial S
 * | --lineage S | --issued-between FROM,TO | --file IDS ... [--dry-run]
 */
int
ctl_cmd_revoke(struct ctl *c, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "reason", required_argument, NULL, 'r' },
		{ "batch", required_argument, NULL, 'b' },
		{ "owner", required_argument, NULL, 'o' },
		{ "serial", required_argument, NULL, 's' },
		{ "lineage", required_argument, NULL, 'l' },
		{ "issued-between", required_argument, NULL, 'i' },
		{ "file", required_argument, NULL, 'f' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 } };
	json_t *sel = json_object(), *body = NULL, *a;
	const char *reason = NULL;
	char *path = NULL, *comma;
	int o, dry = 0, rc = CTL_USAGE;

	while ((o = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (o) {
		case 'r': reason = optarg; break;
		case 'b': json_object_set_new(sel, "batch", json_string(optarg));
			break;
		case 'o': json_object_set_new(sel, "owner", json_string(optarg));
			break;
		case 'l': json_object_set_new(sel, "lineage",
			    json_string(optarg));
			break;
		case 's':
			if ((a = json_object_get(sel, "serials")) == NULL) {
				a = json_array();
				json_object_set_new(sel, "serials", a);
			}
			json_array_append_new(a, json_string(optarg));
			break;
		case 'i':
			if ((comma = strchr(optarg, ',')) == NULL)
				goto out;
			*comma = '\0';
			json_object_set_new(sel, "issuedBetween", json_pack(
			    "[s, s]", optarg, comma + 1));
			break;
		case 'f':
			if ((a = ids_file(optarg)) == NULL) {
				rc = CTL_FAIL;
				goto out;
			}
			json_object_set_new(sel, "deviceIds", a);
			break;
		case 'n': dry = 1; break;
		default: goto out;
		}
	}
	if (optind + 1 == argc && json_object_size(sel) == 0 && !dry) {
		/* One device. */
		path = dev_path(c, argv[optind], "/revoke");
		body = reason ? json_pack("{s:s}", "reason", reason) :
		    json_object();
		rc = path ? call(c, "POST", path, body, show_revoke) : CTL_FAIL;
		goto out;
	}
	if (optind != argc || json_object_size(sel) == 0)
		goto out;
	body = json_pack("{s:O, s:b}", "selector", sel, "dryRun", dry);
	if (reason != NULL)
		json_object_set_new(body, "reason", json_string(reason));
	rc = call(c, "POST", "/v1/revocations", body, show_request);
	if (rc == CTL_FAIL && !dry)
		rc = CTL_OK;	/* 202 is the normal answer of a bulk run */
out:
	json_decref(sel);
	json_decref(body);
	free(path);
	return rc == CTL_USAGE ? usage("revoke") : rc;
}

/* revocation ID */
int
ctl_cmd_revocation(struct ctl *c, int argc, char **argv)
{
	char path[64];
	char *end;
	long long id;

	if (argc != 2)
		return usage("revocation");
	id = strtoll(argv[1], &end, 10);
	if (*end != '\0' || id <= 0)
		return usage("revocation");
	snprintf(path, sizeof(path), "/v1/revocations/%lld", id);
	return call(c, "GET", path, NULL, show_request);
}

static void
show_transfer(const json_t *j)
{
	printf("%s: owner %s; certificate %s revoked, %s issued (delivery "
	    "queued)\n", ctl_str(j, "deviceId"), ctl_str(j, "owner"),
	    ctl_str(j, "revokedSerial"), ctl_str(j, "newSerial"));
}

/* transfer DEVICE OWNER */
int
ctl_cmd_transfer(struct ctl *c, int argc, char **argv)
{
	json_t *b;
	char *path;
	int rc;

	if (argc != 3)
		return usage("transfer");
	path = dev_path(c, argv[1], "/transfer");
	b = json_pack("{s:s}", "owner", argv[2]);
	rc = path && b ? call(c, "POST", path, b, show_transfer) : CTL_FAIL;
	json_decref(b);
	free(path);
	return rc;
}

/* decommission DEVICE */
int
ctl_cmd_decommission(struct ctl *c, int argc, char **argv)
{
	char *path;
	int rc;

	if (argc != 2)
		return usage("decommission");
	path = dev_path(c, argv[1], "");
	rc = path ? call(c, "DELETE", path, NULL, show_revoke) : CTL_FAIL;
	free(path);
	return rc;
}

/* crl [--pem]: the CRL to stdout (DER, or PEM). */
int
ctl_cmd_crl(struct ctl *c, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "pem", no_argument, NULL, 'p' }, { NULL, 0, NULL, 0 } };
	struct ctl_resp r;
	int o, pem = 0, rc;

	while ((o = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (o != 'p')
			return usage("crl");
		pem = 1;
	}
	if (optind != argc)
		return usage("crl");
	if (ctl_request(c, "GET", pem ? "/v1/crl?format=pem" : "/v1/crl",
	    NULL, NULL, 0, 0, &r) < 0)
		return CTL_FAIL;
	if (r.status != 200) {
		rc = ctl_fail(c, &r);
		ctl_resp_clear(&r);
		return rc;
	}
	rc = fwrite(r.body, 1, r.len, stdout) == r.len ? CTL_OK : CTL_FAIL;
	ctl_resp_clear(&r);
	return rc;
}

static void
show_drift(const json_t *j)
{
	static const char *const heads[] = { "KIND", "DEVICE", "SEEN",
	    "DETAIL" };
	struct ctl_table t;
	json_t *it;
	size_t i;

	ctl_table_init(&t, heads, 4);
	json_array_foreach(json_object_get(j, "items"), i, it) {
		char *d = json_dumps(json_object_get(it, "detail"),
		    JSON_COMPACT | JSON_ENCODE_ANY);
		const char *row[4] = { ctl_str(it, "kind"),
		    ctl_str(it, "deviceId"), ctl_str(it, "seenAt"), d };
		ctl_table_row(&t, row);
		free(d);
	}
	ctl_table_print(&t);
	ctl_table_free(&t);
}

/* drift */
int
ctl_cmd_drift(struct ctl *c, int argc, char **argv)
{
	(void)argv;
	if (argc != 1)
		return usage("drift");
	return call(c, "GET", "/v1/drift", NULL, show_drift);
}
