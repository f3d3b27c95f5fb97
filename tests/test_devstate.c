/*
 * Device state at the switchover (lm_sender_config.device_state and
 * lm_receiver_config.device_state), end to end over loopback:
 *  - 0 bytes, a few bytes, and hundreds of MiB in pieces over 4 channels
 *    (256 MiB; 32 MiB under the sanitizers), handed over in order, on more
 *    than one receiver thread, with the stats of both sides;
 *  - refused by the destination, mid-state and at its end (the sender
 *    fails with the reason; live: the source resumed, its memory intact);
 *  - over device_state_max on the sender and on the receiver;
 *  - a sender without device state at a receiver that needs it, and the
 *    reverse (refused at the hello);
 *  - the connection cut mid-state and a byte of state changed in transit
 *    (a plaintext proxy): both sides fail, nothing is acknowledged, the
 *    application's end call never comes;
 *  - a live migration: the state callback runs after the pause, resume
 *    does not run on success;
 *  - device_state_size: asked once per pre-copy round on the migrating
 *    thread, in the stats (at most device_state_max), never without a
 *    live migration (the model's use of it: test_converge);
 *  - a few MiB under TLS 1.3 (a PSK made here).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "livemig.h"
#include "test_util.h"
#include "wire.h"

#define RLEN (64u * 4096u) /* the memory migrated with the state */

/* ---- the state: a reproducible byte stream --------------------------------- */

static uint8_t state_byte(uint64_t seed, uint64_t i)
{
	uint64_t x = (i / 8 + 1) * 0x9E3779B97F4A7C15ull ^ seed;

	x ^= x >> 29;
	x *= 0xBF58476D1CE4E5B9ull;
	x ^= x >> 32;
	return (uint8_t)(x >> (8 * (i % 8)));
}

/* What the sender's callback writes, and how. */
typedef struct src_state {
	uint64_t size, seed;
	size_t chunk;      /* bytes per lm_devstate_write() */
	int fail_with;     /* the callback returns this after writing */
	int write_rc;      /* the last write's result */
	int *paused;       /* live: whether the pause callback ran */
	int saw_paused;    /* live: *paused when the callback ran */
	int calls;
	/* device_state_size: what it says (0: no such callback), how often
	 * it was asked, and whether always on the thread that migrates. */
	uint64_t expect;
	int size_calls, size_elsewhere;
	pthread_t driver;
} src_state;

static uint64_t state_size(void *user)
{
	src_state *s = user;

	s->size_calls++;
	s->size_elsewhere += !pthread_equal(pthread_self(), s->driver);
	return s->expect;
}

static int save_state(void *user, lm_devstate_writer *w)
{
	src_state *s = user;
	uint8_t buf[65536 + 64];
	uint64_t off = 0;

	s->calls++;
	s->saw_paused = s->paused ? *s->paused : -1;
	while (off < s->size) {
		size_t n = s->chunk < sizeof(buf) ? s->chunk : sizeof(buf);
		if (n > s->size - off)
			n = (size_t)(s->size - off);
		for (size_t i = 0; i < n; i++)
			buf[i] = state_byte(s->seed, off + i);
		if ((s->write_rc = lm_devstate_write(w, buf, n)))
			return s->write_rc;
		off += n;
	}
	return s->fail_with;
}

/* What the receiver's callback saw. */
typedef struct dst_state {
	uint64_t seed;
	uint64_t next;       /* bytes received in order */
	uint64_t pieces, bad, max_piece;
	int ended;           /* the end call came */
	uint64_t end_off;
	int refuse_at_end;   /* return this at the end call */
	int refuse_piece;    /* return this at the first piece */
	pthread_t threads[8];
	int nthreads;
	pthread_mutex_t lock;
} dst_state;

