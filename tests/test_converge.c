/*
 * Convergence from measured rates and the switchover model (src/sender/
 * converge.c) end to end over loopback, with the workload of
 * tests/live_harness.h. The slow link is the sender's own max_bandwidth
 * (8 MiB/s: 2048 pages a second), which paces every round but the last
 * copy; writer threads dirty pages faster than that:
 *
 *  1. computed throttle (the default): a workload that out-dirties the link
 *     four times over converges within 8 rounds (max_rounds 8, on_limit
 *     fail: success is the proof), with the throttle applied, recorded in
 *     the stats and set back to 0; both dirty sources;
 *  2. a milder out-dirtying workload in computed and in step mode (QEMU's
 *     20, +10): both converge, the step mode in its steps;
 *  3. a workload that converges on its own (its first round's expected
 *     downtime is over the limit, but the rounds shrink): never throttled;
 *     the 2x workload told the switchover may count on 16x the paced rate
 *     (switchover_bandwidth): round one's estimate lower and the throttle
 *     no higher than untold, side by side;
 *  4. in every run: the downtime stays under the limit, and under the
 *     estimate made at the switchover decision plus LM__SLACK_MS (the one
 *     cost the model cannot measure before the pause: the pause callback,
 *     plus a scheduler slice on a shared machine); the fixed part of the
 *     estimate is there and within it.
 *
 * Outcomes only: no assertion depends on how fast anything runs. The rates
 * are set so the outcomes hold over a wide range of machine speeds: the
 * link, not the CPU, is the limit, also under the sanitizers.
 * LM_TEST_VERBOSE=1 prints every round's progress.
 */
#include <math.h>

#include "live_harness.h"
#include "sender/converge.h"

#define LINK (8 * MIB)     /* max_bandwidth: 2048 pages a second */
#define LIMIT_MS 100       /* the downtime limit of every run */
/* The pause callback (the test's waits for one in-flight 4 KiB write) and a
 * scheduler slice or two on 2 shared cores: not in the estimate. Under the
 * sanitizers every thread switch and wake-up costs more (TSan: 28 ms
 * against an estimate of 8 once in a CI run here, the test alone). */
#define LM__SLACK_MS (LM_TEST_SLOW ? 30 : 15)

typedef struct conv_case {
	const char *name;
	uint64_t len;         /* region bytes */
	uint32_t ws;          /* working set, pages */
	double rate;          /* page writes per second, unthrottled */
	lm_throttle_mode mode;
	uint32_t max_rounds;
	lm_dirty_source src;
	uint64_t sw_bw;       /* lm_live_config.switchover_bandwidth (0: measured) */
} conv_case;

typedef struct conv_result {
	int ok;
	uint32_t rounds, throttle_max, throttle_calls;
	uint32_t throttles[MAX_THROTTLES];
	uint64_t first_expected_ms;
} conv_result;

static uint64_t first_expected; /* round 1's expected downtime (progress) */

static void conv_progress(void *user, const lm_stats *st)
{
	cb_progress(user, st);
	if (st->rounds == 1)
		first_expected = st->expected_downtime_ms;
	/* The throttle in effect is the one last applied, never above the
	 * highest, and 0 until one is. */
	CHECK(st->throttle_now_pct <= st->throttle_pct);
	CHECK_EQ(st->throttle_now_pct, ((workload *)user)->pct);
}

/* The switchover model's promises, for any completed run. */
static void check_model(const run *R)
{
	const lm_stats *st = &R->ss;

	CHECK(st->downtime_ms <= R->lc.downtime_limit_ms);
	CHECK(st->downtime_expected_ms <= R->lc.downtime_limit_ms);
	CHECK(st->downtime_ms <= st->downtime_expected_ms + LM__SLACK_MS);
	CHECK(st->downtime_expected_ms > 0); /* a switchover was decided */
	CHECK(st->downtime_fixed_ms <= st->downtime_expected_ms); /* may round to 0 on loopback */
	CHECK_EQ(st->expected_downtime_ms, st->downtime_expected_ms); /* decided on the last */
	CHECK_EQ(st->throttle_now_pct, 0);                             /* set back */
	if (st->downtime_ms > st->downtime_expected_ms + LM__SLACK_MS ||
	    st->downtime_ms > R->lc.downtime_limit_ms)
		fprintf(stderr, "%s: downtime %llu ms, expected %llu (fixed %llu), limit %u\n",
			R->label, (unsigned long long)st->downtime_ms,
			(unsigned long long)st->downtime_expected_ms,
			(unsigned long long)st->downtime_fixed_ms, R->lc.downtime_limit_ms);
}

