/*
 * send -> recv over loopback through the library: 1, 2, 4 and 8 channels;
 * regions of 0 pages, 1 page, a non-multiple of the packet size, a length
 * that is not a page multiple, several regions, and a 1 GiB sparse region.
 * Every run checks the destination byte for byte and the statistics.
 */
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>

#include "check.h"
#include "livemig.h"
#include "test_util.h"

static void fill(uint8_t *p, uint64_t len, unsigned seed)
{
	uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;

	for (uint64_t i = 0; i < len; i += 4096) {
		x ^= x << 13; x ^= x >> 7; x ^= x << 17;
		if (x % 3 == 0)
			continue; /* leave a zero page */
		for (uint64_t j = i; j < len && j < i + 4096; j += 8)
			memcpy(p + j, &x, len - j < 8 ? len - j : 8), x += j;
	}
}

static void *map(uint64_t len)
{
	void *p = mmap(NULL, len ? len : 4096, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

/* Migrates nreg regions of the given lengths with ch channels. */
static void run_case(uint32_t ch, uint32_t page_size, const uint64_t *lens, int nreg, int fill_data)
{
	lm_receiver_config rc = LM_RECEIVER_CONFIG_INIT;
	lm_sender_config sc = LM_SENDER_CONFIG_INIT;
	lm_receiver *r = NULL;
	lm_sender *s = NULL;
	rx_ctx ctx;
	pthread_t t;
	uint8_t *src[4], *dst[4];
	char addr[64], name[16];
	uint64_t zero = 0, total = 0;
	lm_stats ss = LM_STATS_INIT, rs = LM_STATS_INIT;

	rc.timeout_ms = 10000;
	rc.accept_timeout_ms = 10000;
	CHECK_EQ(lm_receiver_new(&r, &rc), 0);
	for (int i = 0; i < nreg; i++) {
		src[i] = map(lens[i]);
		dst[i] = map(lens[i]);
		CHECK(src[i] && dst[i]);
		if (fill_data)
			fill(src[i], lens[i], (unsigned)(i + 1));
		else /* sparse: one written page every 64 MiB */
			for (uint64_t off = 12345; off < lens[i]; off += 64ull << 20)
				src[i][off] = (uint8_t)(off >> 20);
		snprintf(name, sizeof(name), "ram%d", i);
		CHECK_EQ(lm_receiver_add_region(r, name, dst[i], lens[i], 1), 0);
		total += lens[i];
	}
	CHECK_EQ(lm_receiver_listen(r, "127.0.0.1:0"), 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", lm_receiver_port(r));
	ctx.r = r;
	pthread_create(&t, NULL, rx_thread, &ctx);

	sc.channels = ch;
	sc.page_size = page_size;
	sc.timeout_ms = 10000;
	CHECK_EQ(lm_sender_new(&s, &sc), 0);
	for (int i = 0; i < nreg; i++) {
		snprintf(name, sizeof(name), "ram%d", i);
		CHECK_EQ(lm_sender_add_region(s, name, src[i], lens[i]), 0);
	}
	int src_rc = lm_sender_connect(s, addr);
	if (!src_rc)
		src_rc = lm_sender_run(s);
	CHECK_EQ(src_rc, 0);
	if (src_rc)
		fprintf(stderr, "sender: %s\n", lm_sender_errmsg(s));
	pthread_join(t, NULL);
	CHECK_EQ(ctx.rc, 0);
	if (ctx.rc)
		fprintf(stderr, "receiver: %s\n", lm_receiver_errmsg(r));
	for (int i = 0; i < nreg; i++) {
		CHECK(memcmp(src[i], dst[i], lens[i]) == 0);
		for (uint64_t off = 0; off < lens[i]; off += page_size) {
			uint64_t n = lens[i] - off < page_size ? lens[i] - off : page_size;
			uint64_t k = 0;
			while (k < n && !src[i][off + k])
				k++;
			zero += k == n;
		}
	}
	lm_sender_stats(s, &ss);
	lm_receiver_stats(r, &rs);
	CHECK_EQ(ss.status, LM_STATUS_COMPLETED);
	CHECK_EQ(rs.status, LM_STATUS_COMPLETED);
	CHECK_EQ(ss.total_ram, total);
	CHECK_EQ(rs.total_ram, total);
	CHECK_EQ(ss.duplicate_pages, zero);
	CHECK_EQ(rs.duplicate_pages, zero);
	CHECK_EQ(ss.normal_pages, rs.normal_pages);
	CHECK_EQ(ss.rounds, 1);
	CHECK_EQ(rs.rounds, 1);
	CHECK_EQ(ss.channels, ch);
	CHECK_EQ(rs.channels, ch);
	CHECK(ss.transferred >= ss.normal_pages * page_size);
	CHECK(ss.transferred == rs.transferred);
	printf("channels %u page %u regions %d len[0] %llu: ok=%d zero %llu normal %llu\n", ch,
	       page_size, nreg, (unsigned long long)lens[0], !src_rc && !ctx.rc,
	       (unsigned long long)rs.duplicate_pages, (unsigned long long)rs.normal_pages);
	lm_sender_free(s);
	lm_receiver_free(r);
	for (int i = 0; i < nreg; i++) {
		munmap(src[i], lens[i] ? lens[i] : 4096);
		munmap(dst[i], lens[i] ? lens[i] : 4096);
	}
}

int main(void)
{
	static const uint32_t chans[] = {1, 2, 4, 8};
	uint64_t len;

	for (unsigned c = 0; c < 4; c++) {
		len = 0;
		run_case(chans[c], 4096, &len, 1, 1);
		len = 4096;
		run_case(chans[c], 4096, &len, 1, 1);
		len = (128 * 3 + 17) * 4096ull; /* not a multiple of the packet */
		run_case(chans[c], 4096, &len, 1, 1);
	}
	len = 1000 * 4096 + 123; /* partial last page */
	run_case(2, 4096, &len, 1, 1);
	len = 77 * 65536 + 4096; /* 64 KiB pages, partial last page */
	run_case(4, 65536, &len, 1, 1);
	uint64_t several[3] = {5 * 4096, 129 * 4096, 0};
	run_case(3, 4096, several, 3, 1);
	/* 1 GiB sparse: mostly zero pages, a few written ones (256 MiB under
	 * the sanitizers, which make the zero scan of every page slow). */
	len = LM_TEST_SLOW ? 256ull << 20 : 1ull << 30;
	for (unsigned c = 0; c < 4; c++)
		run_case(chans[c], 4096, &len, 1, 0);
	TEST_DONE("test_transfer");
}
