/*
 * The control surface from other threads (issue 11, item 2; the messages
 * of configuration mistakes are test_config's):
 *
 *  1. lm_sender_cancel() from another thread and from a real sigaction
 *     handler, in each phase: connecting (to a listener whose queue is
 *     full, so the SYN is never answered), the handshake (a listener that
 *     never accepts), a one-pass send, the live rounds and the switchover
 *     (from the pause callback); LM_ECANCELED, "cancelled", a live source
 *     resumed with its memory intact and its throttle back at 0, the
 *     receiver failed with nothing handed on;
 *  2. lm_receiver_cancel() likewise: waiting for a sender, a connection in
 *     its handshake, receiving (a slow decoder holds the data phase open),
 *     verifying (lm__receiver_slow_verify holds it open);
 *  3. stats snapshots from a polling thread during a live migration, on
 *     both sides (monotone counters; run under TSan in CI), and the
 *     receiver's progress callback (its thread, its rounds, its last call);
 *  4. lm_sender_switchover() ends a migration that cannot converge;
 *     lm_sender_set_downtime_limit() makes it converge where the same
 *     migration without the change fails at max_rounds;
 *     lm_sender_set_max_bandwidth(): the bytes sent under a low limit fit
 *     the limit, and lifting it lets the rest go at once.
 *
 * Phases the test reaches through timing it controls only loosely (the
 * cancel conditions) are checked to have been reached: a cancel that came
 * too late to hit its phase fails the test rather than passing silently.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "live_harness.h"
#include "receiver/receiver.h" /* lm__receiver_slow_decode, _slow_verify, verifying */

#define RG_LEN (LM_TEST_SLOW ? 4 * MIB : 8 * MIB)

/* ---- cancelling from another thread or a signal handler -------------------- */

static lm_sender *sig_sender;     /* atomic: what SIGUSR1 cancels */
static lm_receiver *sig_receiver; /* atomic */
static int sig_count;             /* atomic: handler runs */

static void on_usr1(int sig)
{
	lm_sender *s = __atomic_load_n(&sig_sender, __ATOMIC_SEQ_CST);
	lm_receiver *r = __atomic_load_n(&sig_receiver, __ATOMIC_SEQ_CST);

	(void)sig;
	if (s)
		lm_sender_cancel(s);
	if (r)
		lm_receiver_cancel(r);
	__atomic_add_fetch(&sig_count, 1, __ATOMIC_SEQ_CST);
}

typedef struct killer {
	lm_sender *s;       /* cancel this one */
	lm_receiver *r;     /* or this one */
	int via_signal;     /* 1: SIGUSR1 to target, whose handler cancels */
	pthread_t target;
	int (*ready)(struct killer *); /* when; NULL: after delay_ms */
	uint32_t delay_ms;
	int fired, stop;    /* atomics */
	int rc;             /* the cancel's (checked by the main thread: CHECK is not thread-safe) */
	pthread_t th;
} killer;

