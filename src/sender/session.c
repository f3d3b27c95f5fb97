/*
 * Sender session: the public lm_sender_* calls, connecting and the
 * handshake (hello, regions, acks), the completion (checksums and the
 * verified reply), errors and teardown. Channel threads (channel.c) and
 * dispatch (dispatch.c) run on what this file sets up; snapshot.c makes
 * lm_sender_stats() from what they publish.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "abi.h"
#include "checksum.h"
#include "codec/dedup.h"
#include "config.h"
#include "delta_cache.h"
#include "sender/sender.h"
#include "stats.h"
#include "tsan.h"
#include "zero.h"

/* ---- errors ------------------------------------------------------------- */

static void abort_channels(lm_sender *s);
static void stamp(lm_sender *s, uint64_t *t, uint64_t *pub);

/* Records the first failure; later ones are consequences. */
void lm__sender_error(lm_sender *s, int code, int channel, const char *msg)
{
	pthread_mutex_lock(&s->lock);
	if (!s->err && __atomic_load_n(&s->cancelled, __ATOMIC_SEQ_CST)) {
		/* Whatever failed first failed because of the cancel. */
		s->err = LM_ECANCELED;
		snprintf(s->errmsg, sizeof(s->errmsg), "cancelled by the application");
	} else if (!s->err) {
		s->err = code;
		if (channel >= 0)
			snprintf(s->errmsg, sizeof(s->errmsg), "channel %d: %s", channel, msg);
		else
			snprintf(s->errmsg, sizeof(s->errmsg), "%s", msg);
	}
	pthread_cond_broadcast(&s->idle_cond);
	pthread_mutex_unlock(&s->lock);
	/* Channels blocked on a stalled peer give up now, not at the timeout. */
	uint64_t one = 1;
	if (write(s->wake_fd, &one, sizeof(one)) < 0) {
		/* an eventfd counter cannot overflow here */
	}
}

/* A call's mistake (a bad config, region, address or state): its message
 * for lm_sender_errmsg(), unless a failure is recorded already; the handle
 * stays usable (but a bad config's, see lm_sender_new). Returns code. */
int lm__sender_usage(lm_sender *s, int code, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&s->lock);
	if (!s->err) {
		va_start(ap, fmt);
		vsnprintf(s->errmsg, sizeof(s->errmsg), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&s->lock);
	return code;
}

/* A failed write may be the receiver closing after an error frame: read it,
 * so the user sees the receiver's reason rather than "connection reset". */

int lm__sender_await_ack(lm_sender *s, lm__tx_chan *ch, uint8_t kind, lm__ack *ack, lm__err *e)
{
	lm__conn *c = &ch->conn;
	uint8_t b[LM_ACK_LEN];
	lm__frame f;
	uint64_t t0 = lm__now_us();
	int rc, watch = c->watch_in;

	c->watch_in = 0;
	/* After the handshake FEEDBACK may come before the ACK (MIXED: on
	 * channel 0 right before every ACK(SYNC)): taken, then read on,
	 * within one timeout in all. */
	while (!(rc = lm__read_frame(c, &f, s->page_size, s->packet_pages, e)) &&
	       kind != LM_KIND_HELLO && f.kind == LM_KIND_FEEDBACK &&
	       !(rc = lm__sender_take_feedback(ch, &f, e))) {
		if (lm__now_us() - t0 >= (uint64_t)c->timeout_ms * 1000u) {
			lm__err_set(e, "no ack of %s for %d ms, only feedback", lm__kind_name(kind),
				    c->timeout_ms);
			rc = LM_ETIMEDOUT;
			break;
		}
	}
	c->watch_in = watch;
	if (rc)
		return rc;
	if (f.kind == LM_KIND_ERROR) {
		lm__error_msg m;
		if ((rc = lm__read_error_body(c, &f, &m, e)))
			return rc;
		if (kind == LM_KIND_HELLO) {
			lm__err_set(e, "receiver refused: %s (%s)", m.msg, lm_strerror(m.code));
			return LM_EPEER;
		}
		lm__err_set(e, "receiver reported: %s (%s)", m.msg, lm_strerror(m.code));
		return m.code == LM_ECHECKSUM ? LM_ECHECKSUM : LM_EPEER;
	}
	if (f.kind != LM_KIND_ACK || f.len != LM_ACK_LEN) {
		lm__err_set(e, "expected ack of %s, got %s", lm__kind_name(kind), lm__kind_name(f.kind));
		return LM_EKIND;
	}
	if ((rc = lm__read_full(c, b, sizeof(b))) || (rc = lm__dec_ack(b, f.len, ack, e)))
		return rc;
	if (ack->kind != kind) {
		lm__err_set(e, "ack.kind %u, expected %s", ack->kind, lm__kind_name(kind));
		return LM_EFIELD;
	}
	if (memcmp(ack->session, s->session, 16)) {
		lm__err_set(e, "ack.session does not match ours");
		return LM_ESESSION;
	}
	return 0;
}

