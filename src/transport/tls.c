/*
 * TLS 1.3 over any connected socket (OpenSSL 3), mutual authentication
 * always: X.509 certificates on both sides, or an external PSK with
 * (EC)DHE. Owns the SSL_CTX of a sender or receiver and the SSL of each
 * channel; the frame I/O above it (channel.c) sees only a stream.
 *
 * TLS records carry only a channel's handshake frames (HELLO, REGIONs,
 * the ack, an ERROR before it): once the hello was acknowledged the
 * channel's stream becomes sealed records keyed from this connection's
 * exporter (lm__tls_seal, seal.c), which avoid OpenSSL's copies of every
 * page. The SSL stays for the exporter, the suite's name and the peer's
 * identity. Channels 1..N resume channel 0's session (a ticket), so they
 * pay an ECDHE but no certificate signature or verification.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "abi.h"
#include "channel.h"
#include "wire.h"

#define LM_TLS_RECORD 16384u   /* TLS's largest record payload */
#define LM_TLS_MAX_KEYS 64
#define LM_TLS_SUITES "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
#define LM_TLS_EXPORTER "EXPORTER-livemig-session"
#define LM_SEAL_EXPORTER "EXPORTER-livemig-records"


struct lm__tls_ctx {
	SSL_CTX *ctx;
	int server, psk;
	/* Read-only after lm__tls_ctx_new(). */
	lm__psk_key *keys;
	uint32_t nkeys;
	char only_id[128];  /* receiver: accept only this identity ("" = any) */
	char **allow;       /* receiver: accepted client names, NULL-terminated */
	uint8_t pin[32];
	int have_pin;
	pthread_mutex_t lock;
	SSL_SESSION *resume; /* guarded by lock: sender, channel 0's ticket */
};

/* One channel's TLS stream (conn->tls). Owner: the conn's owner. */
struct lm__tls {
	SSL *ssl;
	lm__tls_ctx *t;
	uint32_t idx;        /* sender: the channel (0 keeps its ticket) */
	/* The authenticated identity: the certificate's subject (RFC 2253,
	 * CN first, cut to fit with "..."), or "psk:" and the key's identity
	 * (whole here: the logs name it; the stats' 128 bytes may cut it). */
	char peer[4 + sizeof(((lm__psk_key *)0)->id)];
	char psk_miss[160];  /* receiver: why the PSK did not match */
	char fail[160];      /* OpenSSL's reason for the stream's failure (an alert) */
	int wheld;           /* an SSL_write wants its retry: its record may be partly out */
	uint8_t gather[LM_TLS_RECORD]; /* small iovecs become one record */
};

static int ex_index = -1; /* SSL ex_data slot for struct lm__tls */
static pthread_once_t ex_once = PTHREAD_ONCE_INIT;

/* OpenSSL's socket BIO writes with write(2): a peer that closed first
 * makes that SIGPIPE, which kills a process that embeds the library and
 * did not ignore it (a receiver that verified and closed while the sender
 * sent its close_notify did, in the mini VMM). This BIO is the socket BIO
 * with send(MSG_NOSIGNAL) for its writes: EPIPE is an error code. */
static BIO_METHOD *nosig_method;

static int nosig_write(BIO *b, const char *buf, int len)
{
	int fd = (int)BIO_get_fd(b, NULL), r;

	errno = 0;
	r = (int)send(fd, buf, (size_t)len, MSG_NOSIGNAL);
	if (r < 0 && errno == ENOTSOCK) /* not a socket: no SIGPIPE to avoid */
		r = (int)write(fd, buf, (size_t)len);
	BIO_clear_retry_flags(b);
	if (r <= 0 && BIO_sock_should_retry(r))
		BIO_set_retry_write(b);
	return r;
}

static void ex_init(void)
{
	const BIO_METHOD *sock = BIO_s_socket();

	ex_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	nosig_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR,
				    "livemig socket");
	if (nosig_method &&
	    (!BIO_meth_set_write(nosig_method, nosig_write) ||
	     !BIO_meth_set_read(nosig_method, BIO_meth_get_read(sock)) ||
	     !BIO_meth_set_puts(nosig_method, BIO_meth_get_puts(sock)) ||
	     !BIO_meth_set_ctrl(nosig_method, BIO_meth_get_ctrl(sock)) ||
	     !BIO_meth_set_create(nosig_method, BIO_meth_get_create(sock)) ||
	     !BIO_meth_set_destroy(nosig_method, BIO_meth_get_destroy(sock)))) {
		BIO_meth_free(nosig_method);
		nosig_method = NULL; /* start() then fails: no TLS stream may SIGPIPE */
	}
}

/* The stream's BIO on fd: the socket BIO, writing with MSG_NOSIGNAL. */
static int set_bio(SSL *ssl, int fd)
{
	BIO *bio = nosig_method ? BIO_new(nosig_method) : NULL;

	if (!bio)
		return 0;
	BIO_set_fd(bio, fd, BIO_NOCLOSE);
	SSL_set_bio(ssl, bio, bio);
	return 1;
}

static struct lm__tls *state_of(SSL *ssl)
{
	return SSL_get_ex_data(ssl, ex_index);
}

/* The reason OpenSSL gives, verification first: "certificate has expired"
 * says more than "certificate verify failed". */
