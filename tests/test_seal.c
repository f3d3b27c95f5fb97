/*
 * Sealed records (src/transport/seal.c), the data phase's records under
 * TLS, on socketpairs through the conn's full reads and writes: every
 * split of writes and reads comes back byte for byte (records opened into
 * the caller's buffer and in place, keys changing every few records,
 * writes retried after a full socket, every cipher), and every record
 * changed, dropped, repeated, reordered, cut or sealed with another key is
 * refused with LM_ETLS and a reason, never delivered.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "channel.h"
#include "check.h"

static const uint8_t key_a[LM_SEAL_SECRET] = "sender secret, 32 bytes long...";
static const uint8_t key_b[LM_SEAL_SECRET] = "receiver secret, 32 bytes long.";

static __thread uint64_t rng = 0x9e3779b97f4a7c15ull; /* per thread: writer and reader */
static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)rng;
}

/* A socketpair, non-blocking, as the transports hand conns out; the two
 * ends seal with each other's secrets. small: tiny socket buffers, so that
 * writes fill the socket and are retried. */
static void pair(lm__conn *a, lm__conn *b, const char *cipher, uint64_t epoch, int small)
{
	int sv[2], sz = 4096;
	lm__seal *sa, *sb;

	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	for (int i = 0; i < 2 && small; i++) {
		setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
		setsockopt(sv[i], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	}
	for (int i = 0; i < 2; i++)
		fcntl(sv[i], F_SETFL, fcntl(sv[i], F_GETFL) | O_NONBLOCK);
	lm__conn_init(a, sv[0], 5000);
	lm__conn_init(b, sv[1], 5000);
	CHECK_EQ(lm__seal_new(&sa, cipher, key_a, key_b, epoch), 0);
	CHECK_EQ(lm__seal_new(&sb, cipher, key_b, key_a, epoch), 0);
	lm__seal_adopt(a, sa);
	lm__seal_adopt(b, sb);
}

typedef struct writer {
	lm__conn *c;
	const uint8_t *data;
	size_t len;
	int rc;
} writer;

/* Writes data in random pieces, each a writev of up to 5 iovecs (a small
 * first one now and then, as a frame header). */
static void *write_all(void *arg)
{
	writer *w = arg;
	size_t at = 0;

	w->rc = 0;
	while (at < w->len && !w->rc) {
		struct iovec v[5];
		int n = 0;
		size_t piece = 1 + rnd() % 300000;
		if (piece > w->len - at)
			piece = w->len - at;
		for (size_t put = 0; put < piece && n < 5; n++) {
			size_t k = n == 0 && rnd() % 2 ? 1 + rnd() % 64 : 1 + rnd() % (piece - put);
			if (k > piece - put || n == 4)
				k = piece - put;
			v[n] = (struct iovec){(void *)(w->data + at + put), k};
			put += k;
		}
		piece = 0;
		for (int i = 0; i < n; i++)
			piece += v[i].iov_len;
		w->rc = lm__writev_full(w->c, v, n);
		at += piece;
	}
	return NULL;
}

/* Reads len bytes in random pieces (small ones, as frame headers, and
 * large ones, as payloads, into two iovecs). */
static int read_all(lm__conn *c, uint8_t *out, size_t len)
{
	size_t at = 0;

	while (at < len) {
		size_t k = rnd() % 3 == 0 ? 1 + rnd() % 40 : 1 + rnd() % 200000, h;
		if (k > len - at)
			k = len - at;
		h = k / 2;
		struct iovec v[2] = {{out + at, h}, {out + at + h, k - h}};
		int rc = lm__readv_full(c, v, 2);
		if (rc)
			return rc;
		at += k;
	}
	return 0;
}

static void round_trip(const char *cipher, uint64_t epoch, int small, size_t len)
{
	uint8_t *data = malloc(len), *got = malloc(len);
	lm__conn a, b;
	writer w;
	pthread_t t;

	for (size_t i = 0; i < len; i++)
		data[i] = (uint8_t)rnd();
	memset(got, 0, len);
	pair(&a, &b, cipher, epoch, small);
	w = (writer){&a, data, len, 0};
	pthread_create(&t, NULL, write_all, &w);
	CHECK_EQ(read_all(&b, got, len), 0);
	pthread_join(t, NULL);
	CHECK_EQ(w.rc, 0);
	CHECK(memcmp(data, got, len) == 0);
	/* The close record ends the stream: a read sees the end. */
	a.ops->shutdown(&a);
	CHECK_EQ(lm__read_full(&b, got, 1), LM_EEOF);
	/* The other direction works the same way. */
	w = (writer){&b, data, len / 3, 0};
	pthread_create(&t, NULL, write_all, &w);
	CHECK_EQ(read_all(&a, got, len / 3), 0);
	pthread_join(t, NULL);
	CHECK(memcmp(data, got, len / 3) == 0);
	lm__conn_close(&a);
	lm__conn_close(&b);
	free(data);
	free(got);
}

/* ---- the wire: records as bytes, changed on the way ----------------------- */

typedef struct wire {
	uint8_t *buf;
	size_t len;
	size_t rec[64]; /* where each record starts */
	int nrec;
} wire;

/* Seals msgs (one writev each, as given) on one end and collects the bytes
 * from the other end's socket, split into records. */
static void capture(wire *out, const char *cipher, uint64_t epoch, const struct iovec *msgs, int n,
		    int with_close)
{
	lm__conn a, b;
	size_t cap = 1 << 22;

	pair(&a, &b, cipher, epoch, 0);
	out->buf = malloc(cap);
	out->len = 0;
	for (int i = 0; i < n; i++)
		CHECK_EQ(lm__writev_full(&a, (struct iovec *)&msgs[i], 1), 0);
	if (with_close)
		a.ops->shutdown(&a);
	for (;;) {
		ssize_t r = read(b.rfd, out->buf + out->len, cap - out->len);
		if (r <= 0)
			break;
		out->len += (size_t)r;
	}
	out->nrec = 0;
	for (size_t at = 0; at + LM_SEAL_HDR <= out->len && out->nrec < 64;) {
		out->rec[out->nrec++] = at;
		at += LM_SEAL_HDR + ((size_t)out->buf[at + 3] << 8 | out->buf[at + 4]);
	}
	lm__conn_close(&a);
	lm__conn_close(&b);
}

/* Feeds bytes to a fresh receiving end: the result of reading want bytes,
 * and how many of them arrived. */
static int feed(const uint8_t *bytes, size_t len, const uint8_t *rx_key, size_t want, uint8_t *out,
		const char **why)
{
	int sv[2], rc;
	lm__conn c;
	lm__seal *s;

	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	CHECK(write(sv[0], bytes, len) == (ssize_t)len);
	close(sv[0]);
	fcntl(sv[1], F_SETFL, fcntl(sv[1], F_GETFL) | O_NONBLOCK);
	lm__conn_init(&c, sv[1], 2000);
	CHECK_EQ(lm__seal_new(&s, "AES-128-GCM", key_b, rx_key, 0), 0);
	lm__seal_adopt(&c, s);
	rc = lm__read_full(&c, out, want);
	if (rc == LM_ETLS) { /* a failed stream stays failed */
		uint8_t b;
		CHECK_EQ(lm__read_full(&c, &b, 1), LM_ETLS);
	}
	*why = lm__seal_failure(&c);
	static char keep[160];
	snprintf(keep, sizeof(keep), "%s", *why ? *why : "");
	*why = keep;
	lm__conn_close(&c);
	return rc;
}

static void tampering(void)
{
	static uint8_t m0[100], m1[70000], m2[5000], out[200000];
	const struct iovec msgs[3] = {{m0, sizeof(m0)}, {m1, sizeof(m1)}, {m2, sizeof(m2)}};
	const size_t total = sizeof(m0) + sizeof(m1) + sizeof(m2);
	const char *why;
	wire w;

	for (size_t i = 0; i < sizeof(m1); i++)
		m1[i] = (uint8_t)rnd();
	memset(m0, 'h', sizeof(m0));
	memset(m2, 't', sizeof(m2));
	capture(&w, "AES-128-GCM", 0, msgs, 3, 1);
	/* m0 one record, m1 two (65280 + the rest), m2 one, the close one. */
	CHECK_EQ(w.nrec, 5);
	CHECK_EQ(w.len, total + 5 * LM_SEAL_OVERHEAD);
	CHECK_EQ(feed(w.buf, w.len, key_a, total, out, &why), 0);
	CHECK(memcmp(out, m0, sizeof(m0)) == 0 && memcmp(out + 100, m1, sizeof(m1)) == 0);
	CHECK(why[0] == 0);

	/* Any byte changed, anywhere in any record: refused. */
	for (int r = 0; r < w.nrec; r++) {
		size_t start = w.rec[r], end = r + 1 < w.nrec ? w.rec[r + 1] : w.len;
		size_t pos[] = {start,     start + 1,         start + 3, start + 4,
				start + 5, (start + end) / 2, end - 1};
		for (size_t p = 0; p < sizeof(pos) / sizeof(pos[0]); p++) {
			w.buf[pos[p]] ^= 0x20;
			int rc = feed(w.buf, w.len, key_a, total + 1, out, &why);
			w.buf[pos[p]] ^= 0x20;
			CHECK_EQ(rc, LM_ETLS);
			CHECK(strstr(why, "sealed record") != NULL);
		}
	}
	/* The whole record read into one buffer: nothing of a forged record is
	 * reported as read (the read fails, the count never covers it). */
	w.buf[w.rec[1] + 200] ^= 1;
	memset(out, 0xaa, sizeof(out));
	CHECK_EQ(feed(w.buf, w.len, key_a, 100 + 65280, out, &why), LM_ETLS);
	CHECK(strstr(why, "authentication failed") != NULL);
	/* It was opened into the buffer, then wiped there again. */
	size_t nonzero = 0;
	for (size_t i = 100; i < 100 + 65280; i++)
		nonzero += out[i] != 0;
	CHECK_EQ(nonzero, 0);
	w.buf[w.rec[1] + 200] ^= 1;

	/* Another key (another channel's, another session's): refused at once. */
	CHECK_EQ(feed(w.buf, w.len, key_b, 10, out, &why), LM_ETLS);
	CHECK(strstr(why, "authentication failed") != NULL);

	/* A record dropped, repeated or moved: the sequence numbers differ. */
	uint8_t *x = malloc(w.len * 2);
	size_t l0 = w.rec[1], l1 = w.rec[2] - w.rec[1];
	memcpy(x, w.buf + w.rec[1], w.len - w.rec[1]); /* the first dropped */
	CHECK_EQ(feed(x, w.len - w.rec[1], key_a, 10, out, &why), LM_ETLS);
	memcpy(x, w.buf, l0); /* the first twice */
	memcpy(x + l0, w.buf, w.len);
	CHECK_EQ(feed(x, l0 + w.len, key_a, 200, out, &why), LM_ETLS);
	memcpy(x, w.buf, l0); /* the second and third swapped */
	memcpy(x + l0, w.buf + w.rec[2], w.rec[3] - w.rec[2]);
	memcpy(x + l0 + (w.rec[3] - w.rec[2]), w.buf + w.rec[1], l1);
	memcpy(x + w.rec[3], w.buf + w.rec[3], w.len - w.rec[3]);
	CHECK_EQ(feed(x, w.len, key_a, total, out, &why), LM_ETLS);
	CHECK(strstr(why, "authentication failed") != NULL);
	free(x);

	/* Cut: inside a record is a failure, between records the end. */
	CHECK_EQ(feed(w.buf, w.rec[2] - 7, key_a, total, out, &why), LM_ETLS);
	CHECK(strstr(why, "closed inside a record") != NULL);
	CHECK_EQ(feed(w.buf, w.rec[2], key_a, total, out, &why), LM_EEOF);
	CHECK(why[0] == 0);
	/* After the close record nothing more is read, whatever follows. */
	CHECK_EQ(feed(w.buf, w.len, key_a, total + 1, out, &why), LM_EEOF);
	/* A header that no sealed record has. */
	uint8_t junk[64] = "GET / HTTP/1.0\r\n\r\n";
	CHECK_EQ(feed(junk, sizeof(junk), key_a, 4, out, &why), LM_ETLS);
	CHECK(strstr(why, "bad header") != NULL);
	uint8_t shortlen[LM_SEAL_HDR + 8] = {23, 'l', 'm', 0, 8};
	CHECK_EQ(feed(shortlen, sizeof(shortlen), key_a, 4, out, &why), LM_ETLS);
	CHECK(strstr(why, "bad length") != NULL);
	/* A data record without data (only its tag): refused before its tag. */
	uint8_t empty[LM_SEAL_HDR + LM_SEAL_TAG] = {23, 'l', 'm', 0, LM_SEAL_TAG};
	CHECK_EQ(feed(empty, sizeof(empty), key_a, 4, out, &why), LM_ETLS);
	CHECK(strstr(why, "bad length") != NULL);
	/* A close record longer than its tag. */
	uint8_t longclose[LM_SEAL_HDR + 20] = {21, 'l', 'm', 0, 20};
	CHECK_EQ(feed(longclose, sizeof(longclose), key_a, 4, out, &why), LM_ETLS);
	CHECK(strstr(why, "bad length") != NULL);
	free(w.buf);
}

/* Keys change every epoch: records of a later epoch do not open with the
 * first epoch's key (a receiver that missed the change fails). */
static void epochs(void)
{
	static uint8_t m[4096], out[8 * 4096];
	struct iovec msgs[8];
	const char *why;
	wire a, b;

	for (int i = 0; i < 8; i++)
		msgs[i] = (struct iovec){m, sizeof(m)};
	capture(&a, "AES-128-GCM", 3, msgs, 8, 0);
	capture(&b, "AES-128-GCM", 0, msgs, 8, 0);
	CHECK_EQ(a.nrec, 8);
	/* Epoch 0 (records 0..2) is the same key either way; record 3 is not. */
	CHECK(memcmp(a.buf, b.buf, a.rec[3]) == 0);
	CHECK(memcmp(a.buf + a.rec[3], b.buf + b.rec[3], 64) != 0);
	CHECK_EQ(feed(a.buf, a.len, key_a, sizeof(out), out, &why), LM_ETLS); /* epoch 2^20 */
	CHECK(memcmp(out, m, 4096) == 0);
	free(a.buf);
	free(b.buf);
}

/* A write that found the socket full is retried with the same iovecs and
 * reports the batch once; a different write after it first finishes the
 * old batch, so the records stay whole. */
static void retries(void)
{
	static uint8_t big[300000], small[50], out[sizeof(big) + sizeof(small)];
	struct iovec v = {big, sizeof(big)}, s = {small, sizeof(small)};
	lm__conn a, b;
	short want = 0;
	ssize_t r;

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)rnd();
	memset(small, 's', sizeof(small));
	pair(&a, &b, "AES-128-GCM", 0, 1);
	r = a.ops->writev(&a, &v, 1, &want);
	CHECK_EQ(r, -EAGAIN);
	CHECK_EQ(want, POLLOUT);
	/* Not the same call: ERROR after a failed write, say. */
	pthread_t t;
	writer w = {&a, small, sizeof(small), 0};
	pthread_create(&t, NULL, write_all, &w);
	uint8_t *p = out;
	size_t left = 4 * LM_SEAL_RECORD; /* the batch the first call sealed */
	CHECK_EQ(read_all(&b, p, left), 0);
	CHECK(memcmp(p, big, left) == 0);
	CHECK_EQ(read_all(&b, p, sizeof(small)), 0);
	CHECK(memcmp(p, small, sizeof(small)) == 0);
	pthread_join(t, NULL);
	CHECK_EQ(w.rc, 0);
	(void)s;
	lm__conn_close(&a);
	lm__conn_close(&b);
}

