/* The CPU quota of this process's cgroup: see cgroup.h. */
#include "cgroup.h"
#include "cpuidle.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Does the comma-separated list [p, end) hold the word w? */
static int has_word(const char *p, const char *end, const char *w)
{
	size_t n = strlen(w);

	while (p < end) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		const char *stop = comma ? comma : end;
		if ((size_t)(stop - p) == n && memcmp(p, w, n) == 0)
			return 1;
		p = stop + 1;
	}
	return 0;
}

/* mountinfo's octal escapes (\040 a blank, \134 a backslash), in place. */
static void unescape(char *s)
{
	char *o = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*o++ = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0'));
			s += 3;
		} else {
			*o++ = *s;
		}
	}
	*o = 0;
}

/* One hierarchy's mount and the cgroup's directory in it. */
typedef struct where {
	char dir[LM__CGROUP_PATH];
	size_t top;    /* strlen of the mount point: the walk up stops there */
	int comounted; /* v1: the mount holds cpuacct too */
} where;

/* The mount showing cgroup path: cgroup2 (ctrl NULL), or cgroup v1 with
 * ctrl among its options. Its root is the part of the path it does not
 * show (a container's own cgroup mounted as the root); a mount whose root
 * is not a prefix of path does not hold it. 0, or -ENOENT. */
static int locate(const char *mountinfo, const char *ctrl, const char *path, where *w)
{
	FILE *f = fopen(mountinfo, "re");
	char *line = NULL;
	size_t cap = 0;
	int rc = -ENOENT;

	if (!f)
		return -errno;
	while (rc && getline(&line, &cap, f) > 0) {
		/* "ID PARENT MAJ:MIN ROOT POINT OPTS [TAGS...] - TYPE SOURCE SUPER" */
		char *fld[5], *sep = strstr(line, " - "), *save = NULL, *type, *super;
		size_t rl;
		int k = 0, n;
		if (!sep)
			continue;
		*sep = 0;
		for (char *t = strtok_r(line, " ", &save); t && k < 5;
		     t = strtok_r(NULL, " ", &save))
			fld[k++] = t;
		if (k < 5 || !(type = strtok_r(sep + 3, " ", &save)) ||
		    !strtok_r(NULL, " ", &save) || !(super = strtok_r(NULL, " \n", &save)))
			continue;
		if (ctrl ? strcmp(type, "cgroup") != 0 ||
				    !has_word(super, super + strlen(super), ctrl)
			 : strcmp(type, "cgroup2") != 0)
			continue;
		unescape(fld[3]);
		unescape(fld[4]);
		rl = strcmp(fld[3], "/") == 0 ? 0 : strlen(fld[3]);
		if (strncmp(path, fld[3], rl) != 0 || (path[rl] != 0 && path[rl] != '/'))
			continue;
		n = snprintf(w->dir, sizeof(w->dir), "%s%s", fld[4], path[rl] ? path + rl : "");
		if (n < 0 || (size_t)n >= sizeof(w->dir))
			continue;
		while (n > 1 && w->dir[n - 1] == '/') /* the path "/" */
			w->dir[--n] = 0;
		w->top = strlen(fld[4]);
		w->comounted = ctrl && has_word(super, super + strlen(super), "cpuacct");
		rc = 0;
	}
	free(line);
	fclose(f);
	return rc;
}

/* dir's parent, not above the mount point; 0 when dir is the mount point. */
static int up(where *w)
{
	char *slash;

	if (strlen(w->dir) <= w->top || !(slash = strrchr(w->dir, '/')) ||
	    (size_t)(slash - w->dir) < w->top)
		return 0;
	*slash = 0;
	return 1;
}

static int file_at(char *out, const char *dir, const char *name)
{
	int n = snprintf(out, LM__CGROUP_PATH, "%s/%s", dir, name);

	return n > 0 && (size_t)n < LM__CGROUP_PATH;
}

/* Each level from w's cgroup up to its mount that has a quota file.
 * acct: v1's cpuacct hierarchy walked beside it (NULL: none, or usage
 * beside the quota: v2, or cpu and cpuacct mounted together). */
static void add_levels(lm__cgroup *cg, where *w, where *acct, int v2)
{
	int acct_ok = acct != NULL;

	do {
		lm__cgroup_level *l;
		if (cg->n >= LM__CGROUP_LEVELS)
			return;
		l = &cg->level[cg->n];
		memset(l, 0, sizeof(*l));
		l->v2 = v2;
		if (file_at(l->quota, w->dir, v2 ? "cpu.max" : "cpu.cfs_quota_us") &&
		    access(l->quota, R_OK) == 0 &&
		    (v2 || file_at(l->period, w->dir, "cpu.cfs_period_us"))) {
			const char *udir = acct ? (acct_ok ? acct->dir : NULL) : w->dir;
			if (!udir || (!v2 && !acct && !w->comounted) ||
			    !file_at(l->usage, udir, v2 ? "cpu.stat" : "cpuacct.usage"))
				l->usage[0] = 0;
			cg->n++;
		}
		if (acct_ok)
			acct_ok = up(acct);
	} while (up(w));
}

