/*-------------------------------------------------------------------------
 *
 * output.c
 *	  Query results for a terminal: an aligned table, as psql prints one,
 *	  or one row as "field: value" lines.  (--json output is made by the
 *	  server: the commands ask it for JSON.)
 *
 *-------------------------------------------------------------------------
 */
#include "taskorch_cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Characters shown for a UTF-8 string (its bytes but continuation bytes) */
static int
width(const char *s)
{
	int			n = 0;

	for (; *s; s++)
		if (((unsigned char) *s & 0xC0) != 0x80)
			n++;
	return n;
}

static void
pad(int n)
{
	while (n-- > 0)
		putchar(' ');
}

void
print_table(PGresult *res)
{
	int			ncols = PQnfields(res);
	int			nrows = PQntuples(res);
	int		   *w = xmalloc(sizeof(int) * (ncols ? ncols : 1));

	for (int c = 0; c < ncols; c++)
	{
		w[c] = width(PQfname(res, c));
		for (int r = 0; r < nrows; r++)
		{
			int			cw = width(PQgetvalue(res, r, c));

			if (cw > w[c])
				w[c] = cw;
		}
	}
	for (int c = 0; c < ncols; c++)
	{
		const char *name = PQfname(res, c);

		printf("%s%s", c ? " | " : " ", name);
		if (c < ncols - 1)
			pad(w[c] - width(name));
	}
	putchar('\n');
	for (int c = 0; c < ncols; c++)
	{
		printf("%s", c ? "-+-" : "-");
		for (int i = 0; i < w[c]; i++)
			putchar('-');
	}
	printf("-\n");
	for (int r = 0; r < nrows; r++)
	{
		for (int c = 0; c < ncols; c++)
		{
			const char *v = PQgetvalue(res, r, c);

			printf("%s%s", c ? " | " : " ", v);
			if (c < ncols - 1)
				pad(w[c] - width(v));
		}
		putchar('\n');
	}
	printf("(%d row%s)\n", nrows, nrows == 1 ? "" : "s");
	free(w);
}

void
print_record(PGresult *res, int row)
{
	int			ncols = PQnfields(res);
	int			w = 0;

	for (int c = 0; c < ncols; c++)
		if (width(PQfname(res, c)) > w)
			w = width(PQfname(res, c));
	for (int c = 0; c < ncols; c++)
	{
		if (PQgetisnull(res, row, c))
			continue;
		printf("%s:", PQfname(res, c));
		pad(w - width(PQfname(res, c)) + 1);
		printf("%s\n", PQgetvalue(res, row, c));
	}
}
