/*
 * check_hub.c — unit tests of the IoT Hub client: SAS test vectors,
 * connection strings (good, bad, hostile), request building, both error
 * body shapes, hostile answers, back-off arithmetic, token buckets, and the
 * engine against a real TLS server (openssl s_server): verification
 * refused for an untrusted certificate, capped and non-JSON answers, no
 * secret in the log. Tests against the hub simulator are in tests/hub-sim.sh.
 */
#include "fc_build.h"

#include <check.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "config.h"
#include "hub_int.h"
#include "log.h"

static const unsigned char key32[32] = {
	0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19,
	20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31 };
#define KEY_B64 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

/* ---- SAS ---------------------------------------------------------------- */

START_TEST(sas_vector_service)
{
	char *tok = NULL;

	ck_assert_int_eq(hub_sas_token("myhub.azure-devices.net", "iothubowner",
	    key32, 32, 1700000000, &tok), FC_OK);
	ck_assert_str_eq(tok, "SharedAccessSignature sr=myhub.azure-devices.net"
	    "&sig=iIzEw6hi6GK79RY5jNXO6QeQkSL%2FAx4zTmy44X2G1VY%3D"
	    "&se=1700000000&skn=iothubowner");
	fc_secret_free(tok, strlen(tok));
}
END_TEST

START_TEST(sas_vector_device)
{
	char *tok = NULL;

	ck_assert_int_eq(hub_sas_token("myhub.azure-devices.net/devices/dev-01",
	    NULL, key32, 32, 1700000000, &tok), FC_OK);
	ck_assert_str_eq(tok, "SharedAccessSignature "
	    "sr=myhub.azure-devices.net%2Fdevices%2Fdev-01"
	    "&sig=VOvP4VRAE6ohczHZpu6xkF1lbm%2FlbEIgqyZEPpxC7dI%3D"
	    "&se=1700000000");
	fc_secret_free(tok, strlen(tok));
}
END_TEST

/* A random key and a host with a port, checked against OpenSSL's HMAC
 * computed here over the documented string to sign. */
START_TEST(sas_random_key_port)
{
	unsigned char key[32], mac[32];
	unsigned int maclen = 0;
	char *tok = NULL, *b64 = NULL, *sig = NULL, expect[512];
	const char *tosign = "127.0.0.1%3A4430\n1800000000";

	ck_assert_int_eq(RAND_bytes(key, sizeof(key)), 1);
	ck_assert_ptr_nonnull(HMAC(EVP_sha256(), key, 32,
	    (const unsigned char *)tosign, strlen(tosign), mac, &maclen));
	ck_assert_int_eq(fc_b64_encode(mac, maclen, &b64), FC_OK);
	sig = hub_pct_encode(b64);
	snprintf(expect, sizeof(expect), "SharedAccessSignature "
	    "sr=127.0.0.1%%3A4430&sig=%s&se=1800000000&skn=service", sig);
	ck_assert_int_eq(hub_sas_token("127.0.0.1:4430", "service", key, 32,
	    1800000000, &tok), FC_OK);
	ck_assert_str_eq(tok, expect);
	free(b64);
	free(sig);
	free(tok);
}
END_TEST

START_TEST(pct_encode)
{
	char *s = hub_pct_encode("dev#1?%+: /~._-Az09");

	ck_assert_str_eq(s, "dev%231%3F%25%2B%3A%20%2F~._-Az09");
	free(s);
}
END_TEST

/* ---- connection strings ------------------------------------------------- */

START_TEST(conn_good)
{
	struct hub_conn c;
	char err[256];

	ck_assert_int_eq(hub_conn_parse("HostName=myhub.azure-devices.net;"
	    "SharedAccessKeyName=iothubowner;SharedAccessKey=" KEY_B64, &c,
	    err, sizeof(err)), FC_OK);
	ck_assert_str_eq(c.host, "myhub.azure-devices.net");
	ck_assert_str_eq(c.policy, "iothubowner");
	ck_assert_uint_eq(c.keylen, 32);
	ck_assert_mem_eq(c.key, key32, 32);
	hub_conn_clear(&c);

	/* any order, a port, a trailing ';', an unknown key ignored */
	ck_assert_int_eq(hub_conn_parse("SharedAccessKey=" KEY_B64
	    ";HostName=127.0.0.1:4430;GatewayHostName=x;"
	    "SharedAccessKeyName=service;", &c, err, sizeof(err)), FC_OK);
	ck_assert_str_eq(c.host, "127.0.0.1:4430");
	hub_conn_clear(&c);
	ck_assert_int_eq(hub_conn_parse("HostName=localhost:1;"
	    "SharedAccessKeyName=registryReadWrite;SharedAccessKey=" KEY_B64,
	    &c, err, sizeof(err)), FC_OK);
	hub_conn_clear(&c);
	ck_assert_int_eq(hub_conn_parse("HostName=[::1]:8443;"
	    "SharedAccessKeyName=s;SharedAccessKey=" KEY_B64,
	    &c, err, sizeof(err)), FC_OK);
	ck_assert_str_eq(c.host, "[::1]:8443");
	hub_conn_clear(&c);
}
END_TEST

static const char *bad_conns[] = {
	"",
	"HostName=h;SharedAccessKeyName=p",
	"HostName=h;SharedAccessKey=" KEY_B64,
	"SharedAccessKeyName=p;SharedAccessKey=" KEY_B64,
	"HostName=h;HostName=h;SharedAccessKeyName=p;SharedAccessKey=" KEY_B64,
	"HostName=h;SharedAccessKeyName=p;SharedAccessKey=" KEY_B64
	    ";SharedAccessKey=" KEY_B64,
	"HostName=h;SharedAccessKeyName=p;SharedAccessKey=not*base64!",
	"HostName=h;SharedAccessKeyName=p;SharedAccessKey=AAEC",
	"HostName=;SharedAccessKeyName=p;SharedAccessKey=" KEY_B64,
	"HostName=h;SharedAccessKeyName=p;SharedAccessKey=" KEY_B64 ";x",
	"HostName=h;SharedAccessKeyName=p;SharedAccessKey=" KEY_B64 ";=v",
	"HostName=h/evil;SharedAccessKeyName=p;SharedAccessKey=" KEY_B64,
	"HostName=user@h;SharedAccessKeyName=p;SharedAccessKey=" KEY_B64,
	"HostName=h?x=1;SharedAccessKeyName=p;SharedAccessKey=" KEY_B64,
	"HostName=h#f;SharedAccessKeyName=p;SharedAccessKey=" KEY_B64,
	"HostName=h:0;SharedAccessKeyName=p;SharedAccessKey=" KEY_B64,
	"HostName=h:65536;SharedAccessKeyName=p;SharedAccessKey=" KEY_B64,
	"HostName=h:;SharedAccessKeyName=p;SharedAccessKey=" KEY_B64,
	"HostName=h:12a;SharedAccessKeyName=p;SharedAccessKey=" KEY_B64,
	"HostName=-h;SharedAccessKeyName=p;SharedAccessKey=" KEY_B64,
	"HostName=[zz]:1;SharedAccessKeyName=p;SharedAccessKey=" KEY_B64,
	"HostName=h;SharedAccessKeyName=p q;SharedAccessKey=" KEY_B64,
	"HostName=h;SharedAccessKeyName=p/q;SharedAccessKey=" KEY_B64,
	"HostName=h;SharedAccessKeyName=p;SharedAccessKey=" KEY_B64
	    ";DeviceId=dev-01",
	"HostName=h;SharedAccessKeyName=p;SharedAccessSignature=x",
	" HostName=h;SharedAccessKeyName=p;SharedAccessKey=" KEY_B64,
	"HostName=h\n;SharedAccessKeyName=p;SharedAccessKey=" KEY_B64,
	"HostName=h\xc3\xa9;SharedAccessKeyName=p;SharedAccessKey=" KEY_B64,
	";;;",
	"garbage",
	/* the key pasted without "SharedAccessKey=": its text before the
	 * '=' padding is a part's name, which must not be echoed */
	"HostName=h;SharedAccessKeyName=p;" KEY_B64,
};

