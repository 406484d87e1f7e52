/*
 * check_config.c — the configuration parser: every key's good, bad, empty
 * and out-of-range value, unknown and duplicate keys, broken sections,
 * over-long lines, invalid UTF-8, and secret files.
 */
#include "fc_build.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "testutil.h"

static char err[512];

static enum fc_err
load_str(const char *text, struct cfg **out, char **pathp)
{
	const char *dir = tu_tmpdir();
	char *path = tu_write_str(dir, "fleetcertd.conf", text);
	enum fc_err r;

	err[0] = '\0';
	r = cfg_load(path, out, err, sizeof(err));
	if (pathp != NULL)
		*pathp = path;
	else
		free(path);
	return r;
}

/* Loads text and asserts failure with a message "PATH:LINE: [SEC] KEY: ..."
 * containing want. */
static void
expect_error(const char *text, int line, const char *sec_key, const char *want)
{
	struct cfg *cfg = NULL;
	char *path = NULL, prefix[512];
	enum fc_err r;

	r = load_str(text, &cfg, &path);
	ck_assert_msg(r != FC_OK, "config accepted: %s", text);
	ck_assert_ptr_null(cfg);
	if (line > 0)
		snprintf(prefix, sizeof(prefix), "%s:%d: %s", path, line, sec_key);
	else
		snprintf(prefix, sizeof(prefix), "%s:", path);
	ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0,
	    "message \"%s\" does not start with \"%s\"", err, prefix);
	ck_assert_msg(strstr(err, want) != NULL,
	    "message \"%s\" lacks \"%s\"", err, want);
	free(path);
}

START_TEST(test_defaults)
{
	struct cfg *cfg = NULL;

	ck_assert_int_eq(load_str("; empty\n", &cfg, NULL), FC_OK);
	ck_assert_int_eq(cfg->validity_days, 365);
	ck_assert_int_eq(cfg->crl_validity_hours, 48);
	ck_assert_int_eq(cfg->renew_interval_seconds, 60);
	ck_assert_int_eq(cfg->renew_before_days, 30);
	ck_assert_int_eq(cfg->jitter_days, 7);
	ck_assert_int_eq(cfg->rekey, 0);
	ck_assert_int_eq(cfg->method_timeout_seconds, 30);
	ck_assert_int_eq(cfg->max_in_flight, 32);
	ck_assert_int_eq(cfg->retry_initial_seconds, 30);
	ck_assert_int_eq(cfg->retry_max_seconds, 3600);
	ck_assert_int_eq(cfg->challenge_ttl_seconds, 300);
	ck_assert_int_eq(cfg->per_serial_per_hour, 10);
	ck_assert_str_eq(cfg->api_listen, "127.0.0.1:8450");
	ck_assert_ptr_nonnull(strstr(cfg->db_path, "fleetcert.db"));
	ck_assert_uint_eq(cfg->nhubs, 0);
	cfg_free(cfg);
}
END_TEST

static const char full[] =
    "[daemon]\n"
    "log_level = debug   ; comment\n"
    "[database]\n"
    "path = /var/lib/fleetcert/x.db\n"
    "[ca]\n"
    "certificate = /etc/fleetcert/ca/intermediate.pem\n"
    "chain = /etc/fleetcert/ca/chain.pem\n"
    "key = pkcs11:token=fleet;object=ica\n"
    "key_pin_file = /etc/fleetcert/pin\n"
    "validity_days = 3650\n"
    "crl_path = /var/lib/fleetcert/crl/fleetcert.crl\n"
    "crl_validity_hours = 8760\n"
    "[hub]\n"
    "connection_string_file = /etc/fleetcert/hub.conn\n"
    "ca_file = /etc/fleetcert/hubca.pem\n"
    "rate_per_second = 10000\n"
    "registry_per_minute = 1000000\n"
    "[hub eu-west]\n"
    "connection_string_file = /etc/fleetcert/eu.conn\n"
    "[renewal]\n"
    "interval_seconds = 1\n"
    "renew_before_days = 3650\n"
    "jitter_days = 3650\n"
    "rekey = true\n"
    "[delivery]\n"
    "method_timeout_seconds = 300\n"
    "max_in_flight = 1024\n"
    "retry_initial_seconds = 86400\n"
    "retry_max_seconds = 86400\n"
    "[enrol]\n"
    "listen = 0.0.0.0:8443\n"
    "tls_certificate = /etc/fleetcert/enrol.pem\n"
    "tls_key = /etc/fleetcert/enrol.key\n"
    "challenge_ttl_seconds = 3600\n"
    "allow_new_key = yes\n"
    "per_serial_per_hour = 3600\n"
    "[api]\n"
    "listen = unix:/run/fleetcert/api.sock\n"
    "tokens_file = /etc/fleetcert/api.tokens\n"
    "[sweep]\n"
    "dropin_dir = /var/lib/fleetcert/revoke.d\n";