static conv_result run_case(const conv_case *k)
{
	conv_result res = {0};
	char label[128];
	workload w;
	run R;
	uint8_t *mem = map_anon(k->len);
	uint32_t maxp = 0;

	snprintf(label, sizeof(label), "%s, %s, %s", k->name,
		 k->mode == LM_THROTTLE_STEP ? "step" : "computed", src_name(k->src));
	memset(&R, 0, sizeof(R));
	R.label = label;
	first_expected = 0;
	wl_init(&w, 4096);
	CHECK_EQ(wl_add(&w, "ram", mem, k->len), 0);
	w.track = k->src == LM_DIRTY_CALLBACK;
	CHECK_EQ(wl_setup(&w, k->ws, 1), 0);
	R.sc = sender_cfg(LM_CODEC_NONE, 4096, 2);
	R.sc.packet_pages = 32; /* rounds of a few hundred pages still fill packets */
	R.lc = live_cfg(&w, k->src);
	R.lc.progress = conv_progress;
	R.lc.throttle = cb_throttle;
	R.lc.throttle_mode = k->mode;
	R.lc.max_bandwidth = LINK;
	R.lc.downtime_limit_ms = LIMIT_MS;
	R.lc.max_rounds = k->max_rounds;
	R.lc.on_limit = LM_LIMIT_FAIL;
	R.lc.switchover_bandwidth = k->sw_bw;
	if (run_start(&w, &R) == 0) {
		wl_start(&w, k->rate, 2);
		run_migrate(&w, &R);
		wl_pause(&w);
		run_collect(&w, &R);
		check_done(&w, &R);
		check_model(&R);
		CHECK(w.throttle_calls <= MAX_THROTTLES);
		for (int i = 0; i < w.throttle_calls && i < MAX_THROTTLES; i++) {
			CHECK(w.throttles[i] <= 99);
			maxp = w.throttles[i] > maxp ? w.throttles[i] : maxp;
		}
		CHECK_EQ(R.ss.throttle_pct, maxp); /* the highest applied, recorded */
		if (w.throttle_calls >= 1 && w.throttle_calls <= MAX_THROTTLES)
			CHECK_EQ(w.throttles[w.throttle_calls - 1], 0); /* set back at the end */
		CHECK_EQ(w.pct, 0);
		res.ok = R.rc == 0;
		res.rounds = R.ss.rounds;
		res.throttle_max = maxp;
		res.throttle_calls = (uint32_t)w.throttle_calls;
		memcpy(res.throttles, w.throttles, sizeof(res.throttles));
		res.first_expected_ms = first_expected;
		printf("    throttles:");
		for (int i = 0; i < w.throttle_calls && i < MAX_THROTTLES; i++)
			printf(" %u", w.throttles[i]);
		printf("%s; expected downtime %llu ms (fixed %llu), round 1's %llu ms\n",
		       w.throttle_calls ? "" : " none", (unsigned long long)R.ss.downtime_expected_ms,
		       (unsigned long long)R.ss.downtime_fixed_ms, (unsigned long long)first_expected);
	}
	run_report(&R, &w);
	run_free(&R);
	wl_free(&w);
	munmap(mem, k->len);
	return res;
}

/* 1. Four times what the link drains, over a working set the size of the
 * region: each round dirties all of it unthrottled, so it converges only
 * throttled, within the 8 rounds allowed. */
static void test_outdirty_computed(lm_dirty_source src)
{
	conv_case k = {"out-dirty 4x the link", 8 * MIB, 2048, 8192, LM_THROTTLE_COMPUTED, 8, src, 0};
	conv_result r = run_case(&k);

	CHECK(r.ok);
	CHECK(r.rounds <= 9); /* 8 pre-copy rounds at most, then the switchover's sync */
	CHECK(r.throttle_max > 0);
	CHECK(r.throttle_calls >= 2); /* applied, then set back */
	CHECK(r.first_expected_ms > LIMIT_MS);
}

