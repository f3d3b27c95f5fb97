/*
 * Receiver session: a network server that accepts one migration session.
 * Each accepted connection gets a thread that reads its hello; once the
 * session's channels are all connected and channel 0 has announced the
 * regions, every channel runs its data loop (channel.c). Nothing read from
 * the network is used before it is checked (src/wire.c); any violation fails
 * the session with an error naming the channel and the field, and an error
 * frame goes back to the sender. This file owns accepting (strangers and
 * their limits), failure and the public lm_receiver_* calls; handshake.c
 * reads and checks a connection's hello and channel 0's regions.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "abi.h"
#include "checksum.h"
#include "config.h"
#include "receiver/receiver.h"
#include "stats.h"
#include "zero.h"

/* ---- failure ------------------------------------------------------------- */

void lm__rx_wake(lm_receiver *r)
{
	uint64_t one = 1;

	if (r->wake_fd >= 0 && write(r->wake_fd, &one, sizeof(one)) < 0) {
		/* eventfd counter cannot overflow with one write per failure */
	}
}

/* Records the first failure and wakes every thread of the session. */
void lm__rx_fail(lm_receiver *r, int code, int channel, const char *msg)
{
	pthread_mutex_lock(&r->lock);
	if (!r->err && __atomic_load_n(&r->cancelled, __ATOMIC_SEQ_CST)) {
		/* Whatever failed first failed because of the cancel. */
		r->err = LM_ECANCELED;
		snprintf(r->errmsg, sizeof(r->errmsg), "cancelled by the application");
	} else if (!r->err) {
		r->err = code;
		if (channel >= 0)
			snprintf(r->errmsg, sizeof(r->errmsg), "channel %d: %s", channel, msg);
		else
			snprintf(r->errmsg, sizeof(r->errmsg), "%s", msg);
	}
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	lm__rx_wake(r);
}

/* ---- strangers ------------------------------------------------------------ */

/* One line to the application's log, made printable: peer-chosen bytes
 * (names, messages) cannot forge lines or send terminal escapes. */
void lm__rx_log(lm_receiver *r, const char *fmt, ...)
{
	char raw[512], line[1024];
	size_t n = 0;
	va_list ap;

	if (!r->cfg.log)
		return;
	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	for (const unsigned char *p = (const unsigned char *)raw; *p && n + 5 < sizeof(line); p++)
		n += (size_t)snprintf(line + n, sizeof(line) - n,
				      *p >= 0x20 && *p < 0x7f ? "%c" : "\\x%02x", *p);
	line[n] = 0;
	pthread_mutex_lock(&r->log_lock);
	r->cfg.log(r->cfg.user, line);
	pthread_mutex_unlock(&r->log_lock);
}

/* Counts a refusal and keeps its reason for out_of_time; under r->lock. */
static void note_refusal(lm_receiver *r, const char *peer, const char *why)
{
	r->refused++;
	snprintf(r->last_refusal, sizeof(r->last_refusal), "%s: %s", peer, why);
}

/* A connection that is not (or not yet provably) the sender is closed with
 * one log line; the session, or the wait for it, goes on. tell: send the
 * reason in an ERROR frame first (not after a failed TLS handshake, where
 * OpenSSL has sent its alert). */
static void refuse(lm__rx_chan *ch, int rc, const char *why, int tell)
{
	lm_receiver *r = ch->r;
	int evicted;

	pthread_mutex_lock(&r->lock);
	ch->in_handshake = 0; /* the accept loop no longer touches its fd */
	ch->closing = 1;      /* but counts it until it is closed */
	evicted = ch->evicted;
	if (evicted)
		why = "evicted: too many connections in their handshake";
	note_refusal(r, ch->peer, why);
	pthread_mutex_unlock(&r->lock);
	lm__rx_log(r, "refused %s: %s", ch->peer, why);
	if (tell && !evicted) {
		lm__send_error_and_close(&ch->conn, rc > 0 ? LM_ESESSION : rc, 0, why);
		return;
	}
	ch->conn.deadline_us = 0;
	ch->conn.ops->shutdown(&ch->conn);
	lm__drain_close((lm__conn *[]){&ch->conn}, 1, 500);
}

/* Under TLS nothing of the session is read before the peer proved who it
 * is; the whole handshake, TLS and hello (and channel 0's regions), must
 * finish within the handshake timeout, so a slow trickle cannot hold a
 * slot (a per-read timeout could be reset forever). */