START_TEST(test_full)
{
	struct cfg *cfg = NULL;
	const struct cfg_hub *h;

	ck_assert_msg(load_str(full, &cfg, NULL) == FC_OK, "%s", err);
	ck_assert_int_eq(cfg->log_level, 3);
	ck_assert_str_eq(cfg->db_path, "/var/lib/fleetcert/x.db");
	ck_assert_str_eq(cfg->ca_key, "pkcs11:token=fleet;object=ica");
	ck_assert_int_eq(cfg->validity_days, 3650);
	ck_assert_int_eq(cfg->crl_validity_hours, 8760);
	ck_assert_uint_eq(cfg->nhubs, 2);
	h = cfg_hub_find(cfg, NULL);
	ck_assert_ptr_nonnull(h);
	ck_assert_int_eq(h->rate_per_second, 10000);
	ck_assert_int_eq(h->registry_per_minute, 1000000);
	ck_assert_str_eq(h->ca_file, "/etc/fleetcert/hubca.pem");
	h = cfg_hub_find(cfg, "eu-west");
	ck_assert_ptr_nonnull(h);
	ck_assert_int_eq(h->rate_per_second, 10);
	ck_assert_int_eq(h->registry_per_minute, 100);
	ck_assert_ptr_null(cfg_hub_find(cfg, "nope"));
	ck_assert_int_eq(cfg->renew_interval_seconds, 1);
	ck_assert_int_eq(cfg->rekey, 1);
	ck_assert_int_eq(cfg->method_timeout_seconds, 300);
	ck_assert_int_eq(cfg->max_in_flight, 1024);
	ck_assert_int_eq(cfg->allow_new_key, 1);
	ck_assert_int_eq(cfg->per_serial_per_hour, 3600);
	ck_assert_str_eq(cfg->api_listen, "unix:/run/fleetcert/api.sock");
	ck_assert_str_eq(cfg->dropin_dir, "/var/lib/fleetcert/revoke.d");
	cfg_free(cfg);
}
END_TEST

/* Every integer key: its range ends are accepted, one past each end and a
 * non-number are refused with file:line:[section] key. */
static const struct {
	const char *section, *key;
	long min, max;
	const char *prefix;	/* other lines needed for a valid file */
} ints[] = {
	{ "ca", "validity_days", 1, 3650, "" },
	{ "ca", "crl_validity_hours", 1, 8760, "" },
	{ "hub", "rate_per_second", 1, 10000, "connection_string_file = /x\n" },
	{ "hub", "registry_per_minute", 1, 1000000, "connection_string_file = /x\n" },
	{ "renewal", "interval_seconds", 1, 86400, "" },
	{ "renewal", "renew_before_days", 1, 3650, "" },
	{ "renewal", "jitter_days", 0, 3650, "renew_before_days = 3650\n" },
	{ "delivery", "method_timeout_seconds", 5, 300, "" },
	{ "delivery", "max_in_flight", 1, 1024, "" },
	{ "delivery", "retry_initial_seconds", 1, 86400, "" },
	{ "delivery", "retry_max_seconds", 1, 86400, "" },
	{ "enrol", "challenge_ttl_seconds", 10, 3600, "" },
	{ "enrol", "per_serial_per_hour", 1, 3600, "" },
	{ "enrol", "per_address_per_minute", 1, 100000, "" },
};

