#ifndef LM_SENDER_H
#define LM_SENDER_H

#include <pthread.h>
#include <stdint.h>

#include "channel.h"
#include "checksum.h"
#include "codec/auto.h"
#include "codec/codec.h"
#include "codec/kinds.h"
#include "cgroup.h"
#include "cpuidle.h"
#include "livemig.h"

enum { LM_TX_IDLE, LM_TX_JOB, LM_TX_SYNC, LM_TX_QUIT, LM_TX_DEVSTATE };

/* name, base, len: set before connect by the thread driving the sender,
 * read-only from then on. */
typedef struct lm__tx_region {
	char name[LM_MAX_REGION_NAME + 1];
	const uint8_t *base;
	uint64_t len;
	/* Set up at connect; channel threads land pages (atomics), the
	 * driving thread lands skipped pages and reopens a page only while no
	 * channel holds it, and refreshes or finishes it with channels idle. */
	lm__sumtree sum;
} lm__tx_region;

/* A channel's counters as of its last packet or sync (lm_sender_stats()
 * from any thread reads these, never the live counters). */
typedef struct lm__tx_pub {
	uint64_t zero_pages, normal_pages, payload, packets, bytes_in, bytes_out;
	uint64_t ref_pages, delta_pages, delta_bytes, dcache_hits, dcache_misses;
	double cpu;
	lm_engine_stats eng[LM_MAX_ENGINES];
	lm_codec_mix mix[LM_MAX_CODECS];
} lm__tx_pub;

typedef struct lm__tx_chan {
	struct lm_sender *s;   /* s, idx: set before the thread starts */
	uint16_t idx;
	pthread_t tid;         /* owner: main thread */
	int started;           /* owner: main thread */
	pthread_cond_t cond;   /* signalled when state leaves IDLE */
	int state;             /* guarded by s->lock */
	/* The job: written by the main thread while IDLE, read by the channel
	 * thread while JOB (the state change under s->lock orders them). */
	uint32_t job_region, job_pages;
	uint64_t job_num;
	uint64_t *job_off;
	uint64_t job_pos;      /* round one: where job_off[0] is in the cursor's terms */
	/* Owner: the conn and buffers belong to the channel thread while its
	 * state is not IDLE, to the main thread otherwise. */
	lm__conn conn;
	/* Input the receiver sent while the conn watched for it (conn's
	 * on_input, lm__sender_take_input): a frame header that was not
	 * FEEDBACK (held), or the failure reading it met (in_rc, in_err);
	 * lm__sender_peer_reason goes on from there. Owner: as conn. */
	lm__frame held;
	int have_held, in_rc;
	lm__err in_err;
	uint8_t *hdr;          /* frame + data header + tables */
	struct iovec *iov;
	lm__plan plan;         /* how each page of the packet travels (kinds.h) */
	/* Codec contexts by id (codecs.c): the pinned codec's, or with codec
	 * auto every candidate's; NULL where none was opened. */
	const lm__codec_ops *cops[LM_MAX_CODECS];
	void *cctx[LM_MAX_CODECS];
	uint8_t *enc;          /* encoded payload, enc_cap = the largest bound */
	size_t enc_cap;
	lm__auto_chan pick;    /* codec auto: where this channel is in the mix */
	/* Codec auto: the codecs this channel has encoded whole packets
	 * with (sent, or a pair's whole), and samples of their first pages
	 * with (bits; owner: the channel thread). A context's first
	 * encode at a size allocates its workspace for it (zstd sizes it from
	 * the input's) and faults it in, at 10-20x its cost after: that one
	 * is not a measurement of the codec. */
	uint32_t warm, warm_sample;
	/* Codec auto: the channel thread's schedstat (lm__thread_wait_open;
	 * owner: the channel thread, which opens it as it starts and closes
	 * it as it ends; -1 without). */
	int wait_fd;
	uint8_t *bounce;       /* live: a stable copy of the pages to encode */
	const void **pages;    /* the packet's normal pages, for the codec */
	uint32_t *lens;        /* their encoded lengths */
	uint64_t round_packets;
	uint64_t features;     /* ack.features of this channel's hello (main, at connect) */
	/* Counters: the channel thread writes them while not IDLE (the codec
	 * context fills eng); readers wait for IDLE (lm__sender_wait_idle,
	 * under s->lock) or for the join. cpu is written as the thread
	 * ends: read it only after the join. */
	lm_engine_stats eng[LM_MAX_ENGINES];
	uint64_t zero_pages, normal_pages, payload, packets;
	lm_codec_mix mix[LM_MAX_CODECS]; /* by the codec a packet went with */
	double cpu;
	/* Codec auto's view of this channel's work: written by the channel
	 * thread with relaxed atomic adds, read by the updater with relaxed
	 * loads (codecs.c); counted for pinned codecs too. */
	lm__auto_ctr ctr;
	/* Owner: the updater (the thread driving the sender): ctr and fb as
	 * its last window saw them. */
	lm__auto_ctr ctr_seen;
	lm__feedback fb_seen;
	uint32_t fb_seen_seq;
	/* The receiver's last FEEDBACK on this channel (LM_FEAT_MIXED):
	 * written by whoever owns the conn (the channel thread during data,
	 * the driving thread in await_ack and finish) under s->lock, read
	 * under it. */
	lm__feedback fb;
	uint32_t fb_seq;
	/* Guarded by s->lock: written by whoever owns the channel's counters
	 * (the channel thread as it goes idle, the driving thread after it
	 * used the conn), read by lm_sender_stats(). */
	lm__tx_pub pub;
	/* A piece of the device state (devstate.c): ds_len bytes at ds_off
	 * of the state in ds_buf (LM__DEVSTATE_PIECE bytes, made on the
	 * channel's first piece). Owner: as the job's fields. */
	uint8_t *ds_buf;
	uint32_t ds_len;
	uint64_t ds_off;
} lm__tx_chan;

