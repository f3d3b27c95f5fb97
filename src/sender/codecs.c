/*
 * The sender's codecs: each channel's contexts (the pinned codec's, or with
 * codec auto one per candidate the build and the machine have), the codec a
 * channel uses for its next packet, and codec auto's updater, which every
 * LM__AUTO_WINDOW_US turns the channels' counters and the receiver's
 * FEEDBACK into a window for the model (codec/auto.c) and publishes its
 * decision.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sender/sender.h"

/* The candidates of codec auto, in the order they are opened. zlib is left
 * out: zstd beats it in both speed and ratio (docs/benchmarks.md). */
static const uint16_t auto_cand[] = {LM_CODEC_LZ4, LM_CODEC_ZSTD, LM_CODEC_DEFLATE};

static int open_one(lm_sender *s, lm__tx_chan *ch, uint16_t id, int level)
{
	const lm__codec_ops *ops = lm__codec_get(id);
	lm__codec_params p = {
		.level = level,
		.page_size = s->page_size,
		.packet_pages = s->packet_pages,
		.accel = s->cfg.accel,
		.engine = s->cfg.engine,
		.busy_retries = s->cfg.busy_retries,
		.stats = ch->eng,
		.accel_ops = s->accel_ops,
	};
	size_t cap;
	int rc;

	if (!ops)
		return LM_ECODEC;
	if (ops->raw_only) {
		ch->cops[id] = ops;
		return 0;
	}
	cap = (size_t)ops->payload_bound(s->page_size, s->packet_pages);
	if (cap > ch->enc_cap) {
		uint8_t *b = realloc(ch->enc, cap);
		if (!b)
			return -ENOMEM;
		ch->enc = b;
		ch->enc_cap = cap;
	}
	if ((rc = ops->ctx_new(&ch->cctx[id], &p)))
		return rc;
	ch->cops[id] = ops;
	return 0;
}

int lm__tx_codecs_open(lm_sender *s, lm__tx_chan *ch, lm__err *e)
{
	int rc;

	if (s->cfg.codec != LM_CODEC_AUTO) {
		if ((rc = open_one(s, ch, (uint16_t)s->cfg.codec, s->cfg.level)))
			lm__codec_unavailable(e, (uint16_t)s->cfg.codec, s->cfg.accel, rc);
		return rc;
	}
	if ((rc = open_one(s, ch, LM_CODEC_NONE, 0)))
		return rc;
	for (size_t i = 0; i < sizeof(auto_cand) / sizeof(auto_cand[0]); i++) {
		uint16_t id = auto_cand[i];
		/* zstd at the level asked for, the others at their defaults. */
		rc = open_one(s, ch, id, id == LM_CODEC_ZSTD ? s->cfg.level : 0);
		if (rc == LM_ECODEC && !(id == LM_CODEC_DEFLATE && s->cfg.accel == LM_ACCEL_QPL))
			continue; /* not in this build: not a candidate */
		if (rc) {
			lm__codec_unavailable(e, id, s->cfg.accel, rc);
			return rc;
		}
	}
	return 0;
}

void lm__tx_codecs_free(lm__tx_chan *ch)
{
	for (int i = 0; i < LM_MAX_CODECS; i++) {
		if (ch->cops[i] && ch->cctx[i])
			ch->cops[i]->ctx_free(ch->cctx[i]);
		ch->cops[i] = NULL;
		ch->cctx[i] = NULL;
	}
	free(ch->enc);
	ch->enc = NULL;
	ch->enc_cap = 0;
}

uint16_t lm__tx_codec_pick(lm__tx_chan *ch, uint16_t *sample)
{
	lm_sender *s = ch->s;

	*sample = LM_CODEC_NONE;
	if (!s->is_auto)
		return (uint16_t)s->cfg.codec;
	return lm__auto_pick(__atomic_load_n(&s->auto_snap, __ATOMIC_RELAXED), &ch->pick, ch->idx,
			     sample);
}

/* ---- codec auto's updater (the thread driving the sender) ---------------- */

void lm__sender_auto_start(lm_sender *s)
{
	uint32_t cand = 0;

	if (!s->is_auto)
		return;
	for (int i = 0; i < LM_MAX_CODECS; i++)
		if (s->ch[0].cops[i])
			cand |= 1u << i;
	lm__auto_init(&s->au, cand, s->page_size, s->nch, s->rate_limit);
	s->idle_have = lm__cpuidle_open(&s->idle) == 0;
	lm__cgroup_open(&s->cg, "/proc/self/cgroup", "/proc/self/mountinfo");
	s->cg_t = 0;
	s->cg_windows = 0;
	s->auto_rate_limit = s->rate_limit;
	__atomic_store_n(&s->auto_snap, lm__auto_snapshot(&s->au), __ATOMIC_RELAXED);
}

