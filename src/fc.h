/*
 * fc.h — what every part of fleetcert shares: the project error enum, the
 * clock seam, size limits of identifiers, and small helpers.
 * Included by every module, in every process.
 */
#ifndef FC_H
#define FC_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* One error enum for the whole project. Functions return it; out-parameters
 * are set only on FC_OK. */
enum fc_err {
	FC_OK = 0,
	FC_ENOMEM,	/* allocation failed */
	FC_EINVAL,	/* bad input: caller or outside data */
	FC_ENOTFOUND,	/* no such object */
	FC_ECONFLICT,	/* exists already / state does not allow it */
	FC_EDB,		/* SQLite failure */
	FC_ECRYPTO,	/* OpenSSL / signature / key failure */
	FC_EIO,		/* file or socket I/O */
	FC_EREMOTE,	/* the hub or a peer failed */
	FC_EINTERNAL,	/* a bug or an impossible state */
	FC_EPERM,	/* not allowed (role, file permissions, device state) */
	FC_EBUSY,	/* locked by another process / try again */
};

/* Returns a static, human string for an error code. */
const char *fc_strerror(enum fc_err err);

/* Sizes of identifiers, terminating NUL included. */
#define FC_DEVICE_ID_MAX	129	/* IoT Hub: up to 128 chars */
#define FC_SE_SERIAL_LEN	19	/* 18 lower-case hex + NUL */
#define FC_CERT_SERIAL_MAX	41	/* up to 20 octets as hex + NUL */
#define FC_NAME_MAX		129	/* owner, batch, hub name */
#define FC_SHA1_HEX		41
#define FC_SHA256_HEX		65

/*
 * Clock seam. The library's fc_now() returns time(NULL) shifted by the
 * offset set with fc_clock_set_offset(); tests use the offset to move time.
 */
time_t fc_now(void);
void fc_clock_set_offset(int64_t seconds);

/* IoT Hub device id rules: 1-128 chars of [A-Za-z0-9-.+%_#*?!(),:=@$']. */
int fc_device_id_valid(const char *id);

/*
 * Parses an ATECC608B serial in any accepted text form (18 hex digits, any
 * case, optional leading "sn"/"SN") into the canonical 18 lower-case hex
 * digits. Checks the 01 23 prefix. Returns FC_OK or FC_EINVAL.
 */
enum fc_err fc_se_serial_canon(const char *in, char out[FC_SE_SERIAL_LEN]);

/* Hex encode len bytes into out (2*len+1 bytes), lower or upper case. */
void fc_hex(const unsigned char *in, size_t len, char *out, int upper);

/* Reads a whole file of at most max bytes. *out is NUL-terminated, caller
 * frees (fc_secret_free for secrets). FC_EIO/FC_EINVAL (too large). */
enum fc_err fc_file_read(const char *path, size_t max, char **out, size_t *len);

/* Writes data to path atomically: temp file in the same dir, fsync, rename,
 * fsync of the directory. mode is the file's permission bits. */
enum fc_err fc_file_write_atomic(const char *path, const void *data,
    size_t len, unsigned mode);

/* Wipes and frees a secret buffer; NULL is a no-op. */
void fc_secret_free(void *p, size_t len);

/* Time as RFC 3339 UTC "2027-11-25T12:00:00Z" (out: 21 bytes). */
void fc_time_iso(time_t t, char out[21]);

/* Base64 (standard alphabet, padded). Decode rejects anything malformed.
 * Both allocate *out; caller frees. */
enum fc_err fc_b64_encode(const unsigned char *in, size_t len, char **out);
enum fc_err fc_b64_decode(const char *in, unsigned char **out, size_t *len);

/* JSON string content (no quotes) of s into dst (cap bytes), escaping
 * quotes, backslashes and control characters; truncated to fit. */
void fc_json_escape(char *dst, size_t cap, const char *s);

#define FC_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