/* readable() and pending(): a whole record is input, a partial one not. */
static void readiness(void)
{
	static uint8_t m[1000], out[1000];
	const struct iovec msg = {m, sizeof(m)};
	int sv[2];
	lm__conn c;
	lm__seal *s;
	wire w;

	capture(&w, "AES-128-GCM", 0, &msg, 1, 0);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	fcntl(sv[1], F_SETFL, fcntl(sv[1], F_GETFL) | O_NONBLOCK);
	lm__conn_init(&c, sv[1], 2000);
	CHECK_EQ(lm__seal_new(&s, "AES-128-GCM", key_b, key_a, 0), 0);
	lm__seal_adopt(&c, s);
	CHECK_EQ(lm__conn_readable(&c), 0);
	CHECK(write(sv[0], w.buf, 100) == 100);
	CHECK_EQ(lm__conn_readable(&c), 0); /* a partial record */
	CHECK(write(sv[0], w.buf + 100, w.len - 100) == (ssize_t)(w.len - 100));
	CHECK_EQ(lm__conn_readable(&c), 1);
	CHECK_EQ(c.ops->pending(&c), sizeof(m));
	CHECK_EQ(lm__read_full(&c, out, 10), 0);
	CHECK_EQ(c.ops->pending(&c), sizeof(m) - 10);
	CHECK_EQ(lm__read_full(&c, out + 10, sizeof(m) - 10), 0);
	CHECK(memcmp(out, m, sizeof(m)) == 0);
	CHECK_EQ(c.ops->pending(&c), 0);
	CHECK_EQ(lm__conn_readable(&c), 0);
	close(sv[0]);
	CHECK_EQ(lm__conn_readable(&c), 1); /* the end */
	CHECK_EQ(lm__read_full(&c, out, 1), LM_EEOF);
	lm__conn_close(&c);
	free(w.buf);
}

