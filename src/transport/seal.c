/*
 * Sealed records: the data phase's own AEAD records under TLS. Once a
 * channel's hello was acknowledged, both ends key them from that channel's
 * TLS 1.3 exporter (as DTLS-SRTP keys SRTP from a DTLS handshake, and as
 * kernel TLS takes over a finished handshake's keys) and stop using
 * OpenSSL's record layer for it.
 *
 * Why: SSL_write copies each 16 KiB record's plaintext into OpenSSL's
 * buffer and encrypts it there; SSL_read decrypts in its buffer and copies
 * out. Two copies of every page that a plaintext run does not make, and a
 * write per record. Here a record is encrypted straight from the caller's
 * iovecs (the region's pages, the codec's output) into the send buffer,
 * several records leave in one send, and a record is decrypted straight
 * from the receive buffer into the caller's iovecs whenever they take the
 * whole record (the payload of a DATA frame: into the destination pages).
 * No byte of a record counts as read before its tag verified.
 *
 * A record (docs/protocol.md, "Sealed records"):
 *   type (23 data, 21 close), 'l', 'm', length u16 (ciphertext + tag)
 *   ciphertext, 16-byte tag
 * AEAD: the cipher of the negotiated TLS suite; additional data: the five
 * header bytes; nonce: the key's IV XOR the record's number under that key
 * (TLS 1.3's construction). Each direction has its own secret; its key and
 * IV change every epoch_records records (HKDF-Expand of the secret with
 * the epoch number), long before AES-GCM's per-key limits.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/objects.h>

#include "channel.h"

#define SEAL_TYPE_DATA     23
#define SEAL_TYPE_CLOSE    21
#define SEAL_BATCH         (4 * LM_SEAL_RECORD) /* plaintext sealed per write call */
#define SEAL_OBUF          (SEAL_BATCH + 8 * LM_SEAL_OVERHEAD)
#define SEAL_OBUF_SMALL    4096u /* what a side that sends only small frames needs */
#define SEAL_IBUF          (4 * (LM_SEAL_HDR + LM_SEAL_MAX_CT)) /* several records per read */
#define SEAL_DEFAULT_EPOCH (1ull << 20) /* records per key: 64 GiB of full records */

/* One direction. Owner: the conn's owner, like the conn. */
typedef struct seal_dir {
	EVP_CIPHER_CTX *ctx;
	uint8_t secret[LM_SEAL_SECRET];
	uint8_t iv[12];
	uint64_t seq;   /* records under the current key */
	uint64_t epoch; /* keys used before it */
	int enc;
} seal_dir;

/* A conn's sealed stream (conn->seal). Owner: the thread driving the conn. */
struct lm__seal {
	EVP_CIPHER *cipher;
	int klen;
	uint64_t epoch_records;
	seal_dir tx, rx;
	/* Out: a sealed batch not yet all sent, [osent, olen) of obuf. It
	 * covers oplain bytes of the conn's write call ogen (lm__conn's
	 * write_gen): that call's retry gets the count. */
	uint8_t *obuf;
	size_t olen, osent, oplain;
	size_t ocap; /* obuf's size: SEAL_OBUF_SMALL until a write needs more
			(a receiver sends acks and feedback: it stays small) */
	/* In: received bytes [ihead, itail) of ibuf; a record opened in place
	 * whose plaintext [pout, pend) the caller has not taken yet (its
	 * record ends at rec_end). */
	uint8_t *ibuf;
	size_t ihead, itail, pout, pend, rec_end;
	int eof;          /* the peer's close record, or its end of stream */
	int rfail, wfail; /* a direction failed: it stays failed (fail says why) */
	uint64_t ogen;    /* the lm__conn write call the pending batch belongs to */
	char fail[160];
};

