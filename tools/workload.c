/*
 * workload: a synthetic guest writing its memory (see workload.h).
 *
 * Content comes from a pool of template pages built once at wl_new(): text
 * (prose, logs, source code) and heap-like structures (linked structs with
 * pointers, small integers, arrays). A written page is a template rotated by
 * a random number of words plus a 16-byte stamp, so every write changes the
 * page and per-page compressors see realistic input; 10% of the pages are
 * fresh random bytes. Filling uses several threads over 2 MiB chunks, each
 * chunk laid out from its own PRNG stream, so the fill does not depend on
 * the number of threads.
 */
#include "workload.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "compat.h"

#define PAGE WL_PAGE_SIZE
#define WORDS (PAGE / 8)
#define TEXT_TEMPLATES 192
#define HEAP_TEMPLATES 192
#define TEMPLATES (TEXT_TEMPLATES + HEAP_TEMPLATES)
#define DUP_PAGES 48 /* the shared pages duplicated pages copy exactly */
#define CHUNK_PAGES 512 /* 2 MiB: the unit of the deterministic fill layout */
#define MAX_FILL_THREADS 8
#define DEFAULT_WORKING_SET (256ull << 20)
#define SLICE_NS 1000000ll          /* writers refill their bucket every 1 ms */
#define BURST_NS 5000000ll          /* and may catch up at most 5 ms of writes */
#define THROTTLE_RUN_NS 10000000ll  /* QEMU's throttle slice: 10 ms of running */
#define STAMP_MAGIC 0x574c2d5041474500ull /* "WL-PAGE" */

enum kind { K_ZERO, K_TEXT, K_HEAP, K_DUP, K_RANDOM, K_COUNT };

/* Share of pages per kind (percent) and the longest run of one kind:
 * free memory comes in long zero runs, the rest in short runs. */
static const unsigned kind_pct[K_COUNT] = {40, 16, 22, 12, 10};
static const unsigned kind_run[K_COUNT] = {128, 16, 16, 8, 16};

/* ---- PRNG: splitmix64 seeding, xoshiro256** ---------------------------- */

typedef struct rng {
	uint64_t s[4];
} rng;

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static void rng_seed(rng *r, uint64_t seed, uint64_t stream)
{
	uint64_t x = seed ^ (stream * 0xD1B54A32D192ED03ull);

	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> ((64 - k) & 63));
}

static uint64_t rng_next(rng *r)
{
	uint64_t *s = r->s;
	uint64_t out = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return out;
}

static uint64_t rng_below(rng *r, uint64_t n)
{
	return n ? rng_next(r) % n : 0; /* the bias is irrelevant at our n */
}

/* ---- the handle -------------------------------------------------------- */

typedef struct writer {
	struct wl *w;
	rng r;
	double rate; /* bytes per second for this thread */
	pthread_t th;
} writer;

struct wl {
	uint8_t *base;
	uint64_t size, pages, ws_pages, rate;
	uint32_t nthreads, write_bytes;
	uint64_t seed;
	uint8_t *pool; /* TEMPLATES pages, then DUP_PAGES pages */
	unsigned kind_cut[K_COUNT]; /* cumulative run-start weights, of 65536 */
	_Atomic uint64_t *log; /* 1 bit per page, set after the write */
	uint64_t log_words;
	wl_fill_stats fill;

	pthread_mutex_t mu;
	pthread_cond_t run_cv;  /* writers: resume, stop, throttle change */
	pthread_cond_t idle_cv; /* wl_pause: the last active writer left */
	int paused, stop;       /* under mu */
	uint32_t active;        /* writers inside a write slice, under mu */
	atomic_int brake;       /* paused or stop: writers leave a slice early */
	atomic_uint throttle;
	atomic_uint_least64_t written;
	writer *writers;
	uint32_t started;       /* writer threads running */
	int sync_ok;            /* mu and the condvars were initialised */
};

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

static struct timespec ts_of(int64_t ns)
{
	return (struct timespec){.tv_sec = ns / 1000000000ll, .tv_nsec = ns % 1000000000ll};
}

/* ---- templates --------------------------------------------------------- */