static void tls_reason(SSL *ssl, char *why, size_t cap, const char *what)
{
	long v = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
	unsigned long e = ERR_peek_last_error();
	struct lm__tls *st = ssl ? state_of(ssl) : NULL;
	char buf[256] = "";

	if (e)
		ERR_error_string_n(e, buf, sizeof(buf));
	if (st && st->psk_miss[0])
		snprintf(why, cap, "%s: %s", what, st->psk_miss);
	else if (v != X509_V_OK)
		snprintf(why, cap, "%s: peer certificate refused: %s", what,
			 X509_verify_cert_error_string(v));
	else if (e)
		snprintf(why, cap, "%s: %s", what,
			 ERR_reason_error_string(e) ? ERR_reason_error_string(e) : buf);
	else
		snprintf(why, cap, "%s: the peer closed the connection", what);
	ERR_clear_error();
}

/* ---- PSK ---------------------------------------------------------------- */

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Hex digits, colons allowed between bytes; exactly n bytes. */
int lm__parse_hex(const char *s, size_t len, uint8_t *out, size_t n)
{
	size_t k = 0;

	for (size_t i = 0; i < len; i++) {
		int hi, lo;
		if (s[i] == ':')
			continue;
		if (i + 1 >= len || (hi = hexval(s[i])) < 0 || (lo = hexval(s[i + 1])) < 0 || k >= n)
			return -1;
		out[k++] = (uint8_t)(hi << 4 | lo);
		i++;
	}
	return k == n ? 0 : -1;
}

static int add_key(lm__psk_key *keys, uint32_t cap, uint32_t *n, const char *id, size_t idlen,
		   const uint8_t key[32])
{
	if (*n >= cap || !idlen || idlen >= sizeof(keys[0].id) || memchr(id, 0, idlen))
		return -1;
	memcpy(keys[*n].id, id, idlen);
	keys[*n].id[idlen] = 0;
	memcpy(keys[*n].key, key, 32);
	(*n)++;
	return 0;
}

int lm__psk_parse(const char *buf, size_t n, lm__psk_key *keys, uint32_t cap, uint32_t *nkeys,
		  size_t *bad_line)
{
	const char *p = buf, *end = buf + n;
	size_t line = 0;

	*nkeys = 0;
	*bad_line = 0;
	/* A text line is at least "I:" and 64 digits: 32 bytes can only be a
	 * raw key (which may hold any byte, ':' and '\n' included). */
	if (n == 32)
		return add_key(keys, cap, nkeys, "livemig", 7, (const uint8_t *)buf) ? LM_EINVAL : 0;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p)), *eol, *colon;
		const char *next = nl ? nl + 1 : end;
		uint8_t key[32];
		int rc;
		eol = nl ? nl : end;
		while (eol > p && (eol[-1] == '\r' || eol[-1] == ' '))
			eol--;
		line++;
		if (eol == p || *p == '#') {
			p = next;
			continue;
		}
		colon = memchr(p, ':', (size_t)(eol - p));
		rc = !colon || lm__parse_hex(colon + 1, (size_t)(eol - colon - 1), key, 32) ||
		     add_key(keys, cap, nkeys, p, (size_t)(colon - p), key);
		OPENSSL_cleanse(key, sizeof(key));
		if (rc) {
			*bad_line = line;
			return LM_EINVAL;
		}
		p = next;
	}
	return *nkeys ? 0 : LM_EINVAL;
}

/* "IDENTITY:HEXKEY" lines (QEMU's keys.psk), '#' comments; or 32 raw
 * bytes, identity "livemig". */
static int load_psk_file(lm__tls_ctx *t, const char *path, char *why, size_t cap)
{
	char buf[16384];
	size_t n, line;
	FILE *f = fopen(path, "rb");
	int rc;

	if (!f) {
		snprintf(why, cap, "PSK file %s: %s", path, strerror(errno));
		return -errno;
	}
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	if (n == sizeof(buf)) {
		snprintf(why, cap, "PSK file %s: larger than %zu bytes", path, sizeof(buf) - 1);
		rc = LM_EINVAL;
	} else if ((rc = lm__psk_parse(buf, n, t->keys, LM_TLS_MAX_KEYS, &t->nkeys, &line))) {
		if (line)
			snprintf(why, cap,
				 "PSK file %s, line %zu: expected IDENTITY:KEY with a 32-byte key as "
				 "64 hex digits",
				 path, line);
		else
			snprintf(why, cap, "PSK file %s holds no key", path);
	}
	OPENSSL_cleanse(buf, sizeof(buf));
	return rc;
}

/* The external PSK as a TLS 1.3 session: AES-128-GCM-SHA256, whose hash
 * the PSK's binder uses. */
static SSL_SESSION *psk_session(SSL *ssl, const uint8_t key[32])
{
	static const unsigned char aes128gcm[] = {0x13, 0x01};
	const SSL_CIPHER *c = SSL_CIPHER_find(ssl, aes128gcm);
	SSL_SESSION *s = SSL_SESSION_new();

	if (!s || !c || !SSL_SESSION_set1_master_key(s, key, 32) || !SSL_SESSION_set_cipher(s, c) ||
	    !SSL_SESSION_set_protocol_version(s, TLS1_3_VERSION)) {
		SSL_SESSION_free(s);
		return NULL;
	}
	return s;
}