START_TEST(test_int_keys)
{
	const char *sec = ints[_i].section, *key = ints[_i].key;
	char text[512], sk[128];
	struct cfg *cfg = NULL;
	long v;
	int nlines = ints[_i].prefix[0] ? 3 : 2;

	snprintf(sk, sizeof(sk), "[%s] %s: ", sec, key);
	for (v = ints[_i].min; ; v = ints[_i].max) {
		snprintf(text, sizeof(text), "[%s]\n%s%s = %ld\n", sec,
		    ints[_i].prefix, key, v);
		ck_assert_msg(load_str(text, &cfg, NULL) == FC_OK,
		    "%s = %ld refused: %s", key, v, err);
		cfg_free(cfg);
		cfg = NULL;
		if (v == ints[_i].max)
			break;
	}
	snprintf(text, sizeof(text), "[%s]\n%s%s = %ld\n", sec, ints[_i].prefix,
	    key, ints[_i].max + 1);
	expect_error(text, nlines, sk, "out of range");
	snprintf(text, sizeof(text), "[%s]\n%s%s = %ld\n", sec, ints[_i].prefix,
	    key, ints[_i].min - 1);
	expect_error(text, nlines, sk, "out of range");
	snprintf(text, sizeof(text), "[%s]\n%s%s = ten\n", sec, ints[_i].prefix,
	    key);
	expect_error(text, nlines, sk, "not an integer");
	snprintf(text, sizeof(text), "[%s]\n%s%s = 12abc\n", sec,
	    ints[_i].prefix, key);
	expect_error(text, nlines, sk, "not an integer");
	snprintf(text, sizeof(text), "[%s]\n%s%s = 99999999999999999999999\n",
	    sec, ints[_i].prefix, key);
	expect_error(text, nlines, sk, "not an integer");
	snprintf(text, sizeof(text), "[%s]\n%s%s =\n", sec, ints[_i].prefix, key);
	expect_error(text, nlines, sk, "value is empty");
}
END_TEST

START_TEST(test_bool_and_level)
{
	struct cfg *cfg = NULL;

	expect_error("[renewal]\nrekey = maybe\n", 2, "[renewal] rekey: ",
	    "not a boolean");
	expect_error("[enrol]\nallow_new_key = 2\n", 2,
	    "[enrol] allow_new_key: ", "not a boolean");
	expect_error("[api]\nallow_remote =\n", 2, "[api] allow_remote: ",
	    "not a boolean");
	expect_error("[daemon]\nlog_level = verbose\n", 2,
	    "[daemon] log_level: ", "not one of");
	ck_assert_int_eq(load_str("[renewal]\nrekey = false\n", &cfg, NULL), FC_OK);
	ck_assert_int_eq(cfg->rekey, 0);
	cfg_free(cfg);
}
END_TEST

START_TEST(test_structure_errors)
{
	expect_error("[daemon]\nbogus = 1\n", 2, "[daemon] bogus: ", "unknown key");
	expect_error("[daemon]\nlog_level = info\nlog_level = warn\n", 3,
	    "[daemon] log_level: ", "duplicate key");
	expect_error("[daemon\nlog_level = info\n", 1, "", "unterminated section");
	expect_error("[nosuch]\n", 1, "[nosuch]", "unknown section");
	expect_error("[ca]\n[ca]\n", 2, "[ca]", "duplicate section");
	expect_error("log_level = info\n", 1, "", "outside of any section");
	expect_error("[daemon]\njust words\n", 2, "[daemon]", "key = value");
	expect_error("[daemon] trailing\n", 1, "", "after section header");
	expect_error("[hub]\n", 0, "", "connection_string_file: missing");
	expect_error("[hub a]\nconnection_string_file = /x\n[hub a]\n", 3,
	    "[hub a]", "duplicate section");
	expect_error("[hub bad/name]\n", 1, "", "not valid");
	expect_error("[ca]\ncertificate = relative/path.pem\n", 2,
	    "[ca] certificate: ", "absolute");
	expect_error("[renewal]\nrenew_before_days = 10\njitter_days = 11\n", 0,
	    "", "[renewal] jitter_days: 11 exceeds renew_before_days");
	expect_error("[delivery]\nretry_initial_seconds = 100\n"
	    "retry_max_seconds = 50\n", 0, "", "exceeds retry_max_seconds");
	expect_error("[enrol]\nlisten = 127.0.0.1:8443\n", 0, "",
	    "[enrol] tls_certificate: missing");
}
END_TEST

