/* Load a Unix-socket server with pipelined requests; report rate, latency. */

/*
 * One thread, one epoll loop, CONNS connections, each keeping PIPELINE
 * requests in flight: PIPELINE are sent at the start, then one more for each
 * reply, all the requests one read() settled going out in one write(). The
 * protocol is ermd's (-p erm: a 4-byte big-endian length, then JSON) or
 * Redis's (-p resp). Nothing here parses JSON: an erm request is the -m
 * template with %ID% replaced by the next integer, cut up once at start, and
 * a reply is found by its length prefix and matched by the integer "id" of
 * its outermost object, so the load generator costs about what the cheapest
 * server costs. With -r a RESP "call" is a sequence of commands sent
 * together and done when all of their replies are in. -S (RESP, -P 1) sends
 * them one at a time instead: command k+1 goes out when the reply to command
 * k arrives, one round trip per command, as a client that needs each answer
 * before its next step (a Redis-backed circuit breaker: read the state, make
 * the protected call, count its outcome) has to; the call is done, and its
 * latency taken from the first command's write, when the last reply is in.
 *
 * Latency is CLOCK_MONOTONIC from the write() that carried a request to the
 * read() that brought its reply. After -w seconds of warm-up the counters
 * start; after -d more seconds the program prints one line of key=value and
 * exits, whatever is still in flight. -x PID adds the server's CPU time per
 * request from /proc schedstat over exactly that window, and the part of it
 * the kernel spent on the server's behalf (/proc/PID/stat). -R only waits until
 * the server answers one request (up to -d seconds): exit 0 when it did.
 * -b polls epoll without sleeping, so that the load generator's own CPU never
 * idles and its wake-up cost drops out of the latency; -H prints the whole
 * latency histogram on stderr.
 *
 * Many keys: with -K N every %R% in the -m template or the -r commands
 * becomes a key number drawn uniformly from [0, N) for each request (or
 * call; the same number at every %R% of one call), zero-padded to the width
 * of N - 1 so that a RESP call keeps its length. -F first walks every key
 * once in order (unmeasured; the warm-up and the measured run start when it
 * is done), so that whatever the server creates on first use exists.
 *
 * Breaker pairs: -B N (ermd only) makes one unit of work a breaker.acquire
 * on breaker PREFIX<key> (-n PREFIX, default "b"; keys as with -K N) and,
 * when its reply brings the permit, a breaker.record of outcome "success"
 * with that permit on the same connection. The pair is done, and its
 * latency taken from the acquire's write, when the record's reply arrives;
 * an acquire refused (an error, or no permit) or a record not
 * "recorded":true ends the pair as an error.
 */

#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include <dirent.h>
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "erm_proto.h"

#define DEFAULT_TEMPLATE \
	"{\"id\":%ID%,\"method\":\"ping\",\"params\":{}}"
#define ID_MARK			"%ID%"
#define MAX_ID_DIGITS		20
#define MAX_PIECES		16
#define KEY_MARK		"%R%"
#define MAX_PERMIT		128	/* longest permit a reply may carry */
#define MAX_CMDS		64
#define MAX_ARGS		64
#define RESP_MAX_DEPTH		8
#define RBUF_INIT		(64 * 1024)
#define MAX_EVENTS		256

enum proto {
	P_ERM,
	P_RESP,
};

/* One request (or, for RESP, one command sequence) waiting for its reply. */
struct slot {
	uint64_t	 id;
	uint64_t	 sent_ns;	/* pairs: when the acquire went out */
	uint32_t	 key;
	uint8_t		 record;	/* pairs: the record is in flight */
	uint8_t		 fill;		/* part of the -F pass */
};

/* A request template cut at its marks: piece, mark, piece, ... */
enum mark {
	MK_END,
	MK_ID,
	MK_KEY,
	MK_PERMIT,
};

struct tmpl {
	const char	*piece[MAX_PIECES];
	size_t		 len[MAX_PIECES];
	enum mark	 mark[MAX_PIECES];	/* what follows piece[i] */
	int		 n;
	int		 nmark[4];
	size_t		 max;			/* longest body it can give */
};

struct conn {
	int		 fd;
	uint32_t	 events;	/* what epoll watches now */
	uint8_t		*rbuf;
	size_t		 rlen;
	size_t		 rcap;
	uint8_t		*wbuf;
	size_t		 woff;		/* first unsent byte */
	size_t		 wlen;
	size_t		 wcap;
	struct slot	*ring;		/* in flight, oldest at head */
	size_t		 head;
	size_t		 count;
	int		 replies;	/* RESP: replies in for the head call */
	int		 call_err;	/* RESP: one of them was an error */
};

/*
 * Latency histogram in nanoseconds, log-linear like HdrHistogram: values
 * below 2^SUB_BITS are exact, above that each power of two is cut into
 * 2^SUB_BITS buckets, so a reported percentile is within about 3% of the
 * true value while recording stays one increment.
 */
#define SUB_BITS	5
#define SUB		(1 << SUB_BITS)
#define NBUCKETS	(64 * SUB)

struct hist {
	uint64_t	 n[NBUCKETS];
	uint64_t	 total;
	uint64_t	 sum;
	uint64_t	 max;
};

static enum proto	 proto = P_ERM;
static const char	*sockpath;
static int		 nconns = 1;
static int		 pipeline = 1;
static double		 duration = 3.0;
static double		 warmup = 0.0;
static int		 probe;
static int		 dump_hist;
static int		 busy_poll;
static pid_t		 server_pid = -1;

/* ERM: the request template (pairs: acquire and record templates). */
static struct tmpl	 req_tmpl, rec_tmpl;
static size_t		 req_max;	/* longest frame any request can give */
static uint64_t		 next_id = 1;

