/*
 * import.h — bulk import of factory records into the inventory: the CSV of
 * device-protocol.md "Factory records" and Microchip's Trust Platform
 * manifest (a JSON array of signed JWS entries). See doc/import.md.
 *
 * One import is one transaction: by default a single bad record means
 * nothing is applied; with skip_bad the good records are applied and each
 * bad one is reported. Records are validated completely (device id, SE
 * serial, P-256 identity key, certificate, hub) and checked for duplicates
 * inside the input and against the database before anything is written.
 */
#ifndef FC_IMPORT_H
#define FC_IMPORT_H

#include <stddef.h>

#include <jansson.h>
#include <openssl/x509.h>

#include "db.h"
#include "fc.h"

#define IMPORT_INPUT_MAX	(64u << 20)	/* bytes of one file */
#define IMPORT_FIELD_MAX	(1u << 20)	/* bytes of one CSV record */
#define IMPORT_ERRORS_MAX	1000		/* errors kept in a result */
#define IMPORT_MSG_MAX		256

enum import_format {
	IMPORT_FMT_UNKNOWN = 0,		/* empty or only whitespace */
	IMPORT_FMT_CSV,
	IMPORT_FMT_MANIFEST,
};

struct import_opts {
	const char	*actor;		/* audit actor; NULL = "import" */
	/* Names of the configured [hub NAME] sections, NULL-terminated
	 * (NULL = none). A record's hub must be one of them or empty (the
	 * default [hub]); "" in the list is allowed and changes nothing. */
	const char *const *hubs;
	int		 skip_bad;	/* apply good records, report bad ones */

	/* Manifest only. The configured manifest-signer certificate
	 * (borrowed; required by import_manifest), and what every entry of
	 * the manifest gets, since entries carry no such fields: owner,
	 * batch, hub (NULL = "") and authType (NULL = "ca"). */
	X509		*manifest_signer;
	const char	*owner;
	const char	*batch;
	const char	*hub;
	const char	*auth_type;
};

struct import_error {
	long		 line;		/* CSV: physical line where the record
					   starts; manifest: line where the
					   entry starts; 0 = the whole input */
	long		 index;		/* manifest entry index (0-based), -1 */
	char		 message[IMPORT_MSG_MAX];
};

/*
 * imported + skipped = records in the input. Without skip_bad and with any
 * error, imported is 0 and every record counts as skipped.
 */
struct import_result {
	long		 imported;
	long		 skipped;
	struct import_error *errors;	/* owned */
	size_t		 nerrors;
	size_t		 cap;
	long		 errors_dropped;	/* beyond IMPORT_ERRORS_MAX */
};

void import_result_init(struct import_result *r);
/* Frees what the result owns and re-initialises it; NULL is a no-op. */
void import_result_clear(struct import_result *r);

/*
 * The result as {"imported": N, "skipped": N, "errors": [{"line": N,
 * "message": "..."}]} (manifest errors also carry "index"; a last entry
 * with line 0 says how many errors were left out). New reference, or NULL
 * when out of memory.
 */
json_t *import_result_to_json(const struct import_result *r);

/* Guesses the format from the first non-blank byte: '[' or '{' is a
 * manifest, anything else CSV. */
enum import_format import_detect(const char *buf, size_t len);

/*
 * Imports a CSV (buf need not be NUL-terminated). *res (initialised by the
 * caller, cleared first) receives counts and errors in every case.
 * Returns FC_OK when the import was applied (with skip_bad: possibly with
 * skipped records); FC_EINVAL when the input or a record is bad and
 * nothing was applied; FC_EDB / FC_ENOMEM on failures of the machine
 * (nothing applied).
 */
enum fc_err import_csv(struct db *db, const char *buf, size_t len,
    const struct import_opts *opts, struct import_result *res);

/*
 * Imports a Trust Platform manifest; same contract as import_csv. FC_EINVAL
 * also when opts->manifest_signer is NULL or not a P-256 certificate.
 */
enum fc_err import_manifest(struct db *db, const char *buf, size_t len,
    const struct import_opts *opts, struct import_result *res);

/* import_detect + the matching import function; FC_EINVAL if empty. */
enum fc_err import_any(struct db *db, const char *buf, size_t len,
    const struct import_opts *opts, struct import_result *res);

/* Loads the first certificate of a PEM file (e.g. [import]
 * manifest_signer). *out is the caller's (X509_free). FC_EIO, FC_EINVAL. */
enum fc_err import_signer_load(const char *path, X509 **out);

#endif
