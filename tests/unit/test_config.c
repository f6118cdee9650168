/* Config parsing: defaults, good and bad files, drop-ins, named sections,
 * and conf/ermd.conf agreeing with the option table. */

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

static char	dir[64];

static void
setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/ermd-config-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void
teardown(void)
{
	char	cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	ck_assert_int_eq(system(cmd), 0);
}

static const char *
write_file(const char *name, const char *text)
{
	static char	path[256];
	FILE		*fp;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	ck_assert_ptr_nonnull(fp = fopen(path, "w"));
	fputs(text, fp);
	fclose(fp);
	return (path);
}

static char *
joined_errors(const struct config *cfg)
{
	static char	buf[4096];
	size_t		i;

	buf[0] = '\0';
	for (i = 0; i < cfg->nerrors; i++) {
		strncat(buf, cfg->errors[i], sizeof(buf) - strlen(buf) - 2);
		strcat(buf, "\n");
	}
	return (buf);
}

START_TEST(defaults)
{
	struct config	*cfg = config_load(NULL, NULL, NULL);

	ck_assert_uint_eq(cfg->nerrors, 0);
	ck_assert_str_eq(cfg->socket, "/run/ermd/ermd.sock");
	ck_assert_str_eq(cfg->state_dir, "/var/lib/ermd");
	ck_assert_int_eq(cfg->max_connections, 1024);
	ck_assert_int_eq(cfg->max_frame, 1048576);
	ck_assert_int_eq(cfg->idle_timeout_ms, 0);
	ck_assert_int_eq(cfg->read_timeout_ms, 10000);
	ck_assert_int_eq(cfg->max_output_bytes, 8388608);
	ck_assert_int_eq(cfg->socket_mode, 0660);
	ck_assert_int_eq(cfg->durability, DURABILITY_FULL);
	ck_assert_int_eq(cfg->has_admin_gid, 0);
	ck_assert_str_eq(config_store_path(cfg), "/var/lib/ermd/ermd.db");
	config_free(cfg);
}
END_TEST

START_TEST(good_file)
{
	const char	*p;
	struct config	*cfg;

	p = write_file("good.conf",
	    "# comment\n"
	    "[daemon]\n"
	    "socket = /tmp/x.sock\n"
	    "max_connections = 10\n"
	    "socket_mode = 0600\n"
	    "admin_group = 0\n"
	    "; another comment\n"
	    "[store]\n"
	    "durability = normal\n"
	    "path = /tmp/db\n");
	cfg = config_load(p, NULL, "/tmp/state");
	ck_assert_msg(cfg->nerrors == 0, "%s", joined_errors(cfg));
	ck_assert_str_eq(cfg->socket, "/tmp/x.sock");
	ck_assert_str_eq(cfg->state_dir, "/tmp/state");
	ck_assert_int_eq(cfg->max_connections, 10);
	ck_assert_int_eq(cfg->socket_mode, 0600);
	ck_assert_int_eq(cfg->has_admin_gid, 1);
	ck_assert_int_eq(cfg->admin_gid, 0);
	ck_assert_int_eq(cfg->durability, DURABILITY_NORMAL);
	ck_assert_str_eq(config_store_path(cfg), "/tmp/db");
	config_free(cfg);
}
END_TEST

START_TEST(overrides_win)
{
	const char	*p;
	struct config	*cfg;

	p = write_file("o.conf", "[daemon]\nsocket = /a\nstate_dir = /b\n");
	cfg = config_load(p, "/c.sock", "/d");
	ck_assert_uint_eq(cfg->nerrors, 0);
	ck_assert_str_eq(cfg->socket, "/c.sock");
	ck_assert_str_eq(cfg->state_dir, "/d");
	config_free(cfg);
}
END_TEST

/* Every problem is reported in one pass, each as file:line: message. */
START_TEST(bad_file)
{
	const char	*p;
	struct config	*cfg;
	char		 want[2048];

	p = write_file("bad.conf",
	    "[daemon]\n"				/* 1 */
	    "max_conections = 5\n"			/* 2 */
	    "max_frame = 12x\n"				/* 3 */
	    "max_connections = 0\n"			/* 4 */
	    "this line is junk\n"			/* 5 */
	    "[stor]\n"					/* 6 */
	    "durability = full\n"			/* 7 */
	    "[store]\n"					/* 8 */
	    "durability = sometimes\n"			/* 9 */
	    "max_frame = 5\n"				/* 10 */
	    "socket_mode = 999\n");			/* 11 */
	cfg = config_load(p, NULL, NULL);
	snprintf(want, sizeof(want),
	    "%1$s:2: unknown key 'max_conections' in [daemon]; did you mean "
	    "'max_connections'?\n"
	    "%1$s:3: max_frame: '12x' is not an integer\n"
	    "%1$s:4: max_connections: 0 is out of range (1 to 1000000)\n"
	    "%1$s:5: expected 'key = value'\n"
	    "%1$s:7: unknown section [stor]; did you mean [store]?\n"
	    "%1$s:9: durability: 'sometimes' is not one of full, normal\n"
	    "%1$s:10: unknown key 'max_frame' in [store]; it belongs in "
	    "[daemon]\n"
	    "%1$s:11: unknown key 'socket_mode' in [store]; it belongs in "
	    "[daemon]\n", p);
	ck_assert_str_eq(joined_errors(cfg), want);
	config_free(cfg);
}
END_TEST

START_TEST(missing_file)
{
	struct config	*cfg = config_load("/nonexistent/ermd.conf", NULL,
	    NULL);

	ck_assert_uint_eq(cfg->nerrors, 1);
	ck_assert_str_eq(cfg->errors[0],
	    "/nonexistent/ermd.conf: cannot open: No such file or directory");
	config_free(cfg);
}
END_TEST

