/* The CPU quota of this process's cgroup: see cgroup.h. */
#include "cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The whole of a small file, NUL-terminated; its length or a negative errno. */
static ssize_t slurp(const char *path, char *buf, size_t cap)
{
	ssize_t n, got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	while ((size_t)got < cap - 1 && (n = read(fd, buf + got, cap - 1 - (size_t)got)) > 0)
		got += n;
	close(fd);
	buf[got] = 0;
	return n < 0 ? -EIO : got;
}

/* A decimal at *p (blanks before it skipped); 0, or -EINVAL. */
static int number(const char **p, int64_t *v)
{
	char *end;
	long long x;

	while (**p == ' ' || **p == '\t')
		(*p)++;
	if ((**p < '0' || **p > '9') && **p != '-')
		return -EINVAL;
	errno = 0;
	x = strtoll(*p, &end, 10);
	if (errno || end == *p)
		return -EINVAL;
	*p = end;
	*v = x;
	return 0;
}

/* The quota in CPUs (0: none, "max" or -1), from cpu.max ("QUOTA PERIOD")
 * or from cpu.cfs_quota_us and cpu.cfs_period_us; negative errno when
 * unreadable. */
static double quota_cpus(const lm__cgroup *cg, int *err)
{
	char buf[128];
	const char *p = buf;
	int64_t q, per;

	*err = 0;
	if (slurp(cg->quota, buf, sizeof(buf)) < 0)
		return *err = -ENOENT, 0;
	if (cg->v2 && strncmp(buf, "max", 3) == 0)
		return 0;
	if (number(&p, &q))
		return *err = -EINVAL, 0;
	if (!cg->v2) {
		if (slurp(cg->period, buf, sizeof(buf)) < 0)
			return *err = -ENOENT, 0;
		p = buf;
	}
	if (number(&p, &per) || per <= 0)
		return *err = -EINVAL, 0;
	return q > 0 ? (double)q / (double)per : 0;
}

static uint64_t usage_ns(const lm__cgroup *cg)
{
	char buf[2048];
	const char *p;
	int64_t v;

	if (!cg->usage[0] || slurp(cg->usage, buf, sizeof(buf)) < 0)
		return 0;
	p = buf;
	if (cg->v2) { /* cpu.stat: "usage_usec N" among other lines */
		if (strncmp(buf, "usage_usec ", 11) == 0)
			p = buf + 11;
		else if ((p = strstr(buf, "\nusage_usec ")))
			p += 12;
		else
			return 0;
	}
	if (number(&p, &v) || v < 0)
		return 0;
	return cg->v2 ? (uint64_t)v * 1000u : (uint64_t)v;
}

/* One candidate: base/level/{cpu.max | cpu.cfs_quota_us}; kept in *best
 * when its quota is tighter. usage_bases: where v1's cpuacct.usage may be. */
static void try_level(lm__cgroup *best, double *best_cpus, const char *base, const char *level,
		      int v2, const char *const *usage_bases)
{
	lm__cgroup c;
	double cpus;
	int err, n;

	memset(&c, 0, sizeof(c));
	c.v2 = v2;
	n = snprintf(c.quota, sizeof(c.quota), "%s%s/%s", base, level,
		     v2 ? "cpu.max" : "cpu.cfs_quota_us");
	if (n < 0 || (size_t)n >= sizeof(c.quota))
		return;
	if (!v2) {
		n = snprintf(c.period, sizeof(c.period), "%s%s/cpu.cfs_period_us", base, level);
		if (n < 0 || (size_t)n >= sizeof(c.period))
			return;
	}
	cpus = quota_cpus(&c, &err);
	if (err || cpus <= 0 || (*best_cpus > 0 && cpus >= *best_cpus))
		return;
	for (int i = 0; v2 ? i == 0 : usage_bases[i] != NULL; i++) {
		/* v2: beside cpu.max; v1: in the cpuacct hierarchy */
		n = snprintf(c.usage, sizeof(c.usage), "%s%s/%s", v2 ? base : usage_bases[i], level,
			     v2 ? "cpu.stat" : "cpuacct.usage");
		if (n > 0 && (size_t)n < sizeof(c.usage) && access(c.usage, R_OK) == 0)
			break;
		c.usage[0] = 0;
	}
	*best = c;
	*best_cpus = cpus;
}

