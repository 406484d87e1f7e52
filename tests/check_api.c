/*
 * check_api.c — unit tests of the API's building blocks that need no
 * server: httpd's router and percent-decoding, response helpers, the
 * metrics registry and its text format, the health registry. Strict body
 * parsing is in tests/api.sh (it needs a connection); here the JSON
 * shapes.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "health.h"
#include "httpd_int.h"
#include "metrics.h"

static void h_a(struct httpd_request *q, struct httpd_response *r) { }
static void h_b(struct httpd_request *q, struct httpd_response *r) { }

static int
match(struct httpd_router *rt, const char *m, const char *p,
    httpd_handler *fn, char **p0, size_t *np)
{
	char *params[HTTPD_MAX_PARAMS] = { 0 };
	void *arg;
	size_t bmax, i;
	int st;

	*np = 0;
	st = httpd_router_match(rt, m, p, fn, &arg, &bmax, params, np);
	if (p0 != NULL)
		*p0 = st == 0 && *np > 0 ? strdup(params[0]) : NULL;
	for (i = 0; i < *np; i++)
		free(params[i]);
	return st;
}

START_TEST(router)
{
	struct httpd_router *rt = httpd_router_new();
	httpd_handler fn;
	char *p0;
	size_t np;

	ck_assert_ptr_nonnull(rt);
	ck_assert_int_eq(httpd_router_add(rt, "GET", "/v1/devices/{id}", h_a,
	    NULL, 0), FC_OK);
	ck_assert_int_eq(httpd_router_add(rt, "GET", "/v1/devices/special",
	    h_b, NULL, 0), FC_OK);
	ck_assert_int_eq(httpd_router_add(rt, "GET", "/v1/devices/{id}", h_b,
	    NULL, 0), FC_ECONFLICT);
	ck_assert_int_eq(httpd_router_add(rt, "GET", "v1", h_b, NULL, 0),
	    FC_EINVAL);
	ck_assert_int_eq(httpd_router_add(rt, "GET", "/a//b", h_b, NULL, 0),
	    FC_EINVAL);
	ck_assert_int_eq(httpd_router_add(rt, "GET", "/a/x{y}", h_b, NULL, 0),
	    FC_EINVAL);

	ck_assert_int_eq(match(rt, "GET", "/v1/devices/a%25b", &fn, &p0, &np),
	    0);
	ck_assert_ptr_eq(fn, h_a);
	ck_assert_str_eq(p0, "a%b");
	free(p0);
	/* a literal beats a parameter */
	ck_assert_int_eq(match(rt, "GET", "/v1/devices/special", &fn, NULL,
	    &np), 0);
	ck_assert_ptr_eq(fn, h_b);
	ck_assert_int_eq(match(rt, "POST", "/v1/devices/x", &fn, NULL, &np),
	    405);
	ck_assert_int_eq(match(rt, "GET", "/v1/devices", &fn, NULL, &np), 404);
	ck_assert_int_eq(match(rt, "GET", "/v1/devices/", &fn, NULL, &np),
	    404);
	ck_assert_int_eq(match(rt, "GET", "/v1/devices/a/b", &fn, NULL, &np),
	    404);
	ck_assert_int_eq(match(rt, "GET", "v1/devices/a", &fn, NULL, &np),
	    404);
	ck_assert_int_eq(match(rt, "GET", "/v1/devices/..", &fn, NULL, &np),
	    400);
	ck_assert_int_eq(match(rt, "GET", "/v1/devices/%2e", &fn, NULL, &np),
	    400);
	ck_assert_int_eq(match(rt, "GET", "/v1/devices/a%2fb", &fn, NULL,
	    &np), 400);
	ck_assert_int_eq(match(rt, "GET", "/v1/devices/a%5cb", &fn, NULL,
	    &np), 400);
	ck_assert_int_eq(match(rt, "GET", "/v1/devices/a%00", &fn, NULL, &np),
	    400);
	ck_assert_int_eq(match(rt, "GET", "/v1/devices/%", &fn, NULL, &np),
	    400);
	ck_assert_int_eq(match(rt, "GET", "/v1/devices/%g0", &fn, NULL, &np),
	    400);
	httpd_router_free(rt);
}
END_TEST

START_TEST(decode)
{
	size_t len;
	char *s;

	s = httpd_pct_decode("a+b%20c%7E", 1, &len);
	ck_assert_str_eq(s, "a b c~");
	ck_assert_uint_eq(len, 6);
	free(s);
	s = httpd_pct_decode("a+b", 0, NULL);
	ck_assert_str_eq(s, "a+b");
	free(s);
	ck_assert_ptr_null(httpd_pct_decode("%0", 0, NULL));
	ck_assert_ptr_null(httpd_pct_decode("x%", 0, NULL));
	ck_assert_ptr_null(httpd_pct_decode("%00", 0, NULL));
}
END_TEST

START_TEST(responses)
{
	struct httpd_response r;

	memset(&r, 0, sizeof(r));
	httpd_resp_fc_err(&r, FC_ENOTFOUND, "no such device");
	ck_assert_int_eq(r.status, 404);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(
	    r.json, "error"), "code")), "not_found");
	httpd_resp_raw(&r, 200, "text/plain", "hi", 2);
	ck_assert_ptr_null(r.json);
	ck_assert_uint_eq(r.body_len, 2);
	ck_assert_str_eq(r.content_type, "text/plain");
	httpd_resp_fc_err(&r, FC_EBUSY, "busy");
	ck_assert_int_eq(r.status, 503);
	ck_assert_uint_eq(r.nhdr, 1);
	httpd_resp_clear(&r);
	ck_assert_int_eq(r.status, 0);
}
END_TEST

