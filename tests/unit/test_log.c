/*
 * Logging: the line format under the journal and on a terminal, and whole
 * lines when several threads log at once (the writer, workers and hashers
 * log beside the loop).
 */

#include <sys/stat.h>

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

#define LINES	20000

static char	path[] = "/tmp/ermd-test-log.XXXXXX";
static int	saved_stderr = -1;

/* stderr into a fresh temp file until end_capture(). */
static void
capture(void)
{
	int	fd;

	ck_assert_int_ne(fd = mkstemp(path), -1);
	fflush(stderr);
	ck_assert_int_ne(saved_stderr = dup(2), -1);
	ck_assert_int_eq(dup2(fd, 2), 2);
	close(fd);
}

/* Restore stderr; the captured text, NUL-terminated (free it). */
static char *
end_capture(void)
{
	struct stat	 st;
	char		*text;
	int		 fd;

	fflush(stderr);
	ck_assert_int_eq(dup2(saved_stderr, 2), 2);
	close(saved_stderr);
	ck_assert_int_ne(fd = open(path, O_RDONLY), -1);
	ck_assert_int_eq(fstat(fd, &st), 0);
	ck_assert_ptr_nonnull(text = malloc((size_t)st.st_size + 1));
	ck_assert_int_eq(read(fd, text, (size_t)st.st_size), st.st_size);
	text[st.st_size] = '\0';
	close(fd);
	unlink(path);
	strcpy(path + strlen(path) - 6, "XXXXXX");
	return (text);
}

START_TEST(journal_prefix_and_errno)
{
	char	*text;

	setenv("JOURNAL_STREAM", "8:1234", 1);
	log_init(0, "ermd");
	capture();
	log_info("started %d", 3);
	errno = ENOSPC;
	log_warn("write %s", "x");
	log_debug("not shown below -v");
	text = end_capture();
	ck_assert_str_eq(text, "<6>started 3\n"
	    "<4>write x: No space left on device\n");
	free(text);
	unsetenv("JOURNAL_STREAM");
}
END_TEST

static void *
log_lines(void *arg)
{
	int	i;

	for (i = 0; i < LINES; i++)
		log_info("thread %s line %05d", (const char *)arg, i);
	return (NULL);
}

/* Two threads, 20,000 lines each: every line whole, none lost. */
START_TEST(threads_write_whole_lines)
{
	pthread_t	 t1, t2;
	char		*text, *line, *save = NULL, tag[2];
	int		 next[2] = { 0, 0 }, n, which;

	setenv("JOURNAL_STREAM", "8:1234", 1);
	log_init(0, "ermd");
	capture();
	ck_assert_int_eq(pthread_create(&t1, NULL, log_lines, "a"), 0);
	ck_assert_int_eq(pthread_create(&t2, NULL, log_lines, "b"), 0);
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	text = end_capture();
	for (line = strtok_r(text, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		ck_assert_msg(sscanf(line, "<6>thread %1[ab] line %5d", tag,
		    &n) == 2 && strlen(line) == strlen("<6>thread a line "
		    "00000"), "torn line: '%s'", line);
		which = tag[0] - 'a';
		/* Each thread's lines in its own order. */
		ck_assert_int_eq(n, next[which]);
		next[which]++;
	}
	ck_assert_int_eq(next[0], LINES);
	ck_assert_int_eq(next[1], LINES);
	free(text);
	unsetenv("JOURNAL_STREAM");
}
END_TEST

int
main(void)
{
	Suite	*s = suite_create("log");
	TCase	*tc = tcase_create("log");
	SRunner	*sr;
	int	 failed;

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, journal_prefix_and_errno);
	tcase_add_test(tc, threads_write_whole_lines);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed ? 1 : 0);
}