int lm__sender_complete(lm_sender *s)
{
	lm__region_sum sums[LM_MAX_REGIONS];
	uint8_t *buf = malloc(lm__complete_bound(s->nregions));
	lm__tx_chan *ch0 = &s->ch[0];
	lm__err e = {0};
	lm__ack ack;
	int rc;

	if (!buf)
		return -ENOMEM;
	for (uint32_t i = 0; i < s->nregions; i++) {
		sums[i].id = i;
		sums[i].len = s->regions[i].len;
		rc = lm__sumtree_final(&s->regions[i].sum, s->nch, &sums[i].checksum);
		if (rc)
			goto out;
	}
	if ((rc = lm__sender_devstate_end(s, &e)))
		goto fail;
	rc = lm__write_full(&ch0->conn, buf, lm__enc_complete(buf, sums, s->nregions));
	if (rc) {
		rc = lm__sender_peer_reason(ch0, rc, &e);
		goto fail;
	}
	/* The receiver hashes everything before it answers: that is the
	 * verification the user waits for. */
	if ((rc = lm__sender_await_ack(s, ch0, LM_KIND_COMPLETE, &ack, &e)))
		goto fail;
	goto out;
fail:
	if (!e.msg[0])
		lm__err_set(&e, "%s", lm_strerror(rc));
	lm__sender_error(s, rc, 0, e.msg);
out:
	lm__sender_publish(s, 1); /* channels idle: the verified reply counted */
	free(buf);
	return rc;
}

/* ---- handshake ------------------------------------------------------------ */

/* Connects channel ch, runs its TLS handshake if asked, sends its hello.
 * Under TLS the session id is channel 0's handshake binding: the receiver
 * computes the same value, so no hello can be replayed or spliced in from
 * another connection. */
/* What this sender's hello offers: round acks and packed tables always,
 * ref and delta pages unless turned off (deltas are only made in a live
 * migration). */
static uint64_t offered_features(const lm_sender *s)
{
	return LM_FEAT_ROUND_ACK | LM_FEAT_PACKED | (s->cfg.no_dedup ? 0 : LM_FEAT_REF) |
	       (s->cfg.no_delta ? 0 : LM_FEAT_DELTA) | (s->is_auto ? LM_FEAT_MIXED : 0) |
	       lm__sender_devstate_feature(s) | (s->tls ? LM_FEAT_SEALED : 0);
}

/* After the handshake: the content index when the receiver takes refs. */
static int kinds_setup(lm_sender *s)
{
	const uint8_t *base[LM_MAX_REGIONS];
	uint64_t len[LM_MAX_REGIONS];
	int rc;

	s->kinds.page_size = s->page_size;
	s->kinds.npages = 0;
	for (uint32_t i = 0; i < s->nregions; i++) {
		/* Global page numbers: each region starts where the last ended. */
		uint64_t end = s->kinds.first[i] + (s->regions[i].len + s->page_size - 1) / s->page_size;

		base[i] = s->regions[i].base;
		len[i] = s->regions[i].len;
		if (i + 1 < s->nregions)
			s->kinds.first[i + 1] = end;
		else
			s->kinds.npages = end;
	}
	if (s->features & LM_FEAT_DELTA) {
		if ((rc = lm__dcache_new(&s->kinds.dcache,
					 s->cfg.delta_cache ? s->cfg.delta_cache : LM_DEFAULT_DELTA_CACHE,
					 s->page_size)))
			return rc;
		if (!(s->kinds.zsent = calloc(s->kinds.npages ? s->kinds.npages : 1, 1)))
			return -ENOMEM;
	}
	if (!(s->features & LM_FEAT_REF))
		return 0;
	if ((rc = lm__dedup_new(&s->kinds.dedup, base, len, s->nregions, s->page_size)))
		return rc;
	if (s->dedup_hash)
		lm__dedup_set_hash(s->kinds.dedup, s->dedup_hash);
	return 0;
}

