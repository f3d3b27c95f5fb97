/*
 * test_dirty.c - the dirty-page tracker (src/dirty.c): both sources.
 *
 * uffd-wp tests run only when lm_dirty_probe() says the kernel can do it;
 * otherwise they are reported as skipped with the probe's reason (set
 * LM_TEST_REQUIRE_UFFD=1 to make that a failure). The callback tests always
 * run. Expected bits are computed here page by page from the system page
 * each write lands in, independently of dirty.c's arithmetic. Nothing
 * depends on timing: the concurrent test checks properties that hold for
 * every interleaving.
 */
#include "dirty.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "uffd_foreign.h"

#define MiB (1024u * 1024u)

static uint64_t sys_ps;

/* ---- helpers ------------------------------------------------------------------ */

static uint8_t *map_anon(uint64_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	CHECK(p != MAP_FAILED);
	return p == MAP_FAILED ? NULL : p;
}

/* A tracker over up to 8 regions with a bitmap each. */
typedef struct tk {
	lm__dirty *d;
	uint32_t n, ps;
	lm__dirty_region r[8];
	uint64_t *bm[8];
	lm__err e;
} tk;

static int tk_new(tk *t, lm_dirty_source src, lm_dirty_log_cb cb, void *user)
{
	memset(&t->e, 0, sizeof(t->e));
	for (uint32_t i = 0; i < t->n; i++) {
		uint64_t w = lm__dirty_words(t->r[i].len, t->ps);

		t->bm[i] = calloc(w ? w : 1, sizeof(uint64_t));
		CHECK(t->bm[i] != NULL);
	}
	return lm__dirty_new(&t->d, src, cb, user, t->r, t->n, t->ps, &t->e);
}

static void tk_free(tk *t)
{
	lm__dirty_free(t->d);
	t->d = NULL;
	for (uint32_t i = 0; i < t->n; i++) {
		free(t->bm[i]);
		t->bm[i] = NULL;
	}
}

static void tk_clear(tk *t)
{
	for (uint32_t i = 0; i < t->n; i++)
		memset(t->bm[i], 0, lm__dirty_words(t->r[i].len, t->ps) * sizeof(uint64_t));
}

/* Clears the bitmaps and syncs; returns the count (UINT64_MAX on error). */
static uint64_t tk_sync(tk *t)
{
	uint64_t count = UINT64_MAX;
	int rc;

	tk_clear(t);
	rc = lm__dirty_sync(t->d, t->bm, &count, &t->e);
	CHECK_EQ(rc, 0);
	if (rc)
		fprintf(stderr, "  sync: %s\n", t->e.msg);
	return rc ? UINT64_MAX : count;
}

/* Compares region i's bitmap with exp (one byte per page) and checks that
 * the bits past the last page are clear. Prints the first mismatches. */
static void tk_expect(const tk *t, uint32_t i, const uint8_t *exp, const char *what)
{
	uint64_t pages = lm__dirty_pages(t->r[i].len, t->ps);
	uint64_t words = lm__dirty_words(t->r[i].len, t->ps);
	uint64_t bad = 0;

	for (uint64_t k = 0; k < pages; k++) {
		int got = (int)(t->bm[i][k / 64] >> (k % 64) & 1);

		if (got != exp[k] && bad++ < 5)
			fprintf(stderr, "  %s: region %u page %llu: got %d, expected %d\n", what, i,
				(unsigned long long)k, got, exp[k]);
	}
	CHECK_EQ(bad, 0);
	if (pages % 64)
		CHECK_EQ(t->bm[i][words - 1] >> (pages % 64), 0);
}

/* Marks in exp (region rb..rb+len at page size ps) every migration page the
 * system page holding addr overlaps: what a write at addr must report. */
static void expect_write(uint8_t *exp, uintptr_t rb, uint64_t len, uint32_t ps, uintptr_t addr)
{
	uintptr_t sp = addr & ~(uintptr_t)(sys_ps - 1), se = sp + sys_ps;
	uint64_t pages = lm__dirty_pages(len, ps);

	for (uint64_t k = 0; k < pages; k++) {
		uintptr_t a = rb + k * ps, b = a + ps < rb + len ? a + ps : rb + len;

		if (a < se && sp < b)
			exp[k] = 1;
	}
}

static uint64_t exp_count(const uint8_t *exp, uint64_t pages)
{
	uint64_t c = 0;

	for (uint64_t k = 0; k < pages; k++)
		c += exp[k];
	return c;
}

static void touch(volatile uint8_t *p)
{
	*p = (uint8_t)(*p + 1);
}

static uint8_t peek(const volatile uint8_t *p)
{
	return *p;
}

static int nop_log(void *user, uint32_t region, uint64_t *bitmap, uint64_t pages)
{
	(void)user;
	(void)region;
	(void)bitmap;
	(void)pages;
	return 0;
}

/* ---- (a) probe ------------------------------------------------------------------ */