static int load_state(void *user, uint64_t off, const void *buf, size_t len)
{
	dst_state *d = user;
	const uint8_t *p = buf;
	int known = 0;

	pthread_mutex_lock(&d->lock); /* calls are serial; this is for TSan's and our view */
	if (!buf) {
		d->ended++;
		d->end_off = off;
		pthread_mutex_unlock(&d->lock);
		return d->refuse_at_end;
	}
	if (off != d->next)
		d->bad++;
	for (size_t i = 0; i < len; i++)
		d->bad += p[i] != state_byte(d->seed, off + i);
	d->next = off + len;
	d->pieces++;
	if (len > d->max_piece)
		d->max_piece = len;
	for (int i = 0; i < d->nthreads; i++)
		known |= pthread_equal(d->threads[i], pthread_self());
	if (!known && d->nthreads < 8)
		d->threads[d->nthreads++] = pthread_self();
	pthread_mutex_unlock(&d->lock);
	return d->refuse_piece;
}

/* ---- one migration --------------------------------------------------------- */

typedef struct opts {
	uint32_t channels;
	int sender_state;    /* the sender has a device state callback */
	int receiver_state;  /* the receiver has one */
	uint64_t sender_max, receiver_max;
	int live;
	int proxy;           /* 1: tamper a byte of state, 2: cut mid-state */
	int tls;             /* TLS 1.3 with a PSK made here */
	int timeout_ms;
} opts;

typedef struct result {
	int src_rc, dst_rc;
	char src_msg[512], dst_msg[512];
	lm_stats ss, rs;
	int intact;          /* the source memory as before */
	int dst_equal;       /* the destination memory equals the source */
	int paused, resumed;
} result;

static int g_paused, g_resumed;

static int live_pause(void *user)
{
	(void)user;
	__atomic_store_n(&g_paused, 1, __ATOMIC_SEQ_CST);
	return 0;
}

static void live_resume(void *user)
{
	(void)user;
	__atomic_store_n(&g_resumed, 1, __ATOMIC_SEQ_CST);
}

/* Nothing writes the memory: every round after the first is empty. */
static int no_dirt(void *user, uint32_t region, uint64_t *bitmap, uint64_t pages)
{
	(void)user, (void)region, (void)bitmap, (void)pages;
	return 0;
}

/* ---- a proxy that changes or cuts the device state -------------------------- */

typedef struct proxy {
	int lfd, port, target, mode;
	int done;                 /* what the mode does was done */
	pthread_t acc;
	int nconn;
	struct conn { int c, u; pthread_t up, down; struct proxy *p; } conns[8];
} proxy;