static int psk_use_cb(SSL *ssl, const EVP_MD *md, const unsigned char **id, size_t *idlen,
		      SSL_SESSION **sess)
{
	struct lm__tls *st = state_of(ssl);
	const lm__psk_key *k = &st->t->keys[0];
	SSL_SESSION *s = psk_session(ssl, k->key);

	*sess = NULL;
	if (!s)
		return 0;
	/* Called again with the negotiated hash after a HelloRetryRequest:
	 * a PSK for another hash is not offered. */
	if (md && md != SSL_CIPHER_get_handshake_digest(SSL_SESSION_get0_cipher(s))) {
		SSL_SESSION_free(s);
		*id = NULL;
		*idlen = 0;
		return 1;
	}
	*sess = s;
	*id = (const unsigned char *)k->id;
	*idlen = strlen(k->id);
	snprintf(st->peer, sizeof(st->peer), "psk:%s", k->id);
	return 1;
}

static int psk_find_cb(SSL *ssl, const unsigned char *id, size_t idlen, SSL_SESSION **sess)
{
	struct lm__tls *st = state_of(ssl);
	lm__tls_ctx *t = st->t;

	*sess = NULL;
	for (uint32_t i = 0; i < t->nkeys; i++) {
		const lm__psk_key *k = &t->keys[i];
		if (strlen(k->id) != idlen || memcmp(k->id, id, idlen))
			continue;
		if (t->only_id[0] && strcmp(t->only_id, k->id))
			break;
		*sess = psk_session(ssl, k->key);
		snprintf(st->peer, sizeof(st->peer), "psk:%s", k->id);
		return *sess ? 1 : 0;
	}
	/* Unknown: the handshake fails for want of a PSK (we hold no
	 * certificate); say which identity, escaped, in the log. */
	char shown[64];
	lm__escape(shown, sizeof(shown), (const char *)id, idlen);
	snprintf(st->psk_miss, sizeof(st->psk_miss), "unknown PSK identity \"%s\"", shown);
	return 1;
}

/* Receiver, PSK: the ticket channel 0 gets carries its PSK identity
 * (inside the ticket, which only this receiver's ticket key opens), so a
 * channel that resumes with it shows that identity, as a resumed channel
 * of certificates shows its certificate: same_peer compares them. */
static int ticket_gen_cb(SSL *ssl, void *arg)
{
	struct lm__tls *st = state_of(ssl);
	SSL_SESSION *sess = SSL_get0_session(ssl);

	(void)arg;
	if (st && sess && !strncmp(st->peer, "psk:", 4))
		SSL_SESSION_set1_ticket_appdata(sess, st->peer, strlen(st->peer));
	return 1;
}

static SSL_TICKET_RETURN ticket_dec_cb(SSL *ssl, SSL_SESSION *sess, const unsigned char *name,
				       size_t nlen, SSL_TICKET_STATUS status, void *arg)
{
	struct lm__tls *st = state_of(ssl);
	void *data = NULL;
	size_t len = 0;

	(void)name;
	(void)nlen;
	(void)arg;
	if (status != SSL_TICKET_SUCCESS && status != SSL_TICKET_SUCCESS_RENEW)
		return status == SSL_TICKET_FATAL_ERR_MALLOC || status == SSL_TICKET_FATAL_ERR_OTHER
			       ? SSL_TICKET_RETURN_ABORT
			       : SSL_TICKET_RETURN_IGNORE_RENEW; /* OpenSSL's own default */
	if (!st || !SSL_SESSION_get0_ticket_appdata(sess, &data, &len) || len <= 4 ||
	    len >= sizeof(st->peer) || memcmp(data, "psk:", 4))
		return SSL_TICKET_RETURN_IGNORE_RENEW; /* no identity: the external PSK must prove one */
	memcpy(st->peer, data, len);
	st->peer[len] = 0;
	return status == SSL_TICKET_SUCCESS ? SSL_TICKET_RETURN_USE : SSL_TICKET_RETURN_USE_RENEW;
}

/* ---- contexts ------------------------------------------------------------- */

static int new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
	struct lm__tls *st = state_of(ssl);
	int kept = 0;

	if (!st || st->idx != 0)
		return 0;
	pthread_mutex_lock(&st->t->lock);
	if (!st->t->resume) {
		st->t->resume = sess; /* our reference now */
		kept = 1;
	}
	pthread_mutex_unlock(&st->t->lock);
	return kept;
}