static const char *const words[] = {
	"the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "was", "with", "be",
	"by", "on", "not", "he", "this", "are", "or", "his", "from", "at", "which", "but",
	"have", "an", "had", "they", "you", "were", "their", "one", "all", "we", "can", "her",
	"has", "there", "been", "if", "more", "when", "will", "would", "who", "so", "no",
	"memory", "page", "kernel", "system", "process", "network", "device", "driver",
	"migration", "channel", "buffer", "request", "response", "server", "client", "error",
	"value", "number", "table", "index", "session", "thread", "queue", "config", "file",
	"user", "data", "time", "state", "count", "offset", "length", "update", "return",
	"struct", "static", "const", "unsigned", "include", "define", "while", "break",
	"connection", "timeout", "interface", "address", "module", "version", "library",
};
#define NWORDS (sizeof(words) / sizeof(words[0]))

/* Appends s (truncated at the page end); returns the new length. */
static size_t put_str(uint8_t *p, size_t at, const char *s)
{
	size_t n = strlen(s);

	if (n > PAGE - at)
		n = PAGE - at;
	memcpy(p + at, s, n);
	return at + n;
}

static void text_prose(uint8_t *p, rng *r)
{
	size_t at = 0;
	uint64_t left = 0; /* words left in the sentence */

	while (at < PAGE) {
		char buf[32];
		int start = left == 0;

		if (start)
			left = 5 + rng_below(r, 14);
		snprintf(buf, sizeof(buf), "%s%s", words[rng_below(r, NWORDS)], --left ? " " : ". ");
		if (start)
			buf[0] = (char)(buf[0] - 'a' + 'A'); /* every word is lower case */
		at = put_str(p, at, buf);
		if (!left && rng_below(r, 6) == 0)
			at = put_str(p, at, "\n\n");
	}
}

static void text_log(uint8_t *p, rng *r)
{
	unsigned sec = (unsigned)rng_below(r, 86400), usec = (unsigned)rng_below(r, 100000);
	size_t at = 0;

	while (at < PAGE) {
		char line[160];
		unsigned a = (unsigned)rng_below(r, 65536), b = (unsigned)rng_below(r, 100000);

		sec += (unsigned)rng_below(r, 3);
		/* Four fixed formats: the format strings are literals chosen here,
		 * so -Wformat-nonliteral has nothing to check. */
		switch (rng_below(r, 4)) {
		case 0:
			snprintf(line, sizeof(line), "2024-05-%02u %02u:%02u:%02u.%03u host%u kernel: [%6u.%06u] eth%u: link up, %u Mbps\n",
				 1 + sec / 86400 % 28, sec / 3600 % 24, sec / 60 % 60, sec % 60, a % 1000, a % 8, sec, usec, a % 4, 1000 * (1 + a % 10));
			break;
		case 1:
			snprintf(line, sizeof(line), "2024-05-%02u %02u:%02u:%02u.%03u host%u sshd[%u]: Accepted publickey for user%u port %u\n",
				 1 + sec / 86400 % 28, sec / 3600 % 24, sec / 60 % 60, sec % 60, a % 1000, a % 8, b, a % 50, 1024 + b % 60000);
			break;
		case 2:
			snprintf(line, sizeof(line), "2024-05-%02u %02u:%02u:%02u.%03u host%u nginx[%u]: GET /api/v%u/items/%u 200 %u\n",
				 1 + sec / 86400 % 28, sec / 3600 % 24, sec / 60 % 60, sec % 60, a % 1000, a % 8, b % 4000, 1 + a % 3, b, a);
			break;
		default:
			snprintf(line, sizeof(line), "2024-05-%02u %02u:%02u:%02u.%03u host%u systemd[1]: Started session %u of user u%u.\n",
				 1 + sec / 86400 % 28, sec / 3600 % 24, sec / 60 % 60, sec % 60, a % 1000, a % 8, b, a % 50);
			break;
		}
		at = put_str(p, at, line);
	}
}