static int hello_channel(lm_sender *s, lm__tx_chan *ch, const lm__addr *a, lm__err *e)
{
	uint8_t buf[LM_FRAME_HDR + LM_HELLO_LEN];
	char why[256] = "";
	lm__hello h;
	int fd = -1, rc = a->ops->connect(a, ch->idx, s->cfg.timeout_ms, s->cfg.sndbuf, &fd);

	if (rc) {
		lm__err_set(e, "connect to %s:%s: %s", a->ops->name,
			    a->nfds ? "fd" : a->text, lm_strerror(rc));
		return rc;
	}
	lm__conn_init(&ch->conn, fd, s->cfg.timeout_ms);
	ch->conn.wake_fd = s->wake_fd;
	if (s->tls) {
		/* The whole handshake within the timeout, not per read. */
		ch->conn.deadline_us = lm__now_us() + (uint64_t)s->cfg.timeout_ms * 1000u;
		rc = lm__tls_client(s->tls, &ch->conn, ch->idx, s->peer_name, why, sizeof(why));
		ch->conn.deadline_us = 0;
		if (rc) {
			lm__err_set(e, "%s", why);
			return rc;
		}
		if (ch->idx == 0 && (rc = lm__tls_binding(&ch->conn, s->session))) {
			lm__err_set(e, "TLS: no session binding: %s", lm_strerror(rc));
			return rc;
		}
	}
	memset(&h, 0, sizeof(h));
	h.version = LM_PROTOCOL_VERSION;
	memcpy(h.session, s->session, 16);
	h.channel = ch->idx;
	h.channels = (uint16_t)s->nch;
	h.page_size = s->page_size;
	h.codec = (uint16_t)s->cfg.codec;
	h.packet_pages = s->packet_pages;
	h.region_count = s->nregions;
	h.features = offered_features(s);
	/* Codec auto sends packets of any codec: a receiver that cannot take
	 * them must refuse the session, not a packet later. */
	h.required = s->is_auto ? LM_FEAT_MIXED : 0;
	/* Device state cannot be left behind: a receiver must take it. */
	h.required |= lm__sender_devstate_feature(s);
	/* Under TLS the data phase is sealed records: one way only. */
	h.required |= s->tls ? LM_FEAT_SEALED : 0;
	rc = lm__write_full(&ch->conn, buf, lm__enc_hello(buf, &h));
	if (rc) {
		/* Under TLS 1.3 the receiver checks our certificate after our
		 * handshake ended: its alert, not the broken pipe, says why. */
		const char *alert = s->tls ? lm__tls_failure(&ch->conn, 200) : NULL;
		lm__err_set(e, "sending hello: %s%s%s%s", lm_strerror(rc), alert ? " (TLS: " : "",
			    alert ? alert : "", alert ? ")" : "");
	}
	return rc;
}

static int send_regions(lm_sender *s, lm__tx_chan *ch, lm__err *e)
{
	uint8_t buf[LM_FRAME_HDR + LM_REGION_FIXED + LM_MAX_REGION_NAME];

	for (uint32_t i = 0; i < s->nregions; i++) {
		lm__region_msg m;
		int rc;
		memset(&m, 0, sizeof(m));
		m.id = i;
		m.len = s->regions[i].len;
		m.name_len = (uint16_t)strlen(s->regions[i].name);
		memcpy(m.name, s->regions[i].name, m.name_len);
		rc = lm__write_full(&ch->conn, buf, lm__enc_region(buf, &m));
		if (rc) {
			lm__err_set(e, "sending region %u: %s", i, lm_strerror(rc));
			return rc;
		}
	}
	return 0;
}

static int await_hello_ack(lm_sender *s, lm__tx_chan *ch, lm__err *e)
{
	lm__ack a;
	int rc = lm__sender_await_ack(s, ch, LM_KIND_HELLO, &a, e);

	if (rc)
		return rc;
	/* The ack was the receiver's last TLS record on this channel: from
	 * here on it reads sealed records, an ERROR about the ack too. */
	if (s->tls && (rc = lm__tls_seal(&ch->conn, 1))) {
		lm__err_set(e, "TLS: starting sealed records: %s", lm_strerror(rc));
		return rc;
	}
	if (a.features & ~offered_features(s)) {
		lm__err_set(e, "ack.features 0x%llx accepts features we did not offer",
			    (unsigned long long)a.features);
		return LM_EFIELD;
	}
	if ((offered_features(s) & LM_FEAT_MIXED) && !(a.features & LM_FEAT_MIXED)) {
		/* Required, so a conforming receiver refuses rather than
		 * accepts without it: codec auto would send it mixed packets. */
		lm__err_set(e, "ack.features 0x%llx lacks MIXED, which codec auto requires",
			    (unsigned long long)a.features);
		return LM_EFEATURE;
	}
	if (s->tls && !(a.features & LM_FEAT_SEALED)) {
		lm__err_set(e, "ack.features 0x%llx lacks SEALED, which TLS requires",
			    (unsigned long long)a.features);
		return LM_EFEATURE;
	}
	ch->features = a.features;
	return 0;
}