static void put16(uint8_t *p, unsigned v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static int failed(lm__seal *s, const char *why)
{
	if (!s->fail[0])
		snprintf(s->fail, sizeof(s->fail), "%s", why);
	return LM_ETLS;
}

/* HKDF-Expand (SHA-256) of secret with label || be64(epoch): n bytes. */
static int expand(const uint8_t *secret, const char *label, uint64_t epoch, uint8_t *out, size_t n)
{
	uint8_t info[64];
	size_t l = strlen(label);
	OSSL_PARAM p[5];
	EVP_KDF_CTX *k = NULL;
	EVP_KDF *kdf;
	int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY, ok;

	memcpy(info, label, l);
	for (int i = 0; i < 8; i++)
		info[l + (size_t)i] = (uint8_t)(epoch >> (56 - 8 * i));
	p[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
	p[1] = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
	p[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret,
						 LM_SEAL_SECRET);
	p[3] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, l + 8);
	p[4] = OSSL_PARAM_construct_end();
	ok = (kdf = EVP_KDF_fetch(NULL, "HKDF", NULL)) && (k = EVP_KDF_CTX_new(kdf)) &&
	     EVP_KDF_derive(k, out, n, p) == 1;
	EVP_KDF_CTX_free(k);
	EVP_KDF_free(kdf);
	return ok ? 0 : LM_ETLS;
}

/* The key and IV of d's current epoch. From epoch 1 on, the secret itself
 * moves on first (and the old one is gone): a later look at this memory
 * opens no earlier epoch's records. */
static int set_key(lm__seal *s, seal_dir *d)
{
	uint8_t km[64 + 12], next[LM_SEAL_SECRET];
	int ok = 0;

	if (d->epoch) {
		if (expand(d->secret, "livemig record next", d->epoch, next, sizeof(next)))
			return LM_ETLS;
		memcpy(d->secret, next, sizeof(next));
		OPENSSL_cleanse(next, sizeof(next));
	}
	if (!expand(d->secret, "livemig record key", d->epoch, km, (size_t)s->klen + 12) &&
	    EVP_CipherInit_ex(d->ctx, s->cipher, NULL, km, NULL, d->enc) == 1) {
		memcpy(d->iv, km + s->klen, 12);
		d->seq = 0;
		ok = 1;
	}
	OPENSSL_cleanse(km, sizeof(km));
	return ok ? 0 : LM_ETLS;
}

/* Starts d's next record: a new key at an epoch's end, the nonce, the AAD. */
static int begin(lm__seal *s, seal_dir *d, const uint8_t *hdr)
{
	uint8_t nonce[12];
	int n;

	if (d->seq == s->epoch_records) {
		d->epoch++;
		if (set_key(s, d))
			return LM_ETLS;
	}
	memcpy(nonce, d->iv, 12);
	for (int i = 0; i < 8; i++)
		nonce[4 + i] ^= (uint8_t)(d->seq >> (56 - 8 * i));
	d->seq++;
	if (EVP_CipherInit_ex(d->ctx, NULL, NULL, NULL, nonce, d->enc) != 1 ||
	    EVP_CipherUpdate(d->ctx, NULL, &n, hdr, LM_SEAL_HDR) != 1)
		return LM_ETLS;
	return 0;
}

int lm__seal_new(lm__seal **out, const char *cipher, const uint8_t tx[LM_SEAL_SECRET],
		 const uint8_t rx[LM_SEAL_SECRET], uint64_t epoch_records)
{
	lm__seal *s = calloc(1, sizeof(*s));
	int rc = LM_ETLS;

	*out = NULL;
	if (!s)
		return -ENOMEM;
	s->epoch_records = epoch_records ? epoch_records : SEAL_DEFAULT_EPOCH;
	memcpy(s->tx.secret, tx, LM_SEAL_SECRET);
	memcpy(s->rx.secret, rx, LM_SEAL_SECRET);
	s->tx.enc = 1;
	if (!(s->ibuf = malloc(SEAL_IBUF))) {
		rc = -ENOMEM;
		goto fail;
	}
	s->cipher = EVP_CIPHER_fetch(NULL, cipher, NULL);
	if (!s->cipher || EVP_CIPHER_get_iv_length(s->cipher) != 12 ||
	    (s->klen = EVP_CIPHER_get_key_length(s->cipher)) > 64 || s->klen <= 0 ||
	    !(s->tx.ctx = EVP_CIPHER_CTX_new()) || !(s->rx.ctx = EVP_CIPHER_CTX_new()) ||
	    set_key(s, &s->tx) || set_key(s, &s->rx))
		goto fail;
	*out = s;
	return 0;
fail:
	lm__seal_free(s);
	return rc;
}

void lm__seal_free(lm__seal *s)
{
	if (!s)
		return;
	EVP_CIPHER_CTX_free(s->tx.ctx); /* clears its key schedule */
	EVP_CIPHER_CTX_free(s->rx.ctx);
	EVP_CIPHER_free(s->cipher);
	free(s->obuf);
	if (s->ibuf)
		OPENSSL_cleanse(s->ibuf, SEAL_IBUF); /* records opened in place */
	free(s->ibuf);
	OPENSSL_cleanse(s, sizeof(*s)); /* the secrets and IVs */
	free(s);
}

/* ---- writing ----------------------------------------------------------------- */

/* Where a write call's bytes are read from: iovec i, offset off. */
typedef struct cursor {
	const struct iovec *iov;
	int n, i;
	size_t off;
} cursor;

static size_t cursor_left(const cursor *c, int only_first)
{
	size_t left = 0;

	for (int i = c->i; i < c->n; i++) {
		left += c->iov[i].iov_len - (i == c->i ? c->off : 0);
		if (only_first)
			break;
	}
	return left;
}

/* Seals len bytes at the cursor into out as one record: HDR + len + TAG. */
static int seal_record(lm__seal *s, uint8_t type, cursor *cur, size_t len, uint8_t *out)
{
	uint8_t *p = out + LM_SEAL_HDR;
	int n;

	out[0] = type;
	out[1] = 'l';
	out[2] = 'm';
	put16(out + 3, (unsigned)(len + LM_SEAL_TAG));
	if (begin(s, &s->tx, out))
		return failed(s, "sealing a record failed");
	while (len) {
		const struct iovec *v = &cur->iov[cur->i];
		size_t k = v->iov_len - cur->off;
		if (k > len)
			k = len;
		if (k && (EVP_EncryptUpdate(s->tx.ctx, p, &n,
					    (const uint8_t *)v->iov_base + cur->off, (int)k) != 1 ||
			  (size_t)n != k)) /* AEADs here encrypt as they go */
			return failed(s, "sealing a record failed");
		p += k;
		len -= k;
		cur->off += k;
		if (cur->off == v->iov_len) {
			cur->i++;
			cur->off = 0;
		}
	}
	if (EVP_EncryptFinal_ex(s->tx.ctx, p, &n) != 1 ||
	    EVP_CIPHER_CTX_ctrl(s->tx.ctx, EVP_CTRL_AEAD_GET_TAG, LM_SEAL_TAG, p) != 1)
		return failed(s, "sealing a record failed");
	s->olen += (size_t)(p + LM_SEAL_TAG - out);
	return 0;
}

/* Room in obuf to seal plain bytes (at most SEAL_BATCH) as records, with
 * nothing pending in it. */
static int obuf_reserve(lm__seal *s, size_t plain)
{
	size_t need = plain + 8 * LM_SEAL_OVERHEAD, cap;
	uint8_t *p;

	if (need <= s->ocap)
		return 0;
	cap = need <= SEAL_OBUF_SMALL ? SEAL_OBUF_SMALL : SEAL_OBUF;
	if (!(p = malloc(cap)))
		return -ENOMEM;
	free(s->obuf);
	s->obuf = p;
	s->ocap = cap;
	return 0;
}

/* Sends what is left of the sealed batch: 0 once all of it went out. */
static int flush(lm__conn *c, short *want)
{
	lm__seal *s = c->seal;

	while (s->osent < s->olen) {
		/* The plain stream's write: MSG_NOSIGNAL, EINTR, EAGAIN. */
		struct iovec v = {s->obuf + s->osent, s->olen - s->osent};
		ssize_t r = lm__plain_ops.writev(c, &v, 1, want);
		if (r <= 0)
			return r < 0 ? (int)r : -EPIPE;
		s->osent += (size_t)r;
	}
	s->olen = s->osent = 0;
	return 0;
}

/* Seals up to SEAL_BATCH bytes of the call's iovecs. A record ends where
 * the first iovec ends when more follow: that is a frame's header and
 * tables, which the receiver reads on their own, so the payload's records
 * start with the payload and open straight into its destination. */
static size_t seal_batch(lm__seal *s, const struct iovec *iov, int n, int *rc)
{
	cursor cur = {iov, n, 0, 0};
	size_t total = 0;

	*rc = 0;
	while (cur.i < n && total < SEAL_BATCH) {
		size_t len = cursor_left(&cur, cur.i == 0 && n > 1);
		if (len > LM_SEAL_RECORD)
			len = LM_SEAL_RECORD;
		if (len > SEAL_BATCH - total)
			len = SEAL_BATCH - total;
		if (!len) { /* an empty iovec */
			cur.i++;
			cur.off = 0;
			continue;
		}
		if ((*rc = seal_record(s, SEAL_TYPE_DATA, &cur, len, s->obuf + s->olen)))
			return 0;
		total += len;
	}
	return total;
}

static ssize_t seal_writev(lm__conn *c, const struct iovec *iov, int n, short *want)
{
	lm__seal *s = c->seal;
	size_t total;
	int rc;

	if (s->wfail)
		return LM_ETLS;
	if (s->olen) {
		/* Retried within the same write call, with the same iovecs
		 * (nothing was reported written): the batch sealed from them
		 * goes on. Another call first sends the old batch, so the
		 * stream of records stays whole (lm__writev_full makes none
		 * after a failed call left a batch held: the conn is then
		 * frame_broken; a caller of the ops table directly may). */
		int same = s->ogen == c->write_gen;
		if ((rc = flush(c, want)))
			return rc;
		if (same)
			return (ssize_t)s->oplain;
	}
	total = cursor_left(&(cursor){iov, n, 0, 0}, 0);
	if ((rc = obuf_reserve(s, total < SEAL_BATCH ? total : SEAL_BATCH))) {
		s->wfail = 1;
		(void)failed(s, "no memory for the send buffer");
		return rc;
	}
	total = seal_batch(s, iov, n, &rc);
	if (rc || !total) {
		s->olen = 0;
		s->wfail = rc != 0;
		return rc ? rc : 0;
	}
	s->oplain = total;
	s->ogen = c->write_gen;
	if ((rc = flush(c, want)))
		return rc;
	return (ssize_t)total;
}

/* ---- reading ------------------------------------------------------------------ */

/* The record at ihead when it is all in the buffer: its plaintext length
 * in *plen (and its type in *type), 1; 0 when more bytes are needed
 * (*need: the whole record's size, 0 if the header is not in yet); a bad
 * header is LM_ETLS. */
static int whole_record(lm__seal *s, size_t at, size_t *plen, uint8_t *type, size_t *need)
{
	const uint8_t *h = s->ibuf + at;
	size_t ct;

	*need = 0;
	if (s->itail - at < LM_SEAL_HDR)
		return 0;
	ct = (size_t)h[3] << 8 | h[4];
	if ((h[0] != SEAL_TYPE_DATA && h[0] != SEAL_TYPE_CLOSE) || h[1] != 'l' || h[2] != 'm')
		return failed(s, "sealed record: bad header (damaged or not from the peer)");
	/* A data record holds data: an empty one would be input that is
	 * none (readable, then nothing to read). */
	if ((h[0] == SEAL_TYPE_DATA && ct <= LM_SEAL_TAG) ||
	    (h[0] == SEAL_TYPE_CLOSE && ct != LM_SEAL_TAG))
		return failed(s, "sealed record: bad length (damaged or not from the peer)");
	*need = LM_SEAL_HDR + ct;
	if (s->itail - at < *need)
		return 0;
	*plen = ct - LM_SEAL_TAG;
	*type = h[0];
	return 1;
}

/* Zeroes what a record that failed had decrypted into the caller's iovecs
 * from cursor position (i, off) on, plen bytes. */
static void wipe(const cursor *from, size_t plen)
{
	cursor c = *from;

	while (plen && c.i < c.n) {
		const struct iovec *v = &c.iov[c.i];
		size_t k = v->iov_len - c.off < plen ? v->iov_len - c.off : plen;
		memset((uint8_t *)v->iov_base + c.off, 0, k);
		plen -= k;
		c.i++;
		c.off = 0;
	}
}

/* Opens the record at ihead (plen bytes) into the cursor's iovecs, or in
 * place when cur is NULL. 0 only when its tag verified. Into the iovecs
 * the plaintext lands before the tag is checked (as kernel TLS decrypts
 * into the reader's buffer): a record that fails is wiped there again and
 * fails the stream, and the caller is never told those bytes were read. */
static int open_record(lm__seal *s, size_t plen, cursor *cur)
{
	uint8_t *rec = s->ibuf + s->ihead, *in = rec + LM_SEAL_HDR, *tag = in + plen;
	cursor start = cur ? *cur : (cursor){NULL, 0, 0, 0};
	size_t len = plen;
	int n;

	if (begin(s, &s->rx, rec))
		return failed(s, "opening a record failed");
	while (plen) {
		uint8_t *to = in;
		size_t k = plen;
		if (cur) {
			const struct iovec *v = &cur->iov[cur->i];
			to = (uint8_t *)v->iov_base + cur->off;
			if (k > v->iov_len - cur->off)
				k = v->iov_len - cur->off;
		}
		if (k && (EVP_DecryptUpdate(s->rx.ctx, to, &n, in, (int)k) != 1 || (size_t)n != k))
			return failed(s, "opening a record failed");
		in += k;
		plen -= k;
		if (cur && (cur->off += k) == cur->iov[cur->i].iov_len) {
			cur->i++;
			cur->off = 0;
		}
	}
	if (EVP_CIPHER_CTX_ctrl(s->rx.ctx, EVP_CTRL_AEAD_SET_TAG, LM_SEAL_TAG, tag) != 1 ||
	    EVP_DecryptFinal_ex(s->rx.ctx, tag, &n) != 1) {
		if (cur)
			wipe(&start, len);
		return failed(s, "sealed record: authentication failed (bad record mac: damaged "
				 "or forged on the way)");
	}
	return 0;
}

/* Hands the opened record's plaintext to the cursor: bytes taken. */
static size_t take_plain(lm__seal *s, cursor *cur)
{
	size_t got = 0;

	while (s->pout < s->pend && cur->i < cur->n) {
		const struct iovec *v = &cur->iov[cur->i];
		size_t k = v->iov_len - cur->off;
		if (k > s->pend - s->pout)
			k = s->pend - s->pout;
		memcpy((uint8_t *)v->iov_base + cur->off, s->ibuf + s->pout, k);
		s->pout += k;
		got += k;
		if ((cur->off += k) == v->iov_len) {
			cur->i++;
			cur->off = 0;
		}
	}
	if (s->pout == s->pend && s->pend) {
		s->ihead = s->rec_end;
		s->pout = s->pend = 0;
	}
	return got;
}

/* Room for a record of need bytes at ihead: moves the unread bytes to the
 * front when it would not fit (only with no opened plaintext left). */
static void make_room(lm__seal *s, size_t need)
{
	if (s->ihead == s->itail) {
		s->ihead = s->itail = 0;
	} else if (s->ihead + (need ? need : LM_SEAL_HDR + LM_SEAL_MAX_CT) > SEAL_IBUF) {
		memmove(s->ibuf, s->ibuf + s->ihead, s->itail - s->ihead);
		s->itail -= s->ihead;
		s->ihead = 0;
	}
}

/* One read of what the socket holds: > 0, 0 at its end, -EAGAIN, -errno. */
static ssize_t fill(lm__conn *c)
{
	lm__seal *s = c->seal;
	struct iovec v = {s->ibuf + s->itail, SEAL_IBUF - s->itail};
	short want;
	ssize_t r = lm__plain_ops.readv(c, &v, 1, &want); /* the plain stream's read */

	if (r > 0)
		s->itail += (size_t)r;
	return r;
}

static ssize_t seal_readv(lm__conn *c, const struct iovec *iov, int n, short *want)
{
	lm__seal *s = c->seal;
	cursor cur = {iov, n, 0, 0};
	size_t total = 0, room = cursor_left(&cur, 0);

	if (s->rfail)
		return LM_ETLS;
	while (cur.i < n && !cur.iov[cur.i].iov_len)
		cur.i++;
	for (;;) {
		size_t plen, need;
		uint8_t type;
		int rc;
		ssize_t r;

		total += take_plain(s, &cur);
		if (s->pend || total == room || s->eof)
			return (ssize_t)total;
		rc = whole_record(s, s->ihead, &plen, &type, &need);
		if (rc < 0) {
			s->rfail = 1;
			return rc;
		}
		if (rc) {
			/* No byte of a record counts as read before its tag
			 * verified, whether it opens into the caller's iovecs
			 * (they take it whole) or in place (taken in parts). */
			int direct = type == SEAL_TYPE_DATA && room - total >= plen;
			if ((rc = open_record(s, plen, direct ? &cur : NULL))) {
				s->rfail = 1;
				return rc;
			}
			if (type == SEAL_TYPE_CLOSE) {
				s->eof = 1;
				s->ihead += need;
			} else if (direct) {
				total += plen;
				s->ihead += need;
			} else if (plen) {
				s->pout = s->ihead + LM_SEAL_HDR;
				s->pend = s->pout + plen;
				s->rec_end = s->ihead + need;
			} else {
				s->ihead += need;
			}
			continue;
		}
		if (total)
			return (ssize_t)total; /* what is here, without waiting */
		make_room(s, need);
		r = fill(c);
		if (r == -EAGAIN) {
			*want = POLLIN;
			return -EAGAIN;
		}
		if (r < 0)
			return r;
		if (r == 0) {
			s->eof = 1;
			if (s->itail > s->ihead) {
				s->rfail = 1;
				return failed(s, "sealed record: the peer closed inside a record");
			}
			return 0;
		}
	}
}

/* The failed call's sealed batch is still (partly) unsent: the next call
 * sends it first, so the record stream stays whole but the plaintext is
 * cut where the batch ends. */
static int seal_write_held(const lm__conn *c)
{
	return c->seal->olen > 0 && c->seal->ogen == c->write_gen;
}

/* Plaintext that a read returns without waiting for the socket: what an
 * opened record has left, else the next record if it is all here. */
static size_t seal_pending(const lm__conn *c)
{
	lm__seal *s = c->seal;
	size_t plen, need;
	uint8_t type;

	if (s->pend)
		return s->pend - s->pout;
	if (whole_record(s, s->ihead, &plen, &type, &need) == 1)
		return plen ? plen : 1; /* a close record: the read reports it */
	return 0;
}

/* A whole record (or the end, or a failure the read will report) waits;
 * a partial record is not input yet, as with TLS records. */
static int seal_readable(lm__conn *c)
{
	lm__seal *s = c->seal;
	struct pollfd p = {c->rfd, POLLIN | POLLRDHUP, 0};
	size_t plen, need;
	uint8_t type;
	ssize_t r;

	if (s->pend || s->eof || s->rfail)
		return 1;
	if (whole_record(s, s->ihead, &plen, &type, &need) != 0)
		return 1;
	if (poll(&p, 1, 0) != 1 || !(p.revents & (POLLIN | POLLRDHUP | POLLHUP | POLLERR)))
		return 0;
	make_room(s, need);
	if ((r = fill(c)) == -EAGAIN)
		return 0;
	if (r <= 0)
		return 1; /* the end, or a failure: the read reports it */
	return whole_record(s, s->ihead, &plen, &type, &need) != 0;
}

/* A close record (an authenticated end: a cut connection is not one),
 * best effort after what is still unsent, then the socket's half-close. */
static void seal_shutdown(lm__conn *c)
{
	lm__seal *s = c->seal;
	cursor none = {NULL, 0, 0, 0};
	short want;

	if (c->wfd < 0)
		return;
	/* Not after a failed seal: the records it made are gone, so the
	 * close record's number would be one the peer does not expect. */
	if (!s->wfail && !flush(c, &want) && !obuf_reserve(s, 0) &&
	    !seal_record(s, SEAL_TYPE_CLOSE, &none, 0, s->obuf))
		flush(c, &want);
	if (c->wfd == c->rfd)
		shutdown(c->wfd, SHUT_WR);
}

static void seal_close(lm__conn *c)
{
	lm__seal_free(c->seal);
	c->seal = NULL;
	lm__tls_release(c);
}

const lm__stream_ops lm__sealed_ops = {
	.name = "sealed",
	.readv = seal_readv,
	.writev = seal_writev,
	.write_held = seal_write_held,
	.pending = seal_pending,
	.readable = seal_readable,
	.shutdown = seal_shutdown,
	.close = seal_close,
};

void lm__seal_adopt(lm__conn *c, lm__seal *s)
{
	c->seal = s;
	c->ops = &lm__sealed_ops;
}

const char *lm__seal_failure(const lm__conn *c)
{
	return c->seal && c->seal->fail[0] ? c->seal->fail : NULL;
}
