/*-------------------------------------------------------------------------
 *
 * json_line.c
 *	  The fields of a JSON object on one line, as `taskorch worker --stdio`
 *	  reads its command's answers: where the value of a top-level key
 *	  starts and how long it is, as written (the server parses it).
 *
 *-------------------------------------------------------------------------
 */
#include "taskorch_cli.h"

#include <string.h>

static const char *
skip_space(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
		p++;
	return p;
}

/* The end of the string starting at p (a '"'), after its closing quote; NULL: malformed */
static const char *
skip_string(const char *p)
{
	for (p++; *p; p++)
	{
		if (*p == '\\')
		{
			if (*++p == '\0')
				return NULL;
		}
		else if (*p == '"')
			return p + 1;
	}
	return NULL;
}

/* The end of the value starting at p; NULL: malformed */
static const char *
skip_value(const char *p)
{
	int			depth = 0;

	p = skip_space(p);
	if (*p == '"')
		return skip_string(p);
	if (*p != '{' && *p != '[')
	{
		/* a number, true, false, null */
		const char *start = p;

		while (*p && strchr(",}] \t\r\n", *p) == NULL)
			p++;
		return p > start ? p : NULL;
	}
	for (; *p; p++)
	{
		if (*p == '"')
		{
			p = skip_string(p);
			if (p == NULL)
				return NULL;
			p--;
		}
		else if (*p == '{' || *p == '[')
			depth++;
		else if (*p == '}' || *p == ']')
		{
			if (--depth == 0)
				return p + 1;
		}
	}
	return NULL;
}

/*
 * The value of top-level key `key` of the JSON object in `line`: true and
 * *value, *len set, or false (no such key, or not an object).  A key is
 * compared as written (no escapes in the keys we read).
 */
bool
json_line_field(const char *line, const char *key, const char **value, size_t *len)
{
	const char *p = skip_space(line);
	size_t		klen = strlen(key);

	if (*p != '{')
		return false;
	p = skip_space(p + 1);
	while (*p == '"')
	{
		const char *kstart = p + 1;
		const char *kend = skip_string(p);
		const char *vstart;
		const char *vend;

		if (kend == NULL)
			return false;
		p = skip_space(kend);
		if (*p != ':')
			return false;
		vstart = skip_space(p + 1);
		vend = skip_value(vstart);
		if (vend == NULL)
			return false;
		if ((size_t) (kend - 1 - kstart) == klen && strncmp(kstart, key, klen) == 0)
		{
			*value = vstart;
			*len = vend - vstart;
			return true;
		}
		p = skip_space(vend);
		if (*p != ',')
			return false;
		p = skip_space(p + 1);
	}
	return false;
}