START_TEST(test_long_line_and_utf8)
{
	size_t n = 1024 * 1024;
	char *text = malloc(n + 64);
	char bad[] = "[daemon]\nlog_level = info\n; caf\xc3 here\n";
	char overlong[] = "[daemon]\n; \xc0\xaf\n";
	char nul[] = "[daemon]\nlog_level = in\0fo\n";
	struct cfg *cfg = NULL;
	char *path;

	ck_assert_ptr_nonnull(text);
	strcpy(text, "[daemon]\n; ");
	memset(text + 11, 'x', n);
	strcpy(text + 11 + n, "\n");
	expect_error(text, 2, "[daemon]", "longer than");
	free(text);
	expect_error(bad, 3, "[daemon]", "invalid UTF-8");
	expect_error(overlong, 2, "[daemon]", "invalid UTF-8");
	path = tu_write(tu_tmpdir(), "nul.conf", nul, sizeof(nul) - 1, 0600);
	ck_assert_int_ne(cfg_load(path, &cfg, err, sizeof(err)), FC_OK);
	ck_assert_ptr_nonnull(strstr(err, ":2:"));
	ck_assert_ptr_nonnull(strstr(err, "NUL"));
	free(path);
	/* Valid UTF-8 in a comment or label is fine. */
	ck_assert_int_eq(load_str("[daemon]\n; caf\xc3\xa9\n", &cfg, NULL), FC_OK);
	cfg_free(cfg);
}
END_TEST

START_TEST(test_missing_file)
{
	struct cfg *cfg = NULL;

	ck_assert_int_eq(cfg_load("/nonexistent/fleetcertd.conf", &cfg, err,
	    sizeof(err)), FC_EIO);
	ck_assert_ptr_nonnull(strstr(err, "/nonexistent/fleetcertd.conf"));
	ck_assert_ptr_null(cfg);
}
END_TEST

START_TEST(test_secrets)
{
	const char *dir = tu_tmpdir();
	char *ok = tu_write(dir, "hub.conn", "HostName=x;SharedAccessKey=c2VjcmV0\n",
	    36, 0600);
	char *open_ = tu_write(dir, "open.conn", "s3cr3t-value\n", 13, 0644);
	char *buf = NULL;
	size_t len = 0;

	ck_assert_int_eq(cfg_secret_read(ok, &buf, &len, err, sizeof(err)), FC_OK);
	ck_assert_str_eq(buf, "HostName=x;SharedAccessKey=c2VjcmV0");
	ck_assert_uint_eq(len, 35);
	fc_secret_free(buf, len + 1);

	ck_assert_int_eq(cfg_secret_read(open_, &buf, &len, err, sizeof(err)),
	    FC_EPERM);
	ck_assert_ptr_nonnull(strstr(err, "accessible to others"));
	ck_assert_ptr_nonnull(strstr(err, open_));
	ck_assert_ptr_null(strstr(err, "s3cr3t"));

	/* A bare name is looked up in $CREDENTIALS_DIRECTORY. */
	setenv("CREDENTIALS_DIRECTORY", dir, 1);
	ck_assert_int_eq(cfg_secret_read("hub.conn", &buf, &len, err,
	    sizeof(err)), FC_OK);
	fc_secret_free(buf, len + 1);
	unsetenv("CREDENTIALS_DIRECTORY");
	ck_assert_int_eq(cfg_secret_read(dir, &buf, &len, err, sizeof(err)),
	    FC_EINVAL);
	ck_assert_int_ne(cfg_secret_read("/nonexistent/x", &buf, &len, err,
	    sizeof(err)), FC_OK);
	free(ok);
	free(open_);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("parse");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_full);
	tcase_add_loop_test(tc, test_int_keys, 0, FC_ARRAY_LEN(ints));
	tcase_add_test(tc, test_bool_and_level);
	tcase_add_test(tc, test_structure_errors);
	tcase_add_test(tc, test_long_line_and_utf8);
	tcase_add_test(tc, test_missing_file);
	tcase_add_test(tc, test_secrets);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