/* RESP: one call is a fixed byte string of ncmds commands. */
static uint8_t		*call_buf;
static size_t		 call_len;
static int		 ncmds;
static size_t		 key_off[MAX_ARGS];	/* where each %R% went */
static int		 nkey_off;
static size_t		 cmd_off[MAX_CMDS + 1];	/* where each command starts */
static int		 sequential;		/* -S: one command per trip */

/* -K / -B: keys, the fill pass, breaker pairs. */
static uint64_t		 nkeys;		/* 0: no %R% */
static int		 key_width;
static int		 fill_pass;
static uint64_t		 fill_next, fill_total, fill_left, fill_errors;
static int		 pairs;
static const char	*name_prefix = "b";
static uint64_t		 rng_state;

static struct hist	 hist;
static uint64_t		 completed;
static uint64_t		 errors;
static int		 measuring;
static char		 first_err[160];	/* shown once, to say why */
static int		 stopping;

static void
usage(void)
{
	fprintf(stderr, "usage: loadgen -p erm|resp -s SOCKET [-c CONNS] "
	    "[-P PIPELINE] [-d SECONDS]\n"
	    "               [-w WARMUP_SECONDS] [-m REQUEST_TEMPLATE] "
	    "[-r \"CMD ARG|CMD ARG...\"]\n"
	    "               [-K NKEYS] [-B NBREAKERS [-n PREFIX]] [-F] "
	    "[-S]\n"
	    "               [-x SERVER_PID] [-b] [-H] [-R]\n");
	exit(2);
}

static uint64_t
now_ns(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
}

static double
parse_num(const char *s, const char *what, double min, double max)
{
	char	*end;
	double	 v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		errx(2, "%s: bad value '%s' (%g..%g)", what, s, min, max);
	return (v);
}

static int
parse_int(const char *s, const char *what, int min, int max)
{
	char	*end;
	long	 v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		errx(2, "%s: bad value '%s' (%d..%d)", what, s, min, max);
	return ((int)v);
}

static size_t
hist_index(uint64_t v)
{
	int	e;

	if (v < SUB)
		return ((size_t)v);
	e = 63 - __builtin_clzll(v);
	return ((size_t)(e - SUB_BITS + 1) * SUB +
	    ((v >> (e - SUB_BITS)) & (SUB - 1)));
}

/* The middle of bucket i, in nanoseconds. */
static double
hist_value(size_t i)
{
	size_t		k = i / SUB, s = i % SUB;
	uint64_t	low, width;

	if (k == 0)
		return ((double)i);
	low = (uint64_t)(SUB + s) << (k - 1);
	width = (uint64_t)1 << (k - 1);
	return ((double)low + (double)(width - 1) / 2.0);
}

static void
hist_add(struct hist *h, uint64_t v)
{
	h->n[hist_index(v)]++;
	h->total++;
	h->sum += v;
	if (v > h->max)
		h->max = v;
}

static double
hist_quantile_us(const struct hist *h, double q)
{
	uint64_t	want, seen = 0;
	size_t		i;

	if (h->total == 0)
		return (0.0);
	want = (uint64_t)(q * (double)h->total + 0.999999);
	if (want == 0)
		want = 1;
	for (i = 0; i < NBUCKETS; i++) {
		seen += h->n[i];
		if (seen >= want)
			return (hist_value(i) / 1000.0);
	}
	return ((double)h->max / 1000.0);
}

/*
 * What the server has spent on the CPUs: cpu_ns from the first field of
 * /proc/PID/task/TID/schedstat summed over its threads, so that a server
 * with worker threads is charged for all of them; user and sys, in clock
 * ticks, from /proc/PID/stat (all threads), which split cpu_ns into the
 * server's own code and the kernel's work for it. All zero when the
 * process is gone or /proc lacks them.
 */
struct srv_times {
	uint64_t	cpu_ns;
	uint64_t	user, sys;
};

static void
server_times(pid_t pid, struct srv_times *st)
{
	char		 path[64], line[1024], *p;
	DIR		*d;
	struct dirent	*de;
	FILE		*f;
	unsigned long long v, ut, stime;

	memset(st, 0, sizeof(*st));
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	if ((d = opendir(path)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (snprintf(path, sizeof(path), "/proc/%d/task/%s/schedstat",
		    (int)pid, de->d_name) >= (int)sizeof(path))
			continue;
		if ((f = fopen(path, "r")) == NULL)
			continue;
		if (fgets(line, sizeof(line), f) != NULL &&
		    sscanf(line, "%llu", &v) == 1)
			st->cpu_ns += v;
		fclose(f);
	}
	closedir(d);
	/* Fields 14 and 15; the name before them may hold blanks. */
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return;
	if (fgets(line, sizeof(line), f) != NULL &&
	    (p = strrchr(line, ')')) != NULL &&
	    sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u"
	    " %llu %llu", &ut, &stime) == 2) {
		st->user = ut;
		st->sys = stime;
	}
	fclose(f);
}

/*
 * Busy and stolen time of the whole machine from the first line of
 * /proc/stat, in nanoseconds. What is busy beyond the server and this
 * process is other load on the machine, which the report shows so that a
 * disturbed run can be told from a slow server.
 */
static void
machine_cpu_ns(uint64_t *busy, uint64_t *steal)
{
	unsigned long long	 v[8];
	FILE			*f;
	long			 hz = sysconf(_SC_CLK_TCK);
	int			 n = 0;

	*busy = *steal = 0;
	if ((f = fopen("/proc/stat", "r")) == NULL)
		return;
	n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0],
	    &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);
	fclose(f);
	if (n != 8 || hz <= 0)
		return;
	/* user nice system idle iowait irq softirq steal */
	*busy = (v[0] + v[1] + v[2] + v[5] + v[6]) * (1000000000u / hz);
	*steal = v[7] * (1000000000u / hz);
}

static uint64_t
self_cpu_ns(void)
{
	struct rusage	ru;

	getrusage(RUSAGE_SELF, &ru);
	return ((uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) *
	    1000000000u + (uint64_t)(ru.ru_utime.tv_usec +
	    ru.ru_stime.tv_usec) * 1000u);
}

