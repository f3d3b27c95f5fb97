/*
 * Codec auto: the decision model (auto.c explains the equations). Pure: it
 * sees only the measurements it is given, so tests drive it with made-up
 * links, CPUs and receivers.
 *
 * Who calls what:
 *  - each channel thread counts its own work in an lm__auto_ctr (relaxed
 *    atomics, cumulative) and asks lm__auto_pick() per packet, from the
 *    published decision (one relaxed 64-bit load: no lock per packet);
 *  - one updater (the thread driving the sender) every LM__AUTO_WINDOW_US
 *    sums the counters' deltas and the receiver's FEEDBACK deltas into an
 *    lm__auto_meas, calls lm__auto_update() and publishes
 *    lm__auto_snapshot().
 */
#ifndef LM_AUTO_H
#define LM_AUTO_H

#include <stdint.h>

#include "livemig.h"

#define LM__AUTO_WINDOW_US 100000u /* re-decide every 100 ms */
/* The first windows are shorter: a whole migration over a fast link can
 * take a few hundred ms, so the first decision must come sooner. */
#define LM__AUTO_FIRST_WINDOW_US 25000u
#define LM__AUTO_FIRST_WINDOWS 8u
/* The very first, raw (nothing measured yet): at 1gbit a 25 ms one queued
 * 7 MB of raw pages in the socket buffers. */
#define LM__AUTO_START_WINDOW_US 10000u
#define LM__AUTO_SAMPLE 16u        /* 1 packet in 16 per channel samples another candidate, */
#define LM__AUTO_SAMPLE_LATER 64u  /* 1 in 64 once each channel took LM__AUTO_SAMPLE_FIRST */
#define LM__AUTO_SAMPLE_FIRST 8u   /* turns */
/* A sample encodes the first pages of a packet's codec pages with the
 * candidate, after the packet went with the decision: whole packets of a
 * slow codec as samples cost 5-15x a raw packet's CPU, and on a fast link
 * where every packet goes raw they were most of what auto cost. */
#define LM__AUTO_SAMPLE_PAGES 16u
/* A sample of 16 pages is not a packet of 128: bench_codec on the
 * realistic image puts zstd's CPU per byte 30% above, its output 8%;
 * lz4's 15% and 2.5%. The sender learns the difference for each codec, in
 * this migration on these pages, from pairs: a packet's codec pages
 * encoded whole and their first LM__AUTO_SAMPLE_PAGES again. The codec
 * in use: 1 packet in LM__AUTO_CAL it went with (the packet is the
 * whole). One not in use: while it has fewer than LM__AUTO_CAL_MIN pairs
 * and is near the decision (LM__AUTO_CAL_NEAR), its sample turns encode
 * the whole packet too. */
#define LM__AUTO_CAL       64u
#define LM__AUTO_CAL_MIN   4u
#define LM__AUTO_CAL_KEEP  64u /* pairs kept: beyond, the sums halve */
#define LM__AUTO_CAL_PAGES 32u /* a pair's whole: at least this many pages */
#define LM__AUTO_CAL_MAX   1.5 /* a factor is within 1/1.5..1.5 (bench_codec: 1.3 at most) */
/* Pairs encoded whole as samples only for a codec whose best X with it on
 * half the packets or more is within this of the decision's (0.8 of it
 * as its samples, which overstate it up to 1.3x, would put it), once the
 * first decision is made, and by a channel at most LM__AUTO_CAL_MIN
 * times per codec: a whole zstd or deflate packet costs the CPU of 20-40
 * raw ones, and on a fast link, where none is picked, a few pairs of
 * every candidate would cost auto's start about 30 ms of CPU. */
#define LM__AUTO_CAL_NEAR 0.6
/* In lm__auto_pick()'s *sample: encode a pair (the codec id in the low
 * bits). */