/* Fields without a note are set by lm_sender_new(), add_region() or at
 * connect (before the channel threads start) and read-only from then on. */
struct lm_sender {
	lm_sender_config cfg;
	uint32_t page_size, packet_pages, nch;
	lm__tx_region regions[LM_MAX_REGIONS];
	uint32_t nregions;
	uint8_t session[16];
	uint64_t features;        /* accepted by the receiver (LM_FEAT_*) */
	lm__tx_chan *ch;
	/* Page kinds: set up at connect; its round is written by the driving
	 * thread while every channel is idle (lm__sender_round_begin). */
	lm__kinds kinds;
	int wake_fd;              /* eventfd: readable once the run failed or was cancelled */
	int cancelled;            /* atomic: lm_sender_cancel() was called */
	const struct lm__engine_ops *accel_ops; /* tests: scripted accelerator */
	uint64_t (*dedup_hash)(const void *p, size_t len); /* tests: a weak hash */
	uint64_t (*wait_ns)(int fd); /* tests: the run-queue wait (lm__thread_wait_ns) */
	/* Owner: the thread driving the sender; set up by connect. */
	lm__tls_ctx *tls;         /* NULL: plaintext */
	char peer_name[256];      /* the name the receiver's certificate must carry */
	char tls_suite[64], tls_peer[128]; /* for the stats */
	uint32_t tls_resumed;     /* channels that resumed channel 0's session */
	pthread_mutex_t lock;
	pthread_cond_t idle_cond; /* a channel went IDLE, or the run failed */
	/* The first failure: written once, under lock (lm__sender_error).
	 * Read under lock while channel threads run; without it once they
	 * are joined or idle for good (abort_channels, finish), or by a
	 * thread that already saw it set under lock (it never changes). */
	int err;
	char errmsg[512];
	/* Wire bytes of all data packets sent (atomic): the rate limit's view
	 * while channels run. */
	uint64_t wire_bytes;
	/* Codec auto (cfg.codec LM_CODEC_AUTO; is_auto is set by new()): the
	 * model and its window are the updater's, the thread driving the
	 * sender (lm__sender_auto_tick); the decision it publishes for the
	 * channel threads is auto_snap, a relaxed atomic. */
	int is_auto;
	lm__auto au;
	uint64_t auto_t, auto_rate_limit;
	uint64_t auto_snap;
	lm__cpuidle idle;   /* the machine's idle CPU: the updater's */
	uint64_t idle_seen; /* its last reading, valid while idle_have */
	int idle_have;
	uint32_t idle_fails; /* reads failed in a row */
	/* The cgroups' CPU quotas: the updater's. A span of windows of at
	 * least a quota period from cg_t (us; 0: none begun), what each
	 * level had used at its start, and the channels' CPU since. */
	lm__cgroup cg;
	uint64_t cg_t, cg_tx;
	uint64_t cg_seen[LM__CGROUP_LEVELS];
	uint32_t cg_windows; /* windows since the cgroups were last found */
	/* Owner: the thread driving the sender (channel threads never read
	 * these; lm_sender_stats() does, from that thread). */
	int live;                 /* pages may change while they are sent */
	uint64_t rate_limit;      /* bytes/s for dispatch, 0 = none */
	double rate_tokens;       /* the bucket (pace()): bytes we may send */
	uint64_t rate_last_us, rate_seen; /* last refill; wire_bytes charged */
	lm_stats live_st;         /* live fields, filled by live.c */
	/* live, uffd-wp: pages dirtied again since this round's sync, per
	 * region, are left for the next round (Xen's pre-copy does the same:
	 * they would travel twice). skip_refresh adds to them; it is called
	 * every LM__SKIP_REFRESH_US of dispatching. NULL: send everything. */
	const uint64_t *const *skip;
	void (*skip_refresh)(void *user);
	void *skip_user;
	uint64_t skip_t, skipped_pages;
	uint64_t refs_resent;     /* live: ref pages sent again, their source changed */
	/* The last round's SYNC -> ACK(SYNC) latency in microseconds: from
	 * the data handed to the sockets to the destination's ack (live.c's
	 * switchover model). */
	uint64_t sync_us;
	/* The driving thread's; only idle_channel() touches it, under lock
	 * because it scans the states there anyway. */
	uint32_t next_ch;
	/* The round being sent. Written by the driving thread only while
	 * every channel is IDLE (lm__sender_sync, after wait_idle); channel
	 * threads read it while busy (send_packet, send_sync): the post() of
	 * their job, under lock, orders the write before the read. */
	uint32_t round;
	/* Control requests from any thread (control.c): atomics the driving
	 * thread takes at its next decision or packet. ctl_bandwidth is
	 * LM__CTL_NONE when nothing is asked. rate_lifted: the driving
	 * thread's, set at the pause (no request applies after it). */
	int bad_config;           /* new() found the config wrong: every call fails */
	int ctl_switchover;
	uint32_t ctl_downtime_ms;
	uint64_t ctl_bandwidth;
	int rate_lifted;
	/* The stats snapshot (lm_sender_stats() on any thread), guarded by
	 * lock: the driving thread's part as it last published it
	 * (lm__sender_publish), with its clocks; the channels' parts are
	 * their ch->pub, of the pub_nch channels at pub_ch. */
	lm_stats pub;
	uint64_t pub_t_start, pub_t_setup, pub_t_end;
	lm__tx_chan *pub_ch;
	uint32_t pub_nch;
	/* lm_sender_cursor(): round one's walk, in bytes into the regions
	 * taken one after another. Written by the driving thread with
	 * relaxed atomic stores (cursor_done under lock, where it reads the
	 * channels' states), read from any thread with relaxed loads. */
	uint64_t cursor_handed, cursor_done;
	/* From here on again only the driving thread's. */
	uint64_t next_packet;
	lm_status status;
	uint64_t t_start, t_setup, t_first_data, t_end;
	double main_cpu;
	/* Device state (devstate.c), the driving thread's: written once the
	 * callback returned; ds_sent says the END is due before COMPLETE. */
	int ds_sent;
	uint64_t ds_bytes, ds_sum, ds_us;
};