START_TEST(conn_bad)
{
	struct hub_conn c;
	char err[256];

	memset(&c, 0x5a, sizeof(c));
	err[0] = '\0';
	ck_assert_int_eq(hub_conn_parse(bad_conns[_i], &c, err, sizeof(err)),
	    FC_EINVAL);
	ck_assert_msg(err[0] != '\0', "no message for %s", bad_conns[_i]);
	/* the message never carries the key */
	ck_assert_ptr_null(strstr(err, KEY_B64));
	ck_assert_ptr_null(strstr(err, "AAECAwQF"));
	/* out untouched on failure */
	ck_assert_int_eq(((unsigned char *)&c)[0], 0x5a);
}
END_TEST

START_TEST(conn_hostile)
{
	struct hub_conn c;
	char err[256], *big;
	size_t n = 1 << 20;

	big = malloc(n + 1);
	memset(big, 'A', n);
	big[n] = '\0';
	memcpy(big, "HostName=", 9);
	ck_assert_int_eq(hub_conn_parse(big, &c, err, sizeof(err)), FC_EINVAL);
	/* a host of 300 characters */
	snprintf(big, n, "HostName=%0300d;SharedAccessKeyName=p;"
	    "SharedAccessKey=" KEY_B64, 1);
	ck_assert_int_eq(hub_conn_parse(big, &c, err, sizeof(err)), FC_EINVAL);
	ck_assert_int_eq(hub_conn_parse(NULL, &c, err, sizeof(err)), FC_EINVAL);
	/* a 200-byte key is out of range */
	{
		unsigned char k[200];
		char *b = NULL;
		memset(k, 7, sizeof(k));
		fc_b64_encode(k, sizeof(k), &b);
		snprintf(big, n, "HostName=h;SharedAccessKeyName=p;"
		    "SharedAccessKey=%s", b);
		ck_assert_int_eq(hub_conn_parse(big, &c, err, sizeof(err)),
		    FC_EINVAL);
		ck_assert_ptr_null(strstr(err, b));
		free(b);
	}
	free(big);
}
END_TEST

/* ---- request building --------------------------------------------------- */

static json_t *
body_of(const struct hub_req *r)
{
	json_t *j = json_loads(r->body, 0, NULL);

	ck_assert_ptr_nonnull(j);
	return j;
}

START_TEST(req_device)
{
	struct hub_req *r = NULL;
	struct hub_device d;
	json_t *j;

	ck_assert_int_eq(hub_req_device_get("dev#1?%+:", &r), FC_OK);
	ck_assert_str_eq(r->method, "GET");
	ck_assert_str_eq(r->path, "/devices/dev%231%3F%25%2B%3A");
	ck_assert_ptr_null(r->body);
	ck_assert_uint_eq(hub_req_registry_ops(r), 0);
	hub_req_free(r);
	ck_assert_int_eq(hub_req_device_get("bad/id", &r), FC_EINVAL);
	ck_assert_int_eq(hub_req_device_get("", &r), FC_EINVAL);

	/* create: PUT without If-Match */
	hub_device_init(&d, "dev-01");
	d.auth = HUB_AUTH_SELFSIGNED;
	strcpy(d.primary_thumbprint, "0123456789abcdef0123456789abcdef01234567");
	ck_assert_int_eq(hub_req_device_create(&d, &r), FC_OK);
	ck_assert_str_eq(r->method, "PUT");
	ck_assert_str_eq(r->if_match, "");
	ck_assert_uint_eq(hub_req_registry_ops(r), 1);
	j = body_of(r);
	ck_assert_str_eq(json_string_value(json_object_get(j, "status")),
	    "enabled");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j,
	    "authentication"), "type")), "selfSigned");
	ck_assert(json_is_null(json_object_get(json_object_get(json_object_get(
	    j, "authentication"), "x509Thumbprint"), "secondaryThumbprint")));
	json_decref(j);
	hub_req_free(r);

	/* update: quoted etag; raw fields kept; disable sets the reason */
	d.raw = json_pack("{s:s, s:s, s:i}", "deviceId", "dev-01",
	    "etag", "AAAA", "cloudToDeviceMessageCount", 3);
	strcpy(d.etag, "MTIz");
	ck_assert_int_eq(hub_req_device_disable(&d, "revoked: key compromise",
	    &r), FC_OK);
	ck_assert_str_eq(r->if_match, "\"MTIz\"");
	j = body_of(r);
	ck_assert_str_eq(json_string_value(json_object_get(j, "status")),
	    "disabled");
	ck_assert_str_eq(json_string_value(json_object_get(j, "statusReason")),
	    "revoked: key compromise");
	ck_assert_str_eq(json_string_value(json_object_get(j, "etag")), "MTIz");
	ck_assert_int_eq(json_integer_value(json_object_get(j,
	    "cloudToDeviceMessageCount")), 3);
	json_decref(j);
	hub_req_free(r);
	ck_assert(d.enabled);	/* d itself unchanged */

	/* thumbprint stage then promote */
	ck_assert_int_eq(hub_req_thumbprint_stage(&d,
	    "FEDCBA9876543210FEDCBA9876543210FEDCBA98", &r), FC_OK);
	j = body_of(r);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(
	    json_object_get(j, "authentication"), "x509Thumbprint"),
	    "secondaryThumbprint")), "FEDCBA9876543210FEDCBA9876543210FEDCBA98");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(
	    json_object_get(j, "authentication"), "x509Thumbprint"),
	    "primaryThumbprint")), "0123456789abcdef0123456789abcdef01234567");
	json_decref(j);
	hub_req_free(r);
	ck_assert_int_eq(hub_req_thumbprint_promote(&d,
	    "FEDCBA9876543210FEDCBA9876543210FEDCBA98", &r), FC_OK);
	j = body_of(r);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(
	    json_object_get(j, "authentication"), "x509Thumbprint"),
	    "primaryThumbprint")), "FEDCBA9876543210FEDCBA9876543210FEDCBA98");
	json_decref(j);
	hub_req_free(r);
	/* SHA-256 secondary beside a SHA-1 primary is refused */
	ck_assert_int_eq(hub_req_thumbprint_stage(&d, "00112233445566778899"
	    "aabbccddeeff00112233445566778899aabbccddeeff", &r), FC_EINVAL);
	ck_assert_int_eq(hub_req_thumbprint_stage(&d, "xyz", &r), FC_EINVAL);
	ck_assert_int_eq(hub_req_device_disable(&d, "bad \xff utf-8", &r),
	    FC_EINVAL);

	/* delete: etag NULL is "*" */
	ck_assert_int_eq(hub_req_device_delete("dev-01", NULL, &r), FC_OK);
	ck_assert_str_eq(r->if_match, "*");
	ck_assert_str_eq(r->method, "DELETE");
	hub_req_free(r);
	ck_assert_int_eq(hub_req_device_delete("dev-01", "a\"b", &r),
	    FC_EINVAL);
	hub_device_clear(&d);
}
END_TEST

