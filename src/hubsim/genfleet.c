/*
 * genfleet.c — `fleetcert-hubsim gen-fleet`: generates N simulated devices
 * into a fixture JSON for the simulator and a factory CSV in the format of
 * device-protocol.md "Factory records". Each device gets a P-256 identity
 * key, an ATECC608B-style serial and a current certificate issued by the
 * given CA with the device profile of issue 3 (CN = deviceId, clientAuth,
 * SAN urn:fleetcert:se:<serial>). Fractions of the fleet are selfSigned,
 * offline or already expired, spread evenly over the ids.
 * A one-shot command in the main thread; keys are generated in-process.
 */
#include "fc_build.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "hubsim.h"
#include "log.h"

struct gen {
	long		 count;
	const char	*prefix;
	long		 min_days, max_days;
	double		 self_signed, offline, expired;
	const char	*hub, *owner, *batch, *thumb;
	X509		*ca;
	EVP_PKEY	*ca_key;
	char		*chain_pem;	/* intermediates for the fixture */
};

static void
gen_usage(FILE *f)
{
	fprintf(f,
"usage: fleetcert-hubsim gen-fleet --count N --ca-cert FILE --ca-key FILE\n"
"           --out FIXTURE.json [--csv FACTORY.csv] [options]\n"
"\n"
"Generates N simulated devices: P-256 identity key, SE serial, current\n"
"certificate issued by the CA (CN=deviceId, clientAuth,\n"
"SAN urn:fleetcert:se:<serial>).\n"
"\n"
"  --count N               number of devices (1-1000000)\n"
"  --ca-cert FILE          issuing CA certificate (PEM)\n"
"  --ca-key FILE           its private key (PEM)\n"
"  --chain FILE            intermediates the devices send (PEM; default: the\n"
"                          CA certificate unless it is self-signed)\n"
"  --out FILE              fixture JSON for fleetcert-hubsim --devices\n"
"  --csv FILE              factory CSV (deviceId,serial,identityPublicKey,\n"
"                          certificate,authType,owner,batch,hub)\n"
"  --prefix STR            device id prefix (default dev-)\n"
"  --expire-in-days MIN-MAX  notAfter spread (default 30-365)\n"
"  --self-signed F         fraction registered selfSigned (default 0)\n"
"  --offline F             fraction offline (default 0)\n"
"  --expired F             fraction whose certificate already expired\n"
"  --thumbprint sha1|sha256  thumbprint registered for selfSigned (sha256)\n"
"  --hub NAME, --owner NAME, --batch NAME   CSV columns (default empty)\n");
}

static int
pick(long i, double frac, long shift, long n)
{
	long j = (i + shift) % n;

	return (long)((double)(j + 1) * frac) > (long)((double)j * frac);
}

static long
rnd(long lo, long hi)
{
	uint32_t r;

	if (hi <= lo)
		return lo;
	(void)RAND_bytes((unsigned char *)&r, sizeof(r));
	return lo + (long)(r % (uint32_t)(hi - lo + 1));
}

static int
add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *val)
{
	X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, ctx, nid, val);
	int ok = e != NULL && X509_add_ext(x, e, -1) == 1;

	X509_EXTENSION_free(e);
	return ok;
}

