/*
 * hub_sas.c — IoT Hub service credentials: the connection string and the
 * shared access signature (azure-iothub.md "SAS token"). Pure functions, any
 * thread. Handles the hub's key: it is wiped when freed and never written
 * into a message (errors name the field, never its value).
 */
#include "fc_build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "fc.h"
#include "hub_int.h"

#define KEY_MIN	16
#define KEY_MAX	128

char *
hub_pct_encode(const char *in)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(in), i, o = 0;
	char *out;

	out = malloc(3 * n + 1);
	if (out == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)in[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.' ||
		    c == '_' || c == '~') {
			out[o++] = (char)c;
		} else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = '\0';
	return out;
}

/*
 * A HostName is a DNS name or IPv4 address, or a bracketed IPv6 address,
 * optionally followed by :PORT (the simulator). Nothing that could change
 * the URL's meaning (/ @ ? # space %) gets through.
 */
static int
host_valid(const char *h)
{
	const char *p = h, *colon;
	size_t n;

	if (*p == '[') {
		p = strchr(h, ']');
		if (p == NULL || p == h + 1)
			return 0;
		for (const char *q = h + 1; q < p; q++)
			if (strchr("0123456789abcdefABCDEF:.", *q) == NULL)
				return 0;
		p++;
		colon = *p == ':' ? p : NULL;
		if (*p != '\0' && colon == NULL)
			return 0;
	} else {
		colon = strchr(h, ':');
		n = colon != NULL ? (size_t)(colon - h) : strlen(h);
		if (n == 0 || n > 253 || h[0] == '.' || h[0] == '-' ||
		    h[n - 1] == '.' || h[n - 1] == '-')
			return 0;
		for (size_t i = 0; i < n; i++) {
			char c = h[i];
			if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			    (c >= '0' && c <= '9') || c == '-' || c == '.'))
				return 0;
		}
	}
	if (colon != NULL) {
		long port = 0;
		const char *q = colon + 1;
		if (*q == '\0' || strlen(q) > 5)
			return 0;
		for (; *q != '\0'; q++) {
			if (*q < '0' || *q > '9')
				return 0;
			port = port * 10 + (*q - '0');
		}
		if (port < 1 || port > 65535)
			return 0;
	}
	return 1;
}

static int
policy_valid(const char *p)
{
	size_t n = strlen(p);

	if (n == 0 || n >= HUB_POLICY_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'))
			return 0;
	}
	return 1;
}

void
hub_conn_clear(struct hub_conn *c)
{
	if (c == NULL)
		return;
	if (c->key != NULL)
		fc_secret_free(c->key, c->keylen);
	OPENSSL_cleanse(c, sizeof(*c));
}

/*
 * `;`-separated pairs, each split on its first `=` (base64 keys end in '=').
 * HostName, SharedAccessKeyName and SharedAccessKey are required, once each.
 * DeviceId/ModuleId mean a device connection string: refused, fleetcert
 * needs a service policy. Other keys are ignored.
 */