static size_t heap_bytes(void)
{
	struct mallinfo2 m = mallinfo2();

	return m.uordblks + m.hblkhd; /* small chunks and mmapped ones */
}

/* The send buffer is sized by the writes: a side that sends only small
 * frames (a receiver's acks and feedback) keeps 4 KiB of it, not the 256
 * KiB a batch of full records takes. */
static void send_buffer_size(void)
{
	static uint8_t big[200000], out[sizeof(big)];
	uint8_t small[100], got[sizeof(small)];
	size_t h0 = heap_bytes(), h1, h2;
	lm__conn a, b;
	pthread_t t;
	writer w;

	if (LM_TEST_SLOW) { /* their allocators keep no glibc statistics */
		printf("send_buffer_size: skipped: mallinfo2 counts glibc's heap, not a "
		       "sanitizer's\n");
		return;
	}
	memset(small, 's', sizeof(small));
	pair(&a, &b, "AES-128-GCM", 0, 0);
	h1 = heap_bytes();
	/* two receive buffers of 4 records (2 x 262 160 bytes), the contexts */
	CHECK(h1 - h0 < 2 * 300 * 1024);
	CHECK_EQ(lm__write_full(&a, small, sizeof(small)), 0);
	CHECK_EQ(read_all(&b, got, sizeof(got)), 0);
	CHECK(memcmp(got, small, sizeof(small)) == 0);
	CHECK(heap_bytes() - h1 < 8 * 1024);
	w = (writer){&a, big, sizeof(big), 0};
	pthread_create(&t, NULL, write_all, &w);
	CHECK_EQ(read_all(&b, out, sizeof(out)), 0);
	pthread_join(t, NULL);
	CHECK_EQ(w.rc, 0);
	h2 = heap_bytes();
	CHECK(h2 - h1 >= 4 * 65280); /* grown to a batch of full records */
	lm__conn_close(&a);
	lm__conn_close(&b);
}

int main(void)
{
	const char *ciphers[] = {"AES-128-GCM", "AES-256-GCM", "ChaCha20-Poly1305"};
	lm__seal *s;

	for (int i = 0; i < 3; i++) {
		round_trip(ciphers[i], 0, 0, 3u << 20);
		round_trip(ciphers[i], 5, 1, 1u << 20); /* keys change, sockets full */
	}
	for (int i = 0; i < 20; i++) /* small streams: odd sizes, few records */
		round_trip("AES-128-GCM", 2, i % 2, 1 + rnd() % 200000);
	tampering();
	epochs();
	retries();
	readiness();
	send_buffer_size();
	CHECK_EQ(lm__seal_new(&s, "AES-128-CBC", key_a, key_b, 0), LM_ETLS); /* not an AEAD */
	CHECK(s == NULL);
	TEST_DONE("test_seal");
}
