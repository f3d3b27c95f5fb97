/*
 * The CPU left over, for codec auto. The machine's idle CPU time, for the
 * sender's CPU budget: compressing pays only with CPU that nobody else
 * wants (the guest, a receiver on the same host, other tenants), as
 * Hyper-V throttles its compression to idle CPU; Linux's /proc/stat,
 * summed over the CPUs this process may run on. And a thread's busy time,
 * for the receiver's FEEDBACK: its CPU time and the time it waited,
 * runnable, for a CPU, so a receiver starved of CPU reads as busy, not as
 * a full link.
 */
#ifndef LM_CPUIDLE_H
#define LM_CPUIDLE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Not thread-safe: one owner (the sender's updater). */
typedef struct lm__cpuidle {
	uint64_t mask[16]; /* the CPUs the calling thread of lm__cpuidle_open
			      may run on (0-1023); threads it creates inherit it */
	int ok;            /* the mask is known */
	const char *stat;  /* "/proc/stat" (a test's file in tests) */
} lm__cpuidle;

/* Reads the affinity mask; 0, or a negative errno (then reads fail). */
int lm__cpuidle_open(lm__cpuidle *st);
/* The CPUs of the mask. */
unsigned lm__cpuidle_cpus(const lm__cpuidle *st);
/* Cumulative idle and iowait ns on those CPUs since boot; 0, or a
 * negative errno (no /proc, or no line for some of them: -ENOENT). */
int lm__cpuidle_read(const lm__cpuidle *st, uint64_t *ns);

/* This thread's CPU time (its clock) and run-queue wait
 * (/proc/thread-self/schedstat), ns; its CPU time alone where the kernel
 * does not say. Not monotonic if the wait becomes unreadable: callers that
 * report a cumulative count keep it from going back. Any thread. */
uint64_t lm__thread_busy_ns(void);
/* The same from a schedstat file at path (tests: a missing or garbled
 * one falls back to the CPU time). */
uint64_t lm__thread_busy_ns_from(const char *path);

/* This thread's schedstat, opened by the thread itself (thread-self names
 * the opener, and the file stays the opener's): a descriptor, or -1 where
 * the kernel has none. */
int lm__thread_wait_open(void);
/* The run-queue wait, ns ever, of the thread whose schedstat fd is; 0
 * where unknown (fd -1, a failed read, "0 0 0" without schedstats). */
uint64_t lm__thread_wait_ns(int fd);
/* Wall ns of a step less the run-queue wait between q0 and q1 (its
 * lm__thread_wait_ns before and after; 0 before: unknown, no change). */
uint64_t lm__wall_own_ns(uint64_t wall, uint64_t q0, uint64_t q1);

/* Readers of the kernel's small text files (here and cgroup.c). Up to n
 * decimal numbers separated by blanks from p; how many were read. */
int lm__numbers(const char *p, uint64_t *v, int n);
/* The whole of a small file at path into buf (cap > 0), NUL-terminated,
 * cut at cap - 1 bytes; its length, or a negative errno. */
ssize_t lm__read_small(const char *path, char *buf, size_t cap);

#endif