/* A random number, xorshift64*: cheap enough to cost nothing here. */
static uint64_t
rng_next(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (rng_state * 0x2545F4914F6CDD1DULL);
}

/*
 * The key of the next request or call: the -F pass's keys in order first,
 * then uniform in [0, nkeys).
 */
static uint32_t
next_key(uint8_t *fill)
{
	if (fill_next < fill_total) {
		*fill = 1;
		return ((uint32_t)fill_next++);
	}
	*fill = 0;
	if (nkeys == 0)
		return (0);
	return ((uint32_t)(((unsigned __int128)rng_next() * nkeys) >> 64));
}

/* Write key zero-padded to key_width digits at dst. */
static void
put_key(uint8_t *dst, uint32_t key)
{
	int	i;

	for (i = key_width - 1; i >= 0; i--) {
		dst[i] = (uint8_t)('0' + key % 10);
		key /= 10;
	}
}

/*
 * Cut a request template at each %ID% (and %R%, and %P% where the caller
 * allows a permit) so a frame is a few memcpys.
 */
static void
tmpl_compile(struct tmpl *t, const char *s, int permit_ok, const char *what)
{
	static const struct {
		const char	*text;
		enum mark	 mark;
	} marks[] = {
		{ ID_MARK, MK_ID }, { KEY_MARK, MK_KEY }, { "%P%", MK_PERMIT },
	};
	const char	*p = s, *m, *best;
	size_t		 fixed = 0, k, bestk = 0;

	memset(t, 0, sizeof(*t));
	for (;;) {
		if (t->n == MAX_PIECES)
			errx(2, "%s: too many marks", what);
		best = NULL;
		for (k = 0; k < sizeof(marks) / sizeof(marks[0]); k++) {
			if (marks[k].mark == MK_PERMIT && !permit_ok)
				continue;
			m = strstr(p, marks[k].text);
			if (m != NULL && (best == NULL || m < best)) {
				best = m;
				bestk = k;
			}
		}
		t->piece[t->n] = p;
		t->len[t->n] = best == NULL ? strlen(p) : (size_t)(best - p);
		t->mark[t->n] = best == NULL ? MK_END : marks[bestk].mark;
		fixed += t->len[t->n];
		t->nmark[t->mark[t->n]]++;
		t->n++;
		if (best == NULL)
			break;
		p = best + strlen(marks[bestk].text);
	}
	if (t->nmark[MK_ID] == 0)
		errx(2, "%s: the template needs %s where the id goes", what,
		    ID_MARK);
	if (t->nmark[MK_KEY] > 0 && nkeys == 0)
		errx(2, "%s: %s needs -K or -B", what, KEY_MARK);
	if (t->nmark[MK_KEY] == 0 && nkeys > 0)
		errx(2, "%s: -K wants %s in the template", what, KEY_MARK);
	t->max = fixed + (size_t)t->nmark[MK_ID] * MAX_ID_DIGITS +
	    (size_t)t->nmark[MK_KEY] * (size_t)key_width +
	    (size_t)t->nmark[MK_PERMIT] * MAX_PERMIT;
	if (t->max > ERM_MAX_FRAME_DEFAULT)
		errx(2, "%s: template longer than a frame may be", what);
}

/* Append one request frame at dst; returns its length. */
static size_t
tmpl_frame(uint8_t *dst, const struct tmpl *t, uint64_t id, uint32_t key,
    const uint8_t *permit, size_t permit_len)
{
	char	 digits[MAX_ID_DIGITS];
	size_t	 nd = 0, off = ERM_FRAME_HDR, i;
	int	 k;

	do {
		digits[nd++] = (char)('0' + id % 10);
		id /= 10;
	} while (id != 0);
	for (k = 0; k < t->n; k++) {
		memcpy(dst + off, t->piece[k], t->len[k]);
		off += t->len[k];
		switch (t->mark[k]) {
		case MK_END:
			break;
		case MK_ID:
			for (i = 0; i < nd; i++)
				dst[off++] = (uint8_t)digits[nd - 1 - i];
			break;
		case MK_KEY:
			put_key(dst + off, key);
			off += (size_t)key_width;
			break;
		case MK_PERMIT:
			memcpy(dst + off, permit, permit_len);
			off += permit_len;
			break;
		}
	}
	erm_frame_header(dst, (uint32_t)(off - ERM_FRAME_HDR));
	return (off);
}

/* The request template(s): -m, or the breaker pair's two. */
static void
erm_template(const char *tmpl)
{
	static char	acq[256], rec[320];
	const char	*p;

	if (!pairs) {
		tmpl_compile(&req_tmpl, tmpl, 0, "-m");
		req_max = ERM_FRAME_HDR + req_tmpl.max;
		return;
	}
	for (p = name_prefix; *p != '\0'; p++)
		if (*p == '"' || *p == '\\' || *p == '%' ||
		    (unsigned char)*p < ' ')
			errx(2, "-n: a breaker name prefix without quotes, "
			    "backslashes or %%");
	if (strlen(name_prefix) > 100)
		errx(2, "-n: prefix too long");
	snprintf(acq, sizeof(acq), "{\"id\":%s,\"method\":"
	    "\"breaker.acquire\",\"params\":{\"name\":\"%s%s\"}}", ID_MARK,
	    name_prefix, KEY_MARK);
	snprintf(rec, sizeof(rec), "{\"id\":%s,\"method\":"
	    "\"breaker.record\",\"params\":{\"name\":\"%s%s\","
	    "\"permit\":\"%%P%%\",\"outcome\":\"success\"}}", ID_MARK,
	    name_prefix, KEY_MARK);
	tmpl_compile(&req_tmpl, acq, 0, "acquire");
	tmpl_compile(&rec_tmpl, rec, 1, "record");
	req_max = ERM_FRAME_HDR + (req_tmpl.max > rec_tmpl.max ?
	    req_tmpl.max : rec_tmpl.max);
}

