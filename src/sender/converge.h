/*
 * The rate model of live pre-copy (the equations are in converge.c's head
 * comment): what the switchover would cost now, whether the rounds reach a
 * dirty set that fits the downtime limit on their own, and else the
 * throttle that makes the next round's set fit.
 *
 * Thread safety: owned by the thread running lm_sender_migrate().
 */
#ifndef LM_SENDER_CONVERGE_H
#define LM_SENDER_CONVERGE_H

#include <stdint.h>

#define LM__CONV_POINTS 64 /* growth samples kept per round */

/* What the switchover costs that is known before the migration. */
typedef struct lm__conv_setup {
	uint32_t page_size;
	uint32_t limit_ms;     /* the downtime limit */
	uint64_t total_bytes;  /* all regions */
	unsigned hash_threads; /* the sender's final hashing threads */
	int verify_source;     /* the sender hashes all of the paused memory */
	double hash_rate;      /* measured: bytes/s the checksum hashes on one thread */
	double sw_bw;          /* lm_live_config.switchover_bandwidth, 0: measured */
	unsigned cores;        /* CPUs the channels can have: channels, at most the online ones */
} lm__conv_setup;

/* One round's measurements, at its end. */
typedef struct lm__conv_round {
	uint64_t dirty;        /* pages dirty at the round's sync */
	uint64_t pages;        /* pages the round sent */
	uint64_t dirty_us;     /* since the previous dirty sync (or the arming) */
	double secs;           /* the round: first packet handed out to its ACK */
	double page_bytes;     /* non-zero page bytes it moved */
	double zero_bytes;     /* page bytes of its zero pages */
	uint32_t packet_bytes; /* packet_pages * page_size */
	uint64_t sync_us;      /* its SYNC -> ACK latency */
	uint64_t scan_us;      /* its dirty sync */
	uint32_t pct;          /* the throttle in effect while it ran */
	int paced;             /* a max_bandwidth was in effect at its end */
	double wire_bytes;     /* what it put on the wire (frames, payloads) */
	uint64_t dev_bytes;    /* the device state the application expects now */
	double cpu_ns;         /* the channel threads' CPU over it (0: not known) */
} lm__conv_round;

typedef struct lm__conv {
	lm__conv_setup c;
	double bw;            /* page bytes/s drained, 0 until measured */
	double wire_bw;       /* wire bytes/s of the round that set bw, 0: not known */
	double cpu_byte;      /* its channels' CPU ns per page byte, 0: not known */
	double dev_bytes;     /* the device state's expected bytes, the last round's word */
	double ack_ms;        /* fastest SYNC -> ACK seen, less the destination's rehash */
	double scan_ms[2];    /* the last two dirty syncs */
	double wset;          /* working set estimate: most pages dirty at a sync */
	double rate0;         /* unthrottled dirty rate, pages/s */
	double rate_now;      /* the dirty rate measured in the last round, pages/s */
	uint64_t dirty, prev_dirty; /* the last two rounds' dirty sets (prev 0: round 1) */
	uint32_t rounds, pct;
	/* Growth of this round's dirty set: pages dirty (n) t us after its
	 * interval began, from the mid-round scans (uffd-wp). */
	uint64_t pt_t[LM__CONV_POINTS], pt_n[LM__CONV_POINTS];
	uint32_t npts;
} lm__conv;

/* The switchover estimate for a dirty set, in milliseconds. */
typedef struct lm__conv_est {
	double total_ms, fixed_ms, var_ms;
} lm__conv_est;

void lm__conv_init(lm__conv *m, const lm__conv_setup *c);
/* A mid-round scan: n pages dirty t_us into the round's dirty interval. */
void lm__conv_sample(lm__conv *m, uint64_t t_us, uint64_t n);
void lm__conv_end_round(lm__conv *m, const lm__conv_round *r);
/* After lm__conv_end_round(): the expected downtime of switching now. */
lm__conv_est lm__conv_expected(const lm__conv *m);
/* After lm__conv_end_round(): 1 if the rounds would reach a set that fits
 * the limit within rounds_left rounds and ms_left ms (0: no time limit)
 * without a throttle. */
int lm__conv_converges(const lm__conv *m, uint32_t rounds_left, double ms_left);
/* The throttle for the next round (0..max): 0 when it converges without
 * one, else the least that makes the dirty set fit within two rounds; cur
 * when no throttle can help (the fixed costs alone are over the limit). */
uint32_t lm__conv_throttle(const lm__conv *m, uint32_t rounds_left, double ms_left, uint32_t cur,
			   uint32_t max);

#endif
