/*
 * Live migration (lm_sender_migrate) end to end over loopback. The sender
 * runs here; the receiver runs in a thread (alloc_regions, 127.0.0.1:0), or
 * in a child process (this program re-executed with --rx-child) when the
 * test kills the destination.
 *
 * The workload is part of the test: writer threads write whole 4 KiB units
 * (text, binary records, random bytes, zero pages, each with a changing
 * counter) into random pages of a working set at a bounded rate (a token
 * bucket), honour pause (which returns only when no write is in flight),
 * resume and throttle(pct), and write the same bytes into a private shadow
 * copy, so "the library left the source memory alone" is source == shadow
 * once the writers are paused. For LM_DIRTY_CALLBACK they also keep an
 * atomic dirty bitmap, set after each write, that the callback fetches and
 * clears (KVM_GET_DIRTY_LOG style).
 *
 *  1. convergence for every codec and both dirty sources (and AUTO): rounds,
 *     live stats, pause once, resume never, destination == source at
 *     switchover, expected downtime under the limit;
 *  2. exact patterns: the dirty_log callback itself writes chosen pages
 *     (first, last, the partial last page, runs over packets and checksum
 *     blocks, pages zeroed after holding data and back) and reports exactly
 *     them: destination == source, page counts exact; then a write it does
 *     not report: the destination's verification must catch it;
 *  3. a workload that out-dirties a rate-limited link: LM_LIMIT_FAIL at
 *     max_rounds and at max_time_ms (LM_ECONVERGE, workload running,
 *     receiver fails), LM_LIMIT_SWITCHOVER (completes anyway); the bytes
 *     sent before the pause fit max_bandwidth, also over many small rounds;
 *  4. auto-converge in step mode: throttle steps 20, 30, ... until it
 *     converges, then 0 (the computed mode: test_converge.c);
 *  5. the destination killed (SIGKILL) mid-round and during the downtime;
 *  6. argument and state checks;
 *  7. two odd regions (length not a page multiple, base not page aligned
 *     inside a bigger mapping) at 4 KiB and 16 KiB pages;
 *  8. delta pages: sparse, dense and whole-page writes, every codec, both
 *     dirty sources, a delta cache smaller than the working set.
 *
 * Outcomes only: no assertion depends on how fast anything runs (the
 * max_bandwidth check is a lower bound on elapsed time, which a slow
 * machine only helps). LM_TEST_ONLY=N runs part N alone; LM_TEST_VERBOSE=1
 * prints every round's progress.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "test_util.h"
#include "livemig.h"
#include "uffd_foreign.h"

#define UNIT 4096u         /* the workload's write unit */
#define MIB (1ull << 20)
#define MAX_RG 2
#define MAX_WRITERS 2
#define MAX_THROTTLES 128
#define RX_CHILD_FD 100

static int have_uffd;
static char uffd_why[256];
static int verbose; /* LM_TEST_VERBOSE=1: every round's progress */

/* ---- small helpers ------------------------------------------------------------ */

