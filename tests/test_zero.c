/*
 * test_zero.c - tests for src/zero.c (zero-page detection).
 *
 * Every implementation that the CPU supports is tested ("portable" always,
 * "avx2" when available), each forced through src/cpu.h's override.
 */
#include "zero.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cpu.h"

static const char *g_impl = "default";

/* check.h's CHECK, with the case (implementation, length, offset) described
 * on stderr when it fails: the first 50 failures. */
#define ZCHECK(cond, ...)                                              \
	do {                                                           \
		int zok_ = (cond) ? 1 : 0;                             \
		CHECK(zok_);                                           \
		if (!zok_ && lm_test_failures <= 50) {                 \
			fprintf(stderr, "  [%s] %s: ", g_impl, #cond); \
			fprintf(stderr, __VA_ARGS__);                  \
			fputc('\n', stderr);                           \
		}                                                      \
	} while (0)

/* Deterministic PRNG (xorshift64*). */
static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void)
{
	g_rng ^= g_rng >> 12;
	g_rng ^= g_rng << 25;
	g_rng ^= g_rng >> 27;
	return g_rng * 0x2545F4914F6CDD1Dull;
}
static size_t rnd_below(size_t n)
{
	return n ? (size_t)(rnd() % n) : 0;
}

static bool ref_is_zero(const unsigned char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

/* Buffer layout: [GUARD bytes 0xFF][64 alignment slack][len][GUARD 0xFF]. */
#define GUARD  128
#define MAXLEN 65536

static unsigned char *g_base; /* 64-byte aligned */
static size_t g_size;

/* Prepare buf so that [p, p+len) is zero and everything else is 0xFF.
 * p = g_base + GUARD + off. */
static unsigned char *setup(size_t off, size_t len)
{
	unsigned char *p = g_base + GUARD + off;
	size_t lo = GUARD; /* bytes before p that we touch */
	size_t hi = GUARD; /* bytes after p+len */
	memset(p - lo, 0xFF, lo);
	memset(p, 0, len);
	memset(p + len, 0xFF, hi);
	return p;
}

/* --- all-zero buffers, every length 0..1024 plus 4096/65536, offsets 0..63 -- */
static void test_all_zero(void)
{
	static const size_t extra[] = {4095, 4096, 4097, 8192, 65535, 65536};
	for (size_t off = 0; off < 64; off++) {
		for (size_t len = 0; len <= 1024; len++) {
			unsigned char *p = setup(off, len);
			ZCHECK(lm__is_zero(p, len), "all-zero len=%zu off=%zu", len, off);
		}
		for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++) {
			size_t len = extra[i];
			unsigned char *p = setup(off, len);
			ZCHECK(lm__is_zero(p, len), "all-zero len=%zu off=%zu", len, off);
		}
	}
	/* len 0 at a non-zero byte is still "all zero". */
	unsigned char *p = setup(0, 0);
	ZCHECK(p[0] == 0xFF && lm__is_zero(p, 0), "len=0 on non-zero byte");
}

/* Byte value for a non-zero marker at pos: cycles through all bit positions
 * and includes 0x80/0xFF-style high values. */
static unsigned char marker(size_t pos)
{
	unsigned char v = (unsigned char)(1u << (pos & 7));
	return (pos % 11 == 0) ? 0xFF : v;
}

static void check_one_pos(unsigned char *p, size_t len, size_t off, size_t pos)
{
	p[pos] = marker(pos);
	ZCHECK(!lm__is_zero(p, len), "non-zero byte 0x%02x at pos=%zu len=%zu off=%zu", p[pos], pos,
	       len, off);
	p[pos] = 0;
}

