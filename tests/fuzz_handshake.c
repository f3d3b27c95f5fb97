/*
 * libFuzzer target: the real receiver (lm_receiver_new, _add_region,
 * cfg.on_region / cfg.alloc_regions, lm_receiver_run) fed the fuzz input as
 * the byte streams of one to four connections: HELLO, REGION, the region
 * callback, the session's limits, and whatever follows.
 *
 * Input layout:
 *   byte 0   bits 0-1: connections - 1 (1..4);
 *            bits 2-3: regions: 0 "ram" and "heap" added, others through
 *            on_region; 1 on_region only; 2 alloc_regions only; 3 "ram" and
 *            "heap" added, no callback;
 *            bit 4: on_region's memory is fresh (zeroed, fresh = 1), else
 *            stale (0xa5, fresh = 0);
 *            bit 5: cfg.max_bytes = 64 KiB;
 *            bit 6: cfg.max_channels = 2;
 *            bit 7: on_region refuses region id 1.
 *   then     for each connection but the last: a be16 length and that many
 *            bytes (cut short by the input's end); the last connection gets
 *            the rest.
 * Added regions: "ram" 8192 bytes, "heap" 4196 bytes (a partial second
 * page), exact-size heap buffers holding 0xa5. on_region refuses more than
 * 1 MiB per region or 4 MiB in all (so the memory a stranger can make us
 * map stays small), else maps len rounded up to the page size.
 *
 * Each connection is written by its own thread the way a sender writes it:
 * the leading HELLO and REGION frames, then (only if more bytes follow) a
 * wait of up to 50 ms for the receiver's answer (the ACK of the hello, or an
 * ERROR), then the rest; then it shuts its write side so the receiver sees
 * EOF. When some connection's bytes hold a COMPLETE frame (the session may
 * succeed), every writer whose bytes end on a frame boundary first waits,
 * as a sender does, for the receiver to answer or close that connection (at
 * most the stall timeout): a sender closing channel 1 before channel 0's
 * COMPLETE is verified is a failure. No writer waits for an ACK that cannot
 * come (its hello names more channels than there are hellos).
 * The receiver's timeouts are 200 ms (stall) and 100 ms (accept), so every
 * input ends within about half a second, most within a millisecond.
 *
 * Connections: fz_connect() makes them: socketpair() and
 * lm_receiver_accept_fds(); built with -DLM_FUZZ_TCP, loopback TCP through
 * lm_receiver_listen("127.0.0.1:0") instead.
 *
 * Checked (violations __builtin_trap()):
 *  - lm_receiver_run returns (never crashes, never hangs past the timeouts);
 *  - it returns 0 only for a complete valid session: then channel 0's
 *    stream holds HELLO, its REGION frames and a COMPLETE whose every entry
 *    matches a region lm_receiver_region() hands out (same length, and
 *    lm_region_checksum() of its memory equals the entry's checksum), every
 *    added region was announced, and the stats say completed;
 *  - on failure: a non-empty errmsg, and lm_receiver_region() gives nothing
 *    (LM_ESTATE);
 *  - the region callback: ids strictly increasing from call to call and
 *    below 256, a name of 1..255 bytes, a power-of-two page size in
 *    4096..65536; (byte 0 bit 5 set) never a len above cfg.max_bytes, nor
 *    a session total above it. LM_FUZZ_CHECK_MAX_BYTES=0 in the
 *    environment turns that check off; then alloc_regions mode falls back
 *    to on_region for inputs that announce more than 1 MiB in one region
 *    (the receiver would map and index whatever is announced: that is
 *    what max_bytes is for).
 *
 * Seeds (tests/seeds/fuzz_handshake/): HELLO+REGION prefixes for 1 and 3
 * regions, complete tiny sessions (one and two channels, added regions,
 * on_region, alloc_regions), and a few refused ones. The generator is the
 * LM_FUZZ_SEEDGEN part of this file, built as seedgen_fuzz_handshake
 * (never run by ctest):
 *   out/asan/tests/seedgen_fuzz_handshake tests/seeds/fuzz_handshake
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "livemig.h"
#include "wire.h"

#define CHECK(c)                                                                        \
	do {                                                                            \
		if (!(c)) {                                                             \
			fprintf(stderr, "fuzz_handshake: invariant failed at %s:%d: %s\n", \
				__FILE__, __LINE__, #c);                                \
			__builtin_trap();                                               \
		}                                                                       \
	} while (0)

#define MAX_CONNS 4
#define MAX_BYTES (64u << 10)
#define CB_MAX_REGION (1u << 20)
#define CB_MAX_TOTAL (4u << 20)
#define ACK_WAIT_MS 50
#define STALL_MS 200

#define CFG_CONNS(n) ((uint8_t)((n) - 1))
#define CFG_MODE(m) ((uint8_t)((m) << 2))
#define MODE_ADDED_CB 0
#define MODE_CB 1
#define MODE_ALLOC 2
#define MODE_ADDED 3
#define CFG_CB_FRESH 0x10u
#define CFG_MAX_BYTES 0x20u
#define CFG_MAX_CHANNELS 0x40u
#define CFG_REFUSE_1 0x80u

static const char *const added_name[2] = {"ram", "heap"};
static const uint64_t added_len[2] = {8192, 4196};

/* The last input's result (the seed generator checks it). */
static int fz_last_rc;
static char fz_last_msg[512];