static uint8_t *map_anon(uint64_t len)
{
	void *p = mmap(NULL, (size_t)len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static int all_zero(const uint8_t *p, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

static const char *src_name(lm_dirty_source s)
{
	switch (s) {
	case LM_DIRTY_AUTO: return "auto";
	case LM_DIRTY_UFFD_WP: return "uffd-wp";
	case LM_DIRTY_CALLBACK: return "callback";
	}
	return "?";
}

/* ---- content ------------------------------------------------------------------- */

/* 64 KiB: text in the first half, 48-byte binary records in the second.
 * Pages copy 4 KiB from a random offset: compressible, rarely identical. */
#define CORPUS_LEN (64u << 10)
static uint8_t text_corpus[CORPUS_LEN];

static void corpus_init(void)
{
	static const char *const words[] = {
		"the", "memory", "page", "of", "and", "guest", "to", "migration", "a",
		"kernel", "in", "channel", "is", "static", "int", "return", "struct",
		"for", "if", "error", "void", "const", "data", "with", "host", "dirty",
		"round", "while", "buffer", "region", "->", "NULL", "{", "}", "uint64_t",
	};
	uint64_t s = 0x5eed1234;
	size_t i = 0, col = 0, half = CORPUS_LEN / 2;

	while (i < half) {
		const char *w = words[xs(&s) % (sizeof(words) / sizeof(words[0]))];
		for (size_t k = 0; w[k] && i < half; k++, col++)
			text_corpus[i++] = (uint8_t)w[k];
		if (i < half)
			text_corpus[i++] = col > 64 ? '\n' : ' ';
		if (i && text_corpus[i - 1] == '\n')
			col = 0;
	}
	for (; i + 48 <= CORPUS_LEN; i += 48) {
		uint64_t ptr = 0x0000555555550000ull + (xs(&s) % 0x10000) * 16;
		uint32_t cnt = (uint32_t)(xs(&s) % 1000), fl = 0x11;
		double d = (double)i * 0.25;
		memset(text_corpus + i, 0, 48);
		memcpy(text_corpus + i, &ptr, 8);
		memcpy(text_corpus + i + 8, &cnt, 4);
		memcpy(text_corpus + i + 12, &fl, 4);
		memcpy(text_corpus + i + 16, &d, 8);
	}
}

/* n bytes of a unit's new content. One in 16 is all zero (a page that held
 * data turns zero), one in 16 random bytes, the rest from the corpus; a
 * non-zero unit starts with its id and a counter, so no write repeats. */
static void make_unit(uint8_t *p, uint32_t n, uint64_t id, uint64_t counter, uint64_t *s)
{
	uint64_t k = (id * 31 + counter) % 16, hdr[2];

	if (k == 0) {
		memset(p, 0, n);
		return;
	}
	if (k == 1) {
		for (uint32_t i = 0; i < n; i += 8) {
			uint64_t v = xs(s);
			memcpy(p + i, &v, n - i < 8 ? n - i : 8);
		}
	} else {
		uint64_t off = (xs(s) % (CORPUS_LEN - n + 1)) & ~7ull;
		memcpy(p, text_corpus + off, n);
	}
	hdr[0] = counter | (1ull << 63);
	hdr[1] = id;
	memcpy(p, hdr, n < sizeof(hdr) ? n : sizeof(hdr));
}

/* ---- the workload -------------------------------------------------------------- */

typedef struct wl_region {
	const char *name;
	uint8_t *base;   /* the region as the library sees it */
	uint64_t len;
	uint8_t *shadow; /* every byte the workload wrote, privately */
	uint64_t *dirty; /* callback source: written pages at page_size (atomic) */
	uint64_t pages;  /* at the migration's page size */
} wl_region;

typedef struct wl_slot {
	uint32_t rg;
	uint32_t n; /* bytes: UNIT, less for a region's last unit */
	uint64_t off;
} wl_slot;

struct workload;

typedef struct writer {
	struct workload *w;
	pthread_t th;
	uint64_t seed, counter;
	int started;
} writer;

typedef struct workload {
	wl_region rg[MAX_RG];
	uint32_t nrg;
	uint32_t page_size; /* the migration's: unit of the callback bitmaps */
	int track;          /* keep the callback bitmaps */
	wl_slot *slots;     /* the working set */
	uint32_t nslots;
	double rate;        /* unit writes per second, all writers, unthrottled */
	uint32_t wbytes;    /* 0: a write is a whole unit; else this many bytes in it */
	int nwriters;
	writer wr[MAX_WRITERS];
	pthread_mutex_t mu;
	pthread_cond_t cv;  /* paused/stop changed, or inflight reached 0 */
	int paused, stop, inflight;
	uint32_t pct;       /* throttle */
	uint64_t writes;
	/* The library's callbacks, counted. */
	int pause_calls, resume_calls, progress_calls, dirty_calls[MAX_RG];
	int throttle_calls;
	uint32_t throttles[MAX_THROTTLES];
	int bad_bitmap, bad_progress;
	uint32_t max_progress_round;
	/* Test 5: the destination process and when to kill it. */
	uint64_t t_start, t_pause; /* migrate called, first pause */
	pid_t child;
	uint32_t kill_round;
	int kill_in_pause;
	uint64_t t_kill;
} workload;

static void wl_init(workload *w, uint32_t page_size)
{
	memset(w, 0, sizeof(*w));
	w->page_size = page_size;
	w->child = -1;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
}

static int wl_add(workload *w, const char *name, uint8_t *base, uint64_t len)
{
	wl_region *r = &w->rg[w->nrg];

	if (!base || w->nrg >= MAX_RG)
		return -1;
	r->name = name;
	r->base = base;
	r->len = len;
	r->pages = (len + w->page_size - 1) / w->page_size;
	r->shadow = map_anon(len ? len : 1);
	r->dirty = calloc((r->pages + 63) / 64 + 1, sizeof(uint64_t));
	if (!r->shadow || !r->dirty)
		return -1;
	w->nrg++;
	return 0;
}

/* The working set: ws units picked by a stride over all units of all
 * regions (scattered, each once; ws = 0: all). Fills them (or every unit
 * with fill_all) with content, then copies the regions to the shadows. */
static int wl_setup(workload *w, uint32_t ws, int fill_all)
{
	static const uint64_t strides[] = {7, 11, 13, 17, 19, 23};
	uint64_t total = 0, stride = 1, s = 0xabcdef, k = 0;
	wl_slot *all;
	uint8_t *in;

	for (uint32_t r = 0; r < w->nrg; r++)
		total += (w->rg[r].len + UNIT - 1) / UNIT;
	all = calloc(total + 1, sizeof(*all));
	in = calloc(total + 1, 1);
	if (!all || !in)
		return -1;
	for (uint32_t r = 0; r < w->nrg; r++)
		for (uint64_t off = 0; off < w->rg[r].len; off += UNIT, k++)
			all[k] = (wl_slot){r, (uint32_t)(w->rg[r].len - off < UNIT ? w->rg[r].len - off : UNIT), off};
	if (!ws || ws > total)
		ws = (uint32_t)total;
	for (unsigned i = 0; i < sizeof(strides) / sizeof(strides[0]); i++)
		if (total % strides[i]) {
			stride = strides[i];
			break;
		}
	w->slots = calloc(ws + 1, sizeof(*w->slots));
	if (!w->slots) {
		free(all);
		free(in);
		return -1;
	}
	w->nslots = ws;
	for (uint64_t i = 0; i < ws; i++) {
		uint64_t j = (i * stride) % total;
		w->slots[i] = all[j];
		in[j] = 1;
	}
	for (uint64_t j = 0; j < total; j++) {
		wl_slot *u = &all[j];
		if (fill_all || in[j])
			make_unit(w->rg[u->rg].base + u->off, u->n, j, 1, &s);
	}
	for (uint32_t r = 0; r < w->nrg; r++)
		memcpy(w->rg[r].shadow, w->rg[r].base, w->rg[r].len);
	free(all);
	free(in);
	return 0;
}

static void *writer_main(void *arg)
{
	writer *me = arg;
	workload *w = me->w;
	uint8_t buf[UNIT];
	double tokens = 0;
	uint64_t last = now_us();

	for (;;) {
		double rate, cap;
		uint64_t t;

		pthread_mutex_lock(&w->mu);
		while (w->paused && !w->stop)
			pthread_cond_wait(&w->cv, &w->mu);
		if (w->stop) {
			pthread_mutex_unlock(&w->mu);
			break;
		}
		t = now_us();
		rate = w->rate / w->nwriters * (100 - w->pct) / 100.0;
		tokens += (double)(t - last) / 1e6 * rate;
		last = t;
		cap = rate / 100 > 1 ? rate / 100 : 1; /* a burst of 10 ms at most */
		if (tokens > cap)
			tokens = cap;
		if (tokens < 1) {
			double need = (1 - tokens) / rate * 1e6;
			pthread_mutex_unlock(&w->mu);
			sleep_us(need < 50 ? 50 : need > 2000 ? 2000 : (uint64_t)need);
			continue;
		}
		tokens -= 1;
		w->inflight++;
		pthread_mutex_unlock(&w->mu);

		/* Writer k owns the slots k, k + nwriters, ...: two writers
		 * never write one unit at once, so base and shadow agree. */
		uint32_t own = (uint32_t)(me - w->wr), n = (uint32_t)w->nwriters;
		uint32_t mine = w->nslots > own ? (w->nslots - own + n - 1) / n : 0;
		const wl_slot *u = &w->slots[mine ? own + (uint32_t)(xs(&me->seed) % mine) * n
						  : xs(&me->seed) % w->nslots];
		wl_region *r = &w->rg[u->rg];
		me->counter += (uint64_t)w->nwriters;
		if (w->wbytes && w->wbytes < u->n) {
			/* A few bytes somewhere in the unit (QEMU guestperf's
			 * stress writes 8): what delta pages are for. */
			uint32_t at = (uint32_t)(xs(&me->seed) % (u->n - w->wbytes + 1));
			for (uint32_t k = 0; k < w->wbytes; k++)
				buf[k] = (uint8_t)xs(&me->seed);
			memcpy(r->base + u->off + at, buf, w->wbytes);
			memcpy(r->shadow + u->off + at, buf, w->wbytes);
		} else {
			make_unit(buf, u->n, u->off / UNIT + ((uint64_t)u->rg << 40), me->counter,
				  &me->seed);
			memcpy(r->base + u->off, buf, u->n);
			memcpy(r->shadow + u->off, buf, u->n);
		}
		if (w->track) { /* after the write: a sync that clears the bit sees it */
			uint64_t pg = u->off / w->page_size;
			__atomic_fetch_or(&r->dirty[pg / 64], 1ull << (pg % 64), __ATOMIC_SEQ_CST);
		}

		pthread_mutex_lock(&w->mu);
		w->inflight--;
		w->writes++;
		if (!w->inflight)
			pthread_cond_broadcast(&w->cv);
		pthread_mutex_unlock(&w->mu);
	}
	return NULL;
}

static void wl_start(workload *w, double rate, int nwriters)
{
	w->rate = rate;
	w->nwriters = nwriters;
	for (int i = 0; i < nwriters; i++) {
		w->wr[i].w = w;
		w->wr[i].seed = 0x1234567ull * (uint64_t)(i + 1) + 99;
		w->wr[i].counter = (uint64_t)i + 2;
		w->wr[i].started = pthread_create(&w->wr[i].th, NULL, writer_main, &w->wr[i]) == 0;
		CHECK(w->wr[i].started);
	}
}

/* Returns once no write is in flight and none will start. */
static void wl_pause(workload *w)
{
	pthread_mutex_lock(&w->mu);
	w->paused = 1;
	while (w->inflight)
		pthread_cond_wait(&w->cv, &w->mu);
	pthread_mutex_unlock(&w->mu);
}

static void wl_resume(workload *w)
{
	pthread_mutex_lock(&w->mu);
	w->paused = 0;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

static int wl_is_paused(workload *w)
{
	int p;

	pthread_mutex_lock(&w->mu);
	p = w->paused;
	pthread_mutex_unlock(&w->mu);
	return p;
}

static uint64_t wl_writes(workload *w)
{
	uint64_t n;

	pthread_mutex_lock(&w->mu);
	n = w->writes;
	pthread_mutex_unlock(&w->mu);
	return n;
}

static void wl_stop(workload *w)
{
	pthread_mutex_lock(&w->mu);
	w->stop = 1;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	for (int i = 0; i < w->nwriters; i++)
		if (w->wr[i].started)
			pthread_join(w->wr[i].th, NULL);
	w->nwriters = 0;
}

static void wl_free(workload *w)
{
	wl_stop(w);
	for (uint32_t r = 0; r < w->nrg; r++) {
		munmap(w->rg[r].shadow, (size_t)(w->rg[r].len ? w->rg[r].len : 1));
		free(w->rg[r].dirty);
	}
	free(w->slots);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
}

/* ---- the library's callbacks ----------------------------------------------------- */

static void kill_child(workload *w)
{
	if (w->child <= 0)
		return;
	kill(w->child, SIGKILL);
	while (waitpid(w->child, NULL, 0) < 0 && errno == EINTR)
		;
	w->child = -1;
	w->t_kill = now_us();
}

static int cb_pause(void *user)
{
	workload *w = user;

	if (!w->pause_calls++)
		w->t_pause = now_us();
	wl_pause(w);
	if (w->kill_in_pause)
		kill_child(w);
	return 0;
}

static void cb_resume(void *user)
{
	workload *w = user;

	w->resume_calls++;
	wl_resume(w);
}

static void cb_throttle(void *user, uint32_t pct)
{
	workload *w = user;

	if (w->throttle_calls < MAX_THROTTLES)
		w->throttles[w->throttle_calls] = pct;
	w->throttle_calls++;
	pthread_mutex_lock(&w->mu);
	w->pct = pct;
	pthread_mutex_unlock(&w->mu);
}

static void cb_progress(void *user, const lm_stats *st)
{
	workload *w = user;

	w->progress_calls++;
	/* One call per pre-copy round, after its sync: round k reports k. */
	if (!st->live || st->rounds != (uint32_t)w->progress_calls ||
	    st->status != LM_STATUS_ACTIVE || st->remaining_bytes != st->dirty_pages * st->page_size) {
		if (!w->bad_progress)
			fprintf(stderr, "progress %d: live %d rounds %u status %s dirty %llu remaining %llu\n",
				w->progress_calls, st->live, st->rounds, lm_status_name(st->status),
				(unsigned long long)st->dirty_pages,
				(unsigned long long)st->remaining_bytes);
		w->bad_progress++;
	}
	if (verbose)
		printf("      round %u: dirty %llu expected %llu ms bw %.1f mbps rate %.0f "
		       "transferred %llu normal %llu zero %llu pct %u t %.3f s\n",
		       st->rounds, (unsigned long long)st->dirty_pages,
		       (unsigned long long)st->expected_downtime_ms, st->bandwidth_mbps,
		       st->dirty_pages_rate, (unsigned long long)st->transferred,
		       (unsigned long long)st->normal_pages, (unsigned long long)st->duplicate_pages,
		       w->pct, (double)st->total_time_us / 1e6);
	if (st->rounds > w->max_progress_round)
		w->max_progress_round = st->rounds;
	if (w->kill_round && st->rounds == w->kill_round)
		kill_child(w);
}

/* KVM_GET_DIRTY_LOG with clearing: fetch-and-clear the writers' bitmap. */
static int cb_dirty(void *user, uint32_t region, uint64_t *bitmap, uint64_t pages)
{
	workload *w = user;
	wl_region *r;

	if (region >= w->nrg || pages != w->rg[region].pages) {
		fprintf(stderr, "dirty_log: region %u pages %llu (expected < %u, %llu)\n", region,
			(unsigned long long)pages, w->nrg,
			(unsigned long long)(region < w->nrg ? w->rg[region].pages : 0));
		w->bad_bitmap++;
		return LM_EINVAL;
	}
	r = &w->rg[region];
	w->dirty_calls[region]++;
	for (uint64_t i = 0; i < (pages + 63) / 64; i++) {
		if (bitmap[i]) /* the caller zeroes it */
			w->bad_bitmap++;
		bitmap[i] = __atomic_exchange_n(&r->dirty[i], 0, __ATOMIC_SEQ_CST);
	}
	return 0;
}

/* ---- one migration ----------------------------------------------------------------- */

typedef struct rx_ctx {
	lm_receiver *r;
	int rc;
} rx_ctx;

static void *rx_thread(void *arg)
{
	rx_ctx *c = arg;

	c->rc = lm_receiver_run(c->r);
	return NULL;
}

typedef struct run {
	const char *label;
	lm_sender_config sc;
	lm_live_config lc;
	int remote;        /* the receiver in a child process */
	int foreign;       /* another userfaultfd owns the memory: AUTO falls back */
	/* results */
	lm_sender *s;
	lm_receiver *r;
	rx_ctx rx;
	pthread_t rx_th;
	int rx_started;
	int connected;
	int rc, rx_rc;
	lm_stats ss, rs;
	uint64_t ms;       /* lm_sender_migrate()'s wall time */
	uint64_t t_end;
	int failures0;
} run;

static lm_sender_config sender_cfg(lm_codec_id codec, uint32_t page_size, uint32_t channels)
{
	lm_sender_config c;

	memset(&c, 0, sizeof(c));
	c.codec = codec;
	c.page_size = page_size;
	c.channels = channels;
	c.timeout_ms = 20000;
	return c;
}

static lm_live_config live_cfg(workload *w, lm_dirty_source src)
{
	lm_live_config c;

	memset(&c, 0, sizeof(c));
	c.dirty = src;
	c.dirty_log = src == LM_DIRTY_CALLBACK ? cb_dirty : NULL;
	c.pause = cb_pause;
	c.resume = cb_resume;
	c.progress = cb_progress;
	c.user = w;
	return c;
}

/* This program again, as a receiver in its own process: "--rx-child FD". */
static int rx_child_main(int fd)
{
	lm_receiver_config rc;
	lm_receiver *r = NULL;
	int port, err;

	memset(&rc, 0, sizeof(rc));
	rc.timeout_ms = 20000;
	rc.accept_timeout_ms = 20000;
	rc.alloc_regions = 1;
	if (lm_receiver_new(&r, &rc) || lm_receiver_listen(r, "127.0.0.1:0"))
		return 2;
	port = lm_receiver_port(r);
	if (write(fd, &port, sizeof(port)) != (ssize_t)sizeof(port))
		return 2;
	close(fd);
	err = lm_receiver_run(r);
	lm_receiver_free(r);
	return err ? 1 : 0;
}

static pid_t spawn_receiver(int *port)
{
	char fdarg[16], arg0[] = "test_live", arg1[] = "--rx-child";
	char *argv[] = {arg0, arg1, fdarg, NULL};
	struct pollfd p;
	int pfd[2];
	pid_t pid;

	snprintf(fdarg, sizeof(fdarg), "%d", RX_CHILD_FD);
	if (pipe2(pfd, O_CLOEXEC))
		return -1;
	pid = fork();
	if (pid == 0) { /* only async-signal-safe calls until exec */
		if (dup2(pfd[1], RX_CHILD_FD) < 0)
			_exit(126);
		execv("/proc/self/exe", argv);
		_exit(127);
	}
	close(pfd[1]);
	if (pid < 0) {
		close(pfd[0]);
		return -1;
	}
	p = (struct pollfd){pfd[0], POLLIN, 0};
	if (poll(&p, 1, 20000) != 1 || read(pfd[0], port, sizeof(*port)) != (ssize_t)sizeof(*port)) {
		close(pfd[0]);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return -1;
	}
	close(pfd[0]);
	return pid;
}

/* Receiver (thread or child), sender with the workload's regions, connect. */
static int run_start(workload *w, run *R)
{
	lm_receiver_config rc;
	char addr[64];
	int port, err;

	R->failures0 = lm_test_failures;
	if (R->remote) {
		w->child = spawn_receiver(&port);
		CHECK(w->child > 0);
		if (w->child <= 0)
			return -1;
	} else {
		memset(&rc, 0, sizeof(rc));
		rc.timeout_ms = 20000;
		rc.accept_timeout_ms = 20000;
		rc.alloc_regions = 1;
		CHECK_EQ(lm_receiver_new(&R->r, &rc), 0);
		CHECK_EQ(lm_receiver_listen(R->r, "127.0.0.1:0"), 0);
		port = lm_receiver_port(R->r);
		R->rx.r = R->r;
		R->rx_started = pthread_create(&R->rx_th, NULL, rx_thread, &R->rx) == 0;
		CHECK(R->rx_started);
	}
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	CHECK_EQ(lm_sender_new(&R->s, &R->sc), 0);
	for (uint32_t i = 0; i < w->nrg; i++)
		CHECK_EQ(lm_sender_add_region(R->s, w->rg[i].name, w->rg[i].base, w->rg[i].len), 0);
	err = lm_sender_connect(R->s, addr);
	CHECK_EQ(err, 0);
	if (err)
		fprintf(stderr, "%s: connect: %s: %s\n", R->label, lm_strerror(err),
			lm_sender_errmsg(R->s));
	R->connected = !err;
	return err;
}

/* Migrates, then pauses the workload (a no-op if the library left it
 * paused) and collects the receiver. */
static void run_migrate(workload *w, run *R)
{
	w->t_start = now_us();
	R->rc = lm_sender_migrate(R->s, &R->lc);
	R->t_end = now_us();
	R->ms = (R->t_end - w->t_start) / 1000;
	lm_sender_stats(R->s, &R->ss);
}

/* max_bandwidth is a rate over the whole pre-copy: the bytes on the wire
 * before the pause (or the failure) fit the rate over the time since
 * lm_sender_migrate() was called, plus a burst of one packet per channel
 * and one more. Only a lower bound on time: a slow machine passes it too. */
static void check_rate(workload *w, const run *R)
{
	const lm_stats *st = &R->ss;
	uint32_t pp = R->sc.packet_pages ? R->sc.packet_pages : LM_DEFAULT_PACKET_PAGES;
	uint32_t ps = R->sc.page_size ? R->sc.page_size : 4096;
	uint64_t bytes = w->pause_calls ? st->precopy_bytes : st->transferred;
	double secs = (double)((w->pause_calls ? w->t_pause : R->t_end) - w->t_start) / 1e6;
	double burst = (double)(st->channels + 1) * pp * ps + 65536;
	double allowed = (double)R->lc.max_bandwidth * secs + burst;

	CHECK((double)bytes <= allowed);
	if ((double)bytes > allowed)
		fprintf(stderr, "%s: %llu bytes on the wire in the %.3f s before the %s: %.1f MiB/s "
			"with max_bandwidth %.1f MiB/s (%.0f KiB burst allowed)\n",
			R->label, (unsigned long long)bytes, secs, w->pause_calls ? "pause" : "failure",
			(double)bytes / secs / MIB, (double)R->lc.max_bandwidth / MIB, burst / 1024);
}

static void run_collect(workload *w, run *R)
{
	if (R->remote) {
		kill_child(w);
		return;
	}
	if (R->rx_started)
		pthread_join(R->rx_th, NULL);
	R->rx_started = 0;
	R->rx_rc = R->rx.rc;
	lm_receiver_stats(R->r, &R->rs);
}

static void run_report(const run *R, workload *w)
{
	const lm_stats *st = &R->ss;

	printf("%-44s rc %d%s%s rounds %u downtime %llu ms (expected %llu) bw %.0f mbps "
	       "dirty rate %.0f throttle %u writes %llu time %llu ms\n",
	       R->label, R->rc, R->rc ? " " : "", R->rc ? lm_strerror(R->rc) : "", st->rounds,
	       (unsigned long long)st->downtime_ms, (unsigned long long)st->expected_downtime_ms,
	       st->bandwidth_mbps, st->dirty_pages_rate, st->throttle_pct,
	       (unsigned long long)wl_writes(w), (unsigned long long)R->ms);
	if (lm_test_failures != R->failures0) {
		fprintf(stderr, "FAILED: %s: rc %d (%s) sender \"%s\"", R->label, R->rc,
			lm_strerror(R->rc), R->s ? lm_sender_errmsg(R->s) : "");
		if (R->r)
			fprintf(stderr, "; receiver rc %d (%s) \"%s\"", R->rx_rc, lm_strerror(R->rx_rc),
				lm_receiver_errmsg(R->r));
		fprintf(stderr, "\n");
	}
}

static void run_free(run *R)
{
	if (R->rx_started)
		pthread_join(R->rx_th, NULL);
	lm_sender_free(R->s);
	lm_receiver_free(R->r);
	R->s = NULL;
	R->r = NULL;
}

/* Source == shadow: the library wrote nothing into the source memory. */
static void check_shadow(workload *w, const char *label)
{
	CHECK(wl_is_paused(w));
	for (uint32_t i = 0; i < w->nrg; i++) {
		int same = memcmp(w->rg[i].base, w->rg[i].shadow, w->rg[i].len) == 0;
		CHECK(same);
		if (!same)
			fprintf(stderr, "%s: region %s: source differs from the workload's shadow\n",
				label, w->rg[i].name);
	}
}

/* Destination == source, byte for byte, through lm_receiver_region(). */
static void check_dest(workload *w, run *R)
{
	for (uint32_t i = 0; i < w->nrg; i++) {
		void *base = NULL;
		uint64_t len = 0, diff = 0, first = UINT64_MAX;
		int rc = lm_receiver_region(R->r, w->rg[i].name, &base, &len);

		CHECK_EQ(rc, 0);
		if (rc)
			continue;
		CHECK_EQ(len, w->rg[i].len);
		if (len != w->rg[i].len)
			continue;
		for (uint64_t off = 0; off < len; off += UNIT) {
			uint64_t n = len - off < UNIT ? len - off : UNIT;
			if (memcmp((uint8_t *)base + off, w->rg[i].base + off, n)) {
				diff++;
				if (first == UINT64_MAX)
					first = off / UNIT;
			}
		}
		CHECK_EQ(diff, 0);
		if (diff)
			fprintf(stderr, "%s: region %s: %llu of %llu 4 KiB units differ, first %llu\n",
				R->label, w->rg[i].name, (unsigned long long)diff,
				(unsigned long long)((len + UNIT - 1) / UNIT), (unsigned long long)first);
	}
}

/* A failed migration: the workload runs (resumed if it was paused), its
 * memory intact and still writable; the receiver failed and hands nothing
 * on. */
static void check_failed(workload *w, run *R)
{
	void *base;
	uint64_t len, before;

	CHECK(R->rc != 0);
	CHECK_EQ(R->ss.status, LM_STATUS_FAILED);
	CHECK_EQ(w->resume_calls, w->pause_calls);
	CHECK(!wl_is_paused(w));
	if (w->nwriters) { /* the writers go on after the failure */
		before = wl_writes(w);
		for (int i = 0; i < 200 && wl_writes(w) == before; i++)
			sleep_us(10000);
		CHECK(wl_writes(w) > before);
	}
	wl_pause(w);
	check_shadow(w, R->label);
	if (!R->remote) {
		CHECK(R->rx_rc != 0);
		for (uint32_t i = 0; i < w->nrg; i++)
			CHECK_EQ(lm_receiver_region(R->r, w->rg[i].name, &base, &len), LM_ESTATE);
	}
	/* A sender migrates once. */
	CHECK_EQ(lm_sender_migrate(R->s, &R->lc), LM_ESTATE);
}

/* A successful migration: the workload left paused, resumed never. */
static void check_done(workload *w, run *R)
{
	const lm_stats *st = &R->ss;
	int pauses = w->pause_calls;
	const char *want;
	void *base;
	uint64_t len;

	CHECK_EQ(R->rc, 0);
	CHECK_EQ(R->rx_rc, 0);
	CHECK_EQ(w->pause_calls, 1);
	CHECK_EQ(w->resume_calls, 0);
	CHECK(wl_is_paused(w));
	CHECK_EQ(st->status, LM_STATUS_COMPLETED);
	CHECK_EQ(st->live, 1);
	CHECK(st->rounds >= 2);
	/* Each pre-copy round reports progress once; the switchover adds a sync. */
	CHECK_EQ(st->rounds, (uint32_t)w->progress_calls + 1);
	CHECK_EQ(w->bad_progress, 0);
	CHECK_EQ(w->bad_bitmap, 0);
	CHECK_EQ(st->dirty_pages, 0);
	CHECK_EQ(st->remaining_bytes, 0);
	CHECK(st->precopy_bytes > 0);
	CHECK(st->precopy_bytes + st->downtime_bytes <= st->transferred);
	CHECK(st->downtime_ms * 1000 <= st->total_time_us + 1000);
	/* The source in use: uffd-wp when asked for or when AUTO finds it. */
	want = R->lc.dirty == LM_DIRTY_CALLBACK ||
		       (R->lc.dirty == LM_DIRTY_AUTO && (!have_uffd || R->foreign))
		       ? "callback" : "uffd-wp";
	CHECK(strncmp(st->dirty_source, want, sizeof(st->dirty_source)) == 0);
	if (strncmp(st->dirty_source, want, sizeof(st->dirty_source)))
		fprintf(stderr, "%s: stats dirty_source \"%.16s\", expected \"%s\"\n", R->label,
			st->dirty_source, want);
	CHECK_EQ(R->rs.status, LM_STATUS_COMPLETED);
	CHECK_EQ(R->rs.rounds, st->rounds);
	CHECK_EQ(R->rs.normal_pages, st->normal_pages);
	CHECK_EQ(R->rs.duplicate_pages, st->duplicate_pages);
	check_dest(w, R);
	check_shadow(w, R->label);
	CHECK_EQ(lm_receiver_region(R->r, "no such region", &base, &len), LM_EREGION);
	/* A sender migrates once; a second call changes nothing. */
	CHECK_EQ(lm_sender_migrate(R->s, &R->lc), LM_ESTATE);
	CHECK_EQ(lm_sender_run(R->s), LM_ESTATE);
	CHECK_EQ(w->pause_calls, pauses);
}

/* ---- 6. arguments ---------------------------------------------------------------- */

/* On a connected sender: every one refused before anything happens. */
static void bad_configs(workload *w, run *R)
{
	lm_live_config c;

	CHECK_EQ(lm_sender_migrate(NULL, &R->lc), LM_EINVAL);
	CHECK_EQ(lm_sender_migrate(R->s, NULL), LM_EINVAL);
	c = R->lc;
	c.pause = NULL;
	CHECK_EQ(lm_sender_migrate(R->s, &c), LM_EINVAL);
	c = R->lc;
	c.resume = NULL;
	CHECK_EQ(lm_sender_migrate(R->s, &c), LM_EINVAL);
	c = R->lc;
	c.dirty = LM_DIRTY_CALLBACK;
	c.dirty_log = NULL;
	CHECK_EQ(lm_sender_migrate(R->s, &c), LM_EINVAL);
	c = R->lc;
	c.dirty = (lm_dirty_source)7;
	CHECK_EQ(lm_sender_migrate(R->s, &c), LM_EINVAL);
	c = R->lc;
	c.on_limit = (lm_limit_action)2;
	CHECK_EQ(lm_sender_migrate(R->s, &c), LM_EINVAL);
	c = R->lc;
	c.throttle_max = 100;
	CHECK_EQ(lm_sender_migrate(R->s, &c), LM_EINVAL);
	c = R->lc;
	c.throttle_initial = 60;
	c.throttle_max = 50;
	CHECK_EQ(lm_sender_migrate(R->s, &c), LM_EINVAL);
	CHECK_EQ(w->pause_calls + w->resume_calls + w->progress_calls + w->dirty_calls[0], 0);
}

/* The live lines of the statistics, human and JSON; the note is escaped. */
static void test_stats_format(void)
{
	lm_stats st;
	char buf[8192];
	int n;

	memset(&st, 0, sizeof(st));
	st.live = 1;
	st.page_size = 4096;
	st.downtime_ms = 42;
	st.expected_downtime_ms = 17;
	st.throttle_pct = 30;
	st.precopy_bytes = 5u << 20;
	st.downtime_bytes = 3u << 10;
	snprintf(st.dirty_source, sizeof(st.dirty_source), "callback");
	snprintf(st.dirty_note, sizeof(st.dirty_note), "say \"why\"\\ here\n");
	n = lm_stats_format(&st, LM_STATS_HUMAN, buf, sizeof(buf));
	CHECK(n > 0 && (size_t)n < sizeof(buf));
	CHECK(strstr(buf, "downtime: 42 ms\n") != NULL);
	CHECK(strstr(buf, "expected downtime: 17 ms\n") != NULL);
	CHECK(strstr(buf, "cpu throttle percentage: 30\n") != NULL);
	CHECK(strstr(buf, "transferred before downtime: 5120 kbytes\n") != NULL);
	CHECK(strstr(buf, "transferred in downtime: 3 kbytes\n") != NULL);
	CHECK(strstr(buf, "dirty tracking: callback (say") != NULL);
	n = lm_stats_format(&st, LM_STATS_JSON, buf, sizeof(buf));
	CHECK(n > 0 && (size_t)n < sizeof(buf));
	CHECK(strstr(buf, "\"live\":true") != NULL);
	CHECK(strstr(buf, "\"downtime_ms\":42") != NULL);
	CHECK(strstr(buf, "\"dirty_note\":\"say \\\"why\\\"\\\\ here\\u000a\"") != NULL);
	CHECK_EQ(lm_stats_format(&st, LM_STATS_JSON, NULL, 0), n); /* measure only */
	printf("%-44s ok\n", "stats format (live lines, JSON escaping)");
}

static void test_args(void)
{
	workload w;
	lm_sender_config sc = sender_cfg(LM_CODEC_NONE, 4096, 2);
	lm_receiver_config rc;
	lm_sender *s = NULL;
	lm_receiver *r = NULL;
	lm_live_config c;
	uint8_t *mem = map_anon(64 << 10);
	void *base;
	uint64_t len;
	int before = lm_test_failures;

	wl_init(&w, 4096);
	CHECK(mem != NULL);
	CHECK_EQ(lm_sender_new(&s, &sc), 0);
	CHECK_EQ(lm_sender_add_region(s, "ram", mem, 64 << 10), 0);
	c = live_cfg(&w, LM_DIRTY_CALLBACK);
	CHECK_EQ(lm_sender_migrate(NULL, &c), LM_EINVAL);
	CHECK_EQ(lm_sender_migrate(s, NULL), LM_EINVAL);
	CHECK_EQ(lm_sender_migrate(s, &c), LM_ESTATE); /* not connected */
	c.pause = NULL;
	CHECK_EQ(lm_sender_migrate(s, &c), LM_EINVAL);
	c = live_cfg(&w, LM_DIRTY_CALLBACK);
	c.resume = NULL;
	CHECK_EQ(lm_sender_migrate(s, &c), LM_EINVAL);
	c = live_cfg(&w, LM_DIRTY_CALLBACK);
	c.dirty_log = NULL;
	CHECK_EQ(lm_sender_migrate(s, &c), LM_EINVAL);
	c = live_cfg(&w, LM_DIRTY_UFFD_WP);
	CHECK_EQ(lm_sender_migrate(s, &c), LM_ESTATE);
	CHECK_EQ(w.pause_calls + w.resume_calls + w.progress_calls + w.dirty_calls[0], 0);
	lm_sender_free(s);

	memset(&rc, 0, sizeof(rc));
	rc.alloc_regions = 1;
	CHECK_EQ(lm_receiver_new(&r, &rc), 0);
	CHECK_EQ(lm_receiver_region(r, "ram", &base, &len), LM_ESTATE); /* before a run */
	CHECK_EQ(lm_receiver_region(NULL, "ram", &base, &len), LM_EINVAL);
	CHECK_EQ(lm_receiver_region(r, NULL, &base, &len), LM_EINVAL);
	CHECK_EQ(lm_receiver_region(r, "ram", NULL, &len), LM_EINVAL);
	CHECK_EQ(lm_receiver_region(r, "ram", &base, NULL), LM_EINVAL);
	lm_receiver_free(r);
	munmap(mem, 64 << 10);
	wl_free(&w);
	printf("%-44s %s\n", "arguments and states", lm_test_failures == before ? "ok" : "FAILED");
}

/* ---- 1. convergence ------------------------------------------------------------- */

/* 16 MiB of data at 64 MiB/s, 2048 pages written at 2000 pages/s by two
 * writers. With
 * AUTO and a dirty_log given, uffd-wp wins when the kernel has it: the
 * callback is never called. */
/* foreign: LM_DIRTY_AUTO must fall back to the callback and say why. */
static void test_converge(lm_codec_id codec, lm_dirty_source src, int argchecks, int foreign)
{
	const uint64_t len = 16 * MIB;
	char label[96];
	workload w;
	run R;
	uint8_t *mem = map_anon(len);
	int cb = src != LM_DIRTY_UFFD_WP, ffd = -1;

	snprintf(label, sizeof(label), "converge %s %s%s%s", lm_codec_name(codec), src_name(src),
		 src == LM_DIRTY_AUTO ? "+callback" : "", foreign ? " (region owned by another uffd)" : "");
	if (foreign) {
		ffd = foreign_uffd(mem, len);
		CHECK(ffd >= 0);
	}
	memset(&R, 0, sizeof(R));
	R.label = label;
	R.foreign = foreign;
	wl_init(&w, 4096);
	CHECK_EQ(wl_add(&w, "ram", mem, len), 0);
	w.track = cb;
	CHECK_EQ(wl_setup(&w, 2048, 1), 0);
	R.sc = sender_cfg(codec, 4096, 2);
	R.lc = live_cfg(&w, src);
	if (cb)
		R.lc.dirty_log = cb_dirty;
	R.lc.max_rounds = 30;
	R.lc.downtime_limit_ms = 300;
	/* Round one takes a quarter second or more: hundreds of pages dirty,
	 * so pre-copy sends dirty pages while the writers write. */
	R.lc.max_bandwidth = 64 * MIB;
	if (run_start(&w, &R) == 0) {
		wl_start(&w, 2000, 2);
		if (argchecks)
			bad_configs(&w, &R);
		run_migrate(&w, &R);
		wl_pause(&w);
		run_collect(&w, &R);
		check_done(&w, &R);
		/* Deterministic: switchover only with the expectation under the limit. */
		CHECK(R.ss.expected_downtime_ms <= R.lc.downtime_limit_ms);
		CHECK_EQ(R.ss.throttle_pct, 0);
		if (src == LM_DIRTY_CALLBACK)  /* arm, every round's sync, the last */
			CHECK_EQ(w.dirty_calls[0], w.progress_calls + 2);
		if (src == LM_DIRTY_AUTO && !foreign) {
			CHECK_EQ(w.dirty_calls[0], have_uffd ? 0 : w.progress_calls + 2);
			CHECK_EQ(strcmp(R.ss.dirty_source, have_uffd ? "uffd-wp" : "callback"), 0);
		}
		if (foreign) {
			CHECK_EQ(w.dirty_calls[0], w.progress_calls + 2);
			CHECK_EQ(strcmp(R.ss.dirty_source, "callback"), 0);
			CHECK(strstr(R.ss.dirty_note, "uffd-wp not used") != NULL);
			CHECK(strstr(R.ss.dirty_note, "EBUSY") != NULL);
		}
	}
	run_report(&R, &w);
	run_free(&R);
	wl_free(&w);
	if (ffd >= 0)
		close(ffd);
	munmap(mem, len);
}

/* Delta pages: writers change wbytes bytes of a page (0: whole pages) over
 * a working set of 2048 pages while the delta cache holds 128: deltas for
 * the pages the cache still has, whole pages for the others (misses), and
 * the copy exact either way. Sparse (8 bytes) and dense (1000 bytes)
 * changes make deltas; whole-page ones rarely. */
static void test_deltas(lm_codec_id codec, lm_dirty_source src, uint32_t wbytes)
{
	const uint64_t len = 16 * MIB;
	char label[96];
	workload w;
	run R;
	uint8_t *mem = map_anon(len);
	int cb = src != LM_DIRTY_UFFD_WP;

	snprintf(label, sizeof(label), "deltas %s %s, %u-byte writes", lm_codec_name(codec),
		 src_name(src), wbytes ? wbytes : UNIT);
	memset(&R, 0, sizeof(R));
	R.label = label;
	wl_init(&w, 4096);
	CHECK_EQ(wl_add(&w, "ram", mem, len), 0);
	w.track = cb;
	w.wbytes = wbytes;
	CHECK_EQ(wl_setup(&w, 2048, 1), 0);
	R.sc = sender_cfg(codec, 4096, 2);
	R.sc.delta_cache = 128 * 4096; /* a sixteenth of the working set */
	R.lc = live_cfg(&w, src);
	R.lc.max_rounds = 30;
	R.lc.downtime_limit_ms = 300;
	R.lc.max_bandwidth = 64 * MIB; /* round one lasts a quarter second */
	if (run_start(&w, &R) == 0) {
		wl_start(&w, 4000, 2);
		run_migrate(&w, &R);
		wl_pause(&w);
		run_collect(&w, &R);
		check_done(&w, &R);
		CHECK_EQ(R.ss.delta_pages, R.rs.delta_pages);
		CHECK_EQ(R.ss.delta_cache_bytes, 128 * 4096);
		CHECK(R.ss.delta_cache_misses > 0); /* the cache is smaller than the set */
		if (wbytes) {
			CHECK(R.ss.delta_pages > 0);
			CHECK(R.ss.delta_cache_hits > 0);
			CHECK(R.ss.delta_bytes < R.ss.delta_pages * 4096 / 2);
			CHECK_EQ(R.ss.delta_bytes, R.rs.delta_bytes);
		} else {
			/* Whole new units (records with a counter) may still be
			 * close to the old ones: deltas allowed, each under half
			 * a page. */
			CHECK(R.ss.delta_bytes <= R.ss.delta_pages * 4096 / 2);
		}
		printf("  %s: %llu delta pages (%llu bytes), cache %llu hits, %llu misses\n", label,
		       (unsigned long long)R.ss.delta_pages, (unsigned long long)R.ss.delta_bytes,
		       (unsigned long long)R.ss.delta_cache_hits,
		       (unsigned long long)R.ss.delta_cache_misses);
	}
	run_report(&R, &w);
	run_free(&R);
	wl_free(&w);
	munmap(mem, len);
}

/* uffd-wp: pages the writers dirty again after a mid-round scan, before
 * the sender reaches them, are left for the next round. A rate limit makes
 * round one last about 2 s, 20 scans, while 2 writers dirty 2000 pages a
 * second over a working set scattered through the region: some are always
 * skipped, and the copy must still be exact. */
static void test_skip(void)
{
	const uint64_t len = 32 * MIB;
	workload w;
	run R;
	uint8_t *mem = map_anon(len);

	memset(&R, 0, sizeof(R));
	R.label = "skip pages dirtied again (uffd-wp)";
	wl_init(&w, 4096);
	CHECK_EQ(wl_add(&w, "ram", mem, len), 0);
	CHECK_EQ(wl_setup(&w, 2048, 1), 0);
	R.sc = sender_cfg(LM_CODEC_LZ4, 4096, 2);
	R.lc = live_cfg(&w, LM_DIRTY_UFFD_WP);
	R.lc.max_rounds = 30;
	R.lc.max_bandwidth = 16 * MIB;
	R.lc.on_limit = LM_LIMIT_SWITCHOVER;
	if (run_start(&w, &R) == 0) {
		wl_start(&w, 2000, 2);
		run_migrate(&w, &R);
		wl_pause(&w);
		run_collect(&w, &R);
		check_done(&w, &R);
		CHECK(R.ss.skipped_pages > 0);
		/* Each page the receiver got, the sender sent: a skipped
		 * page is sent in a later round, not counted twice. */
		CHECK_EQ(R.rs.normal_pages + R.rs.duplicate_pages,
			 R.ss.normal_pages + R.ss.duplicate_pages);
		printf("    %llu pages skipped\n", (unsigned long long)R.ss.skipped_pages);
	}
	run_report(&R, &w);
	run_free(&R);
	wl_free(&w);
	munmap(mem, len);
}

/* ---- 2. exact patterns ------------------------------------------------------------ */

/* Region 0 "odd": 300 pages and 1234 bytes (301 pages, the last partial);
 * region 1 "even": 64 pages. No writer: the dirty_log callback writes
 * pages itself and reports exactly them (or, negative, hides some). */
#define PZ (1ull << 63) /* the page is made all zero */
#define P_ODD_LEN (300 * 4096ull + 1234)
#define P_EVEN_LEN (64 * 4096ull)
#define P_ROUNDS 6

typedef struct pat {
	uint8_t *base[2];
	uint64_t len[2], pages[2];
	int calls[2];
	int pause_calls, resume_calls, bad;
	int negative; /* page 40 written at call 1 and never reported */
	uint64_t sent, zero;
	uint64_t hidden;
	uint64_t cum_sent[16]; /* P.sent after call c of region 1 (all regions reported) */
} pat;

static uint32_t add_run(uint64_t *l, uint32_t n, uint64_t first, uint64_t count, uint64_t flags)
{
	for (uint64_t i = 0; i < count; i++)
		l[n++] = (first + i) | flags;
	return n;
}

/* The pages call c writes and reports (c >= 1; call 0 arms). Calls 1..5
 * are sent by rounds 2..6; at round 6 the round limit switches over, so
 * call 6's pages and the final call 7's travel together in the last
 * round: those two never name the same page, so every report is one page
 * sent. */
static uint32_t pattern(int negative, int c, uint32_t region, uint64_t *l)
{
	uint32_t n = 0;

	if (negative) /* pages 200..207 every round, never page 40 */
		return region == 0 ? add_run(l, n, 200, 8, 0) : 0;
	if (region == 1) {
		switch (c) {
		case 1: l[n++] = 0; l[n++] = 63; l[n++] = 10; break;
		case 2: l[n++] = 0 | PZ; l[n++] = 63 | PZ; break;  /* first, last: zero */
		case 3: l[n++] = 0; l[n++] = 63; break;            /* data again */
		case 4: break;                                     /* nothing this round */
		case 5: n = add_run(l, n, 1, 62, 0); break;
		case 6: l[n++] = 31 | PZ; break;
		case 7: l[n++] = 0; l[n++] = 30; l[n++] = 63; break;
		}
		return n;
	}
	switch (c) {
	case 1: /* first, partial last, a page zeroed after holding data */
		l[n++] = 0; l[n++] = 300; l[n++] = 5 | PZ;
		n = add_run(l, n, 100, 8, 0);
		break;
	case 2: /* the partial last page zeroed, page 5 data again */
		l[n++] = 0; l[n++] = 300 | PZ; l[n++] = 5;
		n = add_run(l, n, 150, 8, 0);
		break;
	case 3: /* a run over several packets and both checksum blocks 0 and 1 */
		n = add_run(l, n, 10, 130, 0);
		l[n++] = 300;
		break;
	case 4: /* scattered: every third page, every other one of them zeroed */
		for (uint64_t k = 1; k < 300; k += 3)
			l[n++] = k | (k % 6 == 1 ? PZ : 0);
		break;
	case 5:
		n = add_run(l, n, 0, 3, 0);
		n = add_run(l, n, 298, 3, 0);
		n = add_run(l, n, 200, 8, 0);
		break;
	case 6: /* pages zero until now get data */
		l[n++] = 4; l[n++] = 13;
		n = add_run(l, n, 250, 8, 0);
		break;
	case 7: /* the final sync, workload paused: block boundary pages */
		l[n++] = 0; l[n++] = 300; l[n++] = 127; l[n++] = 128;
		n = add_run(l, n, 60, 8, 0);
		break;
	}
	return n;
}

static void pat_page(pat *P, uint32_t region, uint64_t pg, int c, int zero)
{
	uint64_t off = pg * 4096, n = P->len[region] - off < 4096 ? P->len[region] - off : 4096;
	uint64_t hdr[3] = {(uint64_t)c | (1ull << 63), region, pg};
	uint8_t *p = P->base[region] + off;

	if (zero) {
		memset(p, 0, n);
		return;
	}
	memcpy(p, text_corpus + (((pg * 131 + (uint64_t)c * 977 + region * 7919) % (CORPUS_LEN - 4096)) & ~7ull), n);
	memcpy(p, hdr, n < sizeof(hdr) ? n : sizeof(hdr));
}

static int cb_pattern(void *user, uint32_t region, uint64_t *bm, uint64_t pages)
{
	pat *P = user;
	uint64_t l[512];
	uint32_t n;
	int c;

	if (region >= 2 || pages != P->pages[region]) {
		P->bad++;
		return LM_EINVAL;
	}
	for (uint64_t i = 0; i < (pages + 63) / 64; i++)
		if (bm[i])
			P->bad++;
	c = P->calls[region]++;
	if (c == 0)
		return 0; /* arms: its bits are ignored */
	if (P->negative && c == 1 && region == 0) {
		pat_page(P, 0, 40, 99, 0); /* written, never reported */
		P->hidden++;
	}
	n = pattern(P->negative, c, region, l);
	for (uint32_t i = 0; i < n; i++) {
		uint64_t pg = l[i] & ~PZ, off = pg * 4096;
		uint64_t len = P->len[region] - off < 4096 ? P->len[region] - off : 4096;
		if (pg >= pages || (bm[pg / 64] >> (pg % 64)) & 1) {
			P->bad++;
			continue;
		}
		pat_page(P, region, pg, c, (l[i] & PZ) != 0);
		bm[pg / 64] |= 1ull << (pg % 64);
		P->sent++;
		P->zero += all_zero(P->base[region] + off, len);
	}
	if (region == 1 && c < 16)
		P->cum_sent[c] = P->sent;
	return 0;
}

static void pat_progress(void *user, const lm_stats *st)
{
	pat *P = user;

	if (verbose)
		printf("      round %u: sent %llu (zero %llu), expected %llu; dirty %llu expected %llu ms\n",
		       st->rounds, (unsigned long long)(st->normal_pages + st->duplicate_pages),
		       (unsigned long long)st->duplicate_pages,
		       (unsigned long long)(st->rounds >= 2 && st->rounds < 17 ? P->cum_sent[st->rounds - 1] : 0),
		       (unsigned long long)st->dirty_pages, (unsigned long long)st->expected_downtime_ms);
}

static int pat_pause(void *user)
{
	((pat *)user)->pause_calls++;
	return 0;
}

static void pat_resume(void *user)
{
	((pat *)user)->resume_calls++;
}

static void test_patterns(lm_codec_id codec, int negative)
{
	static const char *const names[2] = {"odd", "even"};
	lm_receiver_config rcfg;
	lm_sender_config sc = sender_cfg(codec, 4096, 3);
	lm_live_config lc;
	lm_receiver *r = NULL;
	lm_sender *s = NULL;
	lm_stats ss, rs;
	rx_ctx rx;
	pthread_t th;
	pat P;
	char addr[64], label[96];
	int rc = -1, started = 0, before = lm_test_failures;
	uint64_t s0 = 0x77;

	snprintf(label, sizeof(label), "patterns %s%s", lm_codec_name(codec),
		 negative == 1 ? " hidden write, verify_source" : negative ? " hidden write, trusted" : "");
	memset(&P, 0, sizeof(P));
	memset(&ss, 0, sizeof(ss));
	memset(&rs, 0, sizeof(rs));
	P.negative = negative;
	P.len[0] = P_ODD_LEN;
	P.len[1] = P_EVEN_LEN;
	for (int i = 0; i < 2; i++) {
		P.pages[i] = (P.len[i] + 4095) / 4096;
		P.base[i] = map_anon(P.len[i]);
		CHECK(P.base[i] != NULL);
		/* Data everywhere but pages 4, 13, 22, ... (k % 9 == 4): zero. */
		for (uint64_t pg = 0; pg < P.pages[i]; pg++) {
			uint64_t off = pg * 4096, n = P.len[i] - off < 4096 ? P.len[i] - off : 4096;
			if (pg % 9 != 4)
				make_unit(P.base[i] + off, (uint32_t)n, pg + 1000 * (uint64_t)i, 1 + (pg % 15), &s0);
			P.sent++;
			P.zero += all_zero(P.base[i] + off, n);
		}
	}

	memset(&rcfg, 0, sizeof(rcfg));
	rcfg.timeout_ms = 20000;
	rcfg.accept_timeout_ms = 20000;
	rcfg.alloc_regions = 1;
	CHECK_EQ(lm_receiver_new(&r, &rcfg), 0);
	CHECK_EQ(lm_receiver_listen(r, "127.0.0.1:0"), 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", lm_receiver_port(r));
	rx.r = r;
	rx.rc = -1;
	started = pthread_create(&th, NULL, rx_thread, &rx) == 0;
	CHECK(started);

	sc.packet_pages = 8;
	CHECK_EQ(lm_sender_new(&s, &sc), 0);
	for (int i = 0; i < 2; i++)
		CHECK_EQ(lm_sender_add_region(s, names[i], P.base[i], P.len[i]), 0);
	memset(&lc, 0, sizeof(lc));
	lc.dirty = LM_DIRTY_CALLBACK;
	lc.dirty_log = cb_pattern;
	lc.pause = pat_pause;
	lc.resume = pat_resume;
	lc.progress = pat_progress;
	lc.user = &P;
	/* Never under 1 ms at 4 MiB/s: exactly P_ROUNDS pre-copy rounds, then
	 * the switchover the limit asks for. */
	lc.downtime_limit_ms = 1;
	lc.max_bandwidth = 4 * MIB;
	lc.max_rounds = negative ? 3 : P_ROUNDS;
	lc.on_limit = LM_LIMIT_SWITCHOVER;
	lc.verify_source = negative == 1;
	if (lm_sender_connect(s, addr) == 0)
		rc = lm_sender_migrate(s, &lc);
	else
		CHECK(0);
	lm_sender_stats(s, &ss);
	if (started)
		pthread_join(th, NULL);
	lm_receiver_stats(r, &rs);

	CHECK_EQ(P.bad, 0);
	CHECK_EQ(P.pause_calls, 1);
	if (!negative) {
		CHECK_EQ(rc, 0);
		CHECK_EQ(rx.rc, 0);
		CHECK_EQ(P.resume_calls, 0);
		CHECK_EQ(ss.rounds, P_ROUNDS + 1);
		CHECK_EQ(rs.rounds, P_ROUNDS + 1);
		for (int i = 0; i < 2; i++)
			CHECK_EQ(P.calls[i], P_ROUNDS + 2); /* arm, each round, the final sync */
		/* Exactly the reported pages travelled, zero ones as zero pages
		 * (the others as normal, ref or delta pages). */
		CHECK_EQ(ss.normal_pages + ss.duplicate_pages + ss.ref_pages + ss.delta_pages, P.sent);
		CHECK_EQ(ss.duplicate_pages, P.zero);
		CHECK_EQ(rs.normal_pages + rs.duplicate_pages + rs.ref_pages + rs.delta_pages, P.sent);
		CHECK_EQ(rs.ref_pages, ss.ref_pages);
		CHECK_EQ(rs.delta_pages, ss.delta_pages);
		CHECK_EQ(rs.duplicate_pages, P.zero);
		for (int i = 0; i < 2; i++) {
			void *base = NULL;
			uint64_t len = 0;
			CHECK_EQ(lm_receiver_region(r, names[i], &base, &len), 0);
			CHECK_EQ(len, P.len[i]);
			if (base && len == P.len[i]) {
				for (uint64_t pg = 0; pg < P.pages[i]; pg++) {
					uint64_t off = pg * 4096, n = len - off < 4096 ? len - off : 4096;
					if (memcmp((uint8_t *)base + off, P.base[i] + off, n)) {
						CHECK(0);
						fprintf(stderr, "%s: region %s page %llu differs\n", label,
							names[i], (unsigned long long)pg);
					}
				}
			}
		}
	} else if (negative == 2) {
		void *base = NULL;
		uint64_t len = 0;
		/* Documented (lm_live_config.verify_source): by default the
		 * checksums are built from the pages as sent, so a write the log
		 * never reported is not seen and the copy differs in that page. */
		CHECK_EQ(P.hidden, 1);
		CHECK_EQ(rc, 0);
		CHECK_EQ(rx.rc, 0);
		CHECK_EQ(P.resume_calls, 0);
		CHECK_EQ(lm_receiver_region(r, names[0], &base, &len), 0);
		CHECK(base && len == P.len[0] &&
		      memcmp((uint8_t *)base + 40 * 4096, P.base[0] + 40 * 4096, 4096) != 0);
	} else {
		void *base;
		uint64_t len;
		/* The destination misses a write the log never reported: with
		 * verify_source the sender's checksums come from the paused
		 * memory, the destination refuses the copy, the workload resumes. */
		CHECK_EQ(P.hidden, 1);
		CHECK_EQ(rc, LM_ECHECKSUM);
		if (rc == 0 && lm_receiver_region(r, names[0], &base, &len) == 0 && len == P.len[0])
			fprintf(stderr, "%s: migration reported success, yet the destination's page 40 "
				"%s the source's (the write the log did not report)\n", label,
				memcmp((uint8_t *)base + 40 * 4096, P.base[0] + 40 * 4096, 4096)
					? "differs from" : "equals");
		CHECK_EQ(P.resume_calls, 1);
		CHECK(rx.rc != 0);
		CHECK_EQ(ss.status, LM_STATUS_FAILED);
		for (int i = 0; i < 2; i++)
			CHECK_EQ(lm_receiver_region(r, names[i], &base, &len), LM_ESTATE);
	}
	printf("%-44s rc %d%s%s rounds %u sent %llu pages (zero %llu)%s\n", label, rc,
	       rc ? " " : "", rc ? lm_strerror(rc) : "", ss.rounds,
	       (unsigned long long)(ss.normal_pages + ss.duplicate_pages),
	       (unsigned long long)ss.duplicate_pages,
	       lm_test_failures == before ? "" : "  FAILED");
	if (lm_test_failures != before)
		fprintf(stderr, "FAILED: %s: rc %d (%s) sender \"%s\"; receiver rc %d (%s) \"%s\"\n",
			label, rc, lm_strerror(rc), lm_sender_errmsg(s), rx.rc, lm_strerror(rx.rc),
			lm_receiver_errmsg(r));
	lm_sender_free(s);
	lm_receiver_free(r);
	for (int i = 0; i < 2; i++)
		munmap(P.base[i], P.len[i]);
}

/* ---- 3. out-dirtying the link --------------------------------------------------- */

enum { OUT_ROUNDS_FAIL, OUT_ROUNDS_SWITCHOVER, OUT_TIME_FAIL };

/* 512 pages of data in 4 MiB written at 5000 pages/s: nearly all of them
 * every round, at 4 MiB/s half a second's worth, never under 20 ms. */
static void test_outdirty(int mode)
{
	static const char *const names[] = {"out-dirty max_rounds=3 fail",
					    "out-dirty max_rounds=3 switchover",
					    "out-dirty max_time=1500ms fail"};
	const uint64_t len = 4 * MIB;
	lm_dirty_source src = have_uffd ? LM_DIRTY_UFFD_WP : LM_DIRTY_CALLBACK;
	char label[96];
	workload w;
	run R;
	uint8_t *mem = map_anon(len);

	snprintf(label, sizeof(label), "%s %s", names[mode], src_name(src));
	memset(&R, 0, sizeof(R));
	R.label = label;
	wl_init(&w, 4096);
	CHECK_EQ(wl_add(&w, "ram", mem, len), 0);
	w.track = src == LM_DIRTY_CALLBACK;
	CHECK_EQ(wl_setup(&w, 512, 0), 0);
	R.sc = sender_cfg(LM_CODEC_NONE, 4096, 2);
	R.lc = live_cfg(&w, src);
	R.lc.max_bandwidth = 4 * MIB;
	R.lc.downtime_limit_ms = 20;
	R.lc.max_rounds = mode == OUT_TIME_FAIL ? 0 : 3;
	R.lc.max_time_ms = mode == OUT_TIME_FAIL ? 1500 : 0;
	R.lc.on_limit = mode == OUT_ROUNDS_SWITCHOVER ? LM_LIMIT_SWITCHOVER : LM_LIMIT_FAIL;
	if (run_start(&w, &R) == 0) {
		wl_start(&w, 5000, 2);
		run_migrate(&w, &R);
		run_collect(&w, &R);
		check_rate(&w, &R);
		if (mode == OUT_ROUNDS_SWITCHOVER) {
			wl_pause(&w);
			check_done(&w, &R);
			CHECK_EQ(R.ss.rounds, 4); /* three, then the switchover's */
		} else {
			const char *msg = lm_sender_errmsg(R.s);
			CHECK_EQ(R.rc, LM_ECONVERGE);
			CHECK(strstr(msg, "did not converge") != NULL);
			CHECK_EQ(w.pause_calls, 0); /* it gave up before any pause */
			CHECK_EQ(R.ss.live, 1);
			CHECK(R.ss.expected_downtime_ms > R.lc.downtime_limit_ms);
			CHECK_EQ(R.ss.rounds, (uint32_t)w.progress_calls);
			CHECK_EQ(w.bad_progress, 0);
			if (mode == OUT_ROUNDS_FAIL)
				CHECK_EQ(R.ss.rounds, 3);
			else {
				CHECK(R.ms >= R.lc.max_time_ms);
				CHECK(R.ss.rounds < 30);
			}
			check_failed(&w, &R);
			printf("    errmsg: %s\n", msg);
		}
	}
	run_report(&R, &w);
	run_free(&R);
	wl_free(&w);
	munmap(mem, len);
}

/* Many small rounds, no writer: the dirty_log callback writes and reports
 * 48 pages (three 16-page packets) per sync, so each round is a few packets
 * and, with a 1 ms downtime limit, the migration runs its 16 rounds. At
 * 4 MiB/s the 1 MiB first round and 15 rounds of 192 KiB take about a
 * second; check_rate()'s bound holds whatever the round sizes. */
typedef struct small {
	uint8_t *base;
	uint64_t pages;
	int calls, pause_calls, resume_calls;
	uint64_t t_pause;
} small;

static int cb_small(void *user, uint32_t region, uint64_t *bm, uint64_t pages)
{
	small *S = user;
	int c = S->calls++;

	if (region != 0 || pages != S->pages)
		return LM_EINVAL;
	if (c == 0)
		return 0;
	for (uint64_t i = 0; i < 48; i++) {
		uint64_t pg = ((uint64_t)c * 48 + i) % pages, hdr = ((uint64_t)c << 32) | pg | (1ull << 63);
		memcpy(S->base + pg * 4096, text_corpus + ((pg * 4099 + (uint64_t)c * 577) % (CORPUS_LEN - 4096) & ~7ull), 4096);
		memcpy(S->base + pg * 4096, &hdr, 8);
		bm[pg / 64] |= 1ull << (pg % 64);
	}
	return 0;
}

static int small_pause(void *user)
{
	small *S = user;

	if (!S->pause_calls++)
		S->t_pause = now_us();
	return 0;
}

static void small_resume(void *user)
{
	((small *)user)->resume_calls++;
}

static void test_rate_small_rounds(void)
{
	const uint64_t len = 1 * MIB;
	workload w; /* for check_rate() and run_start()'s region list only */
	small S;
	run R;
	uint64_t s0 = 5;

	memset(&S, 0, sizeof(S));
	memset(&R, 0, sizeof(R));
	R.label = "rate limit, small rounds";
	S.base = map_anon(len);
	S.pages = len / 4096;
	CHECK(S.base != NULL);
	for (uint64_t pg = 0; pg < S.pages; pg++)
		make_unit(S.base + pg * 4096, 4096, pg, 2 + pg % 14, &s0); /* never zero */
	wl_init(&w, 4096);
	CHECK_EQ(wl_add(&w, "ram", S.base, len), 0);
	R.sc = sender_cfg(LM_CODEC_NONE, 4096, 2);
	R.sc.packet_pages = 16;
	memset(&R.lc, 0, sizeof(R.lc));
	R.lc.dirty = LM_DIRTY_CALLBACK;
	R.lc.dirty_log = cb_small;
	R.lc.pause = small_pause;
	R.lc.resume = small_resume;
	R.lc.user = &S;
	R.lc.max_bandwidth = 4 * MIB;
	R.lc.downtime_limit_ms = 1;
	R.lc.max_rounds = 16;
	R.lc.on_limit = LM_LIMIT_SWITCHOVER;
	if (run_start(&w, &R) == 0) {
		run_migrate(&w, &R);
		run_collect(&w, &R);
		w.pause_calls = S.pause_calls; /* check_rate() reads the pause from w */
		w.t_pause = S.t_pause;
		CHECK_EQ(R.rc, 0);
		CHECK_EQ(R.rx_rc, 0);
		CHECK_EQ(S.pause_calls, 1);
		CHECK_EQ(S.resume_calls, 0);
		CHECK_EQ(R.ss.rounds, 17);
		check_rate(&w, &R);
		check_dest(&w, &R);
		printf("    %llu bytes before the pause in %.3f s\n",
		       (unsigned long long)R.ss.precopy_bytes, (double)(S.t_pause - w.t_start) / 1e6);
	}
	run_report(&R, &w);
	run_free(&R);
	wl_free(&w);
	munmap(S.base, len);
}

/* ---- 4. auto-converge ---------------------------------------------------------- */

/* 128 pages written at 2048 pages/s, twice what the 4 MiB/s link carries:
 * rounds do not shrink until the throttle has slowed the writer to about
 * 0.6 of the link (pct 70 here). */
static void test_autoconverge(void)
{
	const uint64_t len = 2 * MIB;
	workload w;
	run R;
	uint8_t *mem = map_anon(len);
	uint32_t maxp = 0;

	memset(&R, 0, sizeof(R));
	R.label = "auto-converge step mode, callback";
	wl_init(&w, 4096);
	CHECK_EQ(wl_add(&w, "ram", mem, len), 0);
	w.track = 1;
	CHECK_EQ(wl_setup(&w, 128, 0), 0);
	R.sc = sender_cfg(LM_CODEC_NONE, 4096, 2);
	R.sc.packet_pages = 16;
	R.lc = live_cfg(&w, LM_DIRTY_CALLBACK);
	R.lc.throttle = cb_throttle;
	R.lc.throttle_mode = LM_THROTTLE_STEP; /* QEMU's steps; computed: test_converge */
	R.lc.max_bandwidth = 4 * MIB;
	R.lc.downtime_limit_ms = 20;
	R.lc.max_rounds = 60;
	if (run_start(&w, &R) == 0) {
		wl_start(&w, 2048, 1);
		run_migrate(&w, &R);
		wl_pause(&w);
		run_collect(&w, &R);
		check_done(&w, &R);
		/* Steps of the defaults, 20 then +10, then 0 once migrated. */
		CHECK(w.throttle_calls >= 2);
		CHECK(w.throttle_calls <= MAX_THROTTLES);
		for (int i = 0; i + 1 < w.throttle_calls && i + 1 < MAX_THROTTLES; i++) {
			uint32_t want = i == 0 ? 20 : w.throttles[i - 1] + 10;
			CHECK_EQ(w.throttles[i], want > 99 ? 99 : want);
			maxp = w.throttles[i] > maxp ? w.throttles[i] : maxp;
		}
		if (w.throttle_calls >= 1 && w.throttle_calls <= MAX_THROTTLES)
			CHECK_EQ(w.throttles[w.throttle_calls - 1], 0);
		CHECK(R.ss.throttle_pct >= 20);
		CHECK_EQ(R.ss.throttle_pct, maxp);
		CHECK_EQ(w.pct, 0);
		printf("    throttle steps:");
		for (int i = 0; i < w.throttle_calls && i < MAX_THROTTLES; i++)
			printf(" %u", w.throttles[i]);
		printf("\n");
	}
	run_report(&R, &w);
	run_free(&R);
	wl_free(&w);
	munmap(mem, len);
}

/* ---- 5. the destination killed ------------------------------------------------- */

/* The receiver in a child process, SIGKILLed from the progress callback at
 * round 2 (a high dirty rate over a limited link, a 1 ms downtime limit:
 * round 2 comes) or from the pause callback, during the downtime. */
static void test_dest_killed(int in_pause)
{
	const uint64_t len = 16 * MIB;
	lm_dirty_source src = have_uffd ? LM_DIRTY_UFFD_WP : LM_DIRTY_CALLBACK;
	char label[96];
	workload w;
	run R;
	uint8_t *mem = map_anon(len);

	snprintf(label, sizeof(label), "destination killed %s %s",
		 in_pause ? "in pause" : "at round 2", src_name(src));
	memset(&R, 0, sizeof(R));
	R.label = label;
	R.remote = 1;
	wl_init(&w, 4096);
	CHECK_EQ(wl_add(&w, "ram", mem, len), 0);
	w.track = src == LM_DIRTY_CALLBACK;
	CHECK_EQ(wl_setup(&w, 1024, 0), 0);
	R.sc = sender_cfg(LM_CODEC_LZ4, 4096, 2);
	R.sc.timeout_ms = 3000;
	R.lc = live_cfg(&w, src);
	if (in_pause) {
		w.kill_in_pause = 1;
	} else {
		w.kill_round = 2;
		R.lc.max_bandwidth = 16 * MIB;
		R.lc.downtime_limit_ms = 1;
	}
	if (run_start(&w, &R) == 0) {
		wl_start(&w, in_pause ? 1000 : 4000, 2);
		run_migrate(&w, &R);
		CHECK(w.t_kill != 0); /* the kill happened */
		CHECK(R.rc != 0);
		/* A dead peer is seen as such, not waited out as a stall. */
		CHECK(R.rc != LM_ETIMEDOUT);
		CHECK(strstr(lm_sender_errmsg(R.s), "no data for") == NULL);
		if (in_pause) {
			CHECK_EQ(w.pause_calls, 1);
			CHECK_EQ(w.resume_calls, 1);
		}
		check_failed(&w, &R);
		run_collect(&w, &R);
		printf("    errmsg: %s (%llu ms after the kill)\n", lm_sender_errmsg(R.s),
		       (unsigned long long)(w.t_kill ? (R.t_end - w.t_kill) / 1000 : 0));
	}
	kill_child(&w);
	run_report(&R, &w);
	run_free(&R);
	wl_free(&w);
	munmap(mem, len);
}

/* ---- 7. odd regions ------------------------------------------------------------------ */

/* "tail": 1000 pages and 123 bytes; "inner": 300 pages and 77 bytes at
 * 3 pages + 100 bytes into a 2 MiB mapping whose other bytes hold a pattern
 * nothing may change. */
static void test_regions(uint32_t page_size, lm_dirty_source src)
{
	const uint64_t tail_len = 1000 * 4096ull + 123, outer_len = 2 * MIB;
	const uint64_t inner_off = 3 * 4096 + 100, inner_len = 300 * 4096ull + 77;
	char label[96];
	workload w;
	run R;
	uint8_t *tail = map_anon(tail_len), *outer = map_anon(outer_len);
	int outside_ok = 1;

	snprintf(label, sizeof(label), "regions page %u %s", page_size, src_name(src));
	memset(&R, 0, sizeof(R));
	R.label = label;
	CHECK(tail && outer);
	if (outer)
		memset(outer, 0xA5, outer_len);
	wl_init(&w, page_size);
	CHECK_EQ(wl_add(&w, "tail", tail, tail_len), 0);
	CHECK_EQ(wl_add(&w, "inner", outer ? outer + inner_off : NULL, inner_len), 0);
	w.track = src == LM_DIRTY_CALLBACK;
	CHECK_EQ(wl_setup(&w, 0, 1), 0);
	R.sc = sender_cfg(LM_CODEC_ZSTD, page_size, 2);
	R.lc = live_cfg(&w, src);
	R.lc.max_rounds = 30;
	R.lc.max_bandwidth = 32 * MIB;
	if (run_start(&w, &R) == 0) {
		wl_start(&w, 2000, 2);
		run_migrate(&w, &R);
		wl_pause(&w);
		run_collect(&w, &R);
		check_done(&w, &R);
		CHECK(R.ss.expected_downtime_ms <= 300);
		CHECK_EQ(R.ss.page_size, page_size);
		for (uint64_t i = 0; i < outer_len; i++)
			if ((i < inner_off || i >= inner_off + inner_len) && outer[i] != 0xA5) {
				outside_ok = 0;
				break;
			}
		CHECK(outside_ok);
	}
	run_report(&R, &w);
	run_free(&R);
	wl_free(&w);
	munmap(tail, tail_len);
	munmap(outer, outer_len);
}

int main(int argc, char **argv)
{
	static const lm_codec_id codecs[] = {LM_CODEC_NONE, LM_CODEC_DEFLATE, LM_CODEC_ZSTD,
					     LM_CODEC_LZ4, LM_CODEC_ZLIB};
	uint64_t t0 = now_us();
	int only;

	if (argc == 3 && strcmp(argv[1], "--rx-child") == 0)
		return rx_child_main(atoi(argv[2]));
	corpus_init();
	verbose = getenv("LM_TEST_VERBOSE") && atoi(getenv("LM_TEST_VERBOSE")) > 0;
	have_uffd = lm_dirty_probe(uffd_why, sizeof(uffd_why)) == 0;
	if (have_uffd)
		printf("uffd-wp dirty tracking: available\n");
	else
		printf("uffd-wp dirty tracking unavailable (%s): uffd cases skipped\n", uffd_why);

	only = getenv("LM_TEST_ONLY") ? atoi(getenv("LM_TEST_ONLY")) : 0;
	if (!only || only == 6) {
		test_args();
		test_stats_format();
	}
	for (unsigned c = 0; (!only || only == 1) && c < sizeof(codecs) / sizeof(codecs[0]); c++) {
		if (have_uffd)
			test_converge(codecs[c], LM_DIRTY_UFFD_WP, c == 0, 0);
		test_converge(codecs[c], LM_DIRTY_CALLBACK, c == 1, 0);
	}
	if (!only || only == 1) {
		test_converge(LM_CODEC_NONE, LM_DIRTY_AUTO, 0, 0);
		if (have_uffd) {
			test_converge(LM_CODEC_NONE, LM_DIRTY_AUTO, 0, 1);
			test_skip();
		}
	}

	for (unsigned c = 0; (!only || only == 2) && c < sizeof(codecs) / sizeof(codecs[0]); c++)
		test_patterns(codecs[c], 0);
	if (!only || only == 2) {
		test_patterns(LM_CODEC_NONE, 1); /* verify_source: the miss fails it */
		test_patterns(LM_CODEC_NONE, 2); /* default: the log is trusted */
	}
	if (!only || only == 3) {
		test_outdirty(OUT_ROUNDS_FAIL);
		test_outdirty(OUT_ROUNDS_SWITCHOVER);
		test_outdirty(OUT_TIME_FAIL);
		test_rate_small_rounds();
	}
	if (!only || only == 4)
		test_autoconverge();
	if (!only || only == 5) {
		test_dest_killed(0);
		test_dest_killed(1);
	}
	for (unsigned c = 0; (!only || only == 8) && c < sizeof(codecs) / sizeof(codecs[0]); c++) {
		if (have_uffd)
			test_deltas(codecs[c], LM_DIRTY_UFFD_WP, 8);
		test_deltas(codecs[c], LM_DIRTY_CALLBACK, c % 2 ? 1000 : 8);
	}
	if (!only || only == 8)
		test_deltas(LM_CODEC_ZSTD, LM_DIRTY_CALLBACK, 0);
	if (have_uffd && (!only || only == 7)) {
		test_regions(4096, LM_DIRTY_UFFD_WP);
		test_regions(16384, LM_DIRTY_UFFD_WP);
	}
	if (!only || only == 7)
		test_regions(16384, LM_DIRTY_CALLBACK);

	printf("total %.1f s\n", (double)(now_us() - t0) / 1e6);
	TEST_DONE("test_live");
}