/* The pieces of a migration, for lm_sender_run() and live.c (the thread
 * driving the sender). Each returns 0 or the first error of the run. */
int lm__sender_send_all(lm_sender *s);
/* Channels idle: a round begins; set[r] = region r's pages it may send
 * (NULL: all), valid until the next call. */
void lm__sender_round_begin(lm_sender *s, const uint64_t *const *set);
/* Sends the pages whose bits are set in bitmap[region]. */
int lm__sender_send_dirty(lm_sender *s, uint64_t *const *bitmap);
int lm__sender_sync(lm_sender *s);     /* SYNC on every channel: a round ends */
int lm__sender_complete(lm_sender *s); /* checksums, verified reply */
/* Ends the run: joins the channel threads; on rc != 0 records it, tells the
 * receiver on every channel and closes. Returns the run's error or 0. */
int lm__sender_finish(lm_sender *s, int rc);
void lm__sender_fail(lm_sender *s, int code, const char *msg);
/* Before the first live round, channels idle: pages may change while sent. */
int lm__sender_set_live(lm_sender *s);
/* Main thread, channels idle: pages whose content moved (normal, ref,
 * delta) and zero pages, summed over the channels. */
void lm__sender_counts(const lm_sender *s, uint64_t *normal, uint64_t *zero);

