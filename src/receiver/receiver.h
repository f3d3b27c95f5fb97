#ifndef LM_RECEIVER_H
#define LM_RECEIVER_H

#include <pthread.h>
#include <time.h>
#include <stdint.h>

#include "channel.h"
#include "checksum.h"
#include "codec/codec.h"
#include "livemig.h"

/* Connections beyond the session's channels that may be in their handshake
 * at once (intruders, retries); more are closed unread. */
#define LM_RX_EXTRA_SLOTS 16
#define LM_RX_SLOTS (LM_MAX_CHANNELS + LM_RX_EXTRA_SLOTS)

/* A user region is filled by the thread driving the receiver before the run;
 * a region from the callback or alloc_regions by channel 0's thread while it
 * reads the region frames. Either way it is read-only from regions_ready on
 * (set under r->lock, which orders it for every other channel), but for the
 * fields with a note of their own. */
typedef struct lm__rx_region {
	char name[LM_MAX_REGION_NAME + 1];
	uint8_t *base;
	uint64_t len;
	int fresh;      /* memory known zero: zero pages need no write */
	int user_added; /* from lm_receiver_add_region() */
	int announced;  /* matched by the sender's region frame (channel 0) */
	/* Page i holds sent data (fresh regions only). Channel threads set
	 * bits with atomic ORs; rounds are ordered by the sync barrier. */
	uint64_t *written;
	/* Page i landed in the current round: channel threads set bits with
	 * atomic ORs before they write a page, so two channels never write
	 * one page at once (a bad peer's duplicate offsets); the last channel
	 * at the round barrier clears it while the others wait there. */
	uint64_t *claimed;
	/* Ref and delta sessions only (else NULL). landed[i]: page i's last
	 * landing, (round + 1) << 2 | LM__LANDED_* kind, 0 = never; a channel
	 * stores it (seq_cst) once the page's bytes are in place, so a ref
	 * that reads it sees them. pinned: like claimed, bit i set when a ref
	 * of this round copied page i as an earlier round's content, so it
	 * must not land again before the round ends; cleared with claimed. */
	uint32_t *landed;
	uint64_t *pinned;
	/* cfg.reserve: per LM__RESERVE_CHUNK piece, 0 not yet, 1 being
	 * reserved, 2 done, 3 failed (atomic; the first channel to need a
	 * piece reserves it, the others wait for it). NULL: nothing to do. */
	uint8_t *reserved;
	uint32_t id;
	/* Set up with the region; channel threads land pages (atomics); the
	 * last channel at a round barrier rehashes it while the others wait
	 * there, channel 0 finishes it at COMPLETE once all synced. */
	lm__sumtree sum;
	/* alloc_regions: our mapping. Made by channel 0's thread (above);
	 * unmapped by the run thread once every slot is joined. */
	uint8_t *mapped;
	uint64_t mapped_len;
} lm__rx_region;

/* A channel's counters as lm_receiver_stats() on any thread sees them. */
typedef struct lm__rx_pub {
	int channel;      /* -1: not a session channel (yet) */
	uint32_t round;
	uint64_t bytes_in, bytes_out, zero_pages, normal_pages, payload_bytes, packets;
	uint64_t ref_pages, delta_pages, delta_bytes;
	double cpu;
	lm_engine_stats eng[LM_MAX_ENGINES];
	lm_codec_mix mix[LM_MAX_CODECS];
} lm__rx_pub;

