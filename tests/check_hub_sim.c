/*
 * check_hub_sim.c — the IoT Hub client against the real simulator
 * (fleetcert-hubsim) over TLS: every operation, every outcome class, 429
 * storms and connection resets (back-off and Retry-After, read from the
 * simulator's call log), the token buckets (count and spacing of calls),
 * TLS verification against an untrusted certificate. The simulator runs
 * with a certificate made here with OpenSSL, on a port it picks itself.
 */
#include "fc_build.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <check.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "hub_int.h"
#include "log.h"

#define OWNER_KEY "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define READ_KEY  "HxwdHhscGRgXFhUUExIREA8ODQwLCgkIBwYFBAMCAQA="
#define OTHER_KEY "ZGlmZmVyZW50IGtleSBkaWZmZXJlbnQga2V5IDEyMzQ="
#define THUMB1 "0123456789ABCDEF0123456789ABCDEF01234567"
#define THUMB2 "FEDCBA9876543210FEDCBA9876543210FEDCBA98"

static char dir[64], simbin[512], certpath[128];
static char ctl_token[65];
static pid_t sim_pid;
static int sim_port;
static int quotas_on;	/* S1 quotas, windows 30 times shorter */

/* ---- the simulator ------------------------------------------------------ */

static void
make_cert(const char *cp, const char *kp)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *n;
	X509_EXTENSION *ext;
	FILE *f;

	X509_set_version(x, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 2);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, k);
	n = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
	    (const unsigned char *)"127.0.0.1", -1, -1, 0);
	X509_set_issuer_name(x, n);
	ext = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name,
	    "IP:127.0.0.1, DNS:localhost");
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	X509_sign(x, k, EVP_sha256());
	f = fopen(cp, "w");
	PEM_write_X509(f, x);
	fclose(f);
	f = fopen(kp, "w");
	PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	X509_free(x);
	EVP_PKEY_free(k);
}

static int
find_sim(void)
{
	const char *b = getenv("top_builddir");
	const char *cand[] = { "fleetcert-hubsim", "src/fleetcert-hubsim",
	    "src/hubsim/fleetcert-hubsim" };

	for (size_t i = 0; i < FC_ARRAY_LEN(cand); i++) {
		snprintf(simbin, sizeof(simbin), "%s/%s", b != NULL ? b : ".",
		    cand[i]);
		if (access(simbin, X_OK) == 0)
			return 1;
	}
	return 0;
}

static void
sim_start(void)
{
	const char *q[] = { "--quotas", "off", "--tier", "S1",
	    "--time-scale", "1" };
	char keyp[128], portf[128], tokf[128], pol1[128], pol2[128], buf[32];
	char cmd[2048], fix[128], root[128];
	unsigned char rb[16];
	FILE *f;

	sim_port = 0;
	snprintf(dir, sizeof(dir), "/tmp/check_hub_sim.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(certpath, sizeof(certpath), "%s/sim.pem", dir);
	snprintf(keyp, sizeof(keyp), "%s/sim.key", dir);
	snprintf(portf, sizeof(portf), "%s/port", dir);
	snprintf(tokf, sizeof(tokf), "%s/control.token", dir);
	make_cert(certpath, keyp);
	RAND_bytes(rb, sizeof(rb));
	fc_hex(rb, sizeof(rb), ctl_token, 0);
	f = fopen(tokf, "w");
	fputs(ctl_token, f);
	fclose(f);
	chmod(tokf, 0600);
	/* Two simulated devices (m-000001, m-000002), online, under a
	 * device CA made here. */
	snprintf(fix, sizeof(fix), "%s/fleet.json", dir);
	snprintf(root, sizeof(root), "%s/root.pem", dir);
	snprintf(cmd, sizeof(cmd), "openssl req -x509 -newkey ec -pkeyopt "
	    "ec_paramgen_curve:P-256 -nodes -keyout %s/root.key -out %s "
	    "-days 2 -subj /CN=check_hub_sim -addext "
	    "basicConstraints=critical,CA:TRUE -addext "
	    "keyUsage=critical,keyCertSign,cRLSign >/dev/null 2>&1 && "
	    "%s gen-fleet --count 2 --prefix m- --ca-cert %s --ca-key "
	    "%s/root.key --out %s 2>/dev/null", dir, root, simbin, root, dir,
	    fix);
	ck_assert_int_eq(system(cmd), 0);
	snprintf(pol1, sizeof(pol1), "iothubowner=%s", OWNER_KEY);
	snprintf(pol2, sizeof(pol2), "registryRead=%s", READ_KEY);
	sim_pid = fork();
	ck_assert_int_ge(sim_pid, 0);
	if (sim_pid == 0) {
		int dn = open("/dev/null", O_RDWR);
		dup2(dn, 0);
		dup2(dn, 1);
		if (getenv("HUBSIM_VERBOSE") == NULL)
			dup2(dn, 2);
		execl(simbin, simbin, "--cert", certpath, "--key", keyp,
		    "--policy", pol1, "--policy", pol2, "--listen",
		    "127.0.0.1:0", "--port-file", portf, "--control-token",
		    tokf, q[0], quotas_on ? "on" : "off", q[2], q[3], q[4],
		    quotas_on ? "30" : "1", "--log-level", "warn",
		    "--devices", fix, "--trust-root", root, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 200; i++) {
		f = fopen(portf, "r");
		if (f != NULL) {
			if (fgets(buf, sizeof(buf), f) != NULL)
				sim_port = atoi(buf);
			fclose(f);
		}
		if (sim_port > 0)
			break;
		usleep(50000);
	}
	ck_assert_msg(sim_port > 0, "the simulator did not start");
}

static void
sim_stop(void)
{
	char cmd[128];

	if (sim_pid > 0) {
		kill(sim_pid, SIGTERM);
		waitpid(sim_pid, NULL, 0);
		sim_pid = 0;
	}
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	(void)!system(cmd);
}

static size_t
ctl_body(char *p, size_t s, size_t n, void *arg)
{
	char **b = arg;
	size_t old = *b != NULL ? strlen(*b) : 0;
	char *nb = realloc(*b, old + s * n + 1);

	memcpy(nb + old, p, s * n);
	nb[old + s * n] = '\0';
	*b = nb;
	return s * n;
}

/* A call to the simulator's control interface; returns its JSON answer. */
static json_t *
ctl(const char *method, const char *path, const char *body)
{
	CURL *e = curl_easy_init();
	struct curl_slist *h = NULL;
	char url[256], auth[128], *out = NULL;
	long st = 0;
	json_t *j;

	snprintf(url, sizeof(url), "https://127.0.0.1:%d/_sim%s", sim_port,
	    path);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", ctl_token);
	h = curl_slist_append(h, auth);
	h = curl_slist_append(h, "Content-Type: application/json");
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_CAINFO, certpath);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
	if (body != NULL)
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, ctl_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &out);
	ck_assert_int_eq(curl_easy_perform(e), CURLE_OK);
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &st);
	ck_assert_msg(st == 200, "control %s %s: HTTP %ld %s", method, path,
	    st, out ? out : "");
	j = json_loads(out, 0, NULL);
	ck_assert_ptr_nonnull(j);
	free(out);
	curl_slist_free_all(h);
	curl_easy_cleanup(e);
	return j;
}

