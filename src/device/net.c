/*
 * net.c — HTTPS to the re-enrolment endpoint with libcurl. On the device:
 * esp_http_client with cert_pem = the root CA the device trusts (the same
 * root that signs its certificates), keep-alive on, TLS 1.2 or newer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "device.h"

#define REPLY_MAX	(64 * 1024)

struct net {
	CURL	*curl;
	char	*base;
	char	*buf;
	size_t	 len;
	int	 overflow;
};

static size_t
on_data(char *p, size_t size, size_t n, void *arg)
{
	struct net *net = arg;
	size_t k = size * n;

	if (net->len + k > REPLY_MAX) {
		net->overflow = 1;
		return 0;
	}
	memcpy(net->buf + net->len, p, k);
	net->len += k;
	net->buf[net->len] = '\0';
	return k;
}

int
net_open(const char *base_url, const char *root_pem, int verbose,
    struct net **out)
{
	struct net *n = calloc(1, sizeof(*n));

	if (n == NULL)
		return -1;
	n->curl = curl_easy_init();
	n->base = strdup(base_url);
	n->buf = malloc(REPLY_MAX + 1);
	if (n->curl == NULL || n->base == NULL || n->buf == NULL) {
		net_close(n);
		return -1;
	}
	/* Server authentication against the device's root only. */
	curl_easy_setopt(n->curl, CURLOPT_CAINFO, root_pem);
	curl_easy_setopt(n->curl, CURLOPT_CAPATH, NULL);
	curl_easy_setopt(n->curl, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(n->curl, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(n->curl, CURLOPT_SSLVERSION,
	    (long)CURL_SSLVERSION_TLSv1_2);
	curl_easy_setopt(n->curl, CURLOPT_TIMEOUT, 30L);
	curl_easy_setopt(n->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(n->curl, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(n->curl, CURLOPT_WRITEDATA, n);
	curl_easy_setopt(n->curl, CURLOPT_VERBOSE, verbose > 1 ? 1L : 0L);
	*out = n;
	return 0;
}

int
net_post(struct net *n, const char *path, const char *body, int *status,
    char **reply)
{
	struct curl_slist *h = NULL;
	char url[1024];
	long code = 0;
	CURLcode rc;

	snprintf(url, sizeof(url), "%s%s", n->base, path);
	h = curl_slist_append(h, "Content-Type: application/json");
	n->len = 0;
	n->buf[0] = '\0';
	n->overflow = 0;
	curl_easy_setopt(n->curl, CURLOPT_URL, url);
	curl_easy_setopt(n->curl, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(n->curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(n->curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	rc = curl_easy_perform(n->curl);
	curl_slist_free_all(h);
	if (rc != CURLE_OK || n->overflow) {
		fprintf(stderr, "fleetcert-device: POST %s: %s\n", url,
		    n->overflow ? "reply too large" : curl_easy_strerror(rc));
		return -1;
	}
	curl_easy_getinfo(n->curl, CURLINFO_RESPONSE_CODE, &code);
	*status = (int)code;
	*reply = strdup(n->buf);
	return *reply ? 0 : -1;
}

void
net_close(struct net *n)
{
	if (n == NULL)
		return;
	if (n->curl)
		curl_easy_cleanup(n->curl);
	free(n->base);
	free(n->buf);
	free(n);
}
