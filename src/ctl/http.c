/*
 * http.c — fleetcertctl's HTTP client: one libcurl easy handle, reused for
 * every request of the run, over TCP or a Unix socket
 * (CURLOPT_UNIX_SOCKET_PATH), with the bearer token and a response size
 * cap. Also prints the upload progress bar on a terminal.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "ctl.h"

#define RESP_MAX	(256u << 20)

struct sink {
	struct ctl_resp	*r;
	size_t		 cap;
	int		 overflow;
};

static size_t
write_cb(char *data, size_t size, size_t n, void *arg)
{
	struct sink *s = arg;
	size_t len = size * n;
	char *nb;

	if (s->r->len + len + 1 > RESP_MAX) {
		s->overflow = 1;
		return 0;
	}
	if (s->r->len + len + 1 > s->cap) {
		size_t cap = s->cap ? s->cap : 4096;

		while (cap < s->r->len + len + 1)
			cap *= 2;
		if ((nb = realloc(s->r->body, cap)) == NULL)
			return 0;
		s->r->body = nb;
		s->cap = cap;
	}
	memcpy(s->r->body + s->r->len, data, len);
	s->r->len += len;
	s->r->body[s->r->len] = '\0';
	return len;
}

static int
progress_cb(void *arg, curl_off_t dltotal, curl_off_t dlnow,
    curl_off_t ultotal, curl_off_t ulnow)
{
	int *last = arg, pct, i, w = 40, fill;

	if (ultotal <= 0)
		return 0;
	pct = (int)(ulnow * 100 / ultotal);
	if (pct == *last)
		return 0;
	*last = pct;
	fill = pct * w / 100;
	fputs("\rupload [", stderr);
	for (i = 0; i < w; i++)
		fputc(i < fill ? '#' : ' ', stderr);
	fprintf(stderr, "] %3d%% %lld/%lld bytes", pct, (long long)ulnow,
	    (long long)ultotal);
	if (pct == 100)
		fputs(" - importing...", stderr);
	fflush(stderr);
	return 0;
}

int
ctl_request(struct ctl *c, const char *method, const char *path,
    const char *ctype, const char *body, size_t len, int progress,
    struct ctl_resp *out)
{
	struct curl_slist *hdrs = NULL;
	struct sink s;
	char *url = NULL, *auth = NULL, ct[128], errbuf[CURL_ERROR_SIZE];
	CURL *h;
	CURLcode rc;
	int last = -1, bar = progress && isatty(2), ret = -1;
	size_t n;

	memset(out, 0, sizeof(*out));
	if (c->curl == NULL && (c->curl = curl_easy_init()) == NULL) {
		fprintf(stderr, "fleetcertctl: cannot initialise libcurl\n");
		return -1;
	}
	h = c->curl;
	curl_easy_reset(h);
	n = strlen(c->api) + strlen(path) + 1;
	if ((url = malloc(n)) == NULL)
		goto out;
	snprintf(url, n, "%s%s", c->api, path);
	if (c->token != NULL) {
		n = c->token_len + 32;
		if ((auth = malloc(n)) == NULL)
			goto out;
		snprintf(auth, n, "Authorization: Bearer %s", c->token);
		hdrs = curl_slist_append(hdrs, auth);
	}
	hdrs = curl_slist_append(hdrs, "Accept: application/json");
	if (ctype != NULL) {
		snprintf(ct, sizeof(ct), "Content-Type: %s", ctype);
		hdrs = curl_slist_append(hdrs, ct);
	}
	hdrs = curl_slist_append(hdrs, "Expect:");
	memset(&s, 0, sizeof(s));
	s.r = out;
	errbuf[0] = '\0';
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 600L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP |
	    CURLPROTO_HTTPS));
#endif
	if (c->socket != NULL)
		curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, c->socket);
	if (body != NULL) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)len);
	}
	if (bar) {
		curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, progress_cb);
		curl_easy_setopt(h, CURLOPT_XFERINFODATA, &last);
		curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	}
	rc = curl_easy_perform(h);
	if (bar && last >= 0)
		fputc('\n', stderr);
	if (rc != CURLE_OK) {
		fprintf(stderr, "fleetcertctl: %s %s: %s\n", method, url,
		    s.overflow ? "response too large" : errbuf[0] ? errbuf :
		    curl_easy_strerror(rc));
		ctl_resp_clear(out);
		goto out;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status);
	if (out->body != NULL && out->len > 0 && (out->body[0] == '{' ||
	    out->body[0] == '['))
		out->json = json_loadb(out->body, out->len, 0, NULL);
	ret = 0;
out:
	curl_slist_free_all(hdrs);
	if (auth != NULL) {
		memset(auth, 0, strlen(auth));
		free(auth);
	}
	free(url);
	return ret;
}

void
ctl_resp_clear(struct ctl_resp *r)
{
	json_decref(r->json);
	free(r->body);
	memset(r, 0, sizeof(*r));
}

int
ctl_fail(struct ctl *c, const struct ctl_resp *r)
{
	json_t *e = r->json ? json_object_get(r->json, "error") : NULL;

	if (c->json && r->json != NULL)
		ctl_json_print(r->json);
	if (e != NULL)
		fprintf(stderr, "fleetcertctl: %s (HTTP %ld, %s)\n",
		    ctl_str(e, "message"), r->status, ctl_str(e, "code"));
	else
		fprintf(stderr, "fleetcertctl: HTTP %ld\n", r->status);
	return CTL_FAIL;
}

char *
ctl_escape(struct ctl *c, const char *s)
{
	char *e, *dup;

	if (c->curl == NULL && (c->curl = curl_easy_init()) == NULL)
		return NULL;
	if ((e = curl_easy_escape(c->curl, s, 0)) == NULL)
		return NULL;
	dup = strdup(e);
	curl_free(e);
	return dup;
}
