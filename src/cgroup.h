/*
 * The CPU quota of this process's cgroup, for codec auto's CPU budget: in a
 * container (Kubernetes' CPU limit, docker --cpus, systemd's CPUQuota=)
 * the affinity mask and /proc/stat show the host's idle CPUs, but the
 * kernel lets the cgroup run only quota/period CPUs' worth; compressing
 * past that throttles every thread of the cgroup, the guest's too. The
 * tightest quota over the cgroup and its ancestors (cgroup v2's cpu.max,
 * v1's cpu.cfs_quota_us and cpu.cfs_period_us), and that cgroup's CPU
 * usage (v2's cpu.stat usage_usec, v1's cpuacct.usage), so the budget
 * leaves out what the rest of the cgroup uses.
 */
#ifndef LM_CGROUP_H
#define LM_CGROUP_H

#include <stdint.h>

#define LM__CGROUP_PATH 512

/* Not thread-safe: one owner (the sender's updater). */
typedef struct lm__cgroup {
	char quota[LM__CGROUP_PATH];  /* the binding cgroup's cpu.max, or cpu.cfs_quota_us */
	char period[LM__CGROUP_PATH]; /* v1: its cpu.cfs_period_us ("" on v2) */
	char usage[LM__CGROUP_PATH];  /* its usage file ("" not found) */
	int v2;                       /* cpu.max and cpu.stat, else the v1 files */
} lm__cgroup;

/* Finds the cgroup whose CPU quota binds this process, from self (the
 * format of /proc/self/cgroup) and the cgroup file systems under root
 * (/sys/fs/cgroup: v2 there or at unified/, v1 at cpu/ or cpu,cpuacct/,
 * usage at cpuacct/). 0, or -ENOENT: no quota on the way up (the budget
 * is then the idle CPU's alone), or another negative errno. */
int lm__cgroup_open(lm__cgroup *cg, const char *self, const char *root);
/* Its quota now, in CPUs (it can change while migrating: an in-place
 * resize), and its cumulative usage in ns; *usage_ns is 0 when the usage
 * file is unknown or unreadable. 0, or a negative errno (quota gone: no
 * quota term). */
int lm__cgroup_read(const lm__cgroup *cg, double *cpus, uint64_t *usage_ns);

#endif
