/*
 * `ermctl completion bash`: write a bash completion script generated from
 * ermctl's command table, so that it lists exactly the commands,
 * subcommands and options this ermctl has and never goes stale.
 */

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "ermctl.h"

/*
 * The table's strings are ours, but they end up inside a shell script: only
 * words made of these characters are written, anything else is left out
 * (and would show up as a missing completion, never as shell code).
 */
static int
shell_safe(const char *s, size_t len)
{
	size_t	i;

	if (len == 0)
		return (0);
	for (i = 0; i < len; i++)
		if (!islower((unsigned char)s[i]) &&
		    !isdigit((unsigned char)s[i]) && s[i] != '-' &&
		    s[i] != '_' && s[i] != '.')
			return (0);
	return (1);
}

/* Does an argument name (FILE, PATH, FILE.json, ID|FILE) name a file? */
static int
names_file(const char *s, size_t len)
{
	return ((len >= 4 && memmem(s, len, "FILE", 4) != NULL) ||
	    (len >= 4 && memmem(s, len, "PATH", 4) != NULL));
}

/*
 * Walk a usage string ("[--type TYPE]... [--limit N] FILE -- CMD...") and
 * call out() for each long option: name (without "--"), its length, and
 * the name of its argument (NULL when it takes none). *files is set when a
 * positional argument names a file, *dashdash when "--" ends the options.
 */
static void
scan_usage(const char *u, void (*out)(void *, const char *, size_t,
    const char *, size_t), void *arg, int *files, int *dashdash)
{
	const char	*p = u, *w, *a;
	size_t		 wl, al;

	*files = *dashdash = 0;
	while (*p != '\0') {
		while (*p != '\0' && strchr(" []|.", *p) != NULL)
			p++;
		if (*p == '\0')
			break;
		w = p;
		while (*p != '\0' && strchr(" []|", *p) == NULL)
			p++;
		wl = (size_t)(p - w);
		if (wl == 2 && w[0] == '-' && w[1] == '-') {
			*dashdash = 1;
			break;
		}
		if (wl > 2 && w[0] == '-' && w[1] == '-') {
			/* "--opt ARG": an upper-case word right after it. */
			a = NULL;
			al = 0;
			if (*p == ' ' && isupper((unsigned char)p[1])) {
				a = ++p;
				while (*p != '\0' && strchr(" []", *p) == NULL)
					p++;
				al = (size_t)(p - a);
			}
			out(arg, w + 2, wl - 2, a, al);
			continue;
		}
		if (names_file(w, wl))
			*files = 1;
	}
}

struct optlist {
	FILE	*fp;
	int	 want;		/* 0: all, 1: with an argument, 2: file arg */
	int	 n;
};

static void
put_opt(void *arg, const char *name, size_t len, const char *a, size_t al)
{
	struct optlist	*ol = arg;

	if (!shell_safe(name, len))
		return;
	if (ol->want == 1 && a == NULL)
		return;
	if (ol->want == 2 && (a == NULL || !names_file(a, al)))
		return;
	fprintf(ol->fp, "%s--%.*s", ol->want != 0 && ol->n > 0 ? "|" :
	    ol->n > 0 ? " " : "", (int)len, name);
	ol->n++;
}

/* Print every option of the table wanting an argument (want 1), or a file
 * argument (want 2), as a case pattern "--a|--b". */
static void
print_arg_opts(FILE *fp, const struct ctl_cmd *cmds, size_t n, int want,
    const char *extra)
{
	struct optlist	ol = { fp, want, 0 };
	size_t		i;
	int		files, dd;

	fputs(extra, fp);
	ol.n = *extra != '\0';
	for (i = 0; i < n; i++)
		scan_usage(cmds[i].usage, put_opt, &ol, &files, &dd);
}

static int
first_of_family(const struct ctl_cmd *cmds, size_t i)
{
	size_t	j;

	for (j = 0; j < i; j++)
		if (strcmp(cmds[j].name, cmds[i].name) == 0)
			return (0);
	return (1);
}

