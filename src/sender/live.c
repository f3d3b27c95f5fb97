/*
 * Live migration (pre-copy) on a connected sender, as QEMU does it:
 *
 *   arm dirty tracking; round 1 sends every page;
 *   loop: sync the dirty set; expected downtime = the switchover's fixed
 *         costs + dirty bytes / bandwidth measured over the last round
 *         (converge.c has the model and its equations); under the limit ->
 *         switch over; at max rounds or max time -> per on_limit; rounds
 *         that would not converge in the rounds and time left -> throttle
 *         the workload (auto-converge: computed from the measured rates,
 *         or QEMU's steps); else send the dirty pages as the next round;
 *   switchover: pause, final sync, send the rest, checksums, wait for the
 *         destination's verified reply. Downtime = pause to that reply.
 *
 * With uffd-wp, a round also rescans while it is sent and skips the pages
 * written again before their turn: they are in the next round anyway.
 *
 * One difference from QEMU: under the limit we still run another round while
 * the dirty set keeps shrinking by a fifth or more and the part of the
 * expected downtime the set costs is above LM__DOWNTIME_FLOOR_MS, because
 * each such round cuts the downtime for a fraction of the total time (a
 * round of d dirty pages lasts about d / bandwidth, the next one has
 * d * dirty rate / bandwidth). Not while throttled: there the throttle made
 * the set fit, and another round would only slow the workload longer. Any
 * failure resumes the workload.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "abi.h"
#include "dirty.h"
#include "hash.h"
#include "sender/converge.h"
#include "sender/sender.h"

/* Below this expected downtime another round gains too little to be worth
 * its fixed costs (a dirty scan, a sync round trip). */
#define LM__DOWNTIME_FLOOR_MS 5

typedef struct live {
	lm_sender *s;
	lm__sender_shape sh;    /* the connected sender's page size, regions... */
	lm_stats st;            /* the live fields of the stats (pushed by push()) */
	lm_live_config c;
	lm__dirty *dirty;
	uint64_t *bm[LM_MAX_REGIONS];   /* the round being sent */
	uint64_t *next[LM_MAX_REGIONS]; /* dirtied since its sync: the next round */
	uint64_t t0;            /* migrate() entered */
	int paused;
	uint32_t throttle;      /* the pct last given to the callback */
	uint32_t high_cnt;      /* step mode: rounds that dirtied over half they sent */
	lm__conv m;             /* the rate model (converge.c) */
	lm__conv_est est;       /* its estimate at the last sync */
	uint64_t prev_dirty;    /* pages the previous round had to send */
	uint64_t d_t0;          /* the current dirty interval began (last sync) */
	/* Counters at the start of the current round. */
	uint64_t r_t0, r_normal, r_zero, r_wire, r_cpu;
} live;