START_TEST(req_bulk)
{
	struct hub_device d[HUB_BULK_MAX + 1];
	struct hub_bulk_entry e[HUB_BULK_MAX + 1];
	struct hub_req *r = NULL;
	json_t *j;
	char id[32];

	for (int i = 0; i <= HUB_BULK_MAX; i++) {
		snprintf(id, sizeof(id), "dev-%03d", i);
		hub_device_init(&d[i], id);
		d[i].enabled = 0;
		snprintf(d[i].status_reason, sizeof(d[i].status_reason),
		    "revoked");
		snprintf(d[i].etag, sizeof(d[i].etag), "e%d", i);
		e[i].device = &d[i];
		e[i].mode = HUB_IMPORT_UPDATE_IF_MATCH_ETAG;
	}
	ck_assert_int_eq(hub_req_bulk(e, HUB_BULK_MAX + 1, &r), FC_EINVAL);
	ck_assert_int_eq(hub_req_bulk(e, 0, &r), FC_EINVAL);
	ck_assert_int_eq(hub_req_bulk(e, HUB_BULK_MAX, &r), FC_OK);
	ck_assert_uint_eq(hub_req_registry_ops(r), HUB_BULK_MAX);
	ck_assert_str_eq(r->path, "/devices");
	j = body_of(r);
	ck_assert_uint_eq(json_array_size(j), HUB_BULK_MAX);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(j, 5),
	    "importMode")), "updateIfMatchETag");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(j, 5),
	    "eTag")), "e5");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(j, 5),
	    "status")), "disabled");
	json_decref(j);
	hub_req_free(r);
	e[1].device = &d[0];	/* duplicate id */
	ck_assert_int_eq(hub_req_bulk(e, 3, &r), FC_EINVAL);
	e[1].device = &d[1];
	d[1].etag[0] = '\0';	/* IfMatchETag without an etag */
	ck_assert_int_eq(hub_req_bulk(e, 3, &r), FC_EINVAL);
	e[1].mode = HUB_IMPORT_DELETE;
	ck_assert_int_eq(hub_req_bulk(e, 3, &r), FC_OK);
	j = body_of(r);
	ck_assert_ptr_null(json_object_get(json_array_get(j, 1), "status"));
	json_decref(j);
	hub_req_free(r);
}
END_TEST

START_TEST(req_twin_method_query)
{
	struct hub_req *r = NULL;
	json_t *desired = json_pack("{s:{s:s}}", "fleetcert", "serial", "ab");
	json_t *j, *big;
	char *s;

	ck_assert_int_eq(hub_req_twin_patch_desired("dev-01", desired, "AAAA",
	    &r), FC_OK);
	ck_assert_str_eq(r->method, "PATCH");
	ck_assert_str_eq(r->path, "/twins/dev-01");
	ck_assert_str_eq(r->if_match, "\"AAAA\"");
	j = body_of(r);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(
	    json_object_get(json_object_get(j, "properties"), "desired"),
	    "fleetcert"), "serial")), "ab");
	json_decref(j);
	hub_req_free(r);
	ck_assert_int_eq(hub_req_twin_patch_desired("dev-01", desired, "*", &r),
	    FC_OK);
	ck_assert_str_eq(r->if_match, "*");
	hub_req_free(r);
	/* over 32 KB of desired properties */
	s = malloc(40000);
	memset(s, 'x', 39999);
	s[39999] = '\0';
	big = json_pack("{s:s}", "blob", s);
	ck_assert_int_eq(hub_req_twin_patch_desired("dev-01", big, NULL, &r),
	    FC_EINVAL);
	json_decref(big);
	free(s);

	ck_assert_int_eq(hub_req_method_invoke("dev-01", "fleetcertInstall",
	    desired, 30, 10, &r), FC_OK);
	ck_assert_str_eq(r->path, "/twins/dev-01/methods");
	ck_assert_int_eq(r->timeout_ms, (30 + 10 + HUB_METHOD_SLACK_S) * 1000);
	j = body_of(r);
	ck_assert_int_eq(json_integer_value(json_object_get(j,
	    "responseTimeoutInSeconds")), 30);
	ck_assert_int_eq(json_integer_value(json_object_get(j,
	    "connectTimeoutInSeconds")), 10);
	ck_assert_str_eq(json_string_value(json_object_get(j, "methodName")),
	    "fleetcertInstall");
	json_decref(j);
	hub_req_free(r);
	ck_assert_int_eq(hub_req_method_invoke("dev-01", "m", NULL, 4, 0, &r),
	    FC_EINVAL);
	ck_assert_int_eq(hub_req_method_invoke("dev-01", "m", NULL, 301, 0, &r),
	    FC_EINVAL);
	ck_assert_int_eq(hub_req_method_invoke("dev-01", "m", NULL, 5, 301, &r),
	    FC_EINVAL);
	ck_assert_int_eq(hub_req_method_invoke("dev-01", "a b", NULL, 5, 0, &r),
	    FC_EINVAL);
	ck_assert_int_eq(hub_req_method_invoke("dev-01", "a$b", NULL, 5, 0, &r),
	    FC_EINVAL);

	ck_assert_int_eq(hub_req_query("SELECT * FROM devices", 100, NULL, &r),
	    FC_OK);
	ck_assert_int_eq(r->page_size, 100);
	ck_assert_ptr_null(r->continuation);
	hub_req_free(r);
	ck_assert_int_eq(hub_req_query("SELECT * FROM devices", 10, "tok==",
	    &r), FC_OK);
	ck_assert_str_eq(r->continuation, "tok==");
	hub_req_free(r);
	ck_assert_int_eq(hub_req_query("SELECT * FROM devices", 101, NULL, &r),
	    FC_EINVAL);
	ck_assert_int_eq(hub_req_query("SELECT * FROM devices", 10, "a\r\nb",
	    &r), FC_EINVAL);
	json_decref(desired);
}
END_TEST

/* ---- errors and answers ------------------------------------------------- */

