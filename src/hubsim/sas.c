/*
 * sas.c — shared access policies and SAS token verification, as the hub
 * does it (azure-iothub.md "SAS token"): the pairs sr, sig, se, skn in any
 * order, percent-escapes in either hex case, HMAC-SHA256 keyed with the
 * decoded policy key over URL-encode(sr) "\n" se, expiry, and the policy's
 * permissions. Every refusal is 401 / 401002 IotHubUnauthorizedAccess.
 * Runs in request threads; reads only the policies, fixed after start-up.
 * Never logs a key or a token.
 */
#include "fc_build.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "hubsim.h"
#include "log.h"

#define TOKEN_MAX	2048

static const struct {
	const char *name;
	unsigned perms;
} known[] = {
	{ "iothubowner", PERM_REGISTRY_READ | PERM_REGISTRY_WRITE |
	    PERM_SERVICE_CONNECT | PERM_DEVICE_CONNECT },
	{ "service", PERM_SERVICE_CONNECT },
	{ "device", PERM_DEVICE_CONNECT },
	{ "registryRead", PERM_REGISTRY_READ },
	{ "registryReadWrite", PERM_REGISTRY_READ | PERM_REGISTRY_WRITE },
};

enum fc_err
sas_policy_add(struct sim *sim, const char *spec)
{
	const char *eq = strchr(spec, '=');
	struct sim_policy *p;
	unsigned char *key = NULL;
	size_t klen = 0, i, nlen;

	if (eq == NULL || sim->npolicies >= SIM_MAX_POLICIES)
		return FC_EINVAL;
	nlen = (size_t)(eq - spec);
	p = &sim->policies[sim->npolicies];
	if (nlen == 0 || nlen >= sizeof(p->name))
		return FC_EINVAL;
	memcpy(p->name, spec, nlen);
	p->name[nlen] = '\0';
	p->perms = 0;
	for (i = 0; i < FC_ARRAY_LEN(known); i++)
		if (strcmp(known[i].name, p->name) == 0)
			p->perms = known[i].perms;
	if (p->perms == 0) {
		log_error("policy %s: unknown name (use iothubowner, service, "
		    "registryRead or registryReadWrite)", p->name);
		return FC_EINVAL;
	}
	if (fc_b64_decode(eq + 1, &key, &klen) != FC_OK || klen == 0 ||
	    klen > sizeof(p->key)) {
		if (key != NULL)
			fc_secret_free(key, klen);
		log_error("policy %s: key is not base64 of 1-64 bytes", p->name);
		return FC_EINVAL;
	}
	memcpy(p->key, key, klen);
	p->key_len = klen;
	fc_secret_free(key, klen);
	sim->npolicies++;
	return FC_OK;
}

