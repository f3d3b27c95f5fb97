/*
 * test_cpuidle: the CPU left over (src/cpuidle.c), what codec auto's CPU
 * budget and the receiver's FEEDBACK read.
 *  1. The idle CPU from a /proc/stat the test writes: idle + iowait of the
 *     CPUs in the mask only, the aggregate "cpu" line and garbled lines
 *     ignored; a missing file, or a CPU of the mask without its line (a
 *     container numbering its CPUs from 0), is an error (the
 *     sender then has no budget, never a made-up one).
 *  2. The real /proc/stat: readings never go back, and the idle time over
 *     a sleep is at most the mask's CPUs times the time slept.
 *  3. A thread's busy time: it grows by at least the CPU time the thread
 *     spun; from a missing or garbled schedstat file it is the CPU time.
 *  4. A thread's run-queue wait (codec auto's encode times leave it out):
 *     the second number of a schedstat the test writes, re-read through
 *     one descriptor; 0 where unknown; two threads spinning on one CPU
 *     each wait for the other, and a step's wall time less its wait is
 *     about its CPU time.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "channel.h"
#include "check.h"
#include "cpuidle.h"

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	CHECK(f != NULL);
	if (!f)
		return;
	fputs(text, f);
	fclose(f);
}

static volatile uint64_t spin_sink; /* what the spin computes, so it is not elided */

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static void idle_from_file(const char *dir)
{
	char path[512];
	lm__cpuidle st;
	uint64_t ns = 0, tick = 1000000000ull / (uint64_t)sysconf(_SC_CLK_TCK);

	snprintf(path, sizeof(path), "%s/stat", dir);
	write_file(path, "cpu  100 0 100 9000 50 0 0 0 0 0\n"
			 "cpu0 10 0 10 1000 5 0 0 0 0 0\n"
			 "cpu1 10 0 10 2000 6 0 0 0 0 0\n"
			 "cpu2 10 0 10 3000 7 0 0 0 0 0\n"
			 "cpu3 garbled\n"
			 "cpu70 1 2 3 4 5 6 7 8 9 10\n"
			 "intr 12345 1 2 3\n"
			 "ctxt 999\n");
	memset(&st, 0, sizeof(st));
	st.ok = 1;
	st.stat = path;
	st.mask[0] = 1u << 0 | 1u << 2; /* cpu0 and cpu2 */
	st.mask[1] = 1u << (70 - 64);   /* and cpu70 */
	CHECK_EQ(lm__cpuidle_read(&st, &ns), 0);
	CHECK_EQ(ns, (1000 + 5 + 3000 + 7 + 4 + 5) * tick);
	/* A mask whose CPUs have no line (cpu3's is garbled): an error. */
	st.mask[0] = 1u << 3 | 1u << 9;
	st.mask[1] = 0;
	CHECK_EQ(lm__cpuidle_read(&st, &ns), -ENOENT);
	/* Some of them (a container's /proc/stat numbering its CPUs from 0
	 * while the mask holds the host's ids): not their idle time either. */
	st.mask[0] = 1u << 0 | 1u << 9;
	CHECK_EQ(lm__cpuidle_read(&st, &ns), -ENOENT);
	/* No file: an error, not zero idle. */
	snprintf(path, sizeof(path), "%s/missing", dir);
	st.mask[0] = 1;
	CHECK(lm__cpuidle_read(&st, &ns) < 0);
	/* Never opened: an error. */
	memset(&st, 0, sizeof(st));
	CHECK_EQ(lm__cpuidle_read(&st, &ns), -ENOTSUP);
}

