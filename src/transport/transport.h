/*
 * Transports: how a channel's connection is made and how its bytes move.
 *
 * Two tables, so that sender, receiver and channel code never touch a
 * socket directly and never ask which transport they hold:
 *  - an endpoint (tcp.c, unix.c, fd.c) makes connections: it parses its
 *    part of an address, connects, listens, accepts and names the peer;
 *  - a stream (sock.c for a plain socket, tls.c for TLS 1.3 over any
 *    socket) moves bytes on an established connection: one non-blocking
 *    attempt per call, with what to wait for when it cannot progress, so
 *    that channel.c keeps the one poll loop with its timeouts and wake fd.
 */
#ifndef LM_TRANSPORT_H
#define LM_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "livemig.h"

struct lm__conn;
struct lm__tls;

typedef struct lm__stream_ops {
	const char *name; /* "plain" or "tls" */
	/* One attempt: > 0 bytes moved; 0 = the peer closed (read); -EAGAIN
	 * with *want = POLLIN or POLLOUT: wait for that on the fd and retry
	 * with the same (advanced) iovecs; else a negative code. */
	ssize_t (*readv)(struct lm__conn *c, const struct iovec *iov, int n, short *want);
	ssize_t (*writev)(struct lm__conn *c, const struct iovec *iov, int n, short *want);
	/* After a write call failed: 1 when the stream still owes the wire
	 * bytes of it (a record sealed or encrypted, maybe partly sent) that
	 * the next write sends first, so the bytes after it would land
	 * mid-write; 0 when nothing of the call is held. */
	int (*write_held)(const struct lm__conn *c);
	/* Bytes readable without waiting for the fd (decrypted, buffered). */
	size_t (*pending)(const struct lm__conn *c);
	/* No wait: 1 when the peer sent bytes nobody read yet (or closed, or
	 * the stream failed: a read reports which), 0 when nothing is there.
	 * TLS records without data (session tickets, key updates) are
	 * processed here and are not input. */
	int (*readable)(struct lm__conn *c);
	/* Best effort, non-blocking: no more writes (TLS: close_notify). */
	void (*shutdown)(struct lm__conn *c);
	void (*close)(struct lm__conn *c); /* frees what the stream holds */
} lm__stream_ops;

extern const lm__stream_ops lm__plain_ops;

/* An address: "HOST:PORT", "tcp:HOST:PORT", "unix:PATH", "fd:N[,N...]". */
#define LM_ADDR_MAX_FDS LM_MAX_CHANNELS
typedef struct lm__endpoint_ops lm__endpoint_ops;
typedef struct lm__addr {
	const lm__endpoint_ops *ops;
	char text[512];  /* the part after the prefix: "host:port", a path */
	char host[256];  /* tcp: the host part (the default TLS peer name) */
	int fds[LM_ADDR_MAX_FDS]; /* fd: the descriptors, in channel order */
	uint32_t nfds;
	/* connect: when has_wake, a connect in progress gives up with
	 * -ECANCELED once wake_fd is readable (the sender's cancel). */
	int wake_fd, has_wake;
} lm__addr;

struct lm__endpoint_ops {
	const char *name; /* "tcp", "unix", "fd" */
	/* Connects channel idx (fd: hands out fds[idx]); *out_fd is
	 * non-blocking and close-on-exec. */
	int (*connect)(const lm__addr *a, uint32_t idx, int timeout_ms, int sndbuf, int *out_fd);
	/* A non-blocking listening socket; *port for tcp, else 0. */
	int (*listen)(const lm__addr *a, int rcvbuf, int *out_fd, int *port);
	/* Accepts one connection from a listening fd: -EAGAIN when none. */
	int (*accept)(int listen_fd, int rcvbuf, int *out_fd);
	/* The peer, for logs ("10.0.0.1:5555", "unix:uid=0,pid=42") and the
	 * key the per-host handshake limit counts by ("10.0.0.1"). */
	void (*peer)(int fd, char *name, size_t ncap, char *host, size_t hcap);
};

extern const lm__endpoint_ops lm__tcp_endpoint, lm__unix_endpoint, lm__fd_endpoint;

/* Parses addr into a; LM_EINVAL with a reason in why (cap bytes). */
int lm__addr_parse(const char *addr, lm__addr *a, char *why, size_t cap);
/* 1 when a is loopback, a UNIX socket or fds (the CLI's plaintext check). */
int lm__addr_is_local(const lm__addr *a);

/* tcp.c, used by unix.c and fd.c too. */
int lm__set_nonblock(int fd);
void lm__tune_socket(int fd, int sndbuf, int rcvbuf);
int lm__split_addr(const char *addr, char *host, size_t hcap, char *port, size_t pcap);
/* Waits for a non-blocking connect to finish. */
int lm__connect_wait(int fd, int timeout_ms, const lm__addr *a);
/* tcpinfo.c: microseconds since a TCP socket connected that it had data to
 * send, of those that it was held by the peer's receive window, and its
 * smallest round trip seen (TCP_INFO); -1 when fd is no TCP socket or the
 * kernel does not count them. */