#define LM__AUTO_WHOLE        0x100u
#define LM__AUTO_SAMPLE_ID(s) ((uint16_t)((s)&0xffu))
#define LM__AUTO_SLOW_EVERY 8u     /* a far too slow candidate gets 1 sample turn in 8 */
#define LM__AUTO_IDLE_SHARE 0.5    /* of the machine's idle CPU, what the CPU budget counts */
#define LM__AUTO_CORES_MIN 0.05    /* the budget never falls below this (a CPU fully taken) */
#define LM__AUTO_FRAC_ONE 1024u    /* fractions are in 1/1024 */
#define LM__AUTO_STEPS 64u         /* fractions tried per candidate */
#define LM__AUTO_STEER_MAX 256u    /* steering keeps within 1/4 of the model's share */
#define LM__AUTO_STEER_STEP 32u    /* a window's step (twice it when far off) */
#define LM__AUTO_RX_QUIET 10u      /* windows without FEEDBACK: the receiver term dropped */
#define LM__AUTO_REST_GAIN 1.03    /* a compressed rest must beat the rest raw by this */

/* One channel's cumulative counters. Written by its channel thread with
 * relaxed atomic adds, read by the updater with relaxed loads: each field
 * is monotonic, a window may see one packet's fields half counted, which
 * the next window settles. */
typedef struct lm__auto_try {
	uint64_t packets; /* packets this codec was tried on */
	uint64_t in;      /* their codec page bytes */
	uint64_t out;     /* their payload bytes (in, if they did not shrink) */
	uint64_t ns;      /* wall ns encoding them */
	uint64_t cpu_ns;  /* the thread's CPU ns encoding them */
} lm__auto_try;

typedef struct lm__auto_ctr {
	/* Whole packets encoded with each codec: those sent, and a pair's
	 * whole encoded as a sample. */
	lm__auto_try codec[LM_MAX_CODECS];
	/* The samples: a packet's first LM__AUTO_SAMPLE_PAGES codec pages. */
	lm__auto_try sample[LM_MAX_CODECS];
	/* Pairs: the whole (also in codec[]) and its first pages (in no
	 * other counter). */
	lm__auto_try pair_whole[LM_MAX_CODECS], pair_part[LM_MAX_CODECS];
	uint64_t plan_ns, plan_bytes; /* planning (zero scan, refs, deltas); codec page bytes */
	uint64_t write_ns, wire_bytes; /* wall ns in writev, and every byte it wrote */
	uint64_t write_wait_ns; /* of those, ns waiting for the socket to take more */
	uint64_t cpu_ns;       /* the thread's CPU ns over its packets, all of it */
	uint64_t write_cpu_ns; /* of those, from the encoding's end to the write's */
	/* Not cumulative: the socket's unsent bytes (lm__conn_unsent, 0
	 * unknown) after the channel's last write, written by the channel
	 * thread; or as the updater read them while the channel was idle
	 * (its conn the updater's then: the state change under s->lock
	 * orders the two). In a window's sum (lm__auto_meas):
	 * wire bytes that crossed the link, those written less the growth
	 * of the channels' unsent bytes. */
	uint64_t unsent;
	uint64_t delivered;
	/* Not ours either: the kernel's microseconds the socket had data to
	 * send and, of those, waited for the receiver's window
	 * (lm__conn_limits), read where unsent is; rwnd_known set (release)
	 * after both were first stored. In a window's sum: their growth over
	 * the channels read before (a channel's first reading is its start:
	 * the counters run from the connect), rwnd_known those channels. */
	uint64_t tcp_busy_us, rwnd_us;
	uint64_t rwnd_known;
	/* Not cumulative: the socket's smallest round trip seen (the path's,
	 * without queues), read with them; in a window's sum the longest of
	 * the channels'. */
	uint64_t rtt_us;
} lm__auto_ctr;

/* One window: counters' deltas summed over the channels, and the receiver's
 * (FEEDBACK deltas summed over its channels; rx_wall_ns 0: none came). */