static int full_read(int fd, uint8_t *p, size_t n)
{
	while (n) {
		ssize_t k = read(fd, p, n);
		if (k <= 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

static int full_write(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL); /* the peer may close first */
		if (k <= 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* Sender to receiver, frame by frame: the first DEVSTATE frame gets one
 * byte of its data flipped (mode 1), or the connection is cut halfway
 * through it (mode 2: both directions shut down). */
static void *proxy_up(void *arg)
{
	struct conn *c = arg;
	size_t cap = 8u << 20;
	uint8_t *b = malloc(cap);

	while (b) {
		uint32_t len;
		if (full_read(c->c, b, LM_FRAME_HDR))
			break;
		len = lm__get32(b + 8);
		if (len > cap - LM_FRAME_HDR || full_read(c->c, b + LM_FRAME_HDR, len))
			break;
		if (b[4] == LM_KIND_DEVSTATE && !__atomic_exchange_n(&c->p->done, 1, __ATOMIC_SEQ_CST)) {
			if (c->p->mode == 1) {
				b[LM_FRAME_HDR + LM_DEVSTATE_FIXED + len / 3] ^= 0x40;
			} else {
				full_write(c->u, b, LM_FRAME_HDR + len / 2);
				break;
			}
		}
		if (full_write(c->u, b, LM_FRAME_HDR + len))
			break;
	}
	free(b);
	shutdown(c->c, SHUT_RDWR);
	shutdown(c->u, SHUT_RDWR);
	return NULL;
}

static void *proxy_down(void *arg)
{
	struct conn *c = arg;
	uint8_t b[65536];
	ssize_t k;

	while ((k = read(c->u, b, sizeof(b))) > 0)
		if (full_write(c->c, b, (size_t)k))
			break;
	shutdown(c->c, SHUT_RDWR);
	shutdown(c->u, SHUT_RDWR);
	return NULL;
}

static void *proxy_accept(void *arg)
{
	proxy *p = arg;

	while (p->nconn < 8) {
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p->target)};
		struct conn *c = &p->conns[p->nconn];
		int fd = accept(p->lfd, NULL, NULL);
		if (fd < 0)
			break;
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		c->c = fd;
		c->u = socket(AF_INET, SOCK_STREAM, 0);
		c->p = p;
		if (connect(c->u, (struct sockaddr *)&a, sizeof(a))) {
			close(fd);
			close(c->u);
			break;
		}
		pthread_create(&c->up, NULL, proxy_up, c);
		pthread_create(&c->down, NULL, proxy_down, c);
		p->nconn++;
	}
	return NULL;
}

static void proxy_start(proxy *p, int target, int mode)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t al = sizeof(a);

	memset(p, 0, sizeof(*p));
	p->target = target;
	p->mode = mode;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	p->lfd = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(bind(p->lfd, (struct sockaddr *)&a, sizeof(a)) == 0);
	CHECK(listen(p->lfd, 16) == 0);
	getsockname(p->lfd, (struct sockaddr *)&a, &al);
	p->port = ntohs(a.sin_port);
	pthread_create(&p->acc, NULL, proxy_accept, p);
}

static void proxy_stop(proxy *p)
{
	shutdown(p->lfd, SHUT_RDWR);
	close(p->lfd);
	pthread_join(p->acc, NULL);
	for (int i = 0; i < p->nconn; i++) {
		shutdown(p->conns[i].c, SHUT_RDWR);
		shutdown(p->conns[i].u, SHUT_RDWR);
		pthread_join(p->conns[i].up, NULL);
		pthread_join(p->conns[i].down, NULL);
		close(p->conns[i].c);
		close(p->conns[i].u);
	}
}

/* ---- the run -------------------------------------------------------------- */

static void migrate(const opts *o, src_state *ss, dst_state *ds, result *res)
{
	lm_receiver_config rc = LM_RECEIVER_CONFIG_INIT;
	lm_sender_config sc = LM_SENDER_CONFIG_INIT;
	lm_receiver *r = NULL;
	lm_sender *s = NULL;
	uint8_t *src = mmap(NULL, RLEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t *dst = mmap(NULL, RLEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t before, x = 0x1234567;
	uint8_t psk[32];
	lm_tls_config tls = {.size = sizeof(lm_tls_config), .psk = psk, .psk_len = sizeof(psk)};
	char addr[64];
	rx_ctx ctx;
	pthread_t t;
	proxy px;

	memset(res, 0, sizeof(*res));
	CHECK(src != MAP_FAILED && dst != MAP_FAILED);
	for (uint32_t i = 0; i < RLEN; i += 64)
		src[i] = (uint8_t)(i / 4096 * 7 + 1);
	before = region_sum(src, RLEN);
	for (size_t i = 0; i < sizeof(psk); i++)
		psk[i] = (uint8_t)xs(&x);
	g_paused = g_resumed = 0;
	ss->paused = o->live ? &g_paused : NULL;

	rc.timeout_ms = o->timeout_ms ? o->timeout_ms : 10000;
	rc.accept_timeout_ms = 3000;
	rc.device_state = o->receiver_state ? load_state : NULL;
	rc.device_state_max = o->receiver_max;
	rc.user = ds;
	rc.tls = o->tls ? &tls : NULL;
	CHECK_EQ(lm_receiver_new(&r, &rc), 0);
	CHECK_EQ(lm_receiver_add_region(r, "ram", dst, RLEN, 1), 0);
	CHECK_EQ(lm_receiver_listen(r, "127.0.0.1:0"), 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", lm_receiver_port(r));
	if (o->proxy) {
		proxy_start(&px, lm_receiver_port(r), o->proxy);
		snprintf(addr, sizeof(addr), "127.0.0.1:%d", px.port);
	}
	ctx.r = r;
	pthread_create(&t, NULL, rx_thread, &ctx);

	sc.channels = o->channels ? o->channels : 2;
	sc.timeout_ms = o->timeout_ms ? o->timeout_ms : 10000;
	sc.device_state = o->sender_state ? save_state : NULL;
	sc.device_state_user = ss;
	sc.device_state_max = o->sender_max;
	sc.device_state_size = ss->expect ? state_size : NULL;
	ss->driver = pthread_self();
	sc.tls = o->tls ? &tls : NULL;
	CHECK_EQ(lm_sender_new(&s, &sc), 0);
	CHECK_EQ(lm_sender_add_region(s, "ram", src, RLEN), 0);
	res->src_rc = lm_sender_connect(s, addr);
	if (!res->src_rc && o->live) {
		lm_live_config lc = LM_LIVE_CONFIG_INIT;
		lc.dirty = LM_DIRTY_CALLBACK;
		lc.dirty_log = no_dirt;
		lc.pause = live_pause;
		lc.resume = live_resume;
		res->src_rc = lm_sender_migrate(s, &lc);
	} else if (!res->src_rc) {
		res->src_rc = lm_sender_run(s);
	}
	snprintf(res->src_msg, sizeof(res->src_msg), "%s", lm_sender_errmsg(s));
	if (res->src_rc && !o->receiver_state != !o->sender_state)
		lm_receiver_cancel(r); /* refused at the hello: it waits on */
	pthread_join(t, NULL);
	if (o->proxy)
		proxy_stop(&px);
	res->dst_rc = ctx.rc;
	snprintf(res->dst_msg, sizeof(res->dst_msg), "%s", lm_receiver_errmsg(r));
	res->ss.size = sizeof(res->ss);
	res->rs.size = sizeof(res->rs);
	lm_sender_stats(s, &res->ss);
	lm_receiver_stats(r, &res->rs);
	res->intact = region_sum(src, RLEN) == before;
	res->dst_equal = memcmp(src, dst, RLEN) == 0;
	res->paused = g_paused;
	res->resumed = g_resumed;
	if (res->src_rc || res->dst_rc)
		printf("  sender: %d %s\n  receiver: %d %s\n", res->src_rc, res->src_msg, res->dst_rc,
		       res->dst_msg);
	lm_sender_free(s);
	lm_receiver_free(r);
	munmap(src, RLEN);
	munmap(dst, RLEN);
}

static void init_states(src_state *s, dst_state *d, uint64_t size, size_t chunk, uint64_t seed)
{
	memset(s, 0, sizeof(*s));
	memset(d, 0, sizeof(*d));
	s->size = size;
	s->chunk = chunk;
	s->seed = d->seed = seed;
	pthread_mutex_init(&d->lock, NULL);
}

/* A migration with size bytes of state that must succeed. */
static void good_case_x(const char *name, uint64_t size, size_t chunk, uint32_t channels, int live,
			int tls)
{
	opts o = {.channels = channels, .sender_state = 1, .receiver_state = 1, .live = live,
		  .timeout_ms = 60000, .tls = tls};
	src_state s;
	dst_state d;
	result res;

	printf("%s: %llu bytes in writes of %zu, %u channels%s\n", name, (unsigned long long)size,
	       chunk, channels, live ? ", live" : "");
	init_states(&s, &d, size, chunk, size * 31 + 7);
	migrate(&o, &s, &d, &res);
	CHECK_EQ(res.src_rc, 0);
	CHECK_EQ(res.dst_rc, 0);
	CHECK(res.dst_equal);
	CHECK_EQ(s.calls, 1);
	CHECK_EQ(d.bad, 0);
	CHECK_EQ(d.next, size);
	CHECK_EQ(d.ended, 1);
	CHECK_EQ(d.end_off, size);
	CHECK(d.max_piece <= LM_DEVSTATE_MAX_PIECE);
	CHECK_EQ(res.ss.device_state_bytes, size);
	CHECK_EQ(res.rs.device_state_bytes, size);
	CHECK(res.ss.transferred >= size);
	if (size > 16u << 20 && channels > 1)
		CHECK(d.nthreads >= 2); /* spread over the channels */
	if (live) {
		CHECK_EQ(s.saw_paused, 1); /* the state is the paused workload's */
		CHECK_EQ(res.resumed, 0);  /* it runs at the destination now */
		CHECK(res.ss.device_state_us <= res.ss.downtime_ms * 1000 + 1000);
	}
	if (tls)
		CHECK(res.ss.tls[0] && res.rs.tls[0]);
	pthread_mutex_destroy(&d.lock);
}

static void good_case(const char *name, uint64_t size, size_t chunk, uint32_t channels, int live)
{
	good_case_x(name, size, chunk, channels, live, 0);
}

/* device_state_size: asked after each live round's sync on the migrating
 * thread, its word in the stats beside what went (at most
 * device_state_max); never asked without a live migration. */
static void test_expected_size(void)
{
	opts o = {.channels = 2, .sender_state = 1, .receiver_state = 1, .live = 1,
		  .timeout_ms = 60000};
	src_state s;
	dst_state d;
	result res;

	printf("device_state_size: 3 MiB said, 3 MiB written, live\n");
	init_states(&s, &d, 3u << 20, 65536, 99);
	s.expect = 3u << 20;
	migrate(&o, &s, &d, &res);
	CHECK_EQ(res.src_rc, 0);
	CHECK(res.dst_equal);
	/* Once per round before the switchover's copy (the last round). */
	CHECK(s.size_calls >= 1 && (uint32_t)s.size_calls + 1 == res.ss.rounds);
	CHECK_EQ(s.size_elsewhere, 0);
	CHECK_EQ(res.ss.device_state_expected_bytes, 3u << 20);
	CHECK_EQ(res.ss.device_state_bytes, 3u << 20);
	CHECK(res.ss.downtime_fixed_ms <= res.ss.downtime_expected_ms);
	pthread_mutex_destroy(&d.lock);

	printf("device_state_size: 1 GiB said, device_state_max 4 MiB, 1 MiB written, live\n");
	o.sender_max = 4u << 20;
	init_states(&s, &d, 1u << 20, 65536, 98);
	s.expect = 1ull << 30;
	migrate(&o, &s, &d, &res);
	CHECK_EQ(res.src_rc, 0);
	CHECK_EQ(res.ss.device_state_expected_bytes, 4u << 20);
	CHECK_EQ(res.ss.device_state_bytes, 1u << 20);
	pthread_mutex_destroy(&d.lock);

	printf("device_state_size: not asked without a live migration\n");
	o.live = 0;
	o.sender_max = 0;
	init_states(&s, &d, 1000, 100, 97);
	s.expect = 1000;
	migrate(&o, &s, &d, &res);
	CHECK_EQ(res.src_rc, 0);
	CHECK_EQ(s.size_calls, 0);
	CHECK_EQ(res.ss.device_state_expected_bytes, 0);
	pthread_mutex_destroy(&d.lock);
}

static void test_sizes(void)
{
	good_case("empty", 0, 4096, 2, 0);
	good_case("a few bytes", 13, 5, 2, 0);
	good_case("one byte over a piece", (512u << 10) + 1, 4096, 3, 0);
	/* Hundreds of MiB, in odd-sized writes, over four channels. */
	good_case("large", LM_TEST_SLOW ? 32ull << 20 : 256ull << 20, 65536 + 13, 4, 0);
	good_case("live", 100000, 333, 2, 1);
	test_expected_size();
	good_case_x("under TLS", 3u << 20, 4000, 3, 0, 1);
}

static int contains(const char *s, const char *part)
{
	return strstr(s, part) != NULL;
}

/* The destination refuses: at its end call, or at the first piece. */
static void test_refused(void)
{
	for (int live = 0; live <= 1; live++) {
		for (int at_end = 0; at_end <= 1; at_end++) {
			opts o = {.channels = 2, .sender_state = 1, .receiver_state = 1, .live = live};
			src_state s;
			dst_state d;
			result res;

			printf("refused %s%s\n", at_end ? "at the end" : "at the first piece",
			       live ? ", live" : "");
			init_states(&s, &d, 3u << 20, 10000, 99);
			if (at_end)
				d.refuse_at_end = -EPERM;
			else
				d.refuse_piece = -EPERM;
			migrate(&o, &s, &d, &res);
			CHECK_EQ(res.src_rc, LM_EPEER);
			CHECK(contains(res.src_msg, "device state refused by the destination"));
			CHECK_EQ(res.dst_rc, -EPERM);
			CHECK(contains(res.dst_msg, "device state refused by the destination"));
			CHECK_EQ(res.rs.status, LM_STATUS_FAILED);
			CHECK_EQ(res.ss.status, LM_STATUS_FAILED);
			CHECK(res.intact);
			CHECK_EQ(d.ended, at_end);
			if (live) {
				CHECK_EQ(res.paused, 1);
				CHECK_EQ(res.resumed, 1); /* the source runs on */
			}
			pthread_mutex_destroy(&d.lock);
		}
	}
}

static void test_caps(void)
{
	opts o = {.channels = 2, .sender_state = 1, .receiver_state = 1, .sender_max = 1000};
	src_state s;
	dst_state d;
	result res;

	printf("over the sender's device_state_max\n");
	init_states(&s, &d, 1001, 100, 5);
	migrate(&o, &s, &d, &res);
	CHECK_EQ(res.src_rc, LM_ELIMIT);
	CHECK_EQ(s.write_rc, LM_ELIMIT);
	CHECK(contains(res.src_msg, "device_state_max"));
	CHECK(res.dst_rc != 0);
	CHECK(contains(res.dst_msg, "device_state_max"));
	CHECK_EQ(d.ended, 0);
	pthread_mutex_destroy(&d.lock);

	printf("exactly the sender's device_state_max\n");
	init_states(&s, &d, 1000, 100, 5);
	migrate(&o, &s, &d, &res);
	CHECK_EQ(res.src_rc, 0);
	CHECK_EQ(res.dst_rc, 0);
	CHECK_EQ(d.next, 1000);
	pthread_mutex_destroy(&d.lock);

	printf("over the receiver's device_state_max\n");
	o.sender_max = 0; /* the default, 1 GiB */
	o.receiver_max = 2u << 20;
	init_states(&s, &d, (2u << 20) + 1, 65536, 6);
	migrate(&o, &s, &d, &res);
	CHECK_EQ(res.dst_rc, LM_ELIMIT);
	CHECK(contains(res.dst_msg, "device_state_max"));
	CHECK(res.src_rc != 0);
	CHECK(contains(res.src_msg, "device_state_max"));
	CHECK_EQ(d.ended, 0);
	CHECK(d.next <= 2u << 20);
	pthread_mutex_destroy(&d.lock);
}

/* A state on one side only: refused at the hello. */
static void test_mismatch(void)
{
	for (int side = 0; side <= 1; side++) {
		opts o = {.channels = 2, .sender_state = side, .receiver_state = !side};
		src_state s;
		dst_state d;
		result res;

		printf("device state on the %s only\n", side ? "sender" : "receiver");
		init_states(&s, &d, 100, 10, 1);
		migrate(&o, &s, &d, &res);
		CHECK_EQ(res.src_rc, LM_EPEER);
		CHECK(contains(res.src_msg, side ? "takes no device state" : "needs the sender's device state"));
		CHECK(res.dst_rc != 0);
		CHECK_EQ(s.calls, 0);
		CHECK_EQ(d.ended, 0);
		pthread_mutex_destroy(&d.lock);
	}
}

/* The network changes a byte of state, or cuts the connection in it. */
static void test_tamper_cut(void)
{
	for (int mode = 1; mode <= 2; mode++) {
		opts o = {.channels = 2, .sender_state = 1, .receiver_state = 1, .proxy = mode,
			  .timeout_ms = 5000};
		src_state s;
		dst_state d;
		result res;

		printf("%s\n", mode == 1 ? "a byte of state changed in transit" : "cut mid-state");
		init_states(&s, &d, 8u << 20, 65536, 77);
		migrate(&o, &s, &d, &res);
		CHECK(res.src_rc != 0);
		CHECK(res.dst_rc != 0);
		CHECK_EQ(d.ended, 0); /* never handed over as whole */
		CHECK_EQ(res.ss.status, LM_STATUS_FAILED);
		CHECK_EQ(res.rs.status, LM_STATUS_FAILED);
		CHECK(res.intact);
		if (mode == 1) {
			CHECK_EQ(res.dst_rc, LM_ECHECKSUM);
			CHECK_EQ(res.src_rc, LM_ECHECKSUM);
			CHECK(contains(res.dst_msg, "device state: checksum"));
			CHECK(d.bad > 0); /* the application saw the change, and no end */
		}
		pthread_mutex_destroy(&d.lock);
	}
}

int main(void)
{
	test_sizes();
	test_refused();
	test_caps();
	test_mismatch();
	test_tamper_cut();
	TEST_DONE("test_devstate");
}