/* The config with its defaults; a mistake's message names the field. */
static int config(lm_live_config *c, const lm_live_config *in, lm__err *e)
{
	if (!in) {
		lm__err_set(e, "cfg is NULL");
		return LM_EINVAL;
	}
	if (lm__abi_in(c, sizeof(*c), in, LM__LIVE_CONFIG_SIZE0, e->msg, sizeof(e->msg)))
		return LM_EABI;
	if (!c->pause || !c->resume) {
		lm__err_set(e, "%s: required (NULL)", !c->pause ? "pause" : "resume");
		return LM_EINVAL;
	}
	if ((unsigned)c->dirty > LM_DIRTY_CALLBACK) {
		lm__err_set(e, "dirty: %d is not an lm_dirty_source (0 auto, 1 uffd-wp, 2 callback)",
			    (int)c->dirty);
		return LM_EINVAL;
	}
	if ((unsigned)c->on_limit > LM_LIMIT_SWITCHOVER) {
		lm__err_set(e, "on_limit: %d is not an lm_limit_action (0 fail, 1 switchover)",
			    (int)c->on_limit);
		return LM_EINVAL;
	}
	if ((unsigned)c->throttle_mode > LM_THROTTLE_STEP) {
		lm__err_set(e, "throttle_mode: %d is not an lm_throttle_mode (0 computed, 1 step)",
			    (int)c->throttle_mode);
		return LM_EINVAL;
	}
	if (c->dirty == LM_DIRTY_CALLBACK && !c->dirty_log) {
		lm__err_set(e, "dirty_log: required (NULL) with dirty = LM_DIRTY_CALLBACK");
		return LM_EINVAL;
	}
	if (!c->downtime_limit_ms)
		c->downtime_limit_ms = 300;
	if (!c->max_rounds)
		c->max_rounds = 30;
	if (!c->throttle_initial)
		c->throttle_initial = 20;
	if (!c->throttle_increment)
		c->throttle_increment = 10;
	if (!c->throttle_max)
		c->throttle_max = 99;
	if (c->throttle_max > 99) {
		lm__err_set(e, "throttle_max: %u is out of range 1..99", c->throttle_max);
		return LM_EINVAL;
	}
	if (c->throttle_initial > c->throttle_max) {
		lm__err_set(e, "throttle_initial: %u is over throttle_max %u", c->throttle_initial,
			    c->throttle_max);
		return LM_EINVAL;
	}
	return 0;
}

/* While a round is sent: what the workload wrote since the round's sync
 * goes to the next round, and the sender skips those pages now. A failed
 * scan only costs the skipping; the round's own sync reports it. */
static void mid_round_sync(void *user)
{
	live *L = user;
	lm__err e = {0};
	uint64_t n;

	if (!lm__dirty_sync(L->dirty, L->next, &n, &e))
		lm__conv_sample(&L->m, lm__now_us() - L->d_t0, n);
}

/* The checksum's hash speed here and now, for the switchover's hashing:
 * the slowest of four pieces of the first region, 2 MiB at most each. */
static double hash_rate(const live *L)
{
	const uint8_t *base = NULL;
	uint64_t len = 0, piece;
	double slowest = 0;

	if (L->sh.nregions)
		lm__sender_region(L->s, 0, &base, &len);
	piece = (len / 4 < (2u << 20) ? len / 4 : (2u << 20)) & ~4095ull;
	if (!piece)
		return 0; /* too little to time: converge.c's default */
	for (int k = 0; k < 4; k++) {
		struct iovec v = {(void *)(base + (uint64_t)k * piece), (size_t)piece};
		uint64_t t = lm__now_us();
		double rate;
		(void)lm__hash(&v, 1, 0);
		t = lm__now_us() - t;
		rate = (double)piece / ((double)(t ? t : 1) / 1e6);
		if (!slowest || rate < slowest)
			slowest = rate;
	}
	return slowest;
}

static void model_init(live *L)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	lm__conv_setup c = {.page_size = L->sh.page_size, .limit_ms = L->c.downtime_limit_ms,
			    .hash_threads = L->sh.channels, .verify_source = L->c.verify_source,
			    .hash_rate = hash_rate(L), .sw_bw = (double)L->c.switchover_bandwidth};

	for (uint32_t i = 0; i < L->sh.nregions; i++) {
		const uint8_t *base;
		uint64_t len;
		lm__sender_region(L->s, i, &base, &len);
		c.total_bytes += len;
	}
	if (cpus > 0 && c.hash_threads > (unsigned long)cpus) /* as lm__sumtree_final */
		c.hash_threads = (unsigned)cpus;
	c.cores = c.hash_threads; /* the same: a thread each, on at most the online CPUs */
	lm__conv_init(&L->m, &c);
}

/* The live stats go to the sender, for its next snapshot. */
static void push(live *L)
{
	lm__sender_set_live_stats(L->s, &L->st);
}

