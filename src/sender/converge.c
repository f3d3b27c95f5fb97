/*
 * The rate model of live pre-copy: the expected downtime, whether the rounds
 * converge on their own, and the throttle that makes them. Everything is
 * measured in this migration:
 *
 *   P   page size (bytes)
 *   B   drain rate: non-zero page bytes per second the channels moved in
 *       the last round of four packets or more, from its first packet to
 *       the destination's ACK(SYNC), so compression, pacing (max_bandwidth)
 *       and the link are all in it; an unpaced smaller round's rate (mostly
 *       its latency: a lower bound) only raises it
 *   H   bytes per second the checksum's hash does on one thread (timed on
 *       the first region at setup; the destination's is taken to be alike)
 *   S   the last dirty scan: the slower of the last two rounds' scans
 *   A   SYNC -> ACK(SYNC): the fastest seen, less the rehash of the
 *       round's pages that the destination's barrier does before the ACK
 *       in rounds after the first (n P / H for n pages): a round trip and
 *       the barrier's own work. It still holds the data queued in the
 *       sockets when the SYNC went, which B counts too: an overestimate
 *       until a round smaller than the socket buffers was seen
 *   W   the working set: the most pages dirty at any sync
 *   D   pages dirty at this sync: what the next round, or the switchover,
 *       sends
 *   p   the throttle as a fraction: the workload runs (1 - p) of the time
 *       (QEMU's cpu-throttle), so it dirties (1 - p) as fast
 *   r0  the unthrottled dirty rate, page writes per second
 *
 * Dirty set growth. Writes spread over W pages leave, after x of them,
 *   n = W (1 - e^(-x/W))
 * pages dirty, so a set of n pages t seconds into its interval (since the
 * previous dirty sync) measures x = -W ln(1 - n/W) and r0 = x / t / (1 - p).
 * Of the samples of a round (each mid-round scan of uffd-wp, and the round's
 * own sync) it takes the latest with n <= W/2, else the earliest: the least
 * saturated. n/W is capped at LM__SAT, so a saturated set gives a lower bound
 * that the next round raises. A sample that sets W itself says only
 * r0 >= n / t / (1 - p); the estimate then keeps the higher of that and
 * the previous one.
 *
 * Expected downtime of switching over with D pages dirty, in ms:
 *   E(D) = F(D) + V(D)
 *   V(D) = D' P / B' (1 + m)        m = LM__RATE_MARGIN: the last copy is not
 *                                   paced, but the link and the last set's
 *                                   pages may be slower than measured
 *                                   (codec auto compresses it as the round
 *                                   measuring B did: lm__auto_final)
 *   B' = B, or with the user's switchover_bandwidth U (wire bytes/s the
 *        copy may count on: the rounds were paced or shared the link)
 *        U B / R, the round's page bytes per wire byte at U (U itself
 *        before a wire rate is known), at most K 1e9 / c (c the round's
 *        channel CPU ns per page byte, K its channels on at most the
 *        online CPUs: the compression must keep up) and at least B; the
 *        rounds' own T(D) keeps B
 *   F(D) = S + A                    the last scan, the last round's SYNC/ACK
 *        + D' P / H                 the destination rehashes the last round
 *                                   (its barrier does, before the ACK)
 *        + A + 2 * 8 N / H          COMPLETE and its ACK: both sides combine
 *                                   the N 4 KiB block hashes of all regions
 *        + S_dev (1 + m) / R        the device state: S_dev bytes as the
 *                                   application expects them
 *                                   (device_state_size), at R, the wire
 *                                   bytes/s of the round that measured B
 *                                   (at U where given)
 *        [+ total / (H threads)]    verify_source: the sender hashes it all
 *   D' = D + r S                    what the workload dirties from this sync
 *                                   until the pause (about a scan's time; r
 *                                   the last round's rate)
 * live.c switches over once E(D) <= the limit. The pause callback itself is
 * not in it (it is not measurable before the one pause). The pages that fit:
 *   D_fit = (limit - F(0)) / (P / H + P (1 + m) / B')
 *
 * Convergence without a throttle. A round that sends D pages lasts
 *   T(D) = D P / B + S + A
 * and leaves D_next = W (1 - e^(-r0 T(D) / W)) dirty. Iterated over the
 * rounds left (and within the time left), does some D_next reach D_fit? When
 * the last round ran unthrottled and was not the first, its measured shrink
 * factor q = D / D_prev must agree: D q^k <= D_fit for some k within the
 * rounds left. Only if both say so the migration converges on its own, and
 * it is not throttled.
 *
 * Else the least throttle (a whole percent, at most throttle_max) under
 * which the same iteration, at rate (1 - p) r0, reaches LM__FILL D_fit (room
 * to spare for the rates' noise) within LM__PLAN_ROUNDS rounds (fewer if
 * fewer are left) and the time left; throttle_max if none does. With one
 * round that is the closed form: the next round lasts T = T(D) and may see
 *   x* = -W ln(1 - LM__FILL D_fit / W)
 * writes, so p = 1 - x* / (r0 T); two rounds let a gentler throttle do
 * it for one round more. It is applied before the next round starts, and
 * recomputed after every round from the new figures:
 * up when a saturated set had hidden the rate, down when the sets got
 * smaller (a shorter round allows a higher rate), 0 once the rounds
 * converge on their own. When F(0) alone is over the limit no throttle can
 * help, and the current one is kept.
 */
