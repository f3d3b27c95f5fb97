/*
 * test_cgroup: the cgroup CPU quota codec auto's budget reads
 * (src/cgroup.c).
 *  1. From cgroup trees and a mountinfo the test writes: v2 in a cgroup
 *     namespace (the container's cgroup is "/"), v2 nested (each level,
 *     the process's own first; a quota lifted on one, the ancestor's
 *     still read), v2 beside v1 (hybrid, at unified/), v1 with cpu and
 *     cpuacct co-mounted and a process below a mount whose root is its
 *     container's cgroup (no cgroup namespace), v1 with cpu and cpuacct
 *     mounted apart (the usage only from the same path), a mount point
 *     with an escaped blank, "cpuset" not taken for "cpu". A quota
 *     changed after open is read as it is now; "max" and -1 are none,
 *     garbled files an error, never a made-up quota.
 *  2. The real kernel, as root where a cpu controller can be written: a
 *     child process in a new cgroup with a quota of 0.25 CPUs finds it
 *     through /proc/self/mountinfo and reads 0.25 and a usage that grows
 *     as it spins. Skipped, saying why, elsewhere.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"
#include "check.h"

static char top[] = "/tmp/test_cgroup.XXXXXX";

/* top/rel, its directories made on the way. */
static void put(const char *rel, const char *text)
{
	char path[1024];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", top, rel);
	for (char *p = path + strlen(top) + 1; (p = strchr(p, '/')); p++) {
		*p = 0;
		mkdir(path, 0755);
		*p = '/';
	}
	CHECK((f = fopen(path, "w")) != NULL);
	if (!f)
		return;
	fputs(text, f);
	fclose(f);
}

static void clean(void)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'/*", top);
	CHECK_EQ(system(cmd), 0);
}

/* top/mountinfo with one line per mount: "TYPE ROOT POINT SUPER", POINT
 * under top (its blanks escaped as mountinfo does). */
static void mounts(const char *const *m)
{
	char text[4096] = "", line[1024], point[512];

	for (int i = 0; m[i]; i += 4) {
		size_t k = 0;
		for (const char *p = m[i + 2]; *p && k + 5 < sizeof(point); p++) {
			if (*p == ' ') {
				memcpy(point + k, "\\040", 4);
				k += 4;
			} else {
				point[k++] = *p;
			}
		}
		point[k] = 0;
		snprintf(line, sizeof(line), "%d 1 0:%d %s %s/%s rw,nosuid shared:%d - %s %s %s\n",
			 30 + i, 20 + i, m[i + 1], top, point, i, m[i], m[i], m[i + 3]);
		strncat(text, line, sizeof(text) - strlen(text) - 1);
	}
	put("mountinfo", text);
}

static int open_tree(lm__cgroup *cg)
{
	char self[512], mi[512];

	snprintf(self, sizeof(self), "%s/self", top);
	snprintf(mi, sizeof(mi), "%s/mountinfo", top);
	return lm__cgroup_open(cg, self, mi);
}

/* Opens, expects n levels, and level i's quota and usage now. */
static void expect(uint32_t n, uint32_t i, double cpus, uint64_t usage)
{
	lm__cgroup cg;
	lm__cgroup_use u[LM__CGROUP_LEVELS];

	memset(u, 0xff, sizeof(u));
	CHECK_EQ(open_tree(&cg), 0);
	CHECK_EQ(cg.n, n);
	CHECK_EQ(lm__cgroup_read(&cg, u), 0);
	CHECK(i < cg.n);
	if (i >= cg.n)
		return;
	CHECK(u[i].cpus > cpus - 1e-9 && u[i].cpus < cpus + 1e-9);
	CHECK_EQ(u[i].usage_ns, usage);
}

static void expect_none(void)
{
	lm__cgroup cg;

	CHECK_EQ(open_tree(&cg), -ENOENT);
	CHECK_EQ(cg.n, 0);
}

