/*
 * ca_tool.c — fc-ca-tool, a test driver for the CA and the signer: issues
 * certificates and CRLs through the real signer process (or in process
 * with --inproc) from files, so that script tests can check the results
 * with OpenSSL's CLI. Not installed.
 *
 *   fc-ca-tool [options] issue DEVICE SE_SERIAL spki|csr KEYFILE OUT.der
 *   fc-ca-tool [options] soak SECONDS KEYFILE
 *       issues (SPKI in KEYFILE) every 200 ms through the signer and
 *       prints one line per attempt: "ok" or the error, and the health
 *   fc-ca-tool [options] crl NUMBER ENTRIES_FILE|-N OUT
 *       ENTRIES_FILE: lines "SERIAL REASON"; -N: N generated entries
 *   options: -c CERT -k KEY [-C CHAIN] [-p PIN_FILE] [-P PASS_FILE]
 *            [-d DAYS] [-v VALIDITY_DAYS] [-H CRL_HOURS] [--inproc]
 */
#include "fc_build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ca.h"
#include "config.h"
#include "log.h"
#include "signer.h"

struct src {
	FILE	*f;
	long	 n, i;
};

static int
next_entry(void *arg, struct ca_crl_entry *e)
{
	struct src *s = arg;
	char line[256], serial[64];
	int reason;

	if (s->f == NULL) {
		if (s->i >= s->n)
			return 0;
		snprintf(e->serial, sizeof(e->serial), "%032lx",
		    0x1000000000000000L + s->i);
		e->reason = (int)(s->i % 6);
		e->revoked_at = fc_now() - 3600;
		s->i++;
		return 1;
	}
	for (;;) {
		if (fgets(line, sizeof(line), s->f) == NULL)
			return 0;
		if (sscanf(line, "%63s %d", serial, &reason) == 2)
			break;
	}
	snprintf(e->serial, sizeof(e->serial), "%.40s", serial);
	e->reason = reason;
	e->revoked_at = fc_now() - 60;
	return 1;
}

static unsigned char *
slurp(const char *path, size_t *len)
{
	char *buf = NULL;

	if (fc_file_read(path, 1 << 20, &buf, len) != FC_OK) {
		fprintf(stderr, "cannot read %s\n", path);
		exit(2);
	}
	return (unsigned char *)buf;
}