/* Append one request frame (a pair's acquire) for id at dst. */
static size_t
erm_request(uint8_t *dst, uint64_t id, uint32_t key)
{
	return (tmpl_frame(dst, &req_tmpl, id, key, NULL, 0));
}

/*
 * The permit of an acquire reply: a search for "permit":" is enough, as
 * ermd writes its replies compactly. Returns its length, 0 when none.
 */
static size_t
find_permit(const uint8_t *b, size_t len, const uint8_t **permit)
{
	static const char	 key[] = "\"permit\":\"";
	const uint8_t		*p, *q;

	p = memmem(b, len, key, sizeof(key) - 1);
	if (p == NULL)
		return (0);
	p += sizeof(key) - 1;
	q = memchr(p, '"', len - (size_t)(p - b));
	if (q == NULL || q == p || memchr(p, '\\', (size_t)(q - p)) != NULL)
		return (0);
	if ((size_t)(q - p) > MAX_PERMIT)
		errx(1, "permit longer than %d bytes", MAX_PERMIT);
	*permit = p;
	return ((size_t)(q - p));
}

/*
 * Encode "GET k|INCR c|EXPIRE c 60" as that many RESP arrays back to back:
 * one call of the benchmark is the whole sequence. Each %R% becomes
 * key_width zeros whose offsets are noted, for the key of each call.
 */
static void
resp_template(const char *spec)
{
	char	*copy, *cmd, *arg, *save1, *save2, *m, *q;
	char	*argv[MAX_ARGS];
	size_t	 cap = 0, len = 0, need, alen, hdr;
	int	 argc, i;

	if ((copy = strdup(spec)) == NULL)
		err(1, "strdup");
	ncmds = 0;
	for (cmd = strtok_r(copy, "|", &save1); cmd != NULL;
	    cmd = strtok_r(NULL, "|", &save1)) {
		argc = 0;
		for (arg = strtok_r(cmd, " \t", &save2); arg != NULL;
		    arg = strtok_r(NULL, " \t", &save2)) {
			if (argc == MAX_ARGS)
				errx(2, "-r: too many arguments");
			argv[argc++] = arg;
		}
		if (argc == 0)
			continue;
		if (ncmds == MAX_CMDS)
			errx(2, "-r: too many commands");
		ncmds++;
		need = 32;
		for (i = 0; i < argc; i++)
			need += strlen(argv[i]) * (size_t)(key_width + 1) + 32;
		if (len + need > cap) {
			cap = (len + need) * 2;
			if ((call_buf = realloc(call_buf, cap)) == NULL)
				err(1, "realloc");
		}
		cmd_off[ncmds - 1] = len;
		len += (size_t)snprintf((char *)call_buf + len, cap - len,
		    "*%d\r\n", argc);
		for (i = 0; i < argc; i++) {
			/* The argument's length once each %R% is a key. */
			alen = strlen(argv[i]);
			for (m = argv[i]; (m = strstr(m, KEY_MARK)) != NULL;
			    m += strlen(KEY_MARK)) {
				if (nkeys == 0)
					errx(2, "-r: %s needs -K", KEY_MARK);
				alen += (size_t)key_width - strlen(KEY_MARK);
			}
			hdr = (size_t)snprintf((char *)call_buf + len,
			    cap - len, "$%zu\r\n", alen);
			len += hdr;
			for (m = argv[i]; (q = strstr(m, KEY_MARK)) != NULL;
			    m = q + strlen(KEY_MARK)) {
				memcpy(call_buf + len, m, (size_t)(q - m));
				len += (size_t)(q - m);
				if (nkey_off == MAX_ARGS)
					errx(2, "-r: too many %s", KEY_MARK);
				key_off[nkey_off++] = len;
				memset(call_buf + len, '0', (size_t)key_width);
				len += (size_t)key_width;
			}
			len += (size_t)snprintf((char *)call_buf + len,
			    cap - len, "%s\r\n", m);
		}
	}
	free(copy);
	if (ncmds == 0)
		errx(2, "-r: no command");
	if (nkeys > 0 && nkey_off == 0)
		errx(2, "-r: -K wants %s in the commands", KEY_MARK);
	call_len = len;
	cmd_off[ncmds] = len;
}

/* Append one call for key at dst; returns its length. */
static size_t
resp_call(uint8_t *dst, uint32_t key)
{
	int	i;

	memcpy(dst, call_buf, call_len);
	for (i = 0; i < nkey_off; i++)
		put_key(dst + key_off[i], key);
	return (call_len);
}

/* -S: append command k of the call for key at dst; returns its length. */
static size_t
resp_cmd(uint8_t *dst, uint32_t key, int k)
{
	size_t	from = cmd_off[k], to = cmd_off[k + 1];
	int	i;

	memcpy(dst, call_buf + from, to - from);
	for (i = 0; i < nkey_off; i++)
		if (key_off[i] >= from && key_off[i] < to)
			put_key(dst + (key_off[i] - from), key);
	return (to - from);
}

/*
 * Length of the complete RESP2 reply at buf: 0 when more bytes are needed,
 * -1 when it is not RESP. Sets *iserr for an error reply ("-ERR ...") at
 * any depth.
 */