typedef struct lm__auto_meas {
	uint64_t wall_ns;  /* the window's length */
	uint32_t channels; /* sender channel threads */
	lm__auto_ctr tx;
	/* The machine's idle CPU ns in the window on the CPUs the sender may
	 * run on (idle_known 0: not known, the CPU budget is the channels;
	 * -1: not in this window, the budget stays as it was). */
	uint64_t idle_ns;
	int idle_known;
	/* The cores a cgroup CPU quota leaves the channels: the quota less
	 * what the rest of the cgroup used, the tightest of the cgroups on
	 * the way up, over the last span of at least a quota period
	 * (quota_known 1; 0: no quota, -1: not in this window, the budget
	 * stays as it was). May be <= 0: others use all of it. */
	double quota_free;
	int quota_known;
	uint32_t rx_channels; /* receiver channels whose FEEDBACK came in the window */
	uint64_t rx_cpu_ns, rx_wall_ns;
	struct {
		uint64_t pages, ns;
	} rx[LM_MAX_CODECS];
} lm__auto_meas;

/* The model's state. Owner: the updater. */
typedef struct lm__auto {
	uint32_t cand;       /* candidate codec ids, a bit each (none always) */
	uint32_t page_size;
	uint32_t channels;
	uint64_t rate_cap;   /* bytes/s the sender itself paces to, 0 = none */
	/* Estimates (EWMA). Per input byte: the codec's page bytes. */
	double ratio[LM_MAX_CODECS];  /* payload / input */
	/* Sender wall ns per input byte encoding, less its run-queue waits. */
	double enc_ns[LM_MAX_CODECS];
	double seen[LM_MAX_CODECS];   /* measured, ever, in 128-page packets */
	/* The pairs' sums (halved beyond LM__AUTO_CAL_KEEP): a whole
	 * packet's output, wall and CPU ns per byte over a sample's scale
	 * the samples (auto.c, fold_codecs). */
	lm__auto_try pair_whole[LM_MAX_CODECS], pair_part[LM_MAX_CODECS];
	double plan_ns;      /* wall ns per input byte planning */
	double write_ns;     /* ns per wire byte in writev, not waiting for the socket */
	/* The CPU budget: CPU ns per input byte encoding with each codec,
	 * of everything else per input byte and per wire byte, and the
	 * cores the channels can have (0: not known). */
	double enc_cpu[LM_MAX_CODECS];
	double cpu_other, cpu_write;
	double cores;        /* the smaller of the two below that are known */
	double cores_idle;   /* from the machine's idle CPU (0: not known) */
	double cores_quota;  /* from the cgroup's quota (0: none) */
	double link;         /* wire bytes/s the link takes */
	double blocked;      /* last window: share of channel time blocked in writes, */
	double delivered;    /* and the wire bytes/s that crossed the link */
	int probing;         /* the last window raised L, not blocked */
	double full;         /* L when the link was last full (b >= 0.15) ... */
	uint32_t full_age;   /* ... that many windows ago */
	/* Receiver, from FEEDBACK: ns per page decoding each codec, ns per
	 * page of everything else its channel threads do, how busy they are. */
	double rx_dec_ns[LM_MAX_CODECS];
	double rx_seen[LM_MAX_CODECS]; /* decoded, ever, in 128-page packets */
	double rx_base_ns, rx_busy;
	uint32_t rx_channels; /* its channel threads (one per channel; 0: no receiver term) */
	uint32_t rx_quiet;   /* windows in a row without a FEEDBACK taken */
	double idle;         /* the machine's idle cores (EWMA; < 0: not known) */
	/* Share of the sockets' busy time (data to send) they waited for the
	 * receiver's window (TCP_INFO; rises at once, falls gently; < 0: not
	 * known): a receiver that cannot keep up, not the link. */
	double rwnd;
	double rtt_us; /* the longest of the sockets' smallest round trips (0: not known) */
	/* The model's pick (the largest X), and the decision: that pick
	 * steered by what the last window measured (auto.c). */
	uint16_t model_codec;
	uint32_t model_frac;
	uint16_t model_rest;
	int steer;           /* 1 (lm__auto_init): steer; 0: the model's pick as it is */
	int scale;           /* 1 (lm__auto_init): samples scaled by the pairs; 0: as measured */
	uint16_t codec;      /* compress with this ... */
	uint32_t frac;       /* ... this share of packets (1/1024), */
	uint16_t rest;       /* ... the rest with this one (none: raw) */
	double rate;         /* its model throughput, input bytes/s */
	uint32_t slow;       /* candidates far too slow to sample often (bits) */
	uint32_t few;        /* near ones short of pairs: sampled whole (bits) */
	uint64_t windows;    /* windows folded in */
	int final;           /* the switchover's copy is on (lm__auto_final) */
} lm__auto;

