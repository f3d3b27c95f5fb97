/*
 * Codec auto: which codec to compress with, and what share of the packets,
 * from what this migration measures. Every 100 ms the updater folds one
 * window of measurements into the estimates below and re-decides.
 *
 * Unit: an input byte is a byte of a packet's codec pages (normal pages and
 * the delta area); zero and ref pages cost about the same whatever the
 * codec, so maximising input bytes per second maximises pages per second.
 *
 * Estimates (EWMA; a window's weight grows with the bytes it measured):
 *   r_c   payload bytes per input byte with codec c (r_none = 1)
 *   e_c   sender wall ns per input byte encoding with c (e_none = 0)
 *   p     sender wall ns per input byte planning (zero scan, refs, deltas)
 *   w     sender ns per wire byte in writev not waiting for the socket (the copy, TLS, TCP)
 *   L     wire bytes per second the link takes
 *   d_c   receiver wall ns per page decoding c (FEEDBACK)
 *   q     receiver ns per page of everything else (its busy time less decoding)
 * Wall times: a CPU loaded from elsewhere makes every measured cost bigger.
 * And the CPU budget, from the channel threads' CPU time:
 *   k_c   CPU ns per input byte encoding with c
 *   o     CPU ns per input byte of everything else but the write
 *   v     CPU ns per wire byte writing
 *   K     the cores the channels can have: the CPU they used in the window
 *         plus half the machine's idle CPU on the CPUs they may run on
 *         (/proc/stat), within 0.05..N. Half: the guest, a receiver on
 *         the same host and the network stack grow with our rate too.
 *         Under a cgroup CPU quota (a container's CPU limit) at most what
 *         it leaves the channels, the quota less what the rest of the
 *         cgroup used (the tightest cgroup on the way up, the sender's
 *         quota_window): idle host CPUs are not ours there, and going
 *         past the quota throttles all of the cgroup.
 *
 * Compressing a share f of the packets with c and the rest with s (none:
 * raw, r_none = 1, e_none = k_none = 0; or a candidate that packs less
 * than c, so a larger f always means fewer wire bytes):
 *   W(f) = f r_c + (1 - f) r_s        wire bytes per input byte
 *   T(f) = p + f e_c + (1 - f) e_s + w W(f)   channel ns per input byte
 *   C(f) = o + f k_c + (1 - f) k_s + v W(f)   channel CPU ns per input byte
 *   X(c, f, s) = min(N 1e9 / T(f),    the N sender channel threads
 *                 K 1e9 / C(f),       the CPU left over (no term when the
 *                                     idle CPU is not known)
 *                 L / W(f),           the link
 *                 M 1e9 P / (q + f d_c + (1 - f) d_s))  the M receiver
 *                                     channel threads, P-byte pages
 * The model's pick is the (c, f, s) with the largest X, f in steps of
 * 1/64; within 2% of it the one costing the least sender CPU, so CPU is
 * not spent for nothing. A rest that compresses: at 1gbit on two shared
 * cores zstd alone is CPU-bound and lz4 alone link-bound, and a share of
 * zstd with the rest lz4 beats both, where zstd with the rest raw does
 * not. The decision is that pick steered by the last
 * window (steer() below): a mix's best f is sensitive to errors in the
 * costs, and the window says which side of the crossover it was on. With
 * a slow link L/W binds and compression wins; with a fast one N/T binds
 * and none wins; in between the link bound rises with
 * f and the CPU bound falls, and the best f is where they cross: a mix.
 *
 * The link: the delivered rate D = wire bytes that crossed the link in the
 * window / its length: those written less the growth of the sockets'
 * queues of unacknowledged bytes (lm__conn_unsent), as a socket's buffer of
 * several MB takes a burst of writes at memory speed (counting writes put
 * the first 25 ms of a 1gbit link at 3x its rate). D underestimates a link
 * that is not saturated (CPU-bound channels never block in writes).
 * So the share of channel time blocked in writes (time a write waited in
 * poll for the socket to take more: not a write preempted on a busy CPU),
 *   b = write ns waiting / (N window),
 * says whether it limits: b >= 0.15, the link is full: L moves halfway to
 * D, or to D at once from above 1.5 D (a link that slowed down);
 * 0.02 <= b < 0.15, close to full: L is kept within D..1.25 D;
 * b < 0.02, not full: L = 1.4 max(L, D) (1.15 unless the last window
 * probed too), probing upward, if the window delivered D >= 0.9 L and more
 * than 1.05x what the link took when last full within 50 windows
 * (channels held back by their CPU say nothing of the link; probing on
 * them ran L away to 2-3x a 1gbit link, and at a link just full they
 * made auto send a third raw), until compressing less makes the writes
 * block. Writes blocked by the receiver are its limit, not the link's: L
 * is then held. The receiver is the limit when its threads are busy >= 70%
 * (their CPU time and run-queue wait, so a receiver starved of CPU on the
 * sender's host counts) and, where the kernel tells (TCP_INFO's time
 * limited by the receive window), its window held the sockets >= 20% of
 * the time they had data to send: a receiver that cannot keep up fills
 * its socket buffer and closes its window, a full link mostly leaves it
 * open (not always: a path whose delay times rate exceeds the receive
 * buffer holds the window too, and then the busy time decides). A window
 * that held them >= 50% of that time is the receiver's limit at >= 50%
 * busy: the kernel's receive path on its cores is not its threads' time
 * (unshaped on two shared cores: 60% busy, the window held 90% of the
 * time, and L fell to what the receiver took), where the path's delay
 * times its rate is under 512 KiB (a longer path can hold the window of
 * a receiver that keeps up). Busy time alone held L at a probe's 1.2x a
 * 3gbit link on two shared cores, the receiver's threads 80% busy with
 * the link the limit; the window alone would take a TCP proxy in front
 * of a slow link for a slow receiver. L never exceeds the sender's own
 * rate limit.
 *
 * Candidates not in use are measured on real pages: 1 packet in 16 per
 * channel (1 in 64 after the first 8 turns, from each channel's first
 * packet on) has its first 16 codec pages encoded with another candidate
 * after it went, round robin, and the result dropped (whole packets as
 * samples cost a fast link 5-10%); a candidate whose best X is
 * below half the decision's is sampled only 1 turn in 8, never dropped, so
 * a link that slows down finds it again. A sample's cost and output per
 * byte are not a packet's (16 pages give a codec less to match against
 * and more fixed cost per byte): each is scaled by what pairs of this
 * migration measured (auto.h, LM__AUTO_CAL), a whole packet's per byte
 * over its first pages'. Without that the codec in use, measured on its
 * packets, looks 10-30% better than one measured on samples, and can keep
 * its place where the other is the better pick.
 */