static uint64_t delta(const uint64_t *now, uint64_t *seen)
{
	uint64_t v = __atomic_load_n(now, __ATOMIC_RELAXED), d = v - *seen;

	*seen = v;
	return d;
}

static void delta_try(const lm__auto_try *now, lm__auto_try *seen, lm__auto_try *sum)
{
	sum->packets += delta(&now->packets, &seen->packets);
	sum->in += delta(&now->in, &seen->in);
	sum->out += delta(&now->out, &seen->out);
	sum->ns += delta(&now->ns, &seen->ns);
	sum->cpu_ns += delta(&now->cpu_ns, &seen->cpu_ns);
}

void lm__sender_auto_read_tcp(lm__tx_chan *ch)
{
	lm__tcp_limit l;

	if (lm__conn_limits(&ch->conn, &l))
		return;
	__atomic_store_n(&ch->ctr.tcp_busy_us, l.busy_us, __ATOMIC_RELAXED);
	__atomic_store_n(&ch->ctr.rwnd_us, l.rwnd_us, __ATOMIC_RELAXED);
	__atomic_store_n(&ch->ctr.rtt_us, (uint64_t)l.rtt_us, __ATOMIC_RELAXED);
	__atomic_store_n(&ch->ctr.rwnd_known, 1, __ATOMIC_RELEASE);
}

/* A channel's unsent bytes and the time its socket waited for the
 * receiver's window: an idle channel's conn is this thread's, so they are
 * read now (a round's end drains the queue while no packet is written,
 * and the last packet's reading would credit that drain to the next
 * round's first window); a busy one's as its last packet left them. */
static uint64_t unsent_now(lm_sender *s, lm__tx_chan *ch)
{
	int idle;
	int64_t q;

	pthread_mutex_lock(&s->lock);
	idle = ch->state == LM_TX_IDLE;
	pthread_mutex_unlock(&s->lock);
	if (idle && (q = lm__conn_unsent(&ch->conn)) >= 0)
		__atomic_store_n(&ch->ctr.unsent, (uint64_t)q, __ATOMIC_RELAXED);
	if (idle)
		lm__sender_auto_read_tcp(ch);
	return __atomic_load_n(&ch->ctr.unsent, __ATOMIC_RELAXED);
}

/* A channel's TCP_INFO counters since the last window, once stored. */
static void tcp_window(lm__auto_ctr *c, lm__auto_ctr *o, lm__auto_meas *m)
{
	if (!__atomic_load_n(&c->rwnd_known, __ATOMIC_ACQUIRE))
		return;
	lm__auto_tcp_window(__atomic_load_n(&c->tcp_busy_us, __ATOMIC_RELAXED),
			    __atomic_load_n(&c->rwnd_us, __ATOMIC_RELAXED),
			    __atomic_load_n(&c->rtt_us, __ATOMIC_RELAXED), o, m);
}

/* The channels' counters since the last window. */
static void tx_window(lm_sender *s, lm__auto_meas *m)
{
	for (uint32_t i = 0; i < s->nch; i++) {
		lm__tx_chan *ch = &s->ch[i];
		lm__auto_ctr *c = &ch->ctr, *o = &ch->ctr_seen;
		uint64_t wire, unsent;
		for (int k = 0; k < LM_MAX_CODECS; k++) {
			delta_try(&c->codec[k], &o->codec[k], &m->tx.codec[k]);
			delta_try(&c->sample[k], &o->sample[k], &m->tx.sample[k]);
			delta_try(&c->pair_whole[k], &o->pair_whole[k], &m->tx.pair_whole[k]);
			delta_try(&c->pair_part[k], &o->pair_part[k], &m->tx.pair_part[k]);
		}
		m->tx.plan_ns += delta(&c->plan_ns, &o->plan_ns);
		m->tx.plan_bytes += delta(&c->plan_bytes, &o->plan_bytes);
		m->tx.write_ns += delta(&c->write_ns, &o->write_ns);
		m->tx.write_wait_ns += delta(&c->write_wait_ns, &o->write_wait_ns);
		wire = delta(&c->wire_bytes, &o->wire_bytes);
		unsent = unsent_now(s, ch);
		/* The growth of the queue did not cross the link yet; what it
		 * shrank by did. */
		m->tx.wire_bytes += wire;
		m->tx.delivered += wire + o->unsent > unsent ? wire + o->unsent - unsent : 0;
		o->unsent = unsent;
		m->tx.cpu_ns += delta(&c->cpu_ns, &o->cpu_ns);
		m->tx.write_cpu_ns += delta(&c->write_cpu_ns, &o->write_cpu_ns);
		tcp_window(c, o, m);
	}
	m->channels = s->nch;
}