static long
resp_reply(const uint8_t *buf, size_t len, int depth, int *iserr)
{
	const uint8_t	*nl;
	size_t		 line, off;
	long		 n = 0, sub;
	size_t		 i;
	int		 neg = 0;

	if (len < 3)
		return (0);
	if ((nl = memchr(buf, '\n', len)) == NULL)
		return (0);
	line = (size_t)(nl - buf) + 1;
	if (line < 3 || buf[line - 2] != '\r')
		return (-1);
	switch (buf[0]) {
	case '+':
	case ':':
		return ((long)line);
	case '-':
		*iserr = 1;
		return ((long)line);
	case '$':
	case '*':
		break;
	default:
		return (-1);
	}
	i = 1;
	if (buf[i] == '-') {
		neg = 1;
		i++;
	}
	if (i == line - 2)
		return (-1);
	for (; i < line - 2; i++) {
		if (buf[i] < '0' || buf[i] > '9' || n > 1000000000)
			return (-1);
		n = n * 10 + (buf[i] - '0');
	}
	if (neg) {
		/* $-1 and *-1 are the null bulk string and null array. */
		return (n == 1 ? (long)line : -1);
	}
	if (buf[0] == '$') {
		if (len < line + (size_t)n + 2)
			return (0);
		if (buf[line + n] != '\r' || buf[line + n + 1] != '\n')
			return (-1);
		return ((long)(line + (size_t)n + 2));
	}
	if (depth >= RESP_MAX_DEPTH)
		return (-1);
	off = line;
	while (n-- > 0) {
		sub = resp_reply(buf + off, len - off, depth + 1, iserr);
		if (sub <= 0)
			return (sub);
		off += (size_t)sub;
	}
	return ((long)off);
}

/*
 * Find the envelope's "id" (a member of the outermost object, not one inside
 * "result") and note whether an "error" member is there too. Replies are
 * small, so one pass over the bytes costs less than a parser would.
 */
static int
erm_reply_id(const uint8_t *b, size_t len, uint64_t *id, int *iserr)
{
	size_t	i, k;
	int	depth = 0, found = 0;

	for (i = 0; i < len; i++) {
		switch (b[i]) {
		case '{':
		case '[':
			depth++;
			continue;
		case '}':
		case ']':
			depth--;
			continue;
		case '"':
			break;
		default:
			continue;
		}
		/* A string: a key when at depth 1 and followed by ':'. */
		for (k = i + 1; k < len && b[k] != '"'; k++)
			if (b[k] == '\\')
				k++;
		if (k >= len)
			return (-1);
		if (depth == 1 && k - i - 1 == 2 && memcmp(b + i + 1, "id",
		    2) == 0) {
			for (k++; k < len && (b[k] == ' ' || b[k] == ':'); k++)
				;
			*id = 0;
			if (k >= len || b[k] < '0' || b[k] > '9')
				return (-1);
			for (; k < len && b[k] >= '0' && b[k] <= '9'; k++)
				*id = *id * 10 + (uint64_t)(b[k] - '0');
			found = 1;
		} else if (depth == 1 && k - i - 1 == 5 &&
		    memcmp(b + i + 1, "error", 5) == 0)
			*iserr = 1;
		i = k;
		if (found && *iserr)
			break;
	}
	return (found ? 0 : -1);
}

static void
conn_watch(int ep, struct conn *c, uint32_t events)
{
	struct epoll_event	ev;

	if (c->events == events)
		return;
	memset(&ev, 0, sizeof(ev));
	ev.events = events;
	ev.data.ptr = c;
	if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) == -1)
		err(1, "epoll_ctl");
	c->events = events;
}

/* Write what is queued; wait for EPOLLOUT if the socket is full. */
static void
conn_flush(int ep, struct conn *c)
{
	ssize_t	n;

	while (c->woff < c->wlen) {
		n = write(c->fd, c->wbuf + c->woff, c->wlen - c->woff);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				conn_watch(ep, c, EPOLLIN | EPOLLOUT);
				return;
			}
			err(1, "write");
		}
		c->woff += (size_t)n;
	}
	c->woff = c->wlen = 0;
	conn_watch(ep, c, EPOLLIN);
}

/*
 * Make room for need more bytes at the end of the write buffer. Each slot
 * has at most one request unsent, so pipeline times the longest request
 * always fits.
 */
static void
conn_room(struct conn *c, size_t need)
{
	if (c->woff > 0) {
		memmove(c->wbuf, c->wbuf + c->woff, c->wlen - c->woff);
		c->wlen -= c->woff;
		c->woff = 0;
	}
	if (c->wlen + need > c->wcap)
		errx(1, "internal: write buffer overrun");
}

/* Queue k more requests (or calls) stamped with time t, then write. */
static void
conn_send(int ep, struct conn *c, int k, uint64_t t)
{
	struct slot	*s;

	conn_room(c, (size_t)k * (proto == P_ERM ? req_max : call_len));
	while (k-- > 0) {
		if (c->count == (size_t)pipeline)
			errx(1, "internal: more than %d in flight", pipeline);
		s = &c->ring[(c->head + c->count) % (size_t)pipeline];
		s->sent_ns = t;
		s->record = 0;
		s->key = next_key(&s->fill);
		if (proto == P_ERM) {
			s->id = next_id++;
			c->wlen += erm_request(c->wbuf + c->wlen, s->id,
			    s->key);
		} else if (sequential)
			c->wlen += resp_cmd(c->wbuf + c->wlen, s->key, 0);
		else
			c->wlen += resp_call(c->wbuf + c->wlen, s->key);
		c->count++;
	}
	conn_flush(ep, c);
}

/* Pairs: queue the record of s's acquire, with the permit it got. */
static void
conn_record(struct conn *c, struct slot *s, const uint8_t *permit,
    size_t permit_len)
{
	conn_room(c, req_max);
	s->id = next_id++;
	s->record = 1;
	c->wlen += tmpl_frame(c->wbuf + c->wlen, &rec_tmpl, s->id, s->key,
	    permit, permit_len);
}

static void
note_error(const uint8_t *b, size_t len)
{
	size_t	i, n = 0;

	if (first_err[0] != '\0')
		return;
	for (i = 0; i < len && n + 1 < sizeof(first_err); i++)
		first_err[n++] = b[i] >= ' ' && b[i] < 0x7f ? (char)b[i] : '.';
	first_err[n] = '\0';
}