/* The cgroup at path and each ancestor up to the hierarchy's root: a
 * container sees its own cgroup as "/" (a cgroup namespace) or under a path
 * whose upper part is not mounted (v1 without one), so every level that
 * exists is tried. */
static void walk(lm__cgroup *best, double *best_cpus, const char *const *bases, int v2,
		 const char *const *usage_bases, const char *path)
{
	char level[LM__CGROUP_PATH];
	size_t n = strlen(path);

	if (n >= sizeof(level))
		return;
	memcpy(level, path, n + 1);
	while (n > 0 && level[n - 1] == '/') /* "/" is the root: "" */
		level[--n] = 0;
	for (;;) {
		for (int i = 0; bases[i]; i++)
			try_level(best, best_cpus, bases[i], level, v2, usage_bases);
		char *slash = strrchr(level, '/');
		if (!slash)
			break;
		*slash = 0;
	}
}

/* Does the comma-separated controller list (ending at end) name "cpu"? */
static int names_cpu(const char *list, const char *end)
{
	for (const char *p = list; p < end;) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		const char *stop = comma ? comma : end;
		if (stop - p == 3 && memcmp(p, "cpu", 3) == 0)
			return 1;
		p = stop + 1;
	}
	return 0;
}

int lm__cgroup_open(lm__cgroup *cg, const char *self, const char *root)
{
	char buf[4096], b2[2][LM__CGROUP_PATH], b1[3][LM__CGROUP_PATH];
	const char *v2_bases[3] = {b2[0], b2[1], NULL};
	const char *v1_bases[3] = {b1[0], b1[1], NULL};
	const char *v1_usage[4] = {b1[2], b1[1], b1[0], NULL};
	double cpus = 0;
	ssize_t len;

	memset(cg, 0, sizeof(*cg));
	if ((len = slurp(self, buf, sizeof(buf))) < 0)
		return (int)len;
	snprintf(b2[0], sizeof(b2[0]), "%s", root);
	snprintf(b2[1], sizeof(b2[1]), "%s/unified", root);
	snprintf(b1[0], sizeof(b1[0]), "%s/cpu", root);
	snprintf(b1[1], sizeof(b1[1]), "%s/cpu,cpuacct", root);
	snprintf(b1[2], sizeof(b1[2]), "%s/cpuacct", root);
	/* "ID:CONTROLLERS:PATH" per line; v2's is "0::PATH". */
	for (char *line = buf, *next; line && *line; line = next) {
		char *nl = strchr(line, '\n'), *c1, *c2;
		next = nl ? nl + 1 : NULL;
		if (nl)
			*nl = 0;
		if (!(c1 = strchr(line, ':')) || !(c2 = strchr(c1 + 1, ':')) || c2[1] != '/')
			continue;
		if (c2 == c1 + 1 && strncmp(line, "0:", 2) == 0)
			walk(cg, &cpus, v2_bases, 1, NULL, c2 + 1);
		else if (names_cpu(c1 + 1, c2))
			walk(cg, &cpus, v1_bases, 0, v1_usage, c2 + 1);
	}
	return cpus > 0 ? 0 : -ENOENT;
}

int lm__cgroup_read(const lm__cgroup *cg, double *cpus, uint64_t *usage)
{
	int err;

	*usage = 0;
	if (!cg->quota[0])
		return -ENOENT;
	*cpus = quota_cpus(cg, &err);
	if (err)
		return err;
	if (*cpus <= 0)
		return -ENOENT;
	*usage = usage_ns(cg);
	return 0;
}