/* --- single non-zero byte at every position, small/medium lengths -------- */
static void test_single_byte_every_pos(void)
{
	/* Every length 1..160 at every offset 0..63, every position. */
	for (size_t off = 0; off < 64; off++) {
		for (size_t len = 1; len <= 160; len++) {
			unsigned char *p = setup(off, len);
			for (size_t pos = 0; pos < len; pos++)
				check_one_pos(p, len, off, pos);
			/* the buffer is zero again afterwards */
			ZCHECK(lm__is_zero(p, len), "restored len=%zu off=%zu", len, off);
		}
	}
	/* Selected larger lengths at selected offsets, every position. */
	static const size_t lens[] = {191, 192, 193, 255, 256,  257,  383,  384,
				      385, 511, 512, 513, 1000, 1023, 1024, 1025};
	static const size_t offs[] = {0, 1, 3, 7, 8, 15, 16, 17, 31, 32, 33, 48, 63};
	for (size_t i = 0; i < sizeof offs / sizeof offs[0]; i++) {
		for (size_t j = 0; j < sizeof lens / sizeof lens[0]; j++) {
			size_t off = offs[i], len = lens[j];
			unsigned char *p = setup(off, len);
			for (size_t pos = 0; pos < len; pos++)
				check_one_pos(p, len, off, pos);
		}
	}
}

/* Is pos "around a boundary" of multiple m, relative to p or to the absolute
 * address? */
static bool near_boundary(const unsigned char *p, size_t pos, size_t m)
{
	size_t r = pos % m;
	size_t a = (size_t)((uintptr_t)(p + pos) % m);
	return r == 0 || r == 1 || r == m - 1 || a == 0 || a == 1 || a == m - 1;
}

/* --- large lengths: dense sampling ---------------------------------------- */
static void test_single_byte_sampled(void)
{
	static const size_t lens[] = {4095, 4096, 4097, 8191, 8192, 65536};
	static const size_t offs[] = {0, 1, 8, 31, 32, 33, 63};
	for (size_t i = 0; i < sizeof offs / sizeof offs[0]; i++) {
		for (size_t j = 0; j < sizeof lens / sizeof lens[0]; j++) {
			size_t off = offs[i], len = lens[j];
			unsigned char *p = setup(off, len);
			/* For the 64 KiB case sample 64/128-byte boundaries only (plus the
			 * first and last 1 KiB densely); smaller ones use all boundaries
			 * around multiples of 8 (which include 16/32/64/128). */
			size_t m = len > 8192 ? 64 : 8;
			for (size_t pos = 0; pos < len; pos++) {
				bool take = pos < 1024 || pos >= len - 1024 ||
					    near_boundary(p, pos, m) || near_boundary(p, pos, 128);
				if (take)
					check_one_pos(p, len, off, pos);
			}
			for (int k = 0; k < 256; k++)
				check_one_pos(p, len, off, rnd_below(len));
			check_one_pos(p, len, off, 0);
			check_one_pos(p, len, off, len - 1);
			ZCHECK(lm__is_zero(p, len), "restored len=%zu off=%zu", len, off);
		}
	}
}

/* --- guard bytes: non-zero bytes just outside [p, p+len) do not matter ---- */
static void test_guards(void)
{
	for (size_t off = 0; off < 64; off++) {
		for (size_t len = 0; len <= 300; len++) {
			unsigned char *p = setup(off, len);
			/* setup() already put 0xFF in every guard byte; try other values
			 * right next to the range too. */
			static const unsigned char vals[] = {0x01, 0x80, 0xFF};
			for (size_t v = 0; v < sizeof vals; v++) {
				p[-1] = vals[v];
				p[len] = vals[v];
				ZCHECK(lm__is_zero(p, len), "guards 0x%02x len=%zu off=%zu",
				       vals[v], len, off);
			}
			if (len > 0) {
				p[0] = 1;
				ZCHECK(!lm__is_zero(p, len), "first byte len=%zu off=%zu", len,
				       off);
				p[0] = 0;
				p[len - 1] = 0x80;
				ZCHECK(!lm__is_zero(p, len), "last byte len=%zu off=%zu", len, off);
				p[len - 1] = 0;
			}
		}
	}
}