#include "codec/auto.h"

#include <math.h>
#include <string.h>

#include "compat.h"

/* Before the first measurements: typical of this class of machine
 * (docs/benchmarks.md), replaced by the first window that measures them. */
static const double prior_enc_ns[LM_MAX_CODECS] = {
	[LM_CODEC_NONE] = 0, [LM_CODEC_DEFLATE] = 4.0, [LM_CODEC_ZSTD] = 3.0,
	[LM_CODEC_LZ4] = 1.5, [LM_CODEC_ZLIB] = 10.0,
};

#define LM__AUTO_LINK_MAX 1e12
#define LM__AUTO_LINK_MIN 1e4
/* Writes blocked while the receiver's threads were this busy are its
 * limit, not the link's: on one host a receiver short of CPU makes the
 * sender's writes wait at 70-90% busy. */
#define LM__AUTO_RX_BUSY 0.7
/* Where the kernel tells (TCP_INFO), a busy receiver is the limit only
 * if its window held the sockets this share of their busy time: at
 * 3gbit on two shared cores its threads were 80% busy with the window
 * never closed (the link the limit); unshaped and at 10gbit the window
 * held the sockets 70-100% of the time. */
#define LM__AUTO_RWND 0.2
/* A window that held the sockets this much of their busy time is the
 * receiver's limit at a lower busy share of its threads: unshaped on two
 * shared cores they were 60% busy with the window closed 90% of the time
 * (the kernel's receive path, on the same cores, is not their CPU time),
 * and the link estimate fell to what the receiver took. A proxy in front
 * of a slow link closes the window too, but leaves the receiver idle. */
#define LM__AUTO_RWND_HIGH 0.5
#define LM__AUTO_RX_BUSY_RWND 0.5
/* ... where the path's delay times its rate is below the windows a
 * receiver advertises once its buffer grew (Linux's default tcp_rmem
 * grows it to 6 MiB, half of it the window): a longer path holds the
 * window of a receiver that keeps up, and that busy share would then
 * hold the link estimate above the link. */
#define LM__AUTO_RWND_BDP    (512.0 * 1024)
#define LM__AUTO_RWND_MIN_US 20000u /* busy time over the channels a share needs */
/* Windows a full link's rate holds steering (then it tries a step more
 * raw), and holds the link probe. */
#define LM__AUTO_FULL_MEMORY 10
#define LM__AUTO_FULL_PROBE 50

void lm__auto_init(lm__auto *a, uint32_t cand, uint32_t page_size, uint32_t channels,
		   uint64_t rate_cap)
{
	memset(a, 0, sizeof(*a));
	a->cand = (cand | 1u) & ((1u << LM_MAX_CODECS) - 1);
	a->page_size = page_size;
	a->channels = channels ? channels : 1;
	a->rate_cap = rate_cap;
	for (int c = 0; c < LM_MAX_CODECS; c++) {
		a->ratio[c] = c == LM_CODEC_NONE ? 1.0 : 0.5;
		a->enc_ns[c] = prior_enc_ns[c] ? prior_enc_ns[c] : (c ? 4.0 : 0);
		a->enc_cpu[c] = a->enc_ns[c];
	}
	a->plan_ns = a->cpu_other = 0.3;
	a->write_ns = a->cpu_write = 0.3;
	a->link = 1e9;
	a->idle = -1;
	a->rwnd = -1;
	a->steer = 1;
	a->scale = 1;
	lm__auto_set_cap(a, rate_cap);
	/* Until the first (short) window measured something: raw. On a
	 * fast link that is right; on a slow one the first window blocks
	 * and the next decision compresses. (Starting with lz4 saved the
	 * 6-9 MB of raw pages the sockets' buffers take at 1gbit, but
	 * anchored the link estimate to lz4's output where a starved
	 * receiver's waits look like a full link: test_auto's shared-CPU
	 * world then stayed on lz4.) */
	a->codec = a->model_codec = LM_CODEC_NONE;
	a->rest = a->model_rest = LM_CODEC_NONE;
	a->frac = a->model_frac = 0;
	a->rate = lm__auto_rate(a, a->codec, a->frac);
}

