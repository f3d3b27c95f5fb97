/*
 * bench_policy: what to do when the accelerator's queue is full.
 *
 * A deterministic simulation. CHANNELS channels (default 4) share one
 * accelerator: the service-model test accelerator (tests/accel_script.h),
 * a device that completes RATE pages per simulated microsecond, first come
 * first served, and holds at most DEPTH jobs (queued or in service); a
 * submit() costs SUBMIT_US and is refused (LM_EBUSY) when the device is
 * full. Each channel has its own core for software compression, which costs
 * SW_US per page: by default the mean measured here with the real isal
 * engine (level 1) on the same pages, then fixed, so every policy sees the
 * same cost and a run is reproducible with --sw-us. Channels take packets
 * of PACKET pages from one queue as they become idle (as the sender does).
 * Pages really are compressed (the accelerator with zlib level 1, software
 * with isal), so "raw" counts pages that do not fit in page_size - 1.
 *
 * Policies, per packet:
 *   seed     QEMU 9.1 multifd-qpl (livemig's deflate codec): submit each
 *            page, retry a busy queue RETRIES times, then compress that
 *            page in software at once (the back-off) and try the device
 *            again for the next page; then wait for the device's jobs.
 *   wait     never software: a busy submit waits for the device's next
 *            completion and tries again (QEMU's "always wait" measurement).
 *   2pass    the reviewer's alternative: submit every page (RETRIES
 *            retries), remember the refused ones, go over them again
 *            (RETRIES retries) and only then use software; then wait.
 *   sw-only  baseline: no accelerator.
 *
 * Not modelled: the network, zero-page scanning, packet headers.
 *
 *   bench_policy [IMAGE] [--channels N] [--rate PAGES_PER_US] [--depth D]
 *                [--sw-us US] [--submit-us US] [--retries R] [--packet P]
 *                [--max-pages N] [--sweep]
 * Without IMAGE it synthesises a mix of text, binary, same-byte and random
 * pages. With IMAGE (lm-mkimage) it uses the image's non-zero pages.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "accel_script.h"
#include "engine/engine.h"
#include "livemig.h"

#define PS 4096u
#define MAX_CH 64
#define MAX_PACKET 1024

enum { POL_SEED, POL_WAIT, POL_2PASS, POL_SW, POL_COUNT };
static const char *const pol_name[POL_COUNT] = {"seed (retry, then sw)", "always wait",
						"second pass", "software only"};

enum { BY_NONE, BY_HW, BY_SW, BY_REFUSED };
enum { PH_IDLE, PH_SUBMIT, PH_PASS2, PH_WAIT, PH_DONE };

typedef struct cfg {
	uint32_t channels, depth, retries, packet;
	double rate, sw_us, submit_us, wait_us;
	int real; /* 1: the accelerator really compresses (table); 0: timing only (sweep) */
} cfg;

typedef struct result {
	double total_us, device_busy_us;
	uint64_t hw, sw, raw, busy, bytes_out;
} result;

typedef struct chan {
	void *actx;
	double *clk;
	double own_clk; /* sw-only: no accelerator context */
	uint32_t first, n, i, w, tries, p2;
	int phase;
	lm__engine_job jobs[MAX_PACKET];
	uint8_t by[MAX_PACKET];
	uint8_t *out;
} chan;

static const uint8_t **pages;
static uint32_t *sw_len; /* isal's length of each page (PS: raw), measured once */
static uint32_t npages;
static void *isal_ctx;

/* ---- pages ---------------------------------------------------------------- */