static void
faults(const char *body)
{
	json_decref(body != NULL ? ctl("POST", "/faults", body) :
	    ctl("DELETE", "/faults", NULL));
}

/* The call log entries after seq since for device id (NULL: all). */
static json_t *
calls_for(unsigned long since, const char *id)
{
	char path[64];
	json_t *all, *a = json_array(), *c;
	size_t i;

	snprintf(path, sizeof(path), "/calls?since=%lu", since);
	all = ctl("GET", path, NULL);
	json_array_foreach(json_object_get(all, "calls"), i, c) {
		if (id == NULL || strcmp(json_string_value(json_object_get(c,
		    "deviceId")), id) == 0)
			json_array_append(a, c);
	}
	json_decref(all);
	return a;
}

static unsigned long
calls_last(void)
{
	json_t *j = ctl("GET", "/calls?since=999999999999", NULL);
	unsigned long n = (unsigned long)json_integer_value(
	    json_object_get(j, "last"));

	json_decref(j);
	return n;
}

static double
call_time(const json_t *a, size_t i)
{
	return json_real_value(json_object_get(json_array_get(a, i), "time"));
}

/* ---- helpers ------------------------------------------------------------ */

static struct hub *
hub_with(const char *policy, const char *key, const char *ca,
    const struct hub_opts *base)
{
	struct hub_opts o;
	struct hub *h = NULL;
	char conn[256];

	if (base != NULL)
		o = *base;
	else {
		hub_opts_default(&o);
		o.backoff_base_ms = 50;
		o.backoff_max_ms = 400;
	}
	o.ca_file = ca;
	snprintf(conn, sizeof(conn), "HostName=127.0.0.1:%d;"
	    "SharedAccessKeyName=%s;SharedAccessKey=%s", sim_port, policy, key);
	ck_assert_int_eq(hub_open_string("sim", conn, &o, &h), FC_OK);
	return h;
}

static struct hub *
owner(void)
{
	return hub_with("iothubowner", OWNER_KEY, certpath, NULL);
}

static struct hub_result *
call(struct hub *h, enum fc_err built, struct hub_req *r)
{
	struct hub_result *res = NULL;

	ck_assert_int_eq(built, FC_OK);
	ck_assert_int_eq(hub_call(h, r, &res), FC_OK);
	return res;
}

#define CALL(h, builder) ({ struct hub_req *r_ = NULL; \
	enum fc_err e_ = builder; call(h, e_, r_); })

static void
expect(struct hub_result *res, enum hub_outcome o, int code)
{
	ck_assert_msg(res->outcome == o, "%s: outcome %s, want %s (HTTP %ld %s "
	    "%d %s)", hub_op_name(res->op), hub_outcome_name(res->outcome),
	    hub_outcome_name(o), res->http_status, res->error.name,
	    res->error.code, res->error.message);
	if (code != 0)
		ck_assert_msg(hub_error_is(&res->error, code), "%s: error %d %s, "
		    "want %d", hub_op_name(res->op), res->error.code,
		    res->error.name, code);
}

static void
create_device(struct hub *h, const char *id)
{
	struct hub_device d;
	struct hub_result *res;

	hub_device_init(&d, id);
	d.auth = HUB_AUTH_SELFSIGNED;
	strcpy(d.primary_thumbprint, THUMB1);
	res = CALL(h, hub_req_device_create(&d, &r_));
	expect(res, HUB_DONE, 0);
	hub_result_free(res);
}

static void
storm_done(struct hub_result *res, void *arg)
{
	*(struct hub_result **)arg = res;
}

static void
count_ok(struct hub_result *res, void *arg)
{
	if (res->outcome == HUB_DONE)
		(*(int *)arg)++;
	hub_result_free(res);
}

/* ---- every operation ---------------------------------------------------- */