static int load_certs(lm__tls_ctx *t, const lm_tls_config *cfg, char *why, size_t cap)
{
	if (!cfg->cert_file || !cfg->key_file || !cfg->ca_file) {
		snprintf(why, cap, "TLS: certificates need cert, key and CA files (or give a PSK)");
		return LM_EINVAL;
	}
	if (SSL_CTX_use_certificate_chain_file(t->ctx, cfg->cert_file) != 1) {
		tls_reason(NULL, why, cap, cfg->cert_file);
		return LM_ETLS;
	}
	if (SSL_CTX_use_PrivateKey_file(t->ctx, cfg->key_file, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(t->ctx) != 1) {
		tls_reason(NULL, why, cap, cfg->key_file);
		return LM_ETLS;
	}
	if (SSL_CTX_load_verify_locations(t->ctx, cfg->ca_file, NULL) != 1) {
		tls_reason(NULL, why, cap, cfg->ca_file);
		return LM_ETLS;
	}
	SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER | (t->server ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
			   NULL);
	return 0;
}

static int load_psk(lm__tls_ctx *t, const lm_tls_config *cfg, char *why, size_t cap)
{
	int rc = 0;

	t->keys = calloc(LM_TLS_MAX_KEYS, sizeof(*t->keys));
	if (!t->keys)
		return -ENOMEM;
	if (cfg->psk_file)
		rc = load_psk_file(t, cfg->psk_file, why, cap);
	else if (cfg->psk_len != 32)
		snprintf(why, cap, "TLS: the PSK must be 32 bytes, not %zu", cfg->psk_len), rc = LM_EINVAL;
	else if (add_key(t->keys, LM_TLS_MAX_KEYS, &t->nkeys,
			 cfg->psk_identity ? cfg->psk_identity : "livemig",
			 strlen(cfg->psk_identity ? cfg->psk_identity : "livemig"), cfg->psk))
		snprintf(why, cap, "TLS: the PSK identity must be 1..127 bytes"), rc = LM_EINVAL;
	if (rc)
		return rc;
	if (cfg->psk_identity && cfg->psk_file) {
		uint32_t i = 0;
		while (i < t->nkeys && strcmp(t->keys[i].id, cfg->psk_identity))
			i++;
		if (i == t->nkeys) {
			snprintf(why, cap, "PSK file %s has no identity \"%s\"", cfg->psk_file,
				 cfg->psk_identity);
			return LM_EINVAL;
		}
		lm__psk_key k = t->keys[0]; /* the sender offers keys[0] */
		t->keys[0] = t->keys[i];
		t->keys[i] = k;
		snprintf(t->only_id, sizeof(t->only_id), "%s", cfg->psk_identity);
	}
	if (t->server)
		SSL_CTX_set_psk_find_session_callback(t->ctx, psk_find_cb);
	else
		SSL_CTX_set_psk_use_session_callback(t->ctx, psk_use_cb);
	return 0;
}

static int copy_policy(lm__tls_ctx *t, const lm_tls_config *cfg, char *why, size_t cap)
{
	size_t n = 0;

	if (cfg->pin_sha256) {
		if (lm__parse_hex(cfg->pin_sha256, strlen(cfg->pin_sha256), t->pin, 32)) {
			snprintf(why, cap, "TLS: the pin must be a SHA-256 fingerprint (64 hex digits)");
			return LM_EINVAL;
		}
		if (t->psk) {
			snprintf(why, cap, "TLS: a certificate pin needs certificates, not a PSK");
			return LM_EINVAL;
		}
		t->have_pin = 1;
	}
	while (t->server && cfg->allow && cfg->allow[n])
		n++;
	if (!n)
		return 0;
	if (t->psk) {
		snprintf(why, cap, "TLS: allowed client names need certificates, not a PSK");
		return LM_EINVAL;
	}
	t->allow = calloc(n + 1, sizeof(char *));
	if (!t->allow)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		if (!(t->allow[i] = strdup(cfg->allow[i])))
			return -ENOMEM;
	return 0;
}

int lm__tls_ctx_new(lm__tls_ctx **out, const lm_tls_config *caller, int server, char *why,
		    size_t cap)
{
	lm_tls_config own, *cfg = &own; /* the caller's, at this library's size */
	char msg[200];
	lm__tls_ctx *t;
	int rc;

	*out = NULL;
	pthread_once(&ex_once, ex_init);
	if (!caller)
		return LM_EINVAL;
	if ((rc = lm__abi_in(&own, sizeof(own), caller, LM__TLS_CONFIG_SIZE0, msg, sizeof(msg)))) {
		snprintf(why, cap, "lm_tls_config: %s", msg);
		return rc;
	}
	if ((cfg->psk_file || cfg->psk) && (cfg->cert_file || cfg->key_file || cfg->ca_file)) {
		snprintf(why, cap, "TLS: give certificates or a PSK, not both");
		return LM_EINVAL;
	}
	if (!(t = calloc(1, sizeof(*t))))
		return -ENOMEM;
	pthread_mutex_init(&t->lock, NULL);
	t->server = server;
	t->psk = cfg->psk_file || cfg->psk;
	t->ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	if (!t->ctx || ex_index < 0) {
		tls_reason(NULL, why, cap, "TLS");
		rc = LM_ETLS;
		goto fail;
	}
	SSL_CTX_set_min_proto_version(t->ctx, TLS1_3_VERSION);
	SSL_CTX_set_max_proto_version(t->ctx, TLS1_3_VERSION);
	SSL_CTX_set_ciphersuites(t->ctx, LM_TLS_SUITES);
	/* Partial writes: a large SSL_write returns once some records went
	 * out, so the poll loop above keeps its timeouts. Moving buffer: a
	 * retried write may come from our gather buffer or the caller's. */
	SSL_CTX_set_mode(t->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* No read-ahead: OpenSSL reads exactly one record at a time, so when
	 * a channel switches to sealed records (lm__tls_seal) none of them
	 * sits in OpenSSL's buffer. TLS records carry only the handshake's
	 * few frames. */
	SSL_CTX_set_read_ahead(t->ctx, 0);
	SSL_CTX_set_options(t->ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION);
	if (server) {
		/* One ticket: channel 0's, for its siblings to resume. */
		SSL_CTX_set_num_tickets(t->ctx, 1);
		SSL_CTX_set_session_id_context(t->ctx, (const unsigned char *)"livemig", 7);
		SSL_CTX_set_max_early_data(t->ctx, 0); /* no 0-RTT: it could be replayed */
		if (t->psk)
			SSL_CTX_set_session_ticket_cb(t->ctx, ticket_gen_cb, ticket_dec_cb, NULL);
	} else {
		SSL_CTX_set_session_cache_mode(t->ctx, SSL_SESS_CACHE_CLIENT |
							       SSL_SESS_CACHE_NO_INTERNAL_STORE);
		SSL_CTX_sess_set_new_cb(t->ctx, new_session_cb);
	}
	rc = t->psk ? load_psk(t, cfg, why, cap) : load_certs(t, cfg, why, cap);
	if (!rc)
		rc = copy_policy(t, cfg, why, cap);
	if (rc)
		goto fail;
	*out = t;
	return 0;
fail:
	lm__tls_ctx_free(t);
	return rc;
}

void lm__tls_ctx_free(lm__tls_ctx *t)
{
	if (!t)
		return;
	SSL_SESSION_free(t->resume);
	SSL_CTX_free(t->ctx);
	if (t->keys)
		OPENSSL_cleanse(t->keys, LM_TLS_MAX_KEYS * sizeof(*t->keys));
	free(t->keys);
	for (size_t i = 0; t->allow && t->allow[i]; i++)
		free(t->allow[i]);
	free(t->allow);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

/* ---- the stream ------------------------------------------------------------ */

/* The first failure's reason stays with the stream: "read: TLS failure"
 * alone does not say that the peer refused our certificate. */
static void keep_reason(struct lm__tls *st)
{
	const char *why = ERR_reason_error_string(ERR_peek_last_error());

	if (!st->fail[0] && why)
		snprintf(st->fail, sizeof(st->fail), "%s", why);
	ERR_clear_error();
}

/* A failed SSL_read_ex/SSL_write_ex as the stream's result. A write never
 * returns 0: the loop above takes 0 as progress and would call again, and
 * a failed SSL fails again at once, without a syscall (a receiver whose
 * sender died spun at full CPU sending its ERROR frame). The caller sets
 * errno to 0 first: SSL_ERROR_SYSCALL with a stale EAGAIN is a close. */
static ssize_t tls_fail(lm__conn *c, int r, short *want, int writing)
{
	int err = SSL_get_error(c->tls->ssl, r), e = errno;

	switch (err) {
	case SSL_ERROR_WANT_READ: *want = POLLIN; return -EAGAIN;
	case SSL_ERROR_WANT_WRITE: *want = POLLOUT; return -EAGAIN;
	case SSL_ERROR_ZERO_RETURN: return writing ? -EPIPE : 0; /* close_notify */
	case SSL_ERROR_SYSCALL:
		if (!ERR_peek_error()) { /* closed without close_notify */
			if (e && e != EAGAIN && e != EWOULDBLOCK && e != EINTR)
				return -e;
			return writing ? -EPIPE : 0;
		}
		/* fallthrough */
	default: /* a forged or damaged record, or the peer's alert */
		keep_reason(c->tls);
		return LM_ETLS;
	}
}

static ssize_t tls_readv(lm__conn *c, const struct iovec *iov, int n, short *want)
{
	SSL *ssl = c->tls->ssl;
	size_t total = 0;

	/* Fill as many iovecs as the decrypted records already allow; wait
	 * (return) only when nothing at all is ready. */
	for (int i = 0; i < n; i++) {
		size_t got = 0;
		int r;
		if (!iov[i].iov_len)
			continue;
		if (total && !SSL_pending(ssl))
			break;
		ERR_clear_error();
		errno = 0;
		r = SSL_read_ex(ssl, iov[i].iov_base, iov[i].iov_len, &got);
		if (r != 1)
			return total ? (ssize_t)total : tls_fail(c, r, want, 0);
		total += got;
		if (got < iov[i].iov_len)
			break;
	}
	return (ssize_t)total;
}

static ssize_t tls_writev(lm__conn *c, const struct iovec *iov, int n, short *want)
{
	struct lm__tls *st = c->tls;
	const void *buf = iov[0].iov_base;
	size_t len = iov[0].iov_len, w = 0;
	int r;

	/* A small first piece (a frame header, the offset tables) is sent
	 * together with what follows, up to one full record. Retries come
	 * with the same iovecs, so the gathered bytes are the same. */
	if (len < LM_TLS_RECORD && n > 1) {
		len = 0;
		for (int i = 0; i < n && len < LM_TLS_RECORD; i++) {
			size_t k = iov[i].iov_len < LM_TLS_RECORD - len ? iov[i].iov_len
								 : LM_TLS_RECORD - len;
			memcpy(st->gather + len, iov[i].iov_base, k);
			len += k;
		}
		buf = st->gather;
	}
	ERR_clear_error();
	errno = 0;
	r = SSL_write_ex(st->ssl, buf, len, &w);
	st->wheld = r != 1;
	if (r == 1)
		return w ? (ssize_t)w : -EPIPE;
	return tls_fail(c, r, want, 1);
}

static int tls_write_held(const lm__conn *c)
{
	return c->tls->wheld;
}

static size_t tls_pending(const lm__conn *c)
{
	return (size_t)SSL_pending(c->tls->ssl);
}

/* Readable socket bytes may be a record with no data in it (a session
 * ticket, a key update): peeking processes it and tells the two apart, so
 * a channel watching for its peer's frames neither blocks on it nor takes
 * it for one. */
static int tls_readable(lm__conn *c)
{
	struct pollfd p = {c->rfd, POLLIN | POLLRDHUP, 0};
	SSL *ssl = c->tls->ssl;
	size_t got;
	char b;
	int r, err;

	if (SSL_pending(ssl))
		return 1;
	/* With read-ahead a record may wait in OpenSSL's buffer, not yet
	 * decrypted (an ERROR read in one go with the FEEDBACK before it):
	 * the socket is then quiet, so it is peeked at below. */
	if (!SSL_has_pending(ssl) &&
	    (poll(&p, 1, 0) != 1 || !(p.revents & (POLLIN | POLLRDHUP | POLLHUP | POLLERR))))
		return 0;
	ERR_clear_error();
	errno = 0;
	r = SSL_peek_ex(ssl, &b, 1, &got);
	if (r == 1)
		return 1;
	err = SSL_get_error(ssl, r);
	if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
		ERR_clear_error();
		return 0;
	}
	keep_reason(c->tls); /* a close or an alert: the read that follows says so */
	return 1;
}

static void tls_shutdown(lm__conn *c)
{
	ERR_clear_error();
	SSL_shutdown(c->tls->ssl); /* close_notify, if the socket takes it now */
	ERR_clear_error();
	if (c->wfd >= 0)
		shutdown(c->wfd, SHUT_WR);
}

void lm__tls_release(lm__conn *c)
{
	if (!c->tls)
		return;
	SSL_free(c->tls->ssl);
	free(c->tls);
	c->tls = NULL;
}

static void tls_close(lm__conn *c)
{
	lm__tls_release(c);
}

static const lm__stream_ops tls_ops = {
	.name = "tls",
	.readv = tls_readv,
	.writev = tls_writev,
	.write_held = tls_write_held,
	.pending = tls_pending,
	.readable = tls_readable,
	.shutdown = tls_shutdown,
	.close = tls_close,
};

/* ---- handshakes ---------------------------------------------------------- */

static int drive(lm__conn *c, SSL *ssl, int (*step)(SSL *), char *why, size_t cap)
{
	for (;;) {
		int r, err, rc;
		ERR_clear_error();
		if ((r = step(ssl)) == 1)
			return 0;
		err = SSL_get_error(ssl, r);
		if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
			tls_reason(ssl, why, cap, "TLS handshake");
			return LM_ETLS;
		}
		rc = lm__conn_wait(c, err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT);
		if (rc) {
			snprintf(why, cap, "TLS handshake: %s",
				 rc == LM_ETIMEDOUT ? "not finished in time" : lm_strerror(rc));
			return rc;
		}
	}
}

static int start(lm__tls_ctx *t, lm__conn *c, uint32_t idx, struct lm__tls **out, char *why,
		 size_t cap)
{
	struct lm__tls *st = calloc(1, sizeof(*st));

	*out = NULL;
	if (!st)
		return -ENOMEM;
	st->t = t;
	st->idx = idx;
	st->ssl = SSL_new(t->ctx);
	if (!st->ssl || !set_bio(st->ssl, c->rfd) || !SSL_set_ex_data(st->ssl, ex_index, st)) {
		tls_reason(NULL, why, cap, "TLS");
		SSL_free(st->ssl);
		free(st);
		return LM_ETLS;
	}
	*out = st;
	return 0;
}

static void adopt(lm__conn *c, struct lm__tls *st)
{
	c->tls = st;
	c->ops = &tls_ops;
}

static void give_up(struct lm__tls *st)
{
	SSL_free(st->ssl);
	free(st);
}

/* The peer certificate's SHA-256 (the pin's, and what tells one client's
 * certificate from another's whatever their subjects): 0, or -ENOENT. */
static int cert_sha256(SSL *ssl, uint8_t md[32])
{
	X509 *cert = SSL_get0_peer_certificate(ssl);
	unsigned char buf[EVP_MAX_MD_SIZE];
	unsigned int len = 0;

	if (!cert || !X509_digest(cert, EVP_sha256(), buf, &len) || len != 32)
		return -ENOENT;
	memcpy(md, buf, 32);
	return 0;
}

int lm__tls_peer_digest(const lm__conn *c, uint8_t md[32])
{
	const struct lm__tls *st = c->tls;
	unsigned int len = 0;

	if (!st)
		return -ENOENT;
	if (!st->t->psk)
		return cert_sha256(st->ssl, md);
	if (strncmp(st->peer, "psk:", 4) ||
	    !EVP_Digest(st->peer, strlen(st->peer), md, &len, EVP_sha256(), NULL) || len != 32)
		return -ENOENT;
	return 0;
}

static int check_pin(lm__tls_ctx *t, SSL *ssl, char *why, size_t cap)
{
	uint8_t md[32];

	if (!t->have_pin)
		return 0;
	if (cert_sha256(ssl, md) || memcmp(md, t->pin, 32)) {
		snprintf(why, cap, "TLS: the peer's certificate does not match the pinned SHA-256");
		return LM_EAUTH;
	}
	return 0;
}

/* src (n bytes) into dst as a string; what does not fit is cut at a byte
 * and ends in "...", so a reader knows there was more. */
static void copy_cut(char *dst, size_t cap, const char *src, size_t n)
{
	if (!cap)
		return;
	if (n < cap) {
		memcpy(dst, src, n);
		dst[n] = 0;
	} else if (cap > 4) {
		memcpy(dst, src, cap - 4);
		memcpy(dst + cap - 4, "...", 4);
	} else {
		dst[0] = 0;
	}
}

/* n with its CN entries first, the rest in the certificate's order (NULL
 * if out of memory): a cut then keeps the name a reader looks for, where
 * certificates put it first (as ours) or, as most CAs, last. */
static X509_NAME *cn_first(const X509_NAME *n)
{
	X509_NAME *o = X509_NAME_new();
	int count = X509_NAME_entry_count(n);

	for (int pass = 0; o && pass < 2; pass++)
		for (int i = 0; i < count; i++) {
			const X509_NAME_ENTRY *ne = X509_NAME_get_entry(n, i);
			int cn = OBJ_obj2nid(X509_NAME_ENTRY_get_object(ne)) == NID_commonName;
			if (cn == !pass && !X509_NAME_add_entry(o, ne, -1, 0)) {
				X509_NAME_free(o);
				o = NULL;
				break;
			}
		}
	return o;
}

/* The subject as RFC 2253 prints it (escaped to ASCII) with the CN first
 * (X509_NAME_oneline would drop whole entries that do not fit, silently). */
static void cert_identity(SSL *ssl, struct lm__tls *st)
{
	X509 *cert = SSL_get0_peer_certificate(ssl);
	X509_NAME *name = cert ? cn_first(X509_get_subject_name(cert)) : NULL;
	BIO *b = name ? BIO_new(BIO_s_mem()) : NULL;
	char *text;
	long n;

	if (b && X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253 & ~XN_FLAG_DN_REV) >= 0 &&
	    (n = BIO_get_mem_data(b, &text)) > 0)
		copy_cut(st->peer, sizeof(st->peer), text, (size_t)n);
	else if (cert)
		snprintf(st->peer, sizeof(st->peer), "(a certificate)");
	BIO_free(b);
	X509_NAME_free(name);
}

