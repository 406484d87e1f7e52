/*
 * enrol-testd.c — runs the re-enrolment listener exactly as fleetcertd
 * wires it (signer process, start-up recovery, enrol_start) for the script
 * tests and the benchmark, plus two inventory helpers. Not installed.
 *
 *   enrol-testd serve CONF PORTFILE     serve until SIGTERM; prints the
 *                                       endpoint's counters on exit
 *   enrol-testd add-device CONF ID SERIAL PUBKEY.pem [N [AUTH]]
 *                                       N devices ID-0..ID-(N-1) with
 *                                       serial+i when N > 1; AUTH ca or
 *                                       selfsigned
 *   enrol-testd set-status CONF ID STATUS
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "config.h"
#include "db.h"
#include "enrol.h"
#include "enrol_http.h"
#include "inventory.h"
#include "log.h"
#include "testd-signals.h"
#include "signer.h"

static int
serve(struct cfg *cfg, const char *port_file)
{
	struct enrol_listener *l = NULL;
	struct enrol_stats st;
	struct db *db = NULL;
	char why[256], buf[32];
	int rc = 1;

	if (signer_start(cfg, why, sizeof(why)) != FC_OK) {
		fprintf(stderr, "signer: %s\n", why);
		return 1;
	}
	/* After the signer's fork, before the listener's threads. */
	testd_signals_block();
	if (db_open(cfg->db_path, DB_OPEN_MIGRATE, &db) != FC_OK)
		goto out;
	if (enrol_start(cfg, db, &l) != FC_OK || l == NULL)
		goto out;
	snprintf(buf, sizeof(buf), "%d\n", enrol_listener_port(l));
	if (fc_file_write_atomic(port_file, buf, strlen(buf), 0644) != FC_OK)
		goto out;
	testd_signals_wait();
	enrol_stats_get(enrol_listener_enrol(l), &st);
	printf("challenges=%llu reenrolled=%llu bad=%llu rejected=%llu "
	    "forbidden=%llu limited=%llu failed=%llu anomalies=%llu\n",
	    (unsigned long long)st.challenges,
	    (unsigned long long)st.reenrolled,
	    (unsigned long long)st.bad_requests,
	    (unsigned long long)st.rejected, (unsigned long long)st.forbidden,
	    (unsigned long long)st.limited, (unsigned long long)st.failed,
	    (unsigned long long)st.anomalies);
	rc = 0;
out:
	enrol_stop(l);
	db_close(db);
	signer_stop();
	return rc;
}

static int
add_devices(struct db *db, const char *id, const char *serial,
    const char *pub, int n, const char *auth)
{
	struct inv_device d;
	unsigned long long base;
	unsigned char *spki = NULL;
	EVP_PKEY *k;
	FILE *f;
	int i, len;

	f = fopen(pub, "r");
	k = f ? PEM_read_PUBKEY(f, NULL, NULL, NULL) : NULL;
	if (f)
		fclose(f);
	if (k == NULL || (len = i2d_PUBKEY(k, &spki)) <= 0) {
		fprintf(stderr, "%s: not a public key\n", pub);
		return 1;
	}
	EVP_PKEY_free(k);
	base = strtoull(serial + 4, NULL, 16);
	if (db_begin(db) != FC_OK)
		return 1;
	for (i = 0; i < n; i++) {
		memset(&d, 0, sizeof(d));
		if (n > 1)
			snprintf(d.device_id, sizeof(d.device_id), "%s-%d", id, i);
		else
			snprintf(d.device_id, sizeof(d.device_id), "%s", id);
		snprintf(d.se_serial, sizeof(d.se_serial), "0123%014llx",
		    base + (unsigned long long)i);
		d.auth_type = strcmp(auth, "selfsigned") == 0 ?
		    INV_AUTH_SELFSIGNED : INV_AUTH_CA;
		d.identity_key = spki;
		d.identity_key_len = (size_t)len;
		if (inv_device_insert(db, &d, "test") != FC_OK) {
			db_rollback(db);
			return 1;
		}
	}
	OPENSSL_free(spki);
	return db_commit(db) == FC_OK ? 0 : 1;
}

int
main(int argc, char **argv)
{
	struct cfg *cfg = NULL;
	struct db *db = NULL;
	char err[512];
	int rc = 2;

	log_init("enrol-testd", LOG_LVL_INFO);
	if (argc < 3) {
		fprintf(stderr, "usage: see the comment in tests/enrol-testd.c\n");
		return 2;
	}
	if (cfg_load(argv[2], &cfg, err, sizeof(err)) != FC_OK) {
		fprintf(stderr, "%s\n", err);
		return 2;
	}
	log_set_level((enum log_level)cfg->log_level);
	if (strcmp(argv[1], "serve") == 0 && argc == 4) {
		rc = serve(cfg, argv[3]);
	} else if (strcmp(argv[1], "add-device") == 0 &&
	    argc >= 6 && argc <= 8) {
		rc = db_open(cfg->db_path, DB_OPEN_MIGRATE, &db) != FC_OK ? 1 :
		    add_devices(db, argv[3], argv[4], argv[5],
		    argc >= 7 ? atoi(argv[6]) : 1, argc == 8 ? argv[7] : "ca");
	} else if (strcmp(argv[1], "set-status") == 0 && argc == 5) {
		int s = inv_dev_status_parse(argv[4]);
		rc = s < 0 || db_open(cfg->db_path, DB_OPEN_MIGRATE, &db) !=
		    FC_OK || inv_device_set_status(db, argv[3],
		    (enum inv_dev_status)s, "test", "test") != FC_OK;
	}
	db_close(db);
	cfg_free(cfg);
	return rc;
}