/* 2. Twice the link over 512 pages: computed and QEMU's steps. */
static void test_modes(lm_dirty_source src)
{
	conv_case k = {"out-dirty 2x the link", 8 * MIB, 512, 4096, LM_THROTTLE_COMPUTED, 40, src, 0};
	conv_result c, s;

	c = run_case(&k);
	k.mode = LM_THROTTLE_STEP;
	s = run_case(&k);
	CHECK(c.ok && s.ok);
	CHECK(c.throttle_max > 0);
	CHECK(s.throttle_max >= 20);
	/* QEMU's steps: 20, +10 each, then 0 once migrated. */
	for (uint32_t i = 0; i + 1 < s.throttle_calls && i < MAX_THROTTLES; i++)
		CHECK_EQ(s.throttles[i], i ? s.throttles[i - 1] + 10 : 20);
	printf("    rounds: computed %u, step %u\n", c.rounds, s.rounds);
}

/* 2b. The same workload told that the switchover may count on 16x the paced
 * rate (switchover_bandwidth: the last copy is not paced), beside it
 * untold: round one's estimate is lower and the throttle no higher (on
 * this machine none at all; how much lower depends on the channels' CPU,
 * which caps the rate at U), and the downtime still keeps the limit and
 * the estimate (check_model). */
static void test_switchover_bandwidth(lm_dirty_source src)
{
	conv_case k = {"out-dirty 2x, switchover at 16x", 8 * MIB, 512, 4096, LM_THROTTLE_COMPUTED,
		       40, src, 16 * LINK};
	conv_case k0 = k;
	conv_result r, r0;

	k0.name = "out-dirty 2x, measured switchover";
	k0.sw_bw = 0;
	r0 = run_case(&k0);
	r = run_case(&k);
	CHECK(r.ok && r0.ok);
	CHECK(r.first_expected_ms < r0.first_expected_ms);
	CHECK(r.throttle_max <= r0.throttle_max);
	printf("    told / untold: round 1's estimate %llu / %llu ms, throttle %u / %u%%\n",
	       (unsigned long long)r.first_expected_ms, (unsigned long long)r0.first_expected_ms,
	       r.throttle_max, r0.throttle_max);
}

/* 3. A quarter of the link over 2048 pages: round 1's dirty set does not
 * fit the limit, but each round's is smaller than the last. */
static void test_converges_alone(lm_dirty_source src)
{
	conv_case k = {"converges alone", 8 * MIB, 2048, 512, LM_THROTTLE_COMPUTED, 30, src, 0};
	conv_result r = run_case(&k);

	CHECK(r.ok);
	CHECK(r.first_expected_ms > LIMIT_MS); /* it took more than one round */
	CHECK_EQ(r.throttle_calls, 0);
	CHECK_EQ(r.throttle_max, 0);
}

/* The drain rate B (src/sender/converge.c): a round of four packets or more
 * measures it; an unpaced tiny round's rate is mostly its latency, a lower
 * bound, which raises a figure it exceeds (a bandwidth limit lifted: small
 * rounds must not keep the paced figure for ever) and never lowers one. A
 * paced tiny round's burst is the token bucket's credit: it changes
 * nothing. */
static void drain_rate_model(void)
{
	lm__conv_setup c = {.page_size = 4096, .limit_ms = 300, .total_bytes = 8 * MIB,
			    .hash_threads = 1, .hash_rate = 4e9};
	lm__conv_round big = {.dirty = 100, .pages = 1024, .dirty_us = 100000, .secs = 8.0,
			      .page_bytes = 4.0 * MIB, .packet_bytes = 512 * 1024,
			      .sync_us = 1000, .scan_us = 1000, .paced = 1};
	lm__conv_round tiny = big;
	lm__conv m;

	lm__conv_init(&m, &c);
	lm__conv_end_round(&m, &big); /* paced: 0.5 MiB/s */
	CHECK(m.bw > 0.49 * MIB && m.bw < 0.51 * MIB);
	tiny.pages = 100;
	tiny.page_bytes = 100 * 4096.0;
	tiny.secs = 0.004; /* 100 MB/s in a burst, still paced */
	lm__conv_end_round(&m, &tiny);
	CHECK(m.bw > 0.49 * MIB && m.bw < 0.51 * MIB);
	tiny.paced = 0; /* the limit lifted */
	lm__conv_end_round(&m, &tiny);
	CHECK(m.bw > 90e6);
	tiny.secs = 0.04; /* 10 MB/s: latency, not the link */
	lm__conv_end_round(&m, &tiny);
	CHECK(m.bw > 90e6);
	{ /* zero pages alone cost next to nothing on the wire: no rate */
		lm__conv_round zeros = tiny;
		zeros.page_bytes = 0;
		zeros.zero_bytes = 1000 * 4096.0;
		zeros.secs = 0.001; /* 4 GB/s */
		lm__conv_end_round(&m, &zeros);
		CHECK(m.bw < 200e6);
	}
	big.secs = 0.4; /* a big round measures it again, lower too */
	lm__conv_end_round(&m, &big);
	CHECK(m.bw > 9.9 * MIB && m.bw < 10.1 * MIB);
}