static void
complete(struct conn *c, size_t pos, uint64_t t, int iserr)
{
	struct slot	*s = &c->ring[pos], *h = &c->ring[c->head];

	if (measuring) {
		hist_add(&hist, t > s->sent_ns ? t - s->sent_ns : 0);
		completed++;
		errors += iserr;
	}
	if (s->fill) {
		fill_left--;
		fill_errors += iserr;
	}
	/* Out-of-order reply: the head takes the freed slot. */
	if (pos != c->head)
		*s = *h;
	c->head = (c->head + 1) % (size_t)pipeline;
	c->count--;
}

/*
 * Read what the server sent, settle every complete reply, and send one new
 * request (or call) for each one settled, in a single write.
 */
static void
conn_read(int ep, struct conn *c)
{
	const uint8_t	*body, *permit;
	size_t		 off = 0, blen, used, i, pos, plen;
	ssize_t		 n;
	long		 r;
	uint64_t	 t, id = 0;
	uint32_t	 declared;
	int		 done = 0, queued = 0, iserr;

	n = read(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen);
	if (n == -1) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		err(1, "read");
	}
	if (n == 0)
		errx(1, "server closed a connection");
	c->rlen += (size_t)n;
	t = now_ns();

	for (;;) {
		iserr = 0;
		if (proto == P_ERM) {
			switch (erm_frame_parse(c->rbuf + off, c->rlen - off,
			    ERM_MAX_FRAME_DEFAULT, &body, &blen, &used)) {
			case ERM_FRAME_MORE:
				goto out;
			case ERM_FRAME_OK:
				break;
			default:
				errx(1, "server sent a bad frame header");
			}
			if (erm_reply_id(body, blen, &id, &iserr) == -1) {
				/* Without an id the reply matches nothing. */
				errx(1, "reply without an integer id: %.*s",
				    (int)(blen > 200 ? 200 : blen), body);
			}
			for (i = 0; i < c->count; i++) {
				pos = (c->head + i) % (size_t)pipeline;
				if (c->ring[pos].id == id)
					break;
			}
			if (i == c->count)
				errx(1, "reply to id %" PRIu64 " not in flight",
				    id);
			off += used;
			if (pairs && !c->ring[pos].record) {
				/* An acquire's reply: on to the record. */
				if (!iserr && (plen = find_permit(body, blen,
				    &permit)) > 0) {
					if (!stopping) {
						conn_record(c, &c->ring[pos],
						    permit, plen);
						queued++;
					}
					continue;
				}
				iserr = 1;
			} else if (pairs && !iserr && memmem(body, blen,
			    "\"recorded\":true", 15) == NULL)
				iserr = 1;
			if (iserr)
				note_error(body, blen);
			complete(c, pos, t, iserr);
			done++;
		} else {
			r = resp_reply(c->rbuf + off, c->rlen - off, 0, &iserr);
			if (r == 0)
				goto out;
			if (r < 0)
				errx(1, "server sent bad RESP: %.*s",
				    (int)(c->rlen - off > 80 ? 80 :
				    c->rlen - off), c->rbuf + off);
			if (iserr)
				note_error(c->rbuf + off, (size_t)r);
			off += (size_t)r;
			if (c->count == 0)
				errx(1, "RESP reply with nothing in flight");
			/* An error anywhere in a call marks the call. */
			c->call_err |= iserr;
			if (++c->replies < ncmds) {
				/* -S: the next command of the call, now. */
				if (sequential && !stopping) {
					conn_room(c, call_len);
					c->wlen += resp_cmd(c->wbuf + c->wlen,
					    c->ring[c->head].key, c->replies);
					queued++;
				}
				continue;
			}
			complete(c, c->head, t, c->call_err);
			c->replies = c->call_err = 0;
			done++;
		}
	}
out:
	if (off > 0) {
		memmove(c->rbuf, c->rbuf + off, c->rlen - off);
		c->rlen -= off;
	}
	if (c->rlen == c->rcap) {
		/* A reply larger than the buffer: grow up to a frame. */
		declared = proto == P_ERM ?
		    erm_frame_declared(c->rbuf, c->rlen) : 0;
		if (c->rcap >= ERM_MAX_FRAME_DEFAULT + ERM_FRAME_HDR ||
		    (proto == P_ERM && declared + ERM_FRAME_HDR <= c->rcap))
			errx(1, "reply larger than %zu bytes", c->rcap);
		c->rcap *= 2;
		if ((c->rbuf = realloc(c->rbuf, c->rcap)) == NULL)
			err(1, "realloc");
	}
	if (done > 0 && !stopping)
		conn_send(ep, c, done, t);
	else if (queued > 0)
		conn_flush(ep, c);
}

static int
unix_connect(const char *path)
{
	struct sockaddr_un	sun;
	int			fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return (-1);
	}
	memcpy(sun.sun_path, path, strlen(path));
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return (-1);
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		close(fd);
		return (-1);
	}
	return (fd);
}

/*
 * One round trip on a fresh connection, retried until it works or the
 * deadline passes: lets a script wait until a server is ready to serve.
 */
static int
probe_once(void)
{
	uint8_t		 buf[4096];
	struct pollfd	 pfd;
	size_t		 len, got = 0;
	ssize_t		 n;
	long		 r;
	int		 fd, iserr = 0, ok = 0;

	if ((fd = unix_connect(sockpath)) == -1)
		return (-1);
	if (proto == P_ERM) {
		if (req_max > sizeof(buf))
			goto done;
		len = erm_request(buf, 1, 0);
	} else {
		if (call_len > sizeof(buf))
			goto done;
		len = resp_call(buf, 0);
	}
	if (write(fd, buf, len) != (ssize_t)len)
		goto done;
	pfd.fd = fd;
	pfd.events = POLLIN;
	while (got < sizeof(buf) && poll(&pfd, 1, 1000) == 1) {
		if ((n = read(fd, buf + got, sizeof(buf) - got)) <= 0)
			break;
		got += (size_t)n;
		if (proto == P_ERM) {
			if (got >= ERM_FRAME_HDR && got - ERM_FRAME_HDR >=
			    erm_frame_declared(buf, got)) {
				ok = 1;
				break;
			}
		} else {
			/* The reply to the first command is enough. */
			if ((r = resp_reply(buf, got, 0, &iserr)) < 0)
				break;
			if (r > 0) {
				ok = 1;
				break;
			}
		}
	}
done:
	close(fd);
	return (ok ? 0 : -1);
}