static int setup(live *L, lm__err *e)
{
	lm_sender *s = L->s;
	lm__dirty_region rg[LM_MAX_REGIONS];
	uint32_t ps = L->sh.page_size;
	int rc;

	for (uint32_t i = 0; i < L->sh.nregions; i++) {
		const uint8_t *base;
		uint64_t len;
		lm__sender_region(s, i, &base, &len);
		rg[i] = (lm__dirty_region){base, len};
		L->bm[i] = calloc(lm__dirty_words(rg[i].len, ps) + 1, sizeof(uint64_t));
		L->next[i] = calloc(lm__dirty_words(rg[i].len, ps) + 1, sizeof(uint64_t));
		if (!L->bm[i] || !L->next[i])
			return -ENOMEM;
	}
	rc = lm__dirty_new(&L->dirty, L->c.dirty, L->c.dirty_log, L->c.user, rg, L->sh.nregions,
			   ps, e);
	if (rc)
		return rc;
	/* AUTO fell back to the callback: the reason is news, not an error. */
	snprintf(L->st.dirty_note, sizeof(L->st.dirty_note), "%s", e->msg);
	e->msg[0] = 0;
	snprintf(L->st.dirty_source, sizeof(L->st.dirty_source), "%s",
		 lm__dirty_kind(L->dirty) == LM_DIRTY_UFFD_WP ? "uffd-wp" : "callback");
	push(L);
	if ((rc = lm__sender_set_live(s)))
		return rc;
	model_init(L);
	if ((rc = lm__dirty_start(L->dirty, e)))
		return rc;
	L->d_t0 = lm__now_us();
	/* A scan costs milliseconds with uffd-wp; a KVM dirty log walks
	 * every slot, and callbacks are called once a round, as documented. */
	if (lm__dirty_kind(L->dirty) == LM_DIRTY_UFFD_WP)
		lm__sender_set_skip(s, (const uint64_t *const *)L->next, mid_round_sync, L);
	return 0;
}

static void round_begin(live *L)
{
	lm__sender_counts(L->s, &L->r_normal, &L->r_zero);
	L->r_wire = lm__sender_wire_bytes(L->s);
	L->r_cpu = lm__sender_chan_cpu_ns(L->s);
	L->r_t0 = lm__now_us();
}

static int test_bit(const uint64_t *bm, uint64_t pg)
{
	return (bm[pg / 64] >> (pg % 64)) & 1;
}

/* A ref compared the page with its source while the workload ran: if the
 * source was written during the round, the destination may hold other
 * bytes than those compared, so the page goes again. Writes before the
 * round's sync kept the source out of the index (lm__dedup_round); writes
 * after the comparison are harmless. Channels idle. */
static int ref_again(void *user, const lm__dep *d)
{
	live *L = user;

	if (!test_bit(L->next[d->src_rid], d->src_pg) || test_bit(L->next[d->rid], d->pg))
		return 0;
	L->next[d->rid][d->pg / 64] |= 1ull << (d->pg % 64);
	return 1;
}

static uint64_t recheck_refs(live *L)
{
	return lm__sender_recheck_refs(L->s, ref_again, L);
}

/* Reads the dirty set and measures the round that just ended (its sync
 * was just acknowledged). */