/* --- exact-size heap buffers: any read past the end trips ASan ------------ */
static void test_tight_alloc(void)
{
	for (size_t len = 0; len <= 300; len++) {
		for (size_t off = 0; off < 64; off += (len < 70 ? 1 : 7)) {
			unsigned char *b = calloc(1, off + len + 1);
			if (!b) {
				ZCHECK(b != NULL, "calloc");
				return;
			}
			/* b[off+len] exists only to keep calloc(0) sane; scan stops
			 * before it.  Put a non-zero there so over-reads show up as
			 * wrong results even without ASan. */
			b[off + len] = 0xFF;
			if (off > 0)
				b[off - 1] = 0xFF;
			ZCHECK(lm__is_zero(b + off, len), "tight zero len=%zu off=%zu", len, off);
			if (len > 0) {
				b[off + len - 1] = 2;
				ZCHECK(!lm__is_zero(b + off, len), "tight last len=%zu off=%zu",
				       len, off);
			}
			free(b);
		}
	}
	/* Exactly-sized allocations with no trailing byte at all. */
	for (size_t len = 1; len <= 300; len++) {
		unsigned char *b = calloc(1, len);
		if (!b) {
			ZCHECK(b != NULL, "calloc");
			return;
		}
		ZCHECK(lm__is_zero(b, len), "exact zero len=%zu", len);
		b[len - 1] = 4;
		ZCHECK(!lm__is_zero(b, len), "exact last len=%zu", len);
		free(b);
	}
}

/* --- implementations agree on random buffers ------------------------------ */
struct impl_list {
	const char *names[4];
	int n;
};

static void test_random_agree(const struct impl_list *impls)
{
	for (int iter = 0; iter < 20000; iter++) {
		size_t len;
		switch (rnd_below(4)) {
		case 0: len = rnd_below(64); break;
		case 1: len = rnd_below(512); break;
		case 2: len = rnd_below(8192); break;
		default: len = rnd_below(MAXLEN + 1); break;
		}
		size_t off = rnd_below(64);
		unsigned char *p = setup(off, len);
		/* Mostly-zero with 0..3 random non-zero bytes, or fully random. */
		size_t nz = rnd_below(5);
		if (nz == 4 && len > 0) {
			for (size_t i = 0; i < len; i++)
				p[i] = (unsigned char)(rnd() & 0x0F ? 0 : rnd());
		} else {
			for (size_t k = 0; k < nz && len > 0; k++)
				p[rnd_below(len)] = (unsigned char)rnd();
		}
		bool ref = ref_is_zero(p, len);
		bool first = false;
		for (int i = 0; i < impls->n; i++) {
			g_impl = impls->names[i];
			ZCHECK(lm__zero_force(impls->names[i]) == 0, "force");
			bool r = lm__is_zero(p, len);
			ZCHECK(r == ref, "random len=%zu off=%zu: got %d expected %d", len, off, r,
			       ref);
			if (i == 0)
				first = r;
			else
				ZCHECK(r == first, "impls disagree len=%zu off=%zu (%s vs %s)", len,
				       off, impls->names[0], impls->names[i]);
		}
	}
	g_impl = "default";
}

/* --- thread-safety smoke test of lazy init -------------------------------- */
static void *thread_main(void *arg)
{
	unsigned char *buf = arg;
	size_t bad = 0;
	for (int i = 0; i < 2000; i++) {
		if ((i & 15) == 0)
			lm__zero_init();
		if (!lm__is_zero(buf, 4096))
			bad++;
		if (lm__is_zero(buf + 4096, 4096))
			bad++;
	}
	return (void *)(uintptr_t)bad;
}