static int
run_probe(void)
{
	uint64_t	deadline;

	deadline = now_ns() + (uint64_t)(duration * 1e9);
	for (;;) {
		if (probe_once() == 0)
			return (0);
		if (now_ns() >= deadline) {
			warnx("%s: no answer within %g s", sockpath, duration);
			return (1);
		}
		usleep(20000);
	}
}

/* The whole distribution on stderr: "bucket_us count cumulative%". */
static void
hist_dump(const struct hist *h)
{
	uint64_t	seen = 0;
	size_t		i;

	for (i = 0; i < NBUCKETS; i++) {
		if (h->n[i] == 0)
			continue;
		seen += h->n[i];
		fprintf(stderr, "%10.1f %10" PRIu64 " %6.2f%%\n",
		    hist_value(i) / 1000.0, h->n[i],
		    100.0 * (double)seen / (double)h->total);
	}
}

static void
report(double secs, const struct srv_times *srv, uint64_t cli_ns,
    uint64_t busy_ns, uint64_t steal_ns)
{
	double		rps = secs > 0 ? (double)completed / secs : 0.0;
	double		other, per_req, sys_share;
	uint64_t	srv_ns = srv->cpu_ns;

	/* Jiffies are coarse: a few ms either way is noise, not load. */
	other = ((double)busy_ns - (double)srv_ns - (double)cli_ns) /
	    (secs > 0 ? secs * 1e7 : 1);
	if (other < 0)
		other = 0;

	printf("proto=%s conns=%d pipeline=%d requests=%" PRIu64
	    " seconds=%.3f rps=%.1f p50_us=%.1f p99_us=%.1f p999_us=%.1f"
	    " mean_us=%.1f max_us=%.1f errors=%" PRIu64
	    " client_cpu_pct=%.1f",
	    proto == P_ERM ? "erm" : "resp", nconns, pipeline, completed, secs,
	    rps, hist_quantile_us(&hist, 0.50), hist_quantile_us(&hist, 0.99),
	    hist_quantile_us(&hist, 0.999),
	    hist.total ? (double)hist.sum / (double)hist.total / 1000.0 : 0.0,
	    (double)hist.max / 1000.0, errors,
	    secs > 0 ? (double)cli_ns / (secs * 1e7) : 0.0);
	if (server_pid > 0) {
		per_req = completed ? (double)srv_ns / (double)completed /
		    1000.0 : 0.0;
		/* Ticks are coarse, schedstat exact: split the exact time. */
		sys_share = srv->user + srv->sys > 0 ? (double)srv->sys /
		    (double)(srv->user + srv->sys) : 0.0;
		printf(" server_cpu_pct=%.1f server_cpu_us_per_req=%.3f"
		    " server_sys_us_per_req=%.3f",
		    secs > 0 ? (double)srv_ns / (secs * 1e7) : 0.0, per_req,
		    per_req * sys_share);
	}
	printf(" other_cpu_pct=%.1f steal_pct=%.1f", other,
	    secs > 0 ? (double)steal_ns / (secs * 1e7) : 0.0);
	if (nkeys > 0)
		printf(" keys=%" PRIu64 " pairs=%d", nkeys, pairs);
	if (sequential)
		printf(" cmds=%d sequential=1", ncmds);
	printf("\n");
	fflush(stdout);
	if (errors > 0)
		fprintf(stderr, "loadgen: first error reply: %s\n", first_err);
	if (dump_hist)
		hist_dump(&hist);
}