START_TEST(ops_registry)
{
	struct hub *h = owner();
	struct hub_result *res, *got;
	struct hub_device d, stale;
	const char *id = "reg#1?%+:dev";	/* needs percent-encoding */

	hub_device_init(&d, id);
	d.auth = HUB_AUTH_SELFSIGNED;
	strcpy(d.primary_thumbprint, THUMB1);
	res = CALL(h, hub_req_device_create(&d, &r_));
	expect(res, HUB_DONE, 0);
	ck_assert_str_eq(res->device.id, id);
	ck_assert(res->device.enabled);
	hub_result_free(res);
	/* create again: 409001 */
	res = CALL(h, hub_req_device_create(&d, &r_));
	expect(res, HUB_REJECTED, HUB_E_DEVICE_ALREADY_EXISTS);
	ck_assert_int_eq(res->http_status, 409);
	hub_result_free(res);

	got = CALL(h, hub_req_device_get(id, &r_));
	expect(got, HUB_DONE, 0);
	ck_assert_str_ne(got->device.etag, "");
	ck_assert_int_eq(got->device.auth, HUB_AUTH_SELFSIGNED);
	ck_assert_int_eq(strcasecmp(got->device.primary_thumbprint, THUMB1), 0);
	hub_device_copy(&stale, &got->device);

	/* thumbprint roll: stage the new one as secondary, then promote */
	res = CALL(h, hub_req_thumbprint_stage(&got->device, THUMB2, &r_));
	expect(res, HUB_DONE, 0);
	ck_assert_int_eq(strcasecmp(res->device.secondary_thumbprint, THUMB2),
	    0);
	ck_assert_int_eq(strcasecmp(res->device.primary_thumbprint, THUMB1), 0);
	hub_device_clear(&got->device);
	hub_device_copy(&got->device, &res->device);
	hub_result_free(res);
	/* a stale etag: 412001, quoted If-Match honoured */
	res = CALL(h, hub_req_device_disable(&stale, "stale", &r_));
	expect(res, HUB_REJECTED, HUB_E_PRECONDITION_FAILED);
	hub_result_free(res);
	res = CALL(h, hub_req_thumbprint_promote(&got->device, THUMB2, &r_));
	expect(res, HUB_DONE, 0);
	ck_assert_int_eq(strcasecmp(res->device.primary_thumbprint, THUMB2), 0);
	ck_assert_str_eq(res->device.secondary_thumbprint, "");
	hub_device_clear(&got->device);
	hub_device_copy(&got->device, &res->device);
	hub_result_free(res);

	/* disable with a reason */
	res = CALL(h, hub_req_device_disable(&got->device, "revoked by test",
	    &r_));
	expect(res, HUB_DONE, 0);
	ck_assert(!res->device.enabled);
	ck_assert_str_eq(res->device.status_reason, "revoked by test");
	hub_result_free(res);
	res = CALL(h, hub_req_device_get(id, &r_));
	expect(res, HUB_DONE, 0);
	ck_assert(!res->device.enabled);
	/* delete with the stale etag, then with the current one */
	hub_result_free(CALL(h, hub_req_device_delete(id, stale.etag, &r_)));
	{
		struct hub_result *del = CALL(h, hub_req_device_delete(id,
		    res->device.etag, &r_));
		expect(del, HUB_DONE, 0);
		hub_result_free(del);
	}
	hub_result_free(res);
	res = CALL(h, hub_req_device_get(id, &r_));
	expect(res, HUB_REJECTED, HUB_E_DEVICE_NOT_FOUND);
	hub_result_free(res);
	hub_device_clear(&stale);
	hub_result_free(got);
	hub_close(h);
}
END_TEST

START_TEST(ops_twin_method)
{
	struct hub *h = owner();
	struct hub_result *res;
	json_t *desired = json_pack("{s:{s:s}}", "fleetcert", "serial", "01ab");
	int64_t v0;

	create_device(h, "twin-01");
	res = CALL(h, hub_req_twin_get("twin-01", &r_));
	expect(res, HUB_DONE, 0);
	ck_assert_str_ne(res->twin_etag, "");
	ck_assert_str_eq(res->device.id, "twin-01");
	v0 = res->twin_version;
	{
		/* stale twin etag: 412001 */
		struct hub_result *p = CALL(h, hub_req_twin_patch_desired(
		    "twin-01", desired, "not-the-etag", &r_));
		expect(p, HUB_REJECTED, HUB_E_PRECONDITION_FAILED);
		hub_result_free(p);
		p = CALL(h, hub_req_twin_patch_desired("twin-01", desired,
		    res->twin_etag, &r_));
		expect(p, HUB_DONE, 0);
		ck_assert_int_gt(p->twin_version, v0);
		hub_result_free(p);
		p = CALL(h, hub_req_twin_patch_desired("twin-01", desired,
		    "*", &r_));
		expect(p, HUB_DONE, 0);
		hub_result_free(p);
	}
	hub_result_free(res);
	res = CALL(h, hub_req_twin_get("twin-01", &r_));
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(
	    json_object_get(json_object_get(res->json, "properties"),
	    "desired"), "fleetcert"), "serial")), "01ab");
	hub_result_free(res);
	res = CALL(h, hub_req_twin_get("no-such-twin", &r_));
	expect(res, HUB_REJECTED, HUB_E_DEVICE_NOT_FOUND);
	hub_result_free(res);

	/* methods: unknown device 404001; a registry-only device is never
	 * online: 404103 */
	res = CALL(h, hub_req_method_invoke("no-such-dev", "fleetcertCsr",
	    NULL, 5, 0, &r_));
	expect(res, HUB_REJECTED, HUB_E_DEVICE_NOT_FOUND);
	hub_result_free(res);
	res = CALL(h, hub_req_method_invoke("twin-01", "fleetcertCsr",
	    desired, 5, 0, &r_));
	expect(res, HUB_REJECTED, HUB_E_DEVICE_NOT_ONLINE);
	ck_assert_int_eq(res->http_status, 404);
	hub_result_free(res);
	json_decref(desired);
	hub_close(h);
}
END_TEST

/* Methods on simulated devices: the device's status is not HTTP's; a
 * device slower than responseTimeout is 504101 and not resent; an offline
 * device is 404103 (after connectTimeout). */