static int round_end(live *L, uint64_t *dirty, lm__err *e)
{
	lm_sender *s = L->s;
	lm_stats *l = &L->st;
	uint32_t ps = L->sh.page_size;
	uint64_t normal, zero, t_acked = lm__now_us(), t_scanned;
	lm__conv_round r = {.sync_us = lm__sender_sync_us(s), .pct = L->throttle,
			    .packet_bytes = L->sh.packet_pages * ps,
			    .paced = lm__sender_rate(s) != 0};
	int rc;

	if ((rc = lm__dirty_sync(L->dirty, L->next, dirty, e)))
		return rc;
	t_scanned = lm__now_us();
	r.scan_us = t_scanned - t_acked;
	r.dirty_us = t_acked - L->d_t0;
	L->d_t0 = t_acked;
	*dirty += recheck_refs(L);
	lm__sender_counts(s, &normal, &zero);
	r.dirty = *dirty;
	r.pages = normal - L->r_normal + zero - L->r_zero;
	r.secs = (double)(t_acked - L->r_t0) / 1e6;
	r.page_bytes = (double)(normal - L->r_normal) * ps;
	r.zero_bytes = (double)(zero - L->r_zero) * ps;
	r.wire_bytes = (double)(lm__sender_wire_bytes(s) - L->r_wire);
	r.cpu_ns = (double)(lm__sender_chan_cpu_ns(s) - L->r_cpu);
	r.dev_bytes = lm__sender_devstate_expected(s);
	lm__conv_end_round(&L->m, &r);
	L->est = lm__conv_expected(&L->m);
	l->dirty_pages = *dirty;
	l->remaining_bytes = *dirty * ps;
	l->dirty_pages_rate = (double)*dirty / ((double)(r.dirty_us ? r.dirty_us : 1) / 1e6);
	l->bandwidth_mbps = L->m.bw * 8 / 1e6;
	l->expected_downtime_ms = (uint64_t)(L->est.total_ms + 0.5);
	l->downtime_fixed_ms = (uint64_t)(L->est.fixed_ms + 0.5);
	l->device_state_expected_bytes = r.dev_bytes;
	l->throttle_now_pct = L->throttle;
	push(L);
	return 0;
}

static void set_throttle(live *L, uint32_t pct)
{
	lm_stats *l = &L->st;

	if (pct == L->throttle)
		return;
	L->throttle = pct;
	L->c.throttle(L->c.user, pct);
	l->throttle_now_pct = pct;
	if (pct > l->throttle_pct)
		l->throttle_pct = pct;
	push(L);
}

/* Rounds and milliseconds left before max_rounds / max_time_ms (0: none). */
static uint32_t rounds_left(live *L)
{
	uint32_t round = lm__sender_round(L->s);

	return L->c.max_rounds > round ? L->c.max_rounds - round : 0;
}

static double ms_left(live *L)
{
	double elapsed = (double)(lm__now_us() - L->t0) / 1e3;

	if (!L->c.max_time_ms)
		return 0;
	return elapsed < L->c.max_time_ms ? L->c.max_time_ms - elapsed : 1e-3;
}

/* Computed mode: the throttle the measured rates call for, for the next
 * round (converge.c), 0 when the rounds converge on their own. */
static void computed_throttle(live *L)
{
	set_throttle(L, lm__conv_throttle(&L->m, rounds_left(L), ms_left(L), L->throttle,
					  L->c.throttle_max));
}

/* QEMU's auto-converge (step mode): a round that dirtied more than half
 * of what it sent counts as high; two high rounds raise the throttle one
 * step. */
static void step_throttle(live *L, uint64_t dirty)
{
	lm_sender *s = L->s;
	uint64_t normal, zero;
	uint32_t pct;

	/* Under the limit we switch over or shrink without it: a throttle
	 * would only slow the workload. */
	if (L->st.expected_downtime_ms <= L->c.downtime_limit_ms)
		return;
	lm__sender_counts(s, &normal, &zero);
	if (dirty * 2 <= (normal - L->r_normal) + (zero - L->r_zero))
		return;
	if (++L->high_cnt < 2)
		return;
	L->high_cnt = 0;
	if (L->throttle >= L->c.throttle_max)
		return;
	pct = L->throttle ? L->throttle + L->c.throttle_increment : L->c.throttle_initial;
	set_throttle(L, pct > L->c.throttle_max ? L->c.throttle_max : pct);
}

static void auto_converge(live *L, uint64_t dirty)
{
	if (!L->c.throttle || L->c.no_auto_converge)
		return;
	if (L->c.throttle_mode == LM_THROTTLE_STEP)
		step_throttle(L, dirty);
	else
		computed_throttle(L);
}

static void progress(live *L)
{
	lm_stats st = LM_STATS_INIT;

	if (!L->c.progress)
		return;
	push(L);
	lm__sender_publish(L->s, 1); /* channels idle: after the round's sync */
	lm_sender_stats(L->s, &st);
	L->c.progress(L->c.user, &st);
}

