/*
 * util.c — small helpers shared by every process: error strings, the clock
 * seam, identifier validation, hex/base64, whole-file reads and atomic writes.
 * Touches no global state except the clock offset.
 */
#include "fc_build.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "fc.h"
#include "log.h"

static _Atomic int64_t clock_offset;

const char *
fc_strerror(enum fc_err err)
{
	switch (err) {
	case FC_OK:		return "ok";
	case FC_ENOMEM:		return "out of memory";
	case FC_EINVAL:		return "invalid input";
	case FC_ENOTFOUND:	return "not found";
	case FC_ECONFLICT:	return "conflict";
	case FC_EDB:		return "database error";
	case FC_ECRYPTO:	return "cryptographic error";
	case FC_EIO:		return "I/O error";
	case FC_EREMOTE:	return "remote error";
	case FC_EINTERNAL:	return "internal error";
	case FC_EPERM:		return "not permitted";
	case FC_EBUSY:		return "busy";
	}
	return "unknown error";
}

time_t
fc_now(void)
{
	return time(NULL) + (time_t)atomic_load(&clock_offset);
}

void
fc_clock_set_offset(int64_t seconds)
{
	atomic_store(&clock_offset, seconds);
}

int
fc_device_id_valid(const char *id)
{
	static const char extra[] = "-.+%_#*?!(),:=@$'";
	size_t n = 0;

	if (id == NULL)
		return 0;
	for (; id[n] != '\0'; n++) {
		unsigned char c = (unsigned char)id[n];
		if (n >= FC_DEVICE_ID_MAX - 1)
			return 0;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9'))
			continue;
		if (strchr(extra, c) == NULL)
			return 0;
	}
	return n > 0;
}

enum fc_err
fc_se_serial_canon(const char *in, char out[FC_SE_SERIAL_LEN])
{
	char buf[FC_SE_SERIAL_LEN];
	size_t i;

	if (in == NULL)
		return FC_EINVAL;
	if ((in[0] == 's' || in[0] == 'S') && (in[1] == 'n' || in[1] == 'N'))
		in += 2;
	if (strlen(in) != 18)
		return FC_EINVAL;
	for (i = 0; i < 18; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c >= '0' && c <= '9')
			buf[i] = (char)c;
		else if (c >= 'a' && c <= 'f')
			buf[i] = (char)c;
		else if (c >= 'A' && c <= 'F')
			buf[i] = (char)(c - 'A' + 'a');
		else
			return FC_EINVAL;
	}
	buf[18] = '\0';
	/* ATECC608B serials always start with bytes 01 23. */
	if (strncmp(buf, "0123", 4) != 0)
		return FC_EINVAL;
	memcpy(out, buf, sizeof(buf));
	return FC_OK;
}

void
fc_hex(const unsigned char *in, size_t len, char *out, int upper)
{
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	size_t i;

	for (i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0x0f];
	}
	out[2 * len] = '\0';
}

enum fc_err
fc_file_read(const char *path, size_t max, char **out, size_t *len)
{
	FILE *f = NULL;
	char *buf = NULL;
	size_t n = 0, cap = 4096;
	enum fc_err result = FC_EIO;

	f = fopen(path, "rb");
	if (f == NULL)
		goto out;
	buf = malloc(cap + 1);
	if (buf == NULL) {
		result = FC_ENOMEM;
		goto out;
	}
	for (;;) {
		size_t got;
		if (n == cap) {
			char *nb;
			if (cap > max) {
				result = FC_EINVAL;
				goto out;
			}
			cap *= 2;
			nb = realloc(buf, cap + 1);
			if (nb == NULL) {
				result = FC_ENOMEM;
				goto out;
			}
			buf = nb;
		}
		got = fread(buf + n, 1, cap - n, f);
		n += got;
		if (got == 0)
			break;
	}
	if (ferror(f))
		goto out;
	if (n > max) {
		result = FC_EINVAL;
		goto out;
	}
	buf[n] = '\0';
	*out = buf;
	buf = NULL;
	if (len != NULL)
		*len = n;
	result = FC_OK;
out:
	if (buf != NULL)
		fc_secret_free(buf, cap + 1);
	if (f != NULL)
		fclose(f);
	return result;
}