enum fc_err
hub_conn_parse(const char *s, struct hub_conn *out, char *err, size_t errlen)
{
	struct hub_conn c;
	char *copy = NULL, *pair, *save = NULL;
	size_t slen;
	int have_host = 0, have_policy = 0, have_key = 0;
	enum fc_err result = FC_EINVAL;

	memset(&c, 0, sizeof(c));
	if (s == NULL || (slen = strnlen(s, HUB_CONN_MAX + 1)) == 0) {
		snprintf(err, errlen, "connection string is empty");
		goto out;
	}
	if (slen > HUB_CONN_MAX) {
		snprintf(err, errlen, "connection string is too long");
		goto out;
	}
	copy = strdup(s);
	if (copy == NULL) {
		result = FC_ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < slen; i++) {
		unsigned char ch = (unsigned char)copy[i];
		if (ch <= ' ' || ch >= 0x7f) {
			snprintf(err, errlen, "connection string contains "
			    "white space or non-ASCII characters");
			goto out;
		}
	}
	for (pair = strtok_r(copy, ";", &save); pair != NULL;
	    pair = strtok_r(NULL, ";", &save)) {
		char *eq = strchr(pair, '=');
		const char *k = pair, *v;

		if (eq == NULL || eq == pair) {
			snprintf(err, errlen, "connection string: a part is "
			    "not NAME=VALUE");
			goto out;
		}
		*eq = '\0';
		v = eq + 1;
		if (*v == '\0') {
			/* Name only the keys we know: an unknown "name" may
			 * be a pasted key whose '=' padding split it. */
			snprintf(err, errlen, "connection string: %s is empty",
			    strcmp(k, "HostName") == 0 ||
			    strcmp(k, "SharedAccessKeyName") == 0 ||
			    strcmp(k, "SharedAccessKey") == 0 ? k :
			    "a part's value");
			goto out;
		}
		if (strcmp(k, "HostName") == 0) {
			if (have_host++) {
				snprintf(err, errlen, "connection string: "
				    "HostName given twice");
				goto out;
			}
			if (strlen(v) >= sizeof(c.host) || !host_valid(v)) {
				snprintf(err, errlen, "connection string: "
				    "HostName is not a host name[:port]");
				goto out;
			}
			snprintf(c.host, sizeof(c.host), "%s", v);
		} else if (strcmp(k, "SharedAccessKeyName") == 0) {
			if (have_policy++) {
				snprintf(err, errlen, "connection string: "
				    "SharedAccessKeyName given twice");
				goto out;
			}
			if (!policy_valid(v)) {
				snprintf(err, errlen, "connection string: "
				    "SharedAccessKeyName is not a policy name");
				goto out;
			}
			snprintf(c.policy, sizeof(c.policy), "%s", v);
		} else if (strcmp(k, "SharedAccessKey") == 0) {
			if (have_key++) {
				snprintf(err, errlen, "connection string: "
				    "SharedAccessKey given twice");
				goto out;
			}
			if (fc_b64_decode(v, &c.key, &c.keylen) != FC_OK) {
				c.key = NULL;
				snprintf(err, errlen, "connection string: "
				    "SharedAccessKey is not base64");
				goto out;
			}
			if (c.keylen < KEY_MIN || c.keylen > KEY_MAX) {
				snprintf(err, errlen, "connection string: "
				    "SharedAccessKey must decode to %d-%d bytes",
				    KEY_MIN, KEY_MAX);
				goto out;
			}
		} else if (strcmp(k, "DeviceId") == 0 ||
		    strcmp(k, "ModuleId") == 0) {
			snprintf(err, errlen, "connection string is a device "
			    "connection string; a service policy (e.g. "
			    "registryReadWrite or iothubowner) is needed");
			goto out;
		} else if (strcmp(k, "SharedAccessSignature") == 0) {
			snprintf(err, errlen, "connection string: a fixed "
			    "SharedAccessSignature is not supported; give "
			    "SharedAccessKey");
			goto out;
		}
	}
	if (!have_host || !have_policy || !have_key) {
		snprintf(err, errlen, "connection string: %s missing",
		    !have_host ? "HostName" : !have_policy ?
		    "SharedAccessKeyName" : "SharedAccessKey");
		goto out;
	}
	*out = c;
	memset(&c, 0, sizeof(c));
	result = FC_OK;
out:
	if (copy != NULL)
		fc_secret_free(copy, slen);
	hub_conn_clear(&c);
	return result;
}

/*
 * azure-iothub.md: sign URL-encode(resource) "\n" expiry with HMAC-SHA256
 * keyed by the decoded key; sig = URL-encode(base64(HMAC)).
 */
enum fc_err
hub_sas_token(const char *resource, const char *policy,
    const unsigned char *key, size_t keylen, int64_t expiry, char **out)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	char *sr = NULL, *tosign = NULL, *sig64 = NULL, *sig = NULL;
	char *tok = NULL;
	size_t n;
	enum fc_err result = FC_ENOMEM;

	if (keylen == 0 || keylen > INT32_MAX)
		return FC_EINVAL;
	sr = hub_pct_encode(resource);
	if (sr == NULL)
		goto out;
	n = strlen(sr) + 32;
	tosign = malloc(n);
	if (tosign == NULL)
		goto out;
	snprintf(tosign, n, "%s\n%lld", sr, (long long)expiry);
	if (HMAC(EVP_sha256(), key, (int)keylen, (unsigned char *)tosign,
	    strlen(tosign), mac, &maclen) == NULL) {
		result = FC_ECRYPTO;
		goto out;
	}
	result = fc_b64_encode(mac, maclen, &sig64);
	if (result != FC_OK)
		goto out;
	result = FC_ENOMEM;
	sig = hub_pct_encode(sig64);
	if (sig == NULL)
		goto out;
	n = strlen(sr) + strlen(sig) + (policy != NULL ? strlen(policy) : 0) +
	    96;
	tok = malloc(n);
	if (tok == NULL)
		goto out;
	if (policy != NULL)
		snprintf(tok, n, "SharedAccessSignature sr=%s&sig=%s&se=%lld"
		    "&skn=%s", sr, sig, (long long)expiry, policy);
	else
		snprintf(tok, n, "SharedAccessSignature sr=%s&sig=%s&se=%lld",
		    sr, sig, (long long)expiry);
	*out = tok;
	tok = NULL;
	result = FC_OK;
out:
	OPENSSL_cleanse(mac, sizeof(mac));
	free(sr);
	free(tosign);
	if (sig64 != NULL)
		fc_secret_free(sig64, strlen(sig64));
	if (sig != NULL)
		fc_secret_free(sig, strlen(sig));
	free(tok);
	return result;
}