START_TEST(ops_method_devices)
{
	struct hub *h = owner();
	struct hub_result *res;
	json_t *j;

	res = CALL(h, hub_req_method_invoke("m-000001", "noSuchMethod", NULL,
	    5, 0, &r_));
	expect(res, HUB_DONE, 0);
	ck_assert_int_eq(res->http_status, 200);
	ck_assert_int_eq(res->method_status, 501);
	hub_result_free(res);

	json_decref(ctl("POST", "/devices/m-000001/behaviour",
	    "{\"slowMs\":6000}"));
	res = CALL(h, hub_req_method_invoke("m-000001", "noSuchMethod", NULL,
	    5, 0, &r_));
	expect(res, HUB_RETRY, HUB_E_GATEWAY_TIMEOUT);
	ck_assert_int_eq(res->http_status, 504);
	ck_assert_int_eq(res->attempts, 1);
	hub_result_free(res);
	json_decref(ctl("POST", "/devices/m-000001/behaviour",
	    "{\"slowMs\":0}"));

	j = ctl("POST", "/devices/m-000002/online", "{\"online\":false}");
	json_decref(j);
	res = CALL(h, hub_req_method_invoke("m-000002", "noSuchMethod", NULL,
	    5, 1, &r_));
	expect(res, HUB_REJECTED, HUB_E_DEVICE_NOT_ONLINE);
	hub_result_free(res);
	json_decref(ctl("POST", "/devices/m-000002/online",
	    "{\"online\":true}"));
	hub_close(h);
}
END_TEST

/* Keep-alive: 40 calls one after another open one connection. */
START_TEST(connection_reuse)
{
	struct hub *h = owner();
	struct hub_metrics m;

	create_device(h, "reuse-01");
	for (int i = 0; i < 40; i++)
		hub_result_free(CALL(h, hub_req_twin_get("reuse-01", &r_)));
	hub_metrics_read(h, &m);
	ck_assert_uint_eq(m.calls[HUB_OP_TWIN_GET][HUB_DONE], 40);
	ck_assert_uint_eq(m.connects, 1);
	hub_close(h);
}
END_TEST

START_TEST(ops_bulk_query)
{
	struct hub *h = owner();
	struct hub_result *res;
	struct hub_device d[5];
	struct hub_bulk_entry e[5];
	char id[32], *cont = NULL;
	size_t total = 0, pages = 0;

	for (int i = 0; i < 5; i++) {
		snprintf(id, sizeof(id), "bulk-%d", i);
		hub_device_init(&d[i], id);
		d[i].auth = HUB_AUTH_SELFSIGNED;
		strcpy(d[i].primary_thumbprint, THUMB1);
		e[i].device = &d[i];
		e[i].mode = HUB_IMPORT_CREATE;
	}
	res = CALL(h, hub_req_bulk(e, 5, &r_));
	expect(res, HUB_DONE, 0);
	ck_assert_uint_eq(res->nbulk, 5);
	ck_assert_uint_eq(res->nbulk_failed, 0);
	hub_result_free(res);
	/* again: every entry exists */
	res = CALL(h, hub_req_bulk(e, 5, &r_));
	expect(res, HUB_DONE, 0);
	ck_assert_uint_eq(res->nbulk_failed, 5);
	ck_assert(hub_error_is(&res->bulk[3].error,
	    HUB_E_DEVICE_ALREADY_EXISTS));
	hub_result_free(res);

	/* query in pages of 2 */
	do {
		res = CALL(h, hub_req_query("SELECT * FROM devices WHERE "
		    "deviceId >= 'bulk-' AND deviceId < 'bulk.'", 2, cont, &r_));
		expect(res, HUB_DONE, 0);
		ck_assert_uint_le(json_array_size(res->json), 2);
		total += json_array_size(res->json);
		pages++;
		free(cont);
		cont = res->continuation != NULL ?
		    strdup(res->continuation) : NULL;
		hub_result_free(res);
	} while (cont != NULL && pages < 20);
	ck_assert_uint_ge(pages, 3);

	/* disable with stale etags for two of them: per-entry failures */
	for (int i = 0; i < 5; i++) {
		d[i].enabled = 0;
		snprintf(d[i].status_reason, sizeof(d[i].status_reason),
		    "bulk revoke");
		snprintf(d[i].etag, sizeof(d[i].etag), "%s",
		    i < 2 ? "stale" : "*");
		e[i].mode = i < 2 ? HUB_IMPORT_UPDATE_IF_MATCH_ETAG :
		    HUB_IMPORT_UPDATE;
	}
	res = CALL(h, hub_req_bulk(e, 5, &r_));
	expect(res, HUB_DONE, 0);
	ck_assert_uint_eq(res->nbulk_failed, 2);
	ck_assert(!res->bulk[0].ok && !res->bulk[1].ok && res->bulk[4].ok);
	ck_assert(hub_error_is(&res->bulk[0].error, HUB_E_PRECONDITION_FAILED));
	hub_result_free(res);
	res = CALL(h, hub_req_device_get("bulk-4", &r_));
	ck_assert(!res->device.enabled);
	hub_result_free(res);
	for (int i = 0; i < 5; i++) {
		e[i].mode = HUB_IMPORT_DELETE;
		d[i].etag[0] = '\0';
	}
	res = CALL(h, hub_req_bulk(e, 5, &r_));
	expect(res, HUB_DONE, 0);
	ck_assert_uint_eq(res->nbulk_failed, 0);
	hub_result_free(res);
	res = CALL(h, hub_req_device_get("bulk-2", &r_));
	expect(res, HUB_REJECTED, HUB_E_DEVICE_NOT_FOUND);
	hub_result_free(res);
	ck_assert_uint_eq(total, 5);
	hub_close(h);
}
END_TEST

/* ---- outcome classes ---------------------------------------------------- */