START_TEST(metrics)
{
	static const double b[] = { 0.1, 1 };
	struct metric *c, *g, *h;
	char *text = NULL;
	size_t len;

	metrics_reset();
	c = metrics_counter("t_requests_total", "Requests \\ seen\nok",
	    "method,code");
	g = metrics_gauge("t_queue", "Queue", NULL);
	h = metrics_histogram("t_seconds", "Time", "route", b, 2);
	ck_assert_ptr_nonnull(c);
	ck_assert_ptr_eq(metrics_counter("t_requests_total", "x",
	    "method,code"), c);
	ck_assert_ptr_null(metrics_gauge("t_requests_total", "x", NULL));
	ck_assert_ptr_null(metrics_counter("9bad", "x", NULL));
	ck_assert_ptr_null(metrics_counter("t_le", "x", "le"));
	metrics_add(c, 1, "GET", "200");
	metrics_add(c, 2, "GET", "200");
	metrics_add(c, -5, "GET", "200");
	metrics_add(c, 1, "POST", "a\"b\\c\nd");
	metrics_set(g, 7);
	metrics_add(g, -2);
	metrics_observe(h, 0.05, "/x");
	metrics_observe(h, 0.5, "/x");
	metrics_observe(h, 5, "/x");
	ck_assert_int_eq(metrics_render(NULL, &text, &len), FC_OK);
	ck_assert_uint_eq(strlen(text), len);
	ck_assert_ptr_nonnull(strstr(text,
	    "# HELP t_requests_total Requests \\\\ seen\\nok\n"));
	ck_assert_ptr_nonnull(strstr(text,
	    "# TYPE t_requests_total counter\n"));
	ck_assert_ptr_nonnull(strstr(text,
	    "t_requests_total{method=\"GET\",code=\"200\"} 3\n"));
	ck_assert_ptr_nonnull(strstr(text,
	    "t_requests_total{method=\"POST\",code=\"a\\\"b\\\\c\\nd\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(text, "t_queue 5\n"));
	ck_assert_ptr_nonnull(strstr(text,
	    "t_seconds_bucket{route=\"/x\",le=\"0.1\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(text,
	    "t_seconds_bucket{route=\"/x\",le=\"1\"} 2\n"));
	ck_assert_ptr_nonnull(strstr(text,
	    "t_seconds_bucket{route=\"/x\",le=\"+Inf\"} 3\n"));
	ck_assert_ptr_nonnull(strstr(text, "t_seconds_sum{route=\"/x\"} 5.55"));
	ck_assert_ptr_nonnull(strstr(text, "t_seconds_count{route=\"/x\"} 3\n"));
	free(text);
	metrics_reset();
}
END_TEST

static void
bump(void *arg, struct db *db)
{
	metrics_set(arg, 42);
}

START_TEST(metrics_collectors)
{
	struct metric *g;
	char *text = NULL;
	size_t len;

	metrics_reset();
	g = metrics_gauge("t_collected", "From a collector", NULL);
	ck_assert_int_eq(metrics_collector_add(bump, g), FC_OK);
	ck_assert_int_eq(metrics_render(NULL, &text, &len), FC_OK);
	ck_assert_ptr_nonnull(strstr(text, "t_collected 42\n"));
	free(text);
	metrics_reset();
}
END_TEST

START_TEST(health)
{
	json_t *j;

	health_reset();
	ck_assert_int_eq(health_ok(), 1);
	health_set("signer", 1, NULL);
	health_set("hub:default", 0, "unreachable: connection refused");
	ck_assert_int_eq(health_ok(), 0);
	j = health_to_json();
	ck_assert_str_eq(json_string_value(json_object_get(j, "status")),
	    "degraded");
	ck_assert(json_is_false(json_object_get(json_object_get(
	    json_object_get(j, "components"), "hub:default"), "ok")));
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(
	    json_object_get(j, "components"), "hub:default"), "reason")),
	    "unreachable: connection refused");
	json_decref(j);
	health_set("hub:default", 1, NULL);
	ck_assert_int_eq(health_ok(), 1);
	health_remove("signer");
	j = health_to_json();
	ck_assert_ptr_null(json_object_get(json_object_get(j, "components"),
	    "signer"));
	json_decref(j);
	ck_assert_int_eq(health_set("", 1, NULL), FC_EINVAL);
	health_reset();
}
END_TEST

START_TEST(json_shapes)
{
	struct inv_device d;
	struct inv_cert cert;
	json_t *j;

	memset(&d, 0, sizeof(d));
	memset(&cert, 0, sizeof(cert));
	strcpy(d.device_id, "dev-1");
	strcpy(d.se_serial, "0123aabbccddeeff00");
	strcpy(cert.serial, "01");
	strcpy(cert.device_id, "dev-1");
	cert.not_after = 1800000000;
	cert.status = INV_CERT_ACTIVE;
	j = api_device_json(&d, &cert);
	ck_assert_str_eq(json_string_value(json_object_get(j, "deviceId")),
	    "dev-1");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j,
	    "certificate"), "notAfter")), "2027-01-15T08:00:00Z");
	ck_assert(json_is_null(json_object_get(json_object_get(j,
	    "certificate"), "notBefore")));
	json_decref(j);
	j = api_device_json(&d, NULL);
	ck_assert(json_is_null(json_object_get(j, "certificate")));
	json_decref(j);
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("api");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, router);
	tcase_add_test(tc, decode);
	tcase_add_test(tc, responses);
	tcase_add_test(tc, metrics);
	tcase_add_test(tc, metrics_collectors);
	tcase_add_test(tc, health);
	tcase_add_test(tc, json_shapes);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
