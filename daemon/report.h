/*
 * How capabilities add their figures to `status` and `metrics.get`: the
 * handlers build the contract's full shape with empty values, then every
 * registered reporter overwrites the members it owns.
 */
#ifndef REPORT_H
#define REPORT_H

#include <jansson.h>

struct reporter {
	void	(*status)(json_t *status);	/* may be NULL */
	void	(*metrics)(json_t *metrics);	/* may be NULL */
};

void	report_register(const struct reporter *);

#endif