/* Waits for every channel's ack at once: a channel the receiver refused
 * reports at once, not after the others time out. */
static int await_hello_acks(lm_sender *s, int *who, lm__err *e)
{
	struct pollfd p[LM_MAX_CHANNELS + 1];
	uint32_t left = s->nch;

	for (uint32_t i = 0; i < s->nch; i++)
		p[i] = (struct pollfd){s->ch[i].conn.rfd, POLLIN, 0};
	/* The wake fd too: a cancel must not wait for a receiver that is
	 * slow to answer (or never will). */
	p[s->nch] = (struct pollfd){s->wake_fd, POLLIN, 0};
	while (left) {
		int n = 0;
		/* A TLS stream may hold an ack already decrypted (read ahead):
		 * poll would not see it. */
		for (uint32_t i = 0; i < s->nch; i++) {
			p[i].revents = 0;
			if (p[i].fd >= 0 && s->ch[i].conn.ops->pending(&s->ch[i].conn)) {
				p[i].revents = POLLIN;
				n++;
			}
		}
		p[s->nch].revents = 0;
		if (!n)
			n = poll(p, s->nch + 1, s->cfg.timeout_ms);
		if (n == 0) {
			lm__err_set(e, "no hello ack within %d ms", s->cfg.timeout_ms);
			return LM_ETIMEDOUT;
		}
		if (n < 0 && errno != EINTR)
			return -errno;
		if (p[s->nch].revents & POLLIN)
			return lm__sender_cancelled(s) ? LM_ECANCELED : -ECANCELED;
		for (uint32_t i = 0; n > 0 && i < s->nch; i++) {
			int rc;
			if (p[i].fd < 0 || !p[i].revents)
				continue;
			*who = (int)i;
			if ((rc = await_hello_ack(s, &s->ch[i], e)))
				return rc;
			p[i].fd = -1; /* poll ignores negative fds */
			left--;
		}
	}
	return 0;
}

/* ---- public API ------------------------------------------------------------ */

int lm_sender_new(lm_sender **out, const lm_sender_config *cfg)
{
	lm_sender *s;
	lm_sender_config c;
	lm__err e = {0};
	int bad;

	if (!out)
		return LM_EINVAL;
	*out = NULL;
	memset(&c, 0, sizeof(c));
	c.size = sizeof(c);
	/* The caller's struct at its size (ABI policy): an unknown size is a
	 * mistake like any other, with a handle to say it. */
	bad = cfg ? lm__abi_in(&c, sizeof(c), cfg, LM__SENDER_CONFIG_SIZE0, e.msg, sizeof(e.msg)) : 0;
	if (!c.channels)
		c.channels = LM_DEFAULT_CHANNELS;
	if (!c.page_size)
		c.page_size = LM_MIN_PAGE_SIZE;
	if (!c.packet_pages)
		c.packet_pages = LM_DEFAULT_PACKET_PAGES;
	if (c.timeout_ms <= 0)
		c.timeout_ms = LM_DEFAULT_TIMEOUT_MS;
	if (!c.busy_retries)
		c.busy_retries = 3;
	if (!bad)
		bad = lm__sender_config_check(&c, &e);
	if (bad) /* a handle all the same: its errmsg says which field */
		c = (lm_sender_config){.channels = 1, .page_size = LM_MIN_PAGE_SIZE,
				       .packet_pages = 1, .timeout_ms = LM_DEFAULT_TIMEOUT_MS};
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->wake_fd < 0) {
		free(s);
		return -errno;
	}
	s->cfg = c;
	s->page_size = c.page_size;
	s->packet_pages = c.packet_pages;
	s->nch = c.channels;
	s->is_auto = c.codec == LM_CODEC_AUTO;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->idle_cond, NULL);
	lm__sender_ctl_reset(s);
	lm__sender_publish(s, 1);
	lm__zero_init();
	*out = s;
	if (bad) {
		s->bad_config = bad;
		return lm__sender_usage(s, bad, "lm_sender_config: %s", e.msg);
	}
	return 0;
}

