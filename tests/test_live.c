/*
 * Live migration (lm_sender_migrate) end to end over loopback. The sender
 * runs here; the receiver runs in a thread (alloc_regions, 127.0.0.1:0), or
 * in a child process (this program re-executed with --rx-child) when the
 * test kills the destination.
 *
 * The workload is part of the test (tests/live_harness.h, shared with
 * test_converge): writer threads write whole 4 KiB units
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

#include "live_harness.h"

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
	st.size = sizeof(st);
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
	rc.size = sizeof(rc);
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
	ss.size = sizeof(ss);
	memset(&rs, 0, sizeof(rs));
	rs.size = sizeof(rs);
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
	rcfg.size = sizeof(rcfg);
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
	lc.size = sizeof(lc);
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
	R.lc.size = sizeof(R.lc);
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
