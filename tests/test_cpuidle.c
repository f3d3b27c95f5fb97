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
 */
#include <errno.h>
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
	snprintf(path, sizeof(path), "%s/stat", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/schedstat", dir);
	unlink(path);
	rmdir(dir);
	TEST_DONE("test_cpuidle");
}