void lm__auto_set_cap(lm__auto *a, uint64_t rate_cap)
{
	a->rate_cap = rate_cap;
	if (rate_cap && a->link > (double)rate_cap)
		a->link = (double)rate_cap;
}

double lm__auto_rate(const lm__auto *a, uint16_t codec, uint32_t frac)
{
	return lm__auto_rate_mix(a, codec, frac, LM_CODEC_NONE);
}

/* The share of the packets a choice compresses with codec (0 for none). */
static double share(uint16_t codec, uint32_t frac)
{
	return codec == LM_CODEC_NONE ? 0 : (double)frac / LM__AUTO_FRAC_ONE;
}

/* base plus a per-codec estimate v[] over a choice's shares: codec on f,
 * rest on the others (summed in this order, as the model always was). */
static double mixed(double base, const double *v, uint16_t codec, double f, uint16_t rest)
{
	return base + f * v[codec] + (1 - f) * v[rest];
}

double lm__auto_rate_mix(const lm__auto *a, uint16_t codec, uint32_t frac, uint16_t rest)
{
	double f = share(codec, frac);
	double wire = mixed(0, a->ratio, codec, f, rest);
	double t = mixed(a->plan_ns, a->enc_ns, codec, f, rest) + a->write_ns * wire;
	double x = t > 0 ? a->channels * 1e9 / t : INFINITY;
	double cpu = mixed(a->cpu_other, a->enc_cpu, codec, f, rest) + a->cpu_write * wire;

	if (a->cores > 0 && cpu > 0 && a->cores * 1e9 / cpu < x)
		x = a->cores * 1e9 / cpu;
	if (a->link / wire < x)
		x = a->link / wire;
	if (a->rx_channels) {
		double per_page = mixed(a->rx_base_ns, a->rx_dec_ns, codec, f, rest);
		double rx = per_page > 0 ? a->rx_channels * 1e9 * a->page_size / per_page : INFINITY;
		if (rx < x)
			x = rx;
	}
	return x;
}

/* The weight of a window's estimate: more measured, more weight (units of
 * a 128-page packet: a window of a few 16-page samples of a codec not in
 * use weighs a tenth of one that sent it, as their ratio swings with the
 * pages they happen to hold: 0.30 to 0.41 for lz4 at 1gbit, window to
 * window, enough to flip the decision). The first measurement replaces
 * the prior, and while a window is more than that weight of all measured
 * so far the estimate is the mean of all: a first sample that swung
 * (zstd's one 16-page sample at 4.3 CPU ns a byte at 1gbit, 2.2-2.7 after
 * it) otherwise held a codec out of the rest of a 1 s migration, moving
 * back by a twentieth a window. */
static double weight(double seen, double units)
{
	double w, mean;

	if (!(seen > 0))
		return 1;
	w = 1 - pow(0.7, units);
	w = w > 0.5 ? 0.5 : w;
	mean = units / (seen + units);
	return mean > w ? mean : w;
}

static double ewma(double old, double v, double w)
{
	return old + w * (v - old);
}

static void add_try(lm__auto_try *to, const lm__auto_try *t)
{
	to->packets += t->packets;
	to->in += t->in;
	to->out += t->out;
	to->ns += t->ns;
	to->cpu_ns += t->cpu_ns;
}

static void halve_try(lm__auto_try *t)
{
	t->packets /= 2;
	t->in /= 2;
	t->out /= 2;
	t->ns /= 2;
	t->cpu_ns /= 2;
}

/* A whole's cost per byte over its part's (x/in of each), of n pairs (0:
 * too few, 1): pulled toward 1 as if LM__AUTO_CAL_MIN more had measured
 * 1, since a packet's first pages and the rest differ in content and a
 * few pairs swing (zstd's output 0.85-1.45 over 4 pairs at 1gbit). */
static double factor(uint64_t wx, uint64_t win, uint64_t px, uint64_t pin, uint64_t n)
{
	double f;

	if (!n || !wx || !win || !px || !pin)
		return 1;
	f = ((double)wx / (double)win) / ((double)px / (double)pin);
	f = ((double)n * f + LM__AUTO_CAL_MIN) / (double)(n + LM__AUTO_CAL_MIN);
	return f > LM__AUTO_CAL_MAX       ? LM__AUTO_CAL_MAX
	       : f < 1 / LM__AUTO_CAL_MAX ? 1 / LM__AUTO_CAL_MAX
					  : f;
}

/* The window's pairs into codec c's sums. */
static void fold_pairs(lm__auto *a, const lm__auto_meas *m, int c)
{
	lm__auto_try *w = &a->pair_whole[c], *p = &a->pair_part[c];

	add_try(w, &m->tx.pair_whole[c]);
	add_try(p, &m->tx.pair_part[c]);
	if (w->packets > LM__AUTO_CAL_KEEP) {
		halve_try(w);
		halve_try(p);
	}
}

