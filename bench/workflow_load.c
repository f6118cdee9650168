/*
 * workflow_load: durable step transitions per second. Submits workflows of
 * STEPS `sleep 0` steps - one chain (-m seq) or WIDTH parallel chains
 * (-m par) - CONC at a time on one connection, waits for each, and prints
 * how many step transitions (running + succeeded: two per step, each
 * committed before the next action) the daemon made durable per second.
 *
 * usage: workflow_load -s SOCKET [-m seq|par] [-n STEPS] [-w WIDTH]
 *                      [-c CONC] [-t SECONDS]
 */

#include <err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "erm.h"

static double
now_s(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
}

static json_t *
build(int par, int steps, int width)
{
	json_t	*a = json_array(), *s;
	char	 name[32], prev[32];
	int	 i;

	for (i = 0; i < steps; i++) {
		snprintf(name, sizeof(name), "s%d", i);
		s = json_pack("{s:s, s:{s:s, s:i}}", "name", name, "action",
		    "type", "sleep", "ms", 0);
		if (par) {
			/* Chain k holds steps k, k + width, k + 2 width... */
			if (i < width)
				json_object_set_new(s, "after", json_array());
			else {
				snprintf(prev, sizeof(prev), "s%d", i - width);
				json_object_set_new(s, "after",
				    json_pack("[s]", prev));
			}
		}
		json_array_append_new(a, s);
	}
	return (json_pack("{s:s, s:o}", "name", "bench", "steps", a));
}

int
main(int argc, char *argv[])
{
	struct erm_client	*c;
	const char		*sock = NULL, *mode = "seq";
	json_t			*spec, *res, *p;
	int64_t			*ids;
	char			(*wid)[64];
	double			 t0, t, secs = 3;
	long			 done = 0;
	int			 ch, steps = 100, width = 10, conc = 1, i, par;
	enum erm_status		 st;

	while ((ch = getopt(argc, argv, "s:m:n:w:c:t:")) != -1) {
		switch (ch) {
		case 's':
			sock = optarg;
			break;
		case 'm':
			mode = optarg;
			break;
		case 'n':
			steps = atoi(optarg);
			break;
		case 'w':
			width = atoi(optarg);
			break;
		case 'c':
			conc = atoi(optarg);
			break;
		case 't':
			secs = atof(optarg);
			break;
		default:
			fprintf(stderr, "usage: workflow_load -s SOCKET "
			    "[-m seq|par] [-n STEPS] [-w WIDTH] [-c CONC] "
			    "[-t SECONDS]\n");
			return (2);
		}
	}
	par = strcmp(mode, "par") == 0;
	if (steps < 1 || width < 1 || conc < 1)
		errx(2, "bad numbers");
	if ((st = erm_connect(&c, sock)) != ERM_OK)
		errx(1, "connect: %s", erm_strerror(st));
	spec = build(par, steps, width);
	ids = calloc((size_t)conc, sizeof(*ids));
	wid = calloc((size_t)conc, sizeof(*wid));
	if (ids == NULL || wid == NULL)
		err(1, "calloc");
	t0 = now_s();
	do {
		for (i = 0; i < conc; i++)
			if ((st = erm_send(c, "workflow.create", spec,
			    &ids[i])) != ERM_OK)
				errx(1, "send: %s", erm_strerror(st));
		for (i = 0; i < conc; i++) {
			if ((st = erm_wait(c, ids[i], &res)) != ERM_OK)
				errx(1, "workflow.create: %s: %s",
				    erm_strerror(st), erm_last_error(c)->message);
			snprintf(wid[i], sizeof(wid[i]), "%s", json_string_value(
			    json_object_get(res, "id")));
			json_decref(res);
		}
		for (i = 0; i < conc; i++) {
			p = json_pack("{s:s}", "id", wid[i]);
			if ((st = erm_send(c, "workflow.wait", p, &ids[i])) !=
			    ERM_OK)
				errx(1, "send: %s", erm_strerror(st));
			json_decref(p);
		}
		for (i = 0; i < conc; i++) {
			if ((st = erm_wait(c, ids[i], &res)) != ERM_OK)
				errx(1, "workflow.wait: %s", erm_strerror(st));
			if (strcmp(erm_workflow_state(res), "succeeded") != 0)
				errx(1, "a workflow ended %s",
				    erm_workflow_state(res));
			json_decref(res);
			done++;
		}
		t = now_s() - t0;
	} while (t < secs);
	printf("mode=%s steps=%d width=%d conc=%d workflows=%ld seconds=%.2f "
	    "transitions_per_s=%.0f steps_per_s=%.0f\n", mode, steps,
	    par ? width : 1, conc, done, t, 2.0 * steps * done / t,
	    (double)steps * done / t);
	json_decref(spec);
	free(ids);
	free(wid);
	erm_close(c);
	return (0);
}
