/*
 * health.c — the component health registry of health.h: a fixed table under
 * one mutex. Any thread of the daemon process.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "health.h"

struct component {
	char	 name[HEALTH_NAME_MAX];
	char	 reason[HEALTH_REASON_MAX];
	int	 ok;
	time_t	 since;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct component comps[HEALTH_MAX_COMPONENTS];
static size_t ncomps;

static struct component *
find(const char *name)
{
	size_t i;

	for (i = 0; i < ncomps; i++)
		if (strncmp(comps[i].name, name, HEALTH_NAME_MAX - 1) == 0)
			return &comps[i];
	return NULL;
}

enum fc_err
health_set(const char *component, int ok, const char *reason)
{
	struct component *c;
	enum fc_err err = FC_OK;

	if (component == NULL || component[0] == '\0')
		return FC_EINVAL;
	pthread_mutex_lock(&lock);
	if ((c = find(component)) == NULL) {
		if (ncomps == HEALTH_MAX_COMPONENTS) {
			err = FC_ENOMEM;
			goto out;
		}
		c = &comps[ncomps++];
		snprintf(c->name, sizeof(c->name), "%s", component);
		c->ok = !ok;	/* forces "since" below */
	}
	if (c->ok != (ok != 0))
		c->since = fc_now();
	c->ok = ok != 0;
	snprintf(c->reason, sizeof(c->reason), "%s",
	    reason != NULL ? reason : "");
out:
	pthread_mutex_unlock(&lock);
	return err;
}

void
health_remove(const char *component)
{
	struct component *c;

	pthread_mutex_lock(&lock);
	if ((c = find(component)) != NULL) {
		*c = comps[--ncomps];
		memset(&comps[ncomps], 0, sizeof(comps[ncomps]));
	}
	pthread_mutex_unlock(&lock);
}

int
health_ok(void)
{
	size_t i;
	int ok = 1;

	pthread_mutex_lock(&lock);
	for (i = 0; i < ncomps; i++)
		ok = ok && comps[i].ok;
	pthread_mutex_unlock(&lock);
	return ok;
}

json_t *
health_to_json(void)
{
	json_t *root = NULL, *all, *one;
	char when[21];
	size_t i;
	int ok = 1;

	if ((all = json_object()) == NULL)
		return NULL;
	pthread_mutex_lock(&lock);
	for (i = 0; i < ncomps; i++) {
		fc_time_iso(comps[i].since, when);
		one = json_pack("{s:b, s:s, s:s}", "ok", comps[i].ok,
		    "reason", comps[i].reason, "since", when);
		if (one == NULL || json_object_set_new(all, comps[i].name,
		    one) != 0) {
			pthread_mutex_unlock(&lock);
			json_decref(all);
			return NULL;
		}
		ok = ok && comps[i].ok;
	}
	pthread_mutex_unlock(&lock);
	root = json_pack("{s:s, s:o}", "status", ok ? "ok" : "degraded",
	    "components", all);
	return root;
}

void
health_reset(void)
{
	pthread_mutex_lock(&lock);
	memset(comps, 0, sizeof(comps));
	ncomps = 0;
	pthread_mutex_unlock(&lock);
}