static X509 *
issue(struct gen *g, EVP_PKEY *key, const char *id, const char *serial,
    int expired)
{
	X509 *x = X509_new();
	X509V3_CTX ctx;
	unsigned char sn[16];
	BIGNUM *bn = NULL;
	char san[64];
	time_t now = time(NULL), nb, na;
	int ok = 0;

	if (x == NULL)
		return NULL;
	(void)RAND_bytes(sn, sizeof(sn));
	sn[0] = (unsigned char)((sn[0] & 0x7f) | 0x01);
	if (expired) {
		na = now - rnd(1, 30) * 86400;
		nb = na - 365 * 86400L;
	} else {
		nb = now - 300;
		na = now + rnd(g->min_days, g->max_days) * 86400;
	}
	bn = BN_bin2bn(sn, sizeof(sn), NULL);
	snprintf(san, sizeof(san), "URI:urn:fleetcert:se:%s", serial);
	if (bn == NULL || !X509_set_version(x, 2) ||
	    !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) ||
	    !X509_set_issuer_name(x, X509_get_subject_name(g->ca)) ||
	    !X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN",
	    MBSTRING_ASC, (const unsigned char *)id, -1, -1, 0) ||
	    X509_time_adj_ex(X509_getm_notBefore(x), 0, 0, &nb) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(x), 0, 0, &na) == NULL ||
	    !X509_set_pubkey(x, key))
		goto out;
	/* Never past the issuing CA's notAfter. */
	if (ASN1_TIME_compare(X509_get0_notAfter(x), X509_get0_notAfter(g->ca)) > 0
	    && !X509_set1_notAfter(x, X509_get0_notAfter(g->ca)))
		goto out;
	X509V3_set_ctx(&ctx, g->ca, x, NULL, NULL, 0);
	if (!add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE") ||
	    !add_ext(x, &ctx, NID_key_usage, "critical,digitalSignature") ||
	    !add_ext(x, &ctx, NID_ext_key_usage, "clientAuth") ||
	    !add_ext(x, &ctx, NID_subject_key_identifier, "hash") ||
	    !add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always") ||
	    !add_ext(x, &ctx, NID_subject_alt_name, san))
		goto out;
	if (X509_sign(x, g->ca_key, EVP_sha256()) <= 0)
		goto out;
	ok = 1;
out:
	BN_free(bn);
	if (!ok) {
		log_openssl("device %s: cannot issue certificate", id);
		X509_free(x);
		x = NULL;
	}
	return x;
}

static char *
b64_der_cert(X509 *x)
{
	unsigned char *der = NULL;
	char *b = NULL;
	int n = i2d_X509(x, &der);

	if (n > 0 && fc_b64_encode(der, (size_t)n, &b) != FC_OK)
		b = NULL;
	OPENSSL_free(der);
	return b;
}

static char *
b64_spki(EVP_PKEY *k)
{
	unsigned char *der = NULL;
	char *b = NULL;
	int n = i2d_PUBKEY(k, &der);

	if (n > 0 && fc_b64_encode(der, (size_t)n, &b) != FC_OK)
		b = NULL;
	OPENSSL_free(der);
	return b;
}

/* CSV field: quoted when it holds a comma, quote or line break. */
static void
csv_field(FILE *f, const char *s, int last)
{
	if (strpbrk(s, ",\"\r\n") != NULL) {
		fputc('"', f);
		for (; *s != '\0'; s++) {
			if (*s == '"')
				fputc('"', f);
			fputc(*s, f);
		}
		fputc('"', f);
	} else {
		fputs(s, f);
	}
	fputs(last ? "\r\n" : ",", f);
}

static int
one_device(struct gen *g, long i, FILE *fj, FILE *fc)
{
	EVP_PKEY *key = NULL;
	X509 *x = NULL;
	unsigned char r[6];
	char id[FC_DEVICE_ID_MAX], serial[FC_SE_SERIAL_LEN], hex[13];
	char *kpem = NULL, *cpem = NULL, *spki = NULL, *cder = NULL, *txt = NULL;
	int ss = pick(i, g->self_signed, 0, g->count);
	int off = pick(i, g->offline, g->count / 3, g->count);
	int exp = pick(i, g->expired, (2 * g->count) / 3, g->count);
	json_t *o = NULL;
	int ok = 0;

	snprintf(id, sizeof(id), "%s%06ld", g->prefix, i + 1);
	(void)RAND_bytes(r, sizeof(r));
	fc_hex(r, sizeof(r), hex, 0);
	snprintf(serial, sizeof(serial), "0123%s01", hex);
	key = EVP_EC_gen("P-256");
	if (key == NULL) {
		log_openssl("device %s: key generation failed", id);
		goto out;
	}
	x = issue(g, key, id, serial, exp);
	if (x == NULL)
		goto out;
	kpem = pem_of_key(key);
	cpem = pem_of_cert(x);
	spki = b64_spki(key);
	cder = b64_der_cert(x);
	if (kpem == NULL || cpem == NULL || spki == NULL || cder == NULL)
		goto out;
	o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:b}",
	    "deviceId", id, "serial", serial, "identityKey", kpem,
	    "certificate", cpem, "chain", g->chain_pem ? g->chain_pem : "",
	    "authType", ss ? "selfSigned" : "certificateAuthority",
	    "online", !off);
	if (o == NULL)
		goto out;
	if (ss)
		json_object_set_new(o, "thumbprint", json_string(g->thumb));
	txt = json_dumps(o, JSON_COMPACT);
	if (txt == NULL)
		goto out;
	fprintf(fj, "%s%s\n", i == 0 ? "" : ",", txt);
	if (fc != NULL) {
		csv_field(fc, id, 0);
		csv_field(fc, serial, 0);
		csv_field(fc, spki, 0);
		csv_field(fc, cder, 0);
		csv_field(fc, ss ? "selfsigned" : "ca", 0);
		csv_field(fc, g->owner, 0);
		csv_field(fc, g->batch, 0);
		csv_field(fc, g->hub, 1);
	}
	ok = 1;
