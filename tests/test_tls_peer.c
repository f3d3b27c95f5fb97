/*
 * test_tls_peer: what tells one TLS client from another (src/transport/tls.c),
 * which the receiver's check that every channel is channel 0's client uses
 * (src/receiver/handshake.c, same_peer). Handshakes on socketpairs with the
 * certificates tests/tls_certs.sh makes (into a temp dir, never committed):
 *  1. the same certificate twice gives the same SHA-256, a new handshake
 *     with it (a resumption, as channels 1..N do) too;
 *  2. two certificates of one CA whose 141-byte subjects differ in their
 *     last byte (long1, long2): the identities lm__tls_describe gives
 *     (RFC 2253, CN first, cut to 128 bytes with "...") are equal, their
 *     SHA-256s are not; a certificate whose CN comes last (cnlast, as
 *     most CAs order it) shows it first too;
 *  3. a PSK connection's digest is its identity's, the same on channel 1,
 *     another for another identity;
 *  4. plaintext shows none (-ENOENT).
 * Usage: test_tls_peer path/to/tls_certs.sh
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "channel.h"
#include "check.h"
#include "tls_fixture.h"
#include "transport/transport.h"

typedef struct side {
	lm__tls_ctx *t;
	lm__conn c;
	int rc;
	char why[256];
} side;

static void *server_main(void *arg)
{
	side *s = arg;

	s->rc = lm__tls_server(s->t, &s->c, s->why, sizeof(s->why));
	return NULL;
}

/* One handshake between a client of ctx cli (channel idx) and the server
 * srv; the server's conn, TLS on success, into *out (the caller closes
 * it). Returns the client's rc, else the server's. */
static int handshake(lm__tls_ctx *srv, lm__tls_ctx *cli, uint32_t idx, lm__conn *out)
{
	int sv[2];
	side s = {.t = srv}, c = {.t = cli};
	pthread_t th;

	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
	lm__conn_init(&s.c, sv[0], 5000);
	lm__conn_init(&c.c, sv[1], 5000);
	CHECK_EQ(pthread_create(&th, NULL, server_main, &s), 0);
	c.rc = lm__tls_client(cli, &c.c, idx, "receiver", c.why, sizeof(c.why));
	pthread_join(th, NULL);
	if (c.rc || s.rc)
		printf("tls_peer: handshake: client %d (%s), server %d (%s)\n", c.rc, c.why, s.rc,
		       s.why);
	CHECK_EQ(c.rc, 0);
	CHECK_EQ(s.rc, 0);
	lm__conn_close(&c.c);
	*out = s.c;
	return c.rc ? c.rc : s.rc;
}

/* The server end's SHA-256 of its client and identity as the stats hold it. */
static int peer_of(lm__tls_ctx *srv, lm__tls_ctx *cli, uint32_t idx, uint8_t md[32], char *id,
		   size_t cap)
{
	lm__conn c;
	char suite[64];
	int resumed, rc;

	memset(md, 0, 32);
	if (handshake(srv, cli, idx, &c))
		return -1;
	rc = lm__tls_peer_digest(&c, md);
	lm__tls_describe(&c, suite, sizeof(suite), id, cap, &resumed);
	lm__conn_close(&c);
	return rc;
}

int main(int argc, char **argv)
{
	char id1[128], id1b[128], id2[128];
	uint8_t a[32], a2[32], b[32];
	lm__tls_ctx *srv, *c1, *c2;
	lm__conn plain;
	int sv[2];

	if (argc < 2) {
		fprintf(stderr, "usage: test_tls_peer path/to/tls_certs.sh\n");
		return 2;
	}
	if (tf_make(argv[1]))
		return 1;
	srv = tf_cert("server", 1);
	c1 = tf_cert("long1", 0);
	c2 = tf_cert("long2", 0);
	if (srv && c1 && c2) {
		/* 1. channel 0, then channel 1 resuming its session */
		CHECK_EQ(peer_of(srv, c1, 0, a, id1, sizeof(id1)), 0);
		CHECK_EQ(peer_of(srv, c1, 1, a2, id1b, sizeof(id1b)), 0);
		CHECK(memcmp(a, a2, 32) == 0);
		CHECK(strcmp(id1, id1b) == 0);
		/* 2. the other client, alike in its first 127 bytes */
		CHECK_EQ(peer_of(srv, c2, 0, b, id2, sizeof(id2)), 0);
		printf("tls_peer: long1 \"%.40s...\" (%zu bytes kept), long2 the same: %s; "
		       "SHA-256 the same: %s\n",
		       id1, strlen(id1), strcmp(id1, id2) ? "no" : "yes",
		       memcmp(a, b, 32) ? "no" : "yes");
		/* CN first, the rest cut at a byte: 124 of 141 and "..." */
		CHECK(strncmp(id1, "CN=sender,O=livemig test organisation", 37) == 0);
		CHECK_EQ(strlen(id1), sizeof(id1) - 1);
		CHECK(strcmp(id1 + sizeof(id1) - 4, "...") == 0);
		CHECK(strstr(id1, ",OU=livemig test organisation") != NULL);
		CHECK(strcmp(id1, id2) == 0); /* why the subject is not the check */
		CHECK(memcmp(a, b, 32) != 0);
		/* the CN last in the certificate, as most CAs write it: first */
		lm__tls_ctx *c3 = tf_cert("cnlast", 0);
		if (c3) {
			CHECK_EQ(peer_of(srv, c3, 0, b, id2, sizeof(id2)), 0);
			printf("tls_peer: cnlast \"%.40s...\"\n", id2);
			CHECK(strncmp(id2, "CN=sender,C=XX,ST=Some State,L=Some City,O=", 43) == 0);
			CHECK(strcmp(id2 + strlen(id2) - 3, "...") == 0);
		}
		lm__tls_ctx_free(c3);
	}
	/* 3. a PSK: its identity's digest, on channel 1 too, another's
	 * another (channel 1 resuming a ticket: test_tls_join) */
	{
		lm__tls_ctx *ps = tf_psk(1, NULL), *alice = tf_psk(0, "alice"),
			    *bob = tf_psk(0, "bob");
		uint8_t p0[32], p1[32], p2[32];
		if (ps && alice && bob) {
			CHECK_EQ(peer_of(ps, alice, 0, p0, id1, sizeof(id1)), 0);
			CHECK(strcmp(id1, "psk:alice") == 0);
			CHECK_EQ(peer_of(ps, alice, 1, p1, id1b, sizeof(id1b)), 0);
			printf("tls_peer: PSK channel 0 \"%s\", channel 1 \"%s\"\n", id1, id1b);
			CHECK(strcmp(id1b, "psk:alice") == 0);
			CHECK(memcmp(p0, p1, 32) == 0);
			CHECK_EQ(peer_of(ps, bob, 0, p2, id2, sizeof(id2)), 0);
			CHECK(strcmp(id2, "psk:bob") == 0);
			CHECK(memcmp(p0, p2, 32) != 0);
			CHECK(memcmp(p0, a, 32) != 0); /* not a certificate's */
		}
		lm__tls_ctx_free(ps);
		lm__tls_ctx_free(alice);
		lm__tls_ctx_free(bob);
	}
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
	lm__conn_init(&plain, sv[0], 1000);
	CHECK_EQ(lm__tls_peer_digest(&plain, a), -ENOENT); /* 4. plaintext: none */
	lm__conn_close(&plain);
	close(sv[1]);
	lm__tls_ctx_free(srv);
	lm__tls_ctx_free(c1);
	lm__tls_ctx_free(c2);
	tf_remove();
	TEST_DONE("test_tls_peer");
}