START_TEST(classes_misconfigured_unreachable)
{
	struct hub *h;
	struct hub_result *res;
	struct hub_opts o;
	char conn[256];

	/* wrong key: 401 */
	h = hub_with("iothubowner", OTHER_KEY, certpath, NULL);
	res = CALL(h, hub_req_device_get("x", &r_));
	expect(res, HUB_MISCONFIGURED, 0);
	ck_assert_int_eq(res->http_status, 401);
	ck_assert_int_eq(res->attempts, 1);
	hub_result_free(res);
	hub_close(h);
	/* a policy without RegistryWrite */
	h = hub_with("registryRead", READ_KEY, certpath, NULL);
	res = CALL(h, hub_req_device_get("nobody", &r_));
	expect(res, HUB_REJECTED, HUB_E_DEVICE_NOT_FOUND);
	hub_result_free(res);
	res = CALL(h, hub_req_device_delete("nobody", NULL, &r_));
	expect(res, HUB_MISCONFIGURED, 0);
	hub_result_free(res);
	hub_close(h);
	/* TLS: the simulator's certificate is not trusted without ca_file */
	h = hub_with("iothubowner", OWNER_KEY, NULL, NULL);
	res = CALL(h, hub_req_device_get("x", &r_));
	expect(res, HUB_MISCONFIGURED, 0);
	ck_assert_int_eq(res->http_status, 0);
	ck_assert_int_eq(res->attempts, 1);
	hub_result_free(res);
	hub_close(h);
	/* an unrelated ca_file adds a trust anchor; it does not trust all */
	{
		char op[128], ok[128];
		snprintf(op, sizeof(op), "%s/other.pem", dir);
		snprintf(ok, sizeof(ok), "%s/other.key", dir);
		make_cert(op, ok);
		h = hub_with("iothubowner", OWNER_KEY, op, NULL);
		res = CALL(h, hub_req_device_get("x", &r_));
		expect(res, HUB_MISCONFIGURED, 0);
		ck_assert_int_eq(res->http_status, 0);
		hub_result_free(res);
		hub_close(h);
	}
	/* a host that does not resolve */
	hub_opts_default(&o);
	ck_assert_int_eq(hub_open_string("sim", "HostName=no-such-hub.invalid;"
	    "SharedAccessKeyName=iothubowner;SharedAccessKey=" OWNER_KEY, &o,
	    &h), FC_OK);
	res = CALL(h, hub_req_device_get("x", &r_));
	expect(res, HUB_MISCONFIGURED, 0);
	hub_result_free(res);
	hub_close(h);
	/* nobody listening: retried, then unreachable with a delay. The
	 * port is held by a bound socket that never listens, so no other
	 * test's server can take it meanwhile. */
	{
		struct sockaddr_in sa;
		socklen_t salen = sizeof(sa);
		int fd = socket(AF_INET, SOCK_STREAM, 0);

		ck_assert_int_ge(fd, 0);
		memset(&sa, 0, sizeof(sa));
		sa.sin_family = AF_INET;
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
		ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &salen), 0);
		hub_opts_default(&o);
		o.max_attempts = 3;
		o.backoff_base_ms = 20;
		o.backoff_max_ms = 100;
		snprintf(conn, sizeof(conn), "HostName=127.0.0.1:%d;"
		    "SharedAccessKeyName=iothubowner;SharedAccessKey=" OWNER_KEY,
		    ntohs(sa.sin_port));
		ck_assert_int_eq(hub_open_string("sim", conn, &o, &h), FC_OK);
		res = CALL(h, hub_req_device_get("x", &r_));
		expect(res, HUB_UNREACHABLE, 0);
		ck_assert_int_eq(res->attempts, 3);
		ck_assert_int_ge(res->retry_after_ms, 0);
		hub_result_free(res);
		hub_close(h);
		close(fd);
	}
}
END_TEST

/* A 429 storm with Retry-After: 1 on twin reads. The client keeps
 * retrying no sooner than Retry-After; once the storm ends the call
 * succeeds. The call log shows the count and spacing. */
START_TEST(storm_retry_after)
{
	struct hub *h;
	struct hub_opts o;
	struct hub_result *res = NULL;
	struct hub_req *r = NULL;
	struct hub_metrics m;
	unsigned long since;
	json_t *log;
	int64_t t0;
	int t;

	hub_opts_default(&o);
	o.backoff_base_ms = 50;
	o.backoff_max_ms = 200;
	o.max_attempts = 20;
	h = hub_with("iothubowner", OWNER_KEY, certpath, &o);
	create_device(h, "storm-01");
	since = calls_last();
	faults("{\"operation\":\"twinRead\",\"p429\":1.0,\"retryAfter\":1}");
	ck_assert_int_eq(hub_req_twin_get("storm-01", &r), FC_OK);
	ck_assert_int_eq(hub_call(h, NULL, &res), FC_EINVAL);
	{
		struct hub_result *got = NULL;
		ck_assert_int_eq(hub_submit(h, r, storm_done, &got), FC_OK);
		t0 = hub_mono_ms();
		while (hub_mono_ms() - t0 < 3500) {
			hub_perform(h, &t);
			hub_poll(h, t < 0 || t > 100 ? 100 : t);
		}
		ck_assert_ptr_null(got);
		faults(NULL);
		hub_run(h);
		ck_assert_ptr_nonnull(got);
		res = got;
	}
	expect(res, HUB_DONE, 0);
	ck_assert_uint_ge(res->attempts, 4);
	log = calls_for(since, "storm-01");
	ck_assert_uint_eq(json_array_size(log), res->attempts);
	for (size_t i = 0; i + 1 < json_array_size(log); i++) {
		ck_assert_int_eq(json_integer_value(json_object_get(
		    json_array_get(log, i), "status")), 429);
		/* Retry-After: 1 honoured (the jittered back-off alone would
		 * be at most 200 ms) */
		ck_assert_msg(call_time(log, i + 1) - call_time(log, i) >= 0.95,
		    "retry %zu after %.3f s", i, call_time(log, i + 1) -
		    call_time(log, i));
	}
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(log,
	    json_array_size(log) - 1), "status")), 200);
	hub_metrics_read(h, &m);
	ck_assert_uint_ge(m.attempts[HUB_OP_TWIN_GET][10], 3);	/* 429s */
	ck_assert_uint_eq(m.calls[HUB_OP_TWIN_GET][HUB_DONE], 1);
	json_decref(log);
	hub_result_free(res);
	hub_close(h);
}
END_TEST