/* One accepted connection: a session channel once its hello is accepted. */
typedef struct lm__rx_chan {
	struct lm_receiver *r;
	/* Owner: the run thread (accept loop, run, free); start_slot()
	 * touches it under r->lock only because it reads exited there. */
	int slot_used;
	pthread_t tid;
	/* Guarded by r->lock: set by the slot's thread as it ends ("join
	 * it"); reset by the run thread before it starts the thread. */
	int exited;
	/* Session channel index, -1 until accepted: set by the slot's thread
	 * under r->lock (join_session), which then reads it freely; others
	 * read it under r->lock or once the thread is joined. The run thread
	 * resets it before it starts the slot's thread. */
	int channel;
	/* Guarded by r->lock: a connection not yet a session channel counts
	 * against the handshake limits; the accept loop may evict it. */
	int in_handshake, evicted;
	int closing;     /* refused, being closed: still counts, not evictable */
	uint64_t t_accept;
	/* Written by the accept loop before the thread starts, then the
	 * slot thread's: who connected, and the per-host limit's key. */
	char peer[64], host[48];
	/* Owner: this slot's thread until it is joined, then the run thread
	 * (the stats read them only after lm_receiver_run() returned). */
	lm__conn conn;
	uint32_t round;
	uint64_t last_num;
	int have_num;
	uint64_t round_packets;
	uint8_t *tab;    /* offset and length tables as read */
	uint64_t *off;
	uint32_t *plen;
	struct iovec *iov;
	uint8_t *payload;/* encoded payload (non-raw codecs) */
	void **pages;    /* decode targets */
	uint8_t *tail;   /* bounce page for a region's partial last page */
	lm__ref *refs;   /* the packet's ref and delta tables as read */
	lm__delta *deltas;
	uint8_t *area;   /* the packet's delta area, decoded (area_cap pages) */
	uint32_t area_cap;
	/* Codec contexts by codec id: the session's made at alloc; under
	 * MIXED each on the first packet of its codec (codec_ctx()). */
	void *codec_ctx[LM_MAX_CODECS];
	lm_engine_stats eng[LM_MAX_ENGINES]; /* filled by the codec contexts */
	/* By codec id: packets, page bytes decoded (normal pages and delta
	 * areas), payload bytes: the receiver's lm_stats.codec_mix. */
	lm_codec_mix mix[LM_MAX_CODECS];
	/* What FEEDBACK reports (MIXED): pages decoded and the wall ns spent
	 * in the codec's decode, by codec id, cumulative; round, cpu_ns and
	 * wall_ns are filled as each frame goes out. */
	lm__feedback fb;
	uint64_t t_hello_ns;  /* CLOCK_MONOTONIC at the channel's hello */
	uint64_t cpu_hello_ns;/* the thread's busy time then (lm__thread_busy_ns) */
	uint64_t t_fb_ns;     /* the last FEEDBACK sent, 0 = none yet */
	uint64_t zero_pages, normal_pages, payload_bytes, packets;
	uint64_t ref_pages, delta_pages, delta_bytes, ref_waits;
	/* Guarded by r->lock: this channel waits for a ref's source, page
	 * wait_page of wait_src (pages.c, to see every channel stuck). */
	int waiting;
	struct lm__rx_region *wait_src;
	uint64_t wait_page;
	double cpu;
	/* Guarded by r->lock: the counters as this slot's thread last
	 * published them (lm__rx_publish: every LM__RX_PUB_NS of data, and
	 * as it ends); reset by the run thread as it starts the slot. */
	lm__rx_pub pub;
	uint64_t t_pub_ns;  /* the slot thread's: its last publish */
	/* Device state (devstate.c): the piece being read and handed over,
	 * owner: this slot's thread (as the other buffers). ds_wait, guarded
	 * by r->lock: this channel holds a piece whose turn has not come,
	 * the one at ds_wait_off. */
	uint8_t *ds_buf;
	uint32_t ds_cap;
	int ds_wait;
	uint64_t ds_wait_off;
} lm__rx_chan;

struct lm_receiver {
	lm_receiver_config cfg;
	int listen_fd, port, wake_fd;
	/* Owner: the run thread (set by listen or accept_fds). */
	const lm__endpoint_ops *ep;   /* accepts and names peers */
	lm__tls_ctx *tls;             /* NULL: plaintext */
	const lm_tls_config *tls_cfg; /* the caller's, read by listen only */
	int fds[LM_MAX_CHANNELS];     /* accept_fds: not yet handed to a slot */
	uint32_t nfds;
	char unix_path[512];          /* a socket file we made, removed by free */
	pthread_mutex_t log_lock;     /* one cfg.log call at a time */
	int cancelled;            /* atomic: lm_receiver_cancel() was called */
	int bad_config;           /* new() found the config wrong: every call fails */
	const struct lm__engine_ops *accel_ops; /* tests: scripted accelerator */
	/* Tests: ns of delay per page decoded, by codec id (see
	 * lm__receiver_slow_decode); set before the run, read-only in it. */
	uint32_t slow_ns[LM_MAX_CODECS];
	/* Tests: ms channel 0 spends verifying before it hashes (see
	 * lm__receiver_slow_verify); set before the run. */
	uint32_t slow_verify_ms;
	/* User-added at [0, nuser); from the callback at LM_MAX_REGIONS + id. */
	lm__rx_region regions[2 * LM_MAX_REGIONS];
	uint32_t nuser;
	/* By wire id; filled by channel 0's thread before regions_ready,
	 * read-only from then on. */
	lm__rx_region *by_id[LM_MAX_REGIONS];
	uint64_t region_len[LM_MAX_REGIONS];
	lm__rx_chan slots[LM_RX_SLOTS];