/* A time of the receiver's thread over a span of wall time: at most the
 * span, twice and 5 ms for two clocks read at different moments. */
static int within(uint64_t t, uint64_t wall)
{
	return t / 2 <= wall || t / 2 - wall <= 5000000u;
}

int lm__feedback_sane(const lm__feedback *now, const lm__feedback *seen)
{
	uint64_t wall;

	if (now->wall_ns < seen->wall_ns || now->cpu_ns < seen->cpu_ns)
		return 0;
	wall = now->wall_ns - seen->wall_ns;
	if (!within(now->cpu_ns - seen->cpu_ns, wall))
		return 0;
	for (int k = 0; k < LM_MAX_CODECS; k++)
		if (now->codec[k].pages < seen->codec[k].pages || now->codec[k].ns < seen->codec[k].ns ||
		    !within(now->codec[k].ns - seen->codec[k].ns, wall))
			return 0;
	return 1;
}

/* The receiver's FEEDBACK since the last window: cumulative per channel,
 * so the difference from the last one seen is what that channel did. A
 * counter that went backwards is a receiver's bug, not ours to trust. */
static void rx_window(lm_sender *s, lm__auto_meas *m)
{
	lm__feedback fb[LM_MAX_CHANNELS];
	uint32_t seq[LM_MAX_CHANNELS], n = s->nch;

	pthread_mutex_lock(&s->lock);
	for (uint32_t i = 0; i < n; i++) {
		fb[i] = s->ch[i].fb;
		seq[i] = s->ch[i].fb_seq;
	}
	pthread_mutex_unlock(&s->lock);
	for (uint32_t i = 0; i < n; i++) {
		lm__tx_chan *ch = &s->ch[i];
		lm__feedback *o = &ch->fb_seen;
		if (seq[i] == ch->fb_seen_seq)
			continue;
		if (lm__feedback_sane(&fb[i], o)) {
			m->rx_channels++;
			m->rx_cpu_ns += fb[i].cpu_ns - o->cpu_ns;
			m->rx_wall_ns += fb[i].wall_ns - o->wall_ns;
			for (int k = 0; k < LM_MAX_CODECS; k++) {
				m->rx[k].pages += fb[i].codec[k].pages - o->codec[k].pages;
				m->rx[k].ns += fb[i].codec[k].ns - o->codec[k].ns;
			}
			*o = fb[i];
		}
		/* A frame that went backwards, or says its thread was busy
		 * longer than it ran, is dropped, and is no baseline (o is
		 * left as it was): alternating values would make every other
		 * difference count, and one wrapped count would make every
		 * later frame look backwards. */
		ch->fb_seen_seq = seq[i];
	}
}

#define LM__IDLE_FAILS 10 /* /proc/stat reads failed in a row: no budget */

/* The machine's idle CPU since the last window; unknown without /proc. */
static void idle_window(lm_sender *s, lm__auto_meas *m)
{
	uint64_t now, cpus;

	if (!s->idle_have)
		return;
	/* A read that failed (EMFILE) or a sum that went back (a CPU taken
	 * offline) costs one window, not the budget: the next window counts
	 * from this reading. /proc gone for good: no budget. */
	if (lm__cpuidle_read(&s->idle, &now)) {
		m->idle_known = -1;
		s->idle_have = ++s->idle_fails < LM__IDLE_FAILS;
		s->idle_seen = 0;
		return;
	}
	s->idle_fails = 0;
	m->idle_known = s->idle_seen && now >= s->idle_seen ? 1 : -1;
	m->idle_ns = m->idle_known > 0 ? now - s->idle_seen : 0;
	/* More idle time than the CPUs had (one back online, with its idle
	 * time since boot): a glitch too. */
	cpus = lm__cpuidle_cpus(&s->idle);
	if (m->idle_known > 0 && m->idle_ns > cpus * (m->wall_ns + m->wall_ns / 2) + 20000000u)
		m->idle_known = -1, m->idle_ns = 0;
	s->idle_seen = now;
}

/* Windows between looking again for the cgroups that can hold a quota: a
 * process moved, a quota set on an ancestor that had none. */
#define LM__CGROUP_REFIND 20u

/* A span of quota windows begins now, from each level's usage. */
static void quota_span(lm_sender *s, const lm__cgroup_use *use, uint64_t now)
{
	s->cg_t = now;
	s->cg_tx = 0;
	for (uint32_t i = 0; i < s->cg.n; i++)
		s->cg_seen[i] = use[i].usage_ns;
}