static void v2(void)
{
	static const char *const ns[] = {"cgroup2", "/", "fs", "rw,nsdelegate", NULL};
	static const char *const hybrid[] = {"cgroup",         "/",       "fs/cpu,cpuacct",
					     "rw,cpu,cpuacct", "cgroup2", "/",
					     "fs/unified",     "rw",      NULL};
	lm__cgroup cg;
	lm__cgroup_use u[LM__CGROUP_LEVELS];

	/* A cgroup namespace: the container's cgroup is the root. */
	put("self", "0::/\n");
	mounts(ns);
	put("fs/cpu.max", "150000 100000\n");
	put("fs/cpu.stat", "usage_usec 5000\nuser_usec 4000\nsystem_usec 1000\n");
	expect(1, 0, 1.5, 5000000);
	CHECK_EQ(open_tree(&cg), 0);
	CHECK_EQ(lm__cgroup_read(&cg, u), 0);
	CHECK_EQ(u[0].period_us, 100000);
	/* Unlimited: the level is kept (a quota set later counts), none now. */
	put("fs/cpu.max", "max 100000\n");
	CHECK_EQ(open_tree(&cg), 0);
	CHECK_EQ(lm__cgroup_read(&cg, u), -ENOENT);
	/* Garbled: an error, not "no quota". */
	put("fs/cpu.max", "lots\n");
	CHECK_EQ(lm__cgroup_read(&cg, u), -EINVAL);
	put("fs/cpu.max", "100000 0\n");
	CHECK_EQ(lm__cgroup_read(&cg, u), -EINVAL);
	clean();

	/* Nested, the process's own cgroup first. */
	put("self", "0::/pod/ctr\n");
	mounts(ns);
	put("fs/pod/cpu.max", "200000 100000\n");
	put("fs/pod/cpu.stat", "nr_periods 3\nusage_usec 7\n");
	put("fs/pod/ctr/cpu.max", "max 100000\n");
	put("fs/pod/ctr/cpu.stat", "usage_usec 3\n");
	expect(2, 1, 2.0, 7000);
	put("fs/pod/ctr/cpu.max", "50000 100000\n");
	expect(2, 0, 0.5, 3000);
	/* Resized after open, then lifted: the ancestor's still holds. */
	CHECK_EQ(open_tree(&cg), 0);
	put("fs/pod/ctr/cpu.max", "75000 100000\n");
	CHECK_EQ(lm__cgroup_read(&cg, u), 0);
	CHECK(u[0].cpus > 0.749 && u[0].cpus < 0.751);
	put("fs/pod/ctr/cpu.max", "max 100000\n");
	CHECK_EQ(lm__cgroup_read(&cg, u), 0);
	CHECK(u[0].cpus == 0);
	CHECK(u[1].cpus > 1.999 && u[1].cpus < 2.001);
	/* A usage file without usage_usec: the quota alone. */
	put("fs/pod/ctr/cpu.max", "50000 100000\n");
	put("fs/pod/ctr/cpu.stat", "user_usec 3\n");
	expect(2, 0, 0.5, 0);
	clean();

	/* Hybrid: v2 at unified/ beside v1's cpu hierarchy. */
	put("self", "12:cpu,cpuacct:/job\n0::/job\n");
	mounts(hybrid);
	put("fs/unified/job/cpu.max", "50000 100000\n");
	put("fs/unified/job/cpu.stat", "usage_usec 1\n");
	expect(1, 0, 0.5, 1000);
	clean();
}

/* A v1 cgroup directory under top/fs: its quota and period, and where
 * usage is not NULL its cpuacct.usage in acct (NULL: beside them). */
static void v1_dir(const char *dir, const char *quota, const char *acct, const char *usage)
{
	char path[512];

	snprintf(path, sizeof(path), "fs/%s/cpu.cfs_quota_us", dir);
	put(path, quota);
	snprintf(path, sizeof(path), "fs/%s/cpu.cfs_period_us", dir);
	put(path, "100000\n");
	if (usage) {
		snprintf(path, sizeof(path), "fs/%s/cpuacct.usage", acct ? acct : dir);
		put(path, usage);
	}
}