	pthread_mutex_t lock;
	pthread_cond_t cond;      /* session progress: connects, regions, syncs, failure */
	/* Guarded by lock. */
	int have_session;
	/* The session's shape: written once, under lock, by the first valid
	 * hello (join_session). Read under lock before have_session is seen
	 * set; after that without it, by the session's channels (their own
	 * join_session took the lock) and by the run thread once joined. */
	uint8_t session[16];
	uint16_t channels;
	uint32_t page_size, packet_pages, region_count;
	uint16_t codec;
	uint64_t features;        /* the session's: lm__hello_features() of the first hello */
	/* Guarded by lock. */
	lm__rx_chan *chan[LM_MAX_CHANNELS];
	uint32_t connected;
	int regions_ready;
	uint32_t synced[LM_MAX_CHANNELS]; /* rounds each channel has synced */
	uint32_t released;        /* rounds every channel synced: the barrier */
	int rehashing;            /* set while the barrier's last channel rehashes, unlocked */
	int finishing, done;      /* done: never set (always 0), only read */
	/* The first failure: written once, under lock (lm__rx_fail); read
	 * under lock while slots run, without it by the run thread once they
	 * are joined (and by lm_receiver_errmsg() after the run). */
	int err;
	char errmsg[512];
	uint64_t t_start;        /* guarded by lock: the first valid hello */
	uint64_t refused;        /* guarded by lock: connections refused */
	/* Guarded by lock: the last refusal, "PEER: why", for the accept
	 * timeout's message (a sender refused for its settings would
	 * otherwise read as no sender at all). */
	char last_refusal[328];
	/* Guarded by lock: channel 0's TLS, for the stats, and the digest
	 * of its client (lm__tls_peer_digest: its certificate or PSK
	 * identity; tls_known: it had one), that every channel must show
	 * (tls_peer is cut to 128 bytes, and two certificates may share a
	 * subject). */
	char tls_suite[64], tls_peer[128];
	uint8_t tls_peer_md[32];
	int tls_known;
	int tls_resumed;
	uint64_t t_setup;        /* guarded by lock: the session is set up */
	/* Atomics, no lock: packets a channel applied since its last sync,
	 * and "channel 0 is verifying: apply no more data". */
	uint32_t unsynced[LM_MAX_CHANNELS];
	int verifying;
	/* Atomic: channels waiting for a ref's source page to land; a channel
	 * that lands pages wakes r->cond only when it is not 0. */
	uint32_t land_waiters;
	/* Device state (devstate.c). Guarded by lock: ds_next, the bytes
	 * handed to the application so far (pieces go in order), and
	 * ds_busy, set while one channel hands a piece over (unlocked, so
	 * ds_sum, which it feeds, has one writer at a time). ds_end and
	 * ds_have_end: channel 0's thread's (its DEVSTATE_END). */
	uint64_t ds_next;
	int ds_busy;
	lm__sumstream ds_sum;
	lm__devstate_end ds_end;
	int ds_have_end;
	/* Owner: the thread driving the receiver (the run thread); written
	 * under lock during a run, for lm_receiver_stats() on any thread. */
	lm_status status;
	uint64_t t_end;
	double main_cpu;
	/* Owner: the run thread: the progress callback's last call. */
	uint64_t prog_t;
	uint32_t prog_round;
};

/* The per-connection loop, exposed so the fuzzer can drive it over a memfd
 * with a prepared session (see tests/fuzz_receiver.c). */
int lm__rx_data_loop(lm__rx_chan *ch, lm__err *e);
int lm__rx_chan_alloc(lm__rx_chan *ch);
void lm__rx_chan_free(lm__rx_chan *ch);

/* Tests only: every packet of codec at this receiver takes ns_per_page
 * longer per page to decode (a sleep around its decode, counted in the
 * decode time FEEDBACK reports), as a slow decoder would. Call before
 * lm_receiver_run(); 0 turns it off. For the sender's test that a codec
 * the receiver decodes slowly is avoided. */
