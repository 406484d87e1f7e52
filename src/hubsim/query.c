/*
 * query.c — POST /devices/query (azure-iothub.md "Query"): the subset of
 * the IoT Hub query language fleetcert needs, over device twins:
 *   SELECT * FROM devices [WHERE cond {AND|OR cond}]
 *   cond := path op literal | path IN [literal, ...] | IS_DEFINED(path)
 *           | NOT IS_DEFINED(path)
 *   op := = != <> < <= > >= ; literal := 'string' | number | true | false | null
 * AND binds tighter than OR; no parentheses. Paging: x-ms-max-item-count
 * (1-100, default 100) and an opaque x-ms-continuation token.
 * Runs in request threads; scans under sim->lock.
 */
#include "fc_build.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hubsim.h"
#include "log.h"

#define QUERY_MAX	8192
#define CONDS_MAX	32
#define PAGE_MAX	100

enum qop { Q_EQ, Q_NE, Q_LT, Q_LE, Q_GT, Q_GE, Q_IN, Q_DEF, Q_UNDEF };

struct cond {
	char		 path[256];
	enum qop	 op;
	json_t		*lit;
	int		 or_before;	/* starts a new OR group */
};

struct query {
	struct cond	 c[CONDS_MAX];
	int		 n;
};

static void
skip_ws(const char **s)
{
	while (isspace((unsigned char)**s))
		(*s)++;
}

static int
keyword(const char **s, const char *kw)
{
	size_t n = strlen(kw);

	skip_ws(s);
	if (strncasecmp(*s, kw, n) != 0)
		return 0;
	if (isalnum((unsigned char)(*s)[n]) || (*s)[n] == '_')
		return 0;
	*s += n;
	return 1;
}

static int
parse_path(const char **s, char *out, size_t outsz)
{
	size_t n = 0;

	skip_ws(s);
	while (isalnum((unsigned char)**s) || **s == '_' || **s == '.' ||
	    **s == '$') {
		if (n + 1 >= outsz)
			return -1;
		out[n++] = *(*s)++;
	}
	out[n] = '\0';
	return n > 0 ? 0 : -1;
}

static json_t *
parse_literal(const char **s)
{
	skip_ws(s);
	if (**s == '\'') {
		char buf[1024];
		size_t n = 0;
		(*s)++;
		for (;;) {
			if (**s == '\0')
				return NULL;
			if (**s == '\'') {
				if ((*s)[1] != '\'')
					break;
				(*s)++;
			}
			if (n + 1 >= sizeof(buf))
				return NULL;
			buf[n++] = *(*s)++;
		}
		(*s)++;
		buf[n] = '\0';
		return json_string(buf);
	}
	if (keyword(s, "true"))
		return json_true();
	if (keyword(s, "false"))
		return json_false();
	if (keyword(s, "null"))
		return json_null();
	if (isdigit((unsigned char)**s) || **s == '-') {
		char *end;
		double d = strtod(*s, &end);
		if (end == *s)
			return NULL;
		*s = end;
		return json_real(d);
	}
	return NULL;
}

static int
parse_cond(const char **s, struct cond *c)
{
	int neg = keyword(s, "NOT");

	if (keyword(s, "IS_DEFINED")) {
		skip_ws(s);
		if (**s != '(')
			return -1;
		(*s)++;
		if (parse_path(s, c->path, sizeof(c->path)) != 0)
			return -1;
		skip_ws(s);
		if (**s != ')')
			return -1;
		(*s)++;
		c->op = neg ? Q_UNDEF : Q_DEF;
		return 0;
	}
	if (neg || parse_path(s, c->path, sizeof(c->path)) != 0)
		return -1;
	if (keyword(s, "IN")) {
		c->op = Q_IN;
		c->lit = json_array();
		skip_ws(s);
		if (c->lit == NULL || **s != '[')
			return -1;
		(*s)++;
		for (;;) {
			json_t *v;
			if (json_array_size(c->lit) >= 1000)
				return -1;
			v = parse_literal(s);
			if (v == NULL || json_array_append_new(c->lit, v) != 0)
				return -1;
			skip_ws(s);
			if (**s == ']')
				break;
			if (**s != ',')
				return -1;
			(*s)++;
		}
		(*s)++;
		return 0;
	}
	skip_ws(s);
	if (strncmp(*s, "!=", 2) == 0 || strncmp(*s, "<>", 2) == 0) {
		c->op = Q_NE;
		*s += 2;
	} else if (strncmp(*s, "<=", 2) == 0) {
		c->op = Q_LE;
		*s += 2;
	} else if (strncmp(*s, ">=", 2) == 0) {
		c->op = Q_GE;
		*s += 2;
	} else if (**s == '=') {
		c->op = Q_EQ;
		(*s)++;
	} else if (**s == '<') {
		c->op = Q_LT;
		(*s)++;
	} else if (**s == '>') {
		c->op = Q_GT;
		(*s)++;
	} else {
		return -1;
	}
	c->lit = parse_literal(s);
	return c->lit != NULL ? 0 : -1;
}

