/*
 * metrics.c — the metric registry of metrics.h: families of counters,
 * gauges and histograms with labels, one mutex for all, rendered in the
 * Prometheus text exposition format. Any thread of the daemon process.
 */
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"

#define MAX_BUCKETS	16

enum mtype { MT_COUNTER, MT_GAUGE, MT_HISTOGRAM };

struct series {
	char		*values[METRICS_MAX_LABELS];
	double		 v;			/* counter/gauge; hist sum */
	unsigned long long counts[MAX_BUCKETS + 1];	/* +Inf last */
	unsigned long long n;
	struct series	*next;
};

struct metric {
	char		*name;
	char		*help;
	enum mtype	 type;
	char		*labels[METRICS_MAX_LABELS];
	size_t		 nlabels;
	double		 buckets[MAX_BUCKETS];
	size_t		 nbuckets;
	struct series	*series;
	size_t		 nseries;
	struct metric	*next;
};

struct collector {
	metrics_collector fn;
	void		*arg;
	struct collector *next;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct metric *families;
static struct collector *collectors;

static int
name_ok(const char *s, int colon)
{
	size_t i;

	if (s == NULL || s[0] == '\0' || (s[0] >= '0' && s[0] <= '9'))
		return 0;
	for (i = 0; s[i] != '\0'; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
		    (colon && s[i] == ':')))
			return 0;
	return i < 128;
}

static void
family_free(struct metric *m)
{
	struct series *s, *n;
	size_t i;

	for (s = m->series; s != NULL; s = n) {
		n = s->next;
		for (i = 0; i < m->nlabels; i++)
			free(s->values[i]);
		free(s);
	}
	for (i = 0; i < m->nlabels; i++)
		free(m->labels[i]);
	free(m->name);
	free(m->help);
	free(m);
}

/* Parses "a,b" into m->labels. 0 or -1. */
static int
labels_parse(struct metric *m, const char *labels)
{
	char buf[256], *p, *save = NULL;

	if (labels == NULL || labels[0] == '\0')
		return 0;
	if (strlen(labels) >= sizeof(buf))
		return -1;
	strcpy(buf, labels);
	for (p = strtok_r(buf, ",", &save); p != NULL;
	    p = strtok_r(NULL, ",", &save)) {
		if (m->nlabels == METRICS_MAX_LABELS || !name_ok(p, 0) ||
		    strcmp(p, "le") == 0)
			return -1;
		if ((m->labels[m->nlabels++] = strdup(p)) == NULL)
			return -1;
	}
	return 0;
}

static struct metric *
family_get(const char *name, const char *help, enum mtype type,
    const char *labels, const double *buckets, size_t nbuckets)
{
	struct metric *m = NULL, *it;
	size_t i;

	if (!name_ok(name, 1) || nbuckets > MAX_BUCKETS ||
	    (m = calloc(1, sizeof(*m))) == NULL)
		goto bad;
	m->type = type;
	if ((m->name = strdup(name)) == NULL ||
	    (m->help = strdup(help != NULL ? help : "")) == NULL ||
	    labels_parse(m, labels) < 0)
		goto bad;
	for (i = 0; i < nbuckets; i++) {
		if (i > 0 && !(buckets[i] > buckets[i - 1]))
			goto bad;
		m->buckets[i] = buckets[i];
	}
	m->nbuckets = nbuckets;

	pthread_mutex_lock(&lock);
	for (it = families; it != NULL; it = it->next)
		if (strcmp(it->name, name) == 0)
			break;
	if (it != NULL) {
		int same = it->type == type && it->nlabels == m->nlabels;

		for (i = 0; same && i < m->nlabels; i++)
			same = strcmp(it->labels[i], m->labels[i]) == 0;
		pthread_mutex_unlock(&lock);
		family_free(m);
		if (!same)
			log_error("metrics: %s registered twice with different "
			    "type or labels", name);
		return same ? it : NULL;
	}
	m->next = families;
	families = m;
	pthread_mutex_unlock(&lock);
	return m;
bad:
	log_error("metrics: bad family %s", name != NULL ? name : "(null)");
	if (m != NULL)
		family_free(m);
	return NULL;
}