void lm__receiver_slow_decode(lm_receiver *r, uint16_t codec, uint32_t ns_per_page);
/* Tests only: verifying takes ms longer (a sleep once verifying began, as
 * hashing many GiB would), so a cancel can come while it verifies. */
void lm__receiver_slow_verify(lm_receiver *r, uint32_t ms);

#define LM__RESERVE_CHUNK (2u << 20)

/* Page kinds as a page last landed (lm__rx_region.landed). */
enum { LM__LANDED_NORMAL, LM__LANDED_ZERO, LM__LANDED_DELTA, LM__LANDED_REF };

/* pages.c: before any byte of the packet is written, claims its pages for
 * this channel and round (a page lands once per round). */
int lm__rx_claim(lm__rx_chan *ch, lm__rx_region *g, const lm__data_hdr *d, lm__err *e);
/* pages.c: after the payload decoded into the normal pages and the delta
 * area: lands the zero, delta and ref pages, in that order, and records
 * every page's landing. */
int lm__rx_land(lm__rx_chan *ch, lm__rx_region *g, const lm__data_hdr *d, lm__err *e);

/* Between the files of the receiver (session.c, channel.c, barrier.c). */
/* Any thread: records the first failure (channel -1: none named) and wakes
 * every thread of the session. */
void lm__rx_fail(lm_receiver *r, int code, int channel, const char *msg);
void lm__rx_wake(lm_receiver *r);
/* Slot thread, r->lock held: ch's counters for lm_receiver_stats(). */
#define LM__RX_PUB_NS 10000000ull /* at most every 10 ms of data */
void lm__rx_publish(lm__rx_chan *ch);
/* One escaped line to cfg.log (printf-style); no-op without a log. */
void lm__rx_log(lm_receiver *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
struct timespec lm__rx_deadline(long ms); /* now + ms on r->cond's clock */

/* handshake.c, on a connection's slot thread. The hello, read and checked
 * (under TLS: SEALED required); its TLS binding (channel 0: this
 * connection's own; channels 1..N wait for channel 0's session); joining
 * the session: 0 = ch is channel h->channel now, > 0 refuse this stranger,
 * < 0 refuse it with that code (*ours = 1: the session's own sender is
 * wrong, fatal). */
int lm__rx_read_hello(lm__rx_chan *ch, lm__hello *h, lm__err *e);
int lm__rx_check_binding(lm__rx_chan *ch, const lm__hello *h, lm__err *e);
int lm__rx_join_session(lm__rx_chan *ch, const lm__hello *h, int *ours, lm__err *e);
/* Channel 0: reads and binds every region the hello announced. */
int lm__rx_read_regions(lm__rx_chan *ch, lm__err *e);
/* Waits for all channels and the regions, then sends the ack (and a TLS
 * channel switches to sealed records). */
int lm__rx_wait_session_ready(lm__rx_chan *ch, lm__err *e);
lm__rx_region *lm__rx_find_user_region(lm_receiver *r, const char *name);
void lm__rx_unmap_region(lm__rx_region *g);
/* After ch's SYNC of round ch->round - 1: waits until every channel synced
 * it; the last to arrive rehashes what the round changed. */
int lm__rx_round_barrier(lm__rx_chan *ch, lm__err *e);
/* Channel 0 at COMPLETE: every channel synced, no data lands from now. */
int lm__rx_wait_all_synced(lm__rx_chan *ch, lm__err *e);

/* devstate.c. The first hello: a session with device state needs the
 * application's callback, and a receiver with one needs the state
 * (LM_EFEATURE otherwise: the connection is refused). */
int lm__rx_devstate_hello(const lm_receiver *r, const lm__hello *h, lm__err *e);
/* A DEVSTATE frame on ch: read, waits for its turn, handed over. */
int lm__rx_devstate(lm__rx_chan *ch, const lm__frame *f, lm__err *e);
/* A DEVSTATE_END frame (channel 0, after its SYNC): kept for COMPLETE. */
int lm__rx_devstate_end(lm__rx_chan *ch, const lm__frame *f, lm__err *e);
/* Channel 0 at COMPLETE, all synced and the regions verified: the state
 * is whole and its checksum right, then the application's end call. */
int lm__rx_devstate_finish(lm__rx_chan *ch, lm__err *e);

#endif
