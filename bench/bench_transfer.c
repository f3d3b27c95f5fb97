/*
 * In-process loopback migration benchmark: the sender maps IMAGE, the
 * receiver receives into fresh anonymous memory (what a VMM's destination
 * guest RAM is, and what QEMU's memory-backend-ram is). Prints one JSON line
 * per run and the median.
 *
 *   bench_transfer IMAGE [CHANNELS] [RUNS] [ADDR]
 *
 * LM_BENCH_HUGE=1 puts the destination in transparent huge pages
 * (MADV_HUGEPAGE), as a VMM with THP-backed guest RAM has it.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "livemig.h"

typedef struct rx {
	lm_receiver *r;
	int rc;
} rx;

static void *rx_main(void *arg)
{
	rx *x = arg;

	x->rc = lm_receiver_run(x->r);
	return NULL;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	uint32_t ch = argc > 2 ? (uint32_t)atoi(argv[2]) : 2;
	int runs = argc > 3 ? atoi(argv[3]) : 5;
	const char *bind = argc > 4 ? argv[4] : "127.0.0.1:0";
	double ms[64];
	struct stat sb;
	int fd;
	void *src;

	if (argc < 2 || runs < 1 || runs > 64) {
		fprintf(stderr, "usage: bench_transfer IMAGE [CHANNELS] [RUNS] [ADDR]\n");
		return 2;
	}
	fd = open(argv[1], O_RDONLY);
	if (fd < 0 || fstat(fd, &sb) < 0 || sb.st_size == 0) {
		perror(argv[1]);
		return 1;
	}
	src = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
	if (src == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	for (int i = 0; i < runs; i++) {
		lm_receiver_config rc = {.size = sizeof(lm_receiver_config), .timeout_ms = 30000};
		lm_sender_config sc = {.size = sizeof(lm_sender_config), .channels = ch};
		lm_receiver *r;
		lm_sender *s;
		lm_stats ss = LM_STATS_INIT, rs = LM_STATS_INIT;
		pthread_t t;
		char addr[80];
		rx x;
		void *dst = mmap(NULL, (size_t)sb.st_size, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		int rc_s;

		if (dst != MAP_FAILED && getenv("LM_BENCH_HUGE") && atoi(getenv("LM_BENCH_HUGE")))
			madvise(dst, (size_t)sb.st_size, MADV_HUGEPAGE);
		if (dst == MAP_FAILED || lm_receiver_new(&r, &rc) ||
		    lm_receiver_add_region(r, "ram", dst, (uint64_t)sb.st_size, 1) ||
		    lm_receiver_listen(r, bind)) {
			fprintf(stderr, "receiver setup failed\n");
			return 1;
		}
		snprintf(addr, sizeof(addr), "%.*s:%d", (int)(strrchr(bind, ':') - bind), bind,
			 lm_receiver_port(r));
		x.r = r;
		pthread_create(&t, NULL, rx_main, &x);
		lm_sender_new(&s, &sc);
		lm_sender_add_region(s, "ram", src, (uint64_t)sb.st_size);
		rc_s = lm_sender_connect(s, addr);
		if (!rc_s)
			rc_s = lm_sender_run(s);
		pthread_join(t, NULL);
		if (rc_s || x.rc || memcmp(src, dst, (size_t)sb.st_size)) {
			fprintf(stderr, "run %d failed: %s / %s\n", i, lm_sender_errmsg(s),
				lm_receiver_errmsg(r));
			return 1;
		}
		lm_sender_stats(s, &ss);
		lm_receiver_stats(r, &rs);
		ms[i] = ss.total_time_us / 1e3;
		printf("{\"run\":%d,\"channels\":%u,\"total_ms\":%.1f,\"mbps\":%.0f,"
		       "\"sender_cpu_s\":%.3f,\"receiver_cpu_s\":%.3f}\n",
		       i, ch, ms[i], ss.throughput_mbps, ss.cpu_seconds, rs.cpu_seconds);
		lm_sender_free(s);
		lm_receiver_free(r);
		munmap(dst, (size_t)sb.st_size);
	}
	qsort(ms, (size_t)runs, sizeof(ms[0]), cmp_d);
	printf("{\"median_total_ms\":%.1f,\"runs\":%d,\"channels\":%u}\n", ms[runs / 2], runs, ch);
	return 0;
}