#include "sender/converge.h"

#include <math.h>
#include <string.h>

/* On the variable part of the downtime. The last copy's page bytes per
 * second are not the round's that measured B: the link may be slower, and
 * the last set is the hot working set, with fewer zero, ref and
 * well-compressing pages (1gbit, codec auto, 1024 MiB/s: 18% slower in one
 * run in 9, over the 10% this margin was; docs/benchmarks.md). */
#define LM__RATE_MARGIN 0.2
#define LM__FILL 0.7        /* the throttle aims at this share of D_fit */
#define LM__SAT 0.95        /* n / W beyond this says only "saturated" */
#define LM__PLAN_ROUNDS 2   /* the throttle makes the set fit within this many */
#define LM__BLOCK 4096.0    /* LM_SUM_BLOCK */

void lm__conv_init(lm__conv *m, const lm__conv_setup *c)
{
	memset(m, 0, sizeof(*m));
	m->c = *c;
	if (!(m->c.hash_rate > 0))
		m->c.hash_rate = 1e9;
	if (!m->c.hash_threads)
		m->c.hash_threads = 1;
	m->ack_ms = -1;
}

void lm__conv_sample(lm__conv *m, uint64_t t_us, uint64_t n)
{
	if (m->npts >= LM__CONV_POINTS || !t_us)
		return;
	m->pt_t[m->npts] = t_us;
	m->pt_n[m->npts] = n;
	m->npts++;
}

static double scan_ms(const lm__conv *m)
{
	return m->scan_ms[0] > m->scan_ms[1] ? m->scan_ms[0] : m->scan_ms[1];
}

static double ack_ms(const lm__conv *m)
{
	return m->ack_ms > 0 ? m->ack_ms : 0;
}

/* Raw page writes per second in the round, from its least saturated sample;
 * *lower: the sample set W, so the rate is only a lower bound. */
static double round_rate(const lm__conv *m, double w_before, int *lower)
{
	double W = m->wset, n, t, f;
	int k = -1;

	*lower = 0;
	for (uint32_t i = 0; i < m->npts; i++)
		if ((double)m->pt_n[i] <= W / 2)
			k = (int)i;
	if (k < 0)
		k = 0;
	if (!m->npts || !m->pt_n[k] || W <= 0)
		return 0;
	n = (double)m->pt_n[k];
	t = (double)m->pt_t[k] / 1e6;
	if (n >= W && W > w_before) {
		*lower = 1;
		return n / t;
	}
	f = n / W < LM__SAT ? n / W : LM__SAT;
	return -W * log1p(-f) / t;
}

