/*
 * A channel's last word (src/channel.c): lm__send_error tells the peer why
 * in an ERROR frame it can read. A write cancelled partway through a frame
 * first finishes that frame (for a moment), so the ERROR can follow it.
 * A write cut off for good (timed out, or a cancel the peer did not let
 * finish) leaves the peer mid-frame, where any byte more would be read as
 * the rest of that frame: then nothing more is written and the conn is not
 * half-closed either, so the peer hears the reason on another channel
 * instead of a cut frame on this one. Plain sockets and sealed records
 * (TLS's data phase), whose held batch counts as cut.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "channel.h"
#include "check.h"

static const uint8_t key_a[LM_SEAL_SECRET] = "sender secret, 32 bytes long...";
static const uint8_t key_b[LM_SEAL_SECRET] = "receiver secret, 32 bytes long.";

/* Non-blocking socketpair with small buffers, so a big write fills it. */
static void pair(lm__conn *a, lm__conn *b, int sealed)
{
	int sv[2], sz = 4096;

	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	for (int i = 0; i < 2; i++) {
		setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
		setsockopt(sv[i], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
		fcntl(sv[i], F_SETFL, fcntl(sv[i], F_GETFL) | O_NONBLOCK);
	}
	lm__conn_init(a, sv[0], 2000);
	lm__conn_init(b, sv[1], 2000);
	if (sealed) {
		lm__seal *sa, *sb;
		CHECK_EQ(lm__seal_new(&sa, "AES-128-GCM", key_a, key_b, 0), 0);
		CHECK_EQ(lm__seal_new(&sb, "AES-128-GCM", key_b, key_a, 0), 0);
		lm__seal_adopt(a, sa);
		lm__seal_adopt(b, sb);
	}
}

/* The peer reads what is there without waiting: every byte it gets, and
 * whether it saw the end (a half-close) after them. */
static size_t drain(lm__conn *b, int *ended)
{
	static uint8_t sink[1 << 16];
	size_t got = 0;

	*ended = 0;
	b->timeout_ms = 300; /* what was sent is there by now */
	for (;;) {
		int rc = lm__read_full(b, sink, 1);
		if (rc == LM_EEOF)
			*ended = 1;
		if (rc)
			return got;
		got++;
	}
}

/* A conn whose write stopped before sending anything still speaks: the
 * peer reads a whole ERROR frame, then the end. */
static void error_heard(int sealed)
{
	lm__conn a, b;
	lm__frame f;
	lm__error_msg m;
	lm__err e = {0};
	int ended;

	pair(&a, &b, sealed);
	lm__send_error(&a, LM_ECANCELED, 3, "cancelled by the user", 0);
	CHECK_EQ(a.frame_broken, 0);
	CHECK_EQ(lm__read_frame(&b, &f, 4096, 64, &e), 0);
	CHECK_EQ(f.kind, LM_KIND_ERROR);
	CHECK_EQ(lm__read_error_body(&b, &f, &m, &e), 0);
	CHECK_EQ(m.code, LM_ECANCELED);
	CHECK_EQ(m.channel, 3);
	CHECK(strcmp(m.msg, "cancelled by the user") == 0);
	CHECK_EQ(drain(&b, &ended), 0);
	CHECK_EQ(ended, 1);
	lm__conn_close(&a);
	lm__conn_close(&b);
}

typedef struct reader {
	lm__conn *c;
	size_t len; /* the frame's bytes, then an ERROR */
	int data_ok, error_ok, input_rc;
} reader;

static void *read_frame_then_error(void *arg)
{
	static uint8_t got[1 << 20];
	reader *r = arg;
	lm__frame f;
	lm__error_msg m;
	lm__err e = {0};

	/* Input while the cancelled write finishes (the receiver's FEEDBACK):
	 * the write must not stop for it. (No CHECK on this thread: the
	 * counters are the main thread's; the caller checks after the join.) */
	r->input_rc = lm__write_full(r->c, "f", 1);
	usleep(20000); /* the writer finds the socket full and waits */
	r->data_ok = lm__read_full(r->c, got, r->len) == 0;
	for (size_t i = 0; r->data_ok && i < r->len; i++)
		r->data_ok = got[i] == 'p';
	r->error_ok = lm__read_frame(r->c, &f, 4096, 64, &e) == 0 && f.kind == LM_KIND_ERROR &&
		      lm__read_error_body(r->c, &f, &m, &e) == 0 && m.code == LM_ECANCELED;
	return NULL;
}

/* The sender's input hook once cancelled: any input ends the write. */
static int refuse_input(lm__conn *c, void *arg)
{
	(void)c;
	(void)arg;
	return 1;
}

/* Cancelled while the peer reads on (and sends something meanwhile, as a
 * receiver's FEEDBACK): the frame goes out whole, the call still says
 * cancelled, and the ERROR after it is read as one. */
static void cancel_finishes(int sealed)
{
	static uint8_t big[128 << 10];
	lm__conn a, b;
	int wake[2];
	pthread_t t;
	reader r = {&b, sizeof(big), 0, 0, -1};

	memset(big, 'p', sizeof(big));
	pair(&a, &b, sealed);
	CHECK(pipe(wake) == 0);
	CHECK(write(wake[1], "x", 1) == 1);
	a.wake_fd = wake[0];
	a.watch_in = 1;
	a.on_input = refuse_input;
	CHECK(pthread_create(&t, NULL, read_frame_then_error, &r) == 0);
	CHECK_EQ(lm__write_full(&a, big, sizeof(big)), -ECANCELED);
	CHECK_EQ(a.bytes_out, sizeof(big));
	CHECK_EQ(a.frame_broken, 0);
	lm__send_error(&a, LM_ECANCELED, 0, "cancelled by the user", 0);
	pthread_join(t, NULL);
	CHECK_EQ(r.input_rc, 0);
	CHECK(r.data_ok);
	CHECK(r.error_ok);
	close(wake[0]);
	close(wake[1]);
	lm__conn_close(&a);
	lm__conn_close(&b);
}

/* A write cancelled (wake fd) with a peer that does not read, or timed
 * out, partway: the conn is marked,
 * lm__send_error adds no byte and no end, and later writes fail at once. */
static void cut_frame(int sealed, int cancel)
{
	static uint8_t big[1 << 20];
	lm__conn a, b;
	int wake[2], ended;
	size_t seen;

	memset(big, 'p', sizeof(big));
	pair(&a, &b, sealed);
	CHECK(pipe(wake) == 0);
	if (cancel) {
		CHECK(write(wake[1], "x", 1) == 1); /* the user cancelled */
		a.wake_fd = wake[0];
	} else {
		a.timeout_ms = 100;
	}
	CHECK_EQ(lm__write_full(&a, big, sizeof(big)), cancel ? -ECANCELED : LM_ETIMEDOUT);
	/* Sealed: the batch sealed from the write is held, partly sent, and
	 * counted only once all of it went out. */
	CHECK(sealed ? a.bytes_out < sizeof(big) : a.bytes_out > 0 && a.bytes_out < sizeof(big));
	CHECK_EQ(a.frame_broken, 1);
	/* The peer reads on (as a receiver does), so the socket has room for
	 * the ERROR frame: none may come. */
	seen = drain(&b, &ended);
	if (sealed)
		CHECK(seen < sizeof(big)); /* whole records of the batch */
	else
		CHECK_EQ(seen, a.bytes_out);
	CHECK_EQ(ended, 0);
	lm__send_error(&a, LM_ECANCELED, 0, "cancelled by the user", 0);
	CHECK_EQ(drain(&b, &ended), 0);
	CHECK_EQ(ended, 0);
	CHECK_EQ(lm__write_full(&a, "more", 4), -EPIPE);
	close(wake[0]);
	close(wake[1]);
	lm__conn_close(&a);
	lm__conn_close(&b);
}

/* A peer that reads nothing holds an ERROR only until the deadline given
 * (an abort shares one across its channels), not a second per channel. */
static void error_deadline(void)
{
	static uint8_t fill[1 << 16];
	lm__conn a, b;
	uint64_t t0;

	pair(&a, &b, 0);
	while (write(a.wfd, fill, sizeof(fill)) > 0) /* the socket full, frames whole */
		;
	t0 = lm__now_us();
	lm__send_error(&a, LM_ECANCELED, 0, "cancelled by the user", t0 + 100000u);
	CHECK(lm__now_us() - t0 < 600000u); /* 100 ms, well under the second */
	CHECK_EQ(a.frame_broken, 0);        /* nothing of it went out */
	lm__conn_close(&a);
	lm__conn_close(&b);
}

int main(void)
{
	for (int sealed = 0; sealed < 2; sealed++) {
		error_heard(sealed);
		cancel_finishes(sealed);
		cut_frame(sealed, 1);
		cut_frame(sealed, 0);
	}
	error_deadline();
	TEST_DONE("test_channel");
}