/* The rest of what live.c uses (iface.c): it drives the sender only
 * through these and the pieces above, never its fields. All for the thread
 * driving the sender. */
typedef struct lm__sender_shape {
	uint32_t page_size, packet_pages, channels, nregions;
	uint64_t features;       /* accepted by the receiver (LM_FEAT_*) */
} lm__sender_shape;
void lm__sender_get_shape(const lm_sender *s, lm__sender_shape *out);
int lm__sender_bad_config(const lm_sender *s); /* new() refused the config: its code */
/* Region i's memory, as added. */
void lm__sender_region(const lm_sender *s, uint32_t i, const uint8_t **base, uint64_t *len);
uint32_t lm__sender_round(const lm_sender *s);   /* rounds synced so far */
uint64_t lm__sender_sync_us(const lm_sender *s); /* the last round's SYNC -> ACK */
uint64_t lm__sender_wire_bytes(const lm_sender *s); /* of every data and state frame sent */
/* The channel threads' CPU ns over their packets so far (auto's counters,
 * kept for every codec). */
uint64_t lm__sender_chan_cpu_ns(const lm_sender *s);
/* Pages dirtied again since their round's sync are left for the next round
 * (skip[r]: region r's bitmap), refresh(user) adds to them every
 * LM__SKIP_REFRESH_US of dispatching; NULL, NULL, NULL: send everything. */
void lm__sender_set_skip(lm_sender *s, const uint64_t *const *skip, void (*refresh)(void *),
			 void *user);
/* Channels idle: every ref a channel sent since the last call is given to
 * again(user, dep); those it returns 1 for count as resent refs. Returns
 * that count. */
uint64_t lm__sender_recheck_refs(lm_sender *s, int (*again)(void *, const lm__dep *), void *user);
/* The live fields of the stats (live, dirty, downtime...): live.c's own
 * lm_stats, copied in; the next snapshot shows them. */
void lm__sender_set_live_stats(lm_sender *s, const lm_stats *live);
void lm__sender_set_rate(lm_sender *s, uint64_t bytes_per_s); /* max_bandwidth, 0 = none */
uint64_t lm__sender_rate(const lm_sender *s);                 /* the one in effect */
void lm__sender_add_cpu(lm_sender *s, double secs);  /* the driving thread's CPU */
/* verify_source: the checksums are computed again over the paused memory. */
void lm__sender_rehash_all(lm_sender *s);

/* Between the files of the sender (session.c, channel.c, dispatch.c). */
/* Any thread: records the first failure (channel -1: none named), wakes
 * every waiter and every channel blocked on its peer. */
void lm__sender_error(lm_sender *s, int code, int channel, const char *msg);
/* A channel's failed write: the receiver's ERROR frame if it sent one
 * (FEEDBACK frames before it are taken as they come). */
int lm__sender_peer_reason(lm__tx_chan *ch, int rc, lm__err *e);
/* The body of a FEEDBACK frame f announced on ch: decoded into ch->fb
 * (fb_seq + 1, under s->lock). By whoever owns ch's conn now. */
int lm__sender_take_feedback(lm__tx_chan *ch, const lm__frame *f, lm__err *e);
/* ch's conn input hook (arg = ch), also called after each packet: takes
 * every FEEDBACK the receiver sent; 0 when nothing else waits, 1 when
 * another frame (held) or a failure (in_rc) does. */
int lm__sender_take_input(lm__conn *c, void *arg);
/* Main thread, ch's conn not in use by its thread: the ACK of kind, or the
 * receiver's ERROR. */