enum { GO_ON, SWITCHOVER };

/* After a round: switch over, go on, or fail at a limit. */
static int decide(live *L, uint64_t dirty, lm__err *e)
{
	lm_sender *s = L->s;
	uint64_t exp = L->st.expected_downtime_ms;
	uint64_t elapsed_ms = (lm__now_us() - L->t0) / 1000;
	uint32_t limit = lm__sender_ctl_downtime(s); /* lm_sender_set_downtime_limit() */
	uint32_t round = lm__sender_round(s);
	int at_limit = round >= L->c.max_rounds ||
		       (L->c.max_time_ms && elapsed_ms >= L->c.max_time_ms);
	int shrinking = dirty * 5 <= L->prev_dirty * 4 && L->est.var_ms > LM__DOWNTIME_FLOOR_MS &&
			!L->throttle;

	if (limit)
		L->c.downtime_limit_ms = L->m.c.limit_ms = limit;
	if (lm__sender_ctl_switchover(s)) /* lm_sender_switchover() */
		goto switchover;
	if (exp <= L->c.downtime_limit_ms && (!shrinking || at_limit))
		goto switchover;
	if (exp <= L->c.downtime_limit_ms)
		return GO_ON;
	if (!at_limit)
		return GO_ON;
	if (L->c.on_limit == LM_LIMIT_SWITCHOVER)
		goto switchover;
	lm__err_set(e, "did not converge: after %u rounds and %llu ms the expected downtime is %llu ms, over the %u ms limit (%llu dirty pages)",
		    round, (unsigned long long)elapsed_ms, (unsigned long long)exp,
		    L->c.downtime_limit_ms, (unsigned long long)dirty);
	return LM_ECONVERGE;
switchover:
	L->st.downtime_expected_ms = exp;
	push(L);
	return SWITCHOVER;
}

static void clear_bitmaps(live *L)
{
	for (uint32_t i = 0; i < L->sh.nregions; i++) {
		const uint8_t *base;
		uint64_t len;
		lm__sender_region(L->s, i, &base, &len);
		memset(L->bm[i], 0, lm__dirty_words(len, L->sh.page_size) * 8);
	}
}

/* The next round's set becomes the one to send; the sent one, cleared
 * after its dispatch, collects the following round's. */
static void swap_sets(live *L)
{
	for (uint32_t i = 0; i < L->sh.nregions; i++) {
		uint64_t *t = L->bm[i];
		L->bm[i] = L->next[i];
		L->next[i] = t;
	}
}

static int precopy(live *L, lm__err *e)
{
	lm_sender *s = L->s;
	uint64_t dirty = 0;
	int rc;

	round_begin(L);
	if ((rc = lm__sender_send_all(s)) || (rc = lm__sender_sync(s)))
		return rc;
	for (uint32_t i = 0; i < L->sh.nregions; i++) {
		const uint8_t *base;
		uint64_t len;
		lm__sender_region(s, i, &base, &len);
		L->prev_dirty += (len + L->sh.page_size - 1) / L->sh.page_size;
	}
	for (;;) {
		if ((rc = round_end(L, &dirty, e)))
			return rc;
		progress(L);
		rc = decide(L, dirty, e);
		if (rc != GO_ON)
			return rc;
		auto_converge(L, dirty);
		L->prev_dirty = dirty;
		swap_sets(L);
		round_begin(L);
		if ((rc = lm__sender_send_dirty(s, L->bm)) || (rc = lm__sender_sync(s)))
			return rc;
		/* Only now: the channels read the round's set until its sync
		 * (lm__dedup_round). */
		clear_bitmaps(L);
	}
}

static uint64_t transferred(live *L)
{
	lm_stats st = LM_STATS_INIT;

	push(L);
	lm__sender_publish(L->s, 1); /* channels idle (after a sync) or joined */
	lm_sender_stats(L->s, &st);
	return st.transferred;
}