int lm_sender_add_region(lm_sender *s, const char *name, const void *base, uint64_t len)
{
	size_t nl = name ? strlen(name) : 0;

	if (!s)
		return LM_EINVAL;
	if (s->bad_config)
		return s->bad_config; /* errmsg: the config's mistake */
	if (nl == 0 || nl > LM_MAX_REGION_NAME)
		return lm__sender_usage(s, LM_EINVAL, "add_region: name is %zu bytes, not 1..%d", nl,
					LM_MAX_REGION_NAME);
	if (!base && len)
		return lm__sender_usage(s, LM_EINVAL, "add_region \"%s\": base is NULL, len %llu",
					name, (unsigned long long)len);
	if (len > (UINT64_MAX >> 1))
		return lm__sender_usage(s, LM_EINVAL, "add_region \"%s\": len %llu is over 2^63",
					name, (unsigned long long)len);
	if (s->ch)
		return lm__sender_usage(s, LM_ESTATE, "add_region \"%s\": after connect (the regions "
					"are announced at connect)", name);
	if (s->nregions >= LM_MAX_REGIONS)
		return lm__sender_usage(s, LM_EREGION, "add_region \"%s\": %d regions already, the most "
					"a session has", name, LM_MAX_REGIONS);
	for (uint32_t i = 0; i < s->nregions; i++)
		if (strcmp(s->regions[i].name, name) == 0)
			return lm__sender_usage(s, LM_EREGION, "add_region \"%s\": a region of that name "
						"was added already", name);
	memcpy(s->regions[s->nregions].name, name, nl + 1);
	s->regions[s->nregions].base = base;
	s->regions[s->nregions].len = len;
	s->nregions++;
	lm__sender_publish(s, 1); /* total_ram */
	return 0;
}

static void chan_free_bufs(lm__tx_chan *ch)
{
	lm__tx_codecs_free(ch);
	free(ch->pages);
	free(ch->lens);
	free(ch->hdr);
	free(ch->iov);
	free(ch->job_off);
	free(ch->plan.normal_off);
	free(ch->plan.zero_off);
	free(ch->plan.ref_off);
	free(ch->plan.delta_off);
	free(ch->plan.normal_src);
	free(ch->plan.normal_sum);
	free(ch->plan.ref_sum);
	free(ch->plan.refs);
	free(ch->plan.deltas);
	free(ch->plan.area);
	free(ch->plan.tail);
	free(ch->plan.pins);
	free(ch->plan.deps);
	free(ch->bounce);
	free(ch->ds_buf);
}

static int plan_alloc(const lm_sender *s, lm__plan *pl)
{
	uint32_t n = s->packet_pages;

	pl->normal_off = malloc(sizeof(uint64_t) * n);
	pl->zero_off = malloc(sizeof(uint64_t) * n);
	pl->ref_off = malloc(sizeof(uint64_t) * n);
	pl->delta_off = malloc(sizeof(uint64_t) * n);
	pl->normal_src = malloc(sizeof(*pl->normal_src) * n);
	pl->normal_sum = malloc(sizeof(uint64_t) * n);
	pl->ref_sum = malloc(sizeof(uint64_t) * n);
	pl->refs = malloc(sizeof(lm__ref) * n);
	pl->deltas = malloc(sizeof(lm__delta) * n);
	pl->area = malloc((size_t)n * s->page_size);
	pl->tail = malloc(s->page_size);
	pl->pins = malloc(sizeof(void *) * n);
	return !pl->normal_off || !pl->zero_off || !pl->ref_off || !pl->delta_off ||
	       !pl->normal_src || !pl->normal_sum || !pl->ref_sum || !pl->refs || !pl->deltas || !pl->area || !pl->tail || !pl->pins;
}

static int chan_alloc(lm_sender *s, lm__tx_chan *ch, uint16_t idx, lm__err *e)
{
	uint32_t n = s->packet_pages;

	ch->s = s;
	ch->idx = idx;
	ch->conn.rfd = ch->conn.wfd = -1;
	ch->conn.wake_fd = s->wake_fd;
	ch->wait_fd = -1; /* its thread opens it */
	pthread_cond_init(&ch->cond, NULL);
	/* Tables: at most 28 bytes a page (lm__rx_chan_alloc says why). */
	ch->hdr = malloc(LM_FRAME_HDR + LM_DATA_HDR + (size_t)n * LM_DATA_PAGE_TABLES);
	/* Worst case: raw and encoded pages alternate, one iovec each. */
	ch->iov = malloc(sizeof(struct iovec) * (n + 1));
	ch->pages = malloc(sizeof(void *) * n);
	ch->lens = malloc(sizeof(uint32_t) * n);
	ch->job_off = malloc(sizeof(uint64_t) * n);
	if (!ch->hdr || !ch->iov || !ch->job_off || !ch->pages || !ch->lens || plan_alloc(s, &ch->plan))
		return -ENOMEM;
	return lm__tx_codecs_open(s, ch, e);
}