void lm__conv_end_round(lm__conv *m, const lm__conv_round *r)
{
	double w_before = m->wset, secs = r->secs > 1e-6 ? r->secs : 1e-6, rate, r0, drained;
	double sync_ms = (double)r->sync_us / 1e3;
	int lower;

	if (m->rounds) /* the destination rehashed the round's pages before its ACK */
		sync_ms -= (double)r->pages * m->c.page_size / m->c.hash_rate * 1e3;
	if (sync_ms < 0.05)
		sync_ms = 0.05;

	/* A tiny round measures mostly the sync's latency: a lower bound, it
	 * only raises the figure kept, which is then stale (a bandwidth limit
	 * lifted, lm_sender_set_max_bandwidth: small rounds alone would keep
	 * the paced figure for ever). Not while paced: a small round's burst
	 * is the token bucket's credit, not a rate; nor a round of zero pages
	 * alone, which cost next to nothing on the wire (and the pages a
	 * workload dirties are rarely zero). */
	drained = r->page_bytes > 0 ? r->page_bytes / secs : (r->zero_bytes + m->c.page_size) / secs;
	if (r->page_bytes >= 4.0 * r->packet_bytes || m->bw == 0 ||
	    (!r->paced && r->page_bytes > 0 && drained > m->bw)) {
		m->bw = drained;
		/* Zero pages alone are a few bytes of wire each: no rate. */
		m->wire_bw = r->wire_bytes > 0 && r->page_bytes > 0 ? r->wire_bytes / secs : 0;
		m->cpu_byte = r->cpu_ns > 0 && r->page_bytes > 0 ? r->cpu_ns / r->page_bytes : 0;
	}
	m->dev_bytes = (double)r->dev_bytes;
	if (m->ack_ms < 0 || sync_ms < m->ack_ms)
		m->ack_ms = sync_ms;
	m->scan_ms[1] = m->scan_ms[0];
	m->scan_ms[0] = (double)r->scan_us / 1e3;
	if ((double)r->dirty > m->wset)
		m->wset = (double)r->dirty;
	if (m->npts == LM__CONV_POINTS) /* the round's own sync is the last sample */
		m->npts--;
	lm__conv_sample(m, r->dirty_us ? r->dirty_us : 1, r->dirty);
	rate = round_rate(m, w_before, &lower);
	r0 = r->pct < 100 ? rate / (1.0 - r->pct / 100.0) : rate;
	m->rate0 = lower && m->rate0 > r0 ? m->rate0 : r0;
	m->rate_now = rate;
	m->prev_dirty = m->rounds ? m->dirty : 0;
	m->dirty = r->dirty;
	m->pct = r->pct;
	m->rounds++;
	m->npts = 0;
}

static double bw(const lm__conv *m)
{
	return m->bw > 0 ? m->bw : 1;
}

/* The switchover's rates: wire bytes/s (the device state: a raw byte is a
 * wire byte), and page bytes/s. Measured, the round's that set B (its page
 * rate before a wire rate is known); or the user's switchover_bandwidth,
 * whose page share is the round's page bytes per wire byte. */
static double sw_wire(const lm__conv *m)
{
	if (m->c.sw_bw > 0)
		return m->c.sw_bw;
	return m->wire_bw > 0 ? m->wire_bw : m->bw;
}

static double sw_pages(const lm__conv *m)
{
	double r = bw(m), cpu;

	if (m->c.sw_bw > 0) {
		r = m->wire_bw > 0 && m->bw > 0 ? m->c.sw_bw * (m->bw / m->wire_bw) : m->c.sw_bw;
		/* No faster than the channels compress, at the round's CPU per
		 * byte on every core they can have (the workload is paused):
		 * zstd's 3x of 1 GB/s is 3 GB/s of pages two cores do not
		 * make. Never below what the round itself moved. */
		cpu = m->cpu_byte > 0 && m->c.cores ? m->c.cores * 1e9 / m->cpu_byte : 0;
		if (cpu > 0 && r > cpu)
			r = cpu > m->bw ? cpu : m->bw;
	}
	return r;
}

/* The device state at the switchover's wire rate, with the margin of the
 * last copy's pages. */
static double dev_ms(const lm__conv *m)
{
	double rate = sw_wire(m);

	if (!(m->dev_bytes > 0) || !(rate > 0))
		return 0;
	return m->dev_bytes / rate * (1 + LM__RATE_MARGIN) * 1e3;
}

