/*
 * One channel's byte stream: full reads and writes with a stall timeout and
 * an optional deadline, over whatever stream the conn holds (plain socket or
 * TLS, src/transport/). Non-blocking fds driven by poll(), so a stalled peer
 * becomes LM_ETIMEDOUT and a wake fd can interrupt a wait.
 */
#ifndef LM_CHANNEL_H
#define LM_CHANNEL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "transport/transport.h"
#include "wire.h"

typedef struct lm__conn {
	const lm__stream_ops *ops; /* plain (lm__conn_init) or TLS */
	struct lm__tls *tls;       /* the TLS stream's state, NULL in plaintext */
	struct lm__seal *seal;     /* sealed records after the hello (TLS), else NULL */
	int rfd, wfd;    /* the same socket, or a memfd + /dev/null under the fuzzer */
	int wake_fd;     /* readable = give up waiting (-ECANCELED); -1 = none */
	int timeout_ms;  /* longest wait for any progress */
	uint64_t deadline_us; /* lm__now_us() after which waits fail, 0 = none
				 (a handshake's whole time, not per read) */
	int watch_in;    /* writes return LM_EPEER when the peer sends something */
	/* With watch_in: the peer's input while a write waits goes to this
	 * hook first, on the thread driving the conn; 0 = it took the input
	 * and the write goes on, else the write fails with LM_EPEER. NULL:
	 * any input fails the write. */
	int (*on_input)(struct lm__conn *c, void *arg);
	void *input_arg;
	/* Owner: the thread driving the conn; read by others only after join. */
	uint64_t bytes_in, bytes_out;
	/* Owner: the thread driving the conn. Time writes waited for the
	 * socket to take more (the link, or the peer, is full): codec auto
	 * tells a full link from busy CPUs by it. */
	uint64_t wait_out_ns;
	/* Owner: the thread driving the conn. Counts lm__writev_full calls:
	 * a stream that keeps a write's bytes across an -EAGAIN (sealed
	 * records) tells the call's retry from the next call by it. */
	uint64_t write_gen;
	/* Owner: the thread driving the conn (then the one closing it, after
	 * join). A write call failed partway through its bytes: the peer's
	 * next byte would be read as the rest of that frame, so nothing more
	 * is written (lm__send_error stays silent here; another channel tells
	 * the peer). Sticky: a failed write is never resumed. */
	int frame_broken;
} lm__conn;

void lm__conn_init(lm__conn *c, int fd, int timeout_ms);
void lm__conn_close(lm__conn *c);

int lm__read_full(lm__conn *c, void *buf, size_t n);
int lm__readv_full(lm__conn *c, struct iovec *iov, int iovcnt);
int lm__write_full(lm__conn *c, const void *buf, size_t n);
/* Consumes iov (advances bases/lengths as bytes go out). Cancelled (the
 * wake fd) partway through, it first finishes the frame for a moment, then
 * returns -ECANCELED. */
int lm__writev_full(lm__conn *c, struct iovec *iov, int iovcnt);

/* The peer sent something (or closed) that nobody read yet: no wait. TLS
 * records without data (tickets, key updates) do not count. */
int lm__conn_readable(lm__conn *c);

/* Bytes written to the socket that its peer has not taken yet (TCP: not
 * acknowledged; SIOCOUTQ), -1 when the descriptor cannot tell (a pipe, the
 * fuzzer's memfd). What a sender wrote less the growth of this is what
 * crossed the link: socket buffers of several MB take a burst of writes
 * at memory speed. */
int64_t lm__conn_unsent(const lm__conn *c);
/* Microseconds the connection had data to send since it connected, of
 * those that it waited for the peer's receive window, and its smallest
 * round trip (lm__tcp_limits); -1 when not known. */
int lm__conn_limits(const lm__conn *c, lm__tcp_limit *l);

/* Reads and checks a frame header (magic, kind, flags, reserved) and checks
 * the announced body length against lm__max_body(). */
int lm__read_frame(lm__conn *c, lm__frame *f, uint32_t page_size, uint32_t packet_pages,
		   lm__err *e);
/* "reading WHAT: why" for a read that failed with rc, with the stream's
 * own reason where it has one (a sealed record that failed its check, the
 * peer's TLS alert), so the message names the channel's real failure. */
void lm__err_read(lm__err *e, lm__conn *c, const char *what, int rc);
/* Reads the body of an ERROR frame already announced by f. */
int lm__read_error_body(lm__conn *c, const lm__frame *f, lm__error_msg *m, lm__err *e);

/* How long an abort may spend telling its peers why (all channels
 * together: lm__send_error's until_us). */
#define LM__SEND_ERROR_US 1000000u
/* Best effort: sends an ERROR frame and half-closes, giving up at until_us
 * (lm__now_us(); 0 = LM__SEND_ERROR_US from now: a peer that trickles
 * cannot hold an abort, and several channels' share one deadline); nothing
 * on a conn whose last write broke off mid-frame (frame_broken). */
void lm__send_error(lm__conn *c, int code, uint16_t channel, const char *msg, uint64_t until_us);
/* Drains the conns together for at most ms, then closes them, so each peer
 * reads our last frame before it sees the close (no RST eating it). */
void lm__drain_close(lm__conn *const *cs, int n, int ms);
void lm__send_error_and_close(lm__conn *c, int code, uint16_t channel, const char *msg);

/* Waits until c's fd is ready for ev (POLLIN or POLLOUT) within the
 * timeout and deadline: 0, or LM_ETIMEDOUT, -ECANCELED (wake fd), -errno. */
int lm__conn_wait(lm__conn *c, short ev);

uint64_t lm__now_us(void);        /* CLOCK_MONOTONIC */
uint64_t lm__now_ns(void);
uint64_t lm__thread_cpu_ns(void); /* this thread's CPU time */
double lm__thread_cpu(void);      /* the same, in seconds */

#endif
