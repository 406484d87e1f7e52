/*
 * enrol_load.c — load client of bench/enrol.sh. T threads run for S seconds
 * against the re-enrolment listener on loopback, each iteration on a new
 * TCP connection with a new TLS session (no tickets, no resumption):
 *   handshake  TLS handshake + one tiny request (GET on the challenge path:
 *              405 from the router) — the listener's bare ceiling;
 *   reenrol    TLS handshake + POST challenge + POST reenrol (signed with the
 *              device key, raw R || S) on the same connection, answer 200
 *              checked.
 * Prints "MODE ops=N seconds=S rate=R/s errors=E".
 * usage: enrol_load MODE PORT ROOT.pem THREADS SECONDS KEY.pem FIRST_SERIAL NDEV
 */
#define _GNU_SOURCE	/* strcasestr */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "fc.h"

static int port, mode_reenrol, seconds, ndev;
static unsigned long long first_serial;
static SSL_CTX *ctx;
static EVP_PKEY *dkey;
static unsigned char *csr;
static size_t csr_len;
static char *csr64;
static atomic_ullong ops, errors;
static atomic_int next_dev;
static double deadline;

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Sends req and reads one response; returns the status, body into buf. */
static int
exchange(SSL *ssl, const char *req, char *buf, size_t cap)
{
	size_t len = 0, need = 0;
	char *hdr_end, *cl;
	int n, status;

	if (SSL_write(ssl, req, (int)strlen(req)) <= 0)
		return -1;
	for (;;) {
		if (len + 1 >= cap)
			return -1;
		n = SSL_read(ssl, buf + len, (int)(cap - len - 1));
		if (n <= 0)
			return -1;
		len += (size_t)n;
		buf[len] = '\0';
		hdr_end = strstr(buf, "\r\n\r\n");
		if (hdr_end == NULL)
			continue;
		cl = strcasestr(buf, "Content-Length:");
		need = (size_t)(hdr_end + 4 - buf) + (cl ? strtoul(cl + 15,
		    NULL, 10) : 0);
		if (len >= need)
			break;
	}
	if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
		return -1;
	memmove(buf, hdr_end + 4, len - (size_t)(hdr_end + 4 - buf));
	buf[len - (size_t)(hdr_end + 4 - buf)] = '\0';
	return status;
}

static SSL *
tls_connect(int *fdp)
{
	struct sockaddr_in sa;
	SSL *ssl;
	int fd, one = 1;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	ssl = SSL_new(ctx);
	SSL_set_fd(ssl, fd);
	SSL_set1_host(ssl, "127.0.0.1");
	if (SSL_connect(ssl) != 1) {
		SSL_free(ssl);
		close(fd);
		return NULL;
	}
	*fdp = fd;
	return ssl;
}

static int
one_reenrol(SSL *ssl, char *buf, size_t cap)
{
	char serial[19], req[16384], body[12288], *p, *q, *sig64 = NULL;
	unsigned char m[93], d[32], der[80], raw[64], *nonce = NULL;
	const unsigned char *dp = der;
	size_t nlen, dl = sizeof(der);
	unsigned int v;
	EVP_PKEY_CTX *c;
	ECDSA_SIG *s;
	const BIGNUM *r, *ss;
	int i, st;

	snprintf(serial, sizeof(serial), "0123%014llx", first_serial +
	    (unsigned long long)(atomic_fetch_add(&next_dev, 1) % ndev));
	snprintf(body, sizeof(body), "{\"serial\":\"%s\"}", serial);
	snprintf(req, sizeof(req), "POST /enrol/v1/challenge HTTP/1.1\r\n"
	    "Host: 127.0.0.1\r\nContent-Type: application/json\r\n"
	    "Content-Length: %zu\r\n\r\n%s", strlen(body), body);
	if (exchange(ssl, req, buf, cap) != 200)
		return -1;
	p = strstr(buf, "\"nonce\":\"");
	if (p == NULL)
		return -1;
	p += 9;
	q = strchr(p, '"');
	*q = '\0';
	if (fc_b64_decode(p, &nonce, &nlen) != FC_OK || nlen != 32)
		return -1;
	memcpy(m, "fleetcert-reenrol-v1", 20);
	memcpy(m + 20, nonce, 32);
	for (i = 0; i < 9; i++) {
		sscanf(serial + 2 * i, "%2x", &v);
		m[52 + i] = (unsigned char)v;
	}
	SHA256(csr, csr_len, m + 61);
	SHA256(m, 93, d);
	c = EVP_PKEY_CTX_new(dkey, NULL);
	EVP_PKEY_sign_init(c);
	EVP_PKEY_sign(c, der, &dl, d, 32);
	EVP_PKEY_CTX_free(c);
	s = d2i_ECDSA_SIG(NULL, &dp, (long)dl);
	ECDSA_SIG_get0(s, &r, &ss);
	BN_bn2binpad(r, raw, 32);
	BN_bn2binpad(ss, raw + 32, 32);
	ECDSA_SIG_free(s);
	fc_b64_encode(raw, 64, &sig64);
	snprintf(body, sizeof(body), "{\"serial\":\"%s\",\"nonce\":\"%s\","
	    "\"csr\":\"%s\",\"signature\":\"%s\"}", serial, p, csr64, sig64);
	free(sig64);
	free(nonce);
	snprintf(req, sizeof(req), "POST /enrol/v1/reenrol HTTP/1.1\r\n"
	    "Host: 127.0.0.1\r\nContent-Type: application/json\r\n"
	    "Connection: close\r\nContent-Length: %zu\r\n\r\n%s",
	    strlen(body), body);
	st = exchange(ssl, req, buf, cap);
	if (st != 200) {
		if (atomic_load(&errors) < 3)
			fprintf(stderr, "reenrol: %d %s\n", st, buf);
		return -1;
	}
	return 0;
}