static int authenticate(lm__rx_chan *ch, lm__err *e)
{
	lm_receiver *r = ch->r;
	char why[256] = "";
	int rc;

	ch->conn.deadline_us = lm__now_us() + (uint64_t)r->cfg.handshake_timeout_ms * 1000u;
	if (!r->tls)
		return 0;
	rc = lm__tls_server(r->tls, &ch->conn, why, sizeof(why));
	if (rc)
		lm__err_set(e, "%s", why);
	return rc;
}

static void *slot_main(void *arg)
{
	lm__rx_chan *ch = arg;
	lm_receiver *r = ch->r;
	double cpu0 = lm__thread_cpu();
	lm__err e = {0};
	lm__hello h;
	int rc, authed = 0;

	int ours = 0; /* the hello carried the session's id: a bad one is fatal */

	rc = authenticate(ch, &e);
	/* Refused after a finished handshake (pin, allowed names): the
	 * peer is told why, over TLS. */
	authed = rc == 0 || (rc == LM_EAUTH && ch->conn.tls);
	if (!rc)
		rc = lm__rx_read_hello(ch, &h, &e);
	if (!rc)
		rc = lm__rx_check_binding(ch, &h, &e);
	if (!rc)
		rc = lm__rx_join_session(ch, &h, &ours, &e);
	if (rc && ch->channel < 0) {
		if (rc == LM_ETIMEDOUT && lm__now_us() >= ch->conn.deadline_us)
			lm__err_set(&e, "handshake not done within the handshake timeout (%d ms)",
				    r->cfg.handshake_timeout_ms);
		if (!e.msg[0])
			lm__err_set(&e, "%s", lm_strerror(rc));
		if (rc == -ECANCELED) {
			/* The session ended while this hello was pending: a
			 * stranger after success is just closed; after a
			 * failure the peer learns that it ended and the code,
			 * not the message, which may name other peers (the
			 * accept timeout's last refusal). The sender's own
			 * channel 0 had the message. */
			pthread_mutex_lock(&r->lock);
			int err = r->err;
			ch->in_handshake = 0;
			pthread_mutex_unlock(&r->lock);
			lm__err_set(&e, "the session ended: %s", lm_strerror(err));
			if (!err) {
				lm__conn_close(&ch->conn);
				goto out;
			}
			lm__send_error_and_close(&ch->conn, err, 0, e.msg);
			goto out;
		}
		if (ours) {
			/* cppcheck-suppress uninitStructMember ; ours is set
			 * only by join_session, after read_hello filled h */
			lm__rx_fail(r, rc, h.channel, e.msg);
			pthread_mutex_lock(&r->lock);
			ch->in_handshake = 0;
			pthread_mutex_unlock(&r->lock);
			lm__send_error_and_close(&ch->conn, rc, 0, e.msg);
			goto out;
		}
		refuse(ch, rc, e.msg, authed);
		goto out;
	}
	if (rc)
		goto fail;
	if (ch->channel == 0) {
		if ((rc = lm__rx_chan_alloc(ch))) {
			lm__codec_unavailable(&e, r->codec, r->cfg.accel, rc);
			goto fail;
		}
		if ((rc = lm__rx_read_regions(ch, &e)))
			goto fail;
		pthread_mutex_lock(&r->lock);
		r->regions_ready = 1;
		pthread_cond_broadcast(&r->cond);
		pthread_mutex_unlock(&r->lock);
	} else if ((rc = lm__rx_chan_alloc(ch))) {
		lm__codec_unavailable(&e, r->codec, r->cfg.accel, rc);
		goto fail;
	}
	ch->conn.deadline_us = 0; /* the session's own timeouts from here */
	if ((rc = lm__rx_wait_session_ready(ch, &e)))
		goto fail;
	if ((rc = lm__rx_data_loop(ch, &e)))
		goto fail;
	goto out;
fail:
	if (!e.msg[0])
		lm__err_set(&e, "%s", lm_strerror(rc));
	lm__rx_fail(r, rc, ch->channel, e.msg);
out:
	ch->cpu = lm__thread_cpu() - cpu0;
	pthread_mutex_lock(&r->lock);
	lm__rx_publish(ch); /* final: the run thread joins us next */
	ch->exited = 1;
	ch->closing = 0;
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

/* ---- accept loop ------------------------------------------------------------ */

/* Under r->lock: the oldest connection still in its handshake, from host
 * (NULL: any), at least min_age_us old; NULL if none. */
static lm__rx_chan *oldest_handshake(lm_receiver *r, const char *host, uint64_t min_age_us,
				     uint32_t *count)
{
	uint64_t now = lm__now_us();
	lm__rx_chan *old = NULL;

	*count = 0;
	for (int i = 0; i < LM_RX_SLOTS; i++) {
		lm__rx_chan *c = &r->slots[i];
		if (!c->slot_used || !(c->in_handshake || c->closing) || (host && strcmp(c->host, host)))
			continue;
		(*count)++; /* closing ones too: a flood of refusals waits in the backlog */
		if (c->in_handshake && !c->evicted && now - c->t_accept >= min_age_us &&
		    (!old || c->t_accept < old->t_accept))
			old = c;
	}
	return old;
}

/* Under r->lock. Its thread sees its connection end and refuses it; the fd
 * stays its thread's to close (in_handshake keeps it open until then). */
static void evict(lm__rx_chan *c)
{
	c->evicted = 1;
	shutdown(c->conn.rfd, SHUT_RDWR);
}

/* A real sender's handshake takes a few round trips: one stalled longer is
 * the first to go when the handshakes are full. */
#define LM_RX_EVICT_AGE_US 2000000u

/* Whether to accept one more connection now: below the cap, or the oldest
 * handshake is old enough to make room for it. Connections not accepted
 * wait in the kernel's backlog, where they cost us nothing. */
static int handshake_room(lm_receiver *r)
{
	uint32_t n;
	lm__rx_chan *old;
	int room;

	pthread_mutex_lock(&r->lock);
	old = oldest_handshake(r, NULL, LM_RX_EVICT_AGE_US, &n);
	room = n < r->cfg.max_handshakes;
	if (!room && old) {
		evict(old);
		room = 1;
	}
	pthread_mutex_unlock(&r->lock);
	return room;
}

static int start_slot(lm_receiver *r, int fd)
{
	lm__rx_chan *ch = NULL, *old;
	char peer[sizeof(ch->peer)], host[sizeof(ch->host)];
	uint32_t same;
	int reap = 0;

	r->ep->peer(fd, peer, sizeof(peer), host, sizeof(host));
	/* A slot whose connection was refused is free again once its thread
	 * is joined: strangers cannot use up the slots of late channels. An
	 * address over its share of the handshakes gives up its own oldest
	 * stalled one first, not another address's; young ones are never
	 * evicted (a sender connects its channels in a burst). */
	pthread_mutex_lock(&r->lock);
	old = oldest_handshake(r, host, LM_RX_EVICT_AGE_US, &same);
	if (same >= r->cfg.max_handshakes_per_host && old)
		evict(old);
	for (int i = 0; i < LM_RX_SLOTS && !ch; i++) {
		lm__rx_chan *c = &r->slots[i];
		if (!c->slot_used || (c->exited && c->channel < 0 && !c->in_handshake)) {
			ch = c;
			reap = c->slot_used;
			c->slot_used = 1;
		}
	}
	pthread_mutex_unlock(&r->lock);
	if (ch && reap) {
		pthread_join(ch->tid, NULL);
		lm__rx_chan_free(ch);
	}
	if (!ch) {
		const char *why = "every connection slot is taken";
		close(fd);
		pthread_mutex_lock(&r->lock);
		note_refusal(r, peer, why);
		pthread_mutex_unlock(&r->lock);
		lm__rx_log(r, "refused %s: %s", peer, why);
		return 0;
	}
	lm__conn_init(&ch->conn, fd, r->cfg.timeout_ms);
	ch->conn.wake_fd = r->wake_fd;
	ch->r = r;
	ch->channel = -1;
	memcpy(ch->peer, peer, sizeof(peer));
	memcpy(ch->host, host, sizeof(host));
	pthread_mutex_lock(&r->lock);
	memset(&ch->pub, 0, sizeof(ch->pub));
	ch->pub.channel = -1;
	ch->t_pub_ns = 0;
	ch->exited = 0;
	ch->evicted = 0;
	ch->closing = 0;
	ch->in_handshake = 1;
	ch->t_accept = lm__now_us();
	pthread_mutex_unlock(&r->lock);
	if (pthread_create(&ch->tid, NULL, slot_main, ch)) {
		lm__conn_close(&ch->conn);
		pthread_mutex_lock(&r->lock);
		ch->in_handshake = 0;
		ch->slot_used = 0;
		pthread_mutex_unlock(&r->lock);
		return -EAGAIN;
	}
	return 1;
}

static int session_over(lm_receiver *r)
{
	int over;

	pthread_mutex_lock(&r->lock);
	over = r->err || r->finishing;
	pthread_mutex_unlock(&r->lock);
	return over;
}

/* The receiver's clocks: the wait for a sender, for all of its channels,
 * and the whole session. Returns 1 when one ran out (recorded). */
static int out_of_time(lm_receiver *r, uint64_t accept_deadline)
{
	uint64_t now, started;
	int have, waiting;

	pthread_mutex_lock(&r->lock);
	have = r->have_session;
	started = r->t_start;
	waiting = have && r->connected < r->channels;
	pthread_mutex_unlock(&r->lock);
	/* Read after t_start: a hello landing between a clock read taken
	 * earlier and the lock made now - started wrap around, and the
	 * channels time out the instant the session began. */
	now = lm__now_us();
	/* Probes and strangers do not count: only a session stops the
	 * accept timeout. */
	if (!have && accept_deadline && now > accept_deadline) {
		char m[448] = "no sender connected before the accept timeout";
		/* Only now, not at every tick: the refusals, for the message. */
		pthread_mutex_lock(&r->lock);
		if (r->refused)
			snprintf(m, sizeof(m),
				 "no sender connected before the accept timeout (%llu refused, the last %s)",
				 (unsigned long long)r->refused, r->last_refusal);
		pthread_mutex_unlock(&r->lock);
		lm__rx_fail(r, LM_ETIMEDOUT, -1, m);
		return 1;
	}
	if (waiting && now - started > (uint64_t)r->cfg.timeout_ms * 1000u) {
		lm__rx_fail(r, LM_ETIMEDOUT, -1, "not all channels connected within the timeout");
		return 1;
	}
	if (have && r->cfg.session_timeout_ms > 0 &&
	    now - started > (uint64_t)r->cfg.session_timeout_ms * 1000u) {
		char m[128];
		snprintf(m, sizeof(m), "the session ran past its deadline (%d ms)",
			 r->cfg.session_timeout_ms);
		lm__rx_fail(r, LM_ETIMEDOUT, -1, m);
		return 1;
	}
	return 0;
}

/* Accepts connections until the session ends; a session whose channels do
 * not all arrive within the timeout fails. */
/* The progress callback, on the run thread: every progress_ms once a
 * session began, when its round changed, and once at the end (final). */
static void progress_tick(lm_receiver *r, int final)
{
	uint64_t now = lm__now_us(), every = (r->cfg.progress_ms ? r->cfg.progress_ms : 1000) * 1000ull;
	lm_stats st = LM_STATS_INIT;

	if (!r->cfg.progress)
		return;
	lm_receiver_stats(r, &st);
	if (!st.total_time_us && !final)
		return; /* no session yet: strangers are no progress */
	if (!final && st.rounds == r->prog_round && now - r->prog_t < every)
		return;
	r->prog_round = st.rounds;
	r->prog_t = now;
	r->cfg.progress(r->cfg.user, &st);
}

static int accept_loop(lm_receiver *r)
{
	uint64_t deadline = 0;

	if (r->cfg.accept_timeout_ms > 0)
		deadline = lm__now_us() + (uint64_t)r->cfg.accept_timeout_ms * 1000u;
	for (uint32_t i = 0; i < r->nfds; i++)
		start_slot(r, r->fds[i]); /* lm_receiver_accept_fds: the channels */
	r->nfds = 0;
	while (!session_over(r)) {
		struct pollfd p[2] = {{r->listen_fd, POLLIN, 0}, {r->wake_fd, POLLIN, 0}};
		int fd, room = r->listen_fd >= 0 && handshake_room(r);

		if (__atomic_load_n(&r->cancelled, __ATOMIC_SEQ_CST)) {
			lm__rx_fail(r, LM_ECANCELED, -1, "cancelled by the application");
			break;
		}
		if (!room)
			p[0].fd = -1; /* poll ignores it: look again soon */
		/* With a progress callback, a round's end is told within 20 ms. */
		if (poll(p, 2, room && !r->cfg.progress ? 200 : 20) < 0 && errno != EINTR)
			return -errno;
		progress_tick(r, 0);
		if (out_of_time(r, deadline))
			break;
		if (!(p[0].revents & POLLIN))
			continue;
		if (r->ep->accept(r->listen_fd, r->cfg.rcvbuf, &fd) == 0)
			start_slot(r, fd);
	}
	return 0;
}

/* ---- public API -------------------------------------------------------------- */

/* A call's mistake (config, region, address, state): its message for
 * lm_receiver_errmsg(), unless a failure is recorded. Only before a run or
 * after it (no other thread writes errmsg then). Returns code. */
static int usage(lm_receiver *r, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int usage(lm_receiver *r, int code, const char *fmt, ...)
{
	va_list ap;

	if (!r->err) {
		va_start(ap, fmt);
		vsnprintf(r->errmsg, sizeof(r->errmsg), fmt, ap);
		va_end(ap);
	}
	return code;
}

/* Whether listen or accept_fds may be called now. */
static int listen_state(lm_receiver *r, const char *call)
{
	if (r->bad_config)
		return r->bad_config; /* errmsg: the config's mistake */
	if (r->listen_fd >= 0 || r->nfds || r->status != LM_STATUS_NONE)
		return usage(r, LM_ESTATE, "%s: the receiver listens or has its channels already", call);
	return 0;
}

int lm_receiver_new(lm_receiver **out, const lm_receiver_config *cfg)
{
	lm_receiver *r;
	lm_receiver_config c; /* the caller's at its size (ABI policy) */
	lm__err e = {0};
	int bad = 0;

	if (!out)
		return LM_EINVAL;
	*out = NULL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	if (cfg && (bad = lm__abi_in(&c, sizeof(c), cfg, LM__RECEIVER_CONFIG_SIZE0, e.msg,
				     sizeof(e.msg))))
		cfg = NULL; /* a handle all the same, whose errmsg says it */
	else if (cfg)
		cfg = &c;
	r->cfg.size = sizeof(r->cfg);
	if (cfg && (bad = lm__receiver_config_check(cfg, &e)))
		cfg = NULL; /* a handle all the same, whose errmsg names the field */
	if (cfg)
		r->cfg = *cfg;
	if (r->cfg.timeout_ms <= 0)
		r->cfg.timeout_ms = LM_DEFAULT_TIMEOUT_MS;
	if (!r->cfg.max_channels || r->cfg.max_channels > LM_MAX_CHANNELS)
		r->cfg.max_channels = LM_MAX_CHANNELS;
	if (r->cfg.handshake_timeout_ms <= 0)
		r->cfg.handshake_timeout_ms = LM_DEFAULT_HANDSHAKE_TIMEOUT_MS;
	if (!r->cfg.max_handshakes)
		r->cfg.max_handshakes = LM_DEFAULT_MAX_HANDSHAKES;
	if (!r->cfg.max_handshakes_per_host)
		r->cfg.max_handshakes_per_host = LM_DEFAULT_MAX_HANDSHAKES_PER_HOST;
	r->cfg.tls = NULL; /* the caller's struct need not outlive listen */
	r->tls_cfg = cfg ? cfg->tls : NULL;
	r->ep = &lm__tcp_endpoint;
	r->listen_fd = -1;
	r->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (r->wake_fd < 0) {
		free(r);
		return -errno;
	}
	pthread_mutex_init(&r->lock, NULL);
	pthread_mutex_init(&r->log_lock, NULL);
	pthread_cond_init(&r->cond, NULL);
	for (int i = 0; i < LM_RX_SLOTS; i++) {
		r->slots[i].conn.rfd = r->slots[i].conn.wfd = -1;
		r->slots[i].r = r;
		r->slots[i].channel = -1;
		r->slots[i].pub.channel = -1;
	}
	lm__zero_init();
	*out = r;
	if (bad) {
		r->bad_config = bad;
		return usage(r, bad, "lm_receiver_config: %s", e.msg);
	}
	return 0;
}

int lm_receiver_add_region(lm_receiver *r, const char *name, void *base, uint64_t len, int fresh)
{
	size_t nl = name ? strlen(name) : 0;

	if (!r)
		return LM_EINVAL;
	if (r->bad_config)
		return r->bad_config;
	if (!nl || nl > LM_MAX_REGION_NAME)
		return usage(r, LM_EINVAL, "add_region: name is %zu bytes, not 1..%d", nl,
			     LM_MAX_REGION_NAME);
	if (!base && len)
		return usage(r, LM_EINVAL, "add_region \"%s\": base is NULL, len %llu", name,
			     (unsigned long long)len);
	if (r->status != LM_STATUS_NONE)
		return usage(r, LM_ESTATE, "add_region \"%s\": after lm_receiver_run() began", name);
	if (r->nuser >= LM_MAX_REGIONS)
		return usage(r, LM_EREGION, "add_region \"%s\": %d regions already, the most a "
			     "session has", name, LM_MAX_REGIONS);
	if (lm__rx_find_user_region(r, name))
		return usage(r, LM_EREGION, "add_region \"%s\": a region of that name was added already",
			     name);
	lm__rx_region *g = &r->regions[r->nuser++];
	memcpy(g->name, name, nl + 1);
	g->base = base;
	g->len = len;
	g->fresh = fresh;
	g->user_added = 1;
	return 0;
}

/* TLS credentials are loaded once, before anything is accepted, so a bad
 * file is the caller's error, not a stranger's. */
static int tls_setup(lm_receiver *r)
{
	char why[256] = "";
	int rc;

	if (!r->tls_cfg || r->tls)
		return 0;
	if ((rc = lm__tls_ctx_new(&r->tls, r->tls_cfg, 1, why, sizeof(why))))
		snprintf(r->errmsg, sizeof(r->errmsg), "%s", why[0] ? why : lm_strerror(rc));
	return rc;
}

int lm_receiver_listen(lm_receiver *r, const char *addr)
{
	lm__addr a;
	int rc, acc = 0;
	socklen_t sl = sizeof(acc);

	if (!r)
		return LM_EINVAL;
	if ((rc = listen_state(r, "listen")))
		return rc;
	if (!addr)
		return usage(r, LM_EINVAL, "listen: addr is NULL");
	if ((rc = lm__addr_parse(addr, &a, r->errmsg, sizeof(r->errmsg))))
		return rc;
	/* fd: connected sockets are the channels themselves. */
	if (a.ops == &lm__fd_endpoint &&
	    (a.nfds > 1 || getsockopt(a.fds[0], SOL_SOCKET, SO_ACCEPTCONN, &acc, &sl) < 0 || !acc))
		return lm_receiver_accept_fds(r, a.fds, a.nfds);
	if ((rc = tls_setup(r)))
		return rc;
	r->ep = a.ops;
	rc = a.ops->listen(&a, r->cfg.rcvbuf, &r->listen_fd, &r->port);
	if (rc) {
		snprintf(r->errmsg, sizeof(r->errmsg), "listen on %s: %s", addr, lm_strerror(rc));
		return rc;
	}
	if (a.ops == &lm__unix_endpoint && a.text[0] != '@')
		snprintf(r->unix_path, sizeof(r->unix_path), "%s", a.text);
	return 0;
}

int lm_receiver_accept_fds(lm_receiver *r, const int *fds, uint32_t n)
{
	int rc = 0;

	if (!r)
		rc = LM_EINVAL;
	else if ((rc = listen_state(r, "accept_fds")))
		;
	else if (!fds || !n || n > LM_MAX_CHANNELS)
		rc = usage(r, LM_EINVAL, "accept_fds: %u fds (%s), not 1..%d", n, fds ? "given" : "NULL",
			   LM_MAX_CHANNELS);
	else
		rc = tls_setup(r);
	for (uint32_t i = 0; i < n && fds && i < LM_MAX_CHANNELS; i++) {
		if (rc || lm__set_nonblock(fds[i])) {
			close(fds[i]); /* ours from the call on, also on failure */
			continue;
		}
		r->fds[r->nfds++] = fds[i];
	}
	if (!rc && r->nfds != n)
		rc = usage(r, LM_EINVAL, "accept_fds: %u of the %u fds are not sockets we can use", n - r->nfds, n);
	if (r)
		r->ep = &lm__fd_endpoint;
	return rc;
}

int lm_receiver_port(const lm_receiver *r)
{
	return r ? r->port : 0;
}

/* After a failure: tell the sender why on every channel, then close them
 * all, draining in parallel so shutdown takes one drain period, not one
 * per channel. */
static void close_session(lm_receiver *r)
{
	lm__conn *cs[LM_RX_SLOTS];
	uint64_t until = lm__now_us() + LM__SEND_ERROR_US; /* for all of them */
	int n = 0;

	for (int i = 0; i < LM_RX_SLOTS; i++) {
		lm__rx_chan *ch = &r->slots[i];
		if (ch->conn.wfd < 0)
			continue;
		if (r->err && ch->channel >= 0)
			lm__send_error(&ch->conn, r->err, (uint16_t)ch->channel, r->errmsg, until);
		cs[n++] = &ch->conn;
	}
	lm__drain_close(cs, n, r->err ? 1000 : 0);
}

int lm_receiver_run(lm_receiver *r)
{
	double cpu0 = lm__thread_cpu();
	int rc;

	if (!r)
		return LM_EINVAL;
	if (r->bad_config)
		return r->bad_config;
	if (r->listen_fd < 0 && !r->nfds)
		return usage(r, LM_ESTATE, "run: neither listening nor given fds (lm_receiver_listen first)");
	if (r->status != LM_STATUS_NONE)
		return usage(r, LM_ESTATE, "run: this receiver ran already (one session a receiver)");
	pthread_mutex_lock(&r->lock);
	r->status = LM_STATUS_SETUP;
	pthread_mutex_unlock(&r->lock);
	rc = accept_loop(r);
	if (rc)
		lm__rx_fail(r, rc, -1, "accept failed");
	for (int i = 0; i < LM_RX_SLOTS; i++) {
		if (r->slots[i].slot_used) {
			pthread_join(r->slots[i].tid, NULL);
			r->slots[i].slot_used = 0;
		}
	}
	close_session(r);
	pthread_mutex_lock(&r->lock);
	r->t_end = lm__now_us();
	r->main_cpu = lm__thread_cpu() - cpu0;
	r->status = r->err ? LM_STATUS_FAILED : LM_STATUS_COMPLETED;
	/* close_session's ERROR frames and drains counted too */
	for (int i = 0; i < LM_RX_SLOTS; i++)
		lm__rx_publish(&r->slots[i]);
	pthread_mutex_unlock(&r->lock);
	/* What we mapped holds a half-received copy: nothing hands it on. */
	for (uint32_t i = 0; r->err && i < 2 * LM_MAX_REGIONS; i++)
		lm__rx_unmap_region(&r->regions[i]);
	progress_tick(r, 1);
	return r->err;
}

int lm_receiver_region(const lm_receiver *r, const char *name, void **base, uint64_t *len)
{
	if (!r || !name || !base || !len)
		return LM_EINVAL;
	if (r->status != LM_STATUS_COMPLETED)
		return LM_ESTATE;
	for (uint32_t i = 0; i < r->region_count && i < LM_MAX_REGIONS; i++) {
		const lm__rx_region *g = r->by_id[i];
		if (g && strcmp(g->name, name) == 0) {
			*base = g->base;
			*len = g->len;
			return 0;
		}
	}
	return LM_EREGION;
}

void lm__rx_publish(lm__rx_chan *ch)
{
	lm__rx_pub *p = &ch->pub;

	p->channel = ch->channel;
	p->round = ch->round;
	p->bytes_in = ch->conn.bytes_in;
	p->bytes_out = ch->conn.bytes_out;
	p->zero_pages = ch->zero_pages;
	p->normal_pages = ch->normal_pages;
	p->payload_bytes = ch->payload_bytes;
	p->packets = ch->packets;
	p->ref_pages = ch->ref_pages;
	p->delta_pages = ch->delta_pages;
	p->delta_bytes = ch->delta_bytes;
	p->cpu = ch->cpu;
	memcpy(p->eng, ch->eng, sizeof(p->eng));
	memcpy(p->mix, ch->mix, sizeof(p->mix));
}

/* Any thread, under r->lock: the session's shape (written once under it),
 * the run thread's fields (written under it during a run) and each
 * channel's published counters (at most LM__RX_PUB_NS old while it runs,
 * exact once lm_receiver_run() returned). */
static void receiver_stats(const lm_receiver *r, lm_stats *st)
{
	pthread_mutex_t *lock;
	uint64_t end;

	memset(st, 0, sizeof(*st));
	if (!r)
		return;
	lock = (pthread_mutex_t *)&r->lock; /* the only mutable part of a const receiver */
	pthread_mutex_lock(lock);
	end = r->t_end ? r->t_end : lm__now_us();
	st->is_receiver = 1;
	st->status = r->status;
	st->channels = r->channels;
	st->page_size = r->page_size;
	st->codec = (lm_codec_id)r->codec;
	if (r->t_start && end > r->t_start) { /* a run in progress elsewhere */
		st->total_time_us = end - r->t_start;
		st->setup_time_us = (r->t_setup ? r->t_setup : end) - r->t_start;
	}
	for (uint32_t i = 0; r->regions_ready && i < r->region_count && i < LM_MAX_REGIONS; i++)
		st->total_ram += r->region_len[i];
	for (int i = 0; i < LM_RX_SLOTS; i++) {
		const lm__rx_pub *ch = &r->slots[i].pub;
		if (ch->channel < 0)
			continue;
		st->transferred += ch->bytes_in + ch->bytes_out;
		st->duplicate_pages += ch->zero_pages;
		st->ref_pages += ch->ref_pages;
		st->delta_pages += ch->delta_pages;
		st->delta_bytes += ch->delta_bytes;
		st->normal_pages += ch->normal_pages;
		st->payload_bytes += ch->payload_bytes;
		st->packets += ch->packets;
		st->cpu_seconds += ch->cpu;
		lm__stats_add_engines(st, ch->eng);
		for (int k = 0; k < LM_MAX_CODECS; k++) {
			st->codec_mix[k].packets += ch->mix[k].packets;
			st->codec_mix[k].bytes_in += ch->mix[k].bytes_in;
			st->codec_mix[k].bytes_out += ch->mix[k].bytes_out;
		}
		if (ch->channel == 0)
			st->rounds = ch->round;
	}
	st->device_state_bytes = r->ds_next; /* final once the run returned */
	st->cpu_seconds += r->main_cpu;
	memcpy(st->tls, r->tls_suite, sizeof(st->tls));
	memcpy(st->peer, r->tls_peer, sizeof(st->peer));
	st->tls_resumed = (uint32_t)r->tls_resumed;
	st->refused = r->refused;
	pthread_mutex_unlock(lock);
	lm__stats_derive(st);
}

int lm_receiver_stats(const lm_receiver *r, lm_stats *out)
{
	lm_stats full;

	if (!r || !out)
		return LM_EINVAL;
	receiver_stats(r, &full);
	return lm__abi_out(out, &full, sizeof(full), LM__STATS_SIZE0);
}

const char *lm_receiver_errmsg(const lm_receiver *r)
{
	return r ? r->errmsg : "";
}

void lm_receiver_free(lm_receiver *r)
{
	if (!r)
		return;
	for (int i = 0; i < LM_RX_SLOTS; i++) {
		if (r->slots[i].slot_used)
			pthread_join(r->slots[i].tid, NULL);
		lm__conn_close(&r->slots[i].conn);
		lm__rx_chan_free(&r->slots[i]);
	}
	for (uint32_t i = 0; i < 2 * LM_MAX_REGIONS; i++) {
		free(r->regions[i].written);
		free(r->regions[i].claimed);
		free(r->regions[i].landed);
		free(r->regions[i].reserved);
		free(r->regions[i].pinned);
		lm__sumtree_free(&r->regions[i].sum);
		lm__rx_unmap_region(&r->regions[i]);
	}
	if (r->listen_fd >= 0)
		close(r->listen_fd);
	if (r->unix_path[0])
		unlink(r->unix_path);
	for (uint32_t i = 0; i < r->nfds; i++)
		close(r->fds[i]);
	lm__tls_ctx_free(r->tls);
	lm__sumstream_free(&r->ds_sum);
	pthread_mutex_destroy(&r->log_lock);
	close(r->wake_fd);
	pthread_cond_destroy(&r->cond);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

int lm_receiver_cancel(lm_receiver *r)
{
	if (!r)
		return LM_EINVAL;
	/* An atomic store and a write(2), both async-signal-safe: the accept
	 * loop polls wake_fd and records the failure; every channel's wait
	 * polls it too. */
	__atomic_store_n(&r->cancelled, 1, __ATOMIC_SEQ_CST);
	lm__rx_wake(r);
	return 0;
}