typedef struct lm__tcp_limit {
	uint64_t busy_us, rwnd_us;
	uint32_t rtt_us;
} lm__tcp_limit;
int lm__tcp_limits(int fd, lm__tcp_limit *l);

/* ---- TLS (tls.c) ---------------------------------------------------------- */

typedef struct lm__tls_ctx lm__tls_ctx;

typedef struct lm__psk_key {
	char id[128];
	uint8_t key[32];
} lm__psk_key;

/* A PSK file's contents: "IDENTITY:HEXKEY" lines ('#' comments, blank
 * lines), or exactly 32 raw bytes (identity "livemig"). 0, or LM_EINVAL
 * with *bad_line the first bad line (0: no key at all). */
int lm__psk_parse(const char *buf, size_t n, lm__psk_key *keys, uint32_t cap, uint32_t *nkeys,
		  size_t *bad_line);
/* Exactly n bytes of hex digits, colons allowed between bytes: 0 or -1. */
int lm__parse_hex(const char *s, size_t len, uint8_t *out, size_t n);

/* Loads certificates or the PSK of cfg for one side. */
int lm__tls_ctx_new(lm__tls_ctx **out, const lm_tls_config *cfg, int server, char *why,
		    size_t cap);
void lm__tls_ctx_free(lm__tls_ctx *t);
/* Sender: the handshake on c (plain, connected) as channel idx; peer_name
 * is checked against the receiver's certificate. Channel 0 keeps the
 * session for channels 1..N to resume. On success c's stream is TLS. */
int lm__tls_client(lm__tls_ctx *t, struct lm__conn *c, uint32_t idx, const char *peer_name,
		   char *why, size_t cap);
/* Receiver: the handshake on an accepted c, then the allow list and pin. */
int lm__tls_server(lm__tls_ctx *t, struct lm__conn *c, char *why, size_t cap);
/* The 16-byte value that binds a session's channels to c's handshake
 * (RFC 8446 exporter, label "EXPORTER-livemig-session"). */
int lm__tls_binding(struct lm__conn *c, uint8_t out[16]);
/* Why a TLS stream failed, as OpenSSL says (the peer's alert: "tlsv1 alert
 * unknown ca"); NULL if not TLS or not known. wait_ms > 0: first wait that
 * long for an alert still in flight (after a failed write). */
const char *lm__tls_failure(struct lm__conn *c, int wait_ms);
/* "TLSv1.3 TLS_AES_128_GCM_SHA256", the peer's identity, resumed or not. */
void lm__tls_describe(const struct lm__conn *c, char *suite, size_t scap, char *peer,
		      size_t pcap, int *resumed);
/* What tells one TLS client from another, into md: the SHA-256 of its
 * certificate, or with a PSK of its identity ("psk:ID": proved by the
 * handshake, or carried in the ticket a channel resumed, which only this
 * receiver's ticket key opens). 0, or -ENOENT where there is none
 * (plaintext; a ticket that carried no identity). */
int lm__tls_peer_digest(const struct lm__conn *c, uint8_t md[32]);
/* After the hello's acknowledgement (LM_FEAT_SEALED): c's frames travel in
 * sealed records from now on, keyed from its TLS exporter (label
 * "EXPORTER-livemig-records"); client: the sender's end. */
int lm__tls_seal(struct lm__conn *c, int client);
/* Frees c's TLS state (the sealed stream's close). */
void lm__tls_release(struct lm__conn *c);

/* ---- sealed records (seal.c) -------------------------------------------- */

#define LM_SEAL_HDR 5      /* type, 'l', 'm', length u16 */
#define LM_SEAL_TAG 16
#define LM_SEAL_OVERHEAD (LM_SEAL_HDR + LM_SEAL_TAG)
#define LM_SEAL_MAX_CT 65535u /* ciphertext and tag, the largest a header can say */
#define LM_SEAL_RECORD 65280u /* plaintext in the largest record this side makes */
#define LM_SEAL_SECRET 32

typedef struct lm__seal lm__seal;
/* cipher: an OpenSSL AEAD name with a 12-byte IV ("AES-128-GCM",
 * "AES-256-GCM", "ChaCha20-Poly1305"); tx, rx: the secrets this end seals
 * and opens with; epoch_records: records per key (0 = the default, 2^20). */
int lm__seal_new(lm__seal **out, const char *cipher, const uint8_t tx[LM_SEAL_SECRET],
		 const uint8_t rx[LM_SEAL_SECRET], uint64_t epoch_records);
void lm__seal_free(lm__seal *s);
/* c's stream becomes sealed records with s (the conn owns s from now on). */
void lm__seal_adopt(struct lm__conn *c, lm__seal *s);
/* Why the sealed stream failed (a forged record), NULL if it did not. */
const char *lm__seal_failure(const struct lm__conn *c);
extern const lm__stream_ops lm__sealed_ops;

#endif