/* The ticket comes right after channel 0's handshake; waiting for it (a
 * round trip at most) lets channels 1..N resume instead of verifying the
 * certificate chain again. Nothing else can arrive: the receiver answers
 * the hello only once every channel is there. */
static void await_ticket(lm__tls_ctx *t, lm__conn *c, SSL *ssl)
{
	uint64_t end = lm__now_us() + 1000000u;
	char b;

	for (;;) {
		int have, r;
		size_t got;
		ERR_clear_error();
		r = SSL_peek_ex(ssl, &b, 1, &got); /* processes the ticket, if in */
		if (r == 1 || SSL_get_error(ssl, r) != SSL_ERROR_WANT_READ) {
			/* Data, or the receiver's alert (it checks our
			 * certificate after our handshake ended): keep why. */
			if (r != 1)
				keep_reason(c->tls);
			ERR_clear_error();
			return;
		}
		pthread_mutex_lock(&t->lock);
		have = t->resume != NULL;
		pthread_mutex_unlock(&t->lock);
		if (have || lm__now_us() >= end)
			return;
		int saved = c->timeout_ms;
		c->timeout_ms = (int)((end - lm__now_us()) / 1000u) + 1;
		r = lm__conn_wait(c, POLLIN);
		c->timeout_ms = saved;
		if (r)
			return;
	}
}