/* ---- the region callback ---------------------------------------------------- */

typedef struct cb_state {
	int fresh, refuse1, check_max;
	uint64_t max_bytes;
	int64_t last_id;
	uint64_t total;
	uint32_t n;
	struct {
		void *p;
		size_t len;
	} maps[LM_MAX_REGIONS];
} cb_state;

static int on_region(void *user, uint32_t id, const char *name, uint64_t len, uint32_t page_size,
		     void **base, int *fresh)
{
	cb_state *s = user;
	size_t nl = strlen(name), rounded;
	void *p;

	CHECK(id < LM_MAX_REGIONS && (int64_t)id > s->last_id);
	s->last_id = id;
	CHECK(nl >= 1 && nl <= LM_MAX_REGION_NAME);
	CHECK(page_size >= LM_MIN_PAGE_SIZE && page_size <= LM_MAX_PAGE_SIZE &&
	      !(page_size & (page_size - 1)));
	CHECK(base && fresh);
	if (s->check_max && s->max_bytes)
		CHECK(len <= s->max_bytes);
	if (s->refuse1 && id == 1)
		return LM_EREGION;
	if (len > CB_MAX_REGION || s->total + len > CB_MAX_TOTAL)
		return -ENOSPC;
	s->total += len;
	if (!len) {
		*base = NULL;
		*fresh = 1;
		return 0;
	}
	rounded = (size_t)((len + page_size - 1) / page_size * page_size);
	p = mmap(NULL, rounded, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -ENOMEM;
	if (!s->fresh)
		memset(p, 0xa5, rounded);
	s->maps[s->n].p = p;
	s->maps[s->n].len = rounded;
	s->n++;
	*base = p;
	*fresh = s->fresh;
	return 0;
}

/* ---- walking a stream as the receiver frames it ------------------------------- */

typedef struct frame_at {
	const uint8_t *body;
	uint8_t kind;
	uint32_t len;
} frame_at;

/* The frame at *pos, if its header has the magic and it is whole. */
static int next_frame(const uint8_t *p, size_t n, size_t *pos, frame_at *f)
{
	if (n - *pos < LM_FRAME_HDR || lm__get32(p + *pos) != LM_MAGIC)
		return 0;
	f->kind = p[*pos + 4];
	f->len = lm__get32(p + *pos + 8);
	if (n - *pos - LM_FRAME_HDR < f->len)
		return 0;
	f->body = p + *pos + LM_FRAME_HDR;
	*pos += LM_FRAME_HDR + f->len;
	return 1;
}

/* Bytes of the leading HELLO and REGION frames: what a sender writes before
 * it waits for the hello's ACK. */
static size_t handshake_len(const uint8_t *p, size_t n)
{
	size_t pos = 0, end = 0;
	frame_at f;

	while (next_frame(p, n, &pos, &f) && (f.kind == LM_KIND_HELLO || f.kind == LM_KIND_REGION))
		end = pos;
	return end;
}

/* The largest region length any REGION frame of the stream announces. */
static uint64_t max_region_len(const uint8_t *p, size_t n)
{
	size_t pos = 0;
	uint64_t max = 0;
	frame_at f;

	while (next_frame(p, n, &pos, &f))
		if (f.kind == LM_KIND_REGION && f.len >= LM_REGION_FIXED &&
		    lm__get64(f.body + 8) > max)
			max = lm__get64(f.body + 8);
	return max;
}

/* The receiver will take this connection for a probe: it ends before its
 * first frame, a HELLO, is whole (a bad header fails at once instead). */
static int is_probe(const uint8_t *p, size_t n)
{
	lm__frame f;

	if (n < LM_FRAME_HDR)
		return 1;
	if (lm__dec_frame(p, &f, NULL) || f.kind != LM_KIND_HELLO || f.len > LM_HELLO_LEN)
		return 0;
	return n < LM_FRAME_HDR + f.len;
}

/* ---- connections ------------------------------------------------------------- */

typedef struct writer {
	pthread_t tid;
	int fd;
	const uint8_t *p;
	size_t n;
	int linger; /* keep the write side open until the receiver answers */
	int no_ack; /* the session cannot be set up: no ACK of the hello comes */
} writer;

static int has_complete(const uint8_t *p, size_t n)
{
	size_t pos = 0;
	frame_at f;

	while (next_frame(p, n, &pos, &f))
		if (f.kind == LM_KIND_COMPLETE)
			return 1;
	return 0;
}

/* The stream is whole frames: a sender that did not die mid-frame. */
static int ends_on_frame(const uint8_t *p, size_t n)
{
	size_t pos = 0;
	frame_at f;

	while (next_frame(p, n, &pos, &f))
		;
	return pos == n;
}

/* hello.channels of the stream's first frame, 0 if it is no HELLO. */
static uint32_t hello_channels(const uint8_t *p, size_t n)
{
	size_t pos = 0;
	frame_at f;

	if (!next_frame(p, n, &pos, &f) || f.kind != LM_KIND_HELLO || f.len != LM_HELLO_LEN)
		return 0;
	return lm__get16(f.body + 22);
}

static int send_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static void *writer_main(void *arg)
{
	writer *w = arg;
	size_t hs = handshake_len(w->p, w->n);

	if (hs && hs < w->n) {
		struct pollfd p = {w->fd, POLLIN, 0};
		uint8_t ack[LM_FRAME_HDR + LM_ACK_LEN];
		if (send_all(w->fd, w->p, hs) == 0 && poll(&p, 1, w->no_ack ? 0 : ACK_WAIT_MS) > 0 &&
		    recv(w->fd, ack, sizeof(ack), 0) < 0) {
			/* nothing to do: the rest goes out either way */
		}
		send_all(w->fd, w->p + hs, w->n - hs);
	} else {
		send_all(w->fd, w->p, w->n);
	}
	if (w->linger) {
		/* As a sender closes only after ACK(COMPLETE) (or an ERROR):
		 * the receiver's answer, or its close, or its stall timeout. */
		struct pollfd p = {w->fd, POLLIN, 0};
		poll(&p, 1, STALL_MS + 50);
	}
	shutdown(w->fd, SHUT_WR);
	return NULL;
}

/* n connections to r; peer[i] is our end of connection i, in the order the
 * receiver sees them. */
static int fz_connect(lm_receiver *r, int n, int *peer)
{
#ifndef LM_FUZZ_TCP
	int theirs[MAX_CONNS];

	for (int i = 0; i < n; i++) {
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
			return -errno;
		peer[i] = sv[0];
		theirs[i] = sv[1];
	}
	return lm_receiver_accept_fds(r, theirs, (uint32_t)n);
#else
	struct sockaddr_in a = {.sin_family = AF_INET};
	int rc = lm_receiver_listen(r, "127.0.0.1:0");

	if (rc)
		return rc;
	a.sin_port = htons((uint16_t)lm_receiver_port(r));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (int i = 0; i < n; i++) {
		struct linger l = {1, 0}; /* our close resets: no TIME_WAIT pile-up */
		peer[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (peer[i] < 0)
			return -errno;
		setsockopt(peer[i], SOL_SOCKET, SO_LINGER, &l, sizeof(l));
		if (connect(peer[i], (struct sockaddr *)&a, sizeof(a)))
			return -errno;
	}
	return 0;
#endif
}

/* ---- the oracle for a session the receiver called complete ------------------- */

static void check_success(const lm_receiver *r, const uint8_t *const *stream, const size_t *len,
			  int n, int mode)
{
	const uint8_t *s = NULL;
	size_t sn = 0, pos = 0;
	frame_at f;
	char names[LM_MAX_REGIONS][LM_MAX_REGION_NAME + 1];
	uint64_t lens[LM_MAX_REGIONS];
	uint32_t count, got = 0;
	uint16_t channels;
	int hellos = 0;
	lm_stats st = LM_STATS_INIT;

	/* Channel 0: the connection whose first frame is HELLO for channel 0. */
	for (int i = 0; i < n && !s; i++) {
		size_t p0 = 0;
		if (next_frame(stream[i], len[i], &p0, &f) && f.kind == LM_KIND_HELLO &&
		    f.len == LM_HELLO_LEN && lm__get16(f.body + 20) == 0) {
			s = stream[i];
			sn = len[i];
		}
	}
	CHECK(s);
	CHECK(next_frame(s, sn, &pos, &f) && f.kind == LM_KIND_HELLO);
	channels = lm__get16(f.body + 22);
	count = lm__get32(f.body + 36);
	CHECK(channels >= 1 && channels <= n && count <= LM_MAX_REGIONS);
	for (int i = 0; i < n; i++) {
		size_t p0 = 0;
		frame_at h;
		if (next_frame(stream[i], len[i], &p0, &h) && h.kind == LM_KIND_HELLO &&
		    h.len == LM_HELLO_LEN && memcmp(h.body + 4, f.body + 4, 16) == 0)
			hellos++;
	}
	CHECK(hellos >= channels);
	for (uint32_t i = 0; i < count; i++) {
		uint16_t nl;
		CHECK(next_frame(s, sn, &pos, &f) && f.kind == LM_KIND_REGION);
		CHECK(lm__get32(f.body) == i);
		nl = lm__get16(f.body + 16);
		CHECK(nl >= 1 && f.len == LM_REGION_FIXED + nl);
		memcpy(names[i], f.body + 20, nl);
		names[i][nl] = 0;
		lens[i] = lm__get64(f.body + 8);
	}
	while (next_frame(s, sn, &pos, &f) && f.kind != LM_KIND_COMPLETE)
		;
	CHECK(f.kind == LM_KIND_COMPLETE && f.len == 8 + 24ull * count);
	CHECK(lm__get32(f.body) == count);
	for (uint32_t i = 0; i < count; i++) {
		const uint8_t *q = f.body + 8 + 24 * i;
		void *base = NULL;
		uint64_t rl = 0, sum = 0;
		CHECK(lm__get32(q) == i && lm__get64(q + 8) == lens[i]);
		CHECK(lm_receiver_region(r, names[i], &base, &rl) == 0);
		CHECK(rl == lens[i] && (base || !rl));
		CHECK(lm_region_checksum(base, rl, &sum) == 0);
		CHECK(sum == lm__get64(q + 16));
		for (int k = 0; k < 2; k++)
			got += strcmp(names[i], added_name[k]) == 0;
	}
	if (mode == MODE_ADDED || mode == MODE_ADDED_CB)
		CHECK(got == 2);
	lm_receiver_stats(r, &st);
	CHECK(st.status == LM_STATUS_COMPLETED);
}

/* ---- one input ----------------------------------------------------------------- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int check_max = -1;
	static cb_state cb;
	lm_receiver_config cfg;
	lm_receiver *r = NULL;
	const uint8_t *stream[MAX_CONNS];
	size_t slen[MAX_CONNS], pos = 1;
	int peer[MAX_CONNS], nconn, mode, rc, linger = 0, hellos = 0, probes = 0;
	uint8_t *added[2] = {NULL, NULL};
	writer w[MAX_CONNS];
	uint64_t biggest = 0;
	void *base;
	uint64_t blen;

	if (size < 1 || size > (256u << 10))
		return 0;
	if (check_max < 0) {
		const char *v = getenv("LM_FUZZ_CHECK_MAX_BYTES");
		check_max = !v || strcmp(v, "0") != 0;
		signal(SIGPIPE, SIG_IGN);
	}
	nconn = (data[0] & 3) + 1;
	mode = (data[0] >> 2) & 3;
	for (int i = 0; i < nconn; i++) {
		size_t l = size - pos;
		if (i + 1 < nconn) {
			l = 0;
			if (size - pos >= 2) {
				l = lm__get16(data + pos);
				pos += 2;
			} else {
				pos = size;
			}
			if (l > size - pos)
				l = size - pos;
		}
		stream[i] = data + pos;
		slen[i] = l;
		pos += l;
		if (max_region_len(stream[i], slen[i]) > biggest)
			biggest = max_region_len(stream[i], slen[i]);
	}
	/* Only probes: the receiver waits out its accept timeout (at its
	 * 200 ms poll) and fails with LM_ETIMEDOUT, whatever the bytes; a
	 * seed covers probes next to a session. */
	for (int i = 0; i < nconn; i++)
		probes += is_probe(stream[i], slen[i]);
	if (probes == nconn)
		return 0;
	/* See the top: without an enforced max_bytes, a stranger's region
	 * would be mapped and indexed at whatever size it names. */
	if (mode == MODE_ALLOC && biggest > CB_MAX_REGION &&
	    !(check_max && (data[0] & CFG_MAX_BYTES)))
		mode = MODE_CB;

	memset(&cb, 0, sizeof(cb));
	cb.fresh = !!(data[0] & CFG_CB_FRESH);
	cb.refuse1 = !!(data[0] & CFG_REFUSE_1);
	cb.check_max = check_max;
	cb.last_id = -1;
	memset(&cfg, 0, sizeof(cfg));
	cfg.size = sizeof(cfg);
	cfg.timeout_ms = STALL_MS;
	cfg.accept_timeout_ms = 100;
	cfg.max_channels = (data[0] & CFG_MAX_CHANNELS) ? 2 : 0;
	cfg.accel = LM_ACCEL_OFF;
	cfg.max_bytes = (data[0] & CFG_MAX_BYTES) ? MAX_BYTES : 0;
	cb.max_bytes = cfg.max_bytes;
	cfg.user = &cb;
	if (mode == MODE_ADDED_CB || mode == MODE_CB)
		cfg.on_region = on_region;
	cfg.alloc_regions = mode == MODE_ALLOC;
	CHECK(lm_receiver_new(&r, &cfg) == 0);
	if (mode == MODE_ADDED || mode == MODE_ADDED_CB) {
		for (int k = 0; k < 2; k++) {
			added[k] = malloc(added_len[k]);
			CHECK(added[k]);
			memset(added[k], 0xa5, added_len[k]);
			CHECK(lm_receiver_add_region(r, added_name[k], added[k], added_len[k], 0) == 0);
		}
	}
	for (int i = 0; i < nconn; i++)
		peer[i] = -1;
	rc = fz_connect(r, nconn, peer);
	CHECK(rc == 0);
	for (int i = 0; i < nconn; i++) {
		linger |= has_complete(stream[i], slen[i]);
		hellos += hello_channels(stream[i], slen[i]) > 0;
	}
	for (int i = 0; i < nconn; i++) {
		uint32_t want = hello_channels(stream[i], slen[i]);
		w[i] = (writer){.fd = peer[i], .p = stream[i], .n = slen[i],
				.linger = linger && ends_on_frame(stream[i], slen[i]),
				.no_ack = want > (uint32_t)hellos};
		CHECK(pthread_create(&w[i].tid, NULL, writer_main, &w[i]) == 0);
	}

	rc = lm_receiver_run(r);
	fz_last_rc = rc;
	snprintf(fz_last_msg, sizeof(fz_last_msg), "%s", lm_receiver_errmsg(r));

	for (int i = 0; i < nconn; i++)
		pthread_join(w[i].tid, NULL);
	if (rc == 0) {
		check_success(r, stream, slen, nconn, mode);
	} else {
		CHECK(lm_receiver_errmsg(r)[0]);
		CHECK(lm_receiver_region(r, "ram", &base, &blen) == LM_ESTATE);
	}
	for (int i = 0; i < nconn; i++)
		if (peer[i] >= 0)
			close(peer[i]);
	lm_receiver_free(r);
	for (uint32_t i = 0; i < cb.n; i++)
		munmap(cb.maps[i].p, cb.maps[i].len);
	free(added[0]);
	free(added[1]);
	return 0;
}

#ifdef LM_FUZZ_SEEDGEN
/* ---- seed generator: what a correct sender sends --------------------------------- */

typedef struct buf {
	uint8_t b[65536];
	size_t n;
} buf;

static void put(buf *o, const void *p, size_t n)
{
	if (o->n + n > sizeof(o->b))
		abort();
	memcpy(o->b + o->n, p, n);
	o->n += n;
}

static const uint8_t session_id[16] = {0x81, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
				       0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10};

static void hello(buf *o, uint16_t channel, uint16_t channels, uint32_t regions, uint64_t features,
		  const uint8_t *sid)
{
	uint8_t b[LM_FRAME_HDR + LM_HELLO_LEN];
	lm__hello h = {.version = LM_PROTOCOL_VERSION, .channel = channel, .channels = channels,
		       .page_size = 4096, .codec = LM_CODEC_NONE, .packet_pages = 128,
		       .region_count = regions, .features = features};

	memcpy(h.session, sid ? sid : session_id, 16);
	put(o, b, lm__enc_hello(b, &h));
}

static void region(buf *o, uint32_t id, const char *name, uint64_t len)
{
	uint8_t b[LM_FRAME_HDR + LM_REGION_FIXED + LM_MAX_REGION_NAME];
	lm__region_msg m = {.id = id, .len = len, .name_len = (uint16_t)strlen(name)};

	memcpy(m.name, name, m.name_len);
	put(o, b, lm__enc_region(b, &m));
}

/* One packet of the given pages of a region whose content is c (len bytes):
 * zero pages as zero pages, the others raw. */
static void data(buf *o, uint64_t num, uint32_t id, uint32_t round, const uint8_t *c,
		 uint64_t len, uint32_t first, uint32_t pages)
{
	uint8_t hdr[LM_FRAME_HDR + LM_DATA_HDR], b8[8], page[4096];
	uint64_t noff[16], zoff[16];
	uint32_t nn = 0, nz = 0;
	lm__data_hdr d = {0};

	for (uint32_t i = first; i < first + pages; i++) {
		uint64_t off = (uint64_t)i * 4096;
		size_t k = len - off < 4096 ? (size_t)(len - off) : 4096;
		int zero = 1;
		for (size_t j = 0; j < k; j++)
			zero &= c[off + j] == 0;
		if (zero)
			zoff[nz++] = off;
		else
			noff[nn++] = off;
	}
	d.packet_num = num;
	d.region = id;
	d.round = round;
	d.pages = pages;
	d.normal = nn;
	d.zero = nz;
	d.payload = nn * 4096;
	put(o, hdr, lm__enc_data_hdr(hdr, &d, (uint32_t)lm__data_body_len(&d)));
	for (uint32_t i = 0; i < nn; i++)
		lm__put64(b8, noff[i]), put(o, b8, 8);
	for (uint32_t i = 0; i < nz; i++)
		lm__put64(b8, zoff[i]), put(o, b8, 8);
	for (uint32_t i = 0; i < nn; i++)
		lm__put32(b8, 4096), put(o, b8, 4);
	for (uint32_t i = 0; i < nn; i++) {
		size_t k = len - noff[i] < 4096 ? (size_t)(len - noff[i]) : 4096;
		memset(page, 0, sizeof(page));
		memcpy(page, c + noff[i], k);
		put(o, page, 4096);
	}
}

static void sync_frame(buf *o, uint32_t round, uint64_t packets)
{
	uint8_t b[LM_FRAME_HDR + LM_SYNC_LEN];
	lm__sync s = {round, packets};

	put(o, b, lm__enc_sync(b, &s));
}

static void complete(buf *o, const uint8_t *const *c, const uint64_t *len, uint32_t n)
{
	lm__region_sum sums[8];
	uint8_t b[LM_FRAME_HDR + LM_COMPLETE_FIXED + 8 * LM_COMPLETE_ENTRY];

	for (uint32_t i = 0; i < n; i++) {
		sums[i].id = i;
		sums[i].len = len[i];
		if (lm_region_checksum(c[i], len[i], &sums[i].checksum))
			abort();
	}
	put(o, b, lm__enc_complete(b, sums, n));
}

static const char *outdir;

/* Byte 0, then the connections: be16-length-prefixed but the last. */
static void write_seed(const char *name, uint8_t cfg, buf *const *conns, int n, int want_ok)
{
	static uint8_t all[1 + MAX_CONNS * (2 + sizeof(((buf *)0)->b))];
	char path[4096];
	size_t len = 0;
	FILE *f;
	int tries = 0;

	all[len++] = cfg;
	for (int i = 0; i < n; i++) {
		if (i + 1 < n) {
			if (conns[i]->n > 0xffff)
				abort();
			lm__put16(all + len, (uint16_t)conns[i]->n);
			len += 2;
		}
		memcpy(all + len, conns[i]->b, conns[i]->n);
		len += conns[i]->n;
	}
	if (len > 65535)
		abort();
	snprintf(path, sizeof(path), "%s/%s", outdir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(all, 1, len, f) != len || fclose(f)) {
		perror(path);
		exit(1);
	}
	/* A valid session can fail on a loaded machine (the timeouts are
	 * short): try it a few times. */
	do
		LLVMFuzzerTestOneInput(all, len);
	while (want_ok && fz_last_rc && ++tries < 5);
	printf("%s: %zu bytes, run returned %d (%s) %s\n", path, len, fz_last_rc,
	       lm_strerror(fz_last_rc), fz_last_msg);
	if (want_ok ? fz_last_rc != 0 : fz_last_rc == 0) {
		fprintf(stderr, "%s: expected %s\n", name, want_ok ? "success" : "a failure");
		exit(1);
	}
}

int main(int argc, char **argv)
{
	static buf c0, c1, c2;
	buf *cs[3] = {&c0, &c1, &c2};
	static uint8_t ram[8192], heap[4196], extra[5000];
	const uint8_t *content[3] = {ram, heap, extra};
	const uint64_t lens[3] = {sizeof(ram), sizeof(heap), sizeof(extra)};

	if (argc != 2) {
		fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
		return 2;
	}
	outdir = argv[1];
	for (size_t i = 0; i < 4096; i++)
		ram[i] = (uint8_t)("livemig "[i % 8]);
	for (size_t i = 4096; i < sizeof(heap); i++)
		heap[i] = (uint8_t)(i * 7 + 1);
	for (size_t i = 0; i < sizeof(extra); i++)
		extra[i] = (uint8_t)(i % 251);

	/* Prefixes: HELLO + 1 REGION (callback), HELLO + 3 REGIONs (2 added,
	 * 1 through the callback); the stream ends there. */
	c0.n = 0;
	hello(&c0, 0, 1, 1, 0, NULL);
	region(&c0, 0, "ram", 8192);
	write_seed("prefix-1-region", CFG_CONNS(1) | CFG_MODE(MODE_CB), cs, 1, 0);
	c0.n = 0;
	hello(&c0, 0, 1, 3, 0, NULL);
	region(&c0, 0, "ram", 8192);
	region(&c0, 1, "heap", 4196);
	region(&c0, 2, "extra", 5000);
	write_seed("prefix-3-regions", CFG_CONNS(1) | CFG_MODE(MODE_ADDED_CB), cs, 1, 0);

	/* Complete tiny session, one channel, one region by the callback:
	 * hello, region, one data packet (a page and a zero page), sync,
	 * complete. */
	c0.n = 0;
	hello(&c0, 0, 1, 1, 0, NULL);
	region(&c0, 0, "ram", 8192);
	data(&c0, 0, 0, 0, ram, 8192, 0, 2);
	sync_frame(&c0, 0, 1);
	complete(&c0, content, lens, 1);
	write_seed("session-1ch-callback", CFG_CONNS(1) | CFG_MODE(MODE_CB), cs, 1, 1);
	write_seed("session-1ch-callback-fresh", CFG_CONNS(1) | CFG_MODE(MODE_CB) | CFG_CB_FRESH,
		   cs, 1, 1);
	write_seed("session-1ch-alloc", CFG_CONNS(1) | CFG_MODE(MODE_ALLOC) | CFG_MAX_BYTES, cs, 1,
		   1);

	/* Three regions (two added, one by the callback), ROUND_ACK. */
	c0.n = 0;
	hello(&c0, 0, 1, 3, LM_FEAT_ROUND_ACK, NULL);
	region(&c0, 0, "ram", 8192);
	region(&c0, 1, "heap", 4196);
	region(&c0, 2, "extra", 5000);
	data(&c0, 0, 0, 0, ram, 8192, 0, 2);
	data(&c0, 1, 1, 0, heap, 4196, 0, 2);
	data(&c0, 2, 2, 0, extra, 5000, 0, 2);
	sync_frame(&c0, 0, 3);
	complete(&c0, content, lens, 3);
	write_seed("session-3-regions", CFG_CONNS(1) | CFG_MODE(MODE_ADDED_CB), cs, 1, 1);
	/* The callback refuses region 1 ("heap" is not added in this mode). */
	write_seed("session-3-regions-refused",
		   CFG_CONNS(1) | CFG_MODE(MODE_CB) | CFG_REFUSE_1, cs, 1, 0);

	/* Two added regions, no callback, two channels: channel 1 carries the
	 * heap's packet. */
	c0.n = c1.n = 0;
	hello(&c0, 0, 2, 2, 0, NULL);
	region(&c0, 0, "ram", 8192);
	region(&c0, 1, "heap", 4196);
	data(&c0, 0, 0, 0, ram, 8192, 0, 2);
	sync_frame(&c0, 0, 1);
	complete(&c0, content, lens, 2);
	hello(&c1, 1, 2, 2, 0, NULL);
	data(&c1, 1, 1, 0, heap, 4196, 0, 2);
	sync_frame(&c1, 0, 1);
	write_seed("session-2ch-added", CFG_CONNS(2) | CFG_MODE(MODE_ADDED), cs, 2, 1);
	/* Channel 1 connects first. */
	{
		buf *rev[2] = {&c1, &c0};
		write_seed("session-2ch-channel1-first", CFG_CONNS(2) | CFG_MODE(MODE_ADDED), rev, 2,
			   1);
	}
	/* A probe (a connection that sends a few bytes, not a whole hello)
	 * before the session's one channel: ignored. */
	{
		static buf probe;
		buf *pc[2] = {&probe, &c0};
		c0.n = 0;
		hello(&c0, 0, 1, 1, 0, NULL);
		region(&c0, 0, "ram", 8192);
		data(&c0, 0, 0, 0, ram, 8192, 0, 2);
		sync_frame(&c0, 0, 1);
		complete(&c0, content, lens, 1);
		probe.n = 0;
		hello(&probe, 0, 1, 1, 0, NULL);
		probe.n = 20;
		write_seed("session-after-probe", CFG_CONNS(2) | CFG_MODE(MODE_CB), pc, 2, 1);
	}
	c0.n = c1.n = 0;
	hello(&c0, 0, 2, 2, 0, NULL);
	region(&c0, 0, "ram", 8192);
	region(&c0, 1, "heap", 4196);
	data(&c0, 0, 0, 0, ram, 8192, 0, 2);
	sync_frame(&c0, 0, 1);
	complete(&c0, content, lens, 2);
	hello(&c1, 1, 2, 2, 0, NULL);
	data(&c1, 1, 1, 0, heap, 4196, 0, 2);
	sync_frame(&c1, 0, 1);
	/* A third connection: a stranger (another session id), refused
	 * while the session goes on. */
	c2.n = 0;
	hello(&c2, 1, 2, 2, 0, (const uint8_t[16]){1, 2, 3});
	write_seed("session-2ch-stranger", CFG_CONNS(3) | CFG_MODE(MODE_ADDED), cs, 3, 1);
	/* max_channels 2 with a 3-channel hello: refused. */
	c0.n = 0;
	hello(&c0, 0, 3, 2, 0, NULL);
	region(&c0, 0, "ram", 8192);
	region(&c0, 1, "heap", 4196);
	write_seed("hello-above-max-channels",
		   CFG_CONNS(1) | CFG_MODE(MODE_ADDED) | CFG_MAX_CHANNELS, cs, 1, 0);
	/* Channel 0 twice. */
	c0.n = c1.n = 0;
	hello(&c0, 0, 2, 2, 0, NULL);
	region(&c0, 0, "ram", 8192);
	region(&c0, 1, "heap", 4196);
	hello(&c1, 0, 2, 2, 0, NULL);
	write_seed("hello-channel-twice", CFG_CONNS(2) | CFG_MODE(MODE_ADDED), cs, 2, 0);
	/* A region larger than max_bytes, offered to the callback. */
	c0.n = 0;
	hello(&c0, 0, 1, 1, 0, NULL);
	region(&c0, 0, "big", 1u << 20);
	write_seed("region-above-max-bytes", CFG_CONNS(1) | CFG_MODE(MODE_CB) | CFG_MAX_BYTES, cs,
		   1, 0);
	return 0;
}
#endif