static void *
worker(void *arg)
{
	static const char tiny[] = "GET /enrol/v1/challenge HTTP/1.1\r\n"
	    "Host: 127.0.0.1\r\nConnection: close\r\n\r\n";
	char *buf = malloc(65536);
	SSL *ssl;
	int fd, ok;

	(void)arg;
	while (now() < deadline) {
		ssl = tls_connect(&fd);
		if (ssl == NULL) {
			atomic_fetch_add(&errors, 1);
			continue;
		}
		if (mode_reenrol)
			ok = one_reenrol(ssl, buf, 65536) == 0;
		else
			ok = exchange(ssl, tiny, buf, 65536) == 405;
		atomic_fetch_add(ok ? &ops : &errors, 1);
		SSL_shutdown(ssl);
		SSL_free(ssl);
		close(fd);
	}
	free(buf);
	return NULL;
}

int
main(int argc, char **argv)
{
	pthread_t th[64];
	int i, threads;
	double t0, el;
	FILE *f;
	X509_REQ *rq;
	unsigned char *der = NULL;

	if (argc != 9) {
		fprintf(stderr, "usage: enrol_load handshake|reenrol PORT ROOT "
		    "THREADS SECONDS KEY FIRST_SERIAL NDEV\n");
		return 2;
	}
	mode_reenrol = strcmp(argv[1], "reenrol") == 0;
	port = atoi(argv[2]);
	threads = atoi(argv[4]);
	seconds = atoi(argv[5]);
	first_serial = strtoull(argv[7] + 4, NULL, 16);
	ndev = atoi(argv[8]);
	if (threads < 1 || threads > 64 || ndev < 1)
		return 2;
	ctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (SSL_CTX_load_verify_locations(ctx, argv[3], NULL) != 1)
		return 1;
	f = fopen(argv[6], "r");
	dkey = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
	if (f)
		fclose(f);
	if (dkey == NULL)
		return 1;
	/* One CSR for the device key, reused: each digest differs by its
	 * nonce anyway. */
	rq = X509_REQ_new();
	X509_REQ_set_pubkey(rq, dkey);
	X509_REQ_sign(rq, dkey, EVP_sha256());
	csr_len = (size_t)i2d_X509_REQ(rq, &der);
	csr = der;
	X509_REQ_free(rq);
	fc_b64_encode(csr, csr_len, &csr64);

	t0 = now();
	deadline = t0 + seconds;
	for (i = 0; i < threads; i++)
		pthread_create(&th[i], NULL, worker, NULL);
	for (i = 0; i < threads; i++)
		pthread_join(th[i], NULL);
	el = now() - t0;
	printf("%s ops=%llu seconds=%.2f rate=%.0f/s errors=%llu\n", argv[1],
	    (unsigned long long)ops, el, (double)ops / el,
	    (unsigned long long)errors);
	return errors > ops / 100 ? 1 : 0;
}