int
main(int argc, char *argv[])
{
	struct epoll_event	 ev, evs[MAX_EVENTS];
	struct conn		*conns, *c;
	const char		*tmpl = DEFAULT_TEMPLATE, *cmds = "PING";
	uint64_t		 t, start, t0 = 0, end, cli0 = 0;
	uint64_t		 cli = 0, busy0 = 0, steal0 = 0;
	struct srv_times	 srv0 = { 0 }, srv;
	uint64_t		 busy, steal, fill_start = 0, k;
	int			 ch, ep, i, n, timeout, filling, mflag = 0;
	size_t			 reqsz;

	while ((ch = getopt(argc, argv, "B:bc:d:FHK:m:n:P:p:Rr:Ss:w:x:")) !=
	    -1) {
		switch (ch) {
		case 'B':
			pairs = 1;
			nkeys = (uint64_t)parse_int(optarg, "-B", 1,
			    1000000000);
			break;
		case 'b':
			busy_poll = 1;
			break;
		case 'F':
			fill_pass = 1;
			break;
		case 'K':
			nkeys = (uint64_t)parse_int(optarg, "-K", 1,
			    1000000000);
			break;
		case 'n':
			name_prefix = optarg;
			break;
		case 'c':
			nconns = parse_int(optarg, "-c", 1, 100000);
			break;
		case 'd':
			duration = parse_num(optarg, "-d", 0.001, 86400);
			break;
		case 'H':
			dump_hist = 1;
			break;
		case 'm':
			tmpl = optarg;
			mflag = 1;
			break;
		case 'P':
			pipeline = parse_int(optarg, "-P", 1, 65536);
			break;
		case 'p':
			if (strcmp(optarg, "erm") == 0)
				proto = P_ERM;
			else if (strcmp(optarg, "resp") == 0)
				proto = P_RESP;
			else
				usage();
			break;
		case 'R':
			probe = 1;
			break;
		case 'r':
			cmds = optarg;
			break;
		case 'S':
			sequential = 1;
			break;
		case 's':
			sockpath = optarg;
			break;
		case 'w':
			warmup = parse_num(optarg, "-w", 0, 86400);
			break;
		case 'x':
			server_pid = parse_int(optarg, "-x", 1, INT_MAX);
			break;
		default:
			usage();
		}
	}
	if (sockpath == NULL || optind != argc)
		usage();
	if (pairs && (proto != P_ERM || mflag))
		errx(2, "-B: breaker pairs are ermd requests of their own "
		    "(-p erm, no -m)");
	if (sequential && (proto != P_RESP || pipeline != 1))
		errx(2, "-S: sequential commands are for -p resp with -P 1");
	if (fill_pass && nkeys == 0)
		errx(2, "-F: needs -K or -B");
	for (k = nkeys > 0 ? nkeys - 1 : 0, key_width = 1; k >= 10; k /= 10)
		key_width++;
	rng_state = (now_ns() ^ ((uint64_t)getpid() << 32)) | 1;
	signal(SIGPIPE, SIG_IGN);
	/*
	 * A backstop for what the loop cannot bound, such as connect() to a
	 * server whose listen queue is full: SIGALRM ends the process. The
	 * fill pass gets its own allowance and re-arms it when done.
	 */
	filling = fill_pass && !probe;
	alarm((unsigned)(warmup + duration) + 30 + (filling ? 600 : 0));
	if (proto == P_ERM)
		erm_template(tmpl);
	else
		resp_template(cmds);
	if (probe)
		return (run_probe());

	if ((ep = epoll_create1(EPOLL_CLOEXEC)) == -1)
		err(1, "epoll_create1");
	if ((conns = calloc((size_t)nconns, sizeof(*conns))) == NULL)
		err(1, "calloc");
	reqsz = proto == P_ERM ? req_max : call_len;
	for (i = 0; i < nconns; i++) {
		c = &conns[i];
		if ((c->fd = unix_connect(sockpath)) == -1)
			err(1, "connect %s", sockpath);
		if (fcntl(c->fd, F_SETFL, O_NONBLOCK) == -1)
			err(1, "fcntl");
		c->rcap = RBUF_INIT;
		c->wcap = reqsz * (size_t)pipeline;
		c->rbuf = malloc(c->rcap);
		c->wbuf = malloc(c->wcap);
		c->ring = calloc((size_t)pipeline, sizeof(*c->ring));
		if (c->rbuf == NULL || c->wbuf == NULL || c->ring == NULL)
			err(1, "malloc");
		memset(&ev, 0, sizeof(ev));
		ev.events = c->events = EPOLLIN;
		ev.data.ptr = c;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) == -1)
			err(1, "epoll_ctl");
	}

	if (filling) {
		fill_total = fill_left = nkeys;
		fill_start = now_ns();
	}
	start = now_ns();
	if (warmup == 0 && !filling) {
		measuring = 1;
		t0 = start;
		server_times(server_pid, &srv0);
		cli0 = self_cpu_ns();
		machine_cpu_ns(&busy0, &steal0);
	}
	end = start + (uint64_t)((warmup + duration) * 1e9);
	for (i = 0; i < nconns; i++)
		conn_send(ep, &conns[i], pipeline, now_ns());

	for (;;) {
		t = now_ns();
		if (filling && fill_left == 0) {
			/* Every key exists: the warm-up starts now. */
			filling = 0;
			fprintf(stderr, "loadgen: fill pass over %" PRIu64
			    " keys in %.3f s, %" PRIu64 " errors\n", nkeys,
			    (double)(t - fill_start) / 1e9, fill_errors);
			if (fill_errors > 0)
				fprintf(stderr, "loadgen: first error reply: "
				    "%s\n", first_err);
			alarm((unsigned)(warmup + duration) + 30);
			start = t;
			end = start + (uint64_t)((warmup + duration) * 1e9);
		}
		if (filling)
			goto poll;
		if (!measuring && t >= start + (uint64_t)(warmup * 1e9)) {
			/* Warm-up over: count from here. */
			measuring = 1;
			t0 = t;
			server_times(server_pid, &srv0);
			cli0 = self_cpu_ns();
			machine_cpu_ns(&busy0, &steal0);
		}
		if (t >= end)
			break;
poll:
		/* Busy polling keeps this CPU from idling between replies. */
		timeout = busy_poll ? 0 : filling ? 100 :
		    (int)(((measuring ? end : start +
		    (uint64_t)(warmup * 1e9)) - t + 999999) / 1000000);
		n = epoll_wait(ep, evs, MAX_EVENTS, timeout);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			err(1, "epoll_wait");
		}
		for (i = 0; i < n; i++) {
			c = evs[i].data.ptr;
			if (evs[i].events & EPOLLOUT)
				conn_flush(ep, c);
			if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
				conn_read(ep, c);
		}
	}
	stopping = 1;
	t = now_ns();
	server_times(server_pid, &srv);
	srv.cpu_ns -= srv0.cpu_ns;
	srv.user -= srv0.user;
	srv.sys -= srv0.sys;
	cli = self_cpu_ns() - cli0;
	machine_cpu_ns(&busy, &steal);
	report((double)(t - t0) / 1e9, &srv, cli, busy - busy0, steal - steal0);

	for (i = 0; i < nconns; i++) {
		close(conns[i].fd);
		free(conns[i].rbuf);
		free(conns[i].wbuf);
		free(conns[i].ring);
	}
	free(conns);
	free(call_buf);
	close(ep);
	if (completed == 0) {
		warnx("no replies in %g s: does %s speak %s?", duration,
		    sockpath, proto == P_ERM ? "ermd framing" : "RESP");
		return (1);
	}
	return (0);
}