static void text_code(uint8_t *p, rng *r)
{
	size_t at = 0;

	while (at < PAGE) {
		char line[160];
		const char *a = words[rng_below(r, NWORDS)], *b = words[rng_below(r, NWORDS)];
		unsigned n = (unsigned)rng_below(r, 4096);

		switch (rng_below(r, 5)) {
		case 0: snprintf(line, sizeof(line), "static int %s_%s(struct %s *%c, size_t len)\n{\n", a, b, a, a[0]); break;
		case 1: snprintf(line, sizeof(line), "\tif (%c->%s_%s < %u)\n\t\treturn -EINVAL;\n", a[0], b, a, n); break;
		case 2: snprintf(line, sizeof(line), "\t%s->%s = %s_%s(%s, %u);\n", a, b, b, a, a, n); break;
		case 3: snprintf(line, sizeof(line), "\t/* %s the %s %s before the %s */\n", a, b, a, b); break;
		default: snprintf(line, sizeof(line), "\treturn %s;\n}\n\n", n & 1 ? "0" : b); break;
		}
		at = put_str(p, at, line);
	}
}

/* Heap: arrays of one struct type (list links, refcount, flags, type, size,
 * a few small fields, a short name), as a slab of objects looks. */
static void heap_structs(uint8_t *p, rng *r)
{
	uint64_t heap = 0x00007f0000000000ull + (rng_below(r, 1u << 20) << 12);
	unsigned sz = 32u << rng_below(r, 3); /* 32, 64 or 128-byte objects */
	unsigned type = (unsigned)rng_below(r, 64);

	memset(p, 0, PAGE);
	for (unsigned off = 0; off + sz <= PAGE; off += sz) {
		uint64_t f[16] = {0};
		unsigned nf = sz / 8;

		f[0] = heap + rng_below(r, 4096) * sz;            /* next */
		f[1] = rng_below(r, 4) ? heap + rng_below(r, 4096) * sz : 0; /* prev */
		f[2] = ((uint64_t)type << 32) | (1 + rng_below(r, 3)); /* type, refcount */
		f[3] = rng_below(r, 8) ? 0 : rng_below(r, 256);  /* flags */
		if (nf > 4)
			f[4] = rng_below(r, 2) ? 16 * (1 + rng_below(r, 64)) : 0; /* size */
		if (nf > 6)
			snprintf((char *)&f[5], 16, "obj%u", (unsigned)rng_below(r, 1000));
		if (nf > 8)
			f[8] = 0x00005555550000ull + rng_below(r, 1u << 16) * 8; /* vtable */
		memcpy(p + off, f, sz);
	}
}

/* Heap: a pointer array and small integers, zero padded at the end. */
static void heap_arrays(uint8_t *p, rng *r)
{
	uint64_t heap = 0x000055d000000000ull + (rng_below(r, 1u << 16) << 16);
	unsigned used = WORDS / 4 + (unsigned)rng_below(r, WORDS * 3 / 4);
	uint64_t *w = (uint64_t *)(void *)p;

	memset(p, 0, PAGE);
	for (unsigned i = 0; i < used; i++) {
		switch (i / 64 % 3) {
		case 0: w[i] = heap + rng_below(r, 1024) * 16; break;
		case 1: w[i] = rng_below(r, 100); break;
		default: w[i] = rng_below(r, 2) ? (uint64_t)i * 8 : 0xffffffffffffffffull; break;
		}
	}
}

static void fill_random(uint8_t *p, rng *r)
{
	uint64_t *w = (uint64_t *)(void *)p;

	for (unsigned i = 0; i < WORDS; i++)
		w[i] = rng_next(r);
}

static int build_pool(struct wl *w)
{
	rng r;

	w->pool = malloc((size_t)(TEMPLATES + DUP_PAGES) * PAGE);
	if (!w->pool)
		return -ENOMEM;
	rng_seed(&r, w->seed, 1);
	for (unsigned i = 0; i < TEMPLATES; i++) {
		uint8_t *p = w->pool + (size_t)i * PAGE;
		unsigned k = (unsigned)rng_below(&r, 8);

		if (i < TEXT_TEMPLATES && k < 3)
			text_prose(p, &r);
		else if (i < TEXT_TEMPLATES && k < 6)
			text_log(p, &r);
		else if (i < TEXT_TEMPLATES)
			text_code(p, &r);
		else if (k < 5)
			heap_structs(p, &r);
		else
			heap_arrays(p, &r);
	}
	/* Duplicates are exact copies of a few template pages (shared
	 * libraries, page cache copies): never stamped, never rotated. */
	for (unsigned i = 0; i < DUP_PAGES; i++)
		memcpy(w->pool + (size_t)(TEMPLATES + i) * PAGE,
		       w->pool + (size_t)rng_below(&r, TEMPLATES) * PAGE, PAGE);
	return 0;
}

