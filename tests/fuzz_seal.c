/*
 * libFuzzer target: the sealed records' reader (src/transport/seal.c), the
 * first thing that parses a TLS channel's bytes in the data phase.
 *
 * Input layout:
 *   byte 0   bit 0: 0 = the rest is the stream itself (headers, lengths,
 *            garbage: what an on-path attacker can send); 1 = the rest is
 *            plaintext, sealed here with the right key, then changed
 *   byte 1   seed of the write and read sizes (1 byte .. 300 KB, small
 *            first iovecs now and then, as frame headers)
 *   byte 2-5 (mode 1) be32: the position of one byte to flip, mod the
 *            sealed stream's length; byte 6 the mask (0: unchanged)
 *   rest     the stream (mode 0) or the plaintext (mode 1)
 *
 * Checked (violations __builtin_trap()):
 *  mode 0: reading never crashes, hangs or returns more than was asked; a
 *  failure is LM_ETLS with a reason, or the end of the stream;
 *  mode 1: unchanged, the plaintext comes back byte for byte and then the
 *  end; with one byte changed, reading the plaintext fails with LM_ETLS
 *  before all of it was delivered (nothing forged is ever accepted).
 * The stream is read from a memfd (the conn's read path is read(2)).
 *
 * Seeds: tests/seeds/fuzz_seal/ (a few of each mode, made by hand).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "channel.h"

#define TRAP(cond)                        \
	do {                              \
		if (!(cond))              \
			__builtin_trap(); \
	} while (0)

static const uint8_t key_a[LM_SEAL_SECRET] = "sender secret, 32 bytes long...";
static const uint8_t key_b[LM_SEAL_SECRET] = "receiver secret, 32 bytes long.";

static uint32_t rng;
static uint32_t rnd(void)
{
	rng = rng * 1103515245u + 12345u;
	return rng >> 8;
}

static int stream_fd(const uint8_t *p, size_t n)
{
	int fd = memfd_create("fuzz_seal", MFD_CLOEXEC);

	TRAP(fd >= 0 && (n == 0 || write(fd, p, n) == (ssize_t)n) && lseek(fd, 0, SEEK_SET) == 0);
	return fd;
}

static void conn_on(lm__conn *c, int rfd, int wfd, const uint8_t *tx, const uint8_t *rx)
{
	lm__seal *s;

	lm__conn_init(c, rfd, 1000);
	c->wfd = wfd;
	TRAP(lm__seal_new(&s, "AES-128-GCM", tx, rx, 3) == 0); /* keys change often */
	lm__seal_adopt(c, s);
}

/* Reads n bytes in random pieces: 0, or the first failure. */
static int read_pieces(lm__conn *c, uint8_t *out, size_t n, size_t *got)
{
	*got = 0;
	while (*got < n) {
		size_t k = rnd() % 3 == 0 ? 1 + rnd() % 40 : 1 + rnd() % 300000;
		if (k > n - *got)
			k = n - *got;
		int rc = lm__read_full(c, out + *got, k);
		if (rc)
			return rc;
		*got += k;
	}
	return 0;
}

static void raw_stream(const uint8_t *p, size_t n)
{
	int fd = stream_fd(p, n);
	size_t want = 4 * n + 1, got;
	uint8_t *out = malloc(want);
	lm__conn c;
	int rc;

	conn_on(&c, fd, -1, key_b, key_a);
	rc = read_pieces(&c, out, want, &got);
	TRAP(rc == LM_ETLS || rc == LM_EEOF);
	TRAP(rc != LM_ETLS || lm__seal_failure(&c) != NULL);
	lm__conn_close(&c);
	free(out);
}

static void sealed(const uint8_t *p, size_t n, uint32_t flip, uint8_t mask)
{
	int wfd = memfd_create("fuzz_seal_w", MFD_CLOEXEC), rfd;
	uint8_t *out = malloc(n + 1), *wire;
	size_t at = 0, got;
	off_t len;
	lm__conn w, r;
	int rc;

	TRAP(wfd >= 0);
	conn_on(&w, -1, wfd, key_a, key_b);
	while (at < n) {
		struct iovec v[3];
		int k = 0;
		size_t piece = 1 + rnd() % 300000;
		if (piece > n - at)
			piece = n - at;
		if (piece > 1 && rnd() % 2)
			v[k++] = (struct iovec){(void *)(p + at), 1 + rnd() % (piece - 1)};
		v[k] = (struct iovec){(void *)(p + at + (k ? v[0].iov_len : 0)),
				      piece - (k ? v[0].iov_len : 0)};
		k++;
		TRAP(lm__writev_full(&w, v, k) == 0);
		at += piece;
	}
	len = lseek(wfd, 0, SEEK_END);
	wire = malloc((size_t)len + 1);
	TRAP(pread(wfd, wire, (size_t)len, 0) == len);
	if (mask && len)
		wire[flip % (uint32_t)len] ^= mask;
	rfd = stream_fd(wire, (size_t)len);
	conn_on(&r, rfd, -1, key_b, key_a);
	rc = read_pieces(&r, out, n, &got);
	if (!mask || !len) {
		TRAP(rc == 0 && memcmp(out, p, n) == 0);
		TRAP(lm__read_full(&r, out, 1) == LM_EEOF);
	} else {
		TRAP(rc == LM_ETLS && lm__seal_failure(&r) != NULL);
	}
	lm__conn_close(&r);
	lm__conn_close(&w);
	free(wire);
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 7)
		return 0;
	rng = data[1];
	if (!(data[0] & 1))
		raw_stream(data + 2, size - 2);
	else
		sealed(data + 7, size - 7,
		       (uint32_t)data[2] << 24 | (uint32_t)data[3] << 16 | (uint32_t)data[4] << 8 |
			       data[5],
		       data[6]);
	return 0;
}