out:
	if (kpem != NULL)
		fc_secret_free(kpem, strlen(kpem));
	if (txt != NULL)
		fc_secret_free(txt, strlen(txt));
	free(cpem);
	free(spki);
	free(cder);
	json_decref(o);
	X509_free(x);
	EVP_PKEY_free(key);
	return ok;
}

static int
frac_arg(const char *s, double *out)
{
	char *end;

	*out = strtod(s, &end);
	return *end == '\0' && *out >= 0 && *out <= 1;
}

static char *
tmp_name(const char *path)
{
	char *t = NULL;

	if (asprintf(&t, "%s.tmp.%ld", path, (long)getpid()) < 0)
		return NULL;
	return t;
}

int
genfleet_main(int argc, char **argv)
{
	enum { G_COUNT = 256, G_CACERT, G_CAKEY, G_CHAIN, G_OUT, G_CSV, G_PREFIX,
	    G_EXPIRE, G_SS, G_OFF, G_EXP, G_THUMB, G_HUB, G_OWNER, G_BATCH,
	    G_HELP };
	static const struct option opts[] = {
		{ "count", required_argument, NULL, G_COUNT },
		{ "ca-cert", required_argument, NULL, G_CACERT },
		{ "ca-key", required_argument, NULL, G_CAKEY },
		{ "chain", required_argument, NULL, G_CHAIN },
		{ "out", required_argument, NULL, G_OUT },
		{ "csv", required_argument, NULL, G_CSV },
		{ "prefix", required_argument, NULL, G_PREFIX },
		{ "expire-in-days", required_argument, NULL, G_EXPIRE },
		{ "self-signed", required_argument, NULL, G_SS },
		{ "offline", required_argument, NULL, G_OFF },
		{ "expired", required_argument, NULL, G_EXP },
		{ "thumbprint", required_argument, NULL, G_THUMB },
		{ "hub", required_argument, NULL, G_HUB },
		{ "owner", required_argument, NULL, G_OWNER },
		{ "batch", required_argument, NULL, G_BATCH },
		{ "help", no_argument, NULL, G_HELP },
		{ NULL, 0, NULL, 0 }
	};
	struct gen g;
	const char *cacert = NULL, *cakey = NULL, *chain = NULL, *out = NULL;
	const char *csv = NULL;
	char *end, *tj = NULL, *tc = NULL, *text = NULL;
	FILE *fj = NULL, *fc = NULL, *f;
	int c, rc = 1;
	long i;

	log_init("fleetcert-hubsim gen-fleet", LOG_LVL_INFO);
	memset(&g, 0, sizeof(g));
	g.prefix = "dev-";
	g.min_days = 30;
	g.max_days = 365;
	g.hub = g.owner = g.batch = "";
	g.thumb = "sha256";
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case G_COUNT:
			g.count = strtol(optarg, &end, 10);
			if (*end != '\0' || g.count < 1 || g.count > 1000000)
				fatal("--count: 1-1000000");
			break;
		case G_CACERT: cacert = optarg; break;
		case G_CAKEY: cakey = optarg; break;
		case G_CHAIN: chain = optarg; break;
		case G_OUT: out = optarg; break;
		case G_CSV: csv = optarg; break;
		case G_PREFIX:
			g.prefix = optarg;
			if (strlen(optarg) > 100 || (optarg[0] != '\0' &&
			    !fc_device_id_valid(optarg)))
				fatal("--prefix: device id characters, at most 100");
			break;
		case G_EXPIRE:
			if (sscanf(optarg, "%ld-%ld", &g.min_days, &g.max_days) != 2 ||
			    g.min_days < 1 || g.max_days < g.min_days ||
			    g.max_days > 36500)
				fatal("--expire-in-days: MIN-MAX, 1 <= MIN <= MAX");
			break;
		case G_SS:
			if (!frac_arg(optarg, &g.self_signed))
				fatal("--self-signed: a fraction 0-1");
			break;
		case G_OFF:
			if (!frac_arg(optarg, &g.offline))
				fatal("--offline: a fraction 0-1");
			break;
		case G_EXP:
			if (!frac_arg(optarg, &g.expired))
				fatal("--expired: a fraction 0-1");
			break;
		case G_THUMB:
			if (strcmp(optarg, "sha1") != 0 && strcmp(optarg, "sha256") != 0)
				fatal("--thumbprint: sha1 or sha256");
			g.thumb = optarg;
			break;
		case G_HUB: g.hub = optarg; break;
		case G_OWNER: g.owner = optarg; break;
		case G_BATCH: g.batch = optarg; break;
		case G_HELP:
		case 'h':
			gen_usage(stdout);
			return 0;
		default:
			gen_usage(stderr);
			return 2;
		}
	}
	if (optind != argc || g.count == 0 || cacert == NULL || cakey == NULL ||
	    out == NULL) {
		gen_usage(stderr);
		return 2;
	}
	f = fopen(cacert, "r");
	g.ca = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
	if (f != NULL)
		fclose(f);
	f = fopen(cakey, "r");
	g.ca_key = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
	if (f != NULL)
		fclose(f);
	if (g.ca == NULL || g.ca_key == NULL ||
	    X509_check_private_key(g.ca, g.ca_key) != 1) {
		log_openssl("CA %s / key %s: cannot load, or they do not match",
		    cacert, cakey);
		goto out;
	}
	if (chain != NULL) {
		if (fc_file_read(chain, 256 * 1024, &g.chain_pem, NULL) != FC_OK) {
			log_error("chain %s: cannot read", chain);
			goto out;
		}
	} else if (X509_check_issued(g.ca, g.ca) != X509_V_OK) {
		g.chain_pem = pem_of_cert(g.ca);
	}
	tj = tmp_name(out);
	tc = csv ? tmp_name(csv) : NULL;
	if (tj == NULL || (csv != NULL && tc == NULL))
		goto out;
	fj = fopen(tj, "w");
	if (fj == NULL || (tc != NULL && (fc = fopen(tc, "w")) == NULL)) {
		log_error("cannot create %s or %s", tj, tc ? tc : "");
		goto out;
	}
	(void)fchmod(fileno(fj), 0600);
	fprintf(fj, "{\"devices\":[\n");
	if (fc != NULL)
		fputs("deviceId,serial,identityPublicKey,certificate,authType,"
		    "owner,batch,hub\r\n", fc);
	for (i = 0; i < g.count; i++)
		if (!one_device(&g, i, fj, fc))
			goto out;
	fprintf(fj, "]}\n");
	if (fflush(fj) != 0 || fsync(fileno(fj)) != 0 ||
	    (fc != NULL && (fflush(fc) != 0 || fsync(fileno(fc)) != 0))) {
		log_error("writing %s: I/O error", out);
		goto out;
	}
	fclose(fj);
	fj = NULL;
	if (fc != NULL) {
		fclose(fc);
		fc = NULL;
	}
	if (rename(tj, out) != 0 || (tc != NULL && rename(tc, csv) != 0)) {
		log_error("cannot rename into %s", out);
		goto out;
	}
	free(tj);
	free(tc);
	tj = tc = NULL;
	log_info("%ld devices written to %s%s%s", g.count, out,
	    csv ? " and " : "", csv ? csv : "");
	rc = 0;
out:
	if (fj != NULL)
		fclose(fj);
	if (fc != NULL)
		fclose(fc);
	if (tj != NULL)
		(void)unlink(tj);
	if (tc != NULL)
		(void)unlink(tc);
	free(tj);
	free(tc);
	free(text);
	free(g.chain_pem);
	X509_free(g.ca);
	EVP_PKEY_free(g.ca_key);
	return rc;
}