static void *killer_main(void *arg)
{
	killer *k = arg;
	uint64_t t0 = now_us();

	while (!__atomic_load_n(&k->stop, __ATOMIC_SEQ_CST)) {
		if (k->ready ? k->ready(k) : now_us() - t0 >= k->delay_ms * 1000ull)
			break;
		sleep_us(1000);
	}
	if (__atomic_load_n(&k->stop, __ATOMIC_SEQ_CST))
		return NULL;
	if (k->via_signal) {
		__atomic_store_n(&sig_sender, k->s, __ATOMIC_SEQ_CST);
		__atomic_store_n(&sig_receiver, k->r, __ATOMIC_SEQ_CST);
		pthread_kill(k->target, SIGUSR1);
	} else {
		if (k->s)
			k->rc |= lm_sender_cancel(k->s);
		if (k->r)
			k->rc |= lm_receiver_cancel(k->r);
	}
	__atomic_store_n(&k->fired, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

static void killer_start(killer *k)
{
	CHECK_EQ(pthread_create(&k->th, NULL, killer_main, k), 0);
}

/* Stops it if it has not fired; 1 if it had. */
static int killer_join(killer *k)
{
	__atomic_store_n(&k->stop, 1, __ATOMIC_SEQ_CST);
	pthread_join(k->th, NULL);
	__atomic_store_n(&sig_sender, NULL, __ATOMIC_SEQ_CST);
	__atomic_store_n(&sig_receiver, NULL, __ATOMIC_SEQ_CST);
	CHECK_EQ(k->rc, 0);
	return __atomic_load_n(&k->fired, __ATOMIC_SEQ_CST);
}

static int sender_sent_packets(killer *k)
{
	lm_stats st = LM_STATS_INIT;

	lm_sender_stats(k->s, &st);
	return st.packets > 0;
}

/* In the live rounds, throttled: the cancel must set the throttle back. */
static int sender_throttled(killer *k)
{
	lm_stats st = LM_STATS_INIT;

	lm_sender_stats(k->s, &st);
	return st.rounds >= 2 && st.throttle_now_pct > 0;
}

static int receiver_got_packets(killer *k)
{
	lm_stats st = LM_STATS_INIT;

	lm_receiver_stats(k->r, &st);
	return st.packets > 0;
}

static void check_cancelled_sender(lm_sender *s, int rc, const char *label)
{
	CHECK_EQ(rc, LM_ECANCELED);
	CHECK(strstr(lm_sender_errmsg(s), "cancelled") != NULL);
	if (rc != LM_ECANCELED || !strstr(lm_sender_errmsg(s), "cancelled"))
		fprintf(stderr, "%s: rc %d (%s) \"%s\"\n", label, rc, lm_strerror(rc),
			lm_sender_errmsg(s));
	CHECK_EQ(lm_sender_run(s), LM_ESTATE); /* failed for good */
}

/* ---- 1. cancelling the sender ---------------------------------------------------- */

/* A TCP listener on 127.0.0.1 whose port goes into addr; fill: its accept
 * queue (backlog 0) is filled by connections nobody accepts, so a new
 * connect's SYN is never answered. */
static int quiet_listener(char *addr, size_t cap, int fill, int *held, int nheld)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, fill ? 0 : 16) ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl)) {
		perror("listener");
		exit(2);
	}
	snprintf(addr, cap, "127.0.0.1:%d", ntohs(sa.sin_port));
	for (int i = 0; fill && i < nheld; i++) {
		held[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (connect(held[i], (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS)
			perror("filling the queue");
		sleep_us(20000);
	}
	return fd;
}

/* connecting (fill) or the handshake (a listener that never accepts). */
static void cancel_before_data(int fill, int via_signal)
{
	const char *label = fill ? "cancel: connecting" : "cancel: handshake";
	lm_sender_config sc = sender_cfg(LM_CODEC_NONE, 4096, 2);
	int held[4] = {-1, -1, -1, -1};
	uint8_t *mem = map_anon(1 << 20);
	killer k = {.via_signal = via_signal, .target = pthread_self(), .delay_ms = 300};
	char addr[64];
	lm_sender *s = NULL;
	uint64_t t0;
	int lfd, rc;

	sc.timeout_ms = 60000; /* only the cancel ends it early */
	lfd = quiet_listener(addr, sizeof(addr), fill, held, 4);
	CHECK_EQ(lm_sender_new(&s, &sc), 0);
	CHECK_EQ(lm_sender_add_region(s, "ram", mem, 1 << 20), 0);
	k.s = s;
	killer_start(&k);
	t0 = now_us();
	rc = lm_sender_connect(s, addr);
	CHECK(killer_join(&k));
	check_cancelled_sender(s, rc, label);
	CHECK(now_us() - t0 < 20000000u); /* not the 60 s timeout */
	printf("%s%s: rc %d after %.2f s\n", label, via_signal ? " (signal)" : "", rc,
	       (double)(now_us() - t0) / 1e6);
	lm_sender_free(s);
	for (int i = 0; i < 4; i++)
		if (held[i] >= 0)
			close(held[i]);
	close(lfd);
	munmap(mem, 1 << 20);
}

/* A region of compressible, non-zero pages. */
static uint8_t *filled(uint64_t len)
{
	uint8_t *p = map_anon(len);
	uint64_t s = 77;

	for (uint64_t off = 0; p && off < len; off += UNIT)
		make_unit(p + off, UNIT, off / UNIT, 3, &s);
	return p;
}

/* A receiver on its own thread, lz4 decoding slowed so the data phase
 * lasts seconds. */
static void slow_receiver(lm_receiver **r, rx_ctx *rx, pthread_t *th, char *addr, size_t cap)
{
	lm_receiver_config rc = {.size = sizeof(lm_receiver_config),
				 .timeout_ms = 20000,
				 .accept_timeout_ms = 20000,
				 .alloc_regions = 1};

	CHECK_EQ(lm_receiver_new(r, &rc), 0);
	CHECK_EQ(lm_receiver_listen(*r, "127.0.0.1:0"), 0);
	lm__receiver_slow_decode(*r, LM_CODEC_LZ4, 200000); /* 0.2 ms a page */
	snprintf(addr, cap, "127.0.0.1:%d", lm_receiver_port(*r));
	rx->r = *r;
	CHECK_EQ(pthread_create(th, NULL, rx_thread, rx), 0);
}

/* One-pass send (lm_sender_run), cancelled on the sender (cancel_rx 0) or
 * on the receiver (1) once data flows. */
static void cancel_static(int cancel_rx, int via_signal)
{
	const char *label = cancel_rx ? "cancel: receiver receiving" : "cancel: static send";
	uint64_t len = RG_LEN;
	uint8_t *mem = filled(len);
	lm_sender_config sc = sender_cfg(LM_CODEC_LZ4, 4096, 2);
	lm_receiver *r = NULL;
	lm_sender *s = NULL;
	rx_ctx rx = {0};
	pthread_t th;
	killer k = {.via_signal = via_signal, .target = pthread_self()};
	char addr[64];
	void *base;
	uint64_t got;
	int rc;

	slow_receiver(&r, &rx, &th, addr, sizeof(addr));
	CHECK_EQ(lm_sender_new(&s, &sc), 0);
	CHECK_EQ(lm_sender_add_region(s, "ram", mem, len), 0);
	CHECK_EQ(lm_sender_connect(s, addr), 0);
	if (cancel_rx) {
		k.r = r;
		k.ready = receiver_got_packets;
		if (via_signal)
			k.target = th; /* the thread in lm_receiver_run() */
	} else {
		k.s = s;
		k.ready = sender_sent_packets;
	}
	killer_start(&k);
	rc = lm_sender_run(s);
	pthread_join(th, NULL);
	CHECK(killer_join(&k));
	if (cancel_rx) {
		CHECK_EQ(rx.rc, LM_ECANCELED);
		check_contains(label, lm_receiver_errmsg(r), "cancelled");
		CHECK(rc != 0); /* the sender was told */
		check_contains(label, lm_sender_errmsg(s), "cancelled");
	} else {
		check_cancelled_sender(s, rc, label);
		CHECK(rx.rc != 0);
	}
	/* Nothing half-received is handed on. */
	CHECK_EQ(lm_receiver_region(r, "ram", &base, &got), LM_ESTATE);
	printf("%s%s: sender rc %d, receiver rc %d\n", label, via_signal ? " (signal)" : "", rc,
	       rx.rc);
	lm_sender_free(s);
	lm_receiver_free(r);
	munmap(mem, len);
}

/* ---- live migrations ---------------------------------------------------------- */

typedef struct live_case {
	workload w;
	run R;
	uint8_t *mem;
	uint64_t len;
} live_case;

/* A workload that cannot converge: max_bandwidth holds the rounds to
 * 16 MiB/s while the writers dirty about 70 MiB/s of pages, so the dirty
 * set stays near the working set (2 MiB), whose copy at the measured rate
 * is far over the 1 ms downtime limit. */
static void live_open(live_case *L, const char *label, int throttle)
{
	memset(L, 0, sizeof(*L));
	L->len = RG_LEN;
	wl_init(&L->w, 4096);
	L->w.track = 1;
	L->mem = map_anon(L->len);
	CHECK_EQ(wl_add(&L->w, "ram", L->mem, L->len), 0);
	CHECK_EQ(wl_setup(&L->w, 512, 1), 0);
	L->R.label = label;
	L->R.sc = sender_cfg(LM_CODEC_NONE, 4096, 2);
	L->R.lc = live_cfg(&L->w, LM_DIRTY_CALLBACK);
	L->R.lc.downtime_limit_ms = 1;
	L->R.lc.max_rounds = 100000;
	L->R.lc.max_time_ms = 60000;
	L->R.lc.max_bandwidth = LM_TEST_SLOW ? 8 * MIB : 16 * MIB;
	if (throttle) {
		L->R.lc.throttle = cb_throttle;
		L->R.lc.throttle_mode = LM_THROTTLE_STEP; /* steps up every two rounds */
		L->R.lc.throttle_initial = 20;
	}
}

static int live_start(live_case *L)
{
	if (run_start(&L->w, &L->R))
		return -1;
	wl_start(&L->w, 20000, 2); /* the sanitizers too: the set must stay large */
	return 0;
}

static void live_close(live_case *L)
{
	run_free(&L->R);
	wl_free(&L->w);
	munmap(L->mem, L->len);
}

/* Cancel in the live rounds: from another thread or a signal. */
static void cancel_live_rounds(int via_signal)
{
	static live_case L;
	killer k = {.via_signal = via_signal, .target = pthread_self(), .ready = sender_throttled};

	live_open(&L, via_signal ? "cancel: live rounds (signal)" : "cancel: live rounds", 1);
	if (!live_start(&L)) {
		k.s = L.R.s;
		killer_start(&k);
		run_migrate(&L.w, &L.R);
		CHECK(killer_join(&k));
		run_collect(&L.w, &L.R);
		check_cancelled_sender(L.R.s, L.R.rc, L.R.label);
		CHECK(L.R.ss.throttle_pct > 0); /* it was throttled ... */
		CHECK_EQ(L.R.ss.throttle_now_pct, 0);
		CHECK_EQ(L.w.pct, 0); /* ... and set back */
		CHECK(L.R.ss.rounds >= 2);
		check_failed(&L.w, &L.R);
		run_report(&L.R, &L.w);
	}
	live_close(&L);
}

/* Cancel at the switchover: from the pause callback (the driving thread,
 * as a VMM's pause might on a failed vCPU stop), directly or by raising
 * the signal there. */
static int pause_cancel_signal;
static lm_sender *pause_cancel_sender;

static int cb_pause_cancel(void *user)
{
	int rc = cb_pause(user);

	if (pause_cancel_signal) {
		__atomic_store_n(&sig_sender, pause_cancel_sender, __ATOMIC_SEQ_CST);
		raise(SIGUSR1);
		__atomic_store_n(&sig_sender, NULL, __ATOMIC_SEQ_CST);
	} else {
		lm_sender_cancel(pause_cancel_sender);
	}
	return rc;
}

static void cancel_switchover(int via_signal)
{
	static live_case L;

	live_open(&L, via_signal ? "cancel: switchover (signal)" : "cancel: switchover", 0);
	L.R.lc.downtime_limit_ms = 60000; /* switch over after round one */
	L.R.lc.pause = cb_pause_cancel;
	if (!live_start(&L)) {
		pause_cancel_sender = L.R.s;
		pause_cancel_signal = via_signal;
		run_migrate(&L.w, &L.R);
		run_collect(&L.w, &L.R);
		check_cancelled_sender(L.R.s, L.R.rc, L.R.label);
		CHECK_EQ(L.w.pause_calls, 1);
		check_failed(&L.w, &L.R);
		run_report(&L.R, &L.w);
	}
	live_close(&L);
}

/* ---- 2. cancelling the receiver ------------------------------------------------- */

static void cancel_rx_waiting(int via_signal, int handshake)
{
	lm_receiver_config rc = {.size = sizeof(lm_receiver_config),
				 .timeout_ms = 60000,
				 .handshake_timeout_ms = 60000};
	lm_receiver *r = NULL;
	rx_ctx rx = {0};
	pthread_t th;
	killer k = {.via_signal = via_signal, .delay_ms = 300};
	struct sockaddr_in sa;
	uint64_t t0 = now_us();
	int fd = -1;

	CHECK_EQ(lm_receiver_new(&r, &rc), 0);
	CHECK_EQ(lm_receiver_listen(r, "127.0.0.1:0"), 0);
	rx.r = r;
	CHECK_EQ(pthread_create(&th, NULL, rx_thread, &rx), 0);
	if (handshake) { /* a connection that never says hello */
		memset(&sa, 0, sizeof(sa));
		sa.sin_family = AF_INET;
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sa.sin_port = htons((uint16_t)lm_receiver_port(r));
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		CHECK_EQ(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	}
	k.r = r;
	k.target = th;
	killer_start(&k);
	pthread_join(th, NULL);
	CHECK(killer_join(&k));
	CHECK_EQ(rx.rc, LM_ECANCELED);
	check_contains("receiver cancel", lm_receiver_errmsg(r), "cancelled");
	CHECK(now_us() - t0 < 20000000u);
	printf("cancel: receiver %s%s: rc %d\n", handshake ? "in a handshake" : "waiting",
	       via_signal ? " (signal)" : "", rx.rc);
	if (fd >= 0)
		close(fd);
	lm_receiver_free(r);
}

/* Verifying: the receiver checks the checksums (made slow here, as many
 * GiB would be); a cancel then fails it, it never acknowledges, the sender
 * hears why, nothing is handed on. */
static int receiver_verifying(killer *k)
{
	return __atomic_load_n(&k->r->verifying, __ATOMIC_SEQ_CST) != 0;
}

static void cancel_rx_verifying(int via_signal)
{
	lm_receiver_config rc = {.size = sizeof(lm_receiver_config),
				 .timeout_ms = 20000,
				 .accept_timeout_ms = 20000,
				 .alloc_regions = 1};
	uint64_t len = 1 << 20;
	uint8_t *mem = filled(len);
	lm_sender_config sc = sender_cfg(LM_CODEC_NONE, 4096, 2);
	lm_receiver *r = NULL;
	lm_sender *s = NULL;
	rx_ctx rx = {0};
	pthread_t th;
	killer k = {.via_signal = via_signal, .ready = receiver_verifying};
	char addr[64];
	void *base;
	uint64_t got, t0;
	int rc_s;

	CHECK_EQ(lm_receiver_new(&r, &rc), 0);
	CHECK_EQ(lm_receiver_listen(r, "127.0.0.1:0"), 0);
	lm__receiver_slow_verify(r, 1000);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", lm_receiver_port(r));
	rx.r = r;
	CHECK_EQ(pthread_create(&th, NULL, rx_thread, &rx), 0);
	k.r = r;
	k.target = th;
	CHECK_EQ(lm_sender_new(&s, &sc), 0);
	CHECK_EQ(lm_sender_add_region(s, "ram", mem, len), 0);
	CHECK_EQ(lm_sender_connect(s, addr), 0);
	killer_start(&k);
	t0 = now_us();
	rc_s = lm_sender_run(s);
	pthread_join(th, NULL);
	CHECK(killer_join(&k));
	CHECK_EQ(rx.rc, LM_ECANCELED);
	check_contains("receiver verifying", lm_receiver_errmsg(r), "cancelled");
	CHECK(rc_s != 0);
	check_contains("receiver verifying: the sender", lm_sender_errmsg(s), "cancelled");
	CHECK_EQ(lm_receiver_region(r, "ram", &base, &got), LM_ESTATE);
	printf("cancel: receiver verifying%s: sender rc %d, receiver rc %d after %.2f s\n",
	       via_signal ? " (signal)" : "", rc_s, rx.rc, (double)(now_us() - t0) / 1e6);
	lm_sender_free(s);
	lm_receiver_free(r);
	munmap(mem, len);
}

/* ---- 3. stats from another thread, the receiver's progress ---------------------- */

typedef struct poller {
	lm_sender *s;
	lm_receiver *r;
	int stop;          /* atomic */
	uint64_t samples, bad;
	pthread_t th;
} poller;

static int monotone(const lm_stats *a, const lm_stats *b)
{
	return b->transferred >= a->transferred && b->packets >= a->packets &&
	       b->normal_pages >= a->normal_pages && b->duplicate_pages >= a->duplicate_pages &&
	       b->rounds >= a->rounds && b->payload_bytes >= a->payload_bytes &&
	       b->total_time_us >= a->total_time_us;
}

static void *poller_main(void *arg)
{
	poller *p = arg;
	lm_stats s0, r0, s1 = LM_STATS_INIT, r1 = LM_STATS_INIT;

	memset(&s0, 0, sizeof(s0));
	memset(&r0, 0, sizeof(r0));
	while (!__atomic_load_n(&p->stop, __ATOMIC_SEQ_CST)) {
		lm_sender_stats(p->s, &s1);
		lm_receiver_stats(p->r, &r1);
		if (!monotone(&s0, &s1) || !monotone(&r0, &r1) || s1.is_receiver || !r1.is_receiver) {
			if (!p->bad)
				fprintf(stderr, "stats went back: sender %llu -> %llu bytes, "
					"receiver %llu -> %llu\n",
					(unsigned long long)s0.transferred, (unsigned long long)s1.transferred,
					(unsigned long long)r0.transferred, (unsigned long long)r1.transferred);
			p->bad++;
		}
		s0 = s1;
		r0 = r1;
		p->samples++;
		sleep_us(200);
	}
	return NULL;
}

typedef struct rx_progress {
	pthread_t run_thread; /* set before the run */
	int set, calls, wrong_thread, went_back, last_status;
	uint32_t last_round;
	uint64_t last_bytes;
} rx_progress;

static rx_progress rxp;

static void on_rx_progress(void *user, const lm_stats *st)
{
	rx_progress *p = user;

	p->calls++;
	if (p->set && !pthread_equal(pthread_self(), p->run_thread))
		p->wrong_thread++;
	if (st->rounds < p->last_round || st->transferred < p->last_bytes)
		p->went_back++;
	p->last_round = st->rounds;
	p->last_bytes = st->transferred;
	p->last_status = st->status;
}

static void stats_during_live(void)
{
	static live_case L;
	lm_receiver_config rc = {.size = sizeof(lm_receiver_config),
				 .timeout_ms = 20000,
				 .accept_timeout_ms = 20000,
				 .alloc_regions = 1,
				 .progress = on_rx_progress,
				 .user = &rxp,
				 .progress_ms = 50};
	poller p = {0};

	memset(&rxp, 0, sizeof(rxp));
	live_open(&L, "stats: polled during a live migration", 0);
	L.R.lc.downtime_limit_ms = 300; /* a migration that ends, after some rounds */
	L.R.rx_cfg = &rc;
	if (!live_start(&L)) {
		rxp.run_thread = L.R.rx_th;
		__atomic_store_n(&rxp.set, 1, __ATOMIC_SEQ_CST);
		p.s = L.R.s;
		p.r = L.R.r;
		CHECK_EQ(pthread_create(&p.th, NULL, poller_main, &p), 0);
		run_migrate(&L.w, &L.R);
		run_collect(&L.w, &L.R);
		__atomic_store_n(&p.stop, 1, __ATOMIC_SEQ_CST);
		pthread_join(p.th, NULL);
		check_done(&L.w, &L.R);
		CHECK(p.samples > 10);
		CHECK_EQ(p.bad, 0);
		/* The progress callback: on the run thread, rounds and bytes
		 * never back, the last call the final state. */
		CHECK(rxp.calls >= 2);
		CHECK_EQ(rxp.wrong_thread, 0);
		CHECK_EQ(rxp.went_back, 0);
		CHECK_EQ(rxp.last_status, LM_STATUS_COMPLETED);
		CHECK_EQ(rxp.last_round, L.R.rs.rounds);
		CHECK_EQ(rxp.last_bytes, L.R.rs.transferred);
		printf("stats: %llu snapshots of each side, %d receiver progress calls\n",
		       (unsigned long long)p.samples, rxp.calls);
		run_report(&L.R, &L.w);
	}
	live_close(&L);
}

/* ---- 4. switchover now, downtime limit and bandwidth mid-migration --------------- */

typedef struct ctl {
	lm_sender *s;
	uint32_t at_round;   /* act once the sender's stats show this many rounds */
	int what;            /* CTL_* */
	uint32_t rounds_then;
	int rc;              /* the control call's */
	int done;            /* atomic */
	pthread_t th;
} ctl;

enum { CTL_SWITCHOVER, CTL_DOWNTIME };

static void *ctl_main(void *arg)
{
	ctl *c = arg;
	lm_stats st = LM_STATS_INIT;

	for (int i = 0; i < 60000; i++) {
		lm_sender_stats(c->s, &st);
		if (st.status != LM_STATUS_ACTIVE && st.rounds)
			return NULL; /* over before its time: the check fails */
		if (st.rounds >= c->at_round)
			break;
		sleep_us(1000);
	}
	c->rounds_then = st.rounds;
	/* Results go to the main thread: CHECK is not thread-safe. */
	if (c->what == CTL_SWITCHOVER)
		c->rc = lm_sender_switchover(c->s);
	else
		c->rc = lm_sender_set_downtime_limit(c->s, 60000);
	__atomic_store_n(&c->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

/* max_rounds 0: no limit to speak of (the change must end it); else the
 * same migration without the change, which fails there. */
static void switch_case(int what, int with_change)
{
	static live_case L;
	const char *label = !with_change ? "control: no change, max_rounds 8"
			    : what == CTL_SWITCHOVER ? "control: lm_sender_switchover"
						       : "control: lm_sender_set_downtime_limit";
	ctl c = {.at_round = 3, .what = what};

	live_open(&L, label, 0);
	if (!with_change)
		L.R.lc.max_rounds = 8;
	if (!live_start(&L)) {
		c.s = L.R.s;
		if (with_change)
			CHECK_EQ(pthread_create(&c.th, NULL, ctl_main, &c), 0);
		run_migrate(&L.w, &L.R);
		run_collect(&L.w, &L.R);
		if (with_change) {
			pthread_join(c.th, NULL);
			CHECK(__atomic_load_n(&c.done, __ATOMIC_SEQ_CST));
			CHECK_EQ(c.rc, 0);
			check_done(&L.w, &L.R);
			/* It ended at the round boundary after the request. */
			CHECK(L.R.ss.rounds <= c.rounds_then + 3);
		} else {
			CHECK_EQ(L.R.rc, LM_ECONVERGE);
			check_failed(&L.w, &L.R);
		}
		run_report(&L.R, &L.w);
	}
	live_close(&L);
}

/* The sender's own view of the rate: bytes on the wire in the time since
 * the migration began fit the limit plus the bucket's burst. */
typedef struct bw {
	lm_sender *s;
	uint64_t limit, t0;
	uint64_t bytes_low;  /* transferred when the limit was lifted */
	double secs_low;
	int over, done, rc;
	pthread_t th;
} bw;

static void *bw_main(void *arg)
{
	bw *b = arg;
	double burst = 3.0 * 128 * 4096 + 65536 + 64 * 1024; /* channels + 1 packets, the hello */
	lm_stats st = LM_STATS_INIT;

	for (;;) {
		double secs = (double)(now_us() - b->t0) / 1e6;
		lm_sender_stats(b->s, &st);
		if ((double)st.transferred > (double)b->limit * secs + burst)
			b->over++;
		if (secs >= (LM_TEST_SLOW ? 1.0 : 0.5) || st.status != LM_STATUS_ACTIVE)
			break;
		sleep_us(2000);
	}
	b->bytes_low = st.transferred;
	b->secs_low = (double)(now_us() - b->t0) / 1e6;
	b->rc = lm_sender_set_max_bandwidth(b->s, 0); /* unlimited from the next packet */
	b->done = 1;
	return NULL;
}

static void bandwidth_case(void)
{
	static live_case L;
	bw b = {.limit = MIB / 2};

	live_open(&L, "control: lm_sender_set_max_bandwidth", 0);
	L.R.lc.downtime_limit_ms = 300;
	L.R.lc.max_bandwidth = b.limit; /* round one alone would take RG_LEN / limit s */
	if (!live_start(&L)) {
		b.s = L.R.s;
		b.t0 = now_us();
		CHECK_EQ(pthread_create(&b.th, NULL, bw_main, &b), 0);
		run_migrate(&L.w, &L.R);
		run_collect(&L.w, &L.R);
		pthread_join(b.th, NULL);
		CHECK(b.done);
		CHECK_EQ(b.rc, 0);
		CHECK_EQ(b.over, 0);
		check_done(&L.w, &L.R);
		/* Lifted: the rest went far faster than the limit allows (the
		 * region alone would take RG_LEN / limit seconds). */
		CHECK((double)L.R.ms / 1e3 < (double)L.len / (double)b.limit / 2);
		printf("bandwidth: %.0f KiB in the first %.2f s under %.0f KiB/s, then lifted; "
		       "done in %llu ms (at the limit: %.0f s)\n",
		       (double)b.bytes_low / 1024, b.secs_low, (double)b.limit / 1024,
		       (unsigned long long)L.R.ms,
		       (double)L.len / (double)b.limit);
		run_report(&L.R, &L.w);
	}
	live_close(&L);
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	uint64_t t0 = now_us();

	if (argc == 3 && strcmp(argv[1], "--rx-child") == 0)
		return rx_child_main(atoi(argv[2]));
	signal(SIGPIPE, SIG_IGN);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	corpus_init();
	verbose = getenv("LM_TEST_VERBOSE") && atoi(getenv("LM_TEST_VERBOSE")) > 0;
	have_uffd = lm_dirty_probe(uffd_why, sizeof(uffd_why)) == 0;

	for (int sig = 0; sig < 2; sig++) {
		cancel_before_data(1, sig);
		cancel_before_data(0, sig);
		cancel_static(0, sig);
		cancel_static(1, sig);
		cancel_live_rounds(sig);
		cancel_switchover(sig);
		cancel_rx_waiting(sig, 0);
		cancel_rx_waiting(sig, 1);
		cancel_rx_verifying(sig);
	}
	CHECK(__atomic_load_n(&sig_count, __ATOMIC_SEQ_CST) >= 8); /* the handler ran each time */

	stats_during_live();
	switch_case(CTL_SWITCHOVER, 1);
	switch_case(CTL_DOWNTIME, 1);
	switch_case(CTL_DOWNTIME, 0);
	bandwidth_case();
	printf("total %.1f s\n", (double)(now_us() - t0) / 1e6);
	TEST_DONE("test_control");
}
