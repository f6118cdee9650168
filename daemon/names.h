/* Enum <-> name tables: the one lookup of a name in them. */
#ifndef NAMES_H
#define NAMES_H

#include <string.h>

/* The index of s among names[first .. n), or -1. */
static inline int
name_index(const char *const *names, int first, int n, const char *s)
{
	int	i;

	for (i = first; i < n; i++)
		if (names[i] != NULL && strcmp(s, names[i]) == 0)
			return (i);
	return (-1);
}

#endif