int lm__tls_client(lm__tls_ctx *t, lm__conn *c, uint32_t idx, const char *peer_name, char *why,
		   size_t cap)
{
	struct lm__tls *st;
	unsigned char ip[16];
	int rc = start(t, c, idx, &st, why, cap);

	if (rc)
		return rc;
	if (!t->psk) {
		int is_ip = peer_name && (inet_pton(AF_INET, peer_name, ip) == 1 ||
					  inet_pton(AF_INET6, peer_name, ip) == 1);
		if (!peer_name || !*peer_name) {
			snprintf(why, cap, "TLS: no name to check the receiver's certificate against "
					   "(give the peer name)");
			give_up(st);
			return LM_EINVAL;
		}
		if (is_ip ? !X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(st->ssl), peer_name)
			  : !SSL_set1_host(st->ssl, peer_name) ||
				    !SSL_set_tlsext_host_name(st->ssl, peer_name)) {
			tls_reason(NULL, why, cap, "TLS peer name");
			give_up(st);
			return LM_ETLS;
		}
	}
	if (idx > 0) {
		/* A copy each: OpenSSL offers a TLS 1.3 session only once (RFC
		 * 8446's privacy advice), but our receiver's tickets are
		 * stateless and every channel is the same peer anyway. */
		pthread_mutex_lock(&t->lock);
		SSL_SESSION *copy = t->resume ? SSL_SESSION_dup(t->resume) : NULL;
		pthread_mutex_unlock(&t->lock);
		if (copy) {
			SSL_set_session(st->ssl, copy);
			SSL_SESSION_free(copy); /* the SSL holds its own reference */
		}
	}
	if ((rc = drive(c, st->ssl, SSL_connect, why, cap))) {
		/* A receiver with another key for our identity fails the
		 * binder and answers "illegal parameter": say it plainly. */
		if (t->psk && rc == LM_ETLS && strstr(why, "alert")) {
			size_t n = strlen(why);
			snprintf(why + n, cap - n, " (the receiver refused our PSK: not the same key?)");
		}
		give_up(st);
		return rc;
	}
	if ((rc = check_pin(t, st->ssl, why, cap))) {
		/* The handshake is done: the ERROR that says why goes over
		 * TLS, not in the clear into a TLS stream. */
		adopt(c, st);
		return rc;
	}
	if (!t->psk)
		cert_identity(st->ssl, st);
	adopt(c, st);
	if (idx == 0)
		await_ticket(t, c, st->ssl);
	return 0;
}