/* Per channel, per packet: where the channel is in its mix. Owner: the
 * channel thread. */
typedef struct lm__auto_chan {
	uint32_t n;   /* packets asked for */
	uint32_t acc; /* the compressed share owed, in 1/1024 */
	uint32_t rot; /* the sampling rotation */
	uint32_t cal; /* compressed packets since the last pair of their codec */
	uint8_t wholes[LM_MAX_CODECS]; /* pairs encoded whole as samples, per codec */
} lm__auto_chan;

/* cand: the candidate ids (bits); none is always added. rate_cap: bytes/s
 * the sender paces its wire bytes to (0: unlimited). */
void lm__auto_init(lm__auto *a, uint32_t cand, uint32_t page_size, uint32_t channels,
		   uint64_t rate_cap);
/* The sender's rate limit changed (live: lifted for the downtime). */
void lm__auto_set_cap(lm__auto *a, uint64_t rate_cap);
/* A channel's TCP_INFO counters (busy, rwnd: lm__conn_limits; rtt_us its
 * smallest round trip) into a window's sum m, from what the last window
 * saw of them (seen, the updater's). They are the socket's, from its
 * connect (an fd: transport's socket may be old): the first reading only
 * starts the count. Only growing: a smaller one would be another socket's
 * start, and starts the count again. */
void lm__auto_tcp_window(uint64_t busy, uint64_t rwnd, uint64_t rtt_us, lm__auto_ctr *seen,
			 lm__auto_meas *m);
/* The switchover's copy begins: the paused workload's last pages, all at
 * once and unpaced, so the link is the limit. The link estimate goes back
 * to what the link took when last full within LM__AUTO_FULL_PROBE windows,
 * where there was such a reading (not a probe of the round's tail); from
 * now on it is not probed upward, steering does not step toward raw, and
 * the decision is taken again at once. Nothing changes when the rounds
 * were paced (the link beyond the pace is not known) or no window was
 * measured yet (raw until one is, as at the start). */
void lm__auto_final(lm__auto *a, int paced);
/* Folds a window into the estimates and re-decides. */
void lm__auto_update(lm__auto *a, const lm__auto_meas *m);
/* The model's throughput (input bytes/s) for compressing frac/1024 of the
 * packets with codec and sending the rest raw: the smallest of the link,
 * sender CPU and receiver limits. */
double lm__auto_rate(const lm__auto *a, uint16_t codec, uint32_t frac);
/* The same with the rest of the packets compressed with codec rest. */
double lm__auto_rate_mix(const lm__auto *a, uint16_t codec, uint32_t frac, uint16_t rest);
/* The decision, packed for lm__auto_pick(). */
uint64_t lm__auto_snapshot(const lm__auto *a);
/* Channel thread, per packet with codec pages: the codec to use, and in
 * *sample a candidate to measure on the packet's first pages (NONE: no
 * sample this packet); with LM__AUTO_WHOLE a pair (the candidate may then
 * be the packet's own codec). */
uint16_t lm__auto_pick(uint64_t snap, lm__auto_chan *c, uint16_t channel, uint16_t *sample);

#endif