int lm__cgroup_open(lm__cgroup *cg, const char *self, const char *mountinfo)
{
	char buf[4096], cpu_path[LM__CGROUP_PATH] = "", acct_path[LM__CGROUP_PATH] = "";
	ssize_t len;
	where w, a;
	int rc;

	memset(cg, 0, sizeof(*cg));
	if ((len = lm__read_small(self, buf, sizeof(buf))) < 0)
		return (int)len;
	if ((size_t)len >= sizeof(buf) - 1) /* cut: its last line may be the cpu one */
		return -E2BIG;
	/* "ID:CONTROLLERS:PATH" per line; v2's is "0::PATH". */
	for (char *line = buf, *next; line && *line; line = next) {
		char *nl = strchr(line, '\n'), *c1, *c2;
		next = nl ? nl + 1 : NULL;
		if (nl)
			*nl = 0;
		if (!(c1 = strchr(line, ':')) || !(c2 = strchr(c1 + 1, ':')) || c2[1] != '/' ||
		    strlen(c2 + 1) >= sizeof(cpu_path))
			continue;
		if (c2 == c1 + 1 && strncmp(line, "0:", 2) == 0) {
			if ((rc = locate(mountinfo, NULL, c2 + 1, &w)) == 0)
				add_levels(cg, &w, NULL, 1);
			else if (rc != -ENOENT)
				return rc;
			continue;
		}
		if (has_word(c1 + 1, c2, "cpu"))
			strcpy(cpu_path, c2 + 1);
		if (has_word(c1 + 1, c2, "cpuacct"))
			strcpy(acct_path, c2 + 1);
	}
	if (cpu_path[0] && (rc = locate(mountinfo, "cpu", cpu_path, &w)) == 0) {
		/* cpuacct apart: its cgroup is the same one only under the
		 * same path, as systemd and container runtimes make them. */
		int apart = !w.comounted && strcmp(cpu_path, acct_path) == 0 &&
			    locate(mountinfo, "cpuacct", acct_path, &a) == 0;
		add_levels(cg, &w, apart ? &a : NULL, 0);
	} else if (cpu_path[0] && rc != -ENOENT) {
		return rc;
	}
	return cg->n ? 0 : -ENOENT;
}

/* Is p, past blanks, a negative number (v1's -1 quota: none)? */
static int negative(const char *p)
{
	p += strspn(p, " \t");
	return p[0] == '-' && p[1] >= '0' && p[1] <= '9';
}

/* A level's quota now into u (cpus 0: none; period_us its period): 0, or a
 * negative errno when its files cannot be read or parsed. */
static int quota_of(const lm__cgroup_level *l, lm__cgroup_use *u)
{
	char buf[128] = {0};
	uint64_t v[2];
	ssize_t n;

	u->cpus = 0;
	u->period_us = 0;
	if ((n = lm__read_small(l->quota, buf, sizeof(buf))) < 0)
		return (int)n;
	if ((l->v2 && strncmp(buf, "max", 3) == 0) || (!l->v2 && negative(buf)))
		return 0;
	/* v2: "QUOTA PERIOD" in one file; v1: the period in its own. */
	if (lm__numbers(buf, v, l->v2 ? 2 : 1) != (l->v2 ? 2 : 1))
		return -EINVAL;
	if (!v[0])
		return 0;
	if (!l->v2) {
		if ((n = lm__read_small(l->period, buf, sizeof(buf))) < 0)
			return (int)n;
		if (lm__numbers(buf, &v[1], 1) != 1)
			return -EINVAL;
	}
	if (!v[1])
		return -EINVAL;
	u->period_us = v[1];
	u->cpus = (double)v[0] / (double)v[1];
	return 0;
}

static uint64_t usage_of(const lm__cgroup_level *l)
{
	char buf[2048] = {0};
	const char *p = buf;
	uint64_t v;

	if (!l->usage[0] || lm__read_small(l->usage, buf, sizeof(buf)) < 0)
		return 0;
	if (l->v2) { /* cpu.stat: "usage_usec N" among other lines */
		if (strncmp(buf, "usage_usec ", 11) == 0)
			p = buf + 11;
		else if ((p = strstr(buf, "\nusage_usec ")))
			p += 12;
		else
			return 0;
	}
	if (lm__numbers(p, &v, 1) != 1)
		return 0;
	return l->v2 ? v * 1000u : v;
}

int lm__cgroup_read(const lm__cgroup *cg, lm__cgroup_use *out)
{
	int any = 0, rc;

	for (uint32_t i = 0; i < cg->n; i++) {
		if ((rc = quota_of(&cg->level[i], &out[i])))
			return rc;
		out[i].usage_ns = out[i].cpus > 0 ? usage_of(&cg->level[i]) : 0;
		any |= out[i].cpus > 0;
	}
	return any ? 0 : -ENOENT;
}