static int allowed(lm__tls_ctx *t, SSL *ssl, char *why, size_t cap)
{
	X509 *cert = SSL_get0_peer_certificate(ssl);
	char cn[256] = "";

	if (!t->allow)
		return 0;
	if (cert) {
		X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof(cn));
		for (size_t i = 0; t->allow[i]; i++)
			if (!strcmp(cn, t->allow[i]) ||
			    X509_check_host(cert, t->allow[i], 0, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS,
					    NULL) == 1)
				return 0;
	}
	snprintf(why, cap, "TLS: client certificate \"%.100s\" is not an allowed sender", cn);
	return LM_EAUTH;
}

int lm__tls_server(lm__tls_ctx *t, lm__conn *c, char *why, size_t cap)
{
	struct lm__tls *st;
	int rc = start(t, c, 0, &st, why, cap);

	if (rc)
		return rc;
	if ((rc = drive(c, st->ssl, SSL_accept, why, cap))) {
		/* The alert OpenSSL queued (unknown CA, bad certificate...)
		 * goes out if the socket takes it; then the close. */
		give_up(st);
		return rc;
	}
	if ((rc = check_pin(t, st->ssl, why, cap)) || (rc = allowed(t, st->ssl, why, cap))) {
		/* A certificate of our CA, but not one we take: the handshake
		 * is done, so the caller can tell the peer why over TLS
		 * (LM_EAUTH with the stream adopted) instead of a bare EOF. */
		adopt(c, st);
		return rc;
	}
	if (!t->psk)
		cert_identity(st->ssl, st);
	else if (!st->peer[0])
		snprintf(st->peer, sizeof(st->peer), "psk (resumed)");
	adopt(c, st);
	return 0;
}

