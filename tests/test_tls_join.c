/*
 * test_tls_join: end to end, a receiver takes channels 1..N only from
 * channel 0's client. A fake sender opens channel 0 as one client and sends
 * its hello, bound to that TLS connection; then a channel 1 that knows the
 * session's id (channel 0's TLS exporter) but is another client: with
 * certificates, another of the same CA with the same allowed name (long1,
 * long2); with a PSK file of two identities, the other one (alice, bob):
 *  1. that channel reads an ERROR naming the other client, and the
 *     receiver logs one line for it;
 *  2. the session goes on: channel 1 from channel 0's client (resuming
 *     channel 0's TLS session) joins, and both channels get their hello ack;
 *  3. the session ends on the sender's close, not on the intruder.
 * tests/tls_certs.sh makes the certificates into a temp dir (never
 * committed). Usage: test_tls_join path/to/tls_certs.sh
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>

#include "channel.h"
#include "fake_peer.h"
#include "tls_fixture.h"
#include "transport/transport.h"

/* A TLS connection to the receiver as channel idx of client t. */
static int open_tls(lm__tls_ctx *t, uint32_t idx, int port, lm__conn *c)
{
	char why[256] = "";
	int fd = fs_connect(port), rc;

	CHECK_EQ(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
	lm__conn_init(c, fd, 3000);
	rc = lm__tls_client(t, c, idx, "receiver", why, sizeof(why));
	if (rc) {
		printf("tls_join: channel %u's TLS handshake: %s\n", idx, why);
		lm__conn_close(c);
	}
	CHECK_EQ(rc, 0);
	return rc;
}

static int send_hello_on(lm__conn *c, uint16_t ch, const uint8_t session[16])
{
	uint8_t b[LM_FRAME_HDR + LM_HELLO_LEN];
	lm__hello h = mk_hello(ch, 2);

	memcpy(h.session, session, 16);
	h.features = LM_FEAT_SEALED;
	h.required = LM_FEAT_SEALED; /* what TLS requires */
	return lm__write_full(c, b, lm__enc_hello(b, &h));
}

/* The next frame on c: its kind, and an ERROR's message into msg. */
static int next_frame(lm__conn *c, lm__ack *ack, char *msg, size_t cap)
{
	uint8_t b[LM_ACK_LEN];
	lm__err e = {0};
	lm__frame f;
	lm__error_msg m;

	msg[0] = 0;
	if (lm__read_frame(c, &f, PS, PP, &e))
		return -1;
	if (f.kind == LM_KIND_ERROR) {
		if (lm__read_error_body(c, &f, &m, &e))
			return -1;
		snprintf(msg, cap, "%.200s", m.msg);
	} else if (f.kind == LM_KIND_ACK) {
		if (f.len != LM_ACK_LEN || lm__read_full(c, b, f.len) ||
		    lm__dec_ack(b, f.len, ack, &e))
			return -1;
	}
	return f.kind;
}

static int count(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

/* Channel 0 from c1, then a channel 1 with the session's id from c2 (which
 * the receiver must refuse, saying why), then channel 1 from c1. */
static void run(const lm_tls_config *srv, lm__tls_ctx *c1, lm__tls_ctx *c2, const char *why)
{
	uint8_t session[16], rb[LM_FRAME_HDR + LM_REGION_FIXED + 8];
	lm__conn ch0, ch1, bad;
	lm__ack a0, a1;
	char msg[256];
	rxopt o;
	rx x;

	if (!c1 || !c2)
		return;
	memset(&o, 0, sizeof(o));
	o.tls = srv;
	o.timeout_ms = 3000;
	rx_start(&x, &o);

	/* channel 0: its hello carries its own connection's binding */
	if (open_tls(c1, 0, x.port, &ch0))
		goto out_rx;
	CHECK_EQ(lm__tls_binding(&ch0, session), 0);
	CHECK_EQ(send_hello_on(&ch0, 0, session), 0);
	CHECK_EQ(lm__write_full(&ch0, rb, enc_region(rb, 0, x.len, "ram")), 0);

	/* 1. channel 1 with the session's id from another client */
	if (open_tls(c2, 1, x.port, &bad) == 0) {
		CHECK_EQ(send_hello_on(&bad, 1, session), 0);
		CHECK_EQ(next_frame(&bad, &a1, msg, sizeof(msg)), LM_KIND_ERROR);
		printf("tls_join: the other client's channel 1 read: \"%s\"\n", msg);
		CHECK(strstr(msg, why) != NULL);
		lm__conn_close(&bad);
	}

	/* 2. the session's own channel 1 (resuming channel 0's TLS session) */
	if (open_tls(c1, 1, x.port, &ch1) == 0) {
		CHECK_EQ(send_hello_on(&ch1, 1, session), 0);
		CHECK_EQ(next_frame(&ch0, &a0, msg, sizeof(msg)), LM_KIND_ACK);
		CHECK_EQ(next_frame(&ch1, &a1, msg, sizeof(msg)), LM_KIND_ACK);
		CHECK_EQ(a0.kind, LM_KIND_HELLO);
		CHECK_EQ(a1.kind, LM_KIND_HELLO);
		CHECK(memcmp(a0.session, session, 16) == 0);
		CHECK(a1.features & LM_FEAT_SEALED);
		lm__conn_close(&ch1);
	}
	lm__conn_close(&ch0);

	/* 3. the sender's close ends the session; the intruder was one line */
out_rx:
	rx_join(&x);
	printf("tls_join: receiver rc %d (%s); log:\n%s", x.rc, lm_strerror(x.rc), x.log);
	CHECK(x.rc != 0);
	CHECK_EQ(count(x.log, why), 1);
	CHECK_EQ(count(x.log, "refused 127.0.0.1:"), 1); /* one line, one connection */
	rx_free(&x);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: test_tls_join path/to/tls_certs.sh\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (tf_make(argv[1]))
		return 1;
	{
		/* certificates: long1 and long2 both carry the allowed name */
		const char *allow[] = {"sender", NULL};
		lm_tls_config srv = LM_TLS_CONFIG_INIT;
		lm__tls_ctx *c1 = tf_cert("long1", 0), *c2 = tf_cert("long2", 0);
		srv.cert_file = tf_path("server-cert.pem");
		srv.key_file = tf_path("server-key.pem");
		srv.ca_file = tf_path("ca-cert.pem");
		srv.allow = allow;
		run(&srv, c1, c2, "not channel 0's certificate");
		lm__tls_ctx_free(c1);
		lm__tls_ctx_free(c2);
	}
	{
		/* a receiver that takes two PSK identities */
		lm_tls_config srv = LM_TLS_CONFIG_INIT;
		lm__tls_ctx *c1 = tf_psk(0, "alice"), *c2 = tf_psk(0, "bob");
		srv.psk_file = tf_path("two.psk");
		run(&srv, c1, c2, "psk:bob: not channel 0's PSK identity");
		lm__tls_ctx_free(c1);
		lm__tls_ctx_free(c2);
	}
	tf_remove();
	TEST_DONE("test_tls_join");
}