/* The device state in the switchover's fixed part: its expected bytes at
 * the wire rate of the round that measured the drain rate, with the last
 * copy's margin; at the page rate where the wire rate is not known. A set
 * that fits the 300 ms limit without it does not with it. */
static void device_state_model(void)
{
	lm__conv_setup c = {.page_size = 4096, .limit_ms = 300, .total_bytes = 8 * MIB,
			    .hash_threads = 1, .hash_rate = 4e9};
	/* 40 MiB of pages in 1 s, 20 MiB on the wire (compressed). */
	lm__conv_round r = {.dirty = 2000, .pages = 10240, .dirty_us = 1000000, .secs = 1.0,
			    .page_bytes = 40.0 * MIB, .packet_bytes = 512 * 1024,
			    .sync_us = 1000, .scan_us = 1000, .wire_bytes = 20.0 * MIB};
	lm__conv none, dev, nowire;
	lm__conv_est e0, e1, e2;

	lm__conv_init(&none, &c);
	lm__conv_end_round(&none, &r);
	e0 = lm__conv_expected(&none);
	r.dev_bytes = 4 * MIB;
	lm__conv_init(&dev, &c);
	lm__conv_end_round(&dev, &r);
	e1 = lm__conv_expected(&dev);
	r.wire_bytes = 0;
	lm__conv_init(&nowire, &c);
	lm__conv_end_round(&nowire, &r);
	e2 = lm__conv_expected(&nowire);
	printf("device state model: 4 MiB at 20 MiB/s on the wire: fixed %.1f -> %.1f ms, total "
	       "%.1f -> %.1f ms; at the 40 MiB/s page rate %.1f ms\n",
	       e0.fixed_ms, e1.fixed_ms, e0.total_ms, e1.total_ms, e2.fixed_ms);
	CHECK(fabs(e1.fixed_ms - e0.fixed_ms - 4.0 / 20 * 1.2 * 1e3) < 0.5);
	CHECK(fabs(e2.fixed_ms - e0.fixed_ms - 4.0 / 40 * 1.2 * 1e3) < 0.5);
	CHECK(fabs(e1.var_ms - e0.var_ms) < 1e-9);
	CHECK(e0.total_ms <= 300 && e1.total_ms > 300);
}

/* switchover_bandwidth U in the model: the last copy's pages at U times the
 * round's page bytes per wire byte, at most what the channels' CPU
 * compresses, the device state at U; the rounds' own rate B stays as
 * measured (the next round still takes as long). */
