/*
 * bench_ca.c — issuance and CRL throughput of the CA, through the real
 * signer process (as the daemon uses it) and in process for reference.
 * Run by bench/ca.sh, pinned to one core, next to `openssl speed`.
 *
 *   bench_ca CA_DIR [SECONDS]      CA_DIR made by tests/mkca.sh
 * Prints key=value lines.
 */
#include "fc_build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "ca.h"
#include "config.h"
#include "log.h"
#include "signer.h"

#define NCSR	64

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct keys {
	unsigned char	*spki;
	size_t		 spki_len;
	unsigned char	*csr[NCSR];
	size_t		 csr_len[NCSR];
};

static void
keys_make(struct keys *k)
{
	int i;

	for (i = 0; i < NCSR; i++) {
		EVP_PKEY *p = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
		X509_REQ *req = X509_REQ_new();
		unsigned char *der = NULL;
		int n;

		X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN",
		    MBSTRING_ASC, (const unsigned char *)"bench", -1, -1, 0);
		X509_REQ_set_pubkey(req, p);
		X509_REQ_sign(req, p, EVP_sha256());
		n = i2d_X509_REQ(req, &der);
		k->csr[i] = der;
		k->csr_len[i] = (size_t)n;
		if (i == 0) {
			der = NULL;
			n = i2d_PUBKEY(p, &der);
			k->spki = der;
			k->spki_len = (size_t)n;
		}
		X509_REQ_free(req);
		EVP_PKEY_free(p);
	}
}

/* Issues for `seconds`; returns certificates per second. */
static double
run_issue(struct ca *ca, const struct keys *k, int csr, double seconds)
{
	struct ca_issue_req r;
	struct ca_cert *c;
	char serial[FC_CERT_SERIAL_MAX], why[256];
	double t0 = now_s(), t;
	long n = 0;
	enum fc_err e;

	do {
		int b;
		for (b = 0; b < 100; b++, n++) {
			memset(&r, 0, sizeof(r));
			ca_serial_new(serial);
			r.serial = serial;
			r.device_id = "bench-device-000001";
			r.se_serial = "0123456789abcdef01";
			if (csr) {
				r.csr = k->csr[n % NCSR];
				r.csr_len = k->csr_len[n % NCSR];
			} else {
				r.spki = k->spki;
				r.spki_len = k->spki_len;
			}
			c = NULL;
			e = ca ? ca_cert_issue(ca, &r, &c, why, sizeof(why)) :
			    signer_issue(&r, &c, why, sizeof(why));
			if (e != FC_OK) {
				fprintf(stderr, "bench_ca: issue: %s\n", why);
				exit(1);
			}
			ca_cert_free(c);
		}
		t = now_s() - t0;
	} while (t < seconds);
	return (double)n / t;
}

struct gen {
	long	n, i;
};

static int
gen_next(void *arg, struct ca_crl_entry *e)
{
	struct gen *g = arg;

	if (g->i >= g->n)
		return 0;
	snprintf(e->serial, sizeof(e->serial), "%032lx",
	    0x7000000000000000L + g->i * 7919);
	e->reason = (int)(g->i % 2) ? CA_REASON_KEY_COMPROMISE :
	    CA_REASON_SUPERSEDED;
	e->revoked_at = fc_now() - g->i;
	g->i++;
	return 1;
}

int
main(int argc, char **argv)
{
	struct cfg cfg;
	struct keys k;
	struct ca *ca = NULL;
	struct gen g = { 100000, 0 };
	struct ca_crl *crl = NULL;
	struct ca_crl_entry e;
	char cert[1024], key[1024], why[256];
	unsigned char *der = NULL;
	size_t len = 0;
	double secs = argc > 2 ? atof(argv[2]) : 3.0, t0, t_signer, t_inproc;

	if (argc < 2) {
		fprintf(stderr, "usage: bench_ca CA_DIR [SECONDS]\n");
		return 2;
	}
	log_init("bench_ca", LOG_LVL_WARN);
	memset(&cfg, 0, sizeof(cfg));
	snprintf(cert, sizeof(cert), "%s/intermediate.pem", argv[1]);
	snprintf(key, sizeof(key), "%s/intermediate.key", argv[1]);
	cfg.ca_certificate = cert;
	cfg.ca_key = key;
	cfg.validity_days = 365;
	cfg.crl_validity_hours = 48;
	keys_make(&k);

	if (ca_load(&cfg, 0, &ca, why, sizeof(why)) != FC_OK ||
	    signer_start(&cfg, why, sizeof(why)) != FC_OK) {
		fprintf(stderr, "bench_ca: %s\n", why);
		return 1;
	}
	printf("signer_same_key_per_s=%.0f\n", run_issue(NULL, &k, 0, secs));
	printf("signer_csr_per_s=%.0f\n", run_issue(NULL, &k, 1, secs));
	printf("inproc_same_key_per_s=%.0f\n", run_issue(ca, &k, 0, secs));
	printf("inproc_csr_per_s=%.0f\n", run_issue(ca, &k, 1, secs));

	t0 = now_s();
	if (signer_crl(1, gen_next, &g, &der, &len, why, sizeof(why)) != FC_OK) {
		fprintf(stderr, "bench_ca: crl: %s\n", why);
		return 1;
	}
	t_signer = now_s() - t0;
	free(der);
	g.i = 0;
	t0 = now_s();
	ca_crl_begin(ca, 2, 48, &crl);
	while (gen_next(&g, &e) == 1)
		ca_crl_add(crl, &e);
	ca_crl_finish(crl, &der, &len);
	t_inproc = now_s() - t0;
	ca_crl_free(crl);
	printf("signer_crl_100k_seconds=%.3f\n", t_signer);
	printf("inproc_crl_100k_seconds=%.3f\n", t_inproc);
	printf("crl_100k_bytes=%zu\n", len);
	free(der);
	signer_stop();
	ca_free(ca);
	return 0;
}