static void idle_real(void)
{
	lm__cpuidle st;
	uint64_t a = 0, b = 0, t0, t1;
	long cpus = 0;

	CHECK_EQ(lm__cpuidle_open(&st), 0);
	for (int i = 0; i < 16; i++)
		cpus += __builtin_popcountll(st.mask[i]);
	CHECK(cpus >= 1);
	t0 = now_ns();
	CHECK_EQ(lm__cpuidle_read(&st, &a), 0);
	usleep(200000);
	CHECK_EQ(lm__cpuidle_read(&st, &b), 0);
	t1 = now_ns();
	CHECK(b >= a);
	/* Ticks round to 1/HZ per CPU either way. */
	CHECK(b - a <= (uint64_t)cpus * (t1 - t0 + 2 * 1000000000ull / (uint64_t)sysconf(_SC_CLK_TCK)));
	printf("cpuidle: %ld CPUs, %.0f ms idle over %.0f ms\n", cpus, (double)(b - a) / 1e6,
	       (double)(t1 - t0) / 1e6);
}

static void busy_time(const char *dir)
{
	char path[512];
	uint64_t b0 = lm__thread_busy_ns(), c0 = lm__thread_cpu_ns(), b1, c1, fb;

	while (lm__thread_cpu_ns() - c0 < 50000000ull) /* 50 ms of CPU */
		for (int i = 0; i < 100000; i++)
			spin_sink += (uint64_t)i;
	b1 = lm__thread_busy_ns();
	c1 = lm__thread_cpu_ns();
	CHECK(b1 >= b0 + 45000000ull); /* schedstat's run time trails a little */
	CHECK(b1 <= b0 + (c1 - c0) + 5000000000ull); /* + run-queue waits, bounded here */
	/* Fallbacks: the CPU time. */
	snprintf(path, sizeof(path), "%s/missing", dir);
	c0 = lm__thread_cpu_ns();
	fb = lm__thread_busy_ns_from(path);
	c1 = lm__thread_cpu_ns();
	CHECK(fb >= c0 && fb <= c1);
	snprintf(path, sizeof(path), "%s/schedstat", dir);
	write_file(path, "garbled\n");
	c0 = lm__thread_cpu_ns();
	fb = lm__thread_busy_ns_from(path);
	c1 = lm__thread_cpu_ns();
	CHECK(fb >= c0 && fb <= c1);
	/* The wait from the file, the CPU time from the thread's clock
	 * (kernels without schedstats print "0 0 0"). */
	write_file(path, "123456789 1000000 42\n");
	c0 = lm__thread_cpu_ns();
	fb = lm__thread_busy_ns_from(path);
	c1 = lm__thread_cpu_ns();
	CHECK(fb >= c0 + 1000000 && fb <= c1 + 1000000);
	write_file(path, "0 0 0\n");
	c0 = lm__thread_cpu_ns();
	fb = lm__thread_busy_ns_from(path);
	c1 = lm__thread_cpu_ns();
	CHECK(fb >= c0 && fb <= c1);
}

/* Atomics: the spinner and wait_real share them. */
static int spinner_stop;
static int spinner_cpu = -1; /* where the spinner ran, -1: not pinned */

static void *spinner(void *arg)
{
	cpu_set_t *one = arg;
	volatile uint64_t sink = 0; /* its own: spin_sink is the main thread's */

	if (pthread_setaffinity_np(pthread_self(), sizeof(*one), one) == 0)
		__atomic_store_n(&spinner_cpu, sched_getcpu(), __ATOMIC_RELAXED);
	while (!__atomic_load_n(&spinner_stop, __ATOMIC_RELAXED))
		sink++;
	return NULL;
}

/* The first field of this thread's schedstat (its run time): 0 where the
 * kernel keeps none ("0 0 0"). */
static uint64_t schedstat_run_ns(void)
{
	char buf[128];
	uint64_t v[1];

	if (lm__read_small("/proc/thread-self/schedstat", buf, sizeof(buf)) <= 0 ||
	    lm__numbers(buf, v, 1) != 1)
		return 0;
	return v[0];
}

