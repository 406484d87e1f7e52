/*
 * signer_client.c — the main process's side of the signer: starts it,
 * sends requests, picks up restarted workers and keeps the health state.
 * Any thread of the main process; one mutex serialises requests (one in
 * flight at a time), a second one guards the health state so that
 * signer_health() never waits for a request.
 */
#include "fc_build.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "ca.h"
#include "der.h"
#include "log.h"
#include "signer.h"

#define ISSUE_TIMEOUT_MS	15000
#define READY_TIMEOUT_MS	30000
#define CRL_TIMEOUT_MS		600000

static struct {
	pthread_mutex_t	 mu;		/* one request at a time */
	pthread_mutex_t	 st_mu;		/* st only: health never waits */
	int		 ctl;		/* to the supervisor */
	int		 data;		/* to the current worker, or -1 */
	int		 pending;	/* a new worker's socket, not ready yet */
	pid_t		 sup;
	uint32_t	 next_id;
	int		 started;	/* workers seen */
	int		 sup_reaped;	/* waitpid already collected sup */
	struct signer_status st;
} cl = { .mu = PTHREAD_MUTEX_INITIALIZER, .st_mu = PTHREAD_MUTEX_INITIALIZER,
    .ctl = -1, .data = -1, .pending = -1 };

static void
set_down(const char *reason)
{
	pthread_mutex_lock(&cl.st_mu);
	if (cl.st.up || strcmp(cl.st.reason, reason) != 0) {
		log_error("%s", reason);
		cl.st.since = time(NULL);
	}
	cl.st.up = 0;
	snprintf(cl.st.reason, sizeof(cl.st.reason), "%s", reason);
	pthread_mutex_unlock(&cl.st_mu);
}

/* A socket from the supervisor; *tag (may be NULL): 'F' a (re)started
 * worker, 'C' a reload's candidate. -1: nothing within ms; -2: gone. */
static int
recv_fd(int ctl, int ms, char *tag)
{
	struct msghdr msg = { 0 };
	struct iovec iov;
	char byte;
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(sizeof(int))];
	} u;
	struct cmsghdr *c;
	struct pollfd p = { .fd = ctl, .events = POLLIN };
	int fd = -1;

	if (poll(&p, 1, ms) <= 0)
		return -1;
	iov.iov_base = &byte;
	iov.iov_len = 1;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = u.buf;
	msg.msg_controllen = sizeof(u.buf);
	if (recvmsg(ctl, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC) != 1)
		return -2;
	c = CMSG_FIRSTHDR(&msg);
	if (c == NULL || c->cmsg_type != SCM_RIGHTS ||
	    c->cmsg_len != CMSG_LEN(sizeof(int)))
		return -2;
	memcpy(&fd, CMSG_DATA(c), sizeof(int));
	if (tag != NULL)
		*tag = byte;
	return fd;
}

/* Receives one message of the expected type into buf (cap bytes). */
static enum fc_err
recv_msg(int fd, void *buf, size_t cap, uint32_t type, int ms,
    size_t *got)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	struct signer_hdr *h = buf;
	ssize_t n;
	int rc;

	do
		rc = poll(&p, 1, ms);
	while (rc < 0 && errno == EINTR);
	if (rc == 0)
		return FC_EBUSY;
	n = recv(fd, buf, cap, MSG_DONTWAIT);
	if (n <= 0)
		return FC_EIO;
	if ((size_t)n < sizeof(*h) || h->magic != SIGNER_MAGIC ||
	    h->type != type || h->length != (uint32_t)n)
		return FC_EINTERNAL;
	*got = (size_t)n;
	return FC_OK;
}

/*
 * Makes sure a worker is connected and ready; mutex held. Waits up to
 * fd_ms for the supervisor to hand over a new worker's socket and up to
 * ready_ms for that worker to report its key loaded. With ready_ms 0 (a
 * health probe) a worker still loading stays pending: FC_EBUSY.
 */
