/*
 * fsync and fdatasync that fail once, for test_store_fatal (loaded with
 * LD_PRELOAD into the daemon): once the file named by ERMD_TEST_FAIL_SYNC
 * exists, the syncs of files named ermd.db* are counted and the
 * ERMD_TEST_FAIL_SYNC_NTH-th (1 by default) fails with EIO, once, after
 * 100 ms. Nothing is counted before the trigger exists, so start-up
 * (migrations) is never what fails. The system calls are made directly
 * (no dlsym, so no -ldl); SQLite calls fsync and fdatasync through the
 * PLT, so these definitions win.
 */
#define _GNU_SOURCE
#include <sys/syscall.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int	seen, done;

static int
should_fail(int fd)
{
	const char	*trigger = getenv("ERMD_TEST_FAIL_SYNC");
	const char	*nth = getenv("ERMD_TEST_FAIL_SYNC_NTH");
	char		 link[64], path[4096];
	ssize_t		 n;

	if (trigger == NULL || __atomic_load_n(&done, __ATOMIC_SEQ_CST) ||
	    access(trigger, F_OK) == -1)
		return (0);
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	if ((n = readlink(link, path, sizeof(path) - 1)) <= 0)
		return (0);
	path[n] = '\0';
	if (strstr(path, "/ermd.db") == NULL)
		return (0);
	if (__atomic_add_fetch(&seen, 1, __ATOMIC_SEQ_CST) <
	    (nth != NULL ? atoi(nth) : 1) ||
	    __atomic_exchange_n(&done, 1, __ATOMIC_SEQ_CST) != 0)
		return (0);
	usleep(100000);	/* a dying disk takes its time to say so */
	return (1);
}

int
fsync(int fd)
{
	if (should_fail(fd)) {
		errno = EIO;
		return (-1);
	}
	return ((int)syscall(SYS_fsync, fd));
}

int
fdatasync(int fd)
{
	if (should_fail(fd)) {
		errno = EIO;
		return (-1);
	}
	return ((int)syscall(SYS_fdatasync, fd));
}
