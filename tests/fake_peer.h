/*
 * fake_peer.h - the in-process receiver under test and the hand-written fake
 * sender that test_reject.c and test_refs.c share: an lm_receiver between
 * guard pages, plain-socket channels, DATA packets built field by field
 * (offsets, ref and delta entries, lengths, payload: every count explicit,
 * so a test can get any of them wrong), and the outcome checks (return
 * code, errmsg naming channel and field, the ERROR frame each connection
 * reads, canaries, untouched memory). Static functions in a header: each
 * test program includes it once.
 */
#ifndef LM_TEST_FAKE_PEER_H
#define LM_TEST_FAKE_PEER_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "livemig.h"
#include "tsan.h"
#include "wire.h"

/* Not every test uses every helper. */
#define FP_UNUSED __attribute__((unused))

#define PS 4096u       /* page size of every fake session */
#define PP 4u          /* packet_pages of every fake session */
#define NPAGES 8u      /* default region: 8 pages */
#define CANARY 0xA5
#define MAXP 20u       /* most pages a hand-built packet carries */

static const uint8_t SESSION[16] = {0x5e, 0x55, 0x10, 0x4e, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
static const uint8_t OTHER[16] = {0x0d, 0xd0, 0xba, 0x11, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9};

static FP_UNUSED uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static FP_UNUSED void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* ---- the receiver under test ------------------------------------------- */

typedef struct rxopt {
	uint64_t len;          /* region length, default NPAGES pages */
	int timeout_ms;        /* default 2000 */
	int accept_timeout_ms; /* default 5000 */
	int no_region;         /* add no region up front */
	int use_cb;            /* on_region callback (accepts len <= mapping) */
	uint32_t max_channels;
	/* Called with the receiver before its run starts (test hooks). */
	void (*before_run)(lm_receiver *r);
	/* Device state: the receiver's callback (user: the rx) and cap. */
	lm_device_state_load_cb device_state;
	uint64_t device_state_max;
	const lm_tls_config *tls; /* NULL: plaintext */
} rxopt;

typedef struct rx {
	lm_receiver *r;
	pthread_t t;
	int rc, port, running;
	uint8_t *map;  /* guard page, region pages, guard page */
	size_t maplen, rlen;
	uint8_t *base;
	uint64_t len;
	int cb_calls;
	char log[4096]; /* the receiver's log lines (cfg.log), one call at a time */
	size_t loglen;
} rx;

static FP_UNUSED void rx_log(void *user, const char *line)
{
	rx *x = user;
	int n = snprintf(x->log + x->loglen, sizeof(x->log) - x->loglen, "%s\n", line);

	if (n > 0 && x->loglen + (size_t)n < sizeof(x->log))
		x->loglen += (size_t)n;
}

static FP_UNUSED size_t round_up(uint64_t v) { return (size_t)((v + PS - 1) / PS * PS); }

static FP_UNUSED void *rx_thread(void *arg)
{
	rx *x = arg;

	x->rc = lm_receiver_run(x->r);
	return NULL;
}

static FP_UNUSED int on_region(void *user, uint32_t id, const char *name, uint64_t len,
			       uint32_t page_size, void **base, int *fresh)
{
	rx *x = user;

	(void)id;
	(void)name;
	x->cb_calls++;
	if (page_size != PS || len > x->len)
		return LM_EREGION;
	*base = x->base;
	*fresh = 1;
	return 0;
}

/* Maps len bytes between two PROT_NONE guard pages; canaries after len. */
static FP_UNUSED void rx_map(rx *x, uint64_t len)
{
	x->len = len;
	x->rlen = round_up(len ? len : 1);
	x->maplen = x->rlen + 2 * PS;
	x->map = mmap(NULL, x->maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (x->map == MAP_FAILED) {
		perror("mmap");
		exit(2);
	}
	x->base = x->map + PS;
	memset(x->base + len, CANARY, x->rlen - len);
	mprotect(x->map, PS, PROT_NONE);
	mprotect(x->base + x->rlen, PS, PROT_NONE);
}

static FP_UNUSED void rx_start(rx *x, const rxopt *o)
{
	lm_receiver_config cfg;

	memset(x, 0, sizeof(*x));
	rx_map(x, o && o->len ? o->len : NPAGES * PS);
	memset(&cfg, 0, sizeof(cfg));
	cfg.size = sizeof(cfg);
	cfg.timeout_ms = o && o->timeout_ms ? o->timeout_ms : 2000;
	cfg.accept_timeout_ms = o && o->accept_timeout_ms ? o->accept_timeout_ms : 5000;
	cfg.max_channels = o ? o->max_channels : 0;
	cfg.user = x;
	cfg.log = rx_log;
	if (o && o->use_cb)
		cfg.on_region = on_region;
	if (o) {
		cfg.device_state = o->device_state;
		cfg.device_state_max = o->device_state_max;
		cfg.tls = o->tls;
	}
	CHECK_EQ(lm_receiver_new(&x->r, &cfg), 0);
	if (!o || !o->no_region)
		CHECK_EQ(lm_receiver_add_region(x->r, "ram", x->base, x->len, 1), 0);
	CHECK_EQ(lm_receiver_listen(x->r, "127.0.0.1:0"), 0);
	x->port = lm_receiver_port(x->r);
	if (o && o->before_run)
		o->before_run(x->r);
	if (pthread_create(&x->t, NULL, rx_thread, x)) {
		fprintf(stderr, "pthread_create failed\n");
		exit(2);
	}
	x->running = 1;
}

/* 0 once lm_receiver_run returned, -1 if it did not within ms. */
static FP_UNUSED int rx_join_ms(rx *x, int ms)
{
	struct timespec ts;

	if (!x->running)
		return 0;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	if (pthread_timedjoin_np(x->t, NULL, &ts))
		return -1;
	x->running = 0;
	return 0;
}

static FP_UNUSED void rx_join(rx *x)
{
	if (rx_join_ms(x, 20000)) {
		fprintf(stderr, "lm_receiver_run did not return within 20 s: giving up\n");
		exit(2);
	}
}

static FP_UNUSED int canaries_ok(const rx *x)
{
	for (size_t i = x->len; i < x->rlen; i++)
		if (x->base[i] != CANARY)
			return 0;
	return 1;
}

static FP_UNUSED int region_zero(const rx *x, uint64_t from, uint64_t to)
{
	for (uint64_t i = from; i < to && i < x->len; i++)
		if (x->base[i])
			return 0;
	return 1;
}

static FP_UNUSED void rx_free(rx *x)
{
	rx_join(x);
	lm_receiver_free(x->r);
	munmap(x->map, x->maplen);
	x->r = NULL;
}

/* ---- fake sender: plain sockets ------------------------------------------ */

static FP_UNUSED int fs_connect(int port)
{
	struct sockaddr_in a;
	struct timeval tv = {3, 0};
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		perror("socket");
		exit(2);
	}
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		perror("connect");
		exit(2);
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

/* Errors are ignored on purpose: the receiver may have closed already. */
static FP_UNUSED void put(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n > 0) {
		ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		b += w;
		n -= (size_t)w;
	}
}

static FP_UNUSED int get(int fd, void *p, size_t n)
{
	uint8_t *b = p;

	while (n > 0) {
		ssize_t r = recv(fd, b, n, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

/* Reads one frame; body must hold cap bytes. 0, or -1 (closed / bad). */
static FP_UNUSED int get_frame(int fd, lm__frame *f, uint8_t *body, size_t cap)
{
	uint8_t h[LM_FRAME_HDR];
	lm__err e;

	if (get(fd, h, sizeof(h)) || lm__dec_frame(h, f, &e) || f->len > cap)
		return -1;
	return get(fd, body, f->len);
}

static FP_UNUSED lm__hello mk_hello(uint16_t ch, uint16_t nch)
{
	lm__hello h;

	memset(&h, 0, sizeof(h));
	h.version = LM_PROTOCOL_VERSION;
	memcpy(h.session, SESSION, 16);
	h.channel = ch;
	h.channels = nch;
	h.page_size = PS;
	h.codec = LM_CODEC_NONE;
	h.packet_pages = PP;
	h.region_count = 1;
	return h;
}

static FP_UNUSED void send_hello(int fd, const lm__hello *h)
{
	uint8_t b[LM_FRAME_HDR + LM_HELLO_LEN];

	put(fd, b, lm__enc_hello(b, h));
}

static FP_UNUSED size_t enc_region(uint8_t *b, uint32_t id, uint64_t len, const char *name)
{
	lm__region_msg m;

	memset(&m, 0, sizeof(m));
	m.id = id;
	m.len = len;
	m.name_len = (uint16_t)strlen(name);
	memcpy(m.name, name, m.name_len);
	return lm__enc_region(b, &m);
}

static FP_UNUSED void send_region(int fd, uint32_t id, uint64_t len, const char *name)
{
	uint8_t b[LM_FRAME_HDR + LM_REGION_FIXED + LM_MAX_REGION_NAME];

	put(fd, b, enc_region(b, id, len, name));
}

/* The next frame on fd is an ACK of kind for SESSION; decoded into *a. */
static FP_UNUSED int expect_ack_a(int fd, uint8_t kind, lm__ack *a)
{
	uint8_t b[LM_ERROR_FIXED + LM_ERROR_MAX_MSG];
	lm__frame f;
	lm__err e;

	if (get_frame(fd, &f, b, sizeof(b)) || f.kind != LM_KIND_ACK ||
	    lm__dec_ack(b, f.len, a, &e) || a->kind != kind || memcmp(a->session, SESSION, 16))
		return -1;
	return 0;
}

static FP_UNUSED int expect_ack(int fd, uint8_t kind)
{
	lm__ack a;

	return expect_ack_a(fd, kind, &a);
}

/* 1 when nothing (no frame, no close) arrives on fd within ms. */
static FP_UNUSED int quiet(int fd, int ms)
{
	struct pollfd p = {fd, POLLIN, 0};

	return poll(&p, 1, ms) == 0;
}

static FP_UNUSED void send_sync(int fd, uint32_t round, uint64_t packets)
{
	uint8_t b[LM_FRAME_HDR + LM_SYNC_LEN];
	lm__sync s = {round, packets};

	put(fd, b, lm__enc_sync(b, &s));
}

static FP_UNUSED void send_complete(int fd, const lm__region_sum *sums, uint32_t n)
{
	uint8_t b[LM_FRAME_HDR + LM_COMPLETE_FIXED + 4 * LM_COMPLETE_ENTRY];

	put(fd, b, lm__enc_complete(b, sums, n));
}

/* A data packet as the fake sender builds it; every count is explicit. */
typedef struct pkt {
	lm__data_hdr d;
	uint64_t off[MAXP];
	uint32_t noff;        /* offsets written (normally normal + zero) */
	uint32_t plen[MAXP];
	uint32_t nlen;        /* lengths written (normally normal + area) */
	lm__ref ref[MAXP];    /* ref entries, written after the offsets */
	uint32_t nref;        /* ref entries written (normally d.ref) */
	lm__delta dl[MAXP];   /* delta entries, after the ref entries */
	uint32_t ndl;         /* delta entries written (normally d.delta) */
	uint32_t npay;        /* payload bytes written (normally d.payload) */
	const uint8_t *pay;   /* NULL: page k is filled with fill + k */
	uint8_t fill;
	int64_t body_adj;     /* added to the body length the counts give */
	int body_set;
	uint32_t body;        /* used instead when body_set */
} pkt;

static uint8_t fbuf[LM_FRAME_HDR + LM_DATA_HDR + MAXP * 28 + 2 * MAXP * PS];

/* normal pages at off0, off0 + PS...; then zero pages right after them. */
static FP_UNUSED pkt good_pkt(uint64_t num, uint32_t round, uint64_t off0, uint32_t normal,
			      uint32_t zero, uint8_t fill)
{
	pkt p;

	memset(&p, 0, sizeof(p));
	p.d.packet_num = num;
	p.d.round = round;
	p.d.pages = normal + zero;
	p.d.normal = normal;
	p.d.zero = zero;
	p.d.payload = normal * PS;
	p.d.codec_flags = LM_CODEC_NONE;
	p.noff = normal + zero;
	for (uint32_t i = 0; i < p.noff; i++)
		p.off[i] = off0 + (uint64_t)i * PS;
	p.nlen = normal;
	for (uint32_t i = 0; i < normal; i++)
		p.plen[i] = PS;
	p.npay = p.d.payload;
	p.fill = fill;
	return p;
}

static FP_UNUSED size_t build_data(const pkt *p)
{
	uint64_t body = p->body_set ? p->body
				    : (uint64_t)((int64_t)lm__data_body_len(&p->d) + p->body_adj);
	uint8_t *q = fbuf + lm__enc_data_hdr(fbuf, &p->d, (uint32_t)body);

	for (uint32_t i = 0; i < p->noff; i++, q += 8)
		lm__put64(q, p->off[i]);
	for (uint32_t i = 0; i < p->nref; i++, q += LM_REF_ENTRY) {
		lm__put32(q, p->ref[i].src_region);
		lm__put32(q + 4, p->ref[i].src_round);
		lm__put64(q + 8, p->ref[i].src_offset);
	}
	for (uint32_t i = 0; i < p->ndl; i++, q += LM_DELTA_ENTRY) {
		lm__put32(q, p->dl[i].base_round);
		lm__put32(q + 4, p->dl[i].len);
	}
	for (uint32_t i = 0; i < p->nlen; i++, q += 4)
		lm__put32(q, p->plen[i]);
	if (p->pay)
		memcpy(q, p->pay, p->npay);
	else
		for (uint32_t k = 0; k < p->npay; k++)
			q[k] = (uint8_t)(p->fill + k / PS);
	return (size_t)(q - fbuf) + p->npay;
}

static FP_UNUSED void send_pkt(int fd, const pkt *p)
{
	put(fd, fbuf, build_data(p));
}

/* What the destination must hold after good_pkt(..., off0, normal, 0, fill). */
static FP_UNUSED void expect_pages(uint8_t *mem, uint64_t off0, uint32_t normal, uint8_t fill)
{
	for (uint32_t i = 0; i < normal; i++)
		memset(mem + off0 + (uint64_t)i * PS, (uint8_t)(fill + i), PS);
}

/* A fake session: receiver plus n handshaken channels. */
typedef struct sess {
	rx x;
	int fd[4];
	int n;
} sess;

/* Channel i's hello offers offer[i] in hello.features (offer NULL: none)
 * and requires required; codec >= 0 replaces mk_hello's codec; acked[i]
 * (if not NULL) receives its ACK(HELLO).features. */
static FP_UNUSED int sess_open_x(sess *s, const rxopt *o, int nch, const uint64_t *offer,
				 uint64_t required, int codec, uint64_t *acked)
{
	int bad = 0;

	rx_start(&s->x, o);
	s->n = nch;
	for (int i = 0; i < nch; i++) {
		lm__hello h = mk_hello((uint16_t)i, (uint16_t)nch);
		h.features = offer ? offer[i] : 0;
		h.required = required;
		if (codec >= 0)
			h.codec = (uint16_t)codec;
		s->fd[i] = fs_connect(s->x.port);
		send_hello(s->fd[i], &h);
		if (i == 0)
			send_region(s->fd[0], 0, s->x.len, "ram");
	}
	for (int i = 0; i < nch; i++) {
		lm__ack a;
		int r = expect_ack_a(s->fd[i], LM_KIND_HELLO, &a);
		bad |= r;
		if (acked)
			acked[i] = r ? ~0ull : a.features;
	}
	CHECK_EQ(bad, 0);
	return bad;
}

static FP_UNUSED int sess_open_f(sess *s, const rxopt *o, int nch, const uint64_t *offer,
				 uint64_t *acked)
{
	return sess_open_x(s, o, nch, offer, 0, -1, acked);
}

static FP_UNUSED int sess_open(sess *s, const rxopt *o, int nch)
{
	return sess_open_f(s, o, nch, NULL, NULL);
}

/* ---- outcome --------------------------------------------------------------- */

typedef struct got {
	int frame;       /* an ERROR frame was read */
	int32_t code;
	uint16_t channel;
	char msg[LM_ERROR_MAX_MSG + 1];
} got;

/* Reads until an ERROR frame or the close, on all fds at once (the receiver
 * sends its error frames one connection after the other), closing each. */
static FP_UNUSED void collect(int *fds, int n, got *g)
{
	uint64_t end = now_ms() + 6000;
	int open_fds = n;

	memset(g, 0, sizeof(*g) * (size_t)n);
	while (open_fds > 0 && now_ms() < end) {
		struct pollfd p[8];
		int idx[8], k = 0;

		for (int i = 0; i < n; i++)
			if (fds[i] >= 0) {
				p[k].fd = fds[i];
				p[k].events = POLLIN;
				p[k].revents = 0;
				idx[k++] = i;
			}
		if (poll(p, (nfds_t)k, 100) <= 0)
			continue;
		for (int j = 0; j < k; j++) {
			int i = idx[j];
			uint8_t b[LM_ERROR_FIXED + LM_ERROR_MAX_MSG];
			lm__frame f;
			lm__error_msg m;
			lm__err e;

			if (!p[j].revents)
				continue;
			if (get_frame(fds[i], &f, b, sizeof(b)) == 0) {
				if (f.kind != LM_KIND_ERROR)
					continue; /* e.g. an ack: keep reading */
				if (lm__dec_error(b, f.len, &m, &e) == 0) {
					g[i].frame = 1;
					g[i].code = m.code;
					g[i].channel = m.channel;
					memcpy(g[i].msg, m.msg, sizeof(g[i].msg));
				}
			}
			close(fds[i]);
			fds[i] = -1;
			open_fds--;
		}
	}
	for (int i = 0; i < n; i++)
		if (fds[i] >= 0) {
			close(fds[i]);
			fds[i] = -1;
		}
}

typedef struct want {
	int code;
	int chan;          /* errmsg starts "channel N: "; -1: not checked */
	const char *field; /* errmsg contains this */
	int err_fd;        /* fds[err_fd] must read an ERROR frame with code; -1: none;
			    * -2: every connection must */
	int zero;          /* the region must still be all zero */
} want;

static FP_UNUSED void report(const char *name, int f0, const rx *x)
{
	if (lm_test_failures == f0)
		printf("reject %s: ok\n", name);
	else
		printf("reject %s: FAILED (rc %d %s; errmsg \"%s\")\n", name, x->rc,
		       lm_strerror(x->rc), x->r ? lm_receiver_errmsg(x->r) : "");
	fflush(stdout);
}

/* Collects the error frames, joins the receiver and checks everything. */
static FP_UNUSED void outcome(const char *name, rx *x, int *fds, int nfds, const want *w)
{
	got g[4];
	const char *msg;
	char pre[32];

	collect(fds, nfds, g);
	rx_join(x);
	msg = lm_receiver_errmsg(x->r);
	CHECK_EQ(x->rc, w->code);
	if (w->field && !strstr(msg, w->field)) {
		CHECK(strstr(msg, w->field) != NULL);
		fprintf(stderr, "  %s: errmsg \"%s\" does not name \"%s\"\n", name, msg, w->field);
	}
	if (w->chan >= 0) {
		snprintf(pre, sizeof(pre), "channel %d: ", w->chan);
		if (strncmp(msg, pre, strlen(pre))) {
			CHECK(strncmp(msg, pre, strlen(pre)) == 0);
			fprintf(stderr, "  %s: errmsg \"%s\" does not start with \"%s\"\n", name, msg,
				pre);
		}
	}
	if (w->err_fd >= 0) {
		const got *e = &g[w->err_fd];
		if (!e->frame) {
			CHECK(e->frame);
			fprintf(stderr, "  %s: connection %d was closed without an ERROR frame\n", name,
				w->err_fd);
		} else {
			CHECK_EQ(e->code, w->code);
			if (w->field)
				CHECK(strstr(e->msg, w->field) != NULL);
			if (w->chan >= 0)
				CHECK_EQ(e->channel, w->chan);
		}
	}
	for (int i = 0; w->err_fd == -2 && i < nfds; i++) {
		if (!g[i].frame || g[i].code != w->code) {
			CHECK(g[i].frame && g[i].code == w->code);
			fprintf(stderr, "  %s: connection %d: %s %d\n", name, i,
				g[i].frame ? "ERROR frame with code" : "no ERROR frame", g[i].code);
		}
	}
	CHECK(canaries_ok(x));
	if (w->zero)
		CHECK(region_zero(x, 0, x->len));
}

/* Before a session exists a bad hello is a stranger's: that connection gets
 * ERROR naming the field, the receiver logs one line and goes on waiting
 * (docs/security.md); here it is then cancelled. */
static FP_UNUSED void refused_outcome(const char *name, rx *x, int fd, const want *w)
{
	got g;
	lm_stats st = LM_STATS_INIT;

	collect(&fd, 1, &g);
	if (!g.frame) {
		CHECK(g.frame);
		fprintf(stderr, "  %s: closed without an ERROR frame\n", name);
	} else {
		CHECK_EQ(g.code, w->code);
		if (w->field && !strstr(g.msg, w->field)) {
			CHECK(strstr(g.msg, w->field) != NULL);
			fprintf(stderr, "  %s: ERROR \"%s\" does not name \"%s\"\n", name, g.msg, w->field);
		}
	}
	/* The refusal counted, the receiver is back waiting for its sender:
	 * had the stranger ended the session, it would have returned by now
	 * with the hello's error, not the cancel's. */
	for (int i = 0; i < 400; i++) {
		lm_receiver_stats(x->r, &st);
		if (st.refused)
			break;
		sleep_ms(5);
	}
	CHECK(rx_join_ms(x, 30) == -1);
	CHECK_EQ(lm_receiver_cancel(x->r), 0);
	rx_join(x);
	CHECK_EQ(x->rc, LM_ECANCELED);
	CHECK(strstr(x->log, "refused 127.0.0.1:") != NULL);
	if (w->field && !strstr(x->log, w->field)) {
		CHECK(strstr(x->log, w->field) != NULL);
		fprintf(stderr, "  %s: log \"%s\" does not name \"%s\"\n", name, x->log, w->field);
	}
	lm_receiver_stats(x->r, &st);
	CHECK_EQ(st.refused, 1);
	CHECK(canaries_ok(x));
	CHECK(region_zero(x, 0, x->len));
}

#endif