/* The window's whole packets and its samples, scaled by what the pairs
 * make of a sample (output, wall and CPU ns per byte: 1 until
 * LM__AUTO_CAL_MIN pairs): the cost of c as a packet would see it. */
static void fold_codecs(lm__auto *a, const lm__auto_meas *m)
{
	for (int c = 1; c < LM_MAX_CODECS; c++) {
		const lm__auto_try *k = &m->tx.codec[c], *s = &m->tx.sample[c];
		const lm__auto_try *pw = &a->pair_whole[c], *pp = &a->pair_part[c];
		double in = (double)(k->in + s->in), w, fr, fn, fc;
		uint64_t n;
		fold_pairs(a, m, c);
		if (!(k->packets + s->packets) || !in)
			continue;
		n = a->scale && pw->packets >= LM__AUTO_CAL_MIN ? pw->packets : 0;
		fr = factor(pw->out, pw->in, pp->out, pp->in, n);
		fn = factor(pw->ns, pw->in, pp->ns, pp->in, n);
		fc = factor(pw->cpu_ns, pw->in, pp->cpu_ns, pp->in, n);
		w = weight(a->seen[c], in / (128.0 * a->page_size));
		a->ratio[c] = ewma(a->ratio[c], ((double)k->out + fr * (double)s->out) / in, w);
		a->enc_ns[c] = ewma(a->enc_ns[c], ((double)k->ns + fn * (double)s->ns) / in, w);
		a->enc_cpu[c] = ewma(a->enc_cpu[c],
				     ((double)k->cpu_ns + fc * (double)s->cpu_ns) / in, w);
		a->seen[c] += in / (128.0 * a->page_size);
	}
	if (m->tx.plan_bytes)
		a->plan_ns = ewma(a->plan_ns, (double)m->tx.plan_ns / (double)m->tx.plan_bytes, 0.5);
}

void lm__auto_tcp_window(uint64_t busy, uint64_t rwnd, uint64_t rtt_us, lm__auto_ctr *seen,
			 lm__auto_meas *m)
{
	if (rtt_us > m->tx.rtt_us)
		m->tx.rtt_us = rtt_us;
	if (seen->rwnd_known && busy >= seen->tcp_busy_us && rwnd >= seen->rwnd_us) {
		m->tx.tcp_busy_us += busy - seen->tcp_busy_us;
		m->tx.rwnd_us += rwnd - seen->rwnd_us;
		m->tx.rwnd_known++;
	}
	seen->tcp_busy_us = busy;
	seen->rwnd_us = rwnd;
	seen->rwnd_known = 1;
}

/* The receiver's window held the sockets: its share of their busy time
 * (data to send; idle channels say nothing), where they know it. Both
 * counters move in the kernel's ticks (4 ms at HZ=250): a window with
 * fewer than LM__AUTO_RWND_MIN_US of busy time keeps the last share. */
static void fold_rwnd(lm__auto *a, const lm__auto_meas *m)
{
	double r;

	a->rtt_us = m->tx.rwnd_known ? (double)m->tx.rtt_us : 0;
	if (!m->tx.rwnd_known) {
		a->rwnd = -1;
		return;
	}
	if (m->tx.tcp_busy_us < LM__AUTO_RWND_MIN_US)
		return;
	r = (double)m->tx.rwnd_us / (double)m->tx.tcp_busy_us;
	r = r > 1 ? 1 : r;
	a->rwnd = a->rwnd < 0 || r > a->rwnd ? r : ewma(a->rwnd, r, 0.5);
}

/* Writes that wait are the receiver's limit, not the link's: its threads
 * are busy, and where the kernel tells, they closed its window (a full
 * link mostly leaves it open); or its window held them most of the time,
 * its threads are half busy and the path is short. Not the window alone:
 * a TCP proxy in front of a slow link (ssh -L, stunnel, the tests'
 * shaper) closes its window while the receiver idles. */
static int rx_limited(const lm__auto *a)
{
	if (!a->rx_channels)
		return 0;
	if (a->rwnd >= LM__AUTO_RWND_HIGH && a->rx_busy >= LM__AUTO_RX_BUSY_RWND && a->rtt_us > 0 &&
	    a->rtt_us * 1e-6 * a->delivered <= LM__AUTO_RWND_BDP)
		return 1;
	if (a->rx_busy < LM__AUTO_RX_BUSY)
		return 0;
	return a->rwnd < 0 || a->rwnd >= LM__AUTO_RWND;
}