START_TEST(outside_section_and_long_line)
{
	const char	*p;
	struct config	*cfg;
	char		 text[512], want[1024];

	memset(text, 0, sizeof(text));
	strcpy(text, "stray = 1\n[daemon]\nsocket = ");
	memset(text + strlen(text), 'a', 250);
	strcat(text, "\n");
	p = write_file("l.conf", text);
	cfg = config_load(p, NULL, NULL);
	snprintf(want, sizeof(want),
	    "%1$s:1: 'stray' is outside any section\n"
	    "%1$s:3: line longer than 198 bytes\n", p);
	ck_assert_str_eq(joined_errors(cfg), want);
	config_free(cfg);
}
END_TEST

START_TEST(dropins_in_order)
{
	char		 p[256], d[128];
	struct config	*cfg;

	snprintf(p, sizeof(p), "%s", write_file("main.conf",
	    "[daemon]\nmax_connections = 10\n"));
	snprintf(d, sizeof(d), "%s/main.conf.d", dir);
	ck_assert_int_eq(mkdir(d, 0700), 0);
	write_file("main.conf.d/20-b.conf", "[daemon]\nmax_connections = 30\n");
	write_file("main.conf.d/10-a.conf", "[daemon]\nmax_connections = 20\n"
	    "read_timeout_ms = 5\n");
	write_file("main.conf.d/ignored.txt", "[daemon]\nnope = 1\n");
	cfg = config_load(p, NULL, NULL);
	ck_assert_msg(cfg->nerrors == 0, "%s", joined_errors(cfg));
	ck_assert_int_eq(cfg->max_connections, 30);
	ck_assert_int_eq(cfg->read_timeout_ms, 5);
	config_free(cfg);
}
END_TEST

static int
check_widget(const char *section, const char *key, const char *value,
    char *err, size_t errsz)
{
	(void)section;
	if (strcmp(key, "size") != 0)
		return (-1);		/* unknown key: caller suggests */
	if (atoi(value) <= 0) {
		snprintf(err, errsz, "size: must be positive");
		return (-1);
	}
	return (0);
}

static const char *const widget_keys[] = { "size", NULL };
static const struct config_kind widget = { "widget", 1, check_widget,
    widget_keys, NULL };

START_TEST(named_sections)
{
	const char	*p;
	struct config	*cfg;
	char		 want[512];

	config_register_kind(&widget);
	p = write_file("w.conf",
	    "[widget]\nsize = 3\n"
	    "[widget.big]\nsize = 9\n"
	    "[widget.small]\nsize = 0\n"
	    "[widget.x]\nsise = 1\n");
	cfg = config_load(p, NULL, NULL);
	snprintf(want, sizeof(want),
	    "%1$s:6: size: must be positive\n"
	    "%1$s:8: unknown key 'sise' in [widget.x]; did you mean 'size'?\n",
	    p);
	ck_assert_str_eq(joined_errors(cfg), want);
	ck_assert_uint_eq(cfg->nentries, 2);
	ck_assert_str_eq(cfg->entries[1].section, "widget.big");
	ck_assert_str_eq(cfg->entries[1].key, "size");
	ck_assert_str_eq(cfg->entries[1].value, "9");
	ck_assert_int_eq(cfg->entries[1].line, 4);
	config_free(cfg);
}
END_TEST

START_TEST(shipped_config_documents_every_key)
{
	FILE		*fp;
	char		 line[512], section[64] = "", seen[256][400];
	const char	*s, *k, *d;
	size_t		 i, nseen = 0, j;
	struct config	*cfg;

	ck_assert_ptr_nonnull(fp = fopen("conf/ermd.conf", "r"));
	while (fgets(line, sizeof(line), fp) != NULL) {
		char	key[64], val[256];

		line[strcspn(line, "\n")] = '\0';
		if (sscanf(line, "[%63[^]]]", section) == 1)
			continue;
		val[0] = '\0';
		if (sscanf(line, "#%63[a-z_] = %255[^\n]", key, val) < 1 ||
		    strchr(line, '=') == NULL)
			continue;
		ck_assert_uint_lt(nseen, 256);
		snprintf(seen[nseen++], sizeof(seen[0]), "%s.%s=%s", section,
		    key, val);
	}
	fclose(fp);
	for (i = 0; config_option_info(i, &s, &k, &d) == 0; i++) {
		char	want[128];

		snprintf(want, sizeof(want), "%s.%s=%s", s, k, d);
		for (j = 0; j < nseen; j++)
			if (strcmp(seen[j], want) == 0)
				break;
		ck_assert_msg(j < nseen, "conf/ermd.conf lacks '#%s = %s' in "
		    "[%s]", k, d, s);
	}
	cfg = config_load("conf/ermd.conf", NULL, NULL);
	ck_assert_msg(cfg->nerrors == 0, "%s", joined_errors(cfg));
	config_free(cfg);
}
END_TEST

int
main(void)
{
	Suite	*s = suite_create("config");
	TCase	*tc = tcase_create("config");
	SRunner	*sr;
	int	 failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, defaults);
	tcase_add_test(tc, good_file);
	tcase_add_test(tc, overrides_win);
	tcase_add_test(tc, bad_file);
	tcase_add_test(tc, missing_file);
	tcase_add_test(tc, outside_section_and_long_line);
	tcase_add_test(tc, dropins_in_order);
	tcase_add_test(tc, named_sections);
	tcase_add_test(tc, shipped_config_documents_every_key);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed ? 1 : 0);
}
