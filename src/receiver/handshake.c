/*
 * Receiver handshake: a connection's hello (read, checked against TLS's
 * binding, joined to the session or refused), channel 0's regions bound to
 * the destination memory, and the ack once every channel is there, after
 * which a TLS channel speaks sealed records. Called from the connection's
 * slot thread (session.c); nothing here is used before src/wire.c checked it.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "checksum.h"
#include "receiver/receiver.h"
#include "zero.h"

lm__rx_region *lm__rx_find_user_region(lm_receiver *r, const char *name)
{
	for (uint32_t i = 0; i < r->nuser; i++)
		if (strcmp(r->regions[i].name, name) == 0)
			return &r->regions[i];
	return NULL;
}

/* alloc_regions: anonymous memory, zero until written, so zero pages are
 * not touched and the pages never sent cost nothing. cfg.huge_pages asks
 * for transparent huge pages (one fault per 2 MiB instead of 512; a range
 * with any page sent is then resident in full, within the announced
 * size). Not the default: on the development VM they were slower
 * (docs/benchmarks.md, "Receiver on fast links"). */
static int map_region(lm__rx_region *g, uint64_t len, int huge)
{
	void *p;

	if (!len)
		return 0;
	if (len > SIZE_MAX)
		return -ENOMEM;
	p = mmap(NULL, (size_t)len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		 -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	if (huge)
		madvise(p, (size_t)len, MADV_HUGEPAGE); /* advice: EINVAL without THP */
	g->mapped = p;
	g->mapped_len = len;
	return 0;
}

void lm__rx_unmap_region(lm__rx_region *g)
{
	if (g->mapped)
		munmap(g->mapped, (size_t)g->mapped_len);
	g->mapped = NULL;
	g->mapped_len = 0;
}

static int bind_region(lm_receiver *r, const lm__region_msg *m, lm__err *e)
{
	lm__rx_region *g = lm__rx_find_user_region(r, m->name);
	uint64_t pages = (m->len + r->page_size - 1) / r->page_size;
	char name[96]; /* the sender's name, only ever shown escaped */

	lm__escape(name, sizeof(name), m->name, m->name_len);

	for (uint32_t i = 0; i < m->id; i++) {
		if (strcmp(r->by_id[i]->name, m->name) == 0) {
			lm__err_set(e, "region.name \"%s\" announced twice", name);
			return LM_EFIELD;
		}
	}
	if (g) {
		if (g->len != m->len) {
			lm__err_set(e, "region \"%s\": sender has %llu bytes, receiver %llu", name,
				    (unsigned long long)m->len, (unsigned long long)g->len);
			return LM_EREGION;
		}
	} else {
		void *base = NULL;
		int fresh = 0, rc = 0;
		if (!r->cfg.on_region && !r->cfg.alloc_regions) {
			lm__err_set(e, "region \"%s\" is not registered here", name);
			return LM_EREGION;
		}
		g = &r->regions[LM_MAX_REGIONS + m->id];
		if (r->cfg.on_region)
			rc = r->cfg.on_region(r->cfg.user, m->id, m->name, m->len, r->page_size,
					      &base, &fresh);
		else if ((rc = map_region(g, pages * r->page_size, r->cfg.huge_pages)) == 0)
			base = g->mapped, fresh = 1;
		if (rc || (!base && m->len)) {
			lm__err_set(e, "region \"%s\" (%llu bytes) refused: %s", name,
				    (unsigned long long)m->len, lm_strerror(rc ? rc : LM_EREGION));
			return rc ? rc : LM_EREGION;
		}
		snprintf(g->name, sizeof(g->name), "%s", m->name);
		g->base = base;
		g->len = m->len;
		g->fresh = fresh;
	}
	g->announced = 1;
	g->id = m->id;
	if (!g->user_added && r->cfg.reserve &&
	    !(g->reserved = calloc(pages * r->page_size / LM__RESERVE_CHUNK + 1, 1)))
		return -ENOMEM;
	g->claimed = calloc(pages / 64 + 1, sizeof(uint64_t));
	if (!g->claimed)
		return -ENOMEM;
	if (r->features & (LM_FEAT_REF | LM_FEAT_DELTA)) {
		g->landed = calloc(pages ? pages : 1, sizeof(uint32_t));
		g->pinned = calloc(pages / 64 + 1, sizeof(uint64_t));
		if (!g->landed || !g->pinned)
			return -ENOMEM;
	}
	if (g->fresh) {
		g->written = calloc(pages / 64 + 1, sizeof(uint64_t));
		if (!g->written)
			return -ENOMEM;
	}
	if (lm__sumtree_init(&g->sum, g->base, g->len, r->page_size, g->written))
		return -ENOMEM;
	r->by_id[m->id] = g;
	r->region_len[m->id] = m->len;
	return 0;
}

/* Channel 0 announces the regions right after its hello. */
int lm__rx_read_regions(lm__rx_chan *ch, lm__err *e)
{
	lm_receiver *r = ch->r;
	uint8_t b[LM_REGION_FIXED + LM_MAX_REGION_NAME];
	uint64_t announced = 0;

	for (uint32_t i = 0; i < r->region_count; i++) {
		lm__frame f;
		lm__region_msg m;
		int rc = lm__read_frame(&ch->conn, &f, r->page_size, r->packet_pages, e);
		if (rc)
			return rc;
		if (f.kind != LM_KIND_REGION) {
			lm__err_set(e, "expected region %u of %u, got %s", i, r->region_count,
				    lm__kind_name(f.kind));
			return LM_EKIND;
		}
		if ((rc = lm__read_full(&ch->conn, b, f.len))) {
			lm__err_read(e, &ch->conn, "region", rc);
			return rc;
		}
		if ((rc = lm__dec_region(b, f.len, &m, e)))
			return rc;
		if (m.id != i) {
			lm__err_set(e, "region.id %u, expected %u", m.id, i);
			return LM_EFIELD;
		}
		/* Before anything is allocated or the callback runs: nothing
		 * proportional to an announced size exists past the limit. */
		announced += m.len;
		if (r->cfg.max_bytes && (m.len > r->cfg.max_bytes || announced > r->cfg.max_bytes)) {
			char name[4 * LM_MAX_REGION_NAME + 1];
			lm__escape(name, sizeof(name), m.name, m.name_len);
			lm__err_set(e, "region.len: region \"%.80s\" (%llu bytes) brings the session to "
				       "%llu bytes, above this receiver's limit of %llu",
				    name, (unsigned long long)m.len, (unsigned long long)announced,
				    (unsigned long long)r->cfg.max_bytes);
			return LM_ELIMIT;
		}
		if ((rc = bind_region(r, &m, e)))
			return rc;
	}
	for (uint32_t i = 0; i < r->nuser; i++) {
		if (!r->regions[i].announced) {
			lm__err_set(e, "region \"%s\" registered here but not sent", r->regions[i].name);
			return LM_EREGION;
		}
	}
	return 0;
}

/* Adopts the first valid hello as the session; later ones must match it.
 * Returns 0 when ch becomes channel h->channel, >0 to refuse only this
 * connection (the session goes on), <0 to fail the session. */
/* A later channel's hello must describe the session channel 0 opened. */
static int same_shape(const lm_receiver *r, const lm__hello *h, lm__err *e)
{
	const char *f = h->channels != r->channels         ? "channels"
			: h->page_size != r->page_size       ? "page_size"
			: h->packet_pages != r->packet_pages ? "packet_pages"
			: h->codec != r->codec               ? "codec"
			: h->region_count != r->region_count ? "region_count"
			: lm__hello_features(h) != r->features ? "features"
							       : NULL;

	if (!f)
		return 0;
	lm__err_set(e, "hello.%s differs from channel 0's", f);
	return LM_EFIELD;
}

/* Under TLS the session is channel 0's: its hello must carry its own
 * connection's binding (so it was made for this handshake, not replayed or
 * relayed from another), and the other channels carry that same value. A
 * channel whose hello overtook channel 0's waits for it. */
int lm__rx_check_binding(lm__rx_chan *ch, const lm__hello *h, lm__err *e)
{
	lm_receiver *r = ch->r;
	uint8_t b[16];
	int rc, have;

	if (!r->tls)
		return 0;
	if (h->channel == 0) {
		if ((rc = lm__tls_binding(&ch->conn, b)))
			return rc;
		if (memcmp(b, h->session, 16)) {
			lm__err_set(e, "hello.session is not bound to this TLS connection: refused");
			return LM_EAUTH;
		}
		return 0;
	}
	pthread_mutex_lock(&r->lock);
	while (!(have = r->have_session) && !r->err && lm__now_us() < ch->conn.deadline_us) {
		struct timespec ts = lm__rx_deadline(20);
		pthread_cond_timedwait(&r->cond, &r->lock, &ts);
	}
	pthread_mutex_unlock(&r->lock);
	if (!have) {
		lm__err_set(e, "hello.channel %u before channel 0 opened a session: refused",
			    h->channel);
		return LM_ESESSION;
	}
	return 0;
}

/* Under TLS every channel is the same client as channel 0: its
 * certificate (not its subject: two certificates of one CA may carry the
 * same), or its PSK identity where the receiver takes several. */
static int same_peer(lm__rx_chan *ch, lm__err *e)
{
	const lm_receiver *r = ch->r;
	char suite[64], peer[128];
	uint8_t md[32];
	int resumed;

	if (!r->tls_known)
		return 0;
	if (lm__tls_peer_digest(&ch->conn, md) || memcmp(md, r->tls_peer_md, 32)) {
		lm__tls_describe(&ch->conn, suite, sizeof(suite), peer, sizeof(peer), &resumed);
		lm__err_set(e, "TLS peer %.127s: not channel 0's %s: refused",
			    peer[0] ? peer : "(none)",
			    strncmp(r->tls_peer, "psk:", 4) ? "certificate" : "PSK identity");
		return 1;
	}
	return 0;
}

/* Returns 0 when ch is a session channel now, > 0 to refuse a stranger
 * (LM_ESESSION to it), < 0 with *ours = 0 to refuse it with that code, < 0
 * with *ours = 1 when the session's own sender is wrong: that is fatal. */
int lm__rx_join_session(lm__rx_chan *ch, const lm__hello *h, int *ours, lm__err *e)
{
	lm_receiver *r = ch->r;
	int rc = 0;

	*ours = 0;
	pthread_mutex_lock(&r->lock);
	if (!r->have_session && r->tls && h->channel != 0) {
		lm__err_set(e, "hello.channel %u before channel 0: refused", h->channel);
		rc = 1;
		goto out;
	}
	if (!r->have_session) {
		if (h->channels > r->cfg.max_channels) {
			lm__err_set(e, "hello.channels %u above this receiver's limit %u", h->channels,
				    r->cfg.max_channels);
			rc = LM_EFIELD;
			goto out;
		}
		if ((rc = lm__rx_devstate_hello(r, h, e)))
			goto out;
		r->have_session = 1;
		r->t_start = lm__now_us(); /* the session's clock starts here */
		memcpy(r->session, h->session, 16);
		r->channels = h->channels;
		r->page_size = h->page_size;
		r->packet_pages = h->packet_pages;
		r->codec = h->codec;
		r->region_count = h->region_count;
		r->features = lm__hello_features(h);
		int first; /* channel 0's own "reuse" is the external PSK, not a ticket */
		lm__tls_describe(&ch->conn, r->tls_suite, sizeof(r->tls_suite), r->tls_peer,
				 sizeof(r->tls_peer), &first);
		r->tls_known = !lm__tls_peer_digest(&ch->conn, r->tls_peer_md);
	} else if (memcmp(r->session, h->session, 16)) {
		lm__err_set(e, "hello.session belongs to another migration: refused");
		rc = 1;
		goto out;
	} else if ((rc = same_peer(ch, e)) || (rc = same_shape(r, h, e))) {
		*ours = rc < 0; /* it carries the session's id */
		goto out;
	} else {
		char suite[64], peer[128];
		int resumed;
		lm__tls_describe(&ch->conn, suite, sizeof(suite), peer, sizeof(peer), &resumed);
		r->tls_resumed += (uint32_t)resumed;
	}
	if (r->chan[h->channel]) {
		lm__err_set(e, "hello.channel %u is already connected: refused", h->channel);
		rc = 1;
		goto out;
	}
	r->chan[h->channel] = ch;
	ch->channel = h->channel;
	ch->in_handshake = 0; /* a session channel now: out of the strangers' pool */
	r->connected++;
	pthread_cond_broadcast(&r->cond);
out:
	pthread_mutex_unlock(&r->lock);
	return rc;
}

static int send_hello_ack(lm__rx_chan *ch, lm__err *e)
{
	uint8_t b[LM_FRAME_HDR + LM_ACK_LEN];
	lm__ack a;
	int rc;

	memset(&a, 0, sizeof(a));
	a.kind = LM_KIND_HELLO;
	a.features = ch->r->features; /* every known one it offered */
	memcpy(a.session, ch->r->session, 16);
	rc = lm__write_full(&ch->conn, b, lm__enc_ack(b, &a));
	if (rc)
		lm__err_set(e, "sending hello ack: %s", lm_strerror(rc));
	/* The ack was our last TLS record on this channel (SEALED, which
	 * read_hello required under TLS). */
	else if (ch->conn.tls && (rc = lm__tls_seal(&ch->conn, 0)))
		lm__err_set(e, "TLS: starting sealed records: %s", lm_strerror(rc));
	return rc;
}

/* Before the ack the sender sends nothing more on this channel, so bytes
 * or a close here mean it gave up (an ERROR frame, usually): fail the
 * session now rather than at the timeout. */
static int watch_while_waiting(lm__rx_chan *ch, lm__err *e)
{
	struct pollfd p = {ch->conn.rfd, POLLIN, 0};
	lm__error_msg m;
	lm__frame f;
	int rc;

	if (!ch->conn.ops->pending(&ch->conn) && poll(&p, 1, 0) <= 0)
		return 0;
	rc = lm__read_frame(&ch->conn, &f, LM_MIN_PAGE_SIZE, 1, e);
	if (rc)
		return rc;
	if (f.kind != LM_KIND_ERROR) {
		lm__err_set(e, "frame.kind %s before the hello was acknowledged",
			    lm__kind_name(f.kind));
		return LM_EKIND;
	}
	rc = lm__read_error_body(&ch->conn, &f, &m, e);
	if (rc)
		return rc;
	lm__err_set(e, "sender reported: %s (%s)", m.msg, lm_strerror(m.code));
	return LM_EPEER;
}

/* Waits for all channels and the regions, then acknowledges the hello. */
int lm__rx_wait_session_ready(lm__rx_chan *ch, lm__err *e)
{
	lm_receiver *r = ch->r;
	int rc = 0;

	pthread_mutex_lock(&r->lock);
	while (!r->err && !(r->connected == r->channels && r->regions_ready)) {
		struct timespec ts = lm__rx_deadline(50);
		pthread_cond_timedwait(&r->cond, &r->lock, &ts);
		pthread_mutex_unlock(&r->lock);
		rc = watch_while_waiting(ch, e);
		pthread_mutex_lock(&r->lock);
		if (rc)
			break;
	}
	if (!rc)
		rc = r->err;
	if (!r->t_setup && !rc)
		r->t_setup = lm__now_us();
	pthread_mutex_unlock(&r->lock);
	if (rc)
		return rc;
	return send_hello_ack(ch, e);
}

int lm__rx_read_hello(lm__rx_chan *ch, lm__hello *h, lm__err *e)
{
	uint8_t b[LM_HELLO_LEN];
	lm__frame f;
	int rc = lm__read_frame(&ch->conn, &f, LM_MIN_PAGE_SIZE, 1, e);

	if (rc)
		return rc;
	if (f.kind == LM_KIND_ERROR && ch->conn.tls) {
		/* A sender that gave up on us right after the TLS handshake
		 * (our certificate is not the one it pinned) says why. */
		lm__error_msg m;
		if (lm__read_error_body(&ch->conn, &f, &m, e) == 0)
			lm__err_set(e, "the sender gave up: %s", m.msg);
		return LM_EPEER;
	}
	if (f.kind != LM_KIND_HELLO) {
		lm__err_set(e, "first frame is %s, expected hello", lm__kind_name(f.kind));
		return LM_EKIND;
	}
	if ((rc = lm__read_full(&ch->conn, b, f.len))) {
		lm__err_read(e, &ch->conn, "hello", rc);
		return rc;
	}
	if ((rc = lm__dec_hello(b, f.len, h, e)))
		return rc;
	/* Sealed records need the TLS exporter: required under TLS (the data
	 * phase never falls back to TLS records), impossible without. */
	if (ch->conn.tls && !(h->required & LM_FEAT_SEALED)) {
		lm__err_set(e, "hello.required lacks SEALED, which TLS requires");
		return LM_EFEATURE;
	}
	if (!ch->conn.tls && (lm__hello_features(h) & LM_FEAT_SEALED)) {
		lm__err_set(e, "hello.features has SEALED, which needs TLS: this receiver is plaintext");
		return LM_EFEATURE;
	}
	return 0;
}

