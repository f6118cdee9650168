/*
 * ermd: the host-wide error-recovery daemon. main() only: options, config,
 * logging, the loop, signals and shutdown.
 */

#include <sys/resource.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <systemd/sd-daemon.h>

#include "backup.h"
#include "clock.h"
#include "config.h"
#include "conn.h"
#include "control.h"
#include "decide.h"
#include "dispatch.h"
#include "ermd.h"
#include "alerts.h"
#include "errors.h"
#include "forward.h"
#include "httpd.h"
#include "log.h"
#include "methods.h"
#include "metrics.h"
#include "storage.h"
#include "workflow.h"
#include "store.h"
#include "worker.h"

#define EX_CONFIG	78	/* sysexits.h: configuration error */
#define WORKER_THREADS	4	/* file copies off the loop; I/O bound */

struct ermd	 ermd;

static void
usage(FILE *fp)
{
	fprintf(fp,
"usage: ermd [-c CONFIG] [-S SOCKET] [-D STATE_DIR] [-f] [-v] [-t] [--manual-clock]\n"
"  -c  config file (default " ERMD_SYSCONF_FILE " when it exists)\n"
"  -S  socket path (overrides daemon.socket)\n"
"  -D  state directory (overrides daemon.state_dir)\n"
"  -f  stay in the foreground, log to stderr\n"
"  -v  more logging (repeatable)\n"
"  -t  check the config, print file:line: message per problem, exit 0 or 78\n"
"  --manual-clock  test mode: time moves only through debug.advance\n");
}

void
ermd_shutdown(int code)
{
	ermd.exit_code = code;
	event_base_loopbreak(ermd.base);
}

static void
store_failed(void)
{
	log_crit("the store failed to commit; exiting so that the service "
	    "manager restarts ermd and SQLite recovers from its WAL");
	ermd_shutdown(1);
}

/*
 * Settings that name files the daemon already holds open take effect at the
 * next start; a reload keeps the old ones and says so.
 */
static void
keep_fixed(struct config *new, const struct config *old)
{
	static const struct {
		const char	*name;
		size_t		 off;
	} fixed[] = {
		{ "daemon.socket", offsetof(struct config, socket) },
		{ "daemon.state_dir", offsetof(struct config, state_dir) },
		{ "store.path", offsetof(struct config, store_path) },
	};
	char	**n, *const *o;
	size_t	  i;

	for (i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		n = (char **)((char *)new + fixed[i].off);
		o = (char *const *)((const char *)old + fixed[i].off);
		if (strcmp(*n, *o) == 0)
			continue;
		log_warnx("reload: %s changes only at restart", fixed[i].name);
		free(*n);
		*n = strdup(*o);
	}
}

int
ermd_reload(json_t **errors)
{
	struct config	*cfg;
	size_t		 i;

	*errors = NULL;
	cfg = config_load(ermd.config_path, ermd.socket_override,
	    ermd.state_override);
	if (cfg == NULL) {
		*errors = json_pack("[s]", "out of memory");
		return (-1);
	}
	if (cfg->nerrors > 0) {
		*errors = json_array();
		for (i = 0; i < cfg->nerrors; i++) {
			log_warnx("reload: %s", cfg->errors[i]);
			json_array_append_new(*errors,
			    json_string(cfg->errors[i]));
		}
		config_free(cfg);
		return (-1);
	}
	keep_fixed(cfg, ermd.cfg);
	config_free(ermd.cfg);
	ermd.cfg = cfg;
	store_set_durability(cfg->durability);
	config_apply(cfg);
	ermd.config_generation++;
	log_info("configuration reloaded (generation %llu)",
	    (unsigned long long)ermd.config_generation);
	return (0);
}

static void
on_signal(int sig, short ev, void *arg)
{
	json_t	*errors;

	(void)ev;
	(void)arg;
	switch (sig) {
	case SIGHUP:
		if (ermd_reload(&errors) == -1) {
			log_warnx("reload failed; the old config is kept");
			json_decref(errors);
		}
		sd_notifyf(0, "STATUS=serving, config generation %llu",
		    (unsigned long long)ermd.config_generation);
		break;
	default:
		log_info("signal %d: shutting down", sig);
		ermd_shutdown(0);
		break;
	}
}

/*
 * The watchdog keep-alive runs on real time even with --manual-clock: it
 * answers the service manager, which does not share the daemon's clock.
 */
static void
watchdog_ping(int fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	(void)arg;
	sd_notify(0, "WATCHDOG=1");
}

static struct event *
start_watchdog(void)
{
	struct event	*e;
	struct timeval	 tv;
	uint64_t	 usec;

	if (sd_watchdog_enabled(0, &usec) <= 0)
		return (NULL);
	usec /= 2;
	tv.tv_sec = (time_t)(usec / 1000000);
	tv.tv_usec = (suseconds_t)(usec % 1000000);
	e = event_new(ermd.base, -1, EV_PERSIST, watchdog_ping, NULL);
	if (e != NULL)
		event_add(e, &tv);
	return (e);
}

/* Every connection needs a descriptor: take all the kernel allows. */
static void
raise_fd_limit(void)
{
	struct rlimit	rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
			log_warn("setrlimit");
	}
}

static void
detach(void)
{
	int	fd;

	if (daemon(0, 1) == -1)
		fatal("daemon");
	if ((fd = open("/dev/null", O_RDWR)) != -1) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		if (fd > STDERR_FILENO)
			close(fd);
	}
	log_syslog(1);
}