/* Closes the fds of a "fd:" address that no channel took over. */
static void close_unused_fds(lm_sender *s, const lm__addr *a)
{
	for (uint32_t i = 0; i < a->nfds; i++) {
		int used = 0;
		for (uint32_t k = 0; s->ch && k < s->nch && !used; k++)
			used = s->ch[k].conn.rfd == a->fds[i];
		if (!used)
			close(a->fds[i]);
	}
}

/* Loads the TLS credentials; the peer name defaults to the address's host. */
static int tls_setup(lm_sender *s, const lm__addr *a, lm__err *e)
{
	char why[256] = "";
	const char *name = s->cfg.tls->peer_name ? s->cfg.tls->peer_name : a->host;
	int rc = lm__tls_ctx_new(&s->tls, s->cfg.tls, 0, why, sizeof(why));

	if (rc) {
		lm__err_set(e, "%s", why[0] ? why : lm_strerror(rc));
		return rc;
	}
	snprintf(s->peer_name, sizeof(s->peer_name), "%s", name);
	return 0;
}

static int sender_connect(lm_sender *s, lm__addr *a);

/* Whether connect may be called now; else the code and its message (a
 * failed connect's own message stays: it is the news). */
static int connect_state(lm_sender *s)
{
	if (s->bad_config)
		return s->bad_config;
	if (s->status == LM_STATUS_FAILED)
		return LM_ESTATE;
	if (s->ch)
		return lm__sender_usage(s, LM_ESTATE, "connect: connected already (one session a sender)");
	return 0;
}

int lm_sender_connect(lm_sender *s, const char *addr)
{
	lm__addr a;
	char why[256];
	int rc;

	if (!s)
		return LM_EINVAL;
	if ((rc = connect_state(s)))
		return rc;
	if (!addr)
		return lm__sender_usage(s, LM_EINVAL, "connect: addr is NULL");
	if ((rc = lm__addr_parse(addr, &a, why, sizeof(why)))) {
		lm__sender_error(s, rc, -1, why);
		s->status = LM_STATUS_FAILED; /* later calls say the connect failed */
		return rc;
	}
	return sender_connect(s, &a);
}

int lm_sender_connect_fds(lm_sender *s, const int *fds, uint32_t n)
{
	lm__addr a;

	memset(&a, 0, sizeof(a));
	a.ops = &lm__fd_endpoint;
	for (uint32_t i = 0; fds && i < n && i < LM_ADDR_MAX_FDS; i++)
		a.fds[a.nfds++] = fds[i];
	int rc = s ? connect_state(s) : LM_EINVAL;

	if (!rc && (!fds || !n || n > LM_ADDR_MAX_FDS))
		rc = lm__sender_usage(s, LM_EINVAL, "connect_fds: %u fds (%s), not 1..%d", n,
				      fds ? "given" : "NULL", LM_ADDR_MAX_FDS);
	if (rc) {
		for (uint32_t i = 0; i < a.nfds; i++)
			close(a.fds[i]); /* ours from the call on, also on failure */
		return rc;
	}
	return sender_connect(s, &a);
}