static void wait_from_file(const char *dir)
{
	char path[512];
	int fd;

	CHECK_EQ(lm__thread_wait_ns(-1), 0);
	snprintf(path, sizeof(path), "%s/schedstat", dir);
	write_file(path, "123456789 1000000 42\n");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	CHECK_EQ(lm__thread_wait_ns(fd), 1000000);
	write_file(path, "123456789 2500000 43\n"); /* the same descriptor reads it anew */
	CHECK_EQ(lm__thread_wait_ns(fd), 2500000);
	write_file(path, "garbled\n");
	CHECK_EQ(lm__thread_wait_ns(fd), 0);
	if (fd >= 0)
		close(fd);
	CHECK_EQ(lm__wall_own_ns(1000, 0, 400), 1000);   /* unknown before: as measured */
	CHECK_EQ(lm__wall_own_ns(1000, 500, 400), 1000); /* went back: as measured */
	CHECK_EQ(lm__wall_own_ns(1000, 100, 500), 600);
	CHECK_EQ(lm__wall_own_ns(1000, 100, 5000), 0);
}

/* This thread and a spinner on one CPU for about 300 ms of wall time. */
static void wait_real(void)
{
	int fd = lm__thread_wait_open();
	cpu_set_t old, one;
	pthread_t t;
	uint64_t q0, q1, w0, w1, c0, c1, own;
	int here;

	if (fd < 0) {
		printf("cpuidle: SKIP run-queue wait: /proc/thread-self/schedstat: %s\n",
		       strerror(errno));
		return;
	}
	if (!schedstat_run_ns()) {
		printf("cpuidle: SKIP run-queue wait: the kernel keeps no schedstats\n");
		close(fd);
		return;
	}
	CHECK(pthread_getaffinity_np(pthread_self(), sizeof(old), &old) == 0);
	CPU_ZERO(&one);
	for (int i = 0; i < CPU_SETSIZE; i++)
		if (CPU_ISSET(i, &old)) {
			CPU_SET(i, &one);
			break;
		}
	CHECK(pthread_setaffinity_np(pthread_self(), sizeof(one), &one) == 0);
	spinner_stop = 0;
	spinner_cpu = -1;
	CHECK(pthread_create(&t, NULL, spinner, &one) == 0);
	/* Wall inside the wait's readings: a preemption between them counts
	 * in both or neither. */
	w0 = now_ns(), q0 = lm__thread_wait_ns(fd), c0 = lm__thread_cpu_ns();
	while (now_ns() - w0 < 300000000ull)
		for (int i = 0; i < 10000; i++)
			spin_sink += (uint64_t)i;
	c1 = lm__thread_cpu_ns(), q1 = lm__thread_wait_ns(fd), w1 = now_ns();
	here = sched_getcpu(); /* where this thread ran, to compare */
	__atomic_store_n(&spinner_stop, 1, __ATOMIC_RELAXED);
	pthread_join(t, NULL);
	pthread_setaffinity_np(pthread_self(), sizeof(old), &old);
	close(fd);
	if (spinner_cpu < 0 || spinner_cpu != here) {
		printf("cpuidle: SKIP run-queue wait: the two threads did not share a CPU (%d, "
		       "%d)\n",
		       spinner_cpu, here);
		return;
	}
	own = lm__wall_own_ns(w1 - w0, q0, q1);
	printf("cpuidle: one CPU shared with a spinner: %.0f ms wall, %.0f ms CPU, %.0f ms waited, "
	       "%.0f ms own\n",
	       (double)(w1 - w0) / 1e6, (double)(c1 - c0) / 1e6, (double)(q1 - q0) / 1e6,
	       (double)own / 1e6);
	CHECK(q1 - q0 >= (w1 - w0) / 5); /* the spinner had the CPU part of the time */
	/* Own time is CPU time give or take a few ms (the clocks are read
	 * apart), and the hypervisor's steal, which neither counts: at least
	 * half of the time off the CPU was the wait. */
	CHECK(own + 20000000ull >= c1 - c0);
	CHECK(own <= (c1 - c0) + 20000000ull + (w1 - w0 - (c1 - c0)) / 2);
}

int main(void)
{
	char dir[] = "/tmp/test_cpuidle.XXXXXX", path[512];

	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	idle_from_file(dir);
	idle_real();
	busy_time(dir);
	wait_from_file(dir);
	wait_real();
	snprintf(path, sizeof(path), "%s/stat", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/schedstat", dir);
	unlink(path);
	rmdir(dir);
	TEST_DONE("test_cpuidle");
}