static int test_probe(void)
{
	char why[256] = "unset";
	int rc = lm_dirty_probe(why, sizeof(why));
	tk t = {.n = 0, .ps = 4096};

	if (rc == 0) {
		CHECK_EQ(why[0], 0);
		printf("probe: uffd-wp async + PAGEMAP_SCAN available\n");
	} else {
		CHECK(rc < 0);
		CHECK(why[0] != 0 && strcmp(why, "unset") != 0);
		printf("probe: %d (%s): %s\n", rc, lm_strerror(rc), why);
		/* An explicit request fails with the same reason; AUTO without
		 * a callback too. */
		CHECK_EQ(tk_new(&t, LM_DIRTY_UFFD_WP, NULL, NULL), LM_EFEATURE);
		CHECK(strstr(t.e.msg, why) != NULL);
		tk_free(&t);
		CHECK_EQ(tk_new(&t, LM_DIRTY_AUTO, NULL, NULL), LM_EFEATURE);
		tk_free(&t);
	}
	/* NULL why and cap 0 are fine. */
	CHECK_EQ(lm_dirty_probe(NULL, 0), rc);
	CHECK_EQ(lm_dirty_probe(why, 0), rc);
	return rc;
}

/* The failure paths, on a kernel that has everything: a child process
 * whose seccomp filter makes one system call fail as an older or locked
 * down kernel would. The child's checks are reported by its exit status. */
enum { FAKE_UFFD_ENOSYS, FAKE_UFFD_EPERM, FAKE_API_EINVAL, FAKE_SCAN_ENOTTY };

static int fake_install(int which)
{
	/* The low half of ioctl's request (the kernel compares all 64 bits
	 * of args[1], but these requests fit in 32). */
	const uint32_t arg1 = offsetof(struct seccomp_data, args[1])
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
			      + 4
#endif
		;
	uint32_t nr = which <= FAKE_UFFD_EPERM ? SYS_userfaultfd : SYS_ioctl;
	uint32_t req = which == FAKE_API_EINVAL ? (uint32_t)UFFDIO_API : (uint32_t)PAGEMAP_SCAN;
	uint32_t err = which == FAKE_UFFD_ENOSYS ? ENOSYS
		       : which == FAKE_UFFD_EPERM ? EPERM
		       : which == FAKE_API_EINVAL ? EINVAL
						  : ENOTTY;
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr, 0, 4),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_ioctl, 0, 2), /* userfaultfd: fail */
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, arg1),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, req, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | err),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {.len = sizeof(f) / sizeof(f[0]), .filter = f};

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return -1;
	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0 ? -1 : 0;
}

/* In the child: the probe's code and reason, and what new() makes of it. */
static void fake_child(int which)
{
	static const char *const want[] = {
		[FAKE_UFFD_ENOSYS] = "ENOSYS",
		[FAKE_UFFD_EPERM] = "vm.unprivileged_userfaultfd",
		[FAKE_API_EINVAL] = "lacks UFFD_FEATURE_WP_ASYNC",
		[FAKE_SCAN_ENOTTY] = "PAGEMAP_SCAN not supported (ENOTTY",
	};
	char why[256] = "";
	uint8_t *m = map_anon(1 * MiB);
	tk t = {.n = 1, .ps = 4096};
	int rc;

	if (fake_install(which) != 0) {
		printf("fake %d: seccomp unavailable, not tested\n", which);
		_exit(0);
	}
	rc = lm_dirty_probe(why, sizeof(why));
	printf("fake %d: probe %d: %s\n", which, rc, why);
	CHECK_EQ(rc, which == FAKE_UFFD_EPERM ? -EPERM : LM_EFEATURE);
	CHECK(strstr(why, want[which]) != NULL);
	t.r[0] = (lm__dirty_region){m, 1 * MiB};
	CHECK_EQ(tk_new(&t, LM_DIRTY_UFFD_WP, nop_log, NULL), LM_EFEATURE);
	CHECK(strstr(t.e.msg, want[which]) != NULL);
	tk_free(&t);
	CHECK_EQ(tk_new(&t, LM_DIRTY_AUTO, NULL, NULL), LM_EFEATURE);
	CHECK(strstr(t.e.msg, want[which]) != NULL);
	tk_free(&t);
	CHECK_EQ(tk_new(&t, LM_DIRTY_AUTO, nop_log, NULL), 0);
	if (t.d) {
		CHECK_EQ(lm__dirty_kind(t.d), LM_DIRTY_CALLBACK);
		CHECK(strstr(t.e.msg, "callback") && strstr(t.e.msg, want[which]));
	}
	tk_free(&t);
	fflush(stdout);
	_exit(lm_test_failures ? 1 : 0);
}