static int
hexv(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Percent-decodes into out; '+' stays '+'. -1 on a bad escape. */
static int
unescape(const char *in, size_t len, char *out, size_t outsz)
{
	size_t i, o = 0;

	for (i = 0; i < len; i++) {
		int c = (unsigned char)in[i];
		if (c == '%') {
			int h, l;
			if (i + 2 >= len)
				return -1;
			h = hexv((unsigned char)in[i + 1]);
			l = hexv((unsigned char)in[i + 2]);
			if (h < 0 || l < 0)
				return -1;
			c = h * 16 + l;
			i += 2;
		}
		if (c == 0 || o + 1 >= outsz)
			return -1;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return 0;
}

/* URL-encodes as the SDKs do: unreserved characters kept, the rest %XX. */
static void
urlencode(const char *in, char *out, size_t outsz, int upper)
{
	const char *hex = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	size_t o = 0;

	for (; *in != '\0' && o + 4 < outsz; in++) {
		unsigned char c = (unsigned char)*in;
		if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
			out[o++] = (char)c;
		} else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = '\0';
}

static int
sig_matches(const struct sim_policy *p, const char *sr_enc, const char *se,
    const unsigned char *sig, size_t siglen)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	char msg[TOKEN_MAX + 32];
	int n;

	n = snprintf(msg, sizeof(msg), "%s\n%s", sr_enc, se);
	if (n < 0 || (size_t)n >= sizeof(msg))
		return 0;
	if (HMAC(EVP_sha256(), p->key, (int)p->key_len, (unsigned char *)msg,
	    (size_t)n, mac, &maclen) == NULL)
		return 0;
	return maclen == siglen && CRYPTO_memcmp(mac, sig, siglen) == 0;
}

/* Does the token's resource URI cover this request? The bare host (as the
 * client wrote HostName) or a host/path prefix of the request path. */
static int
sr_covers(struct sim *sim, struct sim_req *req, const char *sr)
{
	const char *host = http_header(req, "Host");
	char hubhost[200];
	const char *cands[2];
	size_t i;

	snprintf(hubhost, sizeof(hubhost), "%s.azure-devices.net", sim->hub_name);
	cands[0] = host;
	cands[1] = hubhost;
	for (i = 0; i < 2; i++) {
		size_t n;
		if (cands[i] == NULL)
			continue;
		n = strlen(cands[i]);
		if (strncasecmp(sr, cands[i], n) != 0)
			continue;
		if (sr[n] == '\0')
			return 1;
		if (sr[n] == '/' && strncmp(req->path, sr + n, strlen(sr + n)) == 0)
			return 1;
	}
	return 0;
}

int
sas_check(struct sim *sim, struct sim_req *req, struct sim_reply *rep,
    unsigned need)
{
	const char *auth = http_header(req, "Authorization");
	char sr[TOKEN_MAX], skn[128], se[32], sigtxt[256];
	char sr_raw[TOKEN_MAX], enc[3 * TOKEN_MAX];
	unsigned char *sig = NULL;
	size_t siglen = 0, i;
	const char *p, *why = NULL;
	int have_sr = 0, have_sig = 0, have_se = 0, have_skn = 0;
	const struct sim_policy *pol = NULL;
	long long exp;
	char *end;

	sr[0] = skn[0] = se[0] = sigtxt[0] = sr_raw[0] = '\0';
	if (auth == NULL) {
		why = "Authorization header missing";
		goto refuse;
	}
	if (strlen(auth) > TOKEN_MAX || strncmp(auth, "SharedAccessSignature ",
	    22) != 0) {
		why = "Authorization is not a SharedAccessSignature";
		goto refuse;
	}
	/* Pairs in any order; each key once. */
	p = auth + 22;
	while (*p != '\0') {
		const char *amp = strchr(p, '&'), *eq;
		size_t n = amp ? (size_t)(amp - p) : strlen(p), kl;
		char *dst = NULL;
		size_t dsz = 0;
		int *have = NULL;

		eq = memchr(p, '=', n);
		if (eq == NULL) {
			why = "malformed SharedAccessSignature";
			goto refuse;
		}
		kl = (size_t)(eq - p);
		if (kl == 2 && strncmp(p, "sr", 2) == 0) {
			dst = sr; dsz = sizeof(sr); have = &have_sr;
			snprintf(sr_raw, sizeof(sr_raw), "%.*s",
			    (int)(n - kl - 1), eq + 1);
		} else if (kl == 3 && strncmp(p, "sig", 3) == 0) {
			dst = sigtxt; dsz = sizeof(sigtxt); have = &have_sig;
		} else if (kl == 2 && strncmp(p, "se", 2) == 0) {
			dst = se; dsz = sizeof(se); have = &have_se;
		} else if (kl == 3 && strncmp(p, "skn", 3) == 0) {
			dst = skn; dsz = sizeof(skn); have = &have_skn;
		} else {
			why = "unknown field in SharedAccessSignature";
			goto refuse;
		}
		if (*have || unescape(eq + 1, n - kl - 1, dst, dsz) != 0) {
			why = "malformed SharedAccessSignature";
			goto refuse;
		}
		*have = 1;
		p = amp ? amp + 1 : p + n;
	}
	if (!have_sr || !have_sig || !have_se) {
		why = "SharedAccessSignature lacks sr, sig or se";
		goto refuse;
	}
	if (!have_skn) {
		why = "a device-scoped token cannot call the service API";
		goto refuse;
	}
	for (i = 0; i < sim->npolicies; i++)
		if (strcmp(sim->policies[i].name, skn) == 0)
			pol = &sim->policies[i];
	if (pol == NULL) {
		why = "unknown shared access policy";
		goto refuse;
	}
	exp = strtoll(se, &end, 10);
	if (se[0] == '\0' || *end != '\0' || exp <= 0) {
		why = "se is not a Unix time";
		goto refuse;
	}
	if (fc_b64_decode(sigtxt, &sig, &siglen) != FC_OK) {
		sig = NULL;
		why = "sig is not base64";
		goto refuse;
	}
	/* Canonical encoding of the decoded sr, either hex case, or the
	 * form the client sent. */
	urlencode(sr, enc, sizeof(enc), 1);
	if (!sig_matches(pol, enc, se, sig, siglen)) {
		urlencode(sr, enc, sizeof(enc), 0);
		if (!sig_matches(pol, enc, se, sig, siglen) &&
		    !sig_matches(pol, sr_raw, se, sig, siglen)) {
			why = "signature does not match";
			goto refuse;
		}
	}
	if ((time_t)exp <= fc_now()) {
		why = "token expired";
		goto refuse;
	}
	if (!sr_covers(sim, req, sr)) {
		why = "token resource (sr) does not cover this hub";
		goto refuse;
	}
	if ((pol->perms & need) == 0) {
		free(sig);
		if (strncmp(req->path, "/twins/", 7) == 0 &&
		    strstr(req->path, "/methods") != NULL)
			reply_error_b(sim, rep, 401002, "IotHubUnauthorizedAccess",
			    "Authorization rule '%s' does not allow access for "
			    "this operation", pol->name);
		else
			reply_error(sim, rep, 401002, "IotHubUnauthorizedAccess",
			    "Authorization rule '%s' does not allow access for "
			    "this operation", pol->name);
		return -1;
	}
	free(sig);
	return 0;
refuse:
	free(sig);
	if (strncmp(req->path, "/twins/", 7) == 0 &&
	    strstr(req->path, "/methods") != NULL)
		reply_error_b(sim, rep, 401002, "IotHubUnauthorizedAccess", "%s",
		    why);
	else
		reply_error(sim, rep, 401002, "IotHubUnauthorizedAccess", "%s", why);
	return -1;
}