START_TEST(error_shapes)
{
	struct hub_error e;
	const char *b1 = "{\"Message\":\"ErrorCode:PreconditionFailed;Precondition"
	    " failed: etag mismatch\",\"ExceptionMessage\":\"Tracking ID:"
	    "abc123-G:3-TimeStamp:11/25/2026\"}";
	const char *b2 = "{\"Message\":\"{\\\"errorCode\\\":404103,\\\"trackingId"
	    "\\\":\\\"t-1\\\",\\\"message\\\":\\\"Timed out waiting for device "
	    "to connect.\\\",\\\"info\\\":{},\\\"timestampUtc\\\":\\\"2026-11-25"
	    "T00:00:00Z\\\"}\",\"ExceptionMessage\":\"\"}";

	hub_error_parse(b1, strlen(b1), "PreconditionFailed", &e);
	ck_assert_str_eq(e.name, "PreconditionFailed");
	ck_assert_int_eq(e.code, HUB_E_PRECONDITION_FAILED);
	ck_assert_str_eq(e.message, "Precondition failed: etag mismatch");
	ck_assert_str_eq(e.tracking_id, "abc123");
	ck_assert(hub_error_is(&e, HUB_E_PRECONDITION_FAILED));
	ck_assert(!hub_error_is(&e, HUB_E_DEVICE_NOT_FOUND));

	hub_error_parse(b2, strlen(b2), NULL, &e);
	ck_assert_int_eq(e.code, 404103);
	ck_assert_str_eq(e.name, "DeviceNotOnline");
	ck_assert_str_eq(e.tracking_id, "t-1");
	ck_assert(hub_error_is(&e, HUB_E_DEVICE_NOT_ONLINE));

	/* errorCode as a string, and an unknown name: matched by number */
	b2 = "{\"Message\":\"{\\\"errorCode\\\":\\\"504101\\\"}\"}";
	hub_error_parse(b2, strlen(b2), NULL, &e);
	ck_assert(hub_error_is(&e, HUB_E_GATEWAY_TIMEOUT));
	/* header only, body not JSON */
	hub_error_parse("<html>", 6, "DeviceNotFound", &e);
	ck_assert(hub_error_is(&e, HUB_E_DEVICE_NOT_FOUND));
	ck_assert_int_eq(e.code, 404001);
	/* hostile: wrong types, control characters, huge name */
	b1 = "{\"Message\":42,\"ExceptionMessage\":[1]}";
	hub_error_parse(b1, strlen(b1), NULL, &e);
	ck_assert_int_eq(e.code, 0);
	ck_assert_str_eq(e.name, "");
	b1 = "{\"Message\":\"ErrorCode:Bad\\u0001Name\\nX;te\\rxt\"}";
	hub_error_parse(b1, strlen(b1), NULL, &e);
	ck_assert_str_eq(e.name, "Bad?Name?X");
	ck_assert_str_eq(e.message, "te?xt");
	b1 = "{\"Message\":\"{\\\"errorCode\\\":99999999999}\"}";
	hub_error_parse(b1, strlen(b1), NULL, &e);
	ck_assert_int_eq(e.code, 0);
	b1 = "{\"Message\":\"{not json\"}";
	hub_error_parse(b1, strlen(b1), NULL, &e);
	ck_assert_str_eq(e.message, "{not json");
	hub_error_parse(NULL, 0, NULL, &e);
	ck_assert_int_eq(e.code, 0);
	/* a message quoting the token is withheld */
	b1 = "{\"Message\":\"ErrorCode:IotHubUnauthorizedAccess;bad token "
	    "SharedAccessSignature sr=h&sig=abc&se=1\"}";
	hub_error_parse(b1, strlen(b1), NULL, &e);
	ck_assert(hub_error_is(&e, HUB_E_UNAUTHORIZED));
	ck_assert_ptr_null(strstr(e.message, "sig="));
}
END_TEST

static struct hub_result *
reduce(struct hub_req *r, long status, const char *hdr, const char *body,
    int *transient)
{
	struct hub_result *res = calloc(1, sizeof(*res));
	struct hub_answer a;

	memset(&a, 0, sizeof(a));
	a.status = status;
	a.errorcode_hdr = hdr != NULL ? hdr : "";
	a.body = body;
	a.len = body != NULL ? strlen(body) : 0;
	a.retry_after_ms = -1;
	res->op = r->op;
	*transient = hub_answer_reduce(r, &a, res);
	return res;
}

START_TEST(answer_classes)
{
	struct hub_req *r = NULL;
	struct hub_result *res;
	int t;
	const char *dev = "{\"deviceId\":\"dev-01\",\"etag\":\"MTIz\","
	    "\"status\":\"disabled\",\"statusReason\":\"x\",\"connectionState\":"
	    "\"Connected\",\"lastActivityTime\":\"2026-11-25T10:00:00.123Z\","
	    "\"authentication\":{\"type\":\"selfSigned\",\"x509Thumbprint\":"
	    "{\"primaryThumbprint\":\"0123456789abcdef0123456789abcdef01234567\","
	    "\"secondaryThumbprint\":null}}}";

	hub_req_device_get("dev-01", &r);
	res = reduce(r, 200, NULL, dev, &t);
	ck_assert_int_eq(res->outcome, HUB_DONE);
	ck_assert_int_eq(t, 0);
	ck_assert_str_eq(res->device.id, "dev-01");
	ck_assert_str_eq(res->device.etag, "MTIz");
	ck_assert_int_eq(res->device.enabled, 0);
	ck_assert_int_eq(res->device.connected, 1);
	ck_assert_int_eq(res->device.auth, HUB_AUTH_SELFSIGNED);
	ck_assert_int_eq(res->device.last_activity, 1795600800);
	ck_assert_str_eq(res->device.primary_thumbprint,
	    "0123456789abcdef0123456789abcdef01234567");
	hub_result_free(res);

	static const struct { long st; const char *hdr; int outcome, tr; } c[] = {
		{ 429, "ThrottlingException", HUB_RETRY, 1 },
		{ 500, NULL, HUB_RETRY, 1 },
		{ 503, NULL, HUB_RETRY, 1 },
		{ 504, NULL, HUB_RETRY, 1 },
		{ 401, "IotHubUnauthorizedAccess", HUB_MISCONFIGURED, 0 },
		{ 403, NULL, HUB_MISCONFIGURED, 0 },
		{ 403, "IotHubQuotaExceeded", HUB_RETRY, 0 },
		{ 400, "InvalidProtocolVersion", HUB_MISCONFIGURED, 0 },
		{ 400, "ArgumentInvalid", HUB_REJECTED, 0 },
		{ 404, "DeviceNotFound", HUB_REJECTED, 0 },
		{ 409, "DeviceAlreadyExists", HUB_REJECTED, 0 },
		{ 412, "PreconditionFailed", HUB_REJECTED, 0 },
		{ 413, NULL, HUB_REJECTED, 0 },
		{ 301, NULL, HUB_MISCONFIGURED, 0 },
		{ 200, NULL, HUB_RETRY, 0 },	/* no body: invalid answer */
	};
	for (size_t i = 0; i < FC_ARRAY_LEN(c); i++) {
		res = reduce(r, c[i].st, c[i].hdr, NULL, &t);
		ck_assert_msg((int)res->outcome == c[i].outcome && t == c[i].tr,
		    "status %ld %s: outcome %d transient %d", c[i].st,
		    c[i].hdr ? c[i].hdr : "", res->outcome, t);
		ck_assert_int_eq(res->http_status, c[i].st);
		hub_result_free(res);
	}
	hub_req_free(r);

	/* a method's 504101 is the device's slowness: not retried inside */
	hub_req_method_invoke("dev-01", "m", NULL, 5, 0, &r);
	res = reduce(r, 504, "GatewayTimeout", NULL, &t);
	ck_assert_int_eq(res->outcome, HUB_RETRY);
	ck_assert_int_eq(t, 0);
	hub_result_free(res);
	res = reduce(r, 200, NULL, "{\"status\":201,\"payload\":{\"a\":1}}", &t);
	ck_assert_int_eq(res->outcome, HUB_DONE);
	ck_assert_int_eq(res->method_status, 201);
	ck_assert_int_eq(json_integer_value(json_object_get(res->method_payload,
	    "a")), 1);
	hub_result_free(res);
	res = reduce(r, 200, NULL, "{\"status\":\"201\"}", &t);
	ck_assert_int_eq(res->outcome, HUB_RETRY);
	ck_assert_str_eq(res->error.name, "InvalidAnswer");
	ck_assert_ptr_null(res->json);
	hub_result_free(res);
	hub_req_free(r);
}
END_TEST