int lm__sender_await_ack(lm_sender *s, lm__tx_chan *ch, uint8_t kind, lm__ack *ack, lm__err *e);
void *lm__tx_chan_main(void *arg);           /* a channel thread */
void lm__sender_post(lm_sender *s, lm__tx_chan *ch, int state);
int lm__sender_wait_idle(lm_sender *s);      /* no channel busy; the first error */
/* codecs.c: a channel's codec contexts (at connect; e says why not);
 * freed with the channel. */
int lm__tx_codecs_open(lm_sender *s, lm__tx_chan *ch, lm__err *e);
void lm__tx_codecs_free(lm__tx_chan *ch);
/* Channel thread: the codec to try on its next packet, and codec auto's
 * sample to measure after it (NONE: none). */
uint16_t lm__tx_codec_pick(lm__tx_chan *ch, uint16_t *sample);
/* A FEEDBACK frame after the last one taken from that channel: 1 when its
 * counts only grew and its busy and decode times fit in its wall time. */
int lm__feedback_sane(const lm__feedback *now, const lm__feedback *seen);
/* Thread driving the sender: codec auto's model starts (after the
 * handshake), and re-decides when a window is over (per packet posted). */
void lm__sender_auto_start(lm_sender *s);
void lm__sender_auto_tick(lm_sender *s);
/* Live, paused, right before the switchover's copy: codec auto's decision
 * for it (lm__auto_final; paced: the rounds had a rate limit), published
 * at once. The driving thread. */
void lm__sender_auto_final(lm_sender *s, int paced);
/* The owner of ch's conn (its channel thread while it works, the updater
 * while it is idle): the socket's TCP_INFO counters into ch->ctr, when
 * the socket tells them. */
void lm__sender_auto_read_tcp(lm__tx_chan *ch);
/* A call's mistake: its message (printf-style) unless a failure is
 * recorded; returns code. */
int lm__sender_usage(lm_sender *s, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Whether run or migrate (call) may start: 0, or the code with its message. */
int lm__sender_run_state(lm_sender *s, const char *call);
/* control.c: the requests of lm_sender_switchover(), _set_downtime_limit()
 * and _set_max_bandwidth(), taken by the thread driving the sender. */
#define LM__CTL_NONE UINT64_MAX
void lm__sender_ctl_reset(lm_sender *s);        /* a migration starts: none pending */
int lm__sender_ctl_switchover(lm_sender *s);    /* 1: switch over now */
uint32_t lm__sender_ctl_downtime(lm_sender *s); /* a new limit in ms, 0: none */
void lm__sender_ctl_rate(lm_sender *s);         /* applies a new max bandwidth */
void lm__sender_lift_rate(lm_sender *s);        /* the pause: unlimited from now */
/* Stats snapshots. The thread driving the sender publishes its part
 * (status, rounds, clocks, live fields, codec auto) and, when every channel
 * is idle or joined (channels_idle), each channel's counters too; a
 * channel thread publishes its own (lm__tx_publish, s->lock held) as it
 * goes idle. */
void lm__sender_publish(lm_sender *s, int channels_idle);
void lm__tx_publish(lm__tx_chan *ch);
/* devstate.c. The feature bit a hello offers and requires: DEVSTATE with a
 * device state callback, else 0. */
uint64_t lm__sender_devstate_feature(const lm_sender *s);
/* Thread driving the sender, after the last round's pages were posted and
 * before its SYNC: the device state callback, its pieces posted to the
 * channels as it writes them; returns once every piece was written. */
int lm__sender_devstate(lm_sender *s);
/* Thread driving the sender: the bytes the device state callback is
 * expected to write (lm_sender_config.device_state_size, at most
 * device_state_max), 0 without one. */
uint64_t lm__sender_devstate_expected(lm_sender *s);
/* Thread driving the sender, channels idle, before COMPLETE on channel 0:
 * the DEVSTATE_END (size, checksum) when a state was sent, else nothing. */
int lm__sender_devstate_end(lm_sender *s, lm__err *e);
/* Channel thread, state LM_TX_DEVSTATE: writes its piece. */
int lm__tx_devstate_piece(lm__tx_chan *ch, lm__err *e);
/* dispatch.c: the next idle channel, round robin; NULL once the run failed. */
lm__tx_chan *lm__sender_idle_channel(lm_sender *s);
/* Thread driving the sender: LM_ECANCELED (recorded) after lm_sender_cancel(). */
int lm__sender_cancelled(lm_sender *s);

#endif