static void fold_link(lm__auto *a, const lm__auto_meas *m)
{
	double n = m->channels ? m->channels : a->channels;
	double win = (double)m->wall_ns, wire = (double)m->tx.wire_bytes;
	double dlv = (double)m->tx.delivered;
	double per, b, d;
	int probing;

	if (!m->tx.wire_bytes || !m->wall_ns)
		return;
	/* Not waiting: the copy, TLS, TCP, and being descheduled on a busy
	 * CPU, which is no sign of a full link. */
	per = m->tx.write_ns > m->tx.write_wait_ns
		      ? (double)(m->tx.write_ns - m->tx.write_wait_ns) / wire : 0;
	a->write_ns = ewma(a->write_ns, per, 0.5);
	b = (double)m->tx.write_wait_ns / (n * win);
	b = b < 0 ? 0 : b > 1 ? 1 : b;
	a->blocked = b;
	d = a->delivered = dlv * 1e9 / win;
	probing = a->probing;
	a->probing = 0;
	a->full_age = a->full_age < 1000 ? a->full_age + 1 : a->full_age;
	if (b < 0.02) {
		/* Not full. Probe upward only when the link took about all
		 * it was thought to take: channels that could not fill it
		 * (their CPU the limit) say nothing of what it could take;
		 * nor does delivering what it delivered when last full
		 * (production and link even: both at their limit; steering
		 * sends a little more raw now and then to see whether the
		 * link takes more, which then shows here). A first probe is a
		 * small step (often a moment of the CPU); one after a probe
		 * that did not fill the link, bigger. */
		if (!a->final && d >= 0.9 * a->link &&
		    (a->full_age > LM__AUTO_FULL_PROBE || d > 1.05 * a->full)) {
			a->link = (probing ? 1.4 : 1.15) * (a->link > d ? a->link : d);
			a->probing = 1;
		}
	} else if (rx_limited(a)) {
		a->link = a->link > d ? a->link : d;
	} else if (b < 0.15) {
		/* Near full (the production rate and the link about even,
		 * the socket buffers absorb the difference): near D. */
		a->link = a->link < d ? d : a->link > 1.25 * d ? 1.25 * d : a->link;
		a->full = d;
		a->full_age = 0;
	} else {
		/* Full: the delivered rate, smoothed, as a shaper's bursts
		 * make short windows deliver from half to twice the rate. */
		a->link = a->windows && a->link < 1.5 * d ? ewma(a->link, d, 0.5) : d;
		a->full = a->link;
		a->full_age = 0;
	}
	if (a->link > LM__AUTO_LINK_MAX)
		a->link = LM__AUTO_LINK_MAX;
	if (a->link < LM__AUTO_LINK_MIN)
		a->link = LM__AUTO_LINK_MIN;
	if (a->rate_cap && a->link > (double)a->rate_cap)
		a->link = (double)a->rate_cap;
}

/* Cores within what the budget allows: LM__AUTO_CORES_MIN..channels. */
static double budget(const lm__auto *a, double cores)
{
	if (cores > a->channels)
		cores = a->channels;
	return cores < LM__AUTO_CORES_MIN ? LM__AUTO_CORES_MIN : cores;
}

/* The CPU budget. The channels' CPU per input byte, less encoding and
 * writing, and per wire byte writing; the cores they can have: what they
 * used and a share of what the machine left idle (not all: the guest, a
 * receiver on the same host, the network stack rise with our rate). */
static void fold_cpu(lm__auto *a, const lm__auto_meas *m)
{
	double enc = 0, other, cores, idle;

	if (!m->tx.cpu_ns || !m->tx.plan_bytes || !m->wall_ns)
		return;
	for (int c = 1; c < LM_MAX_CODECS; c++)
		enc += (double)(m->tx.codec[c].cpu_ns + m->tx.sample[c].cpu_ns +
				m->tx.pair_part[c].cpu_ns);
	other = (double)m->tx.cpu_ns - enc - (double)m->tx.write_cpu_ns;
	a->cpu_other = ewma(a->cpu_other, other > 0 ? other / (double)m->tx.plan_bytes : 0, 0.5);
	if (m->tx.wire_bytes)
		a->cpu_write = ewma(a->cpu_write,
				    (double)m->tx.write_cpu_ns / (double)m->tx.wire_bytes, 0.5);
	if (m->idle_known > 0) {
		idle = (double)m->idle_ns / (double)m->wall_ns;
		a->idle = a->idle >= 0 ? ewma(a->idle, idle, 0.5) : idle;
		cores = budget(a, ((double)m->tx.cpu_ns + LM__AUTO_IDLE_SHARE * (double)m->idle_ns) /
					  (double)m->wall_ns);
		a->cores_idle = a->cores_idle > 0 ? ewma(a->cores_idle, cores, 0.5) : cores;
	} else if (!m->idle_known) {
		a->cores_idle = 0;
		a->idle = -1;
	}
	if (m->quota_known > 0) {
		cores = budget(a, m->quota_free);
		a->cores_quota = a->cores_quota > 0 ? ewma(a->cores_quota, cores, 0.5) : cores;
	} else if (!m->quota_known) {
		a->cores_quota = 0;
	}
	a->cores = a->cores_idle;
	if (a->cores_quota > 0 && (!a->cores || a->cores_quota < a->cores))
		a->cores = a->cores_quota;
}