const char *lm__tls_failure(lm__conn *c, int wait_ms)
{
	struct lm__tls *st = c->tls;
	struct pollfd p = {c->rfd, POLLIN, 0};
	char b;
	size_t got;

	if (c->seal)
		return lm__seal_failure(c);
	if (!st)
		return NULL;
	/* After a failed write, the alert the peer sent before it closed may
	 * still be unread: reading it is what names the reason. */
	if (!st->fail[0] && wait_ms > 0 && poll(&p, 1, wait_ms) == 1) {
		ERR_clear_error();
		if (SSL_peek_ex(st->ssl, &b, 1, &got) != 1)
			keep_reason(st);
		ERR_clear_error();
	}
	return st->fail[0] ? st->fail : NULL;
}

int lm__tls_binding(lm__conn *c, uint8_t out[16])
{
	if (!c->tls)
		return LM_EINVAL;
	if (SSL_export_keying_material(c->tls->ssl, out, 16, LM_TLS_EXPORTER,
				       strlen(LM_TLS_EXPORTER), NULL, 0, 0) != 1) {
		ERR_clear_error();
		return LM_ETLS;
	}
	return 0;
}

void lm__tls_describe(const lm__conn *c, char *suite, size_t scap, char *peer, size_t pcap,
		      int *resumed)
{
	if (!c->tls) {
		if (scap)
			suite[0] = 0;
		if (pcap)
			peer[0] = 0;
		*resumed = 0;
		return;
	}
	snprintf(suite, scap, "%s %s", SSL_get_version(c->tls->ssl),
		 SSL_CIPHER_get_name(SSL_get_current_cipher(c->tls->ssl)));
	copy_cut(peer, pcap, c->tls->peer, strlen(c->tls->peer));
	*resumed = SSL_session_reused(c->tls->ssl);
}

int lm__tls_seal(lm__conn *c, int client)
{
	struct lm__tls *st = c->tls;
	uint8_t k[2 * LM_SEAL_SECRET];
	const char *cipher;
	lm__seal *seal;
	int rc;

	if (!st || c->seal)
		return LM_EINVAL;
	/* Nothing may follow the hello's acknowledgement in a TLS record:
	 * after it each side speaks sealed records only. */
	if (SSL_has_pending(st->ssl)) {
		snprintf(st->fail, sizeof(st->fail), "TLS data after the hello's acknowledgement");
		return LM_ETLS;
	}
	switch (SSL_CIPHER_get_cipher_nid(SSL_get_current_cipher(st->ssl))) {
	case NID_aes_128_gcm: cipher = "AES-128-GCM"; break;
	case NID_aes_256_gcm: cipher = "AES-256-GCM"; break;
	case NID_chacha20_poly1305: cipher = "ChaCha20-Poly1305"; break;
	default: return LM_ETLS;
	}
	/* The sender's secret first, then the receiver's: each end seals
	 * with its own and opens with the other's. */
	if (SSL_export_keying_material(st->ssl, k, sizeof(k), LM_SEAL_EXPORTER,
				       strlen(LM_SEAL_EXPORTER), NULL, 0, 0) != 1) {
		ERR_clear_error();
		return LM_ETLS;
	}
	rc = lm__seal_new(&seal, cipher, client ? k : k + LM_SEAL_SECRET,
			  client ? k + LM_SEAL_SECRET : k, 0);
	OPENSSL_cleanse(k, sizeof(k));
	if (rc)
		return rc;
	lm__seal_adopt(c, seal);
	SSL_free_buffers(st->ssl); /* its record buffers are not used again */
	return 0;
}
