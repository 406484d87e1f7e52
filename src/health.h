/*
 * health.h — the component health registry behind GET /v1/health. Modules
 * report their state when it changes; any thread.
 *
 *	health_set("signer", 0, "signer exited; restarting");
 *	health_set("signer", 1, NULL);
 *
 * Component names are short identifiers ("database", "signer",
 * "hub:default", "enrol"); reasons are human text without secrets.
 */
#ifndef FC_HEALTH_H
#define FC_HEALTH_H

#include <jansson.h>

#include "fc.h"

#define HEALTH_MAX_COMPONENTS	64
#define HEALTH_NAME_MAX		64
#define HEALTH_REASON_MAX	256

/* Sets (or adds) a component's state; reason may be NULL. Names longer
 * than HEALTH_NAME_MAX - 1 and reasons longer than HEALTH_REASON_MAX - 1
 * are truncated; past HEALTH_MAX_COMPONENTS new names are dropped
 * (FC_ENOMEM). */
enum fc_err health_set(const char *component, int ok, const char *reason);

/* Forgets a component (e.g. a listener that was stopped). */
void health_remove(const char *component);

/* 1 when every component is ok (or none is registered), else 0. */
int health_ok(void);

/*
 * {"status": "ok"|"degraded", "components": {NAME: {"ok": bool,
 * "reason": "...", "since": "RFC 3339"}}}; "since" is when the component
 * last changed between ok and not ok. New reference or NULL (no memory).
 */
json_t *health_to_json(void);

/* Forgets everything (tests). */
void health_reset(void);

#endif