static int sender_connect(lm_sender *s, lm__addr *a)
{
	lm__err e = {0};
	int rc, who = -1;
	double cpu0 = lm__thread_cpu();

	if (a->nfds && a->nfds != s->nch) {
		lm__err_set(&e, "fd: %u descriptors for %u channels", a->nfds, s->nch);
		rc = LM_EINVAL;
		close_unused_fds(s, a);
		lm__sender_error(s, rc, -1, e.msg);
		return rc;
	}
	a->wake_fd = s->wake_fd; /* a cancel ends a connect in progress */
	a->has_wake = 1;
	s->t_start = lm__now_us();
	s->ch = calloc(s->nch, sizeof(*s->ch));
	if (!s->ch)
		return -ENOMEM;
	for (uint32_t i = 0; i < s->nch; i++) {
		if ((rc = chan_alloc(s, &s->ch[i], (uint16_t)i, &e)))
			goto fail;
	}
	for (uint32_t i = 0; i < s->nregions; i++) {
		lm__tx_region *g = &s->regions[i];
		if ((rc = lm__sumtree_init(&g->sum, g->base, g->len, s->page_size, NULL)))
			goto fail;
	}
	if (s->cfg.tls && (rc = tls_setup(s, a, &e)))
		goto fail;
	if (getrandom(s->session, sizeof(s->session), 0) != (ssize_t)sizeof(s->session)) {
		rc = -errno;
		goto fail;
	}
	s->session[0] |= 1; /* never all zero: the receiver refuses that */
	for (uint32_t i = 0; i < s->nch; i++) {
		who = (int)i;
		if ((rc = hello_channel(s, &s->ch[i], a, &e)))
			goto fail;
		if (i == 0 && (rc = send_regions(s, &s->ch[0], &e)))
			goto fail;
	}
	if ((rc = await_hello_acks(s, &who, &e)))
		goto fail;
	s->features = s->ch[0].features;
	for (uint32_t i = 1; i < s->nch; i++) {
		if (s->ch[i].features != s->features) {
			who = (int)i;
			lm__err_set(&e, "ack.features 0x%llx, channel 0 accepted 0x%llx",
				    (unsigned long long)s->ch[i].features,
				    (unsigned long long)s->features);
			rc = LM_EFIELD;
			goto fail;
		}
	}
	if ((rc = kinds_setup(s))) {
		lm__err_set(&e, "setting up the page index: %s", lm_strerror(rc));
		goto fail;
	}
	lm__sender_auto_start(s);
	for (uint32_t i = 0; i < s->nch; i++) {
		s->ch[i].conn.watch_in = 1;
		s->ch[i].conn.on_input = lm__sender_take_input;
		s->ch[i].conn.input_arg = &s->ch[i];
		if ((rc = -pthread_create(&s->ch[i].tid, NULL, lm__tx_chan_main, &s->ch[i]))) {
			lm__err_set(&e, "starting channel thread: %s", lm_strerror(rc));
			goto fail;
		}
		s->ch[i].started = 1;
	}
	for (uint32_t i = s->nch; s->tls && i-- > 0;) {
		int resumed; /* channel 0's own "reuse" is the external PSK, not a ticket */
		lm__tls_describe(&s->ch[i].conn, s->tls_suite, sizeof(s->tls_suite), s->tls_peer,
				 sizeof(s->tls_peer), &resumed);
		s->tls_resumed += i > 0 ? (uint32_t)resumed : 0;
	}
	stamp(s, &s->t_setup, &s->pub_t_setup);
	s->status = LM_STATUS_ACTIVE;
	s->main_cpu += lm__thread_cpu() - cpu0;
	lm__sender_publish(s, 1); /* the channel threads have no job yet */
	return 0;
fail:
	if (!e.msg[0])
		lm__err_set(&e, "%s", lm_strerror(rc));
	lm__sender_error(s, rc, who, e.msg);
	s->status = LM_STATUS_FAILED;
	close_unused_fds(s, a);
	abort_channels(s);
	s->main_cpu += lm__thread_cpu() - cpu0;
	lm__sender_publish(s, 1);
	return rc;
}

static void stop_threads(lm_sender *s)
{
	for (uint32_t i = 0; s->ch && i < s->nch; i++) {
		if (!s->ch[i].started)
			continue;
		lm__sender_post(s, &s->ch[i], LM_TX_QUIT);
		pthread_join(s->ch[i].tid, NULL);
		s->ch[i].started = 0;
	}
}

/* Tells the receiver why we stop, on every channel, then closes them. */
static void abort_channels(lm_sender *s)
{
	lm__conn *cs[LM_MAX_CHANNELS];
	uint64_t until = lm__now_us() + LM__SEND_ERROR_US; /* for all of them */
	int n = 0;

	for (uint32_t i = 0; s->ch && i < s->nch; i++) {
		if (s->ch[i].conn.wfd < 0)
			continue;
		lm__send_error(&s->ch[i].conn, s->err, (uint16_t)i, s->errmsg, until);
		cs[n++] = &s->ch[i].conn;
	}
	lm__drain_close(cs, n, 1000);
}

/* *t = now, published at once under the lock: a snapshot taken meanwhile
 * counted its time up to its own now, which must not pass *t. */
static void stamp(lm_sender *s, uint64_t *t, uint64_t *pub)
{
	pthread_mutex_lock(&s->lock);
	*t = *pub = lm__now_us();
	pthread_mutex_unlock(&s->lock);
}

int lm__sender_finish(lm_sender *s, int rc)
{
	stamp(s, &s->t_end, &s->pub_t_end);
	stop_threads(s);
	if (rc) {
		lm__sender_error(s, rc, -1, lm_strerror(rc)); /* kept if one is recorded */
		s->status = LM_STATUS_FAILED;
		abort_channels(s);
		lm__sender_publish(s, 1); /* threads joined: the counters are final */
		return s->err ? s->err : rc;
	}
	s->status = LM_STATUS_COMPLETED;
	for (uint32_t i = 0; i < s->nch; i++) {
		/* FEEDBACK the receiver wrote after a channel's last packet,
		 * before its verified reply: taken, so both sides count the
		 * same bytes and no unread input turns the close into a reset. */
		s->ch[i].conn.timeout_ms = 200; /* what is left: a frame in flight */
		s->ch[i].conn.deadline_us = lm__now_us() + 200000u;
		(void)lm__sender_take_input(&s->ch[i].conn, &s->ch[i]);
		lm__conn_close(&s->ch[i].conn);
	}
	lm__sender_publish(s, 1);
	return 0;
}

