/*
 * api-testd.c — a test-only server for the operator API: loads the config,
 * opens (and migrates) the database, calls api_start, writes the bound port
 * to --port-file, and serves until SIGTERM/SIGINT. Not installed; used by
 * tests/api.sh, tests/fleetcertctl.sh and bench/api.sh until fleetcertd
 * wires api_start itself.
 *	api-testd -c FILE [--port-file F] [--health NAME=REASON]...
 * --health marks component NAME unhealthy with REASON (tests of 503).
 * --routes prints every endpoint ("METHOD PATTERN ROLE") and exits.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "config.h"
#include "db.h"
#include "health.h"
#include "log.h"
#include "testd-signals.h"
#include "revoke_service.h"

static void
print_route(void *arg, const char *method, const char *pattern,
    enum api_role role)
{
	printf("%s %s %s\n", method, pattern, role == API_ROLE_ADMIN ?
	    "admin" : "read");
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "port-file", required_argument, NULL, 'P' },
		{ "health", required_argument, NULL, 'H' },
		{ "routes", no_argument, NULL, 'R' },
		{ NULL, 0, NULL, 0 }
	};
	struct cfg *cfg = NULL;
	struct db *db = NULL;
	struct api *api = NULL;
	const char *conf = NULL, *port_file = NULL;
	char err[1024], buf[32], *eq;
	int c, rc = 1;

	log_init("api-testd", LOG_LVL_INFO);
	/* The endpoints fleetcertd adds to the API (main.c). */
	if (revoke_api_register() != FC_OK)
		return 1;
	while ((c = getopt_long(argc, argv, "c:", lo, NULL)) != -1) {
		switch (c) {
		case 'c':
			conf = optarg;
			break;
		case 'P':
			port_file = optarg;
			break;
		case 'R':
			api_routes_foreach(print_route, NULL);
			return 0;
		case 'H':
			if ((eq = strchr(optarg, '=')) == NULL)
				return 2;
			*eq = '\0';
			health_set(optarg, 0, eq + 1);
			break;
		default:
			return 2;
		}
	}
	if (conf == NULL)
		return 2;
	testd_signals_block();
	if (cfg_load(conf, &cfg, err, sizeof(err)) != FC_OK) {
		log_error("%s", err);
		return 1;
	}
	log_set_level((enum log_level)cfg->log_level);
	if (db_open(cfg->db_path, DB_OPEN_MIGRATE, &db) != FC_OK)
		goto out;
	if (api_start(cfg, &api) != FC_OK || api == NULL)
		goto out;
	if (port_file != NULL) {
		snprintf(buf, sizeof(buf), "%d\n", api_port(api));
		if (fc_file_write_atomic(port_file, buf, strlen(buf), 0644) !=
		    FC_OK)
			goto out;
	}
	testd_signals_wait();
	rc = 0;
out:
	api_stop(api);
	db_close(db);
	cfg_free(cfg);
	return rc;
}