static const char *hostile_devices[] = {
	"not json at all",
	"[]",
	"{}",
	"{\"deviceId\":12,\"status\":\"enabled\"}",
	"{\"deviceId\":\"dev-01\",\"status\":1}",
	"{\"deviceId\":\"dev-01\",\"status\":\"maybe\"}",
	"{\"deviceId\":\"dev/01\",\"status\":\"enabled\"}",
	"{\"deviceId\":\"dev-01\",\"status\":\"enabled\",\"etag\":7}",
	"{\"deviceId\":\"dev-01\",\"status\":\"enabled\",\"etag\":\"a\\\"b\"}",
	"{\"deviceId\":\"dev-01\",\"status\":\"enabled\",\"authentication\":"
	    "{\"type\":\"selfSigned\",\"x509Thumbprint\":{\"primaryThumbprint\":"
	    "\"zz\"}}}",
	"{\"deviceId\":\"dev-01\",\"status\":\"enabled\",\"authentication\":"
	    "{\"x509Thumbprint\":[]}}",
	"{\"deviceId\":\"dev-01\",\"deviceId\":\"dev-02\",\"status\":\"enabled\"}",
	"{\"deviceId\":\"dev-01\",\"status\":\"enabled\"",
};

START_TEST(answer_hostile_device)
{
	struct hub_req *r = NULL;
	struct hub_result *res;
	int t;

	hub_req_device_get("dev-01", &r);
	res = reduce(r, 200, NULL, hostile_devices[_i], &t);
	ck_assert_msg(res->outcome == HUB_RETRY, "accepted: %s",
	    hostile_devices[_i]);
	ck_assert_str_eq(res->error.name, "InvalidAnswer");
	ck_assert_int_eq(t, 0);
	ck_assert_ptr_null(res->json);
	ck_assert_ptr_null(res->device.raw);
	hub_result_free(res);
	hub_req_free(r);
}
END_TEST

START_TEST(answer_bulk_query)
{
	struct hub_device d[3];
	struct hub_bulk_entry e[3];
	struct hub_req *r = NULL;
	struct hub_result *res;
	struct hub_answer a;
	int t;
	const char *body = "{\"isSuccessful\":false,\"errors\":["
	    "{\"deviceId\":\"b\",\"errorCode\":\"DeviceNotFound\","
	    "\"errorStatus\":\"no such device\"},"
	    "{\"deviceId\":\"zzz\",\"errorCode\":\"DeviceNotFound\"},"
	    "{\"deviceId\":7},"
	    "{\"deviceId\":\"c\",\"errorCode\":412001}],\"warnings\":[]}";

	hub_device_init(&d[0], "a");
	hub_device_init(&d[1], "b");
	hub_device_init(&d[2], "c");
	for (int i = 0; i < 3; i++) {
		e[i].device = &d[i];
		e[i].mode = HUB_IMPORT_DELETE;
	}
	ck_assert_int_eq(hub_req_bulk(e, 3, &r), FC_OK);
	res = reduce(r, 400, NULL, body, &t);
	ck_assert_int_eq(res->outcome, HUB_DONE);
	ck_assert_uint_eq(res->nbulk, 3);
	ck_assert_uint_eq(res->nbulk_failed, 2);
	ck_assert(res->bulk[0].ok);
	ck_assert(!res->bulk[1].ok);
	ck_assert(hub_error_is(&res->bulk[1].error, HUB_E_DEVICE_NOT_FOUND));
	ck_assert_str_eq(res->bulk[1].error.message, "no such device");
	ck_assert(!res->bulk[2].ok);
	ck_assert(hub_error_is(&res->bulk[2].error, HUB_E_PRECONDITION_FAILED));
	hub_result_free(res);
	/* 400011 duplicate ids: a whole-call error */
	res = reduce(r, 400, "DeviceDefinedMultipleTimes",
	    "{\"Message\":\"ErrorCode:DeviceDefinedMultipleTimes;dup\"}", &t);
	ck_assert_int_eq(res->outcome, HUB_REJECTED);
	ck_assert(hub_error_is(&res->error, HUB_E_DEVICE_DEFINED_MULTIPLE));
	ck_assert_ptr_null(res->bulk);
	hub_result_free(res);
	res = reduce(r, 200, NULL, "{\"isSuccessful\":\"yes\"}", &t);
	ck_assert_int_eq(res->outcome, HUB_RETRY);
	hub_result_free(res);
	hub_req_free(r);

	hub_req_query("SELECT * FROM devices", 2, NULL, &r);
	memset(&a, 0, sizeof(a));
	a.status = 200;
	a.body = "[{\"deviceId\":\"a\"},{\"deviceId\":\"b\"}]";
	a.len = strlen(a.body);
	a.continuation = "next-page";
	a.retry_after_ms = -1;
	res = calloc(1, sizeof(*res));
	ck_assert_int_eq(hub_answer_reduce(r, &a, res), 0);
	ck_assert_int_eq(res->outcome, HUB_DONE);
	ck_assert_str_eq(res->continuation, "next-page");
	ck_assert_uint_eq(json_array_size(res->json), 2);
	hub_result_free(res);
	/* an oversized continuation header: refused, not a short result */
	a.bad_header = 1;
	res = calloc(1, sizeof(*res));
	hub_answer_reduce(r, &a, res);
	ck_assert_int_eq(res->outcome, HUB_RETRY);
	ck_assert_str_eq(res->error.name, "InvalidAnswer");
	hub_result_free(res);
	a.bad_header = 0;
	a.body = "{\"not\":\"an array\"}";
	a.len = strlen(a.body);
	res = calloc(1, sizeof(*res));
	hub_answer_reduce(r, &a, res);
	ck_assert_int_eq(res->outcome, HUB_RETRY);
	ck_assert_ptr_null(res->continuation);
	hub_result_free(res);
	/* a capped (truncated) answer */
	a.truncated = 1;
	a.status = 0;
	a.curl_code = 23;	/* CURLE_WRITE_ERROR */
	res = calloc(1, sizeof(*res));
	ck_assert_int_eq(hub_answer_reduce(r, &a, res), 0);
	ck_assert_int_eq(res->outcome, HUB_RETRY);
	ck_assert_str_eq(res->error.name, "AnswerTooLarge");
	hub_result_free(res);
	/* transport classes */
	a.truncated = 0;
	a.curl_code = 7;	/* CURLE_COULDNT_CONNECT */
	res = calloc(1, sizeof(*res));
	ck_assert_int_eq(hub_answer_reduce(r, &a, res), 1);
	ck_assert_int_eq(res->outcome, HUB_UNREACHABLE);
	hub_result_free(res);
	a.curl_code = 6;	/* CURLE_COULDNT_RESOLVE_HOST */
	res = calloc(1, sizeof(*res));
	ck_assert_int_eq(hub_answer_reduce(r, &a, res), 0);
	ck_assert_int_eq(res->outcome, HUB_MISCONFIGURED);
	hub_result_free(res);
	a.curl_code = 60;	/* CURLE_PEER_FAILED_VERIFICATION */
	res = calloc(1, sizeof(*res));
	ck_assert_int_eq(hub_answer_reduce(r, &a, res), 0);
	ck_assert_int_eq(res->outcome, HUB_MISCONFIGURED);
	hub_result_free(res);
	hub_req_free(r);
}
END_TEST