static void
query_free(struct query *q)
{
	int i;

	for (i = 0; i < q->n; i++)
		json_decref(q->c[i].lit);
}

static int
query_parse(const char *s, struct query *q)
{
	memset(q, 0, sizeof(*q));
	if (!keyword(&s, "SELECT"))
		return -1;
	skip_ws(&s);
	if (*s++ != '*')
		return -1;
	if (!keyword(&s, "FROM") || !keyword(&s, "devices"))
		return -1;
	skip_ws(&s);
	if (*s == '\0')
		return 0;
	if (!keyword(&s, "WHERE"))
		return -1;
	for (;;) {
		if (q->n >= CONDS_MAX)
			return -1;
		if (parse_cond(&s, &q->c[q->n]) != 0) {
			q->n++;
			return -1;
		}
		q->n++;
		skip_ws(&s);
		if (*s == '\0')
			return 0;
		if (keyword(&s, "AND"))
			continue;
		if (keyword(&s, "OR")) {
			if (q->n >= CONDS_MAX)
				return -1;
			q->c[q->n].or_before = 1;
			continue;
		}
		return -1;
	}
}

/* Resolves a dotted path against the twin without building it. The
 * returned value is borrowed, or new in *tmp (caller decrefs). */
static json_t *
resolve(struct sim_dev *d, const char *path, json_t **tmp)
{
	char buf[256], *save = NULL, *tok;
	json_t *cur;

	*tmp = NULL;
	if (strcmp(path, "deviceId") == 0)
		return *tmp = json_string(d->id);
	if (strcmp(path, "status") == 0)
		return *tmp = json_string(d->enabled ? "enabled" : "disabled");
	if (strcmp(path, "connectionState") == 0)
		return *tmp = json_string(d->sd && d->sd->connected ?
		    "Connected" : "Disconnected");
	if (strcmp(path, "authenticationType") == 0)
		return *tmp = json_string(d->auth_type);
	snprintf(buf, sizeof(buf), "%s", path);
	if (strncmp(buf, "tags.", 5) == 0) {
		cur = d->tags;
		tok = strtok_r(buf + 5, ".", &save);
	} else if (strncmp(buf, "properties.desired.", 19) == 0) {
		cur = d->desired;
		tok = strtok_r(buf + 19, ".", &save);
	} else if (strncmp(buf, "properties.reported.", 20) == 0) {
		cur = d->reported;
		tok = strtok_r(buf + 20, ".", &save);
	} else {
		return NULL;
	}
	while (tok != NULL && cur != NULL) {
		cur = json_object_get(cur, tok);
		tok = strtok_r(NULL, ".", &save);
	}
	return cur;
}

static int
cmp_ok(json_t *v, enum qop op, json_t *lit)
{
	int c;

	if (op == Q_EQ)
		return v != NULL && (json_equal(v, lit) || (json_is_number(v) &&
		    json_is_number(lit) && json_number_value(v) ==
		    json_number_value(lit)));
	if (op == Q_NE)
		return v != NULL && !cmp_ok(v, Q_EQ, lit);
	if (op == Q_IN) {
		size_t i;
		for (i = 0; i < json_array_size(lit); i++)
			if (cmp_ok(v, Q_EQ, json_array_get(lit, i)))
				return 1;
		return 0;
	}
	if (v == NULL)
		return 0;
	if (json_is_number(v) && json_is_number(lit)) {
		double a = json_number_value(v), b = json_number_value(lit);
		c = a < b ? -1 : a > b;
	} else if (json_is_string(v) && json_is_string(lit)) {
		c = strcmp(json_string_value(v), json_string_value(lit));
	} else {
		return 0;
	}
	switch (op) {
	case Q_LT: return c < 0;
	case Q_LE: return c <= 0;
	case Q_GT: return c > 0;
	case Q_GE: return c >= 0;
	default: return 0;
	}
}