/* A storm that outlasts the budget: HUB_RETRY with the hub's error and a
 * suggested delay; exactly max_attempts calls reached the hub, spaced by
 * the jittered back-off. Then 503s, and then 500s with a single attempt. */
START_TEST(storm_budget)
{
	struct hub *h;
	struct hub_opts o;
	struct hub_result *res;
	unsigned long since;
	json_t *log;

	hub_opts_default(&o);
	o.max_attempts = 4;
	o.backoff_base_ms = 100;
	o.backoff_max_ms = 800;
	h = hub_with("iothubowner", OWNER_KEY, certpath, &o);
	create_device(h, "storm-02");
	since = calls_last();
	faults("{\"operation\":\"twinRead\",\"p429\":1.0}");
	res = CALL(h, hub_req_twin_get("storm-02", &r_));
	expect(res, HUB_RETRY, HUB_E_THROTTLED);
	ck_assert_int_eq(res->attempts, 4);
	ck_assert_int_eq(res->http_status, 429);
	ck_assert_int_ge(res->retry_after_ms, 0);
	hub_result_free(res);
	log = calls_for(since, "storm-02");
	ck_assert_uint_eq(json_array_size(log), 4);
	/* back-off ceilings 100, 200, 400 ms: never more (plus slack) */
	for (size_t i = 0; i + 1 < json_array_size(log); i++)
		ck_assert_double_le(call_time(log, i + 1) - call_time(log, i),
		    (100 << i) / 1000.0 + 0.8);
	json_decref(log);

	faults("{\"operation\":\"twinRead\",\"p503\":1.0}");
	res = CALL(h, hub_req_twin_get("storm-02", &r_));
	expect(res, HUB_RETRY, HUB_E_SERVICE_UNAVAILABLE);
	ck_assert_int_eq(res->attempts, 4);
	hub_result_free(res);
	faults(NULL);

	/* the time budget stops retrying before max_attempts */
	hub_close(h);
	o.max_attempts = 50;
	o.retry_budget_ms = 1500;
	h = hub_with("iothubowner", OWNER_KEY, certpath, &o);
	faults("{\"operation\":\"twinRead\",\"p500\":1.0}");
	res = CALL(h, hub_req_twin_get("storm-02", &r_));
	expect(res, HUB_RETRY, HUB_E_SERVER_ERROR);
	ck_assert_int_lt(res->attempts, 50);
	ck_assert_int_ge(res->attempts, 3);
	hub_result_free(res);
	faults(NULL);
	hub_close(h);
}
END_TEST

/* Half of all connections reset: every call still completes, through
 * retries the call log shows as status 0. */
START_TEST(resets)
{
	struct hub *h;
	struct hub_opts o;
	struct hub_req *r = NULL;
	struct hub_metrics m;
	unsigned long since;
	json_t *log, *c;
	size_t i, nreset = 0;
	int ok = 0;

	hub_opts_default(&o);
	o.max_attempts = 20;
	o.backoff_base_ms = 20;
	o.backoff_max_ms = 200;
	h = hub_with("iothubowner", OWNER_KEY, certpath, &o);
	create_device(h, "reset-01");
	since = calls_last();
	faults("{\"operation\":\"twinRead\",\"pReset\":0.5}");
	for (i = 0; i < 30; i++) {
		hub_req_twin_get("reset-01", &r);
		hub_submit(h, r, count_ok, &ok);
	}
	hub_run(h);
	faults(NULL);
	ck_assert_int_eq(ok, 30);
	hub_metrics_read(h, &m);
	ck_assert_uint_gt(m.retries, 0);
	ck_assert_uint_gt(m.attempts[HUB_OP_TWIN_GET][0], 0);
	log = calls_for(since, "reset-01");
	json_array_foreach(log, i, c)
		nreset += json_integer_value(json_object_get(c, "status")) == 0;
	ck_assert_uint_gt(nreset, 0);
	ck_assert_uint_eq(json_array_size(log), 30 + nreset);
	json_decref(log);
	hub_close(h);
}
END_TEST

/* rate_per_second = 5 (burst 1): 16 reads queued at once reach the hub
 * no faster than 5 a second. registry_per_minute = 120 (burst 1): 5
 * creates are 0.5 s apart, and reads queued behind them are not held up. */
