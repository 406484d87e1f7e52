/*
 * metrics.h — the process's metric registry, rendered by GET /metrics in the
 * Prometheus text format (version 0.0.4). Any module, any thread.
 *
 *	static struct metric *m_sent;
 *	m_sent = metrics_counter("fleetcert_deliveries_total",
 *	    "Certificates delivered, by outcome", "hub,outcome");
 *	metrics_add(m_sent, 1, "default", "installed");
 *
 * A family has a name ([a-zA-Z_:][a-zA-Z0-9_:]*), help text, a type and a
 * fixed list of label names (comma-separated, or NULL for none). Each
 * update passes exactly one label value (const char *) per label name, in
 * order. Families live until metrics_reset(); registering the same name
 * again returns the same family (NULL if the type or labels differ).
 */
#ifndef FC_METRICS_H
#define FC_METRICS_H

#include <stddef.h>

#include "db.h"
#include "fc.h"

struct metric;

#define METRICS_MAX_LABELS	4
#define METRICS_MAX_SERIES	1000	/* per family; further ones dropped */

/* Register or find a family. NULL (logged) on a bad name or mismatch. */
struct metric *metrics_counter(const char *name, const char *help,
    const char *labels);
struct metric *metrics_gauge(const char *name, const char *help,
    const char *labels);
/* buckets: ascending upper bounds (+Inf is implied), at most 16. */
struct metric *metrics_histogram(const char *name, const char *help,
    const char *labels, const double *buckets, size_t nbuckets);

/* Counter or gauge += v (a counter ignores v < 0). NULL m is a no-op. */
void metrics_add(struct metric *m, double v, ...);
/* Gauge = v. */
void metrics_set(struct metric *m, double v, ...);
/* Histogram: one observation. */
void metrics_observe(struct metric *m, double v, ...);

/*
 * A collector runs before each rendering, on the rendering thread, with
 * that thread's database connection (may be NULL); it updates gauges
 * computed on demand (e.g. certificates by status). Runs under no lock of
 * the registry. FC_ENOMEM or FC_OK.
 */
typedef void (*metrics_collector)(void *arg, struct db *db);
enum fc_err metrics_collector_add(metrics_collector fn, void *arg);

/* Runs the collectors, then renders every family. *out is malloc'ed text
 * (caller frees), *len its length. FC_ENOMEM. */
enum fc_err metrics_render(struct db *db, char **out, size_t *len);

/* Forgets every family and collector (tests; no update may run). */
void metrics_reset(void);

#endif