static void fold_receiver(lm__auto *a, const lm__auto_meas *m)
{
	uint64_t pages = 0, dec = 0;
	double busy;

	if (!m->rx_wall_ns || !m->rx_channels) {
		/* A second without word (a receiver that stopped sending, or
		 * whose frames the sender drops): no receiver term, rather
		 * than its last busy value held for the rest of the session. */
		if (++a->rx_quiet > LM__AUTO_RX_QUIET)
			a->rx_channels = 0, a->rx_busy = 0;
		return;
	}
	a->rx_quiet = 0;
	/* A receiver thread per channel, whether or not its FEEDBACK fell
	 * in this window: frames every 100 ms into windows of 100 ms leave
	 * one of two channels out of about every other window, and counting
	 * those that reported halved the receiver's bound there (zstd's at
	 * 1gbit fell to 200-300 MB/s, below what zstd alone moved). */
	a->rx_channels = a->channels > m->rx_channels ? a->channels : m->rx_channels;
	for (int c = 0; c < LM_MAX_CODECS; c++)
		dec += m->rx[c].ns;
	/* Busy: its CPU time, or its decoding's wall time where that is more
	 * (a decoder that waits, an accelerator, a CPU shared with others
	 * stalls the channel without showing as its CPU). */
	/* It rises at once and falls gently: writes that block behind a busy
	 * receiver must not be taken for the link (fold_link). */
	busy = (double)(m->rx_cpu_ns > dec ? m->rx_cpu_ns : dec) / (double)m->rx_wall_ns;
	if (busy > 1) /* a thread is at most fully busy: the peer's counters are not trusted */
		busy = 1;
	a->rx_busy = busy > a->rx_busy ? busy : ewma(a->rx_busy, busy, 0.5);
	for (int c = 0; c < LM_MAX_CODECS; c++) {
		uint64_t p = m->rx[c].pages;
		if (!p)
			continue;
		a->rx_dec_ns[c] = ewma(a->rx_dec_ns[c], (double)m->rx[c].ns / (double)p,
				       weight(a->rx_seen[c], (double)p / 128));
		a->rx_seen[c] += (double)p / 128;
		pages += p;
	}
	if (pages) /* wall ns decoding may exceed the CPU time: clamp at 0 */
		a->rx_base_ns = ewma(a->rx_base_ns,
				     m->rx_cpu_ns > dec ? (double)(m->rx_cpu_ns - dec) / (double)pages : 0,
				     0.5);
}

/* Sender CPU per input byte of a choice: what the tie-break minimises. */
static double cpu_cost(const lm__auto *a, uint16_t codec, uint32_t frac, uint16_t rest)
{
	return mixed(0, a->enc_cpu, codec, share(codec, frac), rest);
}

/* The rests a codec may mix with: none, and the candidates that pack less
 * than it (so a larger share of it always means fewer wire bytes: the
 * steering's "compress more"). */
static int rest_ok(const lm__auto *a, uint16_t c, uint16_t r)
{
	return r == LM_CODEC_NONE ||
	       (r != c && (a->cand & (1u << r)) && a->ratio[r] > a->ratio[c]);
}

/* decide()'s search: the best rates of its first pass, the pick of its
 * second. */
typedef struct lm__auto_search {
	double best, raw_best, cbest[LM_MAX_CODECS];
	double own[LM_MAX_CODECS]; /* the best with the codec on half the packets or more */
	int mixes; /* second pass: a compressed rest may be picked */
	double least;
	uint16_t codec, rest;
	uint32_t frac;
} lm__auto_search;

/* One (codec, rest) pair over its shares. First pass: the largest X, of
 * each codec in it and with the rest raw. Second: within 2% of the
 * largest, the cheapest in sender CPU; a compressed rest only where it
 * beats the best with the rest raw by LM__AUTO_REST_GAIN (in what is
 * picked too). */
static void search_pair(const lm__auto *a, uint16_t c, uint16_t r, int pass, lm__auto_search *q)
{
	uint32_t step = LM__AUTO_FRAC_ONE / LM__AUTO_STEPS;
	uint32_t f = c ? step : 0, last = c ? LM__AUTO_FRAC_ONE : 0;

	for (; f <= last; f += step) {
		double x = lm__auto_rate_mix(a, c, f, r), cost;
		if (!pass) {
			q->cbest[c] = x > q->cbest[c] ? x : q->cbest[c];
			if (2 * f >= LM__AUTO_FRAC_ONE)
				q->own[c] = x > q->own[c] ? x : q->own[c];
			q->cbest[r] = x > q->cbest[r] ? x : q->cbest[r];
			q->best = x > q->best ? x : q->best;
			if (r == LM_CODEC_NONE && x > q->raw_best)
				q->raw_best = x;
			continue;
		}
		if (r != LM_CODEC_NONE && x < LM__AUTO_REST_GAIN * q->raw_best)
			continue;
		cost = cpu_cost(a, c, f, r);
		if (x >= 0.98 * q->best && cost < q->least) {
			q->least = cost;
			q->codec = c;
			q->frac = f;
			q->rest = r;
		}
	}
}

/* The largest X over every (codec, share, rest), and within 2% of it the
 * cheapest in sender CPU (none first). A compressed rest only when it
 * beats the best with the rest raw by LM__AUTO_REST_GAIN: where it gains
 * less it mostly runs a second resource to its limit (a receiver that
 * decodes one of them slowly, taken to its last page per second). */
