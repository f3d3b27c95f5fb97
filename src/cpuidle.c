/* The CPU left over: see cpuidle.h. */
#include "cpuidle.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "channel.h"

#define LM__CPUIDLE_MAX 1024

int lm__cpuidle_open(lm__cpuidle *st)
{
	cpu_set_t set;

	memset(st, 0, sizeof(*st));
	CPU_ZERO(&set);
	if (sched_getaffinity(0, sizeof(set), &set) < 0)
		return -errno;
	for (int i = 0; i < LM__CPUIDLE_MAX && i < CPU_SETSIZE; i++)
		if (CPU_ISSET(i, &set))
			st->mask[i / 64] |= 1ull << (i % 64);
	st->ok = 1;
	st->stat = "/proc/stat";
	return 0;
}

int lm__numbers(const char *p, uint64_t *v, int n)
{
	int k = 0;
	char *end;

	while (k < n) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p < '0' || *p > '9')
			break;
		errno = 0;
		v[k] = strtoull(p, &end, 10);
		if (errno || end == p)
			break;
		k++;
		p = end;
	}
	return k;
}

/* "cpuN user nice system idle iowait ...": N's idle + iowait ticks. */
static int parse_line(const char *l, unsigned *cpu, uint64_t *ticks)
{
	uint64_t v[6];

	if (strncmp(l, "cpu", 3) != 0 || l[3] < '0' || l[3] > '9')
		return 0;
	if (lm__numbers(l + 3, v, 6) != 6 || v[0] > UINT32_MAX)
		return 0;
	*cpu = (unsigned)v[0];
	*ticks = v[4] + v[5];
	return 1;
}

unsigned lm__cpuidle_cpus(const lm__cpuidle *st)
{
	unsigned n = 0;

	for (int i = 0; i < LM__CPUIDLE_MAX / 64; i++)
		n += (unsigned)__builtin_popcountll(st->mask[i]);
	return n;
}

int lm__cpuidle_read(const lm__cpuidle *st, uint64_t *ns)
{
	long hz = sysconf(_SC_CLK_TCK);
	uint64_t ticks = 0, t;
	char line[512];
	unsigned cpu, any = 0;
	FILE *f;

	if (!st->ok || hz <= 0)
		return -ENOTSUP;
	if (!(f = fopen(st->stat, "re")))
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (!parse_line(line, &cpu, &t) || cpu >= LM__CPUIDLE_MAX)
			continue;
		if (st->mask[cpu / 64] >> (cpu % 64) & 1) {
			ticks += t;
			any++;
		}
	}
	fclose(f);
	/* Every CPU of the mask, or the sum is not theirs: in a container
	 * (lxcfs) /proc/stat numbers its CPUs from 0 whatever the host's
	 * ids the mask holds, and an offline CPU has no line. */
	if (!any || any != lm__cpuidle_cpus(st))
		return -ENOENT;
	*ns = ticks * (1000000000ull / (uint64_t)hz);
	return 0;
}

uint64_t lm__thread_busy_ns(void)
{
	return lm__thread_busy_ns_from("/proc/thread-self/schedstat");
}

/* A schedstat's text: its run-queue wait (the second number) into *wait;
 * 0, or -1 where the text is not one. */
static int schedstat_wait(const char *buf, uint64_t *wait)
{
	uint64_t v[2];

	if (lm__numbers(buf, v, 2) != 2)
		return -1;
	*wait = v[1];
	return 0;
}

/* "run_ns wait_ns timeslices": the wait. The CPU time comes from the
 * thread's clock, never from the file: a read that fails later (EMFILE on a
 * loaded server) must not take the earlier waits back out of the sum, and
 * kernels without schedstats print "0 0 0". */
uint64_t lm__thread_busy_ns_from(const char *path)
{
	uint64_t wait, cpu = lm__thread_cpu_ns();
	char buf[128];

	if (lm__read_small(path, buf, sizeof(buf)) <= 0 || schedstat_wait(buf, &wait))
		return cpu;
	return cpu + wait;
}

int lm__thread_wait_open(void)
{
	return open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
}

/* One pread a measurement (about 1 us): the file is the kernel's seq_file,
 * regenerated at offset 0. */
uint64_t lm__thread_wait_ns(int fd)
{
	char buf[128];
	uint64_t wait;
	ssize_t n;

	if (fd < 0 || (n = pread(fd, buf, sizeof(buf) - 1, 0)) <= 0)
		return 0;
	buf[n] = 0;
	return schedstat_wait(buf, &wait) ? 0 : wait;
}

uint64_t lm__wall_own_ns(uint64_t wall, uint64_t q0, uint64_t q1)
{
	uint64_t waited = q0 && q1 > q0 ? q1 - q0 : 0;

	return waited < wall ? wall - waited : 0;
}

ssize_t lm__read_small(const char *path, char *buf, size_t cap)
{
	ssize_t n = 0, got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	buf[0] = 0;
	if (fd < 0)
		return errno ? -errno : -EIO;
	while ((size_t)got < cap - 1 && (n = read(fd, buf + got, cap - 1 - (size_t)got)) > 0)
		got += n;
	close(fd);
	buf[got] = 0;
	return n < 0 ? -EIO : got;
}