/* A template rotated by rot words, then stamped so the page is unique. */
static void make_page(const struct wl *w, uint8_t *dst, unsigned tpl, unsigned rot, uint64_t stamp,
		      uint64_t page)
{
	const uint8_t *src = w->pool + (size_t)tpl * PAGE;
	size_t cut = (size_t)rot * 8;
	uint64_t s[2] = {STAMP_MAGIC ^ stamp, page};

	memcpy(dst, src + cut, PAGE - cut);
	memcpy(dst + PAGE - cut, src, cut);
	memcpy(dst, s, sizeof(s));
}

/* ---- fill -------------------------------------------------------------- */

/* Run starts are drawn with weight share / mean run length, so the page
 * shares come out as kind_pct. */
static void init_kind_cuts(struct wl *w)
{
	double wt[K_COUNT], sum = 0, acc = 0;

	for (int k = 0; k < K_COUNT; k++) {
		wt[k] = kind_pct[k] / ((kind_run[k] + 1) / 2.0);
		sum += wt[k];
	}
	for (int k = 0; k < K_COUNT; k++) {
		acc += wt[k];
		w->kind_cut[k] = (unsigned)(acc / sum * 65536.0 + 0.5);
	}
	w->kind_cut[K_COUNT - 1] = 65536;
}

static enum kind pick_kind(const struct wl *w, rng *r)
{
	unsigned x = (unsigned)rng_below(r, 65536);
	int k = 0;

	while (x >= w->kind_cut[k])
		k++;
	return (enum kind)k;
}

static void fill_page(const struct wl *w, enum kind k, uint64_t page, rng *r)
{
	uint8_t *dst = w->base + page * PAGE;

	switch (k) {
	case K_ZERO: break; /* fresh anonymous memory already reads as zeros */
	case K_TEXT:
		make_page(w, dst, (unsigned)rng_below(r, TEXT_TEMPLATES), (unsigned)rng_below(r, WORDS), page, page);
		break;
	case K_HEAP:
		make_page(w, dst, TEXT_TEMPLATES + (unsigned)rng_below(r, HEAP_TEMPLATES),
			  (unsigned)rng_below(r, WORDS), page, page);
		break;
	case K_DUP:
		memcpy(dst, w->pool + (size_t)(TEMPLATES + rng_below(r, DUP_PAGES)) * PAGE, PAGE);
		break;
	default: fill_random(dst, r); break;
	}
}

typedef struct fill_job {
	struct wl *w;
	uint64_t first_chunk, end_chunk;
	uint64_t count[K_COUNT];
	pthread_t th;
} fill_job;

static void *fill_main(void *arg)
{
	fill_job *j = arg;
	const struct wl *w = j->w;

	for (uint64_t c = j->first_chunk; c < j->end_chunk; c++) {
		uint64_t page = c * CHUNK_PAGES, end = page + CHUNK_PAGES;
		rng r;

		if (end > w->pages)
			end = w->pages;
		rng_seed(&r, w->seed, 1000 + c); /* per chunk: thread count does not matter */
		while (page < end) {
			enum kind k = pick_kind(w, &r);
			uint64_t run = 1 + rng_below(&r, kind_run[k]);

			for (; run && page < end; run--, page++) {
				fill_page(w, k, page, &r);
				j->count[k]++;
			}
		}
	}
	return NULL;
}

static uint32_t fill_threads(uint64_t chunks)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	if (n < 1)
		n = 1;
	if (n > MAX_FILL_THREADS)
		n = MAX_FILL_THREADS;
	return (uint64_t)n > chunks ? (uint32_t)chunks : (uint32_t)n;
}