static void decide(lm__auto *a)
{
	lm__auto_search q = {.least = INFINITY};

	q.best = q.raw_best = q.cbest[LM_CODEC_NONE] = lm__auto_rate(a, LM_CODEC_NONE, 0);
	for (int pass = 0; pass < 2; pass++) {
		if (pass) {
			q.mixes = q.best >= LM__AUTO_REST_GAIN * q.raw_best;
			if (!q.mixes)
				q.best = q.raw_best;
		}
		for (uint16_t c = 0; c < LM_MAX_CODECS; c++) {
			if (!(a->cand & (1u << c)))
				continue;
			for (uint16_t r = 0; r < LM_MAX_CODECS; r++)
				if ((c ? rest_ok(a, c, r) : r == LM_CODEC_NONE) &&
				    (!pass || r == LM_CODEC_NONE || q.mixes))
					search_pair(a, c, r, pass, &q);
		}
	}
	/* All of it with one codec: no rest. */
	if (q.frac >= LM__AUTO_FRAC_ONE)
		q.rest = LM_CODEC_NONE;
	a->model_codec = q.codec;
	a->model_frac = q.codec == LM_CODEC_NONE ? 0 : q.frac;
	a->model_rest = q.codec == LM_CODEC_NONE ? LM_CODEC_NONE : q.rest;
	a->slow = a->few = 0;
	for (uint16_t c = 1; c < LM_MAX_CODECS; c++) {
		if (!(a->cand & (1u << c)))
			continue;
		if (q.cbest[c] < 0.5 * q.best)
			a->slow |= 1u << c;
		if (q.own[c] >= LM__AUTO_CAL_NEAR * q.best &&
		    a->pair_whole[c].packets < LM__AUTO_CAL_MIN)
			a->few |= 1u << c;
	}
}

/* The decision is the model's pick as it is. */
static void take_model(lm__auto *a)
{
	a->codec = a->model_codec;
	a->frac = a->model_frac;
	a->rest = a->model_rest;
}

/* Steering: the model's pick moved by what the window measured under the
 * decision in force. The model's costs are measured at the operating point
 * and extrapolated to the others; near the crossover of the link and CPU
 * bounds, where the decision is a mix, an error of 10-20% in them moves the
 * best share by a quarter (at 1gbit on two shared cores it put pure lz4 at
 * 200 MB/s of pages where lz4 moved 270, and sent 20% raw). The window says
 * on which side of the crossover the decision is: channels that waited for
 * the socket (b >= 0.03) had CPU the link could not take: compress more, if
 * the machine had idle CPU (and a cgroup quota room); channels that never
 * waited (b < 0.02) left the link room: compress less, unless the link delivered what it took when
 * last full (at 1gbit such windows came every few, and stepping down on
 * them sent 5% raw). In between the share holds. The model stays
 * the prior: its codec, its share when the steered one is more than 1/4
 * away (a link that changed) and its pick when the receiver is the limit
 * (its receiver term knows the decode costs) are taken as they are. */
static void steer(lm__auto *a, const lm__auto_meas *m)
{
	uint32_t f = a->codec == LM_CODEC_NONE ? 0 : a->frac, mf = a->model_frac;
	uint32_t lo = mf > LM__AUTO_STEER_MAX ? mf - LM__AUTO_STEER_MAX : 0;
	uint32_t hi = mf + LM__AUTO_STEER_MAX;
	/* Room for more compression: idle CPU, and under a quota CPU time
	 * left in it (the channels below their share of it). */
	int room = (a->idle < 0 || a->idle >= 0.1) &&
		   (a->cores_quota <= 0 ||
		    (double)m->tx.cpu_ns < (a->cores_quota - 0.1) * (double)m->wall_ns);
	/* Not waiting, yet delivering what the link took when last full:
	 * production and link even, the best place; raw pages would only
	 * queue. */
	int full = a->full_age <= LM__AUTO_FULL_MEMORY && a->delivered >= 0.95 * a->full &&
		   a->delivered <= 1.05 * a->full;

	if (!a->steer || !m->tx.wire_bytes || !m->wall_ns || a->model_codec == LM_CODEC_NONE ||
	    (f && a->codec != a->model_codec) || a->rest != a->model_rest || f < lo || f > hi ||
	    rx_limited(a)) {
		take_model(a);
		return;
	}
	/* A step the way the window says, or to the model's share where
	 * that is more than two steps further the same way (the link
	 * changed: follow at once). */
	if (a->blocked >= 0.03 && room) {
		f += a->blocked >= 0.3 ? 2 * LM__AUTO_STEER_STEP : LM__AUTO_STEER_STEP;
		f = f + 2 * LM__AUTO_STEER_STEP < mf ? mf : f;
	} else if (a->blocked < 0.02 && !full && !a->final) {
		f = f > LM__AUTO_STEER_STEP ? f - LM__AUTO_STEER_STEP : 0;
		f = f > mf + 2 * LM__AUTO_STEER_STEP ? mf : f;
	}
	f = f < lo ? lo : f > hi ? hi : f;
	a->frac = f > LM__AUTO_FRAC_ONE ? LM__AUTO_FRAC_ONE : f;
	/* Stepped down to none of it: raw, or every packet with the rest
	 * (still the model's decision, so steering climbs back from there);
	 * up to all of it: no rest. */
	a->codec = a->frac || a->rest != LM_CODEC_NONE ? a->model_codec : LM_CODEC_NONE;
	if (a->frac >= LM__AUTO_FRAC_ONE)
		a->rest = LM_CODEC_NONE;
}