static void v1(void)
{
	static const char *const sub[] = {"cgroup", "/docker/abc", "fs/cpu,cpuacct",
					  "rw,cpu,cpuacct", NULL};
	static const char *const apart[] = {"cgroup",     "/",          "fs/cpu",
					    "rw,cpu",     "cgroup",     "/",
					    "fs/cpuacct", "rw,cpuacct", NULL};
	static const char *const blank[] = {"cgroup", "/", "fs/c g", "rw,cpu,cpuacct", NULL};
	static const char *const cpuset[] = {"cgroup", "/", "fs/cpuset", "rw,cpuset", NULL};
	lm__cgroup cg;
	lm__cgroup_use u[LM__CGROUP_LEVELS];

	/* A container without a cgroup namespace: its cgroup is the
	 * mount's root, and the process is in a child of it. */
	put("self", "4:cpu,cpuacct:/docker/abc/sub\n3:memory:/docker/abc\n0::/\n");
	mounts(sub);
	v1_dir("cpu,cpuacct/sub", "25000\n", NULL, "42\n");
	v1_dir("cpu,cpuacct", "100000\n", NULL, "99\n");
	expect(2, 0, 0.25, 42);
	expect(2, 1, 1.0, 99);
	put("fs/cpu,cpuacct/sub/cpu.cfs_quota_us", "-1\n");
	expect(2, 1, 1.0, 99);
	/* A process outside the mount's root: not this hierarchy's view. */
	put("self", "4:cpu,cpuacct:/other\n");
	expect_none();
	clean();

	/* cpu and cpuacct mounted apart: the usage from cpuacct under the
	 * same path; under another path it is not the same cgroup. */
	put("self", "5:cpuacct:/x\n4:cpu:/x\n");
	mounts(apart);
	v1_dir("cpu/x", "250000\n", "cpuacct/x", "99\n");
	expect(1, 0, 2.5, 99);
	put("self", "5:cpuacct:/y\n4:cpu:/x\n");
	expect(1, 0, 2.5, 0);
	/* A period unreadable: an error. */
	put("self", "5:cpuacct:/x\n4:cpu:/x\n");
	put("fs/cpu/x/cpu.cfs_period_us", "\n");
	CHECK_EQ(open_tree(&cg), 0);
	CHECK_EQ(lm__cgroup_read(&cg, u), -EINVAL);
	clean();

	/* A mount point with a blank, escaped in mountinfo. */
	put("self", "4:cpu,cpuacct:/\n");
	mounts(blank);
	v1_dir("c g", "300000\n", NULL, "7\n");
	expect(1, 0, 3.0, 7);
	clean();

	/* "cpu" only as part of another controller's name. */
	put("self", "6:cpuset:/y\n");
	mounts(cpuset);
	v1_dir("cpuset/y", "100000\n", NULL, NULL);
	expect_none();
	clean();

	/* No /proc/self/cgroup or mountinfo, or garbage in them. */
	CHECK(open_tree(&cg) < 0);
	put("self", "garbage\n:::\n0:\n");
	put("mountinfo", "garbage\n1 2 3\n - \n");
	expect_none();
	put("self", "0::/\n");
	expect_none();
	clean();
}

static volatile uint64_t spin_sink;

/* In a child moved into a new cgroup with a quota of 0.25 CPUs. */
static int quota_child(void)
{
	lm__cgroup cg;
	lm__cgroup_use u[LM__CGROUP_LEVELS];
	uint64_t u0 = 0;
	struct timespec t0, t;

	if (lm__cgroup_open(&cg, "/proc/self/cgroup", "/proc/self/mountinfo")) {
		fprintf(stderr, "test_cgroup: the child found no cgroup that can hold a quota\n");
		return 1;
	}
	if (lm__cgroup_read(&cg, u) || u[0].cpus < 0.249 || u[0].cpus > 0.251) {
		fprintf(stderr, "test_cgroup: the child read %.3f CPUs\n", u[0].cpus);
		return 2;
	}
	u0 = u[0].usage_ns;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do { /* 300 ms of wall time: at least 50 ms of CPU under the quota */
		for (int i = 0; i < 100000; i++)
			spin_sink += (uint64_t)i;
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) < 300000000L);
	if (lm__cgroup_read(&cg, u) || !u[0].usage_ns || u[0].usage_ns < u0 + 20000000u) {
		fprintf(stderr, "test_cgroup: usage %llu -> %llu\n", (unsigned long long)u0,
			(unsigned long long)u[0].usage_ns);
		return 3;
	}
	return 0;
}