static enum fc_err
worker_get(int fd_ms, int ready_ms)
{
	struct signer_answer_msg a;
	size_t n;
	enum fc_err r;
	int fd;

	if (cl.data >= 0)
		return FC_OK;
	if (cl.pending < 0) {
		if (cl.ctl < 0)
			return FC_EIO;
		fd = recv_fd(cl.ctl, fd_ms, NULL);
		if (fd == -2) {
			set_down("signer supervisor is gone");
			close(cl.ctl);
			cl.ctl = -1;
			return FC_EIO;
		}
		if (fd < 0) {
			if (cl.st.reason[0] == '\0')
				set_down("signer restarting");
			return FC_EBUSY;
		}
		cl.pending = fd;
	}
	fd = cl.pending;
	r = recv_msg(fd, &a, sizeof(a), SIGNER_READY, ready_ms, &n);
	if (r == FC_EBUSY && ready_ms == 0)
		return FC_EBUSY;
	cl.pending = -1;
	if (r != FC_OK || a.der_len > SIGNER_KEY_ID_MAX ||
	    n != offsetof(struct signer_answer_msg, der) + a.der_len) {
		close(fd);
		set_down("signer worker did not start");
		return FC_EIO;
	}
	a.why[sizeof(a.why) - 1] = '\0';
	pthread_mutex_lock(&cl.st_mu);
	cl.st.worker_pid = a.pid;
	pthread_mutex_unlock(&cl.st_mu);
	if (a.status != FC_OK) {
		char reason[sizeof(cl.st.reason) + sizeof(a.why)];
		close(fd);
		snprintf(reason, sizeof(reason), "signer cannot load the CA "
		    "key: %s", a.why);
		set_down(reason);
		return FC_ECRYPTO;
	}
	pthread_mutex_lock(&cl.st_mu);
	if (cl.started++ > 0)
		cl.st.restarts++;
	if (!cl.st.up)
		cl.st.since = time(NULL);
	cl.st.up = 1;
	cl.st.reason[0] = '\0';
	pthread_mutex_unlock(&cl.st_mu);
	/* A worker that stops reading cannot block a sender forever. */
	{
		struct timeval tv = { ISSUE_TIMEOUT_MS / 1000, 0 };
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
	cl.data = fd;
	log_info("signer: worker %ld ready", (long)a.pid);
	return FC_OK;
}

static void
worker_lost(enum fc_err r)
{
	static const char k = 'K';

	close(cl.data);
	cl.data = -1;
	set_down(r == FC_EBUSY ? "signer worker timed out" :
	    r == FC_EINTERNAL ? "signer worker answered garbage" :
	    "signer worker exited");
	/* A worker that hangs or misbehaves is ended by the supervisor (it
	 * alone knows whether the pid is still its child), then restarted. */
	if (r != FC_EIO && cl.ctl >= 0)
		(void)send(cl.ctl, &k, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
}

static enum fc_err
send_msg(const void *m, size_t len)
{
	ssize_t n;

	do
		n = send(cl.data, m, len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return FC_EBUSY;	/* send timeout: the worker hangs */
	return n == (ssize_t)len ? FC_OK : FC_EIO;
}

enum fc_err
signer_start(const struct cfg *cfg, char *why, size_t whylen)
{
	int sv[2];
	pid_t pid;
	enum fc_err r;

	if (cl.sup > 0)
		return FC_ECONFLICT;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
		snprintf(why, whylen, "socketpair: %s", strerror(errno));
		return FC_EIO;
	}
	pid = fork();
	if (pid < 0) {
		snprintf(why, whylen, "fork: %s", strerror(errno));
		close(sv[0]);
		close(sv[1]);
		return FC_EIO;
	}
	if (pid == 0) {
		close(sv[0]);
		signer_supervisor_run(cfg, sv[1]);
	}
	close(sv[1]);
	pthread_mutex_lock(&cl.mu);
	cl.sup = pid;
	cl.sup_reaped = 0;
	cl.ctl = sv[0];
	cl.started = 0;
	pthread_mutex_lock(&cl.st_mu);
	memset(&cl.st, 0, sizeof(cl.st));
	pthread_mutex_unlock(&cl.st_mu);
	r = worker_get(READY_TIMEOUT_MS, READY_TIMEOUT_MS);
	if (r != FC_OK)
		snprintf(why, whylen, "%s", cl.st.reason[0] ? cl.st.reason :
		    "signer did not start");
	pthread_mutex_unlock(&cl.mu);
	if (r != FC_OK)
		signer_stop();
	return r;
}

void
signer_stop(void)
{
	pthread_mutex_lock(&cl.mu);
	if (cl.data >= 0)
		close(cl.data);
	if (cl.pending >= 0)
		close(cl.pending);
	if (cl.ctl >= 0)
		close(cl.ctl);
	cl.data = cl.pending = cl.ctl = -1;
	if (cl.sup > 0) {
		/* The supervisor sees ctl close and ends the worker. */
		int status;
		if (!cl.sup_reaped && waitpid(cl.sup, &status, 0) < 0)
			log_warn("signer: waitpid: %s", strerror(errno));
		cl.sup = 0;
	}
	pthread_mutex_lock(&cl.st_mu);
	cl.st.up = 0;
	snprintf(cl.st.reason, sizeof(cl.st.reason), "stopped");
	pthread_mutex_unlock(&cl.st_mu);
	pthread_mutex_unlock(&cl.mu);
}

enum fc_err
signer_reload(const unsigned char *key_id, size_t key_id_len, char *why,
    size_t whylen)
{
	struct signer_answer_msg a;
	size_t n = 0;
	enum fc_err r;
	char tag = 0, verdict = 'N';
	int fd;

	pthread_mutex_lock(&cl.mu);
	r = worker_get(0, READY_TIMEOUT_MS);
	if (r != FC_OK) {
		snprintf(why, whylen, "the signer is not running (%s); it "
		    "loads the new files when it starts again", fc_strerror(r));
		r = FC_EBUSY;
		goto out;
	}
	if (send(cl.ctl, "R", 1, MSG_NOSIGNAL) != 1) {
		snprintf(why, whylen, "signer supervisor is gone");
		r = FC_EIO;
		goto out;
	}
	fd = recv_fd(cl.ctl, READY_TIMEOUT_MS, &tag);
	if (fd < 0) {
		snprintf(why, whylen, "signer supervisor did not answer");
		r = FC_EIO;
		goto out;
	}
	if (tag != 'C') {
		/* The worker died before the supervisor read 'R': this is
		 * its restarted successor, which loaded the new files. */
		close(cl.data);
		cl.data = -1;
		cl.pending = fd;
		snprintf(why, whylen, "the signer worker restarted meanwhile");
		r = FC_EBUSY;
		goto out;
	}
	r = recv_msg(fd, &a, sizeof(a), SIGNER_READY, READY_TIMEOUT_MS, &n);
	if (r != FC_OK || a.der_len > SIGNER_KEY_ID_MAX ||
	    n != offsetof(struct signer_answer_msg, der) + a.der_len) {
		snprintf(why, whylen, "the new signer worker did not start");
		r = FC_EIO;
	} else if (a.status != FC_OK) {
		a.why[sizeof(a.why) - 1] = '\0';
		snprintf(why, whylen, "the signer cannot load the new CA: %s",
		    a.why);
		r = a.status > FC_OK && a.status <= FC_EBUSY ?
		    (enum fc_err)a.status : FC_ECRYPTO;
	} else if (a.der_len != key_id_len ||
	    memcmp(a.der, key_id, key_id_len) != 0) {
		snprintf(why, whylen, "the signer loaded a different "
		    "certificate (files changed during the reload?)");
		r = FC_ECONFLICT;
	} else {
		verdict = 'Y';
	}
	if (send(cl.ctl, &verdict, 1, MSG_NOSIGNAL) != 1) {
		snprintf(why, whylen, "signer supervisor is gone");
		verdict = 'N';
		r = FC_EIO;
	}
	if (verdict != 'Y') {
		close(fd);
		goto out;
	}
	{
		struct timeval tv = { ISSUE_TIMEOUT_MS / 1000, 0 };
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
	close(cl.data);
	cl.data = fd;
	pthread_mutex_lock(&cl.st_mu);
	cl.st.worker_pid = a.pid;
	pthread_mutex_unlock(&cl.st_mu);
	log_info("signer: worker %ld serves the reloaded CA", (long)a.pid);
	r = FC_OK;
out:
	pthread_mutex_unlock(&cl.mu);
	return r;
}

/* Between requests: notices a dead worker (EOF on its socket) and picks
 * up a restarted one, without waiting; notices a supervisor that exited
 * (reaped here: it is this process's child). Mutex held. */
static void
probe(void)
{
	struct pollfd p = { .fd = cl.data, .events = POLLIN };
	char b;
	int status;

	if (!cl.sup_reaped && waitpid(cl.sup, &status, WNOHANG) == cl.sup) {
		cl.sup_reaped = 1;
		pthread_mutex_lock(&cl.st_mu);
		cl.st.gone = 1;
		pthread_mutex_unlock(&cl.st_mu);
		if (WIFSIGNALED(status))
			log_error("signer: supervisor %ld killed by signal %d",
			    (long)cl.sup, WTERMSIG(status));
		else
			log_error("signer: supervisor %ld exited with status %d",
			    (long)cl.sup, WEXITSTATUS(status));
	}

	if (cl.data >= 0) {
		if (poll(&p, 1, 0) <= 0)
			return;
		if ((p.revents & (POLLHUP | POLLERR)) != 0 ||
		    recv(cl.data, &b, 1, MSG_PEEK | MSG_DONTWAIT) <= 0)
			worker_lost(FC_EIO);
		else
			worker_lost(FC_EINTERNAL);	/* unasked answer */
		return;
	}
	(void)worker_get(0, 0);
}

int
signer_health(struct signer_status *st)
{
	/* Only when no request is in flight: health never waits. */
	if (pthread_mutex_trylock(&cl.mu) == 0) {
		if (cl.sup > 0)
			probe();
		pthread_mutex_unlock(&cl.mu);
	}
	pthread_mutex_lock(&cl.st_mu);
	*st = cl.st;
	pthread_mutex_unlock(&cl.st_mu);
	return st->up;
}

/* 0 if the DER certificate's serialNumber is the hex serial. */
static int
der_serial_matches(const unsigned char *der, size_t len, const char *serial)
{
	struct der_rd r = { der, len }, cert, tbs, v, sn;
	char hex[2 * 21 + 1];

	if (der_get(&r, DER_SEQUENCE, &cert, NULL) != 0 ||
	    der_get(&cert, DER_SEQUENCE, &tbs, NULL) != 0 ||
	    der_get(&tbs, 0xa0, &v, NULL) != 0 ||
	    der_get(&tbs, DER_INTEGER, &sn, NULL) != 0 || sn.len > 21)
		return -1;
	if (sn.len > 1 && sn.p[0] == 0) {
		sn.p++;
		sn.len--;
	}
	fc_hex(sn.p, sn.len, hex, 0);
	return strcmp(hex, serial) == 0 ? 0 : -1;
}

static EVP_MD *md_sha1, *md_sha256;
static pthread_once_t md_once = PTHREAD_ONCE_INIT;

/* Fetched once: an implicit fetch per call costs more than the hash. */
static void
md_fetch(void)
{
	md_sha1 = EVP_MD_fetch(NULL, "SHA1", NULL);
	md_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static int
fingerprints(struct ca_cert *c)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned n;

	pthread_once(&md_once, md_fetch);
	if (md_sha1 == NULL || md_sha256 == NULL)
		return -1;
	if (EVP_Digest(c->der, c->der_len, md, &n, md_sha1, NULL) != 1)
		return -1;
	fc_hex(md, n, c->sha1, 1);
	if (EVP_Digest(c->der, c->der_len, md, &n, md_sha256, NULL) != 1)
		return -1;
	fc_hex(md, n, c->sha256, 1);
	return 0;
}

/* One exchange with the worker: mutex held. On a lost worker the request
 * fails with FC_EIO and the next call picks up the restarted one. */
static enum fc_err
exchange(const void *req, size_t len, struct signer_answer_msg *a,
    size_t *got)
{
	enum fc_err r;

	r = worker_get(0, READY_TIMEOUT_MS);
	if (r != FC_OK)
		return r;
	r = send_msg(req, len);
	if (r == FC_OK)
		r = recv_msg(cl.data, a, sizeof(*a), SIGNER_ANSWER,
		    ISSUE_TIMEOUT_MS, got);
	if (r == FC_EIO || r == FC_EBUSY || r == FC_EINTERNAL) {
		worker_lost(r);
		return r == FC_EBUSY ? FC_EIO : r;
	}
	if (r == FC_OK && (a->h.id != ((const struct signer_hdr *)req)->id ||
	    a->der_len > CA_CERT_MAX ||
	    *got != offsetof(struct signer_answer_msg, der) + a->der_len ||
	    a->status < FC_OK || a->status > FC_EBUSY)) {
		worker_lost(FC_EIO);
		return FC_EINTERNAL;
	}
	return r;
}

/* After a signing failure the worker exits to log in again. */
static void
check_key_failure(const struct signer_answer_msg *a)
{
	if (a->status == FC_ECRYPTO) {
		close(cl.data);
		cl.data = -1;
		set_down("signer: signing failed (token session lost?); "
		    "logging in again");
	}
}

enum fc_err
signer_issue(const struct ca_issue_req *req, struct ca_cert **out, char *why,
    size_t whylen)
{
	struct signer_issue_msg *m = NULL;
	struct signer_answer_msg *a = NULL;
	struct ca_cert *cert = NULL;
	const unsigned char *key = req->spki ? req->spki : req->csr;
	size_t key_len = req->spki ? req->spki_len : req->csr_len, got = 0;
	enum fc_err r = FC_ENOMEM;

	if ((req->spki == NULL) == (req->csr == NULL) || key_len == 0 ||
	    key_len > CA_INPUT_MAX || req->serial == NULL ||
	    req->device_id == NULL || req->se_serial == NULL ||
	    strlen(req->serial) >= FC_CERT_SERIAL_MAX ||
	    strlen(req->device_id) >= FC_DEVICE_ID_MAX ||
	    strlen(req->se_serial) >= FC_SE_SERIAL_LEN) {
		snprintf(why, whylen, "%s", key_len > CA_INPUT_MAX ?
		    "public key or CSR larger than 8192 bytes" :
		    "malformed request");
		log_warn("device %s: certificate refused: %s",
		    req->device_id && fc_device_id_valid(req->device_id) ?
		    req->device_id : "(invalid id)", why);
		return FC_EINVAL;
	}
	m = calloc(1, sizeof(*m));
	a = malloc(sizeof(*a));
	if (m == NULL || a == NULL)
		goto out;
	m->h.magic = SIGNER_MAGIC;
	m->h.type = req->csr ? SIGNER_ISSUE_CSR : SIGNER_ISSUE_SPKI;
	m->h.length = (uint32_t)(offsetof(struct signer_issue_msg, key) +
	    key_len);
	strcpy(m->serial, req->serial);
	strcpy(m->device_id, req->device_id);
	strcpy(m->se_serial, req->se_serial);
	m->validity_days = req->validity_days;
	m->key_len = (uint32_t)key_len;
	memcpy(m->key, key, key_len);

	pthread_mutex_lock(&cl.mu);
	m->h.id = ++cl.next_id;
	r = exchange(m, m->h.length, a, &got);
	if (r == FC_OK)
		check_key_failure(a);
	pthread_mutex_unlock(&cl.mu);
	if (r != FC_OK) {
		snprintf(why, whylen, "%s", r == FC_EBUSY ?
		    "signer restarting" : "signer unavailable");
		goto out;
	}
	a->why[sizeof(a->why) - 1] = '\0';
	r = (enum fc_err)a->status;
	if (r != FC_OK) {
		snprintf(why, whylen, "%s", a->why);
		goto out;
	}
	r = FC_ENOMEM;
	cert = calloc(1, sizeof(*cert));
	if (cert == NULL || (cert->der = malloc(a->der_len)) == NULL)
		goto out;
	memcpy(cert->der, a->der, a->der_len);
	cert->der_len = a->der_len;
	/* The main process stores what was really signed: the serial is
	 * read back from the DER, the fingerprints hashed here. */
	if (der_serial_matches(cert->der, cert->der_len, req->serial) != 0 ||
	    fingerprints(cert) != 0) {
		log_error("device %s: signer answered a certificate that does "
		    "not match the request", req->device_id);
		r = FC_EINTERNAL;
		goto out;
	}
	snprintf(cert->serial, sizeof(cert->serial), "%s", req->serial);
	cert->not_before = (time_t)a->not_before;
	cert->not_after = (time_t)a->not_after;
	r = FC_OK;
	*out = cert;
	cert = NULL;
out:
	ca_cert_free(cert);
	free(m);
	free(a);
	return r;
}

enum fc_err
signer_crl(uint64_t crl_number, int (*next)(void *arg, struct ca_crl_entry *e),
    void *arg, unsigned char **der, size_t *len, char *why, size_t whylen)
{
	struct signer_crl_begin_msg b;
	struct signer_crl_entries_msg *m = NULL;
	struct signer_answer_msg a;
	struct ca_crl_entry e;
	unsigned char *buf = NULL, *out = NULL;
	size_t got, off = 0;
	uint64_t total = 0;
	int more = 1, rc;
	enum fc_err r = FC_ENOMEM;

	m = calloc(1, sizeof(*m));
	buf = malloc(SIGNER_MSG_MAX);
	if (m == NULL || buf == NULL) {
		free(m);
		free(buf);
		return FC_ENOMEM;
	}
	pthread_mutex_lock(&cl.mu);
	r = worker_get(0, READY_TIMEOUT_MS);
	if (r != FC_OK) {
		snprintf(why, whylen, "signer unavailable");
		goto out;
	}
	memset(&b, 0, sizeof(b));
	b.h.magic = SIGNER_MAGIC;
	b.h.type = SIGNER_CRL_BEGIN;
	b.h.length = sizeof(b);
	b.h.id = ++cl.next_id;
	b.number = crl_number;
	r = send_msg(&b, sizeof(b));
	/* Entries in chunks: a CRL of millions never sits twice in memory
	 * on this side. */
	while (r == FC_OK && more) {
		m->count = 0;
		while (m->count < SIGNER_CRL_CHUNK) {
			memset(&e, 0, sizeof(e));
			rc = next(arg, &e);
			if (rc < 0) {
				snprintf(why, whylen, "CRL entries: source "
				    "failed");
				/* Abandon: an empty BEGIN resets the worker. */
				b.h.id = ++cl.next_id;
				b.number = 0;
				(void)send_msg(&b, sizeof(b));
				r = FC_EIO;
				goto out;
			}
			if (rc == 0) {
				more = 0;
				break;
			}
			memcpy(m->e[m->count].serial, e.serial,
			    sizeof(e.serial));
			m->e[m->count].serial[FC_CERT_SERIAL_MAX - 1] = '\0';
			m->e[m->count].reason = e.reason;
			m->e[m->count].revoked_at = e.revoked_at;
			m->count++;
		}
		if (m->count == 0)
			break;
		m->h.magic = SIGNER_MAGIC;
		m->h.type = SIGNER_CRL_ENTRIES;
		m->h.id = ++cl.next_id;
		m->h.length = (uint32_t)(offsetof(struct signer_crl_entries_msg, e) +
		    m->count * sizeof(m->e[0]));
		r = send_msg(m, m->h.length);
	}
	if (r == FC_OK) {
		struct signer_hdr f = { SIGNER_MAGIC, SIGNER_CRL_FINISH,
		    sizeof(f), ++cl.next_id };
		r = send_msg(&f, sizeof(f));
		if (r == FC_OK)
			r = recv_msg(cl.data, &a, sizeof(a), SIGNER_ANSWER,
			    CRL_TIMEOUT_MS, &got);
	}
	if (r != FC_OK) {
		worker_lost(r);
		snprintf(why, whylen, "signer unavailable");
		r = FC_EIO;
		goto out;
	}
	a.why[sizeof(a.why) - 1] = '\0';
	if (a.status != FC_OK) {
		r = a.status >= FC_OK && a.status <= FC_EBUSY ?
		    (enum fc_err)a.status : FC_EINTERNAL;
		snprintf(why, whylen, "%s", a.why);
		check_key_failure(&a);
		goto out;
	}
	total = a.total;
	r = FC_ENOMEM;
	if (total == 0 || total > (uint64_t)SIGNER_CRL_MAX * 128 ||
	    (out = malloc(total)) == NULL)
		goto out;
	while (off < total) {
		r = recv_msg(cl.data, buf, SIGNER_MSG_MAX, SIGNER_DATA,
		    ISSUE_TIMEOUT_MS, &got);
		if (r == FC_OK && got - sizeof(struct signer_hdr) > total - off)
			r = FC_EINTERNAL;
		if (r != FC_OK) {
			worker_lost(r);
			snprintf(why, whylen, "signer unavailable");
			r = FC_EIO;
			goto out;
		}
		memcpy(out + off, buf + sizeof(struct signer_hdr),
		    got - sizeof(struct signer_hdr));
		off += got - sizeof(struct signer_hdr);
	}
	*der = out;
	*len = total;
	out = NULL;
	r = FC_OK;
out:
	pthread_mutex_unlock(&cl.mu);
	free(out);
	free(m);
	free(buf);
	return r;
}