static void test_probe_failures(void)
{
	for (int which = FAKE_UFFD_ENOSYS; which <= FAKE_SCAN_ENOTTY; which++) {
		int status = -1;
		pid_t pid;

		fflush(stdout);
		pid = fork();
		CHECK(pid >= 0);
		if (pid == 0)
			fake_child(which);
		if (pid < 0)
			return;
		CHECK_EQ(waitpid(pid, &status, 0), pid);
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
}

/* ---- (b) uffd basics ------------------------------------------------------------- */

static const uint64_t set_a[] = {0, 1, 7, 100, 2047, 2048, 4095, 4096, 8191, 12345, 16383};
static const uint64_t set_b[] = {2, 3, 8, 99, 101, 5000, 9999, 16000, 16382};

static void write_set(uint8_t *base, const uint64_t *set, size_t n, uint8_t *exp, uint64_t len)
{
	for (size_t j = 0; j < n; j++) {
		touch(base + set[j] * 4096 + 123);
		expect_write(exp, (uintptr_t)base, len, 4096, (uintptr_t)base + set[j] * 4096 + 123);
	}
}

static void test_uffd_basic(void)
{
	const uint64_t len = 64ull * MiB, pages = len / 4096;
	uint8_t *base = map_anon(len);
	uint8_t *exp = calloc(pages, 1);
	tk t = {.n = 1, .ps = 4096};
	uint64_t c;

	if (!base || !exp)
		goto out;
	/* Populated before arming: every 7th page of the first 8 MiB (set_a
	 * and set_b hit both populated and never touched pages). */
	for (uint64_t k = 0; k < 2048; k += 7)
		base[k * 4096] = 1;
	t.r[0] = (lm__dirty_region){base, len};
	CHECK_EQ(tk_new(&t, LM_DIRTY_UFFD_WP, NULL, NULL), 0);
	if (!t.d)
		goto out;
	CHECK_EQ(lm__dirty_kind(t.d), LM_DIRTY_UFFD_WP);
	/* Sync before start is a state error. */
	CHECK_EQ(lm__dirty_sync(t.d, t.bm, &c, &t.e), LM_ESTATE);
	touch(base + 5 * 4096); /* before start: not reported */
	CHECK_EQ(lm__dirty_start(t.d, &t.e), 0);
	CHECK_EQ(tk_sync(&t), 0);
	tk_expect(&t, 0, exp, "after start");

	write_set(base, set_a, sizeof(set_a) / sizeof(set_a[0]), exp, len);
	CHECK_EQ(tk_sync(&t), exp_count(exp, pages));
	CHECK_EQ(exp_count(exp, pages), sizeof(set_a) / sizeof(set_a[0]));
	tk_expect(&t, 0, exp, "set a");

	/* Re-armed: nothing new. */
	memset(exp, 0, pages);
	CHECK_EQ(tk_sync(&t), 0);
	tk_expect(&t, 0, exp, "after set a");

	/* Reads do not dirty: populated, written-before and never touched. */
	unsigned sum = 0;
	for (uint64_t k = 0; k < pages; k += 3)
		sum += peek(base + k * 4096);
	CHECK(sum > 0);
	CHECK_EQ(tk_sync(&t), 0);
	tk_expect(&t, 0, exp, "after reads");

	write_set(base, set_b, sizeof(set_b) / sizeof(set_b[0]), exp, len);
	CHECK_EQ(tk_sync(&t), sizeof(set_b) / sizeof(set_b[0]));
	tk_expect(&t, 0, exp, "set b");

	/* Bits already in the bitmap are kept and counted. */
	memset(exp, 0, pages);
	touch(base + 77 * 4096);
	tk_clear(&t);
	t.bm[0][0] = 1; /* page 0, from an earlier round */
	CHECK_EQ(lm__dirty_sync(t.d, t.bm, &c, &t.e), 0);
	CHECK_EQ(c, 2);
	CHECK_EQ(t.bm[0][0], 1);
	CHECK_EQ(t.bm[0][1], 1ull << (77 - 64));

	/* More separate runs than one PAGEMAP_SCAN's vector holds (512):
	 * every other page, 8192 runs, continued from walk_end. */
	for (uint64_t k = 0; k < pages; k += 2) {
		touch(base + k * 4096 + 4000);
		exp[k] = 1;
	}
	CHECK_EQ(tk_sync(&t), pages / 2);
	tk_expect(&t, 0, exp, "every other page");
	memset(exp, 0, pages);

	/* A write by the kernel on the process's behalf (read(2) into the
	 * region) is tracked too, and does not fail under user-mode-only. */
	int pfd[2];
	CHECK_EQ(pipe(pfd), 0);
	CHECK_EQ(write(pfd[1], "hello", 5), 5);
	CHECK_EQ(read(pfd[0], base + 3000 * 4096 + 10, 5), 5);
	close(pfd[0]);
	close(pfd[1]);
	CHECK(memcmp(base + 3000 * 4096 + 10, "hello", 5) == 0);
	exp[3000] = 1;
	CHECK_EQ(tk_sync(&t), 1);
	tk_expect(&t, 0, exp, "read(2)");
	exp[3000] = 0;

	/* MADV_DONTNEED of written pages changes their content (to zeros):
	 * reported. */
	touch(base + 40 * 4096);
	touch(base + 41 * 4096);
	touch(base + 42 * 4096);
	exp[40] = exp[41] = exp[42] = 1;
	CHECK_EQ(tk_sync(&t), 3);
	tk_expect(&t, 0, exp, "before MADV_DONTNEED");
	CHECK_EQ(madvise(base + 40 * 4096, 3 * 4096, MADV_DONTNEED), 0);
	CHECK_EQ(tk_sync(&t), 3);
	tk_expect(&t, 0, exp, "MADV_DONTNEED");
	CHECK_EQ(peek(base + 41 * 4096), 0);

	lm__dirty_stop(t.d);
	CHECK_EQ(lm__dirty_sync(t.d, t.bm, &c, &t.e), LM_ESTATE);
	CHECK_EQ(lm__dirty_start(t.d, &t.e), LM_ESTATE);
out:
	tk_free(&t);
	free(exp);
	if (base)
		munmap(base, len);
}

/* The same memory at 64 KiB migration pages: 16 system pages each. */
static void test_uffd_big_pages(void)
{
	const uint64_t len = 8ull * MiB;
	const uint32_t ps = 65536;
	uint8_t *base = map_anon(len);
	uint8_t exp[128] = {0};
	tk t = {.n = 1, .ps = ps};

	if (!base)
		return;
	t.r[0] = (lm__dirty_region){base, len};
	CHECK_EQ(tk_new(&t, LM_DIRTY_UFFD_WP, NULL, NULL), 0);
	if (!t.d)
		goto out;
	CHECK_EQ(lm__dirty_start(t.d, &t.e), 0);
	const uint64_t offs[] = {0, 4095, 65535, 65536, 3 * 65536 + 20000, len - 1};
	for (size_t j = 0; j < sizeof(offs) / sizeof(offs[0]); j++) {
		touch(base + offs[j]);
		exp[offs[j] / ps] = 1;
	}
	CHECK_EQ(tk_sync(&t), 4); /* pages 0, 1, 3, 127 */
	tk_expect(&t, 0, exp, "64 KiB pages");
out:
	tk_free(&t);
	munmap(base, len);
}

/* ---- (c) odd sizes and alignment --------------------------------------------------- */

/* One region at map + off of len bytes: each write alone, then all at once. */
static void odd_region(uint8_t *map, uint64_t off, uint64_t len, uint32_t ps)
{
	uint8_t *rb = map + off;
	uint64_t pages = lm__dirty_pages(len, ps);
	uint8_t *exp = calloc(pages, 1), *all = calloc(pages, 1);
	const uint64_t at[] = {0, 1, sys_ps - off % sys_ps - 1, sys_ps - off % sys_ps,
			       ps - 1, ps, 2 * (uint64_t)ps + 5, len - ps, len - 1};
	tk t = {.n = 1, .ps = ps};
	char what[64];

	if (!exp || !all)
		goto out;
	t.r[0] = (lm__dirty_region){rb, len};
	CHECK_EQ(tk_new(&t, LM_DIRTY_UFFD_WP, NULL, NULL), 0);
	if (!t.d)
		goto out;
	CHECK_EQ(lm__dirty_start(t.d, &t.e), 0);
	CHECK_EQ(tk_sync(&t), 0);
	for (size_t j = 0; j < sizeof(at) / sizeof(at[0]); j++) {
		if (at[j] >= len)
			continue;
		memset(exp, 0, pages);
		touch(rb + at[j]);
		expect_write(exp, (uintptr_t)rb, len, ps, (uintptr_t)rb + at[j]);
		expect_write(all, (uintptr_t)rb, len, ps, (uintptr_t)rb + at[j]);
		snprintf(what, sizeof(what), "off %llu len %llu ps %u at %llu",
			 (unsigned long long)off, (unsigned long long)len, ps,
			 (unsigned long long)at[j]);
		CHECK_EQ(tk_sync(&t), exp_count(exp, pages));
		tk_expect(&t, 0, exp, what);
	}
	for (size_t j = 0; j < sizeof(at) / sizeof(at[0]); j++)
		if (at[j] < len)
			touch(rb + at[j]);
	CHECK_EQ(tk_sync(&t), exp_count(all, pages));
	tk_expect(&t, 0, all, "all at once");
	/* Writes just outside the region, inside its first and last system
	 * pages, report the region's edge pages: the kernel only knows system
	 * pages, and over-reporting is safe where missing is not. */
	memset(exp, 0, pages);
	if (off % sys_ps) {
		touch(rb - 1);
		expect_write(exp, (uintptr_t)rb, len, ps, (uintptr_t)rb - 1);
	}
	CHECK_EQ(tk_sync(&t), exp_count(exp, pages));
	tk_expect(&t, 0, exp, "byte before the region");
out:
	tk_free(&t);
	free(exp);
	free(all);
}

static void test_uffd_odd(void)
{
	const uint64_t maplen = 2 * MiB;
	uint8_t *map = map_anon(maplen);
	const uint32_t sizes[] = {4096, 16384, 65536};

	if (!map)
		return;
	for (size_t s = 0; s < 3; s++) {
		odd_region(map, 100, 5 * 16384 + 777, sizes[s]);
		odd_region(map, 4096 + 3000, 3 * 65536 + 1, sizes[s]);
		odd_region(map, 8192, 100, sizes[s]); /* one partial page */
		odd_region(map, 4000, 200, sizes[s]); /* straddles two system pages */
	}
	munmap(map, maplen);
}

/* Several regions: two that share a system page (a write there belongs to
 * both, and scanning one must not eat the other's report), one in another
 * mapping, one of zero length. */
static void test_uffd_multi(void)
{
	uint8_t *m1 = map_anon(1 * MiB), *m2 = map_anon(1 * MiB);
	uint8_t *exp[4] = {0};
	tk t = {.n = 4, .ps = 4096};

	if (!m1 || !m2)
		goto out;
	t.r[0] = (lm__dirty_region){m1 + 100, 10000};   /* [100, 10100) */
	t.r[1] = (lm__dirty_region){m1 + 10100, 5000};  /* [10100, 15100): shares [8192, 12288) */
	t.r[2] = (lm__dirty_region){m2 + 50000, 300000};
	t.r[3] = (lm__dirty_region){m1 + 500000, 0};
	for (int i = 0; i < 4; i++) {
		exp[i] = calloc(lm__dirty_pages(t.r[i].len, 4096) + 1, 1);
		if (!exp[i])
			goto out;
	}
	CHECK_EQ(tk_new(&t, LM_DIRTY_UFFD_WP, NULL, NULL), 0);
	if (!t.d)
		goto out;
	CHECK_EQ(lm__dirty_start(t.d, &t.e), 0);
	CHECK_EQ(tk_sync(&t), 0);

	/* Round 1: only the shared system page, written inside region 1. */
	const uintptr_t shared[] = {(uintptr_t)m1 + 10150};
	/* Round 2: one write in every region's first and last page. */
	const uintptr_t spread[] = {(uintptr_t)m1 + 150, (uintptr_t)m1 + 10099,
				    (uintptr_t)m1 + 10100, (uintptr_t)m1 + 15099,
				    (uintptr_t)m2 + 50000, (uintptr_t)m2 + 50000 + 299999};
	const uintptr_t *rounds[2] = {shared, spread};
	const size_t nw[2] = {1, sizeof(spread) / sizeof(spread[0])};
	for (int r = 0; r < 2; r++) {
		uint64_t total = 0;

		for (int i = 0; i < 3; i++)
			memset(exp[i], 0, lm__dirty_pages(t.r[i].len, 4096));
		for (size_t j = 0; j < nw[r]; j++) {
			touch((uint8_t *)rounds[r][j]);
			for (int i = 0; i < 3; i++)
				expect_write(exp[i], (uintptr_t)t.r[i].base, t.r[i].len, 4096,
					     rounds[r][j]);
		}
		for (int i = 0; i < 3; i++)
			total += exp_count(exp[i], lm__dirty_pages(t.r[i].len, 4096));
		CHECK_EQ(tk_sync(&t), total);
		for (int i = 0; i < 3; i++)
			tk_expect(&t, (uint32_t)i, exp[i], r ? "multi: spread" : "multi: shared page");
		if (r == 0) /* both neighbours, and nothing else */
			CHECK(exp[0][2] && exp[1][0] && total == 3);
	}
	CHECK_EQ(tk_sync(&t), 0);
out:
	tk_free(&t);
	for (int i = 0; i < 4; i++)
		free(exp[i]);
	if (m1)
		munmap(m1, 1 * MiB);
	if (m2)
		munmap(m2, 1 * MiB);
}

/* ---- (d) a concurrent writer --------------------------------------------------------- */

#define CW_PAGES 4096u
#define CW_SYNCS 40u
#define CW_LOG (1u << 20)
#define CW_PER_EPOCH 16384u /* writes per sync at most: the log never fills */

typedef struct cw_entry {
	uint32_t page;
	uint32_t epoch; /* syncs returned before this write began */
} cw_entry;

typedef struct cw {
	uint64_t *mem; /* CW_PAGES pages */
	_Atomic uint32_t epoch;
	_Atomic uint32_t logged;
	_Atomic int stop;
	cw_entry *log;
} cw;

static void *cw_writer(void *arg)
{
	cw *w = arg;
	uint64_t x = 0x9E3779B97F4A7C15ull, seq = 0;
	uint32_t epoch = 0, in_epoch = 0;

	while (!atomic_load(&w->stop)) {
		uint32_t n = atomic_load_explicit(&w->logged, memory_order_relaxed);

		if (n == CW_LOG)
			break;
		/* Pacing by count, not time: a bounded number of writes
		 * between two syncs, so that every sync races some. */
		if (atomic_load(&w->epoch) != epoch) {
			epoch = atomic_load(&w->epoch);
			in_epoch = 0;
		}
		if (in_epoch == CW_PER_EPOCH) {
			sched_yield();
			continue;
		}
		in_epoch++;
		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		uint32_t page = (uint32_t)((x * 0x2545F4914F6CDD1Dull) >> 40) % CW_PAGES;
		w->log[n].page = page;
		w->log[n].epoch = atomic_load(&w->epoch);
		seq++;
		__atomic_store_n(&w->mem[page * 512 + seq % 512], seq, __ATOMIC_RELAXED);
		atomic_store(&w->logged, n + 1);
	}
	return NULL;
}

/* Copies the pages set in bm from mem to shadow, word by word with atomic
 * loads: the writer may be writing them. */
static void cw_copy(uint64_t *shadow, uint64_t *mem, const uint64_t *bm)
{
	for (uint32_t p = 0; p < CW_PAGES; p++)
		if (bm[p / 64] >> (p % 64) & 1)
			for (uint32_t k = 0; k < 512; k++)
				shadow[p * 512 + k] = __atomic_load_n(&mem[p * 512 + k], __ATOMIC_RELAXED);
}

/* A pre-copy in miniature: round one copies everything, each sync copies
 * what it reports. Checks: (1) a write logged with epoch e (begun after
 * sync e returned) is reported by one of the syncs e+1..last; (2) no sync
 * reports a page that no write with an earlier epoch touched; (3) the copy
 * equals the memory at the end. */
static void test_uffd_concurrent(void)
{
	const uint64_t len = (uint64_t)CW_PAGES * 4096;
	uint64_t *bms[CW_SYNCS + 2] = {0};
	uint64_t *shadow = NULL;
	uint32_t *first_epoch = NULL;
	uint32_t n, missed = 0, spurious = 0;
	uint64_t c;
	cw w = {0};
	tk t = {.n = 1, .ps = 4096};
	pthread_t th;
	int started = 0;

	w.mem = (uint64_t *)map_anon(len);
	shadow = calloc(len, 1);
	w.log = calloc(CW_LOG, sizeof(*w.log));
	first_epoch = malloc(CW_PAGES * sizeof(uint32_t));
	for (uint32_t s = 0; s < CW_SYNCS + 2; s++) {
		bms[s] = calloc(CW_PAGES / 64, sizeof(uint64_t));
		if (!bms[s])
			goto out;
	}
	if (!w.mem || !shadow || !w.log || !first_epoch)
		goto out;
	memset(bms[0], 0xff, CW_PAGES / 8); /* round one: every page */
	t.r[0] = (lm__dirty_region){(uint8_t *)w.mem, len};
	CHECK_EQ(tk_new(&t, LM_DIRTY_UFFD_WP, NULL, NULL), 0);
	if (!t.d)
		goto out;
	CHECK_EQ(lm__dirty_start(t.d, &t.e), 0);
	if (pthread_create(&th, NULL, cw_writer, &w) != 0) {
		CHECK(0);
		goto out;
	}
	started = 1;
	cw_copy(shadow, w.mem, bms[0]);
	for (uint32_t s = 1, mark = 0; s <= CW_SYNCS; s++) {
		/* Let the writer make progress between syncs, so the syncs
		 * do race it; correctness never depends on how much. It can:
		 * its budget was renewed when the epoch moved after mark. */
		while (atomic_load(&w.logged) < mark + 64 && atomic_load(&w.logged) < CW_LOG)
			sched_yield();
		CHECK_EQ(lm__dirty_sync(t.d, &bms[s], &c, &t.e), 0);
		mark = atomic_load(&w.logged);
		atomic_store(&w.epoch, s);
		cw_copy(shadow, w.mem, bms[s]);
	}
	atomic_store(&w.stop, 1);
	pthread_join(th, NULL);
	started = 0;
	CHECK_EQ(lm__dirty_sync(t.d, &bms[CW_SYNCS + 1], &c, &t.e), 0);
	cw_copy(shadow, w.mem, bms[CW_SYNCS + 1]);

	n = atomic_load(&w.logged);
	for (uint32_t p = 0; p < CW_PAGES; p++)
		first_epoch[p] = UINT32_MAX;
	for (uint32_t j = 0; j < n; j++) {
		const cw_entry *l = &w.log[j];
		int found = 0;

		if (l->epoch < first_epoch[l->page])
			first_epoch[l->page] = l->epoch;
		for (uint32_t s = l->epoch + 1; s <= CW_SYNCS + 1 && !found; s++)
			found = (int)(bms[s][l->page / 64] >> (l->page % 64) & 1);
		if (!found && missed++ < 5)
			fprintf(stderr, "  write %u to page %u (epoch %u) never reported\n", j,
				l->page, l->epoch);
	}
	for (uint32_t s = 1; s <= CW_SYNCS + 1; s++)
		for (uint32_t p = 0; p < CW_PAGES; p++)
			if ((bms[s][p / 64] >> (p % 64) & 1) && first_epoch[p] >= s && spurious++ < 5)
				fprintf(stderr, "  sync %u reported page %u, first written at epoch %u\n",
					s, p, first_epoch[p]);
	printf("concurrent: %u writes across %u syncs\n", n, CW_SYNCS);
	CHECK(n > CW_SYNCS * 64 || n == CW_LOG);
	CHECK_EQ(missed, 0);
	CHECK_EQ(spurious, 0);
	CHECK(memcmp(shadow, w.mem, len) == 0);
out:
	if (started) {
		atomic_store(&w.stop, 1);
		pthread_join(th, NULL);
	}
	tk_free(&t);
	for (uint32_t s = 0; s < CW_SYNCS + 2; s++)
		free(bms[s]);
	free(first_epoch);
	free(shadow);
	free(w.log);
	if (w.mem)
		munmap(w.mem, len);
}

/* ---- (e) callback source ------------------------------------------------------------- */

typedef struct cbs {
	uint32_t calls[8];
	uint64_t pages[8];
	uint64_t pattern[8][4]; /* written as-is, garbage past the end included */
	int fail_region;        /* -1: never */
	int fail_code;
} cbs;

static int cb_log(void *user, uint32_t region, uint64_t *bitmap, uint64_t pages)
{
	cbs *c = user;
	uint64_t words = (pages + 63) / 64;

	if (region >= 8)
		return LM_EINVAL;
	c->calls[region]++;
	c->pages[region] = pages;
	/* The bitmap arrives zeroed. */
	for (uint64_t w = 0; w < words; w++)
		if (bitmap[w])
			return -EFAULT;
	if ((int)region == c->fail_region)
		return c->fail_code;
	for (uint64_t w = 0; w < words && w < 4; w++)
		bitmap[w] = c->pattern[region][w];
	return 0;
}

static void test_callback(void)
{
	static uint8_t mem[4 * 65536];
	cbs c = {.fail_region = -1};
	tk t = {.n = 4, .ps = 4096};
	uint64_t count = 0;

	t.r[0] = (lm__dirty_region){mem, 100 * 4096 + 1}; /* 101 pages */
	t.r[1] = (lm__dirty_region){mem, 64 * 4096};      /* exactly one word */
	t.r[2] = (lm__dirty_region){mem, 0};
	t.r[3] = (lm__dirty_region){mem + 7, 1}; /* one page */
	c.pattern[0][0] = 0x8000000000000001ull;
	c.pattern[0][1] = ~0ull; /* pages 64..100 set, 101..127 garbage */
	c.pattern[1][0] = 0x00f0f0f0f0f0f0f0ull;
	c.pattern[3][0] = ~0ull; /* page 0 set, the rest garbage */

	CHECK_EQ(tk_new(&t, LM_DIRTY_CALLBACK, cb_log, &c), 0);
	if (!t.d)
		goto out;
	CHECK_EQ(lm__dirty_kind(t.d), LM_DIRTY_CALLBACK);
	CHECK_EQ(lm__dirty_sync(t.d, t.bm, &count, &t.e), LM_ESTATE);
	CHECK_EQ(lm__dirty_start(t.d, &t.e), 0);
	for (int i = 0; i < 4; i++)
		CHECK_EQ(c.calls[i], 1);
	CHECK_EQ(c.pages[0], 101);
	CHECK_EQ(c.pages[1], 64);
	CHECK_EQ(c.pages[2], 0);
	CHECK_EQ(c.pages[3], 1);

	t.bm[1][0] = 1; /* an earlier round's bit: kept */
	CHECK_EQ(lm__dirty_sync(t.d, t.bm, &count, &t.e), 0);
	for (int i = 0; i < 4; i++)
		CHECK_EQ(c.calls[i], 2);
	CHECK_EQ(t.bm[0][0], 0x8000000000000001ull);
	CHECK_EQ(t.bm[0][1], (1ull << 37) - 1); /* pages 64..100 */
	CHECK_EQ(t.bm[1][0], 0x00f0f0f0f0f0f0f1ull);
	CHECK_EQ(t.bm[3][0], 1);
	CHECK_EQ(count, 2 + 37 + 28 + 1 + 1);

	/* A failing callback fails the sync and names the region. */
	c.fail_region = 3;
	c.fail_code = -EIO;
	tk_clear(&t);
	CHECK_EQ(lm__dirty_sync(t.d, t.bm, &count, &t.e), -EIO);
	CHECK(strstr(t.e.msg, "region 3") != NULL);
	c.fail_region = 0;
	c.fail_code = LM_EPEER;
	CHECK_EQ(lm__dirty_start(t.d, &t.e), LM_EPEER);
	CHECK(strstr(t.e.msg, "region 0") != NULL);
out:
	tk_free(&t);

	/* Argument errors. */
	t = (tk){.n = 1, .ps = 4096};
	t.r[0] = (lm__dirty_region){mem, sizeof(mem)};
	CHECK_EQ(tk_new(&t, LM_DIRTY_CALLBACK, NULL, NULL), LM_EINVAL);
	CHECK(t.d == NULL);
	tk_free(&t);
	t.ps = 3000;
	CHECK_EQ(tk_new(&t, LM_DIRTY_CALLBACK, cb_log, &c), LM_EINVAL);
	tk_free(&t);
	t.ps = 4096;
	CHECK_EQ(tk_new(&t, (lm_dirty_source)7, cb_log, &c), LM_EINVAL);
	tk_free(&t);
	t.r[0] = (lm__dirty_region){(const uint8_t *)(uintptr_t)(UINT64_MAX - 4096), 8192};
	CHECK_EQ(tk_new(&t, LM_DIRTY_CALLBACK, cb_log, &c), LM_EINVAL);
	tk_free(&t);
	lm__dirty_free(NULL);
	lm__dirty_stop(NULL);
}

/* AUTO: uffd-wp when it can take the regions, else the callback (with the
 * reason left in e), else LM_EFEATURE. */
static void test_auto(int have_uffd)
{
	uint8_t *m = map_anon(1 * MiB);
	tk t = {.n = 2, .ps = 4096};
	int busy = -1;

	if (!m)
		return;
	t.r[0] = (lm__dirty_region){m, 256 * 1024};
	t.r[1] = (lm__dirty_region){m + 512 * 1024, 256 * 1024};
	CHECK_EQ(tk_new(&t, LM_DIRTY_AUTO, nop_log, NULL), 0);
	if (t.d)
		CHECK_EQ(lm__dirty_kind(t.d), have_uffd ? LM_DIRTY_UFFD_WP : LM_DIRTY_CALLBACK);
	tk_free(&t);
	if (!have_uffd)
		goto out;

	/* Region 1 owned by another userfaultfd: UFFDIO_REGISTER says EBUSY. */
	busy = foreign_uffd(m + 512 * 1024, 256 * 1024);
	CHECK(busy >= 0);
	CHECK_EQ(tk_new(&t, LM_DIRTY_AUTO, nop_log, NULL), 0);
	if (t.d) {
		CHECK_EQ(lm__dirty_kind(t.d), LM_DIRTY_CALLBACK);
		CHECK(strstr(t.e.msg, "callback") != NULL);
		CHECK(strstr(t.e.msg, "region 1") != NULL);
		CHECK(strstr(t.e.msg, "EBUSY") != NULL);
		printf("fallback: %s\n", t.e.msg);
	}
	tk_free(&t);
	CHECK_EQ(tk_new(&t, LM_DIRTY_AUTO, NULL, NULL), LM_EFEATURE);
	CHECK(strstr(t.e.msg, "region 1") != NULL);
	tk_free(&t);
	CHECK_EQ(tk_new(&t, LM_DIRTY_UFFD_WP, nop_log, NULL), LM_EFEATURE);
	tk_free(&t);
	/* Region 0 was registered before region 1 failed: it was released,
	 * so a tracker over region 0 alone works. */
	t.n = 1;
	CHECK_EQ(tk_new(&t, LM_DIRTY_UFFD_WP, NULL, NULL), 0);
	tk_free(&t);
	close(busy);

	/* A regular file's MAP_SHARED pages: WP async takes any memory
	 * (Linux 6.7+), and writes through the mapping are tracked. */
	char path[] = "/tmp/test_dirty.XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	if (fd < 0)
		goto out;
	unlink(path);
	CHECK_EQ(ftruncate(fd, 1 * MiB), 0);
	uint8_t *f = mmap(NULL, 1 * MiB, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(f != MAP_FAILED);
	if (f != MAP_FAILED) {
		uint8_t exp[256] = {0};

		t = (tk){.n = 1, .ps = 4096};
		t.r[0] = (lm__dirty_region){f, 1 * MiB};
		CHECK_EQ(tk_new(&t, LM_DIRTY_AUTO, nop_log, NULL), 0);
		if (t.d) {
			CHECK_EQ(lm__dirty_kind(t.d), LM_DIRTY_UFFD_WP);
			CHECK_EQ(lm__dirty_start(t.d, &t.e), 0);
			touch(f + 9 * 4096);
			touch(f + 200 * 4096 + 1);
			exp[9] = exp[200] = 1;
			CHECK_EQ(tk_sync(&t), 2);
			tk_expect(&t, 0, exp, "file MAP_SHARED");
		}
		tk_free(&t);
		munmap(f, 1 * MiB);
	}
	close(fd);
out:
	munmap(m, 1 * MiB);
}

/* ---- (f) free disarms -------------------------------------------------------------------- */

static void test_free_disarms(void)
{
	const uint64_t len = 4 * MiB;
	uint8_t *m = map_anon(len);
	uint8_t exp[1024] = {0};
	tk t = {.n = 1, .ps = 4096};
	int fd;

	if (!m)
		return;
	t.r[0] = (lm__dirty_region){m, len};
	CHECK_EQ(tk_new(&t, LM_DIRTY_UFFD_WP, NULL, NULL), 0);
	if (!t.d)
		goto out;
	CHECK_EQ(lm__dirty_start(t.d, &t.e), 0);
	touch(m + 4096);
	tk_free(&t); /* armed, and page 1 written since */

	/* Writes work, and nothing owns the range any more. */
	memset(m, 0x5a, len);
	CHECK_EQ(m[len - 1], 0x5a);
	fd = foreign_uffd(m, len);
	CHECK(fd >= 0);
	if (fd >= 0)
		close(fd);

	/* A new tracker on the same memory arms and reports afresh. */
	CHECK_EQ(tk_new(&t, LM_DIRTY_UFFD_WP, NULL, NULL), 0);
	if (!t.d)
		goto out;
	CHECK_EQ(lm__dirty_start(t.d, &t.e), 0);
	CHECK_EQ(tk_sync(&t), 0);
	touch(m + 1000 * 4096);
	exp[1000] = 1;
	CHECK_EQ(tk_sync(&t), 1);
	tk_expect(&t, 0, exp, "after re-arm");
out:
	tk_free(&t);
	munmap(m, len);
}

int main(void)
{
	const char *req = getenv("LM_TEST_REQUIRE_UFFD");
	int have_uffd;

	sys_ps = (uint64_t)sysconf(_SC_PAGESIZE);
	have_uffd = test_probe() == 0;
	if (have_uffd) {
		test_uffd_basic();
		test_uffd_big_pages();
		test_uffd_odd();
		test_uffd_multi();
		test_uffd_concurrent();
		test_free_disarms();
	} else {
		printf("SKIP: uffd-wp tests (the probe failed, see above)\n");
		if (req && strcmp(req, "1") == 0)
			CHECK(have_uffd);
	}
	test_callback();
	test_auto(have_uffd);
	if (have_uffd)
		test_probe_failures();
	TEST_DONE("test_dirty");
}