/* ---- pacing ------------------------------------------------------------- */

START_TEST(backoff_math)
{
	/* rnd 0: no wait; rnd max: the ceiling, doubling to the cap */
	ck_assert_int_eq(hub_backoff_ms(1, 500, 30000, -1, 0), 0);
	ck_assert_int_eq(hub_backoff_ms(1, 500, 30000, -1, UINT32_MAX), 500);
	ck_assert_int_eq(hub_backoff_ms(2, 500, 30000, -1, UINT32_MAX), 1000);
	ck_assert_int_eq(hub_backoff_ms(4, 500, 30000, -1, UINT32_MAX), 4000);
	ck_assert_int_eq(hub_backoff_ms(7, 500, 30000, -1, UINT32_MAX), 30000);
	ck_assert_int_eq(hub_backoff_ms(1000, 500, 30000, -1, UINT32_MAX),
	    30000);
	/* half way */
	ck_assert_int_le(abs(hub_backoff_ms(3, 500, 30000, -1, 1u << 31) -
	    1000), 1);
	/* Retry-After is a floor */
	ck_assert_int_eq(hub_backoff_ms(1, 500, 30000, 10000, 0), 10000);
	ck_assert_int_eq(hub_backoff_ms(9, 500, 30000, 10000, UINT32_MAX),
	    30000);
	/* full jitter: uniform-ish over [0, ceiling] */
	{
		int lo = 0, hi = 0;
		for (int i = 0; i < 10000; i++) {
			uint32_t r;
			RAND_bytes((unsigned char *)&r, sizeof(r));
			int d = hub_backoff_ms(3, 500, 30000, -1, r);
			ck_assert_int_ge(d, 0);
			ck_assert_int_le(d, 2000);
			lo += d < 1000;
			hi += d >= 1000;
		}
		ck_assert_int_gt(lo, 4000);
		ck_assert_int_gt(hi, 4000);
	}
}
END_TEST

START_TEST(bucket_math)
{
	struct hub_bucket b;
	int64_t now = 1000000;
	int n = 0;

	hub_bucket_init(&b, 10, 2, now);	/* 10/s, burst 2 */
	ck_assert_int_eq(hub_bucket_wait(&b, now), 0);
	hub_bucket_take(&b, now);
	ck_assert_int_eq(hub_bucket_wait(&b, now), 0);
	hub_bucket_take(&b, now);
	ck_assert_int_eq(hub_bucket_wait(&b, now), 100);
	ck_assert_int_eq(hub_bucket_wait(&b, now + 50), 50);
	ck_assert_int_eq(hub_bucket_wait(&b, now + 100), 0);
	/* over 10 simulated seconds at most burst + 10/s calls go through */
	hub_bucket_init(&b, 10, 2, now);
	for (int64_t t = now; t < now + 10000; t++)
		while (hub_bucket_wait(&b, t) == 0) {
			hub_bucket_take(&b, t);
			n++;
		}
	ck_assert_int_ge(n, 100);
	ck_assert_int_le(n, 102);
	/* registry: 100/min, burst 1 → 600 ms apart */
	hub_bucket_init(&b, 100 / 60.0, 1, now);
	hub_bucket_take(&b, now);
	ck_assert_int_eq(hub_bucket_wait(&b, now), 600);
	/* unlimited */
	hub_bucket_init(&b, 0, 0, now);
	for (int i = 0; i < 1000; i++)
		hub_bucket_take(&b, now);
	ck_assert_int_eq(hub_bucket_wait(&b, now), 0);
}
END_TEST

START_TEST(metrics_record)
{
	struct hub_metrics m;

	memset(&m, 0, sizeof(m));
	hub_metrics_attempt(&m, HUB_OP_TWIN_GET, 200, 3);
	hub_metrics_attempt(&m, HUB_OP_TWIN_GET, 429, 70);
	hub_metrics_attempt(&m, HUB_OP_TWIN_GET, 0, 99999);
	hub_metrics_attempt(&m, HUB_OP_TWIN_GET, 418, 5);
	ck_assert_uint_eq(m.attempts[HUB_OP_TWIN_GET][1], 1);
	ck_assert_uint_eq(m.attempts[HUB_OP_TWIN_GET][10], 1);
	ck_assert_uint_eq(m.attempts[HUB_OP_TWIN_GET][0], 1);
	ck_assert_uint_eq(m.attempts[HUB_OP_TWIN_GET][HUB_NSTATUS - 1], 1);
	ck_assert_uint_eq(m.latency[HUB_OP_TWIN_GET][0], 2);
	ck_assert_uint_eq(m.latency[HUB_OP_TWIN_GET][4], 1);
	ck_assert_uint_eq(m.latency[HUB_OP_TWIN_GET][HUB_NLATENCY - 1], 1);
	ck_assert_uint_eq(m.latency_sum_ms[HUB_OP_TWIN_GET], 3 + 70 + 99999 + 5);
	ck_assert_str_eq(hub_op_name(HUB_OP_BULK), "bulk");
	ck_assert_str_eq(hub_outcome_name(HUB_MISCONFIGURED), "misconfigured");
}
END_TEST

/* ---- engine against a real TLS server ----------------------------------- */

static char tmpdir[64];
static pid_t server_pid;
static int server_port;

/* A self-signed P-256 certificate for 127.0.0.1 made with OpenSSL. */
static void
make_cert(const char *certpath, const char *keypath)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *n;
	X509_EXTENSION *ext;
	FILE *f;

	ck_assert_ptr_nonnull(k);
	X509_set_version(x, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, k);
	n = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
	    (const unsigned char *)"127.0.0.1", -1, -1, 0);
	X509_set_issuer_name(x, n);
	ext = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name,
	    "IP:127.0.0.1");
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	ck_assert_int_gt(X509_sign(x, k, EVP_sha256()), 0);
	f = fopen(certpath, "w");
	PEM_write_X509(f, x);
	fclose(f);
	f = fopen(keypath, "w");
	PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	X509_free(x);
	EVP_PKEY_free(k);
}

