/*
 * api-seed.c — fills a database with COUNT synthetic devices through the
 * inventory API (tests and the API benchmark). Not installed.
 *	api-seed DB COUNT [PREFIX]
 * Device i is PREFIX-%07d (PREFIX default "dev"), SE serial 0123 + 14 hex
 * digits of i (+ a prefix hash, so several prefixes can share a
 * database), owner "owner-(i % 10)", batch "batch-(i % 100)", one active
 * certificate expiring in (i % 400) days. Inserts in transactions of 10,000.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "inventory.h"
#include "log.h"

int
main(int argc, char **argv)
{
	struct db *db = NULL;
	struct inv_device d;
	struct inv_cert c;
	unsigned char der[64], key[91];
	const char *prefix = argc > 3 ? argv[3] : "dev";
	unsigned long h = 5381;
	long n, i;
	const char *p;
	time_t now;

	if (argc < 3 || (n = atol(argv[2])) < 0)
		return 2;
	log_init("api-seed", LOG_LVL_WARN);
	for (p = prefix; *p != '\0'; p++)
		h = h * 33 + (unsigned char)*p;
	h &= 0xffff;
	if (db_open(argv[1], DB_OPEN_MIGRATE, &db) != FC_OK)
		return 1;
	now = fc_now();
	memset(der, 0x30, sizeof(der));
	memset(key, 0x04, sizeof(key));
	for (i = 0; i < n; i++) {
		if (i % 10000 == 0 && db_begin(db) != FC_OK)
			return 1;
		memset(&d, 0, sizeof(d));
		snprintf(d.device_id, sizeof(d.device_id), "%s-%07ld", prefix,
		    i);
		snprintf(d.se_serial, sizeof(d.se_serial), "0123%04lx%010x",
		    h, (unsigned)i);
		snprintf(d.owner, sizeof(d.owner), "owner-%ld", i % 10);
		snprintf(d.batch, sizeof(d.batch), "batch-%ld", i % 100);
		d.identity_key = key;
		d.identity_key_len = sizeof(key);
		if (inv_device_insert(db, &d, "seed") != FC_OK)
			return 1;
		memset(&c, 0, sizeof(c));
		snprintf(c.serial, sizeof(c.serial), "%04lx%012lx", h,
		    (unsigned long)i + 1);
		snprintf(c.device_id, sizeof(c.device_id), "%s", d.device_id);
		c.der = der;
		c.der_len = sizeof(der);
		c.not_before = now - 86400;
		c.not_after = now + (i % 400) * 86400 + 3600;
		memset(c.sha1, 'A', FC_SHA1_HEX - 1);
		memset(c.sha256, 'a', FC_SHA256_HEX - 1);
		c.status = INV_CERT_ACTIVE;
		c.issued_by = INV_ISSUED_IMPORT;
		if (inv_cert_insert(db, &c, "seed") != FC_OK)
			return 1;
		if ((i % 10000 == 9999 || i == n - 1) && db_commit(db) != FC_OK)
			return 1;
	}
	db_close(db);
	return 0;
}