START_TEST(token_buckets)
{
	struct hub *h;
	struct hub_opts o;
	struct hub_req *r = NULL;
	struct hub_device d;
	struct hub_metrics m;
	unsigned long since;
	json_t *log, *c;
	size_t i;
	char id[32];
	int ok = 0;
	double span, last_write = 0, last_read = 0;

	hub_opts_default(&o);
	o.rate_per_second = 5;
	h = hub_with("iothubowner", OWNER_KEY, certpath, &o);
	create_device(h, "bucket-01");
	since = calls_last();
	for (i = 0; i < 16; i++) {
		hub_req_twin_get("bucket-01", &r);
		hub_submit(h, r, count_ok, &ok);
	}
	hub_run(h);
	ck_assert_int_eq(ok, 16);
	log = calls_for(since, "bucket-01");
	ck_assert_uint_eq(json_array_size(log), 16);
	span = call_time(log, 15) - call_time(log, 0);
	ck_assert_msg(span >= 15 * 0.2 * 0.9, "16 calls in %.3f s", span);
	/* in any 1 s window at most 5 + burst calls */
	for (i = 0; i + 6 < 16; i++)
		ck_assert_double_ge(call_time(log, i + 6) - call_time(log, i),
		    0.8);
	hub_metrics_read(h, &m);
	ck_assert_uint_ge(m.throttle_waits, 10);
	json_decref(log);
	hub_close(h);

	hub_opts_default(&o);
	o.registry_per_minute = 120;
	o.burst_registry = 1;
	h = hub_with("iothubowner", OWNER_KEY, certpath, &o);
	since = calls_last();
	ok = 0;
	for (i = 0; i < 5; i++) {
		snprintf(id, sizeof(id), "bucket-w%zu", i);
		hub_device_init(&d, id);
		hub_req_device_create(&d, &r);
		hub_submit(h, r, count_ok, &ok);
	}
	for (i = 0; i < 5; i++) {
		hub_req_twin_get("bucket-01", &r);
		hub_submit(h, r, count_ok, &ok);
	}
	hub_run(h);
	ck_assert_int_eq(ok, 10);
	log = calls_for(since, NULL);
	{
		double prev = 0;
		size_t nw = 0;
		json_array_foreach(log, i, c) {
			const char *m_ = json_string_value(json_object_get(c,
			    "method"));
			double t = json_real_value(json_object_get(c, "time"));
			if (strcmp(m_, "PUT") == 0) {
				if (nw++ > 0)
					ck_assert_double_ge(t - prev, 0.35);
				prev = last_write = t;
			} else
				last_read = t;
		}
		ck_assert_uint_eq(nw, 5);
	}
	/* the reads went out while the writes waited for their tokens */
	ck_assert_double_lt(last_read, last_write);
	hub_metrics_read(h, &m);
	ck_assert_uint_eq(m.registry_ops, 5);
	json_decref(log);
	hub_close(h);
}
END_TEST

static void *
run_hub(void *arg)
{
	hub_run(arg);
	return NULL;
}

/* Two clients of one hub in one process (the delivery loop and the
 * revocation worker each have one) share its buckets: 3 + 3 creates sent
 * from two threads at registry_per_minute = 120 (burst 1) reach the hub
 * 0.5 s apart, not two at a time. */
START_TEST(shared_buckets)
{
	struct hub *h1, *h2;
	struct hub_opts o;
	struct hub_req *r = NULL;
	struct hub_device d;
	unsigned long since;
	pthread_t t;
	json_t *log, *c;
	size_t i, nw = 0;
	char id[32];
	int ok1 = 0, ok2 = 0;
	double prev = 0;

	hub_opts_default(&o);
	o.registry_per_minute = 120;
	o.burst_registry = 1;
	h1 = hub_with("iothubowner", OWNER_KEY, certpath, &o);
	h2 = hub_with("iothubowner", OWNER_KEY, certpath, &o);
	since = calls_last();
	for (i = 0; i < 3; i++) {
		snprintf(id, sizeof(id), "shared-a%zu", i);
		hub_device_init(&d, id);
		hub_req_device_create(&d, &r);
		hub_submit(h1, r, count_ok, &ok1);
		snprintf(id, sizeof(id), "shared-b%zu", i);
		hub_device_init(&d, id);
		hub_req_device_create(&d, &r);
		hub_submit(h2, r, count_ok, &ok2);
	}
	ck_assert_int_eq(pthread_create(&t, NULL, run_hub, h2), 0);
	hub_run(h1);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	ck_assert_int_eq(ok1, 3);
	ck_assert_int_eq(ok2, 3);
	log = calls_for(since, NULL);
	json_array_foreach(log, i, c) {
		const char *m = json_string_value(json_object_get(c, "method"));
		double tm = json_real_value(json_object_get(c, "time"));
		if (strcmp(m, "PUT") != 0)
			continue;
		if (nw++ > 0)
			ck_assert_msg(tm - prev >= 0.35, "registry writes "
			    "%.3f s apart", tm - prev);
		prev = tm;
	}
	ck_assert_uint_eq(nw, 6);
	json_decref(log);
	hub_close(h1);
	hub_close(h2);
}
END_TEST

/* Failing calls (401 with a wrong key, 429s retried, a 412) at debug
 * level: the log names the hub, operation and device, never the key, the
 * connection string or a token. */
START_TEST(no_secret_in_log)
{
	char logpath[128], *buf = NULL;
	size_t len = 0;
	struct hub *h;
	struct hub_opts o;
	struct hub_result *res;
	int saved, fd;

	snprintf(logpath, sizeof(logpath), "%s/client.log", dir);
	fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	saved = dup(2);
	dup2(fd, 2);
	log_set_level(LOG_LVL_DEBUG);
	h = hub_with("iothubowner", OTHER_KEY, certpath, NULL);
	hub_result_free(CALL(h, hub_req_device_get("secret-01", &r_)));
	hub_close(h);
	hub_opts_default(&o);
	o.max_attempts = 3;
	o.backoff_base_ms = 10;
	h = hub_with("iothubowner", OWNER_KEY, certpath, &o);
	create_device(h, "secret-01");
	faults("{\"operation\":\"twinRead\",\"p429\":1.0}");
	hub_result_free(CALL(h, hub_req_twin_get("secret-01", &r_)));
	faults(NULL);
	res = CALL(h, hub_req_device_delete("secret-01", "stale", &r_));
	expect(res, HUB_REJECTED, HUB_E_PRECONDITION_FAILED);
	hub_result_free(res);
	hub_close(h);
	log_set_level(LOG_LVL_WARN);
	dup2(saved, 2);
	close(saved);
	close(fd);
	ck_assert_int_eq(fc_file_read(logpath, 1 << 20, &buf, &len), FC_OK);
	ck_assert_ptr_nonnull(strstr(buf, "device secret-01"));
	ck_assert_ptr_nonnull(strstr(buf, "401"));
	ck_assert_ptr_nonnull(strstr(buf, "retry in"));
	ck_assert_ptr_null(strstr(buf, OWNER_KEY));
	ck_assert_ptr_null(strstr(buf, OTHER_KEY));
	ck_assert_ptr_null(strstr(buf, "AAECAwQF"));
	ck_assert_ptr_null(strstr(buf, "SharedAccessSignature"));
	ck_assert_ptr_null(strstr(buf, "sig="));
	ck_assert_ptr_null(strstr(buf, "SharedAccessKey"));
	free(buf);
}
END_TEST