int lm__sender_set_live(lm_sender *s)
{
	for (uint32_t i = 0; i < s->nch; i++) {
		lm__tx_chan *ch = &s->ch[i];
		if (!ch->enc || ch->bounce) /* raw only: nothing to encode */
			continue;
		ch->bounce = malloc((size_t)s->packet_pages * s->page_size);
		if (!ch->bounce)
			return -ENOMEM;
	}
	/* The workload writes the regions while channels read them: the
	 * race live migration is made of (a page written meanwhile is dirty
	 * and sent again). livemig never writes them, so no race of its own
	 * hides here. */
	for (uint32_t i = 0; i < s->nregions; i++)
		lm__tsan_benign(s->regions[i].base, s->regions[i].len,
				"live: the workload writes pages the sender reads");
	s->live = 1;
	return 0;
}

void lm__sender_fail(lm_sender *s, int code, const char *msg)
{
	lm__sender_error(s, code, -1, msg);
}

void lm__sender_counts(const lm_sender *s, uint64_t *normal, uint64_t *zero)
{
	*normal = *zero = 0;
	/* Ref and delta pages are pages moved too: counted as normal, a
	 * round of deltas measures a high page rate, as it should. */
	for (uint32_t i = 0; i < s->nch; i++) {
		*normal += s->ch[i].normal_pages + s->ch[i].plan.ref_pages + s->ch[i].plan.delta_pages;
		*zero += s->ch[i].zero_pages;
	}
}

int lm_sender_run(lm_sender *s)
{
	int rc;
	double cpu0 = lm__thread_cpu();

	if (!s)
		return LM_EINVAL;
	if ((rc = lm__sender_run_state(s, "run")))
		return rc;
	rc = lm__sender_send_all(s);
	if (!rc)
		rc = lm__sender_devstate(s);
	if (!rc)
		rc = lm__sender_sync(s);
	if (!rc)
		rc = lm__sender_complete(s);
	s->main_cpu += lm__thread_cpu() - cpu0;
	return lm__sender_finish(s, rc);
}

int lm__sender_run_state(lm_sender *s, const char *call)
{
	if (s->bad_config)
		return s->bad_config;
	if (s->status == LM_STATUS_FAILED)
		return LM_ESTATE; /* errmsg: why it failed */
	if (!s->ch || s->status == LM_STATUS_NONE)
		return lm__sender_usage(s, LM_ESTATE, "%s: not connected (lm_sender_connect first)", call);
	if (s->status != LM_STATUS_ACTIVE || s->live)
		return lm__sender_usage(s, LM_ESTATE, "%s: this sender migrated already (one migration a "
					"sender)", call);
	return 0;
}

const char *lm_sender_errmsg(const lm_sender *s)
{
	return s ? s->errmsg : "";
}

void lm_sender_free(lm_sender *s)
{
	if (!s)
		return;
	stop_threads(s);
	for (uint32_t i = 0; s->ch && i < s->nch; i++) {
		lm__conn_close(&s->ch[i].conn);
		chan_free_bufs(&s->ch[i]);
		pthread_cond_destroy(&s->ch[i].cond);
	}
	free(s->ch);
	lm__dedup_free(s->kinds.dedup);
	lm__dcache_free(s->kinds.dcache);
	free(s->kinds.zsent);
	lm__tls_ctx_free(s->tls);
	for (uint32_t i = 0; i < s->nregions; i++)
		lm__sumtree_free(&s->regions[i].sum);
	pthread_cond_destroy(&s->idle_cond);
	pthread_mutex_destroy(&s->lock);
	close(s->wake_fd);
	free(s);
}

int lm_sender_cancel(lm_sender *s)
{
	uint64_t one = 1;

	if (!s)
		return LM_EINVAL;
	/* Only an atomic store and a write(2): both async-signal-safe. Every
	 * wait of the run polls wake_fd or checks the flag (lm__sender_cancelled). */
	__atomic_store_n(&s->cancelled, 1, __ATOMIC_SEQ_CST);
	if (write(s->wake_fd, &one, sizeof(one)) < 0) {
		/* an eventfd counter cannot overflow here */
	}
	return 0;
}

int lm__sender_cancelled(lm_sender *s)
{
	if (!__atomic_load_n(&s->cancelled, __ATOMIC_SEQ_CST))
		return 0;
	lm__sender_error(s, LM_ECANCELED, -1, "cancelled by the application");
	return LM_ECANCELED;
}