struct metric *
metrics_counter(const char *name, const char *help, const char *labels)
{
	return family_get(name, help, MT_COUNTER, labels, NULL, 0);
}

struct metric *
metrics_gauge(const char *name, const char *help, const char *labels)
{
	return family_get(name, help, MT_GAUGE, labels, NULL, 0);
}

struct metric *
metrics_histogram(const char *name, const char *help, const char *labels,
    const double *buckets, size_t nbuckets)
{
	return family_get(name, help, MT_HISTOGRAM, labels, buckets,
	    nbuckets);
}

/* The series for the label values in ap; created when new. Lock held.
 * NULL when out of memory or over METRICS_MAX_SERIES. */
static struct series *
series_get(struct metric *m, va_list ap)
{
	const char *vals[METRICS_MAX_LABELS];
	struct series *s;
	size_t i;

	for (i = 0; i < m->nlabels; i++) {
		vals[i] = va_arg(ap, const char *);
		if (vals[i] == NULL)
			vals[i] = "";
	}
	for (s = m->series; s != NULL; s = s->next) {
		for (i = 0; i < m->nlabels; i++)
			if (strcmp(s->values[i], vals[i]) != 0)
				break;
		if (i == m->nlabels)
			return s;
	}
	if (m->nseries >= METRICS_MAX_SERIES ||
	    (s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	for (i = 0; i < m->nlabels; i++) {
		if ((s->values[i] = strdup(vals[i])) == NULL) {
			while (i-- > 0)
				free(s->values[i]);
			free(s);
			return NULL;
		}
	}
	s->next = m->series;
	m->series = s;
	m->nseries++;
	return s;
}

void
metrics_add(struct metric *m, double v, ...)
{
	struct series *s;
	va_list ap;

	if (m == NULL || m->type == MT_HISTOGRAM ||
	    (m->type == MT_COUNTER && v < 0))
		return;
	va_start(ap, v);
	pthread_mutex_lock(&lock);
	if ((s = series_get(m, ap)) != NULL)
		s->v += v;
	pthread_mutex_unlock(&lock);
	va_end(ap);
}

void
metrics_set(struct metric *m, double v, ...)
{
	struct series *s;
	va_list ap;

	if (m == NULL || m->type != MT_GAUGE)
		return;
	va_start(ap, v);
	pthread_mutex_lock(&lock);
	if ((s = series_get(m, ap)) != NULL)
		s->v = v;
	pthread_mutex_unlock(&lock);
	va_end(ap);
}

void
metrics_observe(struct metric *m, double v, ...)
{
	struct series *s;
	va_list ap;
	size_t i;

	if (m == NULL || m->type != MT_HISTOGRAM)
		return;
	va_start(ap, v);
	pthread_mutex_lock(&lock);
	if ((s = series_get(m, ap)) != NULL) {
		for (i = 0; i < m->nbuckets && v > m->buckets[i]; i++)
			;
		s->counts[i]++;
		s->n++;
		s->v += v;
	}
	pthread_mutex_unlock(&lock);
	va_end(ap);
}

enum fc_err
metrics_collector_add(metrics_collector fn, void *arg)
{
	struct collector *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return FC_ENOMEM;
	c->fn = fn;
	c->arg = arg;
	pthread_mutex_lock(&lock);
	c->next = collectors;
	collectors = c;
	pthread_mutex_unlock(&lock);
	return FC_OK;
}

/* Text output into a memory stream (open_memstream grows as needed). */
static void
put_escaped(FILE *f, const char *s, int quote)
{
	for (; *s != '\0'; s++) {
		if (*s == '\\')
			fputs("\\\\", f);
		else if (*s == '\n')
			fputs("\\n", f);
		else if (*s == '"' && quote)
			fputs("\\\"", f);
		else
			fputc(*s, f);
	}
}

static void
put_value(FILE *f, double v)
{
	if (isinf(v))
		fputs(v > 0 ? "+Inf" : "-Inf", f);
	else if (isnan(v))
		fputs("NaN", f);
	else {
		/* The shortest of 15 or 17 digits that reads back exactly. */
		char b[40];

		snprintf(b, sizeof(b), "%.15g", v);
		if (strtod(b, NULL) != v)
			snprintf(b, sizeof(b), "%.17g", v);
		fputs(b, f);
	}
}

/* name{labels[,le="x"]} — le NULL for none. */
static void
put_series(FILE *f, const struct metric *m, const struct series *s,
    const char *suffix, const char *le)
{
	size_t i;

	fprintf(f, "%s%s", m->name, suffix);
	if (m->nlabels == 0 && le == NULL)
		return;
	fputc('{', f);
	for (i = 0; i < m->nlabels; i++) {
		fprintf(f, "%s%s=\"", i ? "," : "", m->labels[i]);
		put_escaped(f, s->values[i], 1);
		fputc('"', f);
	}
	if (le != NULL)
		fprintf(f, "%sle=\"%s\"", m->nlabels ? "," : "", le);
	fputc('}', f);
}

static void
render_family(FILE *f, const struct metric *m)
{
	static const char *tn[] = { "counter", "gauge", "histogram" };
	const struct series *s;
	unsigned long long cum;
	char le[64];
	size_t i;

	fprintf(f, "# HELP %s ", m->name);
	put_escaped(f, m->help, 0);
	fprintf(f, "\n# TYPE %s %s\n", m->name, tn[m->type]);
	if (m->nseries == 0 && m->nlabels == 0 && m->type != MT_HISTOGRAM) {
		fprintf(f, "%s 0\n", m->name);
		return;
	}
	for (s = m->series; s != NULL; s = s->next) {
		if (m->type != MT_HISTOGRAM) {
			put_series(f, m, s, "", NULL);
			fputc(' ', f);
			put_value(f, s->v);
			fputc('\n', f);
			continue;
		}
		cum = 0;
		for (i = 0; i <= m->nbuckets; i++) {
			cum += s->counts[i];
			if (i < m->nbuckets)
				snprintf(le, sizeof(le), "%.15g",
				    m->buckets[i]);
			else
				snprintf(le, sizeof(le), "+Inf");
			put_series(f, m, s, "_bucket", le);
			fprintf(f, " %llu\n", cum);
		}
		put_series(f, m, s, "_sum", NULL);
		fputc(' ', f);
		put_value(f, s->v);
		fputc('\n', f);
		put_series(f, m, s, "_count", NULL);
		fprintf(f, " %llu\n", s->n);
	}
}

enum fc_err
metrics_render(struct db *db, char **out, size_t *len)
{
	struct collector *c, *list = NULL;
	struct metric *m;
	FILE *f;
	char *buf = NULL;
	size_t n = 0;

	/* Collectors are never removed while running (only by reset), so
	 * walking the list without the lock is safe once read. */
	pthread_mutex_lock(&lock);
	list = collectors;
	pthread_mutex_unlock(&lock);
	for (c = list; c != NULL; c = c->next)
		c->fn(c->arg, db);

	if ((f = open_memstream(&buf, &n)) == NULL)
		return FC_ENOMEM;
	pthread_mutex_lock(&lock);
	for (m = families; m != NULL; m = m->next)
		render_family(f, m);
	pthread_mutex_unlock(&lock);
	if (fclose(f) != 0 || buf == NULL) {
		free(buf);
		return FC_ENOMEM;
	}
	*out = buf;
	*len = n;
	return FC_OK;
}

void
metrics_reset(void)
{
	struct metric *m;
	struct collector *c;

	pthread_mutex_lock(&lock);
	while ((m = families) != NULL) {
		families = m->next;
		family_free(m);
	}
	while ((c = collectors) != NULL) {
		collectors = c->next;
		free(c);
	}
	pthread_mutex_unlock(&lock);
}