/* F(d), ms. */
static double fixed_ms(const lm__conv *m, double d)
{
	double H = m->c.hash_rate, blocks = (double)m->c.total_bytes / LM__BLOCK;
	double f = scan_ms(m) + 2 * ack_ms(m);

	f += (d * m->c.page_size + 2 * 8 * blocks) / H * 1e3;
	f += dev_ms(m);
	if (m->c.verify_source)
		f += (double)m->c.total_bytes / (H * m->c.hash_threads) * 1e3;
	return f;
}

lm__conv_est lm__conv_expected(const lm__conv *m)
{
	double d = (double)m->dirty + m->rate_now * scan_ms(m) / 1e3;
	lm__conv_est e;

	e.fixed_ms = fixed_ms(m, d);
	e.var_ms = d * m->c.page_size / sw_pages(m) * (1 + LM__RATE_MARGIN) * 1e3;
	e.total_ms = e.fixed_ms + e.var_ms;
	return e;
}

/* D_fit: the dirty pages whose switchover fits the limit. */
static double fit_pages(const lm__conv *m)
{
	double P = m->c.page_size;
	double per_page_ms = (P / m->c.hash_rate + P * (1 + LM__RATE_MARGIN) / sw_pages(m)) * 1e3;
	double room = m->c.limit_ms - fixed_ms(m, 0);

	return room > 0 ? room / per_page_ms : 0;
}

/* T(d), seconds. */
static double round_secs(const lm__conv *m, double d)
{
	return d * m->c.page_size / bw(m) + (scan_ms(m) + ack_ms(m)) / 1e3;
}

/* The dirty set after a round of t seconds at raw rate r. */
static double grown(const lm__conv *m, double r, double t)
{
	return m->wset > 0 ? -m->wset * expm1(-r * t / m->wset) : 0;
}

int lm__conv_converges(const lm__conv *m, uint32_t rounds_left, double ms_left)
{
	double fit = fit_pages(m), d = (double)m->dirty, t = 0, q;
	int model = 0;

	if (d <= fit)
		return fit > 0;
	if (fit <= 0)
		return 0;
	for (uint32_t k = 0; k < rounds_left && !model; k++) {
		double T = round_secs(m, d);
		t += T;
		if (ms_left > 0 && t * 1e3 > ms_left)
			break;
		d = grown(m, m->rate0, T);
		model = d <= fit;
	}
	if (!model)
		return 0;
	if (m->pct || !m->prev_dirty)
		return 1; /* no unthrottled shrink factor to check it against */
	q = (double)m->dirty / (double)m->prev_dirty;
	if (q >= 1)
		return 0;
	return ceil(log(fit / (double)m->dirty) / log(q)) <= (double)rounds_left;
}

/* Under throttle pct, does the set reach LM__FILL D_fit within k rounds
 * and ms_left? */
static int plan_fits(const lm__conv *m, uint32_t pct, uint32_t k, double ms_left, double goal)
{
	double d = (double)m->dirty, t = 0, r = m->rate0 * (1 - pct / 100.0);

	for (uint32_t j = 0; j < k; j++) {
		double T = round_secs(m, d);
		t += T;
		if (ms_left > 0 && t * 1e3 > ms_left)
			return 0;
		d = grown(m, r, T);
		if (d <= goal)
			return 1;
	}
	return 0;
}

uint32_t lm__conv_throttle(const lm__conv *m, uint32_t rounds_left, double ms_left, uint32_t cur,
			   uint32_t max)
{
	double fit = fit_pages(m), goal = LM__FILL * fit;
	uint32_t k = rounds_left < LM__PLAN_ROUNDS ? rounds_left : LM__PLAN_ROUNDS, lo = 0, hi = max;

	if (lm__conv_converges(m, rounds_left, ms_left))
		return 0;
	if (fit <= 0)
		return cur > max ? max : cur;
	if (!k || !plan_fits(m, max, k, ms_left, goal))
		return max; /* the most it may: the rates said too little */
	while (lo < hi) { /* the least throttle whose plan fits: it rises with pct */
		uint32_t mid = (lo + hi) / 2;
		if (plan_fits(m, mid, k, ms_left, goal))
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}
