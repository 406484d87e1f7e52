/*
 * out.c — fleetcertctl's output: JSON, aligned tables, and a horizontal
 * histogram sized to the terminal.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "ctl.h"

void
ctl_json_print(const json_t *j)
{
	json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	fputc('\n', stdout);
}

const char *
ctl_str(const json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));

	return s != NULL && s[0] != '\0' ? s : "-";
}

void
ctl_table_init(struct ctl_table *t, const char *const *heads, size_t ncols)
{
	memset(t, 0, sizeof(*t));
	t->heads = heads;
	t->ncols = ncols;
}

void
ctl_table_row(struct ctl_table *t, const char *const *cells)
{
	size_t i;
	char **nc;

	if (t->nrows == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 64;

		nc = realloc(t->cells, cap * t->ncols * sizeof(*nc));
		if (nc == NULL)
			return;
		t->cells = nc;
		t->cap = cap;
	}
	for (i = 0; i < t->ncols; i++)
		t->cells[t->nrows * t->ncols + i] = strdup(cells[i] != NULL &&
		    cells[i][0] != '\0' ? cells[i] : "-");
	t->nrows++;
}

/* Prints the rows added since the last call and forgets them. The first
 * call sizes the columns (header and its rows) and prints the header;
 * later calls keep those widths, so a long list streams page by page. */
void
ctl_table_print(struct ctl_table *t)
{
	size_t i, r;

	if (t->w == NULL) {
		if ((t->w = calloc(t->ncols, sizeof(*t->w))) == NULL)
			return;
		for (i = 0; i < t->ncols; i++)
			t->w[i] = strlen(t->heads[i]);
		for (r = 0; r < t->nrows; r++)
			for (i = 0; i < t->ncols; i++) {
				const char *c = t->cells[r * t->ncols + i];
				size_t l = c != NULL ? strlen(c) : 1;

				if (l > t->w[i])
					t->w[i] = l;
			}
		for (i = 0; i < t->ncols; i++)
			printf("%-*s%s", i + 1 < t->ncols ? (int)t->w[i] : 0,
			    t->heads[i], i + 1 < t->ncols ? "  " : "\n");
	}
	for (r = 0; r < t->nrows; r++)
		for (i = 0; i < t->ncols; i++) {
			char *c = t->cells[r * t->ncols + i];

			printf("%-*s%s", i + 1 < t->ncols ? (int)t->w[i] : 0,
			    c != NULL ? c : "-", i + 1 < t->ncols ? "  " :
			    "\n");
			free(c);
		}
	t->nrows = 0;
}

void
ctl_table_free(struct ctl_table *t)
{
	size_t i;

	for (i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t->w);
	memset(t, 0, sizeof(*t));
}

void
ctl_histogram_print(const char *const *labels, const long long *counts,
    size_t n)
{
	struct winsize ws;
	long long max = 0;
	size_t i, lw = 0;
	int cols = 80, bar, k, nw;
	char num[32];

	if (isatty(1) && ioctl(1, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 40)
		cols = ws.ws_col;
	for (i = 0; i < n; i++) {
		if (counts[i] > max)
			max = counts[i];
		if (strlen(labels[i]) > lw)
			lw = strlen(labels[i]);
	}
	nw = snprintf(num, sizeof(num), "%lld", max);
	bar = cols - (int)lw - nw - 4;
	if (bar < 10)
		bar = 10;
	for (i = 0; i < n; i++) {
		int len = max > 0 ? (int)((counts[i] * bar + max - 1) / max) :
		    0;

		printf("%-*s %*lld |", (int)lw, labels[i], nw, counts[i]);
		for (k = 0; k < len; k++)
			fputc('#', stdout);
		fputc('\n', stdout);
	}
}