static uint64_t rng(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static void synth_pages(uint32_t n)
{
	static const char *const w[] = {"the ", "memory ", "page ", "kernel ", "of ", "and ",
					"migration ", "channel ", "int ", "return ", "\n", "data "};
	uint64_t x = 12345;
	uint8_t *m = malloc((size_t)n * PS);

	pages = malloc(sizeof(*pages) * n);
	for (uint32_t k = 0; k < n; k++) {
		uint8_t *p = m + (size_t)k * PS;
		uint64_t kind = rng(&x) % 10;
		uint32_t i = 0;
		if (kind < 3) { /* text */
			while (i < PS) {
				const char *s = w[rng(&x) % 12];
				while (*s && i < PS)
					p[i++] = (uint8_t)*s++;
			}
		} else if (kind < 7) { /* binary records */
			for (; i < PS; i += 16) {
				uint64_t ptr = 0x7f0000000000ull + (rng(&x) % 512) * 64;
				uint32_t ctr = i, z = 0;
				memcpy(p + i, &ptr, 8);
				memcpy(p + i + 8, &ctr, 4);
				memcpy(p + i + 12, &z, 4);
			}
		} else if (kind < 9) { /* incompressible */
			for (; i < PS; i += 8) {
				uint64_t v = rng(&x);
				memcpy(p + i, &v, 8);
			}
		} else {
			memset(p, (int)(1 + rng(&x) % 255), PS);
		}
		pages[k] = p;
	}
	npages = n;
}

static int image_pages(const char *path, uint32_t max)
{
	struct stat sb;
	int fd = open(path, O_RDONLY);
	const uint8_t *m;

	if (fd < 0 || fstat(fd, &sb) < 0) {
		perror(path);
		return -1;
	}
	m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
	close(fd);
	if (m == MAP_FAILED) {
		perror("mmap");
		return -1;
	}
	pages = malloc(sizeof(*pages) * max);
	npages = 0;
	for (uint64_t off = 0; off + PS <= (uint64_t)sb.st_size && npages < max; off += PS) {
		const uint8_t *p = m + off;
		int zero = 1;
		for (uint32_t i = 0; i < PS && zero; i += 8) {
			uint64_t v;
			memcpy(&v, p + i, 8);
			zero = v == 0;
		}
		if (!zero)
			pages[npages++] = p;
	}
	return 0;
}

/* ---- software ---------------------------------------------------------------- */

static uint32_t sw_compress(const uint8_t *page, uint8_t *out)
{
	lm__engine_job j = {.op = LM_ENGINE_COMPRESS, .in = page, .in_len = PS, .out = out,
			    .out_cap = PS - 1};

	if (lm__engine_isal.execute(isal_ctx, &j))
		return PS;
	return j.out_len;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Mean isal level-1 time per page on this machine, microseconds. */
static double measure_sw_us(uint64_t *out_bytes, uint64_t *raw)
{
	uint8_t *out = malloc(PS);
	double best = 1e30;

	sw_len = malloc(sizeof(*sw_len) * npages);
	for (int rep = 0; rep < 3; rep++) {
		double t0 = now_s();
		*out_bytes = *raw = 0;
		for (uint32_t k = 0; k < npages; k++) {
			uint32_t l = sw_compress(pages[k], out);
			*out_bytes += l;
			*raw += l == PS;
			sw_len[k] = l;
		}
		double t = (now_s() - t0) * 1e6 / npages;
		if (t < best)
			best = t;
	}
	free(out);
	return best;
}

/* ---- the simulation ---------------------------------------------------------- */

static void account(result *r, int by, uint32_t len)
{
	if (by == BY_HW)
		r->hw++;
	else
		r->sw++;
	if (len >= PS)
		r->raw++;
	r->bytes_out += len >= PS ? PS : len;
}

/* Software compression of page k: its cost in simulated time, its length
 * as measured (the same isal output every time). */
static void do_sw(chan *c, const cfg *g, result *r, uint32_t k)
{
	uint32_t len = sw_len[c->first + k];

	*c->clk += g->sw_us;
	c->by[k] = BY_SW;
	account(r, BY_SW, len);
}

/* One submit of page k. 1: queued, 0: busy (retry counted by caller). */
static int submit(chan *c, uint32_t k)
{
	lm__engine_job *j = &c->jobs[k];

	*j = (lm__engine_job){.op = LM_ENGINE_COMPRESS, .in = pages[c->first + k], .in_len = PS,
			      .out = c->out + (size_t)k * PS, .out_cap = PS - 1};
	if (accel_script_ops.submit(c->actx, j) == 0) {
		c->by[k] = BY_HW;
		return 1;
	}
	return 0;
}

/* One action of channel c. Returns 0 when the channel has finished. */
static int step(chan *c, int pol, const cfg *g, result *r, uint32_t *next_page)
{
	switch (c->phase) {
	case PH_IDLE:
		if (*next_page >= npages) {
			c->phase = PH_DONE;
			return 0;
		}
		c->first = *next_page;
		c->n = npages - c->first < g->packet ? npages - c->first : g->packet;
		*next_page += c->n;
		c->i = c->w = c->tries = c->p2 = 0;
		memset(c->by, BY_NONE, c->n);
		c->phase = PH_SUBMIT;
		return 1;
	case PH_SUBMIT:
		if (c->i == c->n) {
			c->phase = pol == POL_2PASS ? PH_PASS2 : PH_WAIT;
			return 1;
		}
		if (pol == POL_SW) {
			do_sw(c, g, r, c->i++);
			return 1;
		}
		if (submit(c, c->i)) {
			c->i++;
			c->tries = 0;
			return 1;
		}
		r->busy++;
		if (pol == POL_WAIT) {
			/* Wait for the device's next completion, then retry. */
			double t = accel_script_model_next_completion(*c->clk);
			if (t > *c->clk)
				*c->clk = t;
			return 1;
		}
		if (c->tries < g->retries) {
			c->tries++;
			return 1;
		}
		c->tries = 0;
		if (pol == POL_SEED)
			do_sw(c, g, r, c->i);
		else
			c->by[c->i] = BY_REFUSED;
		c->i++;
		return 1;
	case PH_PASS2:
		while (c->p2 < c->n && c->by[c->p2] != BY_REFUSED)
			c->p2++;
		if (c->p2 == c->n) {
			c->phase = PH_WAIT;
			return 1;
		}
		if (submit(c, c->p2)) {
			c->p2++;
			c->tries = 0;
			return 1;
		}
		r->busy++;
		if (c->tries < g->retries) {
			c->tries++;
			return 1;
		}
		c->tries = 0;
		do_sw(c, g, r, c->p2++);
		return 1;
	case PH_WAIT:
		while (c->w < c->n && c->by[c->w] != BY_HW)
			c->w++;
		if (c->w == c->n) {
			c->phase = PH_IDLE;
			return 1;
		}
		{
			lm__engine_job *j = &c->jobs[c->w];
			int rc = accel_script_ops.wait(c->actx, j);
			if (rc == 0)
				account(r, BY_HW, j->out_len);
			else
				account(r, BY_HW, PS); /* did not fit: raw */
			c->w++;
		}
		return 1;
	default:
		return 0;
	}
}

static result simulate(int pol, const cfg *g)
{
	accel_model m = {.rate = g->rate, .depth = g->depth, .submit_us = g->submit_us,
			 .wait_us = g->wait_us, .compress = g->real};
	chan *ch = calloc(g->channels, sizeof(*ch));
	result r;
	uint32_t next_page = 0, live = g->channels;

	memset(&r, 0, sizeof(r));
	accel_script_reset();
	accel_script_model(&m);
	for (uint32_t i = 0; i < g->channels; i++) {
		ch[i].out = malloc((size_t)g->packet * PS);
		if (pol == POL_SW) {
			ch[i].clk = &ch[i].own_clk;
		} else {
			accel_script_ops.ctx_new(&ch[i].actx, 1, PS, g->packet);
			ch[i].clk = accel_script_clock(ch[i].actx);
		}
		ch[i].phase = PH_IDLE;
	}
	/* Always step the channel whose clock is lowest: the model is causal. */
	while (live) {
		uint32_t best = UINT32_MAX;
		for (uint32_t i = 0; i < g->channels; i++)
			if (ch[i].phase != PH_DONE && (best == UINT32_MAX || *ch[i].clk < *ch[best].clk))
				best = i;
		if (!step(&ch[best], pol, g, &r, &next_page))
			live--;
	}
	for (uint32_t i = 0; i < g->channels; i++) {
		if (*ch[i].clk > r.total_us)
			r.total_us = *ch[i].clk;
		if (ch[i].actx)
			accel_script_ops.ctx_free(ch[i].actx);
		free(ch[i].out);
	}
	r.device_busy_us = accel_script_model_busy_us();
	free(ch);
	return r;
}

static void table(const cfg *g, int verbose)
{
	result res[POL_COUNT];
	int best = 0, tie;

	for (int p = 0; p < POL_COUNT; p++) {
		res[p] = simulate(p, g);
		if (p != POL_SW && res[p].total_us < res[best].total_us)
			best = p;
	}
	/* Within 1% of each other: no winner. */
	tie = res[POL_SEED].total_us < 1.01 * res[best].total_us &&
	      res[POL_WAIT].total_us < 1.01 * res[best].total_us &&
	      res[POL_2PASS].total_us < 1.01 * res[best].total_us;
	if (verbose) {
		printf("| policy | simulated time | pages/s | hardware | software | raw | busy refusals | device busy | ratio |\n");
		printf("|---|---|---|---|---|---|---|---|---|\n");
	}
	for (int p = 0; p < POL_COUNT; p++) {
		const result *r = &res[p];
		double n = (double)(r->hw + r->sw);
		if (!verbose)
			continue;
		printf("| %s%s | %.2f ms | %.2f M | %.1f%% | %.1f%% | %.1f%% | %llu | %.0f%% | %.2f |\n",
		       pol_name[p], p == best && !tie ? " **best**" : "", r->total_us / 1e3,
		       n / r->total_us, 100.0 * (double)r->hw / n, 100.0 * (double)r->sw / n,
		       100.0 * (double)r->raw / n, (unsigned long long)r->busy,
		       r->total_us > 0 ? 100.0 * r->device_busy_us / r->total_us : 0.0,
		       (double)n * PS / (double)r->bytes_out);
	}
	if (!verbose)
		printf("| %u | %.1f | %.2f | %.2f ms | %.2f ms | %.2f ms | %.2f ms | %s |\n", g->depth,
		       g->sw_us, g->rate, res[POL_SEED].total_us / 1e3, res[POL_WAIT].total_us / 1e3,
		       res[POL_2PASS].total_us / 1e3, res[POL_SW].total_us / 1e3,
		       tie ? "tie (within 1%)" : pol_name[best]);
	else
		printf("\nseed vs always wait: %.2f ms vs %.2f ms (wait takes %.2fx as long); "
		       "second pass: %.2f ms\n",
		       res[POL_SEED].total_us / 1e3, res[POL_WAIT].total_us / 1e3,
		       res[POL_WAIT].total_us / res[POL_SEED].total_us, res[POL_2PASS].total_us / 1e3);
}

int main(int argc, char **argv)
{
	cfg g = {.channels = 4, .depth = 128, .retries = 3, .packet = 128, .rate = 0.83,
		 .sw_us = 0, .submit_us = 0.05, .wait_us = 0.1, .real = 1};
	const char *image = NULL;
	uint32_t max_pages = 65536;
	int sweep = 0;
	uint64_t sw_bytes, sw_raw;
	double measured;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--sweep")) {
			sweep = 1;
			continue;
		}
		if (a[0] != '-') {
			image = a;
			continue;
		}
		if (!v) {
			fprintf(stderr, "bench_policy: %s needs a value\n", a);
			return 2;
		}
		i++;
		if (!strcmp(a, "--channels"))
			g.channels = (uint32_t)atoi(v);
		else if (!strcmp(a, "--rate"))
			g.rate = atof(v);
		else if (!strcmp(a, "--depth"))
			g.depth = (uint32_t)atoi(v);
		else if (!strcmp(a, "--sw-us"))
			g.sw_us = atof(v);
		else if (!strcmp(a, "--submit-us"))
			g.submit_us = atof(v);
		else if (!strcmp(a, "--retries"))
			g.retries = (uint32_t)atoi(v);
		else if (!strcmp(a, "--packet"))
			g.packet = (uint32_t)atoi(v);
		else if (!strcmp(a, "--max-pages"))
			max_pages = (uint32_t)atoi(v);
		else {
			fprintf(stderr, "bench_policy: unknown option %s\n", a);
			return 2;
		}
	}
	if (!g.channels || g.channels > MAX_CH || !g.packet || g.packet > MAX_PACKET || !g.depth ||
	    g.rate <= 0 || !max_pages) {
		fprintf(stderr, "bench_policy: bad parameters\n");
		return 2;
	}
	if (image ? image_pages(image, max_pages) : (synth_pages(max_pages < 32768 ? max_pages : 32768), 0))
		return 1;
	if (!npages) {
		fprintf(stderr, "bench_policy: no non-zero pages\n");
		return 1;
	}
	if (lm__engine_isal.ctx_new(&isal_ctx, 1, PS, 1))
		return 1;
	measured = measure_sw_us(&sw_bytes, &sw_raw);
	if (g.sw_us <= 0)
		g.sw_us = measured;
	printf("pages: %u non-zero 4 KiB pages from %s\n", npages, image ? image : "a synthetic mix");
	printf("software: isal level 1 measured %.2f us/page (%.0f MB/s per core), ratio %.2f, "
	       "%.1f%% raw; simulated cost %.2f us/page\n",
	       measured, PS / measured, (double)npages * PS / (double)sw_bytes,
	       100.0 * (double)sw_raw / npages, g.sw_us);
	printf("device: %.2f pages/us (%.2f GB/s), queue depth %u shared by %u channels, "
	       "submit %.2f us, %u retries, %u pages per packet\n\n",
	       g.rate, g.rate * PS / 1e3, g.depth, g.channels, g.submit_us, g.retries, g.packet);
	table(&g, 1);
	if (sweep) {
		cfg s = g;
		s.real = 0;
		static const uint32_t depths[] = {16, 128, 512};
		static const double sw_mult[] = {0.5, 1, 4, 16};
		static const double rates[] = {0.83, 3.3};
		printf("\nsweep (total simulated time):\n\n");
		printf("| depth | sw us/page | device pages/us | seed | always wait | second pass | software only | best |\n");
		printf("|---|---|---|---|---|---|---|---|\n");
		for (int a = 0; a < 3; a++)
			for (int b = 0; b < 4; b++)
				for (int c = 0; c < 2; c++) {
					s.depth = depths[a];
					s.sw_us = g.sw_us * sw_mult[b];
					s.rate = rates[c];
					table(&s, 0);
				}
	}
	lm__engine_isal.ctx_free(isal_ctx);
	return 0;
}