/* Writes text to path; 0 or -1. */
static int echo_to(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	int rc;

	if (!f)
		return -1;
	rc = fputs(text, f) < 0 ? -1 : 0;
	return fclose(f) ? -1 : rc;
}

static void real_kernel(void)
{
	char dir[256], acct[256], path[512], pid[32];
	const char *base = NULL;
	int st = -1, v2 = 0, acct_made = 0;
	pid_t child;
	struct stat sb;

	/* A v1 cpu hierarchy, or v2 with the cpu controller enabled for
	 * children of the root. */
	if (stat("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", &sb) == 0) {
		base = "/sys/fs/cgroup/cpu";
	} else if (stat("/sys/fs/cgroup/cgroup.subtree_control", &sb) == 0) {
		FILE *f = fopen("/sys/fs/cgroup/cgroup.subtree_control", "r");
		char line[256] = "";
		if (f) {
			if (!fgets(line, sizeof(line), f))
				line[0] = 0;
			fclose(f);
		}
		if (strstr(line, "cpu ") || strstr(line, "cpu\n"))
			base = "/sys/fs/cgroup", v2 = 1;
	}
	if (!base || geteuid() != 0) {
		printf("test_cgroup: SKIP the real kernel: %s\n",
		       geteuid() ? "not root" : "no writable cpu controller");
		return;
	}
	snprintf(dir, sizeof(dir), "%s/lm-test-cgroup-%d", base, (int)getpid());
	if (mkdir(dir, 0755)) {
		printf("test_cgroup: SKIP the real kernel: mkdir %s: %s\n", dir, strerror(errno));
		return;
	}
	if (v2) {
		snprintf(path, sizeof(path), "%s/cpu.max", dir);
		CHECK_EQ(echo_to(path, "25000 100000\n"), 0);
	} else {
		snprintf(path, sizeof(path), "%s/cpu.cfs_period_us", dir);
		CHECK_EQ(echo_to(path, "100000\n"), 0);
		snprintf(path, sizeof(path), "%s/cpu.cfs_quota_us", dir);
		CHECK_EQ(echo_to(path, "25000\n"), 0);
	}
	/* v1 with cpuacct mounted apart: the same path there too, as
	 * systemd and container runtimes make it, for the usage. */
	snprintf(acct, sizeof(acct), "/sys/fs/cgroup/cpuacct/lm-test-cgroup-%d", (int)getpid());
	if (v2 || stat("/sys/fs/cgroup/cpuacct/cpuacct.usage", &sb) ||
	    !(acct_made = !mkdir(acct, 0755)))
		acct[0] = 0;
	child = fork();
	CHECK(child >= 0);
	if (child == 0) {
		snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
		snprintf(path, sizeof(path), "%s/cgroup.procs", acct);
		if (acct[0] && echo_to(path, pid))
			_exit(8);
		snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
		_exit(echo_to(path, pid) ? 9 : quota_child());
	}
	if (child > 0) {
		CHECK_EQ(waitpid(child, &st, 0), child);
		CHECK(WIFEXITED(st));
		CHECK_EQ(WEXITSTATUS(st), 0);
		printf("test_cgroup: the real kernel (%s): a child in a 0.25 CPU cgroup read it\n",
		       v2 ? "v2" : "v1");
	}
	CHECK_EQ(rmdir(dir), 0);
	if (acct_made)
		CHECK_EQ(rmdir(acct), 0);
}

int main(void)
{
	if (!mkdtemp(top)) {
		perror("mkdtemp");
		return 1;
	}
	v2();
	v1();
	real_kernel();
	rmdir(top);
	TEST_DONE("test_cgroup");
}
