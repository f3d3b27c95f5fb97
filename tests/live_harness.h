/*
 * The live-migration test harness test_live and test_converge share: a
 * workload whose writer threads write whole 4 KiB units (text, binary
 * records, random bytes, zero pages, each with a changing counter) into
 * random pages of a working set at a bounded rate (a token bucket), honour
 * pause (which returns only when no write is in flight), resume and
 * throttle(pct) (the rate times (100 - pct) / 100), and write the same
 * bytes into a private shadow copy, so "the library left the source memory
 * alone" is source == shadow once the writers are paused. For
 * LM_DIRTY_CALLBACK they also keep an atomic dirty bitmap, set after each
 * write, that the callback fetches and clears (KVM_GET_DIRTY_LOG style).
 * Then the library's callbacks, counted, and one migration's steps
 * (run_start, run_migrate, run_collect, the checks), with the receiver in
 * a thread or in a child process (the program re-executed with
 * --rx-child: its main must call rx_child_main() then).
 *
 * Static functions in a header: each test program includes it once, and
 * the CHECK counters of check.h are per program.
 */
#ifndef LM_TEST_LIVE_HARNESS_H
#define LM_TEST_LIVE_HARNESS_H

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "test_util.h"
#include "livemig.h"

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

static inline uint8_t *map_anon(uint64_t len)
{
	void *p = mmap(NULL, (size_t)len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static inline int all_zero(const uint8_t *p, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

static inline const char *src_name(lm_dirty_source s)
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

static inline void corpus_init(void)
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
static inline void make_unit(uint8_t *p, uint32_t n, uint64_t id, uint64_t counter, uint64_t *s)
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

static inline void wl_init(workload *w, uint32_t page_size)
{
	memset(w, 0, sizeof(*w));
	w->page_size = page_size;
	w->child = -1;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
}

static inline int wl_add(workload *w, const char *name, uint8_t *base, uint64_t len)
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
static inline int wl_setup(workload *w, uint32_t ws, int fill_all)
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

static inline void *writer_main(void *arg)
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

static inline void wl_start(workload *w, double rate, int nwriters)
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
static inline void wl_pause(workload *w)
{
	pthread_mutex_lock(&w->mu);
	w->paused = 1;
	while (w->inflight)
		pthread_cond_wait(&w->cv, &w->mu);
	pthread_mutex_unlock(&w->mu);
}

static inline void wl_resume(workload *w)
{
	pthread_mutex_lock(&w->mu);
	w->paused = 0;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

static inline int wl_is_paused(workload *w)
{
	int p;

	pthread_mutex_lock(&w->mu);
	p = w->paused;
	pthread_mutex_unlock(&w->mu);
	return p;
}

static inline uint64_t wl_writes(workload *w)
{
	uint64_t n;

	pthread_mutex_lock(&w->mu);
	n = w->writes;
	pthread_mutex_unlock(&w->mu);
	return n;
}

static inline void wl_stop(workload *w)
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

static inline void wl_free(workload *w)
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

static inline void kill_child(workload *w)
{
	if (w->child <= 0)
		return;
	kill(w->child, SIGKILL);
	while (waitpid(w->child, NULL, 0) < 0 && errno == EINTR)
		;
	w->child = -1;
	w->t_kill = now_us();
}

static inline int cb_pause(void *user)
{
	workload *w = user;

	if (!w->pause_calls++)
		w->t_pause = now_us();
	wl_pause(w);
	if (w->kill_in_pause)
		kill_child(w);
	return 0;
}

static inline void cb_resume(void *user)
{
	workload *w = user;

	w->resume_calls++;
	wl_resume(w);
}

static inline void cb_throttle(void *user, uint32_t pct)
{
	workload *w = user;

	if (w->throttle_calls < MAX_THROTTLES)
		w->throttles[w->throttle_calls] = pct;
	w->throttle_calls++;
	pthread_mutex_lock(&w->mu);
	w->pct = pct;
	pthread_mutex_unlock(&w->mu);
}

static inline void cb_progress(void *user, const lm_stats *st)
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
static inline int cb_dirty(void *user, uint32_t region, uint64_t *bitmap, uint64_t pages)
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

typedef struct run {
	const char *label;
	lm_sender_config sc;
	lm_live_config lc;
	int remote;        /* the receiver in a child process */
	const lm_receiver_config *rx_cfg; /* a thread receiver's config; NULL: the default */
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

static inline lm_sender_config sender_cfg(lm_codec_id codec, uint32_t page_size, uint32_t channels)
{
	lm_sender_config c;

	memset(&c, 0, sizeof(c));
	c.size = sizeof(c);
	c.codec = codec;
	c.page_size = page_size;
	c.channels = channels;
	c.timeout_ms = 20000;
	return c;
}

static inline lm_live_config live_cfg(workload *w, lm_dirty_source src)
{
	lm_live_config c;

	memset(&c, 0, sizeof(c));
	c.size = sizeof(c);
	c.dirty = src;
	c.dirty_log = src == LM_DIRTY_CALLBACK ? cb_dirty : NULL;
	c.pause = cb_pause;
	c.resume = cb_resume;
	c.progress = cb_progress;
	c.user = w;
	return c;
}

/* This program again, as a receiver in its own process: "--rx-child FD". */
static inline int rx_child_main(int fd)
{
	lm_receiver_config rc;
	lm_receiver *r = NULL;
	int port, err;

	memset(&rc, 0, sizeof(rc));
	rc.size = sizeof(rc);
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

static inline pid_t spawn_receiver(int *port)
{
	char fdarg[16], arg0[] = "lm-live-test", arg1[] = "--rx-child";
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
static inline int run_start(workload *w, run *R)
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
		rc.size = sizeof(rc);
		rc.timeout_ms = 20000;
		rc.accept_timeout_ms = 20000;
		rc.alloc_regions = 1;
		if (R->rx_cfg)
			rc = *R->rx_cfg;
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
static inline void run_migrate(workload *w, run *R)
{
	w->t_start = now_us();
	R->rc = lm_sender_migrate(R->s, &R->lc);
	R->t_end = now_us();
	R->ms = (R->t_end - w->t_start) / 1000;
	R->ss.size = sizeof(R->ss);
	lm_sender_stats(R->s, &R->ss);
}

/* max_bandwidth is a rate over the whole pre-copy: the bytes on the wire
 * before the pause (or the failure) fit the rate over the time since
 * lm_sender_migrate() was called, plus a burst of one packet per channel
 * and one more. Only a lower bound on time: a slow machine passes it too. */
static inline void check_rate(workload *w, const run *R)
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

static inline void run_collect(workload *w, run *R)
{
	if (R->remote) {
		kill_child(w);
		return;
	}
	if (R->rx_started)
		pthread_join(R->rx_th, NULL);
	R->rx_started = 0;
	R->rx_rc = R->rx.rc;
	R->rs.size = sizeof(R->rs);
	lm_receiver_stats(R->r, &R->rs);
}

static inline void run_report(const run *R, workload *w)
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

static inline void run_free(run *R)
{
	if (R->rx_started)
		pthread_join(R->rx_th, NULL);
	lm_sender_free(R->s);
	lm_receiver_free(R->r);
	R->s = NULL;
	R->r = NULL;
}

/* Source == shadow: the library wrote nothing into the source memory. */
static inline void check_shadow(workload *w, const char *label)
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
static inline void check_dest(workload *w, run *R)
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
static inline void check_failed(workload *w, run *R)
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
static inline void check_done(workload *w, run *R)
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

#endif