static int fill(struct wl *w)
{
	uint64_t chunks = (w->pages + CHUNK_PAGES - 1) / CHUNK_PAGES;
	fill_job job[MAX_FILL_THREADS] = {{0}};
	uint32_t n = fill_threads(chunks), started = 0;
	int64_t t0 = now_ns();
	int rc = 0;

	for (uint32_t i = 0; i < n; i++) {
		job[i].w = w;
		job[i].first_chunk = chunks * i / n;
		job[i].end_chunk = chunks * (i + 1) / n;
		/* The first job runs on this thread: one thread less to make. */
		if (i == 0)
			continue;
		if ((rc = -pthread_create(&job[i].th, NULL, fill_main, &job[i])))
			break;
		started++;
	}
	if (!rc)
		fill_main(&job[0]);
	for (uint32_t i = 1; i <= started; i++)
		pthread_join(job[i].th, NULL);
	if (rc)
		return rc;
	w->fill.pages = w->pages;
	for (uint32_t i = 0; i < n; i++) {
		w->fill.zero += job[i].count[K_ZERO];
		w->fill.text += job[i].count[K_TEXT];
		w->fill.heap += job[i].count[K_HEAP];
		w->fill.dup += job[i].count[K_DUP];
		w->fill.random += job[i].count[K_RANDOM];
	}
	w->fill.seconds = (double)(now_ns() - t0) / 1e9;
	return 0;
}

/* The memory as an image file: its first w->size bytes; a shorter file
 * leaves the rest zero (fresh anonymous memory). */
static int load_image(struct wl *w, const char *path)
{
	int64_t t0 = now_ns();
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	uint64_t got = 0;
	int rc = 0;

	if (fd < 0)
		return -errno;
	while (got < w->size) {
		ssize_t n = read(fd, w->base + got, (size_t)(w->size - got));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			break;
		}
		if (n == 0)
			break;
		got += (uint64_t)n;
	}
	close(fd);
	if (rc)
		return rc;
	w->fill.pages = w->pages;
	w->fill.image_bytes = got;
	for (uint64_t p = 0; p < w->pages; p++) {
		const uint8_t *q = w->base + p * PAGE;

		w->fill.zero += q[0] == 0 && memcmp(q, q + 1, PAGE - 1) == 0;
	}
	w->fill.seconds = (double)(now_ns() - t0) / 1e9;
	return 0;
}

/* ---- lifecycle --------------------------------------------------------- */

static int init_sync(struct wl *w)
{
	pthread_condattr_t ca;
	int rc;

	if ((rc = pthread_condattr_init(&ca)))
		return -rc;
	/* Throttle sleeps wait on run_cv against CLOCK_MONOTONIC: a clock
	 * step must not stretch or cut them. */
	if ((rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC)) ||
	    (rc = pthread_mutex_init(&w->mu, NULL)))
		goto out;
	if ((rc = pthread_cond_init(&w->run_cv, &ca)))
		goto out_mu;
	if ((rc = pthread_cond_init(&w->idle_cv, &ca)))
		goto out_run;
	w->sync_ok = 1;
	goto out;
out_run:
	pthread_cond_destroy(&w->run_cv);
out_mu:
	pthread_mutex_destroy(&w->mu);
out:
	pthread_condattr_destroy(&ca);
	return -rc;
}

static int check_config(const wl_config *c)
{
	if (!c || !c->size || c->threads > WL_MAX_THREADS || c->write_bytes > PAGE)
		return -EINVAL;
	if (c->size > UINT64_MAX - PAGE || (c->size + PAGE - 1) / PAGE > SIZE_MAX / PAGE)
		return -EINVAL;
	return 0;
}