/* The workload stops; what it dirtied since the last sync joins the set
 * the last round's sync found (L->next), and all of it goes, none skipped. */
static int switchover(live *L, lm__err *e)
{
	lm_sender *s = L->s;
	lm_stats *l = &L->st;
	uint64_t t_pause, dirty;
	int paced = lm__sender_rate(s) != 0, rc;

	lm__sender_lift_rate(s); /* QEMU too lifts max-bandwidth for the last copy */
	lm__sender_set_skip(s, NULL, NULL, NULL);
	l->precopy_bytes = transferred(L);
	t_pause = lm__now_us();
	if ((rc = L->c.pause(L->c.user))) {
		lm__err_set(e, "the pause callback failed: %s", lm_strerror(rc));
		return rc;
	}
	L->paused = 1;
	if ((rc = lm__dirty_sync(L->dirty, L->next, &dirty, e)))
		return rc;
	l->dirty_pages = dirty;
	l->remaining_bytes = dirty * L->sh.page_size;
	push(L);
	lm__sender_auto_final(s, paced);
	/* The device state is the paused workload's, after its last pages. */
	if ((rc = lm__sender_send_dirty(s, L->next)) || (rc = lm__sender_devstate(s)) ||
	    (rc = lm__sender_sync(s)))
		return rc;
	if (L->c.verify_source)
		lm__sender_rehash_all(s);
	if ((rc = lm__sender_complete(s)))
		return rc;
	l->downtime_ms = (lm__now_us() - t_pause + 500) / 1000;
	l->downtime_bytes = transferred(L) - l->precopy_bytes;
	l->dirty_pages = 0;
	l->remaining_bytes = 0;
	push(L);
	return 0;
}

static void teardown(live *L, int failed)
{
	lm__dirty_free(L->dirty);
	L->dirty = NULL;
	lm__sender_set_skip(L->s, NULL, NULL, NULL);
	for (uint32_t i = 0; i < LM_MAX_REGIONS; i++) {
		free(L->bm[i]);
		free(L->next[i]);
	}
	if (L->throttle && L->c.throttle)
		L->c.throttle(L->c.user, 0);
	L->st.throttle_now_pct = 0;
	push(L);
	if (failed && L->paused)
		L->c.resume(L->c.user);
}

int lm_sender_migrate(lm_sender *s, const lm_live_config *cfg)
{
	live L;
	lm__err e = {0};
	double cpu0 = lm__thread_cpu();
	int rc;

	if (!s)
		return LM_EINVAL;
	memset(&L, 0, sizeof(L));
	if ((rc = lm__sender_bad_config(s)))
		return rc;
	if ((rc = config(&L.c, cfg, &e)))
		return lm__sender_usage(s, rc, "lm_live_config: %s", e.msg);
	if ((rc = lm__sender_run_state(s, "migrate")))
		return rc;
	lm__sender_get_shape(s, &L.sh);
	if (!(L.sh.features & LM_FEAT_ROUND_ACK)) {
		/* Its rounds could land out of order (no round barrier). */
		lm__sender_fail(s, LM_EFEATURE,
				"the receiver does not acknowledge rounds (livemig before 0.2): "
				"live migration needs it");
		return lm__sender_finish(s, LM_EFEATURE);
	}
	L.s = s;
	L.t0 = lm__now_us();
	lm__sender_set_rate(s, L.c.max_bandwidth);
	rc = setup(&L, &e);
	if (!rc) {
		rc = precopy(&L, &e);
		if (rc == SWITCHOVER)
			rc = switchover(&L, &e);
	}
	if (rc && e.msg[0])
		lm__sender_fail(s, rc, e.msg);
	teardown(&L, rc != 0);
	lm__sender_add_cpu(s, lm__thread_cpu() - cpu0);
	rc = lm__sender_finish(s, rc);
	if (rc && !L.paused) /* channels joined: the counters are final */
		L.st.precopy_bytes = transferred(&L);
	push(&L);
	lm__sender_publish(s, 1);
	return rc;
}
