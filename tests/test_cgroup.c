/*
 * test_cgroup: the cgroup CPU quota codec auto's budget reads
 * (src/cgroup.c).
 *  1. From cgroup trees the test writes: v2 in a cgroup namespace (the
 *     container's cgroup is "/"), v2 nested with the tighter quota on an
 *     ancestor or on the cgroup itself, v2 beside v1 (hybrid, at
 *     unified/), v1 with cpu and cpuacct co-mounted and a path whose upper
 *     part is not mounted (a container without a cgroup namespace), v1
 *     with separate cpu and cpuacct mounts. The quota in CPUs and the
 *     usage in ns from the binding cgroup; a quota changed after open is
 *     read as it is now; "max", -1, garbled files and a missing
 *     /proc/self/cgroup are no quota, never a made-up one.
 *  2. The real kernel, as root where a cpu controller can be written: a
 *     child process in a new cgroup with a quota of 0.25 CPUs reads 0.25
 *     and a usage that grows as it spins. Skipped, saying why, elsewhere.
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

/* Opens with top/self as /proc/self/cgroup and top/fs as the root. */
static int open_tree(lm__cgroup *cg)
{
	char self[512], root[512];

	snprintf(self, sizeof(self), "%s/self", top);
	snprintf(root, sizeof(root), "%s/fs", top);
	return lm__cgroup_open(cg, self, root);
}

static void expect(double cpus, uint64_t usage)
{
	lm__cgroup cg;
	double got = -1;
	uint64_t use = 1;

	CHECK_EQ(open_tree(&cg), 0);
	CHECK_EQ(lm__cgroup_read(&cg, &got, &use), 0);
	CHECK(got > cpus - 1e-9 && got < cpus + 1e-9);
	CHECK_EQ(use, usage);
}

static void expect_none(void)
{
	lm__cgroup cg;
	double got;
	uint64_t use;

	CHECK_EQ(open_tree(&cg), -ENOENT);
	CHECK(lm__cgroup_read(&cg, &got, &use) < 0);
}

static void trees(void)
{
	lm__cgroup cg;
	double cpus;
	uint64_t use;

	/* v2, a cgroup namespace: the container's cgroup is the root. */
	put("self", "0::/\n");
	put("fs/cpu.max", "150000 100000\n");
	put("fs/cpu.stat", "usage_usec 5000\nuser_usec 4000\nsystem_usec 1000\n");
	expect(1.5, 5000000);
	/* Unlimited, then garbled: no quota. */
	put("fs/cpu.max", "max 100000\n");
	expect_none();
	put("fs/cpu.max", "lots\n");
	expect_none();
	put("fs/cpu.max", "100000 0\n");
	expect_none();
	clean();

	/* v2 nested: the ancestor's quota binds, then the cgroup's own. */
	put("self", "0::/pod/ctr\n");
	put("fs/pod/cpu.max", "200000 100000\n");
	put("fs/pod/cpu.stat", "nr_periods 3\nusage_usec 7\n");
	put("fs/pod/ctr/cpu.max", "max 100000\n");
	put("fs/pod/ctr/cpu.stat", "usage_usec 3\n");
	expect(2.0, 7000);
	put("fs/pod/ctr/cpu.max", "50000 100000\n");
	expect(0.5, 3000);
	/* Changed after open: read as it is now (an in-place resize). */
	CHECK_EQ(open_tree(&cg), 0);
	put("fs/pod/ctr/cpu.max", "75000 100000\n");
	CHECK_EQ(lm__cgroup_read(&cg, &cpus, &use), 0);
	CHECK(cpus > 0.749 && cpus < 0.751);
	/* Lifted: no quota term any more. */
	put("fs/pod/ctr/cpu.max", "max 100000\n");
	CHECK(lm__cgroup_read(&cg, &cpus, &use) < 0);
	/* A usage file without usage_usec: the quota alone. */
	put("fs/pod/ctr/cpu.max", "50000 100000\n");
	put("fs/pod/ctr/cpu.stat", "user_usec 3\n");
	expect(0.5, 0);
	clean();

	/* Hybrid: v2 at unified/, the cpu controller on v1. */
	put("self", "12:cpu,cpuacct:/job\n0::/job\n");
	put("fs/unified/job/cpu.stat", "usage_usec 1\n");
	put("fs/cpu,cpuacct/job/cpu.cfs_quota_us", "-1\n");
	put("fs/cpu,cpuacct/job/cpu.cfs_period_us", "100000\n");
	expect_none();
	put("fs/cpu,cpuacct/job/cpu.cfs_quota_us", "300000\n");
	put("fs/cpu,cpuacct/job/cpuacct.usage", "123456789\n");
	expect(3.0, 123456789);
	clean();

	/* v1 in a container without a cgroup namespace: its path is the
	 * host's, the mount is its own cgroup. */
	put("self", "4:cpu,cpuacct:/docker/abc\n3:memory:/docker/abc\n0::/\n");
	put("fs/cpu,cpuacct/cpu.cfs_quota_us", "100000\n");
	put("fs/cpu,cpuacct/cpu.cfs_period_us", "100000\n");
	put("fs/cpu,cpuacct/cpuacct.usage", "42\n");
	expect(1.0, 42);
	clean();

	/* v1, cpu and cpuacct mounted apart. */
	put("self", "5:cpuacct:/x\n4:cpu:/x\n");
	put("fs/cpu/x/cpu.cfs_quota_us", "250000\n");
	put("fs/cpu/x/cpu.cfs_period_us", "100000\n");
	put("fs/cpuacct/x/cpuacct.usage", "99\n");
	expect(2.5, 99);
	/* A period missing: no quota. */
	put("fs/cpu/x/cpu.cfs_period_us", "\n");
	expect_none();
	clean();

	/* A controller list that only contains "cpu" as part of a name. */
	put("self", "6:cpuset:/y\n");
	put("fs/cpuset/y/cpu.cfs_quota_us", "100000\n");
	put("fs/cpuset/y/cpu.cfs_period_us", "100000\n");
	expect_none();
	clean();

	/* No /proc/self/cgroup, or one of garbage. */
	expect_none();
	put("self", "garbage\n:::\n0:\n");
	expect_none();
	clean();
}

static volatile uint64_t spin_sink;

/* In a child moved into a new cgroup with a quota of 0.25 CPUs. */
static int quota_child(void)
{
	lm__cgroup cg;
	double cpus = 0;
	uint64_t u0 = 0, u1 = 0;
	struct timespec t0, t;

	if (lm__cgroup_open(&cg, "/proc/self/cgroup", "/sys/fs/cgroup")) {
		fprintf(stderr, "test_cgroup: the child found no quota\n");
		return 1;
	}
	if (lm__cgroup_read(&cg, &cpus, &u0) || cpus < 0.249 || cpus > 0.251) {
		fprintf(stderr, "test_cgroup: the child read %.3f CPUs\n", cpus);
		return 2;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do { /* 300 ms of wall time: at least 50 ms of CPU under the quota */
		for (int i = 0; i < 100000; i++)
			spin_sink += (uint64_t)i;
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) < 300000000L);
	if (lm__cgroup_read(&cg, &cpus, &u1) || !u1 || u1 < u0 + 20000000u) {
		fprintf(stderr, "test_cgroup: usage %llu -> %llu\n", (unsigned long long)u0,
			(unsigned long long)u1);
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
	trees();
	real_kernel();
	rmdir(top);
	TEST_DONE("test_cgroup");
}
