/*
 * gen-factory-csv — writes N generated devices as a factory-record CSV (or,
 * with --manifest, as a signed Trust Platform manifest plus its signer
 * certificate), for benchmarks and tests. Keys are fresh P-256 keys; with
 * --keys-dir each device's identity private key is written as PKCS#8 PEM
 * so tests can act as the device. Test tool; not installed.
 *
 *   gen-factory-csv -n 100000 [--certs] [--no-key] [--crlf] [--prefix P]
 *       [--start I] [--owner O] [--batch B] [--hub H] [--keys-dir DIR]
 *       [-o FILE]
 *   gen-factory-csv -n 10000 --manifest FILE --signer-out PEM
 */
#include "fc_build.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

#include "factory_gen.h"

static void
usage(void)
{
	fprintf(stderr, "usage: gen-factory-csv -n N [--certs] [--no-key] "
	    "[--crlf] [--prefix P] [--start I] [--owner O] [--batch B] "
	    "[--hub H] [--keys-dir DIR] [-o FILE]\n"
	    "       gen-factory-csv -n N --manifest FILE --signer-out PEM\n");
	exit(2);
}

/* Writes the device's identity private key as PKCS#8 PEM. */
static int
write_key(const char *dir, const struct fgen_dev *d)
{
	OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *pc = NULL;
	EVP_PKEY *pk = NULL;
	BIGNUM *priv = BN_bin2bn(d->priv, 32, NULL);
	char path[4096];
	FILE *f = NULL;
	int ok = 0;

	if (b == NULL || priv == NULL ||
	    !OSSL_PARAM_BLD_push_utf8_string(b, OSSL_PKEY_PARAM_GROUP_NAME,
	    "prime256v1", 0) ||
	    !OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_PRIV_KEY, priv) ||
	    !OSSL_PARAM_BLD_push_octet_string(b, OSSL_PKEY_PARAM_PUB_KEY,
	    d->point, 65) ||
	    (params = OSSL_PARAM_BLD_to_param(b)) == NULL)
		goto out;
	pc = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	if (pc == NULL || EVP_PKEY_fromdata_init(pc) != 1 ||
	    EVP_PKEY_fromdata(pc, &pk, EVP_PKEY_KEYPAIR, params) != 1)
		goto out;
	snprintf(path, sizeof(path), "%s/%s.key", dir, d->id);
	f = fopen(path, "w");
	ok = f != NULL && PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL,
	    NULL);
out:
	if (f != NULL && fclose(f) != 0)
		ok = 0;
	EVP_PKEY_free(pk);
	EVP_PKEY_CTX_free(pc);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(b);
	BN_clear_free(priv);
	return ok;
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "certs", no_argument, NULL, 'c' },
		{ "no-key", no_argument, NULL, 'K' },
		{ "crlf", no_argument, NULL, 'r' },
		{ "prefix", required_argument, NULL, 'p' },
		{ "start", required_argument, NULL, 's' },
		{ "owner", required_argument, NULL, 'O' },
		{ "batch", required_argument, NULL, 'B' },
		{ "hub", required_argument, NULL, 'H' },
		{ "keys-dir", required_argument, NULL, 'k' },
		{ "manifest", required_argument, NULL, 'm' },
		{ "signer-out", required_argument, NULL, 'S' },
		{ NULL, 0, NULL, 0 },
	};
	const char *prefix = "dev-", *owner = "", *batch = "", *hub = "";
	const char *keys_dir = NULL, *manifest = NULL, *signer_out = NULL;
	const char *outpath = NULL, *eol = "\n";
	long n = -1, start = 0, i;
	int certs = 0, nokey = 0, ch;
	struct fgen *g;
	FILE *out = stdout;

	while ((ch = getopt_long(argc, argv, "n:o:", lo, NULL)) != -1) {
		switch (ch) {
		case 'n': n = strtol(optarg, NULL, 10); break;
		case 'o': outpath = optarg; break;
		case 'c': certs = 1; break;
		case 'K': nokey = 1; break;
		case 'r': eol = "\r\n"; break;
		case 'p': prefix = optarg; break;
		case 's': start = strtol(optarg, NULL, 10); break;
		case 'O': owner = optarg; break;
		case 'B': batch = optarg; break;
		case 'H': hub = optarg; break;
		case 'k': keys_dir = optarg; break;
		case 'm': manifest = optarg; break;
		case 'S': signer_out = optarg; break;
		default: usage();
		}
	}
	if (n < 0 || (nokey && !certs) || (manifest && !signer_out))
		usage();
	if (manifest != NULL)
		outpath = manifest;
	if (outpath != NULL && (out = fopen(outpath, "w")) == NULL) {
		perror(outpath);
		return 1;
	}
	g = fgen_new();
	if (g == NULL) {
		fprintf(stderr, "gen-factory-csv: OpenSSL setup failed\n");
		return 1;
	}
	if (manifest != NULL) {
		if (!fgen_write_pem(fgen_signer_cert(g), signer_out)) {
			perror(signer_out);
			return 1;
		}
		fputs("[", out);
	} else
		fprintf(out, "deviceId,serial,identityPublicKey,certificate,"
		    "authType,owner,batch,hub%s", eol);
	for (i = start; i < start + n; i++) {
		struct fgen_dev d;
		unsigned char *der = NULL;
		size_t derlen = 0;
		char *kb = NULL, *cb = NULL;

		if (!fgen_device(g, prefix, i, &d) ||
		    ((certs || manifest) && !fgen_cert(g, d.id, d.point, -1,
		    365, &der, &derlen))) {
			fprintf(stderr, "gen-factory-csv: device %ld failed\n", i);
			return 1;
		}
		if (keys_dir != NULL && !write_key(keys_dir, &d)) {
			fprintf(stderr, "gen-factory-csv: %s: cannot write key\n",
			    keys_dir);
			return 1;
		}
		if (manifest != NULL) {
			char *pl = fgen_payload(g, d.serial, d.point, der, derlen);
			char *e = pl ? fgen_jws(fgen_signer_key(g),
			    fgen_signer_cert(g), pl, d.serial) : NULL;
			if (e == NULL) {
				fprintf(stderr, "gen-factory-csv: entry %ld "
				    "failed\n", i);
				return 1;
			}
			fprintf(out, "%s\n%s", i == start ? "" : ",", e);
			free(pl);
			free(e);
		} else {
			kb = nokey ? NULL : fgen_b64(d.spki, sizeof(d.spki));
			cb = der ? fgen_b64(der, derlen) : NULL;
			fprintf(out, "%s,%s,%s,%s,ca,%s,%s,%s%s", d.id, d.serial,
			    kb ? kb : "", cb ? cb : "", owner, batch, hub, eol);
		}
		free(kb);
		free(cb);
		OPENSSL_free(der);
	}
	if (manifest != NULL)
		fputs("\n]\n", out);
	fgen_free(g);
	if (out != stdout ? fclose(out) != 0 : fflush(out) != 0) {
		perror(outpath ? outpath : "stdout");
		return 1;
	}
	return 0;
}