int wl_new(wl **out, const wl_config *c)
{
	struct wl *w = NULL;
	int rc;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if ((rc = check_config(c)))
		return rc;
	if (!(w = calloc(1, sizeof(*w))))
		return -ENOMEM;
	w->pages = (c->size + PAGE - 1) / PAGE;
	w->size = w->pages * PAGE;
	/* Whole pages, at least one, at most all; no rounding overflow. */
	w->ws_pages = c->working_set ? c->working_set / PAGE + (c->working_set % PAGE != 0)
				     : DEFAULT_WORKING_SET / PAGE;
	if (w->ws_pages > w->pages)
		w->ws_pages = w->pages;
	w->rate = c->dirty_rate;
	w->nthreads = c->threads ? c->threads : 1;
	w->write_bytes = c->write_bytes;
	w->seed = c->seed;
	init_kind_cuts(w);
	if ((rc = init_sync(w)))
		goto fail;
	/* NORESERVE: a demo of several GiB should not need that much commit
	 * headroom for pages that stay zero and are never touched. */
	w->base = mmap(NULL, (size_t)w->size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (w->base == MAP_FAILED) {
		w->base = NULL;
		rc = -errno;
		goto fail;
	}
	if (c->dirty_log) {
		w->log_words = (w->pages + 63) / 64;
		if (!(w->log = calloc((size_t)w->log_words, sizeof(*w->log)))) {
			rc = -ENOMEM;
			goto fail;
		}
	}
	/* The pool also serves the writers' whole-page writes. */
	if ((rc = build_pool(w)) || (rc = c->image ? load_image(w, c->image) : fill(w)))
		goto fail;
	*out = w;
	return 0;
fail:
	wl_free(w);
	return rc;
}

/* ---- writers ----------------------------------------------------------- */

/* write_bytes bytes at a random offset, as QEMU's guestperf stress does
 * (8 bytes): most of the page stays as it was. */
static void write_part(struct wl *w, writer *t, uint8_t *dst)
{
	uint32_t len = w->write_bytes;
	size_t off = (size_t)rng_below(&t->r, PAGE - len + 1);

	for (uint32_t i = 0; i < len; i += 8) {
		uint64_t v = rng_next(&t->r);

		memcpy(dst + off + i, &v, len - i < 8 ? len - i : 8);
	}
}

/* One write: a whole page or a part of it, then the log bit (release), so
 * a reader who fetched the bit before it was set reads the page again next
 * time. */
static void write_page(struct wl *w, writer *t)
{
	uint64_t page = rng_below(&t->r, w->ws_pages);
	uint8_t *dst = w->base + page * PAGE;
	uint64_t x = rng_next(&t->r);
	uint64_t n = atomic_fetch_add_explicit(&w->written, 1, memory_order_relaxed);

	if (w->write_bytes) {
		write_part(w, t, dst);
	} else if (x % 10 == 0) {
		fill_random(dst, &t->r);
	} else {
		make_page(w, dst, (unsigned)((x >> 8) % TEMPLATES), (unsigned)((x >> 24) % WORDS),
			  0x8000000000000000ull | n, page);
	}
	if (w->log)
		atomic_fetch_or_explicit(&w->log[page / 64], 1ull << (page % 64), memory_order_release);
}

/* Waits out a pause; returns 0 with the writer counted active, or -1 to
 * exit. *waited tells the caller to restart its clock. */
static int enter_slice(struct wl *w, int *waited)
{
	int rc = 0;

	pthread_mutex_lock(&w->mu);
	*waited = 0;
	while (w->paused && !w->stop) {
		*waited = 1;
		pthread_cond_wait(&w->run_cv, &w->mu);
	}
	if (w->stop)
		rc = -1;
	else
		w->active++;
	pthread_mutex_unlock(&w->mu);
	return rc;
}

static void leave_slice(struct wl *w)
{
	pthread_mutex_lock(&w->mu);
	if (--w->active == 0 && w->paused)
		pthread_cond_broadcast(&w->idle_cv);
	pthread_mutex_unlock(&w->mu);
}

/* The throttle's off time, slept on run_cv so stop (or a new throttle
 * value) cuts it short. */
static void throttle_sleep(struct wl *w, unsigned pct)
{
	struct timespec until = ts_of(now_ns() + THROTTLE_RUN_NS * pct / (100 - pct));

	pthread_mutex_lock(&w->mu);
	while (!w->stop && atomic_load(&w->throttle) == pct &&
	       pthread_cond_timedwait(&w->run_cv, &w->mu, &until) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&w->mu);
}

static void *writer_main(void *arg)
{
	writer *t = arg;
	struct wl *w = t->w;
	double tokens = 0, burst = t->rate * BURST_NS / 1e9;
	int64_t last = now_ns(), run_start = last, next = last + SLICE_NS;
	int waited;

	if (burst < PAGE)
		burst = PAGE;
	while (!enter_slice(w, &waited)) {
		int64_t now = now_ns();
		unsigned pct;

		if (waited) /* no catching up on the writes a pause held back */
			tokens = 0, last = run_start = now;
		tokens += t->rate * (double)(now - last) / 1e9;
		if (tokens > burst)
			tokens = burst;
		last = now;
		for (; tokens >= PAGE && !atomic_load_explicit(&w->brake, memory_order_relaxed); tokens -= PAGE)
			write_page(w, t);
		leave_slice(w);
		now = now_ns();
		pct = atomic_load(&w->throttle);
		if (pct && now - run_start >= THROTTLE_RUN_NS) {
			throttle_sleep(w, pct);
			tokens = 0; /* the throttle removes writes, it does not defer them */
			last = run_start = now_ns();
			next = last + SLICE_NS;
			continue;
		}
		if (next <= now) {
			next = now + SLICE_NS; /* behind (a slow write): no burst of slices */
		} else {
			struct timespec ts = ts_of(next);

			while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
				;
			next += SLICE_NS;
		}
	}
	return NULL;
}

int wl_start(wl *w)
{
	int rc;

	if (!w)
		return -EINVAL;
	if (w->started || w->writers)
		return -EALREADY;
	if (!w->rate)
		return 0; /* idle: nothing writes, so no thread to wake */
	if (!(w->writers = calloc(w->nthreads, sizeof(*w->writers))))
		return -ENOMEM;
	atomic_store(&w->written, 0);
	for (uint32_t i = 0; i < w->nthreads; i++) {
		writer *t = &w->writers[i];

		t->w = w;
		t->rate = (double)w->rate / w->nthreads;
		rng_seed(&t->r, w->seed, 7 + i);
		if ((rc = -pthread_create(&t->th, NULL, writer_main, t))) {
			wl_stop(w);
			return rc;
		}
		w->started++;
	}
	return 0;
}

int wl_pause(wl *w)
{
	if (!w)
		return -EINVAL;
	pthread_mutex_lock(&w->mu);
	w->paused = 1;
	atomic_store(&w->brake, 1);
	while (w->active)
		pthread_cond_wait(&w->idle_cv, &w->mu);
	pthread_mutex_unlock(&w->mu);
	return 0;
}

void wl_resume(wl *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	w->paused = 0;
	atomic_store(&w->brake, w->stop);
	pthread_cond_broadcast(&w->run_cv);
	pthread_mutex_unlock(&w->mu);
}

void wl_throttle(wl *w, uint32_t pct)
{
	if (!w)
		return;
	atomic_store(&w->throttle, pct > 99 ? 99u : pct);
	/* Wake throttle sleeps so a lower value takes effect at once. */
	pthread_mutex_lock(&w->mu);
	pthread_cond_broadcast(&w->run_cv);
	pthread_mutex_unlock(&w->mu);
}

void wl_stop(wl *w)
{
	if (!w || !w->sync_ok)
		return;
	pthread_mutex_lock(&w->mu);
	w->stop = 1;
	atomic_store(&w->brake, 1);
	pthread_cond_broadcast(&w->run_cv);
	pthread_mutex_unlock(&w->mu);
	for (uint32_t i = 0; i < w->started; i++)
		pthread_join(w->writers[i].th, NULL);
	w->started = 0;
	free(w->writers);
	w->writers = NULL;
	pthread_mutex_lock(&w->mu);
	w->stop = 0; /* wl_start may run again */
	atomic_store(&w->brake, w->paused);
	pthread_mutex_unlock(&w->mu);
}

void wl_free(wl *w)
{
	if (!w)
		return;
	wl_stop(w);
	if (w->sync_ok) {
		pthread_cond_destroy(&w->idle_cv);
		pthread_cond_destroy(&w->run_cv);
		pthread_mutex_destroy(&w->mu);
	}
	if (w->base)
		munmap(w->base, (size_t)w->size);
	free(w->log);
	free(w->pool);
	free(w);
}

void *wl_base(const wl *w)
{
	return w ? w->base : NULL;
}

uint64_t wl_size(const wl *w)
{
	return w ? w->size : 0;
}

uint64_t wl_pages_written(const wl *w)
{
	return w ? atomic_load_explicit(&((struct wl *)w)->written, memory_order_relaxed) : 0;
}

void wl_fill_info(const wl *w, wl_fill_stats *out)
{
	if (out)
		*out = w ? w->fill : (wl_fill_stats){0};
}

/* ---- dirty log --------------------------------------------------------- */

int wl_dirty_log(wl *w, uint64_t *bitmap, uint64_t pages, uint32_t page_size)
{
	uint64_t ratio;

	if (!w || !bitmap || page_size < PAGE || (page_size & (page_size - 1)))
		return -EINVAL;
	if (!w->log)
		return -ENODATA;
	ratio = page_size / PAGE;
	if (pages != (w->pages + ratio - 1) / ratio)
		return -EINVAL;
	for (uint64_t i = 0; i < w->log_words; i++) {
		/* acquire: pairs with the writers' release, the bit comes
		 * after the page's bytes. */
		uint64_t v = atomic_exchange_explicit(&w->log[i], 0, memory_order_acquire);

		if (ratio == 1) {
			bitmap[i] |= v;
			continue;
		}
		while (v) {
			uint64_t p = (i * 64 + lm__ctz64(v)) / ratio;

			bitmap[p / 64] |= 1ull << (p % 64);
			v &= v - 1;
		}
	}
	return 0;
}

/* ---- the writers' state (device state) ---------------------------------- */

#define WL_STATE_MAGIC 0x4c4d574cu /* "LMWL" */
#define WL_STATE_HDR 32u           /* magic, version, threads, seed, written, reserved */

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

size_t wl_state_size(const wl *w)
{
	return WL_STATE_HDR + 32u * (w ? w->nthreads : 0);
}

int wl_save_state(wl *w, uint8_t *buf, size_t cap)
{
	size_t n = wl_state_size(w);

	if (!w || cap < n)
		return -EINVAL;
	/* Paused: no writer moves its generator or the count meanwhile. */
	pthread_mutex_lock(&w->mu);
	put64(buf, (uint64_t)WL_STATE_MAGIC << 32 | 1u << 16 | w->nthreads);
	put64(buf + 8, w->seed);
	put64(buf + 16, atomic_load(&w->written));
	put64(buf + 24, 0);
	for (uint32_t i = 0; i < w->nthreads; i++) {
		rng r;
		/* Writers not started (idle workload) would start seeded. */
		if (i < w->started)
			r = w->writers[i].r;
		else
			rng_seed(&r, w->seed, 7 + i);
		for (int k = 0; k < 4; k++)
			put64(buf + WL_STATE_HDR + 32u * i + 8u * (unsigned)k, r.s[k]);
	}
	pthread_mutex_unlock(&w->mu);
	return (int)n;
}

int wl_check_state(const uint8_t *buf, size_t len, uint64_t seed, uint32_t threads,
		   uint64_t *written, char *why, size_t cap)
{
	uint64_t h;

	if (len < WL_STATE_HDR) {
		snprintf(why, cap, "writer state of %zu bytes, below its %u-byte header", len, WL_STATE_HDR);
		return -EINVAL;
	}
	h = get64(buf);
	if (h >> 32 != WL_STATE_MAGIC || (h >> 16 & 0xffff) != 1 || get64(buf + 24)) {
		snprintf(why, cap, "not a writer state (header 0x%016llx)", (unsigned long long)h);
		return -EINVAL;
	}
	if ((h & 0xffff) != threads || len != WL_STATE_HDR + 32u * threads) {
		snprintf(why, cap, "writer state of %llu writers in %zu bytes, expected %u writers",
			 (unsigned long long)(h & 0xffff), len, threads);
		return -EINVAL;
	}
	if (get64(buf + 8) != seed) {
		snprintf(why, cap, "writer state seeded %llu, the workload %llu",
			 (unsigned long long)get64(buf + 8), (unsigned long long)seed);
		return -EINVAL;
	}
	for (uint32_t i = 0; i < threads; i++) {
		const uint8_t *g = buf + WL_STATE_HDR + 32u * i;
		if (!(get64(g) | get64(g + 8) | get64(g + 16) | get64(g + 24))) {
			snprintf(why, cap, "writer %u has no generator state", i);
			return -EINVAL;
		}
	}
	*written = get64(buf + 16);
	return 0;
}
