/*
 * check_util.c — identifiers, SE serials, hex, strict base64, atomic files.
 */
#include "fc_build.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fc.h"
#include "testutil.h"

START_TEST(test_device_id)
{
	char longid[200];

	ck_assert(fc_device_id_valid("dev-01"));
	ck_assert(fc_device_id_valid("a.b+c%d_e#f*g?h!i(j)k,l:m=n@o$p'q"));
	ck_assert(!fc_device_id_valid(""));
	ck_assert(!fc_device_id_valid(NULL));
	ck_assert(!fc_device_id_valid("has space"));
	ck_assert(!fc_device_id_valid("../etc/passwd"));
	ck_assert(!fc_device_id_valid("a\"b"));
	ck_assert(!fc_device_id_valid("caf\xc3\xa9"));
	ck_assert(!fc_device_id_valid("x'; DROP TABLE devices;--"));
	memset(longid, 'a', 128);
	longid[128] = '\0';
	ck_assert(fc_device_id_valid(longid));
	longid[128] = 'a';
	longid[129] = '\0';
	ck_assert(!fc_device_id_valid(longid));
}
END_TEST

START_TEST(test_se_serial)
{
	char out[FC_SE_SERIAL_LEN];

	ck_assert_int_eq(fc_se_serial_canon("0123a1b2c3d4e5f601", out), FC_OK);
	ck_assert_str_eq(out, "0123a1b2c3d4e5f601");
	ck_assert_int_eq(fc_se_serial_canon("0123A1B2C3D4E5F601", out), FC_OK);
	ck_assert_str_eq(out, "0123a1b2c3d4e5f601");
	ck_assert_int_eq(fc_se_serial_canon("sn0123A1B2C3D4E5F601", out), FC_OK);
	ck_assert_str_eq(out, "0123a1b2c3d4e5f601");
	ck_assert_int_eq(fc_se_serial_canon("SN0123a1b2c3d4e5f6ee", out), FC_OK);
	ck_assert_str_eq(out, "0123a1b2c3d4e5f6ee");
	ck_assert_int_eq(fc_se_serial_canon("0124a1b2c3d4e5f601", out), FC_EINVAL);
	ck_assert_int_eq(fc_se_serial_canon("0123a1b2c3d4e5f6", out), FC_EINVAL);
	ck_assert_int_eq(fc_se_serial_canon("0123a1b2c3d4e5f60100", out), FC_EINVAL);
	ck_assert_int_eq(fc_se_serial_canon("0123a1b2c3d4e5f6g1", out), FC_EINVAL);
	ck_assert_int_eq(fc_se_serial_canon("", out), FC_EINVAL);
	ck_assert_int_eq(fc_se_serial_canon("sn", out), FC_EINVAL);
	ck_assert_int_eq(fc_se_serial_canon(NULL, out), FC_EINVAL);
}
END_TEST

START_TEST(test_base64)
{
	unsigned char *out = NULL;
	char *enc = NULL;
	size_t len = 0;

	ck_assert_int_eq(fc_b64_decode("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
	    &out, &len), FC_OK);
	ck_assert_uint_eq(len, 32);
	ck_assert_int_eq(out[31], 0x1f);
	ck_assert_int_eq(fc_b64_encode(out, len, &enc), FC_OK);
	ck_assert_str_eq(enc, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=");
	free(out);
	free(enc);
	ck_assert_int_eq(fc_b64_decode("Zg==", &out, &len), FC_OK);
	ck_assert_uint_eq(len, 1);
	free(out);
	ck_assert_int_eq(fc_b64_decode("Zm8=", &out, &len), FC_OK);
	ck_assert_uint_eq(len, 2);
	free(out);
	/* Malformed: bad length, bad chars, whitespace, misplaced padding,
	 * non-canonical trailing bits, empty. */
	ck_assert_int_eq(fc_b64_decode("Zg=", &out, &len), FC_EINVAL);
	ck_assert_int_eq(fc_b64_decode("Z!==", &out, &len), FC_EINVAL);
	ck_assert_int_eq(fc_b64_decode("Zm9v YmFy", &out, &len), FC_EINVAL);
	ck_assert_int_eq(fc_b64_decode("Z===", &out, &len), FC_EINVAL);
	ck_assert_int_eq(fc_b64_decode("=Zm9", &out, &len), FC_EINVAL);
	ck_assert_int_eq(fc_b64_decode("Zh==", &out, &len), FC_EINVAL);
	ck_assert_int_eq(fc_b64_decode("Zm9=Zm9v", &out, &len), FC_EINVAL);
	ck_assert_int_eq(fc_b64_decode("", &out, &len), FC_EINVAL);
	ck_assert_int_eq(fc_b64_decode("Zm9v_-==", &out, &len), FC_EINVAL);
}
END_TEST

START_TEST(test_hex_time)
{
	unsigned char b[] = { 0x00, 0xab, 0xff };
	char out[7], iso[21];

	fc_hex(b, 3, out, 0);
	ck_assert_str_eq(out, "00abff");
	fc_hex(b, 3, out, 1);
	ck_assert_str_eq(out, "00ABFF");
	fc_time_iso(1700000000, iso);
	ck_assert_str_eq(iso, "2023-11-14T22:13:20Z");
}
END_TEST

START_TEST(test_files)
{
	const char *dir = tu_tmpdir();
	char path[512], *buf = NULL;
	size_t len = 0;
	struct stat st;

	snprintf(path, sizeof(path), "%s/out.bin", dir);
	ck_assert_int_eq(fc_file_write_atomic(path, "hello", 5, 0640), FC_OK);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0640);
	ck_assert_int_eq(fc_file_read(path, 100, &buf, &len), FC_OK);
	ck_assert_str_eq(buf, "hello");
	free(buf);
	ck_assert_int_eq(fc_file_read(path, 4, &buf, &len), FC_EINVAL);
	ck_assert_int_eq(fc_file_read("/nonexistent", 4, &buf, &len), FC_EIO);
	snprintf(path, sizeof(path), "%s/nodir/out.bin", dir);
	ck_assert_int_eq(fc_file_write_atomic(path, "x", 1, 0600), FC_EIO);
}
END_TEST

START_TEST(test_clock)
{
	time_t a = fc_now();

	fc_clock_set_offset(86400);
	ck_assert_int_ge(fc_now() - a, 86400);
	fc_clock_set_offset(0);
	ck_assert_int_lt(fc_now() - a, 60);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("util");
	TCase *tc = tcase_create("util");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_device_id);
	tcase_add_test(tc, test_se_serial);
	tcase_add_test(tc, test_base64);
	tcase_add_test(tc, test_hex_time);
	tcase_add_test(tc, test_files);
	tcase_add_test(tc, test_clock);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