/* The cores the cgroups' quotas leave the channels, over a span of at
 * least the longest quota period: within one period the kernel lets a
 * cgroup run in a burst and then throttles it, so a 10 or 25 ms window
 * would read all or nothing. Each level: its quota less what the rest of
 * it used (its usage less the channels' CPU); the tightest counts. */
static void quota_window(lm_sender *s, lm__auto_meas *m, uint64_t now)
{
	lm__cgroup_use use[LM__CGROUP_LEVELS];
	uint64_t span, period = 0;
	double free = INFINITY;
	int rc;

	if (++s->cg_windows >= LM__CGROUP_REFIND) {
		lm__cgroup found;
		int got = lm__cgroup_open(&found, "/proc/self/cgroup", "/proc/self/mountinfo");
		s->cg_windows = 0;
		/* A read that failed (EMFILE) keeps what was found before.
		 * Both zeroed by open: comparing the whole struct compares
		 * the levels. */
		if ((got == 0 || got == -ENOENT) && memcmp(&found, &s->cg, sizeof(found)) != 0) {
			s->cg = found;
			s->cg_t = 0;
		}
	}
	m->quota_known = -1;
	if ((rc = lm__cgroup_read(&s->cg, use))) {
		/* None now: no quota term. Unreadable: this window says
		 * nothing, and the span starts again. */
		m->quota_known = rc == -ENOENT ? 0 : -1;
		s->cg_t = 0;
		return;
	}
	if (!s->cg_t) {
		quota_span(s, use, now);
		return;
	}
	s->cg_tx += m->tx.cpu_ns;
	span = now - s->cg_t;
	for (uint32_t i = 0; i < s->cg.n; i++)
		if (use[i].cpus > 0 && use[i].period_us > period)
			period = use[i].period_us;
	if (span < period || !span)
		return;
	for (uint32_t i = 0; i < s->cg.n; i++) {
		double others = 0, f;
		if (use[i].cpus <= 0)
			continue;
		if (use[i].usage_ns && s->cg_seen[i] && use[i].usage_ns >= s->cg_seen[i] &&
		    use[i].usage_ns - s->cg_seen[i] > s->cg_tx)
			others = (double)(use[i].usage_ns - s->cg_seen[i] - s->cg_tx);
		f = use[i].cpus - others / ((double)span * 1000.0);
		free = f < free ? f : free;
	}
	m->quota_known = 1;
	m->quota_free = free;
	quota_span(s, use, now);
}

/* The window from auto_t to now into *m; the next one starts now. */
static void measure(lm_sender *s, lm__auto_meas *m, uint64_t now)
{
	memset(m, 0, sizeof(*m));
	m->wall_ns = (now - s->auto_t) * 1000u;
	s->auto_t = now;
	tx_window(s, m);
	rx_window(s, m);
	idle_window(s, m);
	quota_window(s, m, now);
}

void lm__sender_auto_tick(lm_sender *s)
{
	uint64_t now;
	lm__auto_meas m;

	if (!s->is_auto)
		return;
	now = lm__now_us();
	if (s->rate_limit != s->auto_rate_limit) {
		s->auto_rate_limit = s->rate_limit;
		lm__auto_set_cap(&s->au, s->rate_limit);
	}
	if (!s->auto_t) {
		s->auto_t = now;
		s->idle_have = s->idle_have && lm__cpuidle_read(&s->idle, &s->idle_seen) == 0;
		memset(&m, 0, sizeof(m));
		quota_window(s, &m, now); /* the span's start */
		return;
	}
	if (now - s->auto_t < (!s->au.windows			     ? LM__AUTO_START_WINDOW_US
			       : s->au.windows < LM__AUTO_FIRST_WINDOWS ? LM__AUTO_FIRST_WINDOW_US
									: LM__AUTO_WINDOW_US))
		return;
	measure(s, &m, now);
	lm__auto_update(&s->au, &m);
	__atomic_store_n(&s->auto_snap, lm__auto_snapshot(&s->au), __ATOMIC_RELAXED);
}

/* The window so far is the round's tail, the channels idle while its
 * SYNC travelled, then the pause and the last dirty sync: their CPU in it
 * put the budget at 0.63 of a core where the round had 0.91, and the
 * copy's first 100 ms went a third raw. Not folded in: the copy's first
 * window is its own. */
void lm__sender_auto_final(lm_sender *s, int paced)
{
	lm__auto_meas tail;

	if (!s->is_auto)
		return;
	if (s->auto_t)
		measure(s, &tail, lm__now_us());
	lm__auto_final(&s->au, paced);
	__atomic_store_n(&s->auto_snap, lm__auto_snapshot(&s->au), __ATOMIC_RELAXED);
}