static int
matches(struct sim_dev *d, struct query *q)
{
	int i, group = 1;

	if (q->n == 0)
		return 1;
	for (i = 0; i < q->n; i++) {
		struct cond *c = &q->c[i];
		json_t *tmp, *v;
		int ok;

		if (c->or_before) {
			if (group)
				return 1;
			group = 1;
		}
		v = resolve(d, c->path, &tmp);
		if (c->op == Q_DEF)
			ok = v != NULL;
		else if (c->op == Q_UNDEF)
			ok = v == NULL;
		else
			ok = cmp_ok(v, c->op, c->lit);
		json_decref(tmp);
		group = group && ok;
	}
	return group;
}

void
query_handle(struct sim *sim, struct sim_req *req, struct sim_reply *rep)
{
	const char *mic = http_header(req, "x-ms-max-item-count");
	const char *cont = http_header(req, "x-ms-continuation");
	json_t *body, *out = NULL;
	const char *text;
	struct query q;
	unsigned char *after = NULL;
	size_t after_len = 0, i, lo, hi;
	long max = PAGE_MAX;
	char *end, last[FC_DEVICE_ID_MAX] = "", *tok = NULL;

	memset(&q, 0, sizeof(q));
	body = http_body_json(sim, req, rep);
	if (body == NULL)
		return;
	text = json_string_value(json_object_get(body, "query"));
	if (text == NULL || strlen(text) > QUERY_MAX) {
		reply_error(sim, rep, 400004, "ArgumentInvalid",
		    "body must be {\"query\": \"SELECT * FROM devices ...\"}");
		goto out;
	}
	if (mic != NULL) {
		max = strtol(mic, &end, 10);
		if (*mic == '\0' || *end != '\0' || max < 1 || max > PAGE_MAX) {
			reply_error(sim, rep, 400004, "ArgumentInvalid",
			    "x-ms-max-item-count must be 1-%d", PAGE_MAX);
			goto out;
		}
	}
	if (cont != NULL && cont[0] != '\0' &&
	    (fc_b64_decode(cont, &after, &after_len) != FC_OK ||
	    after_len == 0 || after_len >= FC_DEVICE_ID_MAX ||
	    memchr(after, 0, after_len) != NULL)) {
		reply_error(sim, rep, 400004, "ArgumentInvalid",
		    "x-ms-continuation is not a token this hub issued");
		goto out;
	}
	if (query_parse(text, &q) != 0) {
		reply_error(sim, rep, 400004, "ArgumentInvalid",
		    "query not supported by the simulator: %.200s", text);
		goto out;
	}
	out = json_array();
	pthread_mutex_lock(&sim->lock);
	/* Start after the last id of the previous page (ids are sorted). */
	lo = 0;
	hi = sim->ndevs;
	if (after != NULL) {
		char a[FC_DEVICE_ID_MAX];
		memcpy(a, after, after_len);
		a[after_len] = '\0';
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;
			if (strcmp(sim->devs[mid]->id, a) <= 0)
				lo = mid + 1;
			else
				hi = mid;
		}
	}
	for (i = lo; i < sim->ndevs; i++) {
		struct sim_dev *d = sim->devs[i];
		if (!d->registered || !matches(d, &q))
			continue;
		if ((long)json_array_size(out) == max) {
			/* More remain: hand out a continuation. */
			if (fc_b64_encode((unsigned char *)last, strlen(last),
			    &tok) != FC_OK)
				tok = NULL;
			break;
		}
		json_array_append_new(out, twin_json(d));
		snprintf(last, sizeof(last), "%s", d->id);
	}
	pthread_mutex_unlock(&sim->lock);
	if (tok != NULL)
		reply_header(rep, "x-ms-continuation", tok);
	reply_header(rep, "x-ms-item-type", "Twin");
	reply_json(rep, 200, out);
	out = NULL;
out:
	free(tok);
	free(after);
	query_free(&q);
	json_decref(out);
	json_decref(body);
}
