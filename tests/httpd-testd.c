/*
 * httpd-testd.c — a tiny server on src/httpd.c for tests/httpd.sh and the
 * API benchmark's ceiling. Not installed. Writes its bound port to
 * --port-file once serving; runs until SIGTERM/SIGINT; on exit prints
 * "logged=N suppressed=M" (MHD log lines) to stdout.
 *
 * Routes: GET /hello -> {"hello":"world"}; GET /tiny -> "ok" (text/plain);
 * GET /items/{id} -> {"id": id}; GET /items/{id}/sub/{sub};
 * POST /echo -> {"length": N, "query": {...}}; GET /slow -> sleeps 2 s;
 * GET /blob/{n} -> n constant bytes.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "httpd.h"
#include "log.h"
#include "testd-signals.h"

static void
h_hello(struct httpd_request *req, struct httpd_response *resp)
{
	httpd_resp_json(resp, 200, json_pack("{s:s}", "hello", "world"));
}

static void
h_tiny(struct httpd_request *req, struct httpd_response *resp)
{
	httpd_resp_raw(resp, 200, "text/plain", "ok", 2);
}

/* GET /blob/{n}: n bytes (at most 1 MiB) of constant JSON-ish text, the
 * ceiling for a list page of the same size. */
static void
h_blob(struct httpd_request *req, struct httpd_response *resp)
{
	long n = atol(req->params[0]);
	char *b;

	if (n < 2 || n > (1L << 20) || (b = malloc((size_t)n)) == NULL) {
		httpd_resp_error(resp, 400, "bad_request", "bad size");
		return;
	}
	memset(b, 'x', (size_t)n);
	b[0] = '"';
	b[n - 1] = '"';
	httpd_resp_raw_take(resp, 200, "application/json", b, (size_t)n);
}

static void
h_item(struct httpd_request *req, struct httpd_response *resp)
{
	json_t *j = json_object();
	size_t i;

	json_object_set_new(j, "id", json_string(req->params[0]));
	if (req->nparams > 1)
		json_object_set_new(j, "sub", json_string(req->params[1]));
	for (i = 0; i < req->nquery; i++)
		json_object_set_new(j, req->query[i].key,
		    json_string(req->query[i].value));
	httpd_resp_json(resp, 200, j);
}

static void
h_echo(struct httpd_request *req, struct httpd_response *resp)
{
	httpd_resp_json(resp, 200, json_pack("{s:I}", "length",
	    (json_int_t)req->body_len));
}

static void
h_slow(struct httpd_request *req, struct httpd_response *resp)
{
	sleep(2);
	httpd_resp_json(resp, 200, json_pack("{s:b}", "slow", 1));
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "tls-cert", required_argument, NULL, 'c' },
		{ "tls-key", required_argument, NULL, 'k' },
		{ "priorities", required_argument, NULL, 'p' },
		{ "conn-limit", required_argument, NULL, 'C' },
		{ "per-ip", required_argument, NULL, 'I' },
		{ "idle", required_argument, NULL, 'i' },
		{ "deadline", required_argument, NULL, 'd' },
		{ "body-max", required_argument, NULL, 'b' },
		{ "threads", required_argument, NULL, 't' },
		{ "port-file", required_argument, NULL, 'P' },
		{ NULL, 0, NULL, 0 }
	};
	struct httpd_opts o;
	struct httpd *h = NULL;
	const char *port_file = NULL;
	unsigned long logged, suppressed;
	char buf[32];
	int c;

	log_init("httpd-testd", LOG_LVL_INFO);
	httpd_opts_init(&o);
	o.name = "test";
	o.listen = "127.0.0.1:0";
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'l': o.listen = optarg; break;
		case 'c': o.tls_cert = optarg; break;
		case 'k': o.tls_key = optarg; break;
		case 'p': o.tls_priorities = optarg; break;
		case 'C': o.conn_limit = atoi(optarg); break;
		case 'I': o.per_ip_limit = atoi(optarg); break;
		case 'i': o.idle_seconds = atoi(optarg); break;
		case 'd': o.deadline_seconds = atoi(optarg); break;
		case 'b': o.body_max = (size_t)atol(optarg); break;
		case 't': o.threads = atoi(optarg); break;
		case 'P': port_file = optarg; break;
		default: return 2;
		}
	}
	testd_signals_block();
	if (httpd_new(&o, &h) != FC_OK)
		return 1;
	if (httpd_route_add(h, "GET", "/hello", h_hello, NULL) != FC_OK ||
	    httpd_route_add(h, "GET", "/tiny", h_tiny, NULL) != FC_OK ||
	    httpd_route_add(h, "GET", "/items/{id}", h_item, NULL) != FC_OK ||
	    httpd_route_add(h, "GET", "/items/{id}/sub/{sub}", h_item,
	    NULL) != FC_OK ||
	    httpd_route_add(h, "POST", "/echo", h_echo, NULL) != FC_OK ||
	    httpd_route_add(h, "GET", "/slow", h_slow, NULL) != FC_OK ||
	    httpd_route_add(h, "GET", "/blob/{n}", h_blob, NULL) != FC_OK ||
	    httpd_route_add(h, "GET", "/hello", h_hello, NULL) !=
	    FC_ECONFLICT || httpd_route_add(h, "GET", "bad", h_hello,
	    NULL) != FC_EINVAL) {
		fprintf(stderr, "route table broken\n");
		httpd_free(h);
		return 1;
	}
	if (httpd_start(h) != FC_OK) {
		httpd_free(h);
		return 1;
	}
	if (port_file != NULL) {
		snprintf(buf, sizeof(buf), "%d\n", httpd_port(h));
		if (fc_file_write_atomic(port_file, buf, strlen(buf), 0644) !=
		    FC_OK) {
			httpd_free(h);
			return 1;
		}
	}
	testd_signals_wait();
	httpd_log_stats(h, &logged, &suppressed);
	httpd_free(h);
	printf("logged=%lu suppressed=%lu\n", logged, suppressed);
	return 0;
}