static void test_threads(void)
{
	unsigned char *buf = calloc(1, 8192);
	if (!buf) {
		ZCHECK(buf != NULL, "calloc");
		return;
	}
	buf[4096 + 4095] = 1;
	pthread_t t[4];
	int started = 0;
	for (int i = 0; i < 4; i++) {
		int rc = pthread_create(&t[i], NULL, thread_main, buf);
		ZCHECK(rc == 0, "pthread_create: %s", strerror(rc));
		if (rc != 0)
			break;
		started++;
	}
	for (int i = 0; i < started; i++) {
		void *res = NULL;
		pthread_join(t[i], &res);
		ZCHECK((uintptr_t)res == 0, "thread %d saw %zu wrong results", i,
		       (size_t)(uintptr_t)res);
	}
	free(buf);
}

static void run_impl_tests(const char *name)
{
	g_impl = name;
	int rc = lm__zero_force(name);
	ZCHECK(rc == 0, "lm__zero_force(\"%s\") = %d", name, rc);
	if (rc != 0)
		return;
	ZCHECK(strcmp(lm__zero_impl(), name) == 0, "lm__zero_impl() = %s", lm__zero_impl());
	int before = lm_test_checks;
	test_all_zero();
	test_single_byte_every_pos();
	test_single_byte_sampled();
	test_guards();
	test_tight_alloc();
	printf("test_zero: [%s] %d checks\n", name, lm_test_checks - before);
	g_impl = "default";
}

int main(void)
{
	g_size = GUARD + 64 + MAXLEN + 64 + GUARD;
	g_size = (g_size + 63) & ~(size_t)63;
	g_base = aligned_alloc(64, g_size);
	if (!g_base) {
		fprintf(stderr, "test_zero: out of memory\n");
		return 1;
	}

	/* Lazy init from several threads at once, before any explicit init. */
	test_threads();

	lm__zero_init();
	lm__zero_init(); /* idempotent */
	const char *detected = lm__zero_impl();
	ZCHECK(strcmp(detected, "avx2") == 0 || strcmp(detected, "portable") == 0,
	       "lm__zero_impl() = %s", detected);
	printf("test_zero: detected implementation: %s\n", detected);

	/* Which implementations does this CPU have? */
	struct impl_list impls = {.names = {"portable"}, .n = 1};
#if LM_CPU_X86 /* the builds with an avx2 variant; detected here on its own */
	__builtin_cpu_init();
	bool cpu_avx2 = __builtin_cpu_supports("avx2") != 0;
	const char *why = "CPU does not support AVX2";
#else
	bool cpu_avx2 = false;
	const char *why = "not an x86-64 build";
#endif
	int rc = lm__zero_force("avx2");
	ZCHECK(cpu_avx2 ? rc == 0 : rc == -ENOTSUP, "lm__zero_force(avx2) = %d (cpu_avx2=%d)", rc,
	       cpu_avx2);
	ZCHECK(strcmp(detected, cpu_avx2 ? "avx2" : "portable") == 0,
	       "detection chose %s, cpu_avx2=%d", detected, cpu_avx2);
	if (rc == 0)
		impls.names[impls.n++] = "avx2";
	else
		printf("test_zero: [avx2] skipped: %s\n", why);

	ZCHECK(lm__zero_force("bogus") == -ENOTSUP, "unknown name");
	ZCHECK(lm__zero_force("") == -ENOTSUP, "empty name");
	ZCHECK(lm__zero_force(NULL) == -ENOTSUP, "NULL name");
	/* A failed force leaves the previous choice in place. */
	ZCHECK(lm__zero_force("portable") == 0, "force portable");
	ZCHECK(lm__zero_force("bogus") == -ENOTSUP, "unknown name");
	ZCHECK(strcmp(lm__zero_impl(), "portable") == 0, "failed force changed impl");
	/* lm__zero_init after a force must not undo it. */
	lm__zero_init();
	ZCHECK(strcmp(lm__zero_impl(), "portable") == 0, "init undid force");

	for (int i = 0; i < impls.n; i++)
		run_impl_tests(impls.names[i]);

	test_random_agree(&impls);

	free(g_base);
	TEST_DONE("test_zero");
}