int
main(int argc, char **argv)
{
	struct cfg cfg;
	struct ca *ca = NULL;
	struct ca_cert *cert = NULL;
	char why[256] = "", serial[FC_CERT_SERIAL_MAX];
	int inproc = 0, i, rc = 1;
	enum fc_err r;

	log_init("fc-ca-tool", getenv("FC_DEBUG") ? LOG_LVL_DEBUG :
	    LOG_LVL_INFO);
	memset(&cfg, 0, sizeof(cfg));
	cfg.validity_days = 365;
	cfg.crl_validity_hours = 48;
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(o, "--inproc") == 0) {
			inproc = 1;
			continue;
		}
		if (v == NULL)
			goto usage;
		i++;
		if (strcmp(o, "-c") == 0)
			cfg.ca_certificate = (char *)v;
		else if (strcmp(o, "-k") == 0)
			cfg.ca_key = (char *)v;
		else if (strcmp(o, "-C") == 0)
			cfg.ca_chain = (char *)v;
		else if (strcmp(o, "-p") == 0)
			cfg.ca_key_pin_file = (char *)v;
		else if (strcmp(o, "-P") == 0)
			cfg.ca_key_passphrase_file = (char *)v;
		else if (strcmp(o, "-d") == 0)
			cfg.validity_days = atoi(v);
		else if (strcmp(o, "-H") == 0)
			cfg.crl_validity_hours = atoi(v);
		else
			goto usage;
	}
	if (i >= argc)
		goto usage;
	if (inproc)
		r = ca_load(&cfg, 0, &ca, why, sizeof(why));
	else
		r = signer_start(&cfg, why, sizeof(why));
	if (r != FC_OK) {
		fprintf(stderr, "fc-ca-tool: cannot start: %s (%s)\n", why,
		    fc_strerror(r));
		return 3;
	}
	if (strcmp(argv[i], "issue") == 0 && argc - i == 6) {
		struct ca_issue_req req = { 0 };
		size_t klen;
		unsigned char *key = slurp(argv[i + 4], &klen);
		if (ca_serial_new(serial) != FC_OK)
			goto out;
		req.serial = serial;
		req.device_id = argv[i + 1];
		req.se_serial = argv[i + 2];
		if (strcmp(argv[i + 3], "csr") == 0) {
			req.csr = key;
			req.csr_len = klen;
		} else {
			req.spki = key;
			req.spki_len = klen;
		}
		r = inproc ? ca_cert_issue(ca, &req, &cert, why, sizeof(why)) :
		    signer_issue(&req, &cert, why, sizeof(why));
		free(key);
		if (r != FC_OK) {
			fprintf(stderr, "fc-ca-tool: refused: %s (%s)\n", why,
			    fc_strerror(r));
			rc = 4;
			goto out;
		}
		if (fc_file_write_atomic(argv[i + 5], cert->der, cert->der_len,
		    0644) != FC_OK)
			goto out;
		printf("serial=%s\nsha1=%s\nsha256=%s\nnot_before=%lld\n"
		    "not_after=%lld\n", cert->serial, cert->sha1, cert->sha256,
		    (long long)cert->not_before, (long long)cert->not_after);
		rc = 0;
	} else if (strcmp(argv[i], "soak") == 0 && argc - i == 3 && !inproc) {
		struct ca_issue_req req = { 0 };
		struct signer_status st;
		size_t klen;
		unsigned char *key = slurp(argv[i + 2], &klen);
		time_t end = time(NULL) + atoi(argv[i + 1]);
		req.device_id = "soak-device";
		req.se_serial = "0123456789abcdef01";
		req.spki = key;
		req.spki_len = klen;
		while (time(NULL) < end) {
			if (ca_serial_new(serial) != FC_OK)
				break;
			req.serial = serial;
			cert = NULL;
			r = signer_issue(&req, &cert, why, sizeof(why));
			signer_health(&st);
			printf("%s up=%d restarts=%u reason=%s\n", r == FC_OK ?
			    "ok" : fc_strerror(r), st.up, st.restarts,
			    st.reason);
			fflush(stdout);
			ca_cert_free(cert);
			cert = NULL;
			usleep(200000);
		}
		free(key);
		rc = 0;
	} else if (strcmp(argv[i], "crl") == 0 && argc - i == 4) {
		struct src s = { 0 };
		unsigned char *der = NULL;
		size_t len = 0;
		if (argv[i + 2][0] == '-')
			s.n = atol(argv[i + 2] + 1);
		else if ((s.f = fopen(argv[i + 2], "r")) == NULL)
			goto out;
		if (inproc) {
			struct ca_crl *crl = NULL;
			struct ca_crl_entry e;
			r = ca_crl_begin(ca, strtoull(argv[i + 1], NULL, 10),
			    cfg.crl_validity_hours, &crl);
			while (r == FC_OK && next_entry(&s, &e) == 1)
				r = ca_crl_add(crl, &e);
			if (r == FC_OK)
				r = ca_crl_finish(crl, &der, &len);
			ca_crl_free(crl);
		} else
			r = signer_crl(strtoull(argv[i + 1], NULL, 10),
			    next_entry, &s, &der, &len, why, sizeof(why));
		if (s.f != NULL)
			fclose(s.f);
		if (r != FC_OK) {
			fprintf(stderr, "fc-ca-tool: CRL refused: %s (%s)\n",
			    why, fc_strerror(r));
			rc = 4;
			goto out;
		}
		r = ca_crl_write(argv[i + 3], der, len);
		free(der);
		rc = r == FC_OK ? 0 : 1;
	} else {
		fprintf(stderr, "fc-ca-tool: bad command\n");
		rc = 2;
	}
out:
	ca_cert_free(cert);
	if (inproc)
		ca_free(ca);
	else
		signer_stop();
	return rc;
usage:
	fprintf(stderr, "usage: fc-ca-tool [options] issue|crl ...\n");
	return 2;
}
