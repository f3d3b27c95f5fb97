/*
 * tls_fixture.h - for the tests that handshake in process (test_tls_peer,
 * test_tls_join): the certificates and PSK files tests/tls_certs.sh makes
 * into a temporary directory (never committed), and TLS contexts of them.
 * Static functions in a header: each test program includes it once.
 */
#ifndef LM_TEST_TLS_FIXTURE_H
#define LM_TEST_TLS_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "transport/transport.h"

static char tf_dir[] = "/tmp/lm_tls_fixture.XXXXXX";

/* A file of the directory (a ring of 8 buffers: a few live at once). */
static char *tf_path(const char *name)
{
	static char buf[8][512];
	static int i;
	char *p = buf[i++ % 8];

	snprintf(p, sizeof(buf[0]), "%s/%s", tf_dir, name);
	return p;
}

/* Makes the directory and runs tls_certs.sh into it: 0, or -1. */
static int tf_make(const char *certs_sh)
{
	char cmd[1024];

	if (!mkdtemp(tf_dir)) {
		perror("mkdtemp");
		return -1;
	}
	snprintf(cmd, sizeof(cmd), "bash '%s' '%s' 127.0.0.1 >/dev/null", certs_sh, tf_dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void tf_remove(void)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tf_dir);
	CHECK_EQ(system(cmd), 0);
}

/* One side's context of cfg (what: for the message if it fails). */
static lm__tls_ctx *tf_load(const lm_tls_config *cfg, int server, const char *what)
{
	lm__tls_ctx *t = NULL;
	char why[256] = "";

	if (lm__tls_ctx_new(&t, cfg, server, why, sizeof(why)))
		printf("tls fixture: context for %s: %s\n", what, why);
	CHECK(t != NULL);
	return t;
}

/* NAME-cert.pem and NAME-key.pem, the peer's checked against ca-cert.pem. */
static lm__tls_ctx *tf_cert(const char *name, int server)
{
	lm_tls_config cfg = LM_TLS_CONFIG_INIT;
	char cert[64], key[64];

	snprintf(cert, sizeof(cert), "%s-cert.pem", name);
	snprintf(key, sizeof(key), "%s-key.pem", name);
	cfg.cert_file = tf_path(cert);
	cfg.key_file = tf_path(key);
	cfg.ca_file = tf_path("ca-cert.pem");
	return tf_load(&cfg, server, name);
}

/* two.psk (identities alice and bob); a client uses id, a server takes
 * any of them (id NULL). */
static lm__tls_ctx *tf_psk(int server, const char *id)
{
	lm_tls_config cfg = LM_TLS_CONFIG_INIT;

	cfg.psk_file = tf_path("two.psk");
	cfg.psk_identity = id;
	return tf_load(&cfg, server, id ? id : "the PSK");
}

#endif
