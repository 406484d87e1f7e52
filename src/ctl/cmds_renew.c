/*
 * cmds_renew.c — fleetcertctl's renew subcommand: asks the daemon to
 * renew one device now (POST /v1/devices/{id}/renew), listed in ctl_cmds
 * (cmds.c). Same style as cmds_revoke.c: own options, the request through
 * http.c, a line of text or the API's JSON with --json.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

/* renew DEVICE [--rekey] */
int
ctl_cmd_renew(struct ctl *c, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "rekey", no_argument, NULL, 'k' },
		{ NULL, 0, NULL, 0 } };
	struct ctl_resp r;
	char *e = NULL, *path = NULL, *text = NULL;
	json_t *body = NULL;
	size_t n;
	int o, rekey = 0, rc = CTL_FAIL;

	memset(&r, 0, sizeof(r));
	while ((o = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (o != 'k') {
			fprintf(stderr, "usage: fleetcertctl renew DEVICE "
			    "[--rekey]\n");
			return CTL_USAGE;
		}
		rekey = 1;
	}
	if (optind + 1 != argc) {
		fprintf(stderr, "usage: fleetcertctl renew DEVICE [--rekey]\n");
		return CTL_USAGE;
	}
	if ((e = ctl_escape(c, argv[optind])) == NULL)
		goto out;
	n = strlen(e) + 32;
	if ((path = malloc(n)) == NULL)
		goto out;
	snprintf(path, n, "/v1/devices/%s/renew", e);
	body = json_pack("{s:b}", "rekey", rekey);
	if (body == NULL || (text = json_dumps(body, JSON_COMPACT)) == NULL)
		goto out;
	if (ctl_request(c, "POST", path, "application/json", text,
	    strlen(text), 0, &r) < 0)
		goto out;
	if (r.status != 202 || r.json == NULL) {
		rc = ctl_fail(c, &r);
		goto out;
	}
	if (c->json)
		ctl_json_print(r.json);
	else
		printf("%s: renewal of %s scheduled at %s%s\n",
		    ctl_str(r.json, "deviceId"), ctl_str(json_object_get(r.json,
		    "certificate"), "serial"), ctl_str(r.json, "renewAt"),
		    json_is_true(json_object_get(r.json, "rekey")) ?
		    " with a new key" : "");
	rc = CTL_OK;
out:
	ctl_resp_clear(&r);
	json_decref(body);
	free(text);
	free(path);
	free(e);
	return rc;
}