void lm__auto_update(lm__auto *a, const lm__auto_meas *m)
{
	fold_codecs(a, m);
	fold_cpu(a, m);
	fold_receiver(a, m);
	fold_rwnd(a, m);
	fold_link(a, m);
	decide(a);
	steer(a, m);
	a->rate = lm__auto_rate_mix(a, a->codec, a->frac, a->rest);
	a->windows++;
}

/* The switchover's copy. The windows before it measure the round's
 * tail: channels idle while the SYNC travelled, then a burst. A probe
 * upward on them (they delivered more than when last full: fold_link's
 * rule) put a 1gbit link at 144 MB/s, the decision went from zstd to lz4
 * for the downtime, and its pages went out at 0.48 wire bytes a page byte
 * where the round whose drain rate the downtime estimate took sent about
 * 0.35: 17 ms over the estimate (1 run in 30; 0.63 and 16 ms over it once
 * in the sixteenth session's 9). The workload is paused, so compressing
 * as much as in the round costs CPU it no longer takes. */
void lm__auto_final(lm__auto *a, int paced)
{
	/* Paced, the link beyond the pace was never seen: the copy finds
	 * it as any window does. */
	if (paced || !a->windows)
		return;
	a->final = 1;
	if (a->full > 0 && a->full_age <= LM__AUTO_FULL_PROBE && a->link > a->full)
		a->link = a->full;
	a->probing = 0;
	decide(a);
	take_model(a);
	a->rate = lm__auto_rate_mix(a, a->codec, a->frac, a->rest);
}

/* bits 0-7 codec, 8-18 share (1/1024), 24-31 candidates, 32-39 slow ones,
 * 40-47 the rest's codec, 48-55 the codecs short of pairs. */
uint64_t lm__auto_snapshot(const lm__auto *a)
{
	return (uint64_t)a->codec | (uint64_t)a->frac << 8 | (uint64_t)(a->cand & 0xff) << 24 |
	       (uint64_t)(a->slow & 0xff) << 32 | (uint64_t)(a->rest & 0xff) << 40 |
	       (uint64_t)(a->few & 0xff) << 48;
}

/* The sampling turn: the next candidate other than the decision's, round
 * robin; a slow one takes its turn only every LM__AUTO_SLOW_EVERY rounds.
 * NONE when this turn samples nothing. */
static uint16_t sample(uint32_t others, uint32_t slow, lm__auto_chan *c, uint16_t channel)
{
	uint32_t n = lm__popcount64(others), k, bits = others;
	uint16_t id;

	if (!n)
		return LM_CODEC_NONE;
	k = (c->rot + channel) % n; /* the channels start on different candidates */
	while (k--)
		bits &= bits - 1;
	id = (uint16_t)lm__ctz64(bits);
	c->rot++;
	if ((slow >> id & 1) && (c->rot / n) % LM__AUTO_SLOW_EVERY)
		return LM_CODEC_NONE;
	return id;
}

uint16_t lm__auto_pick(uint64_t snap, lm__auto_chan *c, uint16_t channel, uint16_t *probe)
{
	uint16_t codec = (uint16_t)(snap & 0xff);
	uint32_t frac = (uint32_t)(snap >> 8 & 0x7ff), cand = (uint32_t)(snap >> 24 & 0xff);
	uint32_t slow = (uint32_t)(snap >> 32 & 0xff);
	uint16_t rest = (uint16_t)(snap >> 40 & 0xff), got;
	uint32_t few = (uint32_t)(snap >> 48 & 0xff);
	/* From the first packet on: the first decision comes after
	 * LM__AUTO_START_WINDOW_US and should see the candidates measured. */
	uint32_t n = c->n++;
	/* Often while the estimates are priors, seldom once measured. */
	uint32_t every = c->rot < LM__AUTO_SAMPLE_FIRST ? LM__AUTO_SAMPLE : LM__AUTO_SAMPLE_LATER;

	uint32_t in_use = 1u; /* none, and what the packets go with */

	if (codec >= LM_MAX_CODECS)
		codec = LM_CODEC_NONE;
	if (rest >= LM_MAX_CODECS || codec == LM_CODEC_NONE || frac >= LM__AUTO_FRAC_ONE)
		rest = LM_CODEC_NONE;
	if (frac)
		in_use |= 1u << codec;
	in_use |= 1u << rest;
	*probe = n % every == 0 ? sample(cand & ~in_use, slow, c, channel) : LM_CODEC_NONE;
	if (*probe != LM_CODEC_NONE && (few >> *probe & 1) &&
	    c->wholes[*probe] < LM__AUTO_CAL_MIN) {
		c->wholes[*probe]++;
		*probe |= LM__AUTO_WHOLE;
	}
	got = LM_CODEC_NONE;
	if (codec != LM_CODEC_NONE) {
		c->acc += frac;
		got = rest;
		if (c->acc >= LM__AUTO_FRAC_ONE) {
			c->acc -= LM__AUTO_FRAC_ONE;
			got = codec;
		}
	}
	/* The codec in use: a pair now and then, on a packet no other
	 * sample takes. */
	if (got != LM_CODEC_NONE && c->cal < LM__AUTO_CAL)
		c->cal++;
	if (got != LM_CODEC_NONE && c->cal >= LM__AUTO_CAL && *probe == LM_CODEC_NONE) {
		c->cal = 0;
		*probe = got | LM__AUTO_WHOLE;
	}
	return got;
}