static int
port_free(int port)
{
	struct sockaddr_in sa;
	int s = socket(AF_INET, SOCK_STREAM, 0), ok;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ok = bind(s, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(s);
	return ok;
}

static int
port_open(int port)
{
	struct sockaddr_in sa;
	int s = socket(AF_INET, SOCK_STREAM, 0), ok;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ok = connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(s);
	return ok;
}

/* openssl s_server -www answers every request with a 200 HTML page. */
static void
server_start(void)
{
	char cert[128], key[128], acc[32];

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/check_hub.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(cert, sizeof(cert), "%s/cert.pem", tmpdir);
	snprintf(key, sizeof(key), "%s/key.pem", tmpdir);
	make_cert(cert, key);
	for (int tries = 0; tries < 50; tries++) {
		uint32_t r;
		RAND_bytes((unsigned char *)&r, sizeof(r));
		server_port = 20000 + (int)(r % 40000);
		if (port_free(server_port))
			break;
	}
	snprintf(acc, sizeof(acc), "127.0.0.1:%d", server_port);
	server_pid = fork();
	ck_assert_int_ge(server_pid, 0);
	if (server_pid == 0) {
		int dn = open("/dev/null", O_RDWR);
		dup2(dn, 0);
		dup2(dn, 1);
		dup2(dn, 2);
		execlp("openssl", "openssl", "s_server", "-quiet", "-www",
		    "-accept", acc, "-cert", cert, "-key", key, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 100 && !port_open(server_port); i++)
		usleep(50000);
	ck_assert_msg(port_open(server_port), "openssl s_server did not start");
}

static void
server_stop(void)
{
	char cmd[128];

	if (server_pid > 0) {
		kill(server_pid, SIGTERM);
		waitpid(server_pid, NULL, 0);
		server_pid = 0;
	}
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	(void)!system(cmd);
}

static struct hub *
open_hub(const char *ca_file, size_t max_body, int attempts)
{
	struct hub_opts o;
	struct hub *h = NULL;
	char conn[256];

	hub_opts_default(&o);
	o.ca_file = ca_file;
	o.max_attempts = attempts;
	o.backoff_base_ms = 10;
	o.backoff_max_ms = 50;
	if (max_body > 0)
		o.max_body = max_body;
	snprintf(conn, sizeof(conn), "HostName=127.0.0.1:%d;"
	    "SharedAccessKeyName=iothubowner;SharedAccessKey=" KEY_B64,
	    server_port);
	ck_assert_int_eq(hub_open_string("test", conn, &o, &h), FC_OK);
	return h;
}

START_TEST(engine_tls_untrusted)
{
	struct hub *h;
	struct hub_req *r = NULL;
	struct hub_result *res = NULL;

	h = open_hub(NULL, 0, 3);
	hub_req_device_get("dev-01", &r);
	ck_assert_int_eq(hub_call(h, r, &res), FC_OK);
	ck_assert_int_eq(res->outcome, HUB_MISCONFIGURED);
	ck_assert_int_eq(res->attempts, 1);	/* not retried */
	ck_assert_int_eq(res->http_status, 0);
	hub_result_free(res);
	hub_close(h);
}
END_TEST

START_TEST(engine_non_json_and_cap)
{
	char ca[128];
	struct hub *h;
	struct hub_req *r = NULL;
	struct hub_result *res = NULL;
	struct hub_metrics m;

	snprintf(ca, sizeof(ca), "%s/cert.pem", tmpdir);
	/* trusted through ca_file: a 200 whose body is HTML */
	h = open_hub(ca, 0, 3);
	hub_req_device_get("dev-01", &r);
	hub_call(h, r, &res);
	ck_assert_int_eq(res->outcome, HUB_RETRY);
	ck_assert_str_eq(res->error.name, "InvalidAnswer");
	ck_assert_int_eq(res->http_status, 200);
	hub_result_free(res);
	hub_metrics_read(h, &m);
	ck_assert_uint_eq(m.calls[HUB_OP_DEVICE_GET][HUB_RETRY], 1);
	ck_assert_uint_eq(m.attempts[HUB_OP_DEVICE_GET][1], 1);
	ck_assert_uint_eq(m.sas_signed, 1);
	/* the token is reused for 55 minutes, then re-signed */
	fc_clock_set_offset(3000);
	hub_req_device_get("dev-01", &r);
	hub_call(h, r, &res);
	hub_result_free(res);
	hub_metrics_read(h, &m);
	ck_assert_uint_eq(m.sas_signed, 1);
	fc_clock_set_offset(3301);
	hub_req_device_get("dev-01", &r);
	hub_call(h, r, &res);
	hub_result_free(res);
	hub_metrics_read(h, &m);
	ck_assert_uint_eq(m.sas_signed, 2);
	/* a clock moved back past the token's start re-signs too */
	fc_clock_set_offset(-7200);
	hub_req_device_get("dev-01", &r);
	hub_call(h, r, &res);
	hub_result_free(res);
	hub_metrics_read(h, &m);
	ck_assert_uint_eq(m.sas_signed, 3);
	fc_clock_set_offset(0);
	hub_close(h);
	/* the same page over a 1 KB cap */
	h = open_hub(ca, 1024, 3);
	hub_req_device_get("dev-01", &r);
	hub_call(h, r, &res);
	ck_assert_int_eq(res->outcome, HUB_RETRY);
	ck_assert_str_eq(res->error.name, "AnswerTooLarge");
	hub_result_free(res);
	hub_close(h);
}
END_TEST

/* A failing call with debug logging: neither the key, the connection
 * string nor a token shows in what is logged. */
START_TEST(engine_no_secret_in_log)
{
	char logpath[128], *logbuf = NULL;
	size_t len = 0;
	struct hub *h;
	struct hub_req *r = NULL;
	struct hub_result *res = NULL;
	int saved, fd;

	snprintf(logpath, sizeof(logpath), "%s/log", tmpdir);
	fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	saved = dup(2);
	dup2(fd, 2);
	log_set_level(LOG_LVL_DEBUG);
	h = open_hub(NULL, 0, 2);
	hub_req_device_get("dev-01", &r);
	hub_call(h, r, &res);
	hub_result_free(res);
	hub_close(h);
	/* a bad connection string too */
	ck_assert_int_ne(hub_open_string("test", "HostName=a/b;"
	    "SharedAccessKeyName=p;SharedAccessKey=" KEY_B64, NULL, &h), FC_OK);
	log_set_level(LOG_LVL_INFO);
	dup2(saved, 2);
	close(saved);
	close(fd);
	ck_assert_int_eq(fc_file_read(logpath, 1 << 20, &logbuf, &len), FC_OK);
	ck_assert_msg(strstr(logbuf, "hub test") != NULL, "nothing logged");
	ck_assert_ptr_null(strstr(logbuf, KEY_B64));
	ck_assert_ptr_null(strstr(logbuf, "AAECAwQF"));
	ck_assert_ptr_null(strstr(logbuf, "SharedAccessSignature"));
	ck_assert_ptr_null(strstr(logbuf, "sig="));
	ck_assert_ptr_null(strstr(logbuf, "SharedAccessKey="));
	free(logbuf);
}
END_TEST

static void
count_done_only(struct hub_result *res, void *arg)
{
	(*(int *)arg)++;
	hub_result_free(res);
}

/* hub_wakeup from another thread ends a hub_poll; hub_fdset drives a call
 * from an external select() loop. */
static void *
waker(void *arg)
{
	usleep(200000);
	hub_wakeup(arg);
	return NULL;
}

START_TEST(engine_wakeup_fdset)
{
	char ca[128];
	struct hub *h;
	struct hub_req *r = NULL;
	pthread_t th;
	int64_t t0;
	int t, got = 0;

	snprintf(ca, sizeof(ca), "%s/cert.pem", tmpdir);
	h = open_hub(ca, 0, 1);
	t0 = hub_mono_ms();
	pthread_create(&th, NULL, waker, h);
	hub_poll(h, 20000);
	pthread_join(th, NULL);
	ck_assert_int_lt(hub_mono_ms() - t0, 10000);

	hub_req_twin_get("dev-01", &r);
	hub_submit(h, r, count_done_only, &got);
	while (hub_perform(h, &t) > 0) {
		fd_set rd, wr, ex;
		struct timeval tv;
		int maxfd = -1;

		FD_ZERO(&rd);
		FD_ZERO(&wr);
		FD_ZERO(&ex);
		ck_assert_int_eq(hub_fdset(h, &rd, &wr, &ex, &maxfd), FC_OK);
		tv.tv_sec = 0;
		tv.tv_usec = (t < 0 || t > 100 ? 100 : t) * 1000;
		select(maxfd + 1, &rd, &wr, &ex, &tv);
	}
	ck_assert_int_eq(got, 1);
	hub_close(h);
}
END_TEST

/* hub_open from a [hub] section: the secret file must not be readable by
 * others; rates and ca_file are taken from the section. */
START_TEST(engine_open_cfg)
{
	char path[128], ca[128], conn[256];
	struct cfg_hub ch;
	struct hub *h = NULL;

	snprintf(path, sizeof(path), "%s/hub.conn", tmpdir);
	snprintf(ca, sizeof(ca), "%s/cert.pem", tmpdir);
	snprintf(conn, sizeof(conn), "HostName=127.0.0.1:%d;"
	    "SharedAccessKeyName=iothubowner;SharedAccessKey=" KEY_B64 "\n",
	    server_port);
	memset(&ch, 0, sizeof(ch));
	ch.name = "";
	ch.connection_string_file = path;
	ch.ca_file = ca;
	ch.rate_per_second = 10;
	ch.registry_per_minute = 100;
	ck_assert_int_eq(fc_file_write_atomic(path, conn, strlen(conn), 0644),
	    FC_OK);
	ck_assert_int_eq(hub_open(&ch, &h), FC_EPERM);
	chmod(path, 0600);
	ck_assert_int_eq(hub_open(&ch, &h), FC_OK);
	ck_assert_int_eq(strncmp(hub_host(h), "127.0.0.1:", 10), 0);
	ck_assert_int_eq(h->opts.rate_per_second, 10);
	ck_assert_int_eq(h->opts.burst_calls, 1);
	ck_assert_str_eq(h->ca_file, ca);
	hub_close(h);
	ch.ca_file = "/nonexistent/ca.pem";
	ck_assert_int_eq(hub_open(&ch, &h), FC_EIO);
	ch.connection_string_file = "/nonexistent/conn";
	ck_assert_int_ne(hub_open(&ch, &h), FC_OK);
}
END_TEST

/* Many calls in flight on one thread, a callback that submits more, and
 * hub_close() completing what is left. */
static int ndone;

static void
count_done(struct hub_result *res, void *arg)
{
	struct hub *h = arg;
	struct hub_req *r = NULL;

	ndone++;
	if (res->user == (void *)1 && hub_req_device_get("again", &r) == FC_OK)
		hub_submit(h, r, count_done, h);
	hub_result_free(res);
}

START_TEST(engine_async_close)
{
	char ca[128];
	struct hub *h;
	struct hub_req *r = NULL;
	int t;

	snprintf(ca, sizeof(ca), "%s/cert.pem", tmpdir);
	h = open_hub(ca, 0, 1);
	ndone = 0;
	for (int i = 0; i < 20; i++) {
		hub_req_twin_get("dev-01", &r);
		hub_req_set_user(r, i == 0 ? (void *)1 : NULL);
		ck_assert_int_eq(hub_submit(h, r, count_done, h), FC_OK);
	}
	ck_assert_uint_eq(hub_pending(h), 20);
	hub_run(h);
	ck_assert_int_eq(ndone, 21);
	for (int i = 0; i < 5; i++) {
		hub_req_twin_get("dev-01", &r);
		hub_submit(h, r, count_done, h);
	}
	hub_perform(h, &t);
	hub_close(h);
	ck_assert_int_eq(ndone, 26);
}
END_TEST

static Suite *
hub_suite(void)
{
	Suite *s = suite_create("hub");
	TCase *tc;

	tc = tcase_create("sas");
	tcase_add_test(tc, sas_vector_service);
	tcase_add_test(tc, sas_vector_device);
	tcase_add_test(tc, sas_random_key_port);
	tcase_add_test(tc, pct_encode);
	suite_add_tcase(s, tc);

	tc = tcase_create("conn");
	tcase_add_test(tc, conn_good);
	tcase_add_loop_test(tc, conn_bad, 0, (int)FC_ARRAY_LEN(bad_conns));
	tcase_add_test(tc, conn_hostile);
	suite_add_tcase(s, tc);

	tc = tcase_create("req");
	tcase_add_test(tc, req_device);
	tcase_add_test(tc, req_bulk);
	tcase_add_test(tc, req_twin_method_query);
	suite_add_tcase(s, tc);

	tc = tcase_create("answer");
	tcase_add_test(tc, error_shapes);
	tcase_add_test(tc, answer_classes);
	tcase_add_loop_test(tc, answer_hostile_device, 0,
	    (int)FC_ARRAY_LEN(hostile_devices));
	tcase_add_test(tc, answer_bulk_query);
	suite_add_tcase(s, tc);

	tc = tcase_create("pacing");
	tcase_add_test(tc, backoff_math);
	tcase_add_test(tc, bucket_math);
	tcase_add_test(tc, metrics_record);
	suite_add_tcase(s, tc);

	tc = tcase_create("engine");
	tcase_add_unchecked_fixture(tc, server_start, server_stop);
	tcase_add_test(tc, engine_tls_untrusted);
	tcase_add_test(tc, engine_non_json_and_cap);
	tcase_add_test(tc, engine_no_secret_in_log);
	tcase_add_test(tc, engine_async_close);
	tcase_add_test(tc, engine_open_cfg);
	tcase_add_test(tc, engine_wakeup_fdset);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(hub_suite());
	int failed;

	log_init("check_hub", LOG_LVL_INFO);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
