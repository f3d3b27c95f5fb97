/*
 * The receiver populates a fresh region's pages before it writes them
 * (src/receiver/pages.c): memory whose store cannot supply a page fails the
 * migration with an error naming the range, never SIGBUS in a decoder or a
 * ref's copy. The destination here is a shared mapping of a memfd that ends
 * halfway through the region (a page past a file's end is SIGBUS when
 * touched, as a page of a full tmpfs is); with the file as long as the
 * region, the same transfer succeeds byte for byte. Codecs none (readv into
 * place) and lz4 (decoded in user space), with ref pages (dedup) in both.
 * Also alloc_regions with huge_pages: received byte for byte.
 */
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"
#include "livemig.h"

#define LEN (8u << 20)

typedef struct rx_ctx {
	lm_receiver *r;
	int rc;
	int fd;          /* the destination memfd */
	uint64_t backed; /* its length */
	uint8_t *base;
} rx_ctx;

static int on_region(void *user, uint32_t id, const char *name, uint64_t len, uint32_t page_size,
		     void **base, int *fresh)
{
	rx_ctx *c = user;

	(void)id, (void)name, (void)page_size;
	if (len != LEN || ftruncate(c->fd, (off_t)c->backed) < 0)
		return LM_EREGION;
	c->base = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, c->fd, 0);
	if (c->base == MAP_FAILED) {
		c->base = NULL;
		return LM_EREGION;
	}
	*base = c->base;
	*fresh = 1;
	return 0;
}

static void *rx_thread(void *arg)
{
	rx_ctx *c = arg;

	c->rc = lm_receiver_run(c->r);
	return NULL;
}

/* Pages that compress (lz4 decodes them), every fourth page zero, and in
 * the second half copies of first-half pages (refs) among new ones. */
static void fill(uint8_t *p)
{
	uint64_t x = 0x9E3779B97F4A7C15ull;

	for (uint64_t pg = 0; pg < LEN / 4096; pg++) {
		uint8_t *q = p + pg * 4096;
		if (pg % 4 == 3)
			continue;
		if (pg >= LEN / 8192 && pg % 4 == 1) {
			memcpy(q, p + (pg - LEN / 8192) * 4096, 4096);
			continue;
		}
		for (int i = 0; i < 4096; i += 64) {
			x ^= x << 13; x ^= x >> 7; x ^= x << 17;
			memcpy(q + i, &x, 8); /* the rest of each 64 bytes stays zero */
		}
	}
}

static void run_case(lm_codec_id codec, uint64_t backed, const uint8_t *src)
{
	lm_receiver_config rc = LM_RECEIVER_CONFIG_INIT;
	lm_sender_config sc = LM_SENDER_CONFIG_INIT;
	rx_ctx ctx = {0};
	lm_receiver *r;
	lm_sender *s;
	pthread_t t;
	char addr[64];
	int src_rc;

	ctx.fd = memfd_create("lm-populate", MFD_CLOEXEC);
	ctx.backed = backed;
	CHECK(ctx.fd >= 0);
	rc.timeout_ms = 10000;
	rc.accept_timeout_ms = 10000;
	if (backed) {
		rc.on_region = on_region;
		rc.user = &ctx;
	} else { /* 0: alloc_regions, in huge pages */
		rc.alloc_regions = 1;
		rc.huge_pages = 1;
	}
	CHECK_EQ(lm_receiver_new(&r, &rc), 0);
	CHECK_EQ(lm_receiver_listen(r, "127.0.0.1:0"), 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", lm_receiver_port(r));
	ctx.r = r;
	pthread_create(&t, NULL, rx_thread, &ctx);

	sc.channels = 2;
	sc.codec = codec;
	sc.timeout_ms = 10000;
	CHECK_EQ(lm_sender_new(&s, &sc), 0);
	CHECK_EQ(lm_sender_add_region(s, "ram", (void *)src, LEN), 0);
	src_rc = lm_sender_connect(s, addr);
	if (!src_rc)
		src_rc = lm_sender_run(s);
	pthread_join(t, NULL);
	if (backed)
		printf("codec %s, %llu of %u bytes backed: ", lm_codec_name(codec),
		       (unsigned long long)backed, LEN);
	else
		printf("codec %s, alloc_regions in huge pages: ", lm_codec_name(codec));
	printf("sender %d, receiver %d: %s\n", src_rc, ctx.rc, ctx.rc ? lm_receiver_errmsg(r) : "ok");
	if (!backed) {
		void *got = NULL;
		uint64_t got_len = 0;
		CHECK_EQ(src_rc, 0);
		CHECK_EQ(ctx.rc, 0);
		CHECK_EQ(lm_receiver_region(r, "ram", &got, &got_len), 0);
		CHECK_EQ(got_len, LEN);
		CHECK(got && memcmp(got, src, LEN) == 0);
	} else if (backed == LEN) {
		CHECK_EQ(src_rc, 0);
		CHECK_EQ(ctx.rc, 0);
		CHECK(ctx.base && memcmp(ctx.base, src, LEN) == 0);
	} else {
		CHECK(src_rc != 0);
		CHECK_EQ(ctx.rc, LM_EREGION);
		CHECK(strstr(lm_receiver_errmsg(r), "cannot back bytes") != NULL);
		/* The sender is told why. */
		CHECK(strstr(lm_sender_errmsg(s), "cannot back bytes") != NULL);
	}
	lm_sender_free(s);
	lm_receiver_free(r);
	if (ctx.base)
		munmap(ctx.base, LEN);
	close(ctx.fd);
}

int main(void)
{
	static const lm_codec_id codecs[] = {LM_CODEC_NONE, LM_CODEC_LZ4};
	uint8_t *src = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	CHECK(src != MAP_FAILED);
	if (src == MAP_FAILED)
		TEST_DONE("test_populate");
	fill(src);
	for (unsigned i = 0; i < 2; i++) {
		run_case(codecs[i], LEN, src);
		run_case(codecs[i], LEN / 2, src);
		run_case(codecs[i], 0, src);
	}
	munmap(src, LEN);
	TEST_DONE("test_populate");
}