/*
 * Capabilities hook in at three points: before the config is read (to
 * register their config sections), once the store and workers run (to load
 * state, register metrics and reporters), and at shutdown before the
 * workers and the store stop. Each adds one line to each function.
 */
static void
modules_register(void)
{
	decide_register();
	storage_register();
	backup_register();
	errors_register();
	forward_register();
	alerts_register();
	httpd_register();
	workflow_register();
}

static void
modules_start(void)
{
	decide_start();
	m_op_start();
	if (storage_start(ermd.base) == -1)
		fatalx("storage: cannot start the HTTP client");
	backup_start(ermd.base, ermd.cfg->state_dir);
	errors_start();
	forward_start(ermd.base);
	alerts_start(ermd.base);
	httpd_start(ermd.base);
	workflow_start();
}

static void
modules_stop(void)
{
	workflow_stop();
	m_op_stop();
	m_breaker_stop();
	decide_stop();
	storage_stop();
	backup_stop();
	httpd_stop();
	alerts_stop();
	errors_stop();
	forward_stop();
}

static double
read_connections(void)
{
	return (conn_count());
}

static void
prepare_state_dir(const char *dir)
{
	if (mkdir(dir, 0700) == -1 && errno != EEXIST)
		fatal("state directory %s", dir);
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "manual-clock", no_argument, NULL, 'M' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct event	*sigs[4], *wd;
	const int	 signos[4] = { SIGTERM, SIGINT, SIGHUP, 0 };
	int		 ch, foreground = 0, verbose = 0, check = 0, manual = 0;
	size_t		 i;
	char		*cause;

	while ((ch = getopt_long(argc, argv, "c:S:D:fvthV", longopts,
	    NULL)) != -1) {
		switch (ch) {
		case 'c':
			ermd.config_path = optarg;
			break;
		case 'S':
			ermd.socket_override = optarg;
			break;
		case 'D':
			ermd.state_override = optarg;
			break;
		case 'f':
			foreground = 1;
			break;
		case 'v':
			verbose++;
			break;
		case 't':
			check = 1;
			break;
		case 'M':
			manual = 1;
			break;
		case 'h':
			usage(stdout);
			return (0);
		case 'V':
			printf("ermd %s (protocol %d)\n", ERMD_VERSION, 1);
			return (0);
		default:
			usage(stderr);
			return (2);
		}
	}
	if (optind != argc) {
		usage(stderr);
		return (2);
	}
	log_init(verbose, "ermd");
	modules_register();
	if (ermd.config_path == NULL && access(ERMD_SYSCONF_FILE, F_OK) == 0)
		ermd.config_path = ERMD_SYSCONF_FILE;

	if ((ermd.cfg = config_load(ermd.config_path, ermd.socket_override,
	    ermd.state_override)) == NULL)
		fatalx("out of memory");
	for (i = 0; i < ermd.cfg->nerrors; i++)
		fprintf(check ? stdout : stderr, "%s\n", ermd.cfg->errors[i]);
	if (check) {
		if (ermd.cfg->nerrors == 0)
			printf("%s: configuration ok\n", ermd.config_path ?
			    ermd.config_path : "(built-in defaults)");
		return (ermd.cfg->nerrors ? EX_CONFIG : 0);
	}
	if (ermd.cfg->nerrors > 0)
		return (EX_CONFIG);

	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit();
	if (!foreground)
		detach();
	ermd.euid = geteuid();
	if ((ermd.base = event_base_new()) == NULL)
		fatalx("event_base_new");
	clock_init(ermd.base, manual);
	ermd.started_at = clock_now_ms();
	dispatch_init();
	metrics_gauge_fn("ermd_connections", "Client connections open now.",
	    read_connections);

	prepare_state_dir(ermd.cfg->state_dir);
	if (store_open(ermd.base, config_store_path(ermd.cfg),
	    ermd.cfg->durability, &cause) == -1)
		fatalx("store: %s", cause);
	store_on_fatal(store_failed);
	if (worker_init(ermd.base, WORKER_THREADS) == -1)
		fatalx("cannot start the worker threads");
	modules_start();
	config_apply(ermd.cfg);
	if (control_listen(ermd.cfg->socket, (int)ermd.cfg->socket_mode,
	    &cause) == -1)
		fatalx("%s", cause);

	for (i = 0; signos[i] != 0; i++) {
		sigs[i] = evsignal_new(ermd.base, signos[i], on_signal, NULL);
		if (sigs[i] == NULL || evsignal_add(sigs[i], NULL) == -1)
			fatalx("cannot install signal handlers");
	}
	wd = start_watchdog();
	log_info("ermd %s ready on %s%s", ERMD_VERSION,
	    control_activated() ? "(socket activation)" : ermd.cfg->socket,
	    manual ? " (manual clock)" : "");
	sd_notifyf(0, "READY=1\nSTATUS=serving, config generation %llu\n"
	    "MAINPID=%lu", (unsigned long long)ermd.config_generation,
	    (unsigned long)getpid());

	event_base_dispatch(ermd.base);

	sd_notify(0, "STOPPING=1");
	control_close();
	/* Copies in flight and queued writes finish, and their replies go
	 * out, before the connections close. After a failed commit the
	 * queued writes are not run: the store fails them, so they are
	 * answered 1006 (store.h). */
	modules_stop();
	worker_shutdown();
	store_close();
	conn_close_all();
	for (i = 0; signos[i] != 0; i++)
		event_free(sigs[i]);
	if (wd != NULL)
		event_free(wd);
	clock_shutdown();
	log_info("exiting (%d)", ermd.exit_code);
	return (ermd.exit_code);
}