enum fc_err
fc_file_write_atomic(const char *path, const void *data, size_t len,
    unsigned mode)
{
	char *tmp = NULL, *dircopy = NULL;
	int fd = -1, dfd = -1;
	const unsigned char *p = data;
	enum fc_err result = FC_EIO;
	size_t off = 0;

	if (asprintf(&tmp, "%s.tmp.%ld", path, (long)getpid()) < 0) {
		tmp = NULL;
		return FC_ENOMEM;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0) {
		log_warn("open %s: %s", tmp, strerror(errno));
		goto out;
	}
	while (off < len) {
		ssize_t w = write(fd, p + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			log_warn("write %s: %s", tmp, strerror(errno));
			goto out;
		}
		off += (size_t)w;
	}
	if (fsync(fd) != 0 || close(fd) != 0) {
		fd = -1;
		log_warn("fsync %s: %s", tmp, strerror(errno));
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) != 0) {
		log_warn("rename %s: %s", path, strerror(errno));
		goto out;
	}
	dircopy = strdup(path);
	if (dircopy != NULL) {
		dfd = open(dirname(dircopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0)
			(void)fsync(dfd);
	}
	result = FC_OK;
out:
	if (fd >= 0)
		close(fd);
	if (dfd >= 0)
		close(dfd);
	if (result != FC_OK && tmp != NULL)
		(void)unlink(tmp);
	free(tmp);
	free(dircopy);
	return result;
}

void
fc_secret_free(void *p, size_t len)
{
	if (p == NULL)
		return;
	OPENSSL_cleanse(p, len);
	free(p);
}

void
fc_time_iso(time_t t, char out[21])
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 21, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

enum fc_err
fc_b64_encode(const unsigned char *in, size_t len, char **out)
{
	size_t olen = 4 * ((len + 2) / 3) + 1;
	char *buf;

	if (len > (1u << 30))
		return FC_EINVAL;
	buf = malloc(olen);
	if (buf == NULL)
		return FC_ENOMEM;
	EVP_EncodeBlock((unsigned char *)buf, in, (int)len);
	*out = buf;
	return FC_OK;
}

static int
b64_val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Strict RFC 4648 decoding: padded, no whitespace, canonical trailing bits. */
enum fc_err
fc_b64_decode(const char *in, unsigned char **out, size_t *len)
{
	size_t n = strlen(in), i, o = 0, pad = 0;
	unsigned char *buf;

	if (n == 0 || n % 4 != 0 || n > (1u << 30))
		return FC_EINVAL;
	if (in[n - 1] == '=')
		pad++;
	if (in[n - 2] == '=')
		pad++;
	buf = malloc(n / 4 * 3 + 1);
	if (buf == NULL)
		return FC_ENOMEM;
	for (i = 0; i < n; i += 4) {
		int v[4], k;
		int last = (i + 4 == n);
		for (k = 0; k < 4; k++) {
			unsigned char c = (unsigned char)in[i + k];
			if (c == '=' && last && k >= 4 - (int)pad) {
				v[k] = 0;
				continue;
			}
			v[k] = b64_val(c);
			if (v[k] < 0)
				goto bad;
		}
		buf[o++] = (unsigned char)((v[0] << 2) | (v[1] >> 4));
		if (!(last && pad == 2))
			buf[o++] = (unsigned char)((v[1] << 4) | (v[2] >> 2));
		if (!(last && pad >= 1))
			buf[o++] = (unsigned char)((v[2] << 6) | v[3]);
		/* Non-canonical trailing bits make a second encoding of the
		 * same bytes; refuse them. */
		if (last && pad == 2 && (v[1] & 0x0f) != 0)
			goto bad;
		if (last && pad == 1 && (v[2] & 0x03) != 0)
			goto bad;
	}
	*out = buf;
	*len = o;
	return FC_OK;
bad:
	free(buf);
	return FC_EINVAL;
}

void
fc_json_escape(char *dst, size_t cap, const char *s)
{
	size_t o = 0;

	for (; s != NULL && *s != '\0' && o + 7 < cap; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			dst[o++] = '\\';
			dst[o++] = (char)c;
		} else if (c < 0x20 || c == 0x7f)
			o += (size_t)snprintf(dst + o, cap - o, "\\u%04x", c);
		else
			dst[o++] = (char)c;
	}
	dst[o] = '\0';
}
