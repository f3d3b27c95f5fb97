/*
 * The CPU quota of this process's cgroup, for codec auto's CPU budget: in a
 * container (Kubernetes' CPU limit, docker --cpus, systemd's CPUQuota=)
 * the affinity mask and /proc/stat show the host's idle CPUs, but the
 * kernel lets the cgroup run only quota/period CPUs' worth; compressing
 * past that throttles every thread of the cgroup, the guest's too. Every
 * cgroup from the process's own up to its hierarchy's mount that can hold
 * a quota (cgroup v2's cpu.max, v1's cpu.cfs_quota_us and
 * cpu.cfs_period_us) is kept with its CPU usage (v2's cpu.stat
 * usage_usec, v1's cpuacct.usage), so the budget can leave out what the
 * rest of each cgroup uses and take the tightest. Where the hierarchies
 * are mounted comes from /proc/self/mountinfo, and the part of the path a
 * mount does not show (a container without a cgroup namespace) is taken
 * off. /proc/self/cgroup is the cgroup of the thread that opens: threads
 * it creates afterwards start in it.
 */
#ifndef LM_CGROUP_H
#define LM_CGROUP_H

#include <stdint.h>

#define LM__CGROUP_PATH   512
#define LM__CGROUP_LEVELS 8 /* cgroups kept, the process's own first */

typedef struct lm__cgroup_level {
	char quota[LM__CGROUP_PATH];  /* cpu.max (v2) or cpu.cfs_quota_us (v1) */
	char period[LM__CGROUP_PATH]; /* v1: cpu.cfs_period_us; v2: "" */
	char usage[LM__CGROUP_PATH];  /* cpu.stat (v2) or cpuacct.usage (v1); "": unknown */
	int v2;
} lm__cgroup_level;

/* Paths only: lm__cgroup_read keeps no state, any thread may call it on
 * an lm__cgroup nobody is opening. */
typedef struct lm__cgroup {
	lm__cgroup_level level[LM__CGROUP_LEVELS];
	uint32_t n;
} lm__cgroup;

/* One level now. */
typedef struct lm__cgroup_use {
	double cpus;        /* its quota in CPUs; 0: none now ("max", -1) */
	uint64_t period_us; /* the quota's period */
	uint64_t usage_ns;  /* its cumulative CPU usage; 0: unknown */
} lm__cgroup_use;

/* Finds the cgroups from self (the format of /proc/self/cgroup) and
 * mountinfo (that of /proc/self/mountinfo). 0, or -ENOENT: none that can
 * hold a quota (no cpu controller mounted where this process is), or the
 * negative errno of reading self or mountinfo. */
int lm__cgroup_open(lm__cgroup *cg, const char *self, const char *mountinfo);
/* Each level's quota and usage now, out[i] for i < cg->n; 0, -ENOENT when
 * no level has a quota now, or the negative errno of a level whose quota
 * files could not be read or parsed (a moment's EMFILE: not "no quota"). */
int lm__cgroup_read(const lm__cgroup *cg, lm__cgroup_use *out);

#endif
