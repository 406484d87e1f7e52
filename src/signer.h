/*
 * signer.h — the signer process: the only process that holds the CA key
 * (DESIGN.md "Processes and threads", the OpenBSD relayd ca.c pattern).
 *
 * signer_start() forks, before any network input is read, a small
 * supervisor, which forks the worker that loads the key and answers
 * fixed-format requests over a SOCK_SEQPACKET socketpair. When the worker
 * dies (or ends itself after a token/HSM failure), the supervisor starts a
 * new one with back-off (1 s doubling to 60 s), which logs in again; the
 * main process picks up the new socket and reports the gap in
 * signer_health(). Requests in flight fail with FC_EIO (or FC_EBUSY while
 * no worker is ready) and callers retry.
 *
 * Threads: all client calls may be made from any thread; they are
 * serialised by one mutex (one request in flight at a time; a CRL holds it
 * for its whole build).
 */
#ifndef FC_SIGNER_H
#define FC_SIGNER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "ca.h"

struct cfg;

/*
 * Forks the supervisor and the worker, and waits until the worker has
 * loaded the key. cfg must stay valid while the signer runs (the children
 * use their copy). On failure (wrong PIN, missing token, bad key file)
 * returns FC_ECRYPTO/FC_EIO/FC_EINVAL with the reason in why (never the
 * PIN) and nothing is left running. Call once, from main() before threads.
 */
enum fc_err signer_start(const struct cfg *cfg, char *why, size_t whylen);
/* Stops the supervisor and the worker and waits for them. Idempotent. */
void signer_stop(void);

/*
 * SIGHUP: has the supervisor start a candidate worker, which loads the CA
 * files again (same paths as at start) and checks its key against the
 * certificate. The candidate replaces the running worker only when it is
 * ready and its certificate's key identifier is key_id (that of the
 * certificate the caller loaded); otherwise it is dropped and the running
 * worker keeps serving. FC_OK: swapped. Else the reason is in why (never
 * key material or a PIN): FC_ECRYPTO/FC_EINVAL (the new files are
 * refused), FC_EBUSY (no worker up, or one restarted meanwhile: retry),
 * FC_EIO (supervisor trouble). Blocks requests while it runs (<= 30 s).
 */
enum fc_err signer_reload(const unsigned char *key_id, size_t key_id_len,
    char *why, size_t whylen);

/*
 * Issues a certificate through the signer (see ca_cert_issue for req and
 * the checks; the signer repeats them). On FC_OK *out is a new certificate
 * (ca_cert_free). Refusals: FC_EINVAL/FC_ECONFLICT with why. Signer trouble:
 * FC_EIO (worker died: retry), FC_EBUSY (restarting: retry later),
 * FC_ECRYPTO (signing failed; the worker restarts and logs in again).
 */
enum fc_err signer_issue(const struct ca_issue_req *req, struct ca_cert **out,
    char *why, size_t whylen);

/*
 * Builds and signs a CRL with number crl_number (the caller's persistent,
 * increasing counter: table meta, key 'crl_number') from the entries next()
 * yields: it returns 1 with *e filled, 0 at the end, -1 on error (the CRL is
 * abandoned, FC_EIO). Entries are streamed in chunks. On FC_OK *der is the
 * DER CRL (free()). Write it with ca_crl_write().
 */
enum fc_err signer_crl(uint64_t crl_number,
    int (*next)(void *arg, struct ca_crl_entry *e), void *arg,
    unsigned char **der, size_t *len, char *why, size_t whylen);

/* For GET /v1/health and /metrics. */
struct signer_status {
	int		up;		/* a worker with a key answers */
	unsigned	restarts;	/* workers started after the first */
	time_t		since;		/* when up last changed */
	char		reason[160];	/* why it is down; "" when up */
	pid_t		worker_pid;	/* 0 when unknown */
	int		gone;		/* the supervisor exited: no worker
					 * can be restarted any more */
};
/* Fills *st; returns st->up. When no request is in flight it first
 * checks, without waiting, whether the worker died or a restarted one is
 * ready, so that polling it (a health job) notices a dead signer before
 * any request does. Never blocks on the signer. */
int signer_health(struct signer_status *st);

/*
 * The worker's request loop on fd, with ca already loaded: answers until
 * the peer closes. Returns 0 on EOF, 1 after a key failure (the caller
 * exits so that a new worker logs in again). Exposed for tests that write
 * forged requests straight onto the socket.
 */
int signer_serve(int fd, struct ca *ca);

/* The supervisor's loop (signer.c), run in the child signer_start()
 * forks; ctl is its end of the control socket. Never returns. */
void signer_supervisor_run(const struct cfg *cfg, int ctl)
    __attribute__((noreturn));

/* Wire format (both sides, and tests of forged requests). */
#define SIGNER_MAGIC		0x66637331u	/* "fcs1" */
#define SIGNER_MSG_MAX		(64 * 1024)
#define SIGNER_KEY_ID_MAX	64	/* READY carries the CA's key id */
enum signer_type {
	SIGNER_ISSUE_SPKI = 1,
	SIGNER_ISSUE_CSR,
	SIGNER_CRL_BEGIN,
	SIGNER_CRL_ENTRIES,
	SIGNER_CRL_FINISH,
	SIGNER_READY = 100,
	SIGNER_ANSWER,
	SIGNER_DATA,
};
struct signer_hdr {
	uint32_t	magic;
	uint32_t	type;		/* enum signer_type */
	uint32_t	length;		/* of the whole message */
	uint32_t	id;		/* echoed in the answer */
};
struct signer_issue_msg {
	struct signer_hdr h;
	char		serial[FC_CERT_SERIAL_MAX];
	char		device_id[FC_DEVICE_ID_MAX];
	char		se_serial[FC_SE_SERIAL_LEN];
	int32_t		validity_days;
	uint32_t	key_len;
	unsigned char	key[CA_INPUT_MAX];	/* only key_len bytes sent */
};
/* CRLs: BEGIN, ENTRIES (unanswered) ..., FINISH -> ANSWER + DATA chunks. */
#define SIGNER_CRL_CHUNK	512
#define SIGNER_CRL_MAX		50000000u	/* entries in one CRL */
#define SIGNER_DATA_CHUNK	(SIGNER_MSG_MAX - (int)sizeof(struct signer_hdr))
struct signer_crl_entry {
	char		serial[FC_CERT_SERIAL_MAX];
	int32_t		reason;
	int64_t		revoked_at;
};
struct signer_crl_begin_msg {
	struct signer_hdr h;
	uint64_t	number;
};
struct signer_crl_entries_msg {
	struct signer_hdr h;
	uint32_t	count;
	struct signer_crl_entry e[SIGNER_CRL_CHUNK];
};
struct signer_answer_msg {
	struct signer_hdr h;
	int32_t		status;			/* enum fc_err */
	int32_t		pid;
	char		why[160];
	int64_t		not_before;
	int64_t		not_after;
	uint64_t	total;			/* CRL: DER bytes that follow */
	uint32_t	der_len;
	unsigned char	der[CA_CERT_MAX];	/* only der_len bytes sent */
};

#endif