/* The script. Returns 0, or -1 when stdout could not be written. */
int
ctl_completion_bash(FILE *fp, const struct ctl_cmd *cmds, size_t n)
{
	static const char	 common[] = "--socket --json --timeout --help";
	struct optlist		 ol = { fp, 0, 0 };
	size_t			 i, j;
	int			 files, dd, any;

	fprintf(fp,
	    "# bash completion for ermctl %s, generated from its command "
	    "table by\n"
	    "# `ermctl completion bash`. Install it as "
	    "<completionsdir>/ermctl, or:\n"
	    "#\tsource <(ermctl completion bash)\n\n"
	    "_ermctl()\n{\n"
	    "\tlocal cur=${COMP_WORDS[COMP_CWORD]} prev=\n"
	    "\t((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD-1]}\n"
	    "\tlocal i w dd=0 words=()\n"
	    "\t# The command's words: what is not an option or an option's "
	    "argument.\n"
	    "\tfor ((i = 1; i < COMP_CWORD; i++)); do\n"
	    "\t\tw=${COMP_WORDS[i]}\n"
	    "\t\tcase $w in\n"
	    "\t\t--) dd=$i; break ;;\n\t\t", ERMD_VERSION);
	print_arg_opts(fp, cmds, n, 1, "--socket|--timeout");
	fputs(") ((i++)) ;;\n"
	    "\t\t-*) ;;\n"
	    "\t\t*) words+=(\"$w\") ;;\n"
	    "\t\tesac\n"
	    "\tdone\n"
	    "\tif ((dd > 0)); then\n"
	    "\t\t# After \"--\": a program, then its arguments.\n"
	    "\t\tif ((COMP_CWORD == dd + 1)); then\n"
	    "\t\t\tCOMPREPLY=($(compgen -c -- \"$cur\"))\n"
	    "\t\telse\n"
	    "\t\t\tcompopt -o filenames 2>/dev/null\n"
	    "\t\t\tCOMPREPLY=($(compgen -f -- \"$cur\"))\n"
	    "\t\tfi\n"
	    "\t\treturn 0\n"
	    "\tfi\n"
	    "\tcase $prev in\n\t", fp);
	print_arg_opts(fp, cmds, n, 2, "--socket");
	fputs(")\n"
	    "\t\tcompopt -o filenames 2>/dev/null\n"
	    "\t\tCOMPREPLY=($(compgen -f -- \"$cur\"))\n"
	    "\t\treturn 0 ;;\n\t", fp);
	print_arg_opts(fp, cmds, n, 1, "--timeout");
	fputs(")\n\t\treturn 0 ;;\n\tesac\n", fp);

	/* The first word: a command, or a top-level option. */
	fputs("\tif ((${#words[@]} == 0)); then\n"
	    "\t\tif [[ $cur == -* ]]; then\n", fp);
	fprintf(fp, "\t\t\tCOMPREPLY=($(compgen -W \"%s --version\" -- "
	    "\"$cur\"))\n\t\telse\n\t\t\tCOMPREPLY=($(compgen -W \"", common);
	for (i = 0, any = 0; i < n; i++)
		if (first_of_family(cmds, i) &&
		    shell_safe(cmds[i].name, strlen(cmds[i].name)))
			fprintf(fp, "%s%s", any++ ? " " : "", cmds[i].name);
	fputs("\" -- \"$cur\"))\n\t\tfi\n\t\treturn 0\n\tfi\n", fp);

	/* The second word of a family: its subcommands. */
	fputs("\tlocal key=${words[0]}\n\tcase $key in\n", fp);
	for (i = 0; i < n; i++) {
		if (cmds[i].subname == NULL || !first_of_family(cmds, i) ||
		    !shell_safe(cmds[i].name, strlen(cmds[i].name)))
			continue;
		fprintf(fp, "\t%s)\n\t\tif ((${#words[@]} == 1)); then\n"
		    "\t\t\tCOMPREPLY=($(compgen -W \"", cmds[i].name);
		for (j = i, any = 0; j < n; j++)
			if (strcmp(cmds[j].name, cmds[i].name) == 0 &&
			    shell_safe(cmds[j].subname,
			    strlen(cmds[j].subname)))
				fprintf(fp, "%s%s", any++ ? " " : "",
				    cmds[j].subname);
		fputs("\" -- \"$cur\"))\n\t\t\treturn 0\n\t\tfi\n"
		    "\t\tkey=\"$key ${words[1]}\" ;;\n", fp);
	}
	fputs("\tesac\n", fp);

	/* Each command's own options, and whether its arguments are files. */
	fputs("\tlocal opts= files=0\n\tcase $key in\n", fp);
	for (i = 0; i < n; i++) {
		if (!shell_safe(cmds[i].name, strlen(cmds[i].name)) ||
		    (cmds[i].subname != NULL && !shell_safe(cmds[i].subname,
		    strlen(cmds[i].subname))))
			continue;
		if (cmds[i].subname != NULL)
			fprintf(fp, "\t\"%s %s\") opts=\"", cmds[i].name,
			    cmds[i].subname);
		else
			fprintf(fp, "\t%s) opts=\"", cmds[i].name);
		ol.n = 0;
		scan_usage(cmds[i].usage, put_opt, &ol, &files, &dd);
		fprintf(fp, "\"; files=%d ;;\n", files);
	}
	fputs("\tesac\n"
	    "\tif [[ $cur == -* ]]; then\n", fp);
	fprintf(fp, "\t\tCOMPREPLY=($(compgen -W \"$opts %s\" -- \"$cur\"))\n",
	    common);
	fputs("\telif ((files)); then\n"
	    "\t\tcompopt -o filenames 2>/dev/null\n"
	    "\t\tCOMPREPLY=($(compgen -f -- \"$cur\"))\n"
	    "\tfi\n"
	    "\treturn 0\n"
	    "}\n"
	    "complete -F _ermctl ermctl\n", fp);
	return (ferror(fp) ? -1 : 0);
}