static void
sim_start_quota(void)
{
	quotas_on = 1;
	sim_start();
}

/*
 * The simulator enforcing S1 quotas, windows 30 times shorter: registry
 * writes 100 per 2 s (50/s, burst 100, then shaping, then 429 with
 * Retry-After). A client without a registry bucket meets 429s and gets
 * through by honouring Retry-After; a client whose registry_per_minute
 * matches the quota (3000/min = 50/s) never sees a 429 or shaping.
 */
START_TEST(quota_real_429)
{
	struct hub *h;
	struct hub_opts o;
	struct hub_req *r = NULL;
	struct hub_device d;
	unsigned long since;
	json_t *log, *c;
	size_t i, n429 = 0, nshaped = 0;
	char id[32];
	int ok = 0;

	hub_opts_default(&o);
	o.max_attempts = 30;
	o.backoff_base_ms = 50;
	o.backoff_max_ms = 1000;
	h = hub_with("iothubowner", OWNER_KEY, certpath, &o);
	json_decref(ctl("POST", "/quotas/reset", NULL));
	since = calls_last();
	for (i = 0; i < 200; i++) {
		snprintf(id, sizeof(id), "q-a-%03zu", i);
		hub_device_init(&d, id);
		hub_req_device_create(&d, &r);
		hub_submit(h, r, count_ok, &ok);
	}
	hub_run(h);
	ck_assert_int_eq(ok, 200);
	log = calls_for(since, NULL);
	json_array_foreach(log, i, c)
		n429 += json_integer_value(json_object_get(c, "status")) == 429;
	ck_assert_uint_gt(n429, 0);
	ck_assert_uint_eq(json_array_size(log), 200 + n429);
	fprintf(stderr, "quota: no client bucket: 200 creates took %zu calls "
	    "(%zu answered 429) over %.1f s\n", json_array_size(log), n429,
	    call_time(log, json_array_size(log) - 1) - call_time(log, 0));
	json_decref(log);
	hub_close(h);

	/* the same with the client's registry bucket at the hub's rate */
	hub_opts_default(&o);
	o.registry_per_minute = 3000;
	o.burst_registry = 1;
	h = hub_with("iothubowner", OWNER_KEY, certpath, &o);
	json_decref(ctl("POST", "/quotas/reset", NULL));
	since = calls_last();
	ok = 0;
	n429 = 0;
	for (i = 0; i < 200; i++) {
		snprintf(id, sizeof(id), "q-b-%03zu", i);
		hub_device_init(&d, id);
		hub_req_device_create(&d, &r);
		hub_submit(h, r, count_ok, &ok);
	}
	hub_run(h);
	ck_assert_int_eq(ok, 200);
	log = calls_for(since, NULL);
	ck_assert_uint_eq(json_array_size(log), 200);
	json_array_foreach(log, i, c) {
		n429 += json_integer_value(json_object_get(c, "status")) == 429;
		nshaped += json_integer_value(json_object_get(c,
		    "shapedMs")) > 0;
	}
	ck_assert_uint_eq(n429, 0);
	ck_assert_uint_eq(nshaped, 0);
	/* 200 calls at 50/s: about 4 s */
	ck_assert_double_ge(call_time(log, 199) - call_time(log, 0), 3.5);
	fprintf(stderr, "quota: registry_per_minute 3000: 200 creates, 200 "
	    "calls, no 429, none shaped, over %.1f s\n",
	    call_time(log, 199) - call_time(log, 0));
	json_decref(log);
	hub_close(h);
}
END_TEST

static Suite *
sim_suite(void)
{
	Suite *s = suite_create("hub_sim");
	TCase *tc = tcase_create("sim");

	tcase_set_timeout(tc, 120);
	tcase_add_unchecked_fixture(tc, sim_start, sim_stop);
	tcase_add_test(tc, ops_registry);
	tcase_add_test(tc, ops_twin_method);
	tcase_add_test(tc, ops_bulk_query);
	tcase_add_test(tc, ops_method_devices);
	tcase_add_test(tc, connection_reuse);
	tcase_add_test(tc, classes_misconfigured_unreachable);
	tcase_add_test(tc, storm_retry_after);
	tcase_add_test(tc, storm_budget);
	tcase_add_test(tc, resets);
	tcase_add_test(tc, token_buckets);
	tcase_add_test(tc, shared_buckets);
	tcase_add_test(tc, no_secret_in_log);
	suite_add_tcase(s, tc);

	tc = tcase_create("quota");
	tcase_set_timeout(tc, 120);
	tcase_add_unchecked_fixture(tc, sim_start_quota, sim_stop);
	tcase_add_test(tc, quota_real_429);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr;
	int failed;

	if (!find_sim()) {
		fprintf(stderr, "fleetcert-hubsim not built: skipped\n");
		return 77;
	}
	log_init("check_hub_sim", LOG_LVL_WARN);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	sr = srunner_create(sim_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