static void switchover_bandwidth_model(void)
{
	lm__conv_setup c = {.page_size = 4096, .limit_ms = 300, .total_bytes = 8 * MIB,
			    .hash_threads = 1, .hash_rate = 4e9};
	/* Paced: 10 MiB of pages in 1 s, 5 MiB on the wire (compressed). */
	lm__conv_round r = {.dirty = 2000, .pages = 2560, .dirty_us = 1000000, .secs = 1.0,
			    .page_bytes = 10.0 * MIB, .packet_bytes = 512 * 1024,
			    .sync_us = 1000, .scan_us = 1000, .paced = 1,
			    .wire_bytes = 5.0 * MIB, .dev_bytes = 4 * MIB};
	lm__conv meas, told, raw;
	lm__conv_est e0, e1, e2;
	double d;

	lm__conv_init(&meas, &c);
	lm__conv_end_round(&meas, &r);
	e0 = lm__conv_expected(&meas);
	c.sw_bw = 100.0 * MIB;
	lm__conv_init(&told, &c);
	lm__conv_end_round(&told, &r);
	e1 = lm__conv_expected(&told);
	r.wire_bytes = 0; /* no wire rate: the pages at U as they are */
	lm__conv_init(&raw, &c);
	lm__conv_end_round(&raw, &r);
	e2 = lm__conv_expected(&raw);
	d = 2000 + told.rate_now * 1e-3; /* D': the set and what a scan's time dirties */
	printf("switchover bandwidth model: measured %.0f ms (fixed %.0f), at 100 MiB/s %.1f ms "
	       "(fixed %.1f), without a wire rate %.1f ms\n",
	       e0.total_ms, e0.fixed_ms, e1.total_ms, e1.fixed_ms, e2.total_ms);
	CHECK(fabs(told.bw - 10.0 * MIB) < 1); /* B itself unchanged */
	CHECK(fabs(e1.var_ms - d * 4096 / (100.0 * MIB * 2) * 1.2 * 1e3) < 0.01);
	CHECK(fabs(e2.var_ms - d * 4096 / (100.0 * MIB) * 1.2 * 1e3) < 0.01);
	CHECK(fabs((e0.fixed_ms - e1.fixed_ms) - (4.0 / 5 - 4.0 / 100) * 1.2 * 1e3) < 0.5);
	CHECK(e0.total_ms > 300 && e1.total_ms <= 300);
	{ /* The channels' CPU caps the pages' rate at U: 10 ns a page byte in
	   * the round on one core is 100 MB/s of pages, not U's 200 MiB/s;
	   * and never below the round's own B (a cap under it: B). */
		lm__conv_setup c3 = c;
		lm__conv_round r3 = r;
		lm__conv k;

		c3.cores = 1;
		r3.wire_bytes = 5.0 * MIB;
		r3.cpu_ns = 10.0 * r3.page_bytes;
		lm__conv_init(&k, &c3);
		lm__conv_end_round(&k, &r3);
		CHECK(fabs(lm__conv_expected(&k).var_ms - d * 4096 / 1e8 * 1.2 * 1e3) < 0.01);
		r3.cpu_ns = 1000.0 * r3.page_bytes; /* 1 MB/s: below B's 10 MiB/s */
		lm__conv_init(&k, &c3);
		lm__conv_end_round(&k, &r3);
		CHECK(fabs(lm__conv_expected(&k).var_ms - d * 4096 / (10.0 * MIB) * 1.2 * 1e3) < 0.01);
		c3.cores = 0; /* not known: no cap */
		lm__conv_init(&k, &c3);
		lm__conv_end_round(&k, &r3);
		CHECK(fabs(lm__conv_expected(&k).var_ms - e1.var_ms) < 0.01);
	}
	{ /* The throttle: two paced rounds that do not shrink, no device state
	   * (whose 0.96 s at the paced rate alone would leave no throttle able
	   * to help): the measured rate needs one, U none. */
		lm__conv_setup c2 = c;
		lm__conv m2, t2;
		uint32_t pm, pt;

		r.dev_bytes = 0;
		r.wire_bytes = 5.0 * MIB;
		c2.sw_bw = 0;
		lm__conv_init(&m2, &c2);
		c2.sw_bw = 100.0 * MIB;
		lm__conv_init(&t2, &c2);
		for (int i = 0; i < 2; i++) {
			lm__conv_end_round(&m2, &r);
			lm__conv_end_round(&t2, &r);
		}
		pm = lm__conv_throttle(&m2, 10, 0, 0, 99);
		pt = lm__conv_throttle(&t2, 10, 0, 0, 99);
		printf("  throttle: measured %u%%, at 100 MiB/s %u%%\n", pm, pt);
		CHECK(pm > 0);
		CHECK_EQ(pt, 0);
		CHECK(lm__conv_converges(&t2, 10, 0) && !lm__conv_converges(&m2, 10, 0));
	}
}

int main(int argc, char **argv)
{
	lm_dirty_source srcs[2] = {LM_DIRTY_CALLBACK, LM_DIRTY_UFFD_WP};
	uint64_t t0 = now_us();
	int nsrc;

	if (argc == 3 && strcmp(argv[1], "--rx-child") == 0)
		return rx_child_main(atoi(argv[2]));
	drain_rate_model();
	device_state_model();
	switchover_bandwidth_model();
	corpus_init();
	verbose = getenv("LM_TEST_VERBOSE") && atoi(getenv("LM_TEST_VERBOSE")) > 0;
	have_uffd = lm_dirty_probe(uffd_why, sizeof(uffd_why)) == 0;
	nsrc = have_uffd ? 2 : 1;
	if (!have_uffd)
		printf("uffd-wp dirty tracking unavailable (%s): uffd cases skipped\n", uffd_why);
	for (int i = 0; i < nsrc; i++)
		test_outdirty_computed(srcs[i]);
	test_modes(srcs[nsrc - 1]);
	test_switchover_bandwidth(srcs[nsrc - 1]);
	test_converges_alone(srcs[nsrc - 1]);
	printf("total %.1f s\n", (double)(now_us() - t0) / 1e6);
	TEST_DONE("test_converge");
}
