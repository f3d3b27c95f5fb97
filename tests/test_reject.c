/*
 * The receiver is a network server: every value it reads must be checked
 * before use. Each case runs an in-process lm_receiver and a hand-written
 * fake sender (plain sockets, frames built with the encoders of src/wire.h)
 * that gets one field wrong, then checks:
 *  - lm_receiver_run() returns the expected code;
 *  - lm_receiver_errmsg() names the field (and "channel N:" where known);
 *  - the fake sender reads back an ERROR frame carrying that code;
 *  - the destination memory around the region is untouched (the region sits
 *    between PROT_NONE guard pages; the slack after a partial last page
 *    holds canary bytes) and, where nothing may land, the region is still
 *    all zero.
 * Expectations follow docs/protocol.md (codes, field names, who gets ERROR,
 * foreign connections). Peer-behaviour cases also use the real lm_sender
 * (intruders during a real migration) and a minimal fake receiver (the
 * sender must stop when a receiver rejects it, and must refuse a receiver's
 * bad ACK(HELLO).features or answer to a round, docs/protocol.md §10, §12).
 * One line per case;
 * arguments select cases by substring of their function name.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "fake_peer.h"

/* ---- hello ------------------------------------------------------------------ */

typedef struct edit {
	uint16_t at;   /* byte offset in the frame (header included) */
	uint8_t width; /* 1, 2, 4, 8; 16 = fill 16 bytes with val */
	uint64_t val;
} edit;

#define HB LM_FRAME_HDR /* hello body offset */

static void apply(uint8_t *b, const edit *ed)
{
	switch (ed->width) {
	case 1: b[ed->at] = (uint8_t)ed->val; break;
	case 2: lm__put16(b + ed->at, (uint16_t)ed->val); break;
	case 4: lm__put32(b + ed->at, (uint32_t)ed->val); break;
	case 8: lm__put64(b + ed->at, ed->val); break;
	default: memset(b + ed->at, (int)ed->val, ed->width); break;
	}
}

/* The first frame of a connection is a good hello with some edits. */
static void hello_case_n(const char *name, const edit *ed, int ned, int code, const char *field)
{
	uint8_t b[LM_FRAME_HDR + LM_HELLO_LEN + 64];
	lm__hello h = mk_hello(0, 1);
	int f0 = lm_test_failures, fd;
	rx x;
	want w = {code, -1, field, 0, 1};

	rx_start(&x, NULL);
	lm__enc_hello(b, &h);
	for (int i = 0; i < ned; i++)
		apply(b, &ed[i]);
	fd = fs_connect(x.port);
	put(fd, b, LM_FRAME_HDR + LM_HELLO_LEN);
	send_region(fd, 0, x.len, "ram");
	refused_outcome(name, &x, fd, &w);
	report(name, f0, &x);
	rx_free(&x);
}

static void hello_case(const char *name, edit ed, int code, const char *field)
{
	hello_case_n(name, &ed, 1, code, field);
}

static void reject_hello_bad_magic(void)
{
	hello_case("hello_bad_magic", (edit){0, 4, 0x4c4d4948}, LM_EBADMAGIC, "frame.magic");
	hello_case("hello_bad_magic_http", (edit){0, 4, 0x47455420 /* "GET " */}, LM_EBADMAGIC,
		   "frame.magic");
}

static void reject_hello_unknown_kind(void)
{
	hello_case("hello_unknown_kind_11", (edit){4, 1, 11}, LM_EKIND, "frame.kind");
	hello_case("hello_unknown_kind_0", (edit){4, 1, 0}, LM_EKIND, "frame.kind");
	hello_case("hello_unknown_kind_255", (edit){4, 1, 255}, LM_EKIND, "frame.kind");
	/* known kinds that are not a hello */
	hello_case("hello_first_frame_data", (edit){4, 1, LM_KIND_DATA}, LM_EKIND, "expected hello");
	hello_case("hello_first_frame_devstate", (edit){4, 1, LM_KIND_DEVSTATE}, LM_EKIND,
		   "expected hello");
	hello_case("hello_first_frame_feedback", (edit){4, 1, LM_KIND_FEEDBACK}, LM_EKIND,
		   "first frame is feedback");
	{
		edit ack[2] = {{4, 1, LM_KIND_ACK}, {8, 4, LM_ACK_LEN}};
		hello_case_n("hello_first_frame_ack", ack, 2, LM_EKIND, "expected hello");
	}
}

static void reject_hello_version(void)
{
	hello_case("hello_version_1", (edit){HB + 0, 2, 1}, LM_EVERSION, "hello.version");
	hello_case("hello_version_3", (edit){HB + 0, 2, 3}, LM_EVERSION, "hello.version");
	hello_case("hello_version_0", (edit){HB + 0, 2, 0}, LM_EVERSION, "hello.version");
}

static void reject_hello_zero_session(void)
{
	hello_case("hello_zero_session", (edit){HB + 4, 16, 0}, LM_ESESSION, "hello.session");
}

static void reject_hello_channels(void)
{
	hello_case("hello_channels_0", (edit){HB + 22, 2, 0}, LM_EFIELD, "hello.channels");
	hello_case("hello_channels_65", (edit){HB + 22, 2, 65}, LM_EFIELD, "hello.channels");
	hello_case("hello_channels_65535", (edit){HB + 22, 2, 65535}, LM_EFIELD, "hello.channels");
}

static void reject_hello_channel_index(void)
{
	hello_case("hello_channel_eq_count", (edit){HB + 20, 2, 1}, LM_EFIELD, "hello.channel ");
	hello_case("hello_channel_65535", (edit){HB + 20, 2, 65535}, LM_EFIELD, "hello.channel ");
}

static void reject_hello_page_size(void)
{
	hello_case("hello_page_size_6144", (edit){HB + 24, 4, 6144}, LM_EFIELD, "hello.page_size");
	hello_case("hello_page_size_2048", (edit){HB + 24, 4, 2048}, LM_EFIELD, "hello.page_size");
	hello_case("hello_page_size_131072", (edit){HB + 24, 4, 131072}, LM_EFIELD,
		   "hello.page_size");
	hello_case("hello_page_size_0", (edit){HB + 24, 4, 0}, LM_EFIELD, "hello.page_size");
	hello_case("hello_page_size_2^31", (edit){HB + 24, 4, 0x80000000u}, LM_EFIELD,
		   "hello.page_size");
}

static void reject_hello_codec(void)
{
	hello_case("hello_codec_7", (edit){HB + 28, 2, 7}, LM_ECODEC, "hello.codec");
	hello_case("hello_codec_65535", (edit){HB + 28, 2, 65535}, LM_ECODEC, "hello.codec");
	/* Codec auto stands or falls with MIXED required. */
	hello_case("hello_codec_auto_without_mixed", (edit){HB + 28, 2, LM_CODEC_AUTO}, LM_ECODEC,
		   "hello.codec 255");
	edit offered[] = {{HB + 28, 2, LM_CODEC_AUTO}, {HB + 40, 8, LM_FEAT_MIXED}};
	hello_case_n("hello_codec_auto_mixed_only_offered", offered, 2, LM_ECODEC, "hello.codec 255");
	hello_case("hello_mixed_required_codec_none", (edit){HB + 48, 8, LM_FEAT_MIXED}, LM_ECODEC,
		   "hello.codec 0 with the mixed feature");
	edit zstd[] = {{HB + 28, 2, LM_CODEC_ZSTD}, {HB + 48, 8, LM_FEAT_MIXED}};
	hello_case_n("hello_mixed_required_codec_zstd", zstd, 2, LM_ECODEC,
		     "hello.codec 2 with the mixed feature");
}

static void reject_hello_packet_pages(void)
{
	hello_case("hello_packet_pages_0", (edit){HB + 32, 4, 0}, LM_EFIELD, "hello.packet_pages");
	hello_case("hello_packet_pages_1025", (edit){HB + 32, 4, 1025}, LM_EFIELD,
		   "hello.packet_pages");
	hello_case("hello_packet_pages_2^32-1", (edit){HB + 32, 4, 0xffffffffu}, LM_EFIELD,
		   "hello.packet_pages");
}

static void reject_hello_region_count(void)
{
	hello_case("hello_region_count_257", (edit){HB + 36, 4, 257}, LM_EFIELD,
		   "hello.region_count");
	hello_case("hello_region_count_2^32-1", (edit){HB + 36, 4, 0xffffffffu}, LM_EFIELD,
		   "hello.region_count");
}

static void reject_hello_required_feature(void)
{
	/* Bits 0..6 (ROUND_ACK, REF, DELTA, MIXED, DEVSTATE, SEALED, PACKED)
	 * are known; bit 7 is the first unknown one (bit 6 was, before
	 * PACKED). */
	hello_case("hello_required_feature", (edit){HB + 48, 8, 128}, LM_EFEATURE, "hello.required");
	edit known[] = {{HB + 48, 8, (LM_FEAT_KNOWN & ~LM_FEAT_SEALED) | 128},
			{HB + 28, 2, LM_CODEC_AUTO}};
	hello_case_n("hello_required_feature_known_and_bit_7", known, 2, LM_EFEATURE,
		     "hello.required");
	/* SEALED needs TLS's exporter: a plaintext receiver refuses it. */
	edit sealed[] = {{HB + 40, 8, LM_FEAT_ROUND_ACK | LM_FEAT_SEALED},
			 {HB + 48, 8, LM_FEAT_SEALED}};
	hello_case_n("hello_sealed_in_plaintext", sealed, 2, LM_EFEATURE, "SEALED");
	hello_case("hello_required_feature_top", (edit){HB + 48, 8, 1ull << 63}, LM_EFEATURE,
		   "hello.required");
}

static void reject_hello_reserved(void)
{
	hello_case("hello_reserved_2", (edit){HB + 2, 2, 1}, LM_EFIELD, "hello.reserved");
	hello_case("hello_reserved_30", (edit){HB + 30, 2, 0x100}, LM_EFIELD, "hello.reserved");
	hello_case("hello_reserved_56", (edit){HB + 56, 8, 1}, LM_EFIELD, "hello.reserved");
	hello_case("hello_reserved_63", (edit){HB + 63, 1, 0x80}, LM_EFIELD, "hello.reserved");
	hello_case("hello_frame_reserved", (edit){6, 2, 1}, LM_EFIELD, "frame.reserved");
}

static void reject_hello_frame_flags(void)
{
	hello_case("hello_frame_flags_1", (edit){5, 1, 1}, LM_EFIELD, "frame.flags");
	hello_case("hello_frame_flags_80", (edit){5, 1, 0x80}, LM_EFIELD, "frame.flags");
}

static void reject_hello_body_length(void)
{
	hello_case("hello_length_65", (edit){8, 4, LM_HELLO_LEN + 1}, LM_EFIELD, "hello.length");
	hello_case("hello_length_2^32-1", (edit){8, 4, 0xffffffffu}, LM_EFIELD, "hello.length");
	hello_case("hello_length_63", (edit){8, 4, LM_HELLO_LEN - 1}, LM_EFIELD, "hello.length");
	hello_case("hello_length_0", (edit){8, 4, 0}, LM_EFIELD, "hello.length");
}

/* The receiver's own channel limit (cfg.max_channels). */
static void reject_hello_max_channels(void)
{
	const char *name = "hello_above_max_channels";
	int f0 = lm_test_failures, fd;
	rxopt o = {0};
	lm__hello h = mk_hello(0, 4);
	want w = {LM_EFIELD, -1, "hello.channels", 0, 1};
	rx x;

	o.max_channels = 2;
	rx_start(&x, &o);
	fd = fs_connect(x.port);
	send_hello(fd, &h);
	send_region(fd, 0, x.len, "ram");
	refused_outcome(name, &x, fd, &w);
	report(name, f0, &x);
	rx_free(&x);
}

/* Channel 1's hello carries the session id but differs from channel 0's:
 * that is the session's own sender, so (docs/protocol.md §4, §12, §14) the
 * session fails with LM_EFIELD and every connection, this one included,
 * gets ERROR. */
static void hello_mismatch_case(const char *name, const lm__hello *h0, const lm__hello *h1,
				const char *field)
{
	int f0 = lm_test_failures, fd[2];
	want w = {LM_EFIELD, -1, field, -2, 1};
	rx x;

	rx_start(&x, NULL);
	fd[0] = fs_connect(x.port);
	send_hello(fd[0], h0);
	send_region(fd[0], 0, x.len, "ram");
	sleep_ms(50); /* channel 0's hello defines the session */
	fd[1] = fs_connect(x.port);
	send_hello(fd[1], h1);
	outcome(name, &x, fd, 2, &w);
	report(name, f0, &x);
	rx_free(&x);
}

static void reject_hello_mismatch(void)
{
	lm__hello h0 = mk_hello(0, 2), h1 = mk_hello(1, 2);

	h1.page_size = 2 * PS;
	hello_mismatch_case("hello_mismatch_same_session", &h0, &h1, "hello");
}

/* A feature must be the same on every channel (docs/protocol.md §12). */
static void reject_hello_features_mismatch(void)
{
	lm__hello h0 = mk_hello(0, 2), h1 = mk_hello(1, 2);

	h0.features = LM_FEAT_ROUND_ACK;
	hello_mismatch_case("hello_features_differ_channel_1_without", &h0, &h1, "features");
	h0.features = 0;
	h1.features = LM_FEAT_ROUND_ACK;
	hello_mismatch_case("hello_features_differ_channel_1_with", &h0, &h1, "features");
}

/* ---- region ----------------------------------------------------------------- */

/* Good hello on channel 0, then the given region frame bytes. */
static void region_case(const char *name, const rxopt *o, uint32_t region_count,
			const uint8_t *frame, size_t n, int code, const char *field)
{
	int f0 = lm_test_failures, fd;
	lm__hello h = mk_hello(0, 1);
	want w = {code, 0, field, 0, 1};
	rx x;

	rx_start(&x, o);
	h.region_count = region_count;
	fd = fs_connect(x.port);
	send_hello(fd, &h);
	put(fd, frame, n);
	outcome(name, &x, &fd, 1, &w);
	report(name, f0, &x);
	rx_free(&x);
}

#define RB LM_FRAME_HDR /* region body offset */

static void reject_region_name_len_0(void)
{
	uint8_t b[300];
	size_t n = enc_region(b, 0, NPAGES * PS, "ram");

	lm__put16(b + RB + 16, 0);
	region_case("region_name_len_0", NULL, 1, b, n, LM_EFIELD, "region.name_len");
	lm__put32(b + 8, LM_REGION_FIXED); /* and a frame that agrees */
	region_case("region_name_len_0_short_frame", NULL, 1, b, LM_FRAME_HDR + LM_REGION_FIXED,
		    LM_EFIELD, "region.name_len");
}

static void reject_region_name_nul(void)
{
	uint8_t b[300];
	size_t n = enc_region(b, 0, NPAGES * PS, "ram");

	b[RB + 20 + 1] = 0; /* "r\0m" */
	region_case("region_name_nul", NULL, 1, b, n, LM_EFIELD, "region.name");
	n = enc_region(b, 0, NPAGES * PS, "ram");
	b[RB + 20 + 3 - 1] = 0; /* "ra\0": the receiver's "ra" must not match */
	region_case("region_name_trailing_nul", NULL, 1, b, n, LM_EFIELD, "region.name");
}

static void reject_region_length_mismatch(void)
{
	uint8_t b[300];
	size_t n = enc_region(b, 0, NPAGES * PS, "ram");

	lm__put32(b + 8, LM_REGION_FIXED + 4); /* one byte more than name_len 3 */
	b[n] = 'x';
	region_case("region_length_above_name", NULL, 1, b, n + 1, LM_EFIELD, "region.length");
	n = enc_region(b, 0, NPAGES * PS, "ram");
	lm__put32(b + 8, LM_REGION_FIXED + 2);
	region_case("region_length_below_name", NULL, 1, b, n - 1, LM_EFIELD, "region.length");
	n = enc_region(b, 0, NPAGES * PS, "ram");
	lm__put32(b + 8, LM_REGION_FIXED - 1);
	region_case("region_length_below_fixed", NULL, 1, b, n, LM_EFIELD, "region.length");
	n = enc_region(b, 0, NPAGES * PS, "ram");
	lm__put32(b + 8, LM_REGION_FIXED + LM_MAX_REGION_NAME + 1);
	region_case("region_length_above_max", NULL, 1, b, n, LM_EFIELD, "region.length");
}

static void reject_region_id_order(void)
{
	uint8_t b[300];
	size_t n = enc_region(b, 1, NPAGES * PS, "ram");

	region_case("region_id_out_of_order", NULL, 1, b, n, LM_EFIELD, "region.id");
	n = enc_region(b, 0xffffffffu, NPAGES * PS, "ram");
	region_case("region_id_huge", NULL, 1, b, n, LM_EFIELD, "region.id");
}

static void reject_region_unknown(void)
{
	uint8_t b[300];
	size_t n = enc_region(b, 0, NPAGES * PS, "rom");

	region_case("region_unknown_without_on_region", NULL, 1, b, n, LM_EREGION, "not registered");
}

static void reject_region_length_differs(void)
{
	uint8_t b[300];
	size_t n = enc_region(b, 0, NPAGES * PS + 1, "ram");

	region_case("region_len_differs_plus_1", NULL, 1, b, n, LM_EREGION, "sender has");
	n = enc_region(b, 0, NPAGES * PS - PS, "ram");
	region_case("region_len_differs_minus_page", NULL, 1, b, n, LM_EREGION, "sender has");
}

static void reject_region_other(void)
{
	uint8_t b[300];
	size_t n = enc_region(b, 0, NPAGES * PS, "ram");
	rxopt cb = {0};

	lm__put32(b + RB + 4, 1);
	region_case("region_reserved", NULL, 1, b, n, LM_EFIELD, "region.reserved");
	n = enc_region(b, 0, NPAGES * PS, "ram");
	b[4] = LM_KIND_SYNC;
	lm__put32(b + 8, LM_SYNC_LEN);
	region_case("region_expected_got_sync", NULL, 1, b, LM_FRAME_HDR + LM_SYNC_LEN, LM_EKIND,
		    "expected region");
	/* the user's region was never announced */
	region_case("region_registered_not_sent", NULL, 0, b, 0, LM_EREGION, "not sent");
	/* the same name twice */
	{
		uint8_t two[600];
		size_t m = enc_region(two, 0, NPAGES * PS, "ram");
		m += enc_region(two + m, 1, NPAGES * PS, "ram");
		region_case("region_name_twice", NULL, 2, two, m, LM_EFIELD, "twice");
	}
	/* on_region: values reach the callback only once checked */
	cb.use_cb = 1;
	cb.no_region = 1;
	n = enc_region(b, 0, 1ull << 63, "vm");
	region_case("region_len_2^63_cb", &cb, 1, b, n, LM_EFIELD, "region.len");
	n = enc_region(b, 0, 1ull << 40, "vm");
	region_case("region_cb_refuses", &cb, 1, b, n, LM_EREGION, "refused");
}

/* ---- data ---------------------------------------------------------------- */

/* A handshaken single-channel session, then frames from build. */
static void data_case_o(const char *name, const rxopt *o, const pkt *pre, int npre, const pkt *p,
			int code, const char *field)
{
	int f0 = lm_test_failures;
	want w = {code, 0, field, 0, npre == 0};
	sess s;

	if (sess_open(&s, o, 1) == 0) {
		for (int i = 0; i < npre; i++)
			send_pkt(s.fd[0], &pre[i]);
		send_pkt(s.fd[0], p);
	}
	outcome(name, &s.x, s.fd, 1, &w);
	if (npre) {
		/* the earlier good packets landed, nothing else */
		uint8_t *exp = calloc(1, s.x.len);
		for (int i = 0; i < npre; i++)
			expect_pages(exp, pre[i].off[0], pre[i].d.normal, pre[i].fill);
		CHECK(memcmp(exp, s.x.base, s.x.len) == 0);
		free(exp);
	}
	report(name, f0, &s.x);
	rx_free(&s.x);
}

static void data_case(const char *name, const pkt *p, int code, const char *field)
{
	data_case_o(name, NULL, NULL, 0, p, code, field);
}

static void reject_data_region_unknown(void)
{
	pkt p = good_pkt(0, 0, 0, 1, 0, 0x11);

	p.d.region = 1;
	data_case("data_region_unknown", &p, LM_EFIELD, "data.region");
	p.d.region = 0xffffffffu;
	data_case("data_region_2^32-1", &p, LM_EFIELD, "data.region");
}

static void reject_data_round(void)
{
	pkt p = good_pkt(0, 1, 0, 1, 0, 0x11);

	data_case("data_wrong_round", &p, LM_EFIELD, "data.round");
}

static void reject_data_pages_0(void)
{
	pkt p = good_pkt(0, 0, 0, 0, 0, 0x11);

	data_case("data_pages_0", &p, LM_EFIELD, "data.pages");
}

static void reject_data_pages_over(void)
{
	/* zero pages keep the frame under the kind's maximum length */
	pkt p = good_pkt(0, 0, 0, 0, PP + 1, 0x11);

	data_case("data_pages_above_packet_pages", &p, LM_EFIELD, "data.pages");
}

static void reject_data_pages_sum(void)
{
	pkt p = good_pkt(0, 0, 0, 1, 1, 0x11);

	p.d.pages = 3;
	data_case("data_pages_not_sum_more", &p, LM_EFIELD, "data.pages");
	p.d.pages = 1;
	data_case("data_pages_not_sum_less", &p, LM_EFIELD, "data.pages");
	/* counts that overflow 32 bits when added */
	p = good_pkt(0, 0, 0, 1, 0, 0x11);
	p.d.zero = 0xffffffffu; /* 1 + 0xffffffff wraps to 0 in 32 bits */
	p.d.pages = PP;
	p.body_set = 1;
	p.body = LM_DATA_HDR + 8 + 4 + PS;
	data_case("data_pages_sum_wraps", &p, LM_EFIELD, "data.pages");
}

static void reject_data_ref(void)
{
	pkt p = good_pkt(0, 0, 0, 1, 0, 0x11);

	p.d.ref = 1;
	p.d.pages = 2;
	p.noff = 4; /* two offsets and the 16-byte ref entry the length counts */
	/* The fake session's hello offers no features: ref and delta pages
	 * were not agreed (test_refs has them agreed). */
	data_case("data_ref_pages", &p, LM_EFEATURE, "data.ref");
	p = good_pkt(0, 0, 0, 1, 0, 0x11);
	p.d.delta = 1;
	p.d.pages = 2;
	p.noff = 3; /* two offsets and the 8-byte delta entry */
	data_case("data_delta_pages", &p, LM_EFEATURE, "data.delta");
}

static void reject_data_codec_flags(void)
{
	pkt p = good_pkt(0, 0, 0, 1, 0, 0x11);

	p.d.codec_flags = 0x0100;
	data_case("data_codec_flags_unknown_bit", &p, LM_EFIELD, "data.codec_flags");
	p.d.codec_flags = 0x8000;
	data_case("data_codec_flags_top_bit", &p, LM_EFIELD, "data.codec_flags");
}

static void reject_data_codec_id(void)
{
	pkt p = good_pkt(0, 0, 0, 1, 0, 0x11);

	p.d.codec_flags = 3;
	data_case("data_codec_not_session_nor_none", &p, LM_ECODEC, "data.codec");
	p.d.codec_flags = 0xff;
	data_case("data_codec_255", &p, LM_ECODEC, "data.codec");
}

static void reject_data_payload_bound(void)
{
	pkt p = good_pkt(0, 0, 0, 1, 0, 0x11);

	p.d.payload = PS + 1;
	p.npay = PS + 1;
	data_case("data_payload_above_bound", &p, LM_EFIELD, "data.payload");
	p = good_pkt(0, 0, 0, 1, 0, 0x11);
	p.d.payload = 0xffffffffu;
	p.npay = 0;
	p.body_set = 1;
	p.body = LM_DATA_HDR + 12 + PS;
	/* No 32-bit frame length can hold such a payload: the length check
	 * (before the bound, docs/protocol.md §6) refuses it. */
	data_case("data_payload_2^32-1", &p, LM_EFIELD, "data.length");
}

static void reject_data_body_length(void)
{
	pkt p = good_pkt(0, 0, 0, 1, 0, 0x11);

	p.body_adj = 1;
	p.npay = PS + 1;
	data_case("data_length_plus_1", &p, LM_EFIELD, "data.length");
	p = good_pkt(0, 0, 0, 1, 0, 0x11);
	p.body_adj = -1;
	p.npay = PS - 1;
	data_case("data_length_minus_1", &p, LM_EFIELD, "data.length");
	p = good_pkt(0, 0, 0, 1, 0, 0x11);
	p.body_set = 1;
	p.body = LM_DATA_HDR - 1;
	p.noff = p.nlen = p.npay = 0;
	data_case("data_length_below_header", &p, LM_EFIELD, "data.length");
	p.body = 0;
	data_case("data_length_0", &p, LM_EFIELD, "data.length");
	p = good_pkt(0, 0, 0, 1, 0, 0x11);
	p.body_set = 1;
	p.body = 0x7fffffffu;
	data_case("data_length_above_kind_max", &p, LM_EFIELD, "data.length");
	p.body = (uint32_t)(LM_DATA_HDR + PP * 20 + PP * PS + 1);
	data_case("data_length_kind_max_plus_1", &p, LM_EFIELD, "data.length");
}

static void reject_data_offset_align(void)
{
	pkt p = good_pkt(0, 0, 0, 1, 0, 0x11);

	p.off[0] = 100;
	data_case("data_offset_unaligned", &p, LM_EFIELD, "data.offset[0]");
	p = good_pkt(0, 0, 0, 1, 1, 0x11);
	p.off[1] = PS + 1; /* the zero page's offset */
	data_case("data_zero_offset_unaligned", &p, LM_EFIELD, "data.offset[1]");
}

static void reject_data_offset_outside(void)
{
	pkt p = good_pkt(0, 0, 0, 1, 0, 0x11);

	p.off[0] = NPAGES * PS;
	data_case("data_offset_eq_region_len", &p, LM_EFIELD, "data.offset[0]");
	p.off[0] = 0xfffffffffffff000ull;
	data_case("data_offset_huge", &p, LM_EFIELD, "data.offset[0]");
	p.off[0] = 1ull << 63;
	data_case("data_offset_2^63", &p, LM_EFIELD, "data.offset[0]");
	/* a good page first: nothing of the packet may land */
	p = good_pkt(0, 0, 0, 2, 0, 0x11);
	p.off[1] = NPAGES * PS;
	data_case("data_offset_second_outside", &p, LM_EFIELD, "data.offset[1]");
	/* zero pages are writes too */
	p = good_pkt(0, 0, 0, 0, 1, 0x11);
	p.off[0] = 0xfffffffffffff000ull;
	data_case("data_zero_offset_huge", &p, LM_EFIELD, "data.offset[0]");
}

static void reject_data_page_length(void)
{
	pkt p = good_pkt(0, 0, 0, 1, 0, 0x11);

	p.plen[0] = 0;
	p.d.payload = 0;
	p.npay = 0;
	data_case("data_page_length_0", &p, LM_EFIELD, "data.length[0]");
	p = good_pkt(0, 0, 0, 2, 0, 0x11);
	p.plen[0] = PS + 1;
	p.plen[1] = PS - 1;
	data_case("data_page_length_above_page", &p, LM_EFIELD, "data.length[0]");
	p = good_pkt(0, 0, 0, 1, 0, 0x11);
	p.plen[0] = 100;
	p.d.payload = 100;
	p.npay = 100;
	data_case("data_page_length_not_page_for_none", &p, LM_EFIELD, "data.length[0]");
	p = good_pkt(0, 0, 0, 1, 0, 0x11);
	p.plen[0] = 0xffffffffu;
	data_case("data_page_length_2^32-1", &p, LM_EFIELD, "data.length[0]");
}

static void reject_data_payload_sum(void)
{
	pkt p = good_pkt(0, 0, 0, 2, 0, 0x11);

	p.d.payload = PS;
	p.npay = PS;
	data_case("data_payload_not_sum", &p, LM_EFIELD, "data.payload");
}

static void reject_data_packet_num(void)
{
	pkt pre = good_pkt(7, 0, 0, 1, 0, 0x11);
	pkt p = good_pkt(7, 0, PS, 1, 0, 0x22);

	data_case_o("data_packet_num_repeated", NULL, &pre, 1, &p, LM_EFIELD, "data.packet_num");
	p.d.packet_num = 3;
	data_case_o("data_packet_num_lower", NULL, &pre, 1, &p, LM_EFIELD, "data.packet_num");
}

/* A page lands once per round: a second copy is refused before it is
 * written (on another channel it would race with the first). */
static void reject_data_page_twice(void)
{
	pkt pre = good_pkt(0, 0, PS, 1, 0, 0x11);
	pkt p = good_pkt(1, 0, PS, 1, 0, 0x22);

	data_case_o("data_page_twice_in_round", NULL, &pre, 1, &p, LM_EFIELD, "sent twice");
	p = good_pkt(1, 0, 0, 1, 1, 0x22);
	p.off[1] = PS; /* its zero page is the one already landed */
	data_case_o("data_zero_page_twice_in_round", NULL, &pre, 1, &p, LM_EFIELD, "sent twice");
}

static void reject_data_tail_padding(void)
{
	rxopt o = {0};
	uint8_t page[PS];
	pkt p = good_pkt(0, 0, 2 * PS, 1, 0, 0);

	o.len = 2 * PS + 100; /* partial last page: canaries in its last 3996 bytes */
	memset(page, 0x33, 100);
	memset(page + 100, 0, PS - 100);
	page[100] = 1;
	p.pay = page;
	data_case_o("data_tail_padding_first_byte", &o, NULL, 0, &p, LM_EFIELD, "region end");
	page[100] = 0;
	page[PS - 1] = 0x80;
	data_case_o("data_tail_padding_last_byte", &o, NULL, 0, &p, LM_EFIELD, "region end");
}

/* ---- sync and complete ------------------------------------------------- */

static void reject_sync_round(void)
{
	const char *name = "sync_wrong_round";
	int f0 = lm_test_failures;
	want w = {LM_EFIELD, 0, "sync.round", 0, 1};
	sess s;

	if (!sess_open(&s, NULL, 1))
		send_sync(s.fd[0], 1, 0);
	outcome(name, &s.x, s.fd, 1, &w);
	report(name, f0, &s.x);
	rx_free(&s.x);
}

static void sync_count_case(const char *name, uint32_t sent, uint64_t claimed)
{
	int f0 = lm_test_failures;
	want w = {LM_EFIELD, 0, "sync.packets", 0, 0};
	sess s;

	if (!sess_open(&s, NULL, 1)) {
		for (uint32_t i = 0; i < sent; i++) {
			pkt p = good_pkt(i, 0, (uint64_t)i * PS, 1, 0, 0x11);
			send_pkt(s.fd[0], &p);
		}
		send_sync(s.fd[0], 0, claimed);
	}
	outcome(name, &s.x, s.fd, 1, &w);
	report(name, f0, &s.x);
	rx_free(&s.x);
}

static void reject_sync_count_low(void) { sync_count_case("sync_packets_lower", 2, 1); }
static void reject_sync_count_high(void) { sync_count_case("sync_packets_higher", 1, 2); }

static void reject_sync_other(void)
{
	const char *name = "sync_reserved";
	int f0 = lm_test_failures;
	want w = {LM_EFIELD, 0, "sync.reserved", 0, 1};
	uint8_t b[LM_FRAME_HDR + LM_SYNC_LEN];
	lm__sync sy = {0, 0};
	sess s;

	if (!sess_open(&s, NULL, 1)) {
		lm__enc_sync(b, &sy);
		b[LM_FRAME_HDR + 4] = 1;
		put(s.fd[0], b, sizeof(b));
	}
	outcome(name, &s.x, s.fd, 1, &w);
	report(name, f0, &s.x);
	rx_free(&s.x);

	name = "sync_length";
	f0 = lm_test_failures;
	w.field = "sync.length";
	if (!sess_open(&s, NULL, 1)) {
		lm__enc_sync(b, &sy);
		lm__put32(b + 8, LM_SYNC_LEN - 1);
		put(s.fd[0], b, sizeof(b) - 1);
	}
	outcome(name, &s.x, s.fd, 1, &w);
	report(name, f0, &s.x);
	rx_free(&s.x);
}

/* One channel: page 0 = 0x11, sync, then COMPLETE with the given entries
 * (sums[0].checksum 0 = the right checksum). */
static void complete_case(const char *name, lm__region_sum *sums, uint32_t n, int flip, int code,
			  const char *field)
{
	int f0 = lm_test_failures;
	want w = {code, 0, field, 0, 0};
	uint8_t *exp = calloc(1, NPAGES * PS);
	pkt p = good_pkt(0, 0, 0, 1, 0, 0x11);
	sess s;

	expect_pages(exp, 0, 1, 0x11);
	if (flip)
		exp[PS - 1] ^= 1; /* the sender's copy changed after it was sent */
	if (n && sums[0].checksum == 0)
		sums[0].checksum = region_sum(exp, NPAGES * PS);
	if (!sess_open(&s, NULL, 1)) {
		send_pkt(s.fd[0], &p);
		send_sync(s.fd[0], 0, 1);
		send_complete(s.fd[0], sums, n);
	}
	outcome(name, &s.x, s.fd, 1, &w);
	if (flip)
		exp[PS - 1] ^= 1;
	CHECK(memcmp(exp, s.x.base, NPAGES * PS) == 0);
	report(name, f0, &s.x);
	rx_free(&s.x);
	free(exp);
}

static void reject_complete_region_count(void)
{
	lm__region_sum sums[2] = {{0, NPAGES * PS, 0}, {1, NPAGES * PS, 1}};

	complete_case("complete_regions_2_of_1", sums, 2, 0, LM_EFIELD, "complete.regions");
	complete_case("complete_regions_0_of_1", sums, 0, 0, LM_EFIELD, "complete.regions");
}

static void reject_complete_length(void)
{
	lm__region_sum sums[1] = {{0, NPAGES * PS + 1, 0}};

	complete_case("complete_wrong_len", sums, 1, 0, LM_EFIELD, "complete.entry[0]");
	sums[0] = (lm__region_sum){1, NPAGES * PS, 0};
	complete_case("complete_wrong_id", sums, 1, 0, LM_EFIELD, "complete.entry[0]");
}

static void reject_complete_checksum(void)
{
	lm__region_sum sums[1] = {{0, NPAGES * PS, 0}};

	complete_case("complete_checksum_mismatch", sums, 1, 1, LM_ECHECKSUM, "checksum");
}

static void reject_complete_channel(void)
{
	const char *name = "complete_on_channel_1";
	int f0 = lm_test_failures;
	want w = {LM_EKIND, 1, "complete", 1, 1};
	lm__region_sum sums[1] = {{0, NPAGES * PS, 0}};
	sess s;

	if (!sess_open(&s, NULL, 2)) {
		uint8_t *exp = calloc(1, NPAGES * PS);
		sums[0].checksum = region_sum(exp, NPAGES * PS);
		free(exp);
		send_sync(s.fd[0], 0, 0);
		send_sync(s.fd[1], 0, 0);
		send_complete(s.fd[1], sums, 1);
	}
	outcome(name, &s.x, s.fd, 2, &w);
	report(name, f0, &s.x);
	rx_free(&s.x);

	name = "complete_before_sync";
	f0 = lm_test_failures;
	w = (want){LM_EKIND, 0, "complete", 0, 1};
	if (!sess_open(&s, NULL, 1))
		send_complete(s.fd[0], sums, 1);
	outcome(name, &s.x, s.fd, 1, &w);
	report(name, f0, &s.x);
	rx_free(&s.x);
}

/* Channel 1 synced round 0 and waits at the round barrier, reading
 * nothing; channel 0 keeps the session alive with round-0 packets, each
 * well within the stall timeout. close_ch1: channel 1's sender closes, which
 * the barrier must notice (LM_EEOF). Else channel 0 never syncs, and the
 * barrier wait must end at the stall timeout (LM_ETIMEDOUT). */
static void barrier_case(const char *name, int close_ch1)
{
	int f0 = lm_test_failures;
	rxopt o;
	want w = {close_ch1 ? LM_EEOF : LM_ETIMEDOUT, 1,
		  close_ch1 ? "still in round 0" : "for the other channels' sync", -1, 0};
	sess s;

	memset(&o, 0, sizeof(o));
	o.timeout_ms = close_ch1 ? 2000 : 300;
	if (!sess_open(&s, &o, 2)) {
		send_sync(s.fd[1], 0, 0);
		if (close_ch1) {
			sleep_ms(50);
			shutdown(s.fd[1], SHUT_WR);
		}
		for (uint32_t i = 0; i < 15 && rx_join_ms(&s.x, 100) != 0; i++) {
			pkt p = good_pkt(i, 0, (i % NPAGES) * PS, 1, 0, (uint8_t)i);
			send_pkt(s.fd[0], &p);
		}
	}
	outcome(name, &s.x, s.fd, 2, &w);
	report(name, f0, &s.x);
	rx_free(&s.x);
}

static void reject_barrier_wait(void)
{
	barrier_case("barrier_channel_closed_while_waiting", 1);
	barrier_case("barrier_wait_timeout", 0);
}

/* The tests watch destination memory while a receiver channel writes it
 * (readv, decoders): the byte read is old or new, which is what they test.
 * That peek is the only such read: hidden from TSan, nothing else is. */
static uint8_t peek_byte(const rx *x, uint64_t off)
{
	uint8_t b;

	lm__tsan_ignore_reads_begin();
	b = __atomic_load_n(&x->base[off], __ATOMIC_RELAXED);
	lm__tsan_ignore_reads_end();
	return b;
}

/* Channel 1 syncs round 0, then sends a packet of round 1 that no SYNC ever
 * accounts for; it must wait for channel 0's sync of round 0 (the round
 * barrier), then land; channel 0 then completes (with a checksum that matches the
 * memory as it is). The session's accounting is broken: the COMPLETE must
 * be refused, not acknowledged. (Such packets can also still be in flight
 * while channel 0 verifies, or land after the ACK.) */
static void reject_complete_unsynced_packets(void)
{
	const char *name = "complete_with_unsynced_packets_on_channel_1";
	int f0 = lm_test_failures, landed = 0;
	lm__region_sum sums[1];
	uint8_t *exp = calloc(1, NPAGES * PS);
	pkt p = good_pkt(0, 1, PS, 1, 0, 0xEE);
	got g[2];
	sess s;

	if (!sess_open(&s, NULL, 2)) {
		send_sync(s.fd[1], 0, 0);
		send_pkt(s.fd[1], &p); /* round 1, after channel 1's last sync */
		/* The round barrier: round 1 lands only once every channel
		 * synced round 0. */
		sleep_ms(50);
		CHECK(peek_byte(&s.x, 2 * PS - 1) != 0xEE);
		send_sync(s.fd[0], 0, 0);
		for (int i = 0; i < 200 && !landed; i++) {
			landed = peek_byte(&s.x, 2 * PS - 1) == 0xEE;
			if (!landed)
				sleep_ms(5);
		}
		CHECK(landed);
		expect_pages(exp, PS, 1, 0xEE);
		sums[0] = (lm__region_sum){0, NPAGES * PS, region_sum(exp, NPAGES * PS)};
		send_complete(s.fd[0], sums, 1);
		if (expect_ack(s.fd[0], LM_KIND_COMPLETE) == 0) {
			CHECK(!"ACK(COMPLETE) withheld");
			fprintf(stderr, "  %s: the receiver acknowledged COMPLETE although channel 1 "
				"sent a packet after its last SYNC\n", name);
		}
	}
	collect(s.fd, 2, g);
	rx_join(&s.x);
	CHECK(s.x.rc != 0);
	CHECK(canaries_ok(&s.x));
	report(name, f0, &s.x);
	rx_free(&s.x);
	free(exp);
}

/* After the ACK(COMPLETE) the memory is verified and lm_receiver_run is to
 * return 0: a DATA frame channel 1 sends right then must never land. The
 * window is a race, so the case tries up to 30 times; a receiver that drops
 * late frames passes every attempt. */
static void reject_data_after_complete(void)
{
	const char *name = "data_after_complete_ack";
	int f0 = lm_test_failures, changed = 0, tries = 0;
	rx last;

	memset(&last, 0, sizeof(last));
	for (; tries < 30 && !changed; tries++) {
		lm__region_sum sums[1];
		uint8_t *exp = calloc(1, NPAGES * PS);
		pkt p0 = good_pkt(0, 0, 0, 1, 0, 0x11), p1 = good_pkt(0, 1, PS, 1, 0, 0xEE);
		size_t n1;
		got g[2];
		sess s;

		if (!sess_open(&s, NULL, 2)) {
			send_sync(s.fd[1], 0, 0);
			send_pkt(s.fd[0], &p0);
			send_sync(s.fd[0], 0, 1);
			expect_pages(exp, 0, 1, 0x11);
			sums[0] = (lm__region_sum){0, NPAGES * PS,
						   region_sum(exp, NPAGES * PS)};
			n1 = build_data(&p1);
			send_complete(s.fd[0], sums, 1);
			if (expect_ack(s.fd[0], LM_KIND_COMPLETE) == 0)
				put(s.fd[1], fbuf, n1);
			else
				CHECK(!"ACK(COMPLETE) of a correct session");
			sleep_ms(20);
		}
		collect(s.fd, s.n, g);
		rx_join(&s.x);
		changed = s.x.rc == 0 && memcmp(exp, s.x.base, NPAGES * PS) != 0;
		CHECK(canaries_ok(&s.x));
		last.rc = s.x.rc;
		rx_free(&s.x);
		free(exp);
	}
	if (changed) {
		CHECK(!changed);
		fprintf(stderr, "  %s: attempt %d: lm_receiver_run returned 0 but a DATA frame sent "
			"after the ACK(COMPLETE) changed the verified memory\n", name, tries);
	}
	report(name, f0, &last);
}

/* ---- features: ROUND_ACK ------------------------------------------------ */

/* A good two-round session whose channel i offers offer[i] in
 * hello.features. The receiver must accept exactly `accept` on every channel
 * (ACK(HELLO).features: the known bits offered, docs/protocol.md §10, §12)
 * and, when that holds ROUND_ACK, answer each round with one ACK(SYNC)
 * carrying the round, on channel 0 only, once every channel synced the
 * round and it is applied. Round 1 re-sends page 0 on the last channel: the
 * ack of round 1 may only come once that copy landed. Without ROUND_ACK no
 * ACK(SYNC) is sent: the frame after COMPLETE is its ACK. */
static void round_ack_case(const char *name, int nch, const uint64_t *offer, uint64_t accept)
{
	int f0 = lm_test_failures, ra = (accept & LM_FEAT_ROUND_ACK) != 0, last = nch - 1;
	uint64_t acked[4];
	uint8_t *exp = calloc(1, NPAGES * PS);
	lm__region_sum sums[1];
	pkt p0 = good_pkt(0, 0, 0, 1, 0, 0x11), p1 = good_pkt(last ? 0 : 1, 1, 0, 1, 0, 0x33);
	lm__ack a;
	sess s;

	if (!sess_open_f(&s, NULL, nch, offer, acked)) {
		for (int i = 0; i < nch; i++) {
			if (acked[i] != accept) {
				CHECK_EQ(acked[i], accept);
				fprintf(stderr, "  %s: channel %d: ACK(HELLO).features 0x%llx, offered "
					"0x%llx, expected 0x%llx\n", name, i,
					(unsigned long long)acked[i], (unsigned long long)offer[i],
					(unsigned long long)accept);
			}
		}
		/* round 0: page 0 on channel 0 */
		send_pkt(s.fd[0], &p0);
		send_sync(s.fd[0], 0, 1);
		if (ra && nch > 1) {
			/* the round is not over before every channel synced it */
			if (!quiet(s.fd[0], 50)) {
				CHECK(!"no ACK(SYNC) before every channel synced");
				fprintf(stderr, "  %s: channel 0 got a frame while channel 1 had not "
					"synced round 0\n", name);
			}
		}
		for (int i = 1; i < nch; i++)
			send_sync(s.fd[i], 0, 0);
		if (ra) {
			CHECK_EQ(expect_ack_a(s.fd[0], LM_KIND_SYNC, &a), 0);
			CHECK_EQ(a.features, 0);
		}
		/* exactly one ack, on channel 0 only */
		for (int i = 0; i < nch; i++)
			CHECK(quiet(s.fd[i], 20));
		/* round 1: page 0 again, newer content, on the last channel */
		send_pkt(s.fd[last], &p1);
		for (int i = 0; i < nch; i++)
			send_sync(s.fd[i], 1, i == last);
		if (ra) {
			CHECK_EQ(expect_ack_a(s.fd[0], LM_KIND_SYNC, &a), 0);
			CHECK_EQ(a.features, 1);
			/* acknowledged means applied */
			CHECK(peek_byte(&s.x, 0) == 0x33 && peek_byte(&s.x, PS - 1) == 0x33);
		}
		for (int i = 0; i < nch; i++)
			CHECK(quiet(s.fd[i], 20));
		expect_pages(exp, 0, 1, 0x33);
		sums[0] = (lm__region_sum){0, NPAGES * PS, region_sum(exp, NPAGES * PS)};
		send_complete(s.fd[0], sums, 1);
		memset(&a, 0, sizeof(a));
		if (expect_ack_a(s.fd[0], LM_KIND_COMPLETE, &a)) {
			CHECK(!"the frame after COMPLETE is ACK(COMPLETE)");
			fprintf(stderr, "  %s: the frame after COMPLETE is no ACK(COMPLETE) (kind %u, "
				"features %llu)\n", name, a.kind, (unsigned long long)a.features);
		} else {
			CHECK_EQ(a.features, 0);
		}
	}
	for (int i = 0; i < s.n; i++)
		close(s.fd[i]);
	rx_join(&s.x);
	CHECK_EQ(s.x.rc, 0);
	CHECK(memcmp(exp, s.x.base, NPAGES * PS) == 0);
	CHECK(canaries_ok(&s.x));
	report(name, f0, &s.x);
	rx_free(&s.x);
	free(exp);
}

static void reject_round_ack(void)
{
	const uint64_t on[2] = {LM_FEAT_ROUND_ACK, LM_FEAT_ROUND_ACK}, off[2] = {0, 0};

	round_ack_case("round_ack_offered_two_channels", 2, on, LM_FEAT_ROUND_ACK);
	round_ack_case("round_ack_offered_one_channel", 1, on, LM_FEAT_ROUND_ACK);
	round_ack_case("round_ack_not_offered_no_sync_ack", 2, off, 0);
}

/* Unknown optional bits are not accepted, and enable nothing. */
static void reject_features_unknown_bits(void)
{
	const uint64_t with[2] = {LM_FEAT_ROUND_ACK | 1u << 7, LM_FEAT_ROUND_ACK | 1u << 7};
	const uint64_t only[2] = {1u << 7 | 1ull << 63, 1u << 7 | 1ull << 63};

	round_ack_case("features_unknown_bit_with_round_ack", 2, with, LM_FEAT_ROUND_ACK);
	round_ack_case("features_unknown_bits_only", 2, only, 0);
}

/* ---- unexpected frames after the handshake --------------------------------- */

static void after_handshake_case(const char *name, const uint8_t *b, size_t n, int code,
				 const char *field)
{
	int f0 = lm_test_failures;
	want w = {code, 0, field, 0, 1};
	sess s;

	if (!sess_open(&s, NULL, 1))
		put(s.fd[0], b, n);
	outcome(name, &s.x, s.fd, 1, &w);
	report(name, f0, &s.x);
	rx_free(&s.x);
}

static void reject_unexpected_kinds(void)
{
	uint8_t b[LM_FRAME_HDR + LM_REGION_FIXED + LM_MAX_REGION_NAME];
	lm__hello h = mk_hello(0, 1);
	lm__ack a;

	after_handshake_case("unexpected_hello", b, lm__enc_hello(b, &h), LM_EKIND, "hello");
	after_handshake_case("unexpected_region", b, enc_region(b, 0, NPAGES * PS, "ram"), LM_EKIND,
			     "region");
	memset(&a, 0, sizeof(a));
	a.kind = LM_KIND_HELLO;
	memcpy(a.session, SESSION, 16);
	after_handshake_case("unexpected_ack", b, lm__enc_ack(b, &a), LM_EKIND, "ack");
	lm__enc_frame(b, 9, 0, 0);
	after_handshake_case("unexpected_unknown_kind", b, LM_FRAME_HDR, LM_EKIND, "frame.kind");
	lm__enc_frame(b, LM_KIND_SYNC, 0, LM_SYNC_LEN);
	lm__put32(b, 0x4c4d4900);
	after_handshake_case("unexpected_bad_magic", b, LM_FRAME_HDR, LM_EBADMAGIC, "frame.magic");
	lm__enc_frame(b, LM_KIND_SYNC, 2, LM_SYNC_LEN);
	after_handshake_case("unexpected_frame_flags", b, LM_FRAME_HDR, LM_EFIELD, "frame.flags");
}

static void reject_peer_error(void)
{
	const char *name = "peer_error_frame";
	int f0 = lm_test_failures;
	want w = {LM_EPEER, 0, "disk on fire", 0, 1};
	uint8_t b[LM_ERROR_FRAME_BOUND];
	sess s;

	if (!sess_open(&s, NULL, 1))
		put(s.fd[0], b, lm__enc_error(b, LM_ECODEC, 0, "disk on fire"));
	outcome(name, &s.x, s.fd, 1, &w);
	report(name, f0, &s.x);
	rx_free(&s.x);

	name = "peer_error_frame_bad_length";
	f0 = lm_test_failures;
	w = (want){LM_EFIELD, 0, "error.", 0, 1};
	if (!sess_open(&s, NULL, 1)) {
		size_t n = lm__enc_error(b, LM_ECODEC, 0, "disk on fire");
		lm__put16(b + LM_FRAME_HDR + 8, 200); /* msg_len beyond the frame */
		put(s.fd[0], b, n);
	}
	outcome(name, &s.x, s.fd, 1, &w);
	report(name, f0, &s.x);
	rx_free(&s.x);
}

/* ---- peer behaviour --------------------------------------------------------- */

/* Header, tables and half a page of a good packet, then EOF or a stall. */
static void partial_case(const char *name, int eof)
{
	int f0 = lm_test_failures;
	rxopt o = {0};
	want w = {eof ? LM_EEOF : LM_ETIMEDOUT, 0, "data.payload", 0, 0};
	pkt p = good_pkt(0, 0, 0, 2, 0, 0x11);
	uint64_t t0;
	sess s;

	o.timeout_ms = 300;
	t0 = now_ms();
	if (!sess_open(&s, &o, 1)) {
		size_t n = build_data(&p);
		put(s.fd[0], fbuf, n - PS - PS / 2);
		if (eof)
			shutdown(s.fd[0], SHUT_WR);
	}
	outcome(name, &s.x, s.fd, 1, &w);
	CHECK(region_zero(&s.x, PS, s.x.len)); /* the second page never arrived */
	if (!eof) {
		uint64_t dt = now_ms() - t0;
		CHECK(dt < 2500);
		printf("  %s: failed after %llu ms (timeout 300 ms)\n", name, (unsigned long long)dt);
	}
	report(name, f0, &s.x);
	rx_free(&s.x);
}

static void reject_peer_eof_mid_packet(void) { partial_case("peer_eof_mid_packet", 1); }
static void reject_peer_stall_mid_packet(void) { partial_case("peer_stall_mid_packet", 0); }

static void reject_peer_eof_between_frames(void)
{
	const char *name = "peer_eof_before_complete";
	int f0 = lm_test_failures;
	want w = {LM_EEOF, 0, NULL, 0, 0};
	pkt p = good_pkt(0, 0, 0, 1, 0, 0x11);
	sess s;

	if (!sess_open(&s, NULL, 1)) {
		send_pkt(s.fd[0], &p);
		send_sync(s.fd[0], 0, 1);
		shutdown(s.fd[0], SHUT_WR);
	}
	outcome(name, &s.x, s.fd, 1, &w);
	report(name, f0, &s.x);
	rx_free(&s.x);
}

static void reject_channels_missing(void)
{
	const char *name = "channels_missing_timeout";
	int f0 = lm_test_failures, fd;
	rxopt o = {0};
	lm__hello h = mk_hello(0, 2);
	want w = {LM_ETIMEDOUT, -1, "channels", 0, 1};
	uint64_t t0 = now_ms(), dt;
	rx x;

	o.timeout_ms = 300;
	rx_start(&x, &o);
	fd = fs_connect(x.port);
	send_hello(fd, &h);
	send_region(fd, 0, x.len, "ram");
	outcome(name, &x, &fd, 1, &w);
	dt = now_ms() - t0;
	CHECK(dt < 2500);
	printf("  %s: failed after %llu ms (timeout 300 ms)\n", name, (unsigned long long)dt);
	report(name, f0, &x);
	rx_free(&x);
}

/* A port probe that never sends a byte is "closed and ignored"
 * (docs/protocol.md §14): the receiver still gives up when no sender
 * arrives within accept_timeout_ms. */
static void reject_silent_probe(void)
{
	const char *name = "silent_probe_then_accept_timeout";
	int f0 = lm_test_failures, fd;
	rxopt o = {0};
	uint64_t t0 = now_ms();
	rx x;

	o.timeout_ms = 300;
	o.accept_timeout_ms = 1000;
	rx_start(&x, &o);
	fd = fs_connect(x.port);
	sleep_ms(500); /* the probe times out (300 ms) and is closed */
	close(fd);
	if (rx_join_ms(&x, 3000)) {
		CHECK(!"lm_receiver_run returned after the accept timeout");
		fprintf(stderr, "  %s: lm_receiver_run still waiting %llu ms after start "
			"(accept_timeout_ms 1000): the probe disarmed the accept timeout\n", name,
			(unsigned long long)(now_ms() - t0));
		/* end it: a bad first hello fails the migration */
		fd = fs_connect(x.port);
		put(fd, "GET / HTTP/1.0\r\n\r\n", 18);
		sleep_ms(100);
		close(fd);
		rx_join(&x);
	} else {
		CHECK_EQ(x.rc, LM_ETIMEDOUT);
	}
	report(name, f0, &x);
	rx_free(&x);

	/* a probe that closes at once, then the real sender: it completes */
	name = "probe_then_migration";
	f0 = lm_test_failures;
	{
		sess s;
		lm__region_sum sums[1];
		uint8_t *exp = calloc(1, NPAGES * PS);
		pkt p = good_pkt(0, 0, 0, 1, 0, 0x11);
		rx_start(&s.x, NULL);
		fd = fs_connect(s.x.port);
		close(fd);
		sleep_ms(50);
		s.n = 1;
		{
			lm__hello h = mk_hello(0, 1);
			s.fd[0] = fs_connect(s.x.port);
			send_hello(s.fd[0], &h);
			send_region(s.fd[0], 0, s.x.len, "ram");
			CHECK_EQ(expect_ack(s.fd[0], LM_KIND_HELLO), 0);
		}
		expect_pages(exp, 0, 1, 0x11);
		sums[0] = (lm__region_sum){0, NPAGES * PS, region_sum(exp, NPAGES * PS)};
		send_pkt(s.fd[0], &p);
		send_sync(s.fd[0], 0, 1);
		send_complete(s.fd[0], sums, 1);
		CHECK_EQ(expect_ack(s.fd[0], LM_KIND_COMPLETE), 0);
		close(s.fd[0]);
		rx_join(&s.x);
		CHECK_EQ(s.x.rc, 0);
		CHECK(memcmp(exp, s.x.base, NPAGES * PS) == 0);
		report(name, f0, &s.x);
		rx_free(&s.x);
		free(exp);
	}
}

/* A correct fake migration over two channels: the harness itself works. */
static void baseline_fake(uint64_t len)
{
	char name[64];
	int f0 = lm_test_failures;
	rxopt o = {0};
	uint8_t *exp;
	lm__region_sum sums[1];
	sess s;
	uint32_t pages = (uint32_t)((len + PS - 1) / PS);
	uint64_t num[2] = {0, 0}, cnt[2] = {0, 0};

	snprintf(name, sizeof(name), "baseline_fake_sender_len_%llu", (unsigned long long)len);
	o.len = len;
	exp = calloc(1, round_up(len));
	if (!sess_open(&s, &o, 2)) {
		/* page i: normal with fill 0x40+i on channel i%2, every third one zero */
		for (uint32_t i = 0; i < pages; i++) {
			int c = (int)(i % 2);
			pkt p = good_pkt(num[c]++, 0, (uint64_t)i * PS, i % 3 ? 1 : 0, i % 3 ? 0 : 1,
					 (uint8_t)(0x40 + i));
			uint8_t page[PS];
			if (i % 3) {
				memset(page, 0x40 + (int)i, PS);
				if ((uint64_t)(i + 1) * PS > len) /* zero padding past the end */
					memset(page + (len - (uint64_t)i * PS), 0, PS - (len - (uint64_t)i * PS));
				memcpy(exp + (uint64_t)i * PS, page, PS);
				p.pay = page;
			}
			send_pkt(s.fd[c], &p);
			cnt[c]++;
		}
		sums[0] = (lm__region_sum){0, len, region_sum(exp, len)};
		send_sync(s.fd[0], 0, cnt[0]);
		send_sync(s.fd[1], 0, cnt[1]);
		send_complete(s.fd[0], sums, 1);
		CHECK_EQ(expect_ack(s.fd[0], LM_KIND_COMPLETE), 0);
		close(s.fd[0]);
		close(s.fd[1]);
	}
	rx_join(&s.x);
	CHECK_EQ(s.x.rc, 0);
	CHECK(memcmp(exp, s.x.base, len) == 0);
	CHECK(canaries_ok(&s.x));
	report(name, f0, &s.x);
	rx_free(&s.x);
	free(exp);
}

/* ---- the real sender, with intruders ----------------------------------------- */

typedef struct intruder {
	int port;
	lm__hello h;
	volatile int sent;
	got g;
	int closed_after; /* the receiver closed the connection after its error */
} intruder;

static void *intruder_main(void *arg)
{
	intruder *in = arg;
	int fd = fs_connect(in->port);
	char c;

	send_hello(fd, &in->h);
	__atomic_store_n(&in->sent, 1, __ATOMIC_RELEASE);
	{
		int dup_fd = dup(fd);
		collect(&dup_fd, 1, &in->g); /* closes dup_fd */
	}
	in->closed_after = in->g.frame && recv(fd, &c, 1, 0) == 0;
	close(fd);
	return NULL;
}

static uint8_t *fill_src(uint64_t len)
{
	uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t x = 0x9E3779B97F4A7C15ull;

	if (p == MAP_FAILED) {
		perror("mmap");
		exit(2);
	}
	for (uint64_t i = 0; i < len; i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(p + i, &x, 8);
	}
	return p;
}

typedef struct tx_run {
	lm_sender *s;
	int rc;
	volatile int done;
} tx_run;

static void *tx_thread(void *arg)
{
	tx_run *t = arg;

	t->rc = lm_sender_run(t->s);
	__atomic_store_n(&t->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* A real migration; an intruder connects once the session is set up.
 * hello NULL: a silent connection that only measures how long it delays
 * the receiver after the migration completed. */
static void real_with_intruder(const char *name, const lm__hello *hello, int want_code)
{
	const uint64_t len = 64ull << 20;
	int f0 = lm_test_failures, src_rc;
	rxopt o = {0};
	lm_sender_config sc;
	lm_sender *s = NULL;
	uint8_t *src = fill_src(len);
	intruder in;
	pthread_t it;
	char addr[64];
	uint64_t t_done, dt;
	rx x;
	int silent_fd = -1, sender_hung = 0;

	o.len = len;
	o.timeout_ms = 5000;
	rx_start(&x, &o);
	memset(&sc, 0, sizeof(sc));
	sc.size = sizeof(sc);
	sc.channels = 2;
	sc.timeout_ms = 10000;
	CHECK_EQ(lm_sender_new(&s, &sc), 0);
	CHECK_EQ(lm_sender_add_region(s, "ram", src, len), 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", x.port);
	src_rc = lm_sender_connect(s, addr);
	CHECK_EQ(src_rc, 0);
	memset(&in, 0, sizeof(in));
	memset(&it, 0, sizeof(it));
	in.port = x.port;
	if (hello) {
		in.h = *hello;
		pthread_create(&it, NULL, intruder_main, &in);
		while (!__atomic_load_n(&in.sent, __ATOMIC_ACQUIRE))
			sleep_ms(1);
	} else {
		silent_fd = fs_connect(x.port);
	}
	if (!src_rc) {
		/* In its own thread: a sender that hangs must not hang the suite. */
		tx_run tr = {s, 0, 0};
		pthread_t tt;
		struct timespec ts;
		pthread_create(&tt, NULL, tx_thread, &tr);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 8;
		if (pthread_timedjoin_np(tt, NULL, &ts)) {
			CHECK(!"lm_sender_run returned");
			fprintf(stderr, "  %s: lm_sender_run has not returned after 8 s (hung); "
				"leaking the sender\n", name);
			sender_hung = 1;
		} else {
			src_rc = tr.rc;
		}
	}
	t_done = now_ms();
	CHECK_EQ(src_rc, 0);
	if (src_rc)
		fprintf(stderr, "  %s: sender: %s\n", name, lm_sender_errmsg(s));
	if (hello) {
		pthread_join(it, NULL);
		CHECK(in.g.frame);
		if (in.g.frame) {
			CHECK_EQ(in.g.code, want_code);
			CHECK(in.closed_after);
		} else {
			fprintf(stderr, "  %s: the intruder read no ERROR frame\n", name);
		}
	}
	rx_join(&x);
	dt = now_ms() - t_done;
	if (silent_fd >= 0) {
		/* After the verified completion the receiver must not wait out
		 * its stall timeout (5 s here) for a stranger that never spoke;
		 * it refuses it with an error frame (drained for up to 1 s). */
		printf("  %s: lm_receiver_run returned %llu ms after the sender finished\n", name,
		       (unsigned long long)dt);
		CHECK(dt < 2500);
		close(silent_fd);
	}
	CHECK_EQ(x.rc, 0);
	if (x.rc)
		fprintf(stderr, "  %s: receiver: %s\n", name, lm_receiver_errmsg(x.r));
	CHECK(memcmp(src, x.base, len) == 0);
	CHECK(canaries_ok(&x));
	report(name, f0, &x);
	rx_free(&x);
	if (!sender_hung) {
		lm_sender_free(s);
		munmap(src, len);
	}
}

static void reject_intruder_session(void)
{
	lm__hello h = mk_hello(0, 2);

	memcpy(h.session, OTHER, 16);
	real_with_intruder("intruder_other_session", &h, LM_ESESSION);
}

/* A malformed hello from a stranger must not end someone else's migration
 * any more than a well-formed one does. */
static void reject_intruder_bad_hello(void)
{
	lm__hello h = mk_hello(0, 2);

	memcpy(h.session, OTHER, 16);
	h.channels = 0;
	real_with_intruder("intruder_malformed_hello", &h, LM_EFIELD);
}

static void reject_intruder_idle(void)
{
	real_with_intruder("intruder_idle_connection", NULL, 0);
}

/* ---- a receiver's rejection, seen by the real sender ---------------------- */

/* What the fake receiver does once it acknowledged both hellos. */
enum {
	FRX_REJECT, /* reads `drain` bytes of channel 0, then sends ERROR on it */
	FRX_ROUND,  /* reads both channels up to their SYNC, then answers the round
		     * on channel 0 with `reply`; the right ACK(SYNC) also answers
		     * COMPLETE */
	FRX_LISTEN, /* sends nothing more */
};

enum { FRX_ACK, FRX_ERROR, FRX_SILENT }; /* FRX_ROUND's reply */

typedef struct fake_rx {
	int lfd, fd[2];        /* by channel index */
	int mode;
	uint64_t drain;        /* FRX_REJECT: bytes to read from channel 0 before rejecting */
	uint64_t features[2];  /* ACK(HELLO).features per channel */
	int reply;
	uint8_t ack_kind;      /* FRX_ACK: the ack's kind, 0 = SYNC */
	uint64_t ack_round;    /* its features: the round acknowledged */
	int ack_other_session; /* its session: OTHER, not the sender's */
	int stop;              /* atomic: the test tells the fake receiver to end */
	int ok;                /* the test reads it after the join */
	/* what the sender sent */
	lm__hello hello[2];
	int data, syncs, completes;
	int errors;            /* ERROR frames, all channels */
	int32_t err_code;      /* the first one's code */
} fake_rx;

/* Reads one frame; a body above cap is read and dropped. 0 or -1. */
static int frx_frame(int fd, lm__frame *fr, uint8_t *body, size_t cap)
{
	uint8_t h[LM_FRAME_HDR], sink[4096];
	lm__err e;

	if (get(fd, h, sizeof(h)) || lm__dec_frame(h, fr, &e))
		return -1;
	if (fr->len <= cap)
		return get(fd, body, fr->len);
	for (uint32_t left = fr->len; left;) {
		uint32_t n = left < sizeof(sink) ? left : (uint32_t)sizeof(sink);
		if (get(fd, sink, n))
			return -1;
		left -= n;
	}
	return 0;
}

static void frx_note(fake_rx *f, const lm__frame *fr, const uint8_t *body)
{
	lm__error_msg m;
	lm__err e;

	switch (fr->kind) {
	case LM_KIND_DATA: f->data++; break;
	case LM_KIND_SYNC: f->syncs++; break;
	case LM_KIND_COMPLETE: f->completes++; break;
	case LM_KIND_ERROR:
		if (!f->errors++ && lm__dec_error(body, fr->len, &m, &e) == 0)
			f->err_code = m.code;
		break;
	default: break;
	}
}

/* Reads what the sender still sends until it closes both channels. After
 * its ERROR on a channel, half-closes that one, so the sender's drain
 * (docs/protocol.md §14) ends at once rather than after 1 s. */
static void frx_tail(fake_rx *f)
{
	uint8_t body[LM_ERROR_FRAME_BOUND];
	uint64_t end = now_ms() + 8000;

	while (!__atomic_load_n(&f->stop, __ATOMIC_RELAXED) && now_ms() < end &&
	       (f->fd[0] >= 0 || f->fd[1] >= 0)) {
		struct pollfd p[2];
		for (int i = 0; i < 2; i++)
			p[i] = (struct pollfd){f->fd[i], POLLIN, 0};
		if (poll(p, 2, 100) <= 0)
			continue;
		for (int i = 0; i < 2; i++) {
			lm__frame fr;
			if (!p[i].revents)
				continue;
			if (frx_frame(f->fd[i], &fr, body, sizeof(body))) {
				close(f->fd[i]);
				f->fd[i] = -1;
				continue;
			}
			frx_note(f, &fr, body);
			if (fr.kind == LM_KIND_ERROR)
				shutdown(f->fd[i], SHUT_WR);
		}
	}
}

/* Accepts both channels, reads their hellos and channel 0's regions, and
 * acknowledges each hello with features[channel]. */
static int frx_handshake(fake_rx *f)
{
	uint8_t b[LM_REGION_FIXED + LM_MAX_REGION_NAME];
	struct timeval tv = {3, 0};

	for (int i = 0; i < 2; i++) {
		struct pollfd p = {f->lfd, POLLIN, 0};
		lm__frame fr;
		lm__hello h;
		lm__err e;
		int fd;
		if (poll(&p, 1, 5000) != 1 || (fd = accept(f->lfd, NULL, NULL)) < 0)
			return -1;
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		if (get_frame(fd, &fr, b, sizeof(b)) || fr.kind != LM_KIND_HELLO ||
		    lm__dec_hello(b, fr.len, &h, &e) || h.channel > 1 || f->fd[h.channel] >= 0) {
			close(fd);
			return -1;
		}
		f->fd[h.channel] = fd;
		f->hello[h.channel] = h;
		for (uint32_t k = 0; h.channel == 0 && k < h.region_count; k++)
			if (get_frame(fd, &fr, b, sizeof(b)))
				return -1;
	}
	for (int i = 0; i < 2; i++) {
		lm__ack a;
		memset(&a, 0, sizeof(a));
		a.kind = LM_KIND_HELLO;
		a.features = f->features[i];
		memcpy(a.session, f->hello[0].session, 16);
		put(f->fd[i], b, lm__enc_ack(b, &a));
	}
	return 0;
}

/* Takes data on channel 0 only (channel 1's writes block), then rejects. */
static void frx_reject(fake_rx *f)
{
	uint8_t sink[65536];
	uint64_t got_bytes = 0, end;

	while (got_bytes < f->drain) {
		ssize_t r = recv(f->fd[0], sink, sizeof(sink), 0);
		if (r <= 0)
			return;
		got_bytes += (uint64_t)r;
	}
	{
		uint8_t eb[LM_ERROR_FRAME_BOUND];
		put(f->fd[0], eb, lm__enc_error(eb, LM_EFIELD, 0, "channel 0: test rejection"));
	}
	shutdown(f->fd[0], SHUT_WR);
	f->ok = 1;
	/* drain channel 0 until the sender closes it (or we are told to stop) */
	end = now_ms() + 8000;
	while (!__atomic_load_n(&f->stop, __ATOMIC_RELAXED) && now_ms() < end) {
		struct pollfd p = {f->fd[0], POLLIN, 0};
		if (poll(&p, 1, 100) == 1 && recv(f->fd[0], sink, sizeof(sink), 0) <= 0)
			break;
	}
}

/* Reads channel c's frames up to one of kind; 0, or -1 (closed, an ERROR,
 * or nothing within 3 s). */
static int frx_until(fake_rx *f, int c, uint8_t kind)
{
	uint8_t body[LM_ERROR_FRAME_BOUND];
	lm__frame fr;

	do {
		if (frx_frame(f->fd[c], &fr, body, sizeof(body)))
			return -1;
		frx_note(f, &fr, body);
		if (fr.kind == LM_KIND_ERROR)
			return -1;
	} while (fr.kind != kind);
	return 0;
}

static void frx_round(fake_rx *f)
{
	uint8_t b[LM_ERROR_FRAME_BOUND];
	lm__ack a;

	/* Small sessions: channel 1's round fits in the socket buffers while
	 * channel 0's is read. */
	if (frx_until(f, 0, LM_KIND_SYNC) || frx_until(f, 1, LM_KIND_SYNC))
		return;
	memset(&a, 0, sizeof(a));
	a.kind = f->ack_kind ? f->ack_kind : LM_KIND_SYNC;
	a.features = f->ack_round;
	memcpy(a.session, f->ack_other_session ? OTHER : f->hello[0].session, 16);
	if (f->reply == FRX_ACK)
		put(f->fd[0], b, lm__enc_ack(b, &a));
	else if (f->reply == FRX_ERROR)
		put(f->fd[0], b, lm__enc_error(b, LM_EFIELD, 0, "channel 1: test round refusal"));
	f->ok = 1;
	if (f->reply == FRX_ACK && a.kind == LM_KIND_SYNC && a.features == 0 &&
	    !f->ack_other_session) {
		/* the right answer: the sender completes */
		f->ok = 0;
		if (frx_until(f, 0, LM_KIND_COMPLETE))
			return;
		memset(&a, 0, sizeof(a));
		a.kind = LM_KIND_COMPLETE;
		memcpy(a.session, f->hello[0].session, 16);
		put(f->fd[0], b, lm__enc_ack(b, &a));
		f->ok = 1;
	}
}

static void *fake_rx_main(void *arg)
{
	fake_rx *f = arg;

	f->fd[0] = f->fd[1] = -1;
	if (frx_handshake(f))
		return NULL;
	if (f->mode == FRX_REJECT) {
		frx_reject(f);
		return NULL;
	}
	if (f->mode == FRX_ROUND)
		frx_round(f);
	else
		f->ok = 1;
	frx_tail(f);
	return NULL;
}

/* Listens on a loopback port (rcvbuf: SO_RCVBUF, 0 = default) and starts the
 * fake receiver thread; addr receives "127.0.0.1:port". */
static void frx_start(fake_rx *f, pthread_t *t, int rcvbuf, char *addr, size_t cap)
{
	struct sockaddr_in a;
	socklen_t al = sizeof(a);

	memset(&a, 0, sizeof(a));
	f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (rcvbuf)
		setsockopt(f->lfd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (f->lfd < 0 || bind(f->lfd, (struct sockaddr *)&a, sizeof(a)) || listen(f->lfd, 4) ||
	    getsockname(f->lfd, (struct sockaddr *)&a, &al)) {
		perror("fake receiver");
		exit(2);
	}
	snprintf(addr, cap, "127.0.0.1:%d", ntohs(a.sin_port));
	if (pthread_create(t, NULL, fake_rx_main, f)) {
		fprintf(stderr, "pthread_create failed\n");
		exit(2);
	}
}

static void frx_end(fake_rx *f, pthread_t t)
{
	__atomic_store_n(&f->stop, 1, __ATOMIC_RELAXED);
	pthread_join(t, NULL);
	for (int i = 0; i < 2; i++)
		if (f->fd[i] >= 0)
			close(f->fd[i]);
	close(f->lfd);
}

static void reject_sender_stops_after_receiver_error(void)
{
	const char *name = "sender_returns_after_receiver_error";
	const uint64_t len = 32ull << 20;
	int f0 = lm_test_failures, small = 64 << 10, rc = 0, hung = 0;
	uint8_t *src = fill_src(len);
	lm_sender_config sc;
	lm_sender *s = NULL;
	fake_rx f;
	pthread_t ft, tt;
	char addr[64];
	uint64_t t0;
	rx dummy;

	memset(&f, 0, sizeof(f));
	memset(&dummy, 0, sizeof(dummy));
	f.mode = FRX_REJECT;
	f.drain = 1u << 20;
	frx_start(&f, &ft, small, addr, sizeof(addr));
	memset(&sc, 0, sizeof(sc));
	sc.size = sizeof(sc);
	sc.channels = 2;
	/* Longer than channel 0 needs to push `drain` bytes under TSan on a
	 * loaded machine (a 1 s timeout let channel 1's stall win the race
	 * there), shorter than the 6 s join: a sender that only returns
	 * through its own timeout still fails the check below. */
	sc.timeout_ms = 4000;
	sc.sndbuf = small;
	CHECK_EQ(lm_sender_new(&s, &sc), 0);
	CHECK_EQ(lm_sender_add_region(s, "ram", src, len), 0);
	t0 = now_ms();
	rc = lm_sender_connect(s, addr);
	CHECK_EQ(rc, 0);
	if (!rc) {
		tx_run tr = {s, 0, 0};
		struct timespec ts;
		pthread_create(&tt, NULL, tx_thread, &tr);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 6;
		if (pthread_timedjoin_np(tt, NULL, &ts)) {
			hung = 1;
			CHECK(!"lm_sender_run returned");
			fprintf(stderr, "  %s: lm_sender_run has not returned 6 s after the receiver's "
				"ERROR (channel 1 was blocked writing); leaking the sender\n", name);
		} else {
			rc = tr.rc;
			printf("  %s: lm_sender_run returned %d after %llu ms: %s\n", name, rc,
			       (unsigned long long)(now_ms() - t0), lm_sender_errmsg(s));
			CHECK_EQ(rc, LM_EPEER);
			CHECK(strstr(lm_sender_errmsg(s), "test rejection") != NULL);
		}
	}
	frx_end(&f, ft);
	CHECK(f.ok);
	dummy.rc = rc;
	report(name, f0, &dummy);
	if (!hung) {
		lm_sender_free(s);
		munmap(src, len);
	}
}

/* ---- ROUND_ACK, seen by the real sender ----------------------------------- */

enum { TX_CONNECT, TX_RUN, TX_MIGRATE };

typedef struct tx_job {
	lm_sender *s;
	const char *addr;
	int what;                  /* TX_CONNECT: connect only; else connect, then run/migrate */
	const lm_live_config *live;
	int connect_rc, rc;
	uint64_t ms;               /* the last call's duration */
} tx_job;

static void *tx_job_main(void *arg)
{
	tx_job *j = arg;
	uint64_t t0 = now_ms();

	j->rc = j->connect_rc = lm_sender_connect(j->s, j->addr);
	if (!j->rc && j->what != TX_CONNECT) {
		t0 = now_ms();
		j->rc = j->what == TX_RUN ? lm_sender_run(j->s) : lm_sender_migrate(j->s, j->live);
	}
	j->ms = now_ms() - t0;
	return NULL;
}

/* lm_sender_config.no_dedup and no_delta of the next sender_case. */
static int tx_no_dedup, tx_no_delta;

/* The real sender (2 channels, 64 pages, timeout_ms) against the fake f:
 * `what` must end with code, and on failure name field in lm_sender_errmsg()
 * and tell the receiver with ERROR(code) on both channels (docs/protocol.md
 * §14). For TX_RUN and TX_MIGRATE the connect must succeed. Returns the
 * failing (or last) call's duration in ms. */
static uint64_t sender_case(const char *name, fake_rx *f, int what, int timeout_ms,
			    const lm_live_config *live, int code, const char *field)
{
	const uint64_t len = 64 * PS;
	uint8_t *src = fill_src(len);
	lm_sender_config sc;
	tx_job j;
	pthread_t ft, tt;
	char addr[64];
	struct timespec ts;
	int hung = 0;

	frx_start(f, &ft, 0, addr, sizeof(addr));
	memset(&sc, 0, sizeof(sc));
	sc.size = sizeof(sc);
	sc.channels = 2;
	sc.packet_pages = 16;
	sc.timeout_ms = timeout_ms;
	sc.no_dedup = tx_no_dedup;
	sc.no_delta = tx_no_delta;
	memset(&j, 0, sizeof(j));
	j.addr = addr;
	j.what = what;
	j.live = live;
	CHECK_EQ(lm_sender_new(&j.s, &sc), 0);
	CHECK_EQ(lm_sender_add_region(j.s, "ram", src, len), 0);
	pthread_create(&tt, NULL, tx_job_main, &j);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 8;
	if (pthread_timedjoin_np(tt, NULL, &ts)) {
		hung = 1;
		CHECK(!"the sender returned");
		fprintf(stderr, "  %s: the sender has not returned after 8 s (hung); leaking it\n",
			name);
	} else {
		const char *msg = lm_sender_errmsg(j.s);
		const char *call = j.connect_rc || what == TX_CONNECT ? "lm_sender_connect"
				   : what == TX_RUN ? "lm_sender_run" : "lm_sender_migrate";
		printf("  %s: %s returned %d after %llu ms: %s\n", name, call, j.rc,
		       (unsigned long long)j.ms, msg);
		if (what != TX_CONNECT)
			CHECK_EQ(j.connect_rc, 0);
		CHECK_EQ(j.rc, code);
		if (field && !strstr(msg, field)) {
			CHECK(strstr(msg, field) != NULL);
			fprintf(stderr, "  %s: errmsg \"%s\" does not name \"%s\"\n", name, msg, field);
		}
	}
	frx_end(f, ft);
	if (code && !hung) {
		if (f->errors != 2 || f->err_code != code) {
			CHECK_EQ(f->errors, 2);
			CHECK_EQ(f->err_code, code);
			fprintf(stderr, "  %s: the receiver read %d ERROR frames (first code %d)\n",
				name, f->errors, f->err_code);
		}
	}
	if (!hung) {
		lm_sender_free(j.s);
		munmap(src, len);
	}
	return hung ? ~0ull : j.ms;
}

static void report_tx(const char *name, int f0)
{
	printf("reject %s: %s\n", name, lm_test_failures == f0 ? "ok" : "FAILED");
	fflush(stdout);
}

/* The fake receiver itself: it accepts ROUND_ACK only, acknowledges round 0
 * and COMPLETE, and the sender completes. The sender offers ROUND_ACK and
 * PACKED, and REF and DELTA unless no_dedup / no_delta, and requires
 * nothing, on every channel (docs/protocol.md §12). */
static void round_ack_baseline(const char *name, int no_dedup, int no_delta)
{
	uint64_t offer = LM_FEAT_ROUND_ACK | LM_FEAT_PACKED | (no_dedup ? 0 : LM_FEAT_REF) |
			 (no_delta ? 0 : LM_FEAT_DELTA);
	int f0 = lm_test_failures;
	fake_rx f;

	memset(&f, 0, sizeof(f));
	f.mode = FRX_ROUND;
	f.features[0] = f.features[1] = LM_FEAT_ROUND_ACK;
	tx_no_dedup = no_dedup;
	tx_no_delta = no_delta;
	sender_case(name, &f, TX_RUN, 2000, NULL, 0, NULL);
	tx_no_dedup = tx_no_delta = 0;
	CHECK(f.ok);
	for (int i = 0; i < 2; i++) {
		CHECK_EQ(f.hello[i].features, offer);
		CHECK_EQ(f.hello[i].required, 0);
	}
	CHECK_EQ(f.syncs, 2);
	CHECK_EQ(f.completes, 1);
	CHECK(f.data > 0);
	CHECK_EQ(f.errors, 0);
	report_tx(name, f0);
}

static void reject_sender_round_ack_baseline(void)
{
	round_ack_baseline("sender_round_ack_fake_baseline", 0, 0);
	round_ack_baseline("sender_round_ack_fake_baseline_no_dedup", 1, 0);
	round_ack_baseline("sender_round_ack_fake_baseline_no_delta", 0, 1);
	round_ack_baseline("sender_round_ack_fake_baseline_no_dedup_no_delta", 1, 1);
}

/* ACK(HELLO).features: a subset of what the sender offered, the same on
 * every channel; else lm_sender_connect fails (docs/protocol.md §10). */
static void ack_features_case(const char *name, uint64_t ch0, uint64_t ch1)
{
	int f0 = lm_test_failures;
	fake_rx f;

	memset(&f, 0, sizeof(f));
	f.mode = FRX_LISTEN;
	f.features[0] = ch0;
	f.features[1] = ch1;
	sender_case(name, &f, TX_CONNECT, 2000, NULL, LM_EFIELD, "ack.features");
	CHECK_EQ(f.data + f.syncs + f.completes, 0);
	report_tx(name, f0);
}

static void reject_sender_ack_features(void)
{
	/* Bit 3 is no feature; REF and DELTA are only accepted when offered. */
	ack_features_case("sender_ack_features_unknown_bit", 8, 8);
	tx_no_dedup = 1;
	ack_features_case("sender_ack_features_ref_not_offered", 3, 3);
	tx_no_dedup = 0;
	tx_no_delta = 1;
	ack_features_case("sender_ack_features_delta_not_offered", 5, 5);
	tx_no_delta = 0;
	ack_features_case("sender_ack_features_unknown_top_bit", 1 | 1ull << 63, 1 | 1ull << 63);
	ack_features_case("sender_ack_features_differ_1_0", LM_FEAT_ROUND_ACK, 0);
	ack_features_case("sender_ack_features_differ_0_1", 0, LM_FEAT_ROUND_ACK);
}

/* The receiver accepted ROUND_ACK; its answer to round 0 is wrong. */
static void round_reply_case(const char *name, int reply, uint8_t kind, uint64_t round,
			     int other_session, int timeout_ms, int code, const char *field)
{
	int f0 = lm_test_failures;
	uint64_t ms;
	fake_rx f;

	memset(&f, 0, sizeof(f));
	f.mode = FRX_ROUND;
	f.features[0] = f.features[1] = LM_FEAT_ROUND_ACK;
	f.reply = reply;
	f.ack_kind = kind;
	f.ack_round = round;
	f.ack_other_session = other_session;
	ms = sender_case(name, &f, TX_RUN, timeout_ms, NULL, code, field);
	CHECK(f.ok);
	CHECK_EQ(f.completes, 0); /* nothing after the bad answer */
	if (reply == FRX_SILENT) {
		/* the wait for the ack is one wait for progress: timeout_ms */
		CHECK(ms >= (uint64_t)timeout_ms - 10);
		CHECK(ms < (uint64_t)timeout_ms + 1500);
	}
	report_tx(name, f0);
}

static void reject_sender_round_ack(void)
{
	round_reply_case("sender_ack_of_wrong_round_7", FRX_ACK, 0, 7, 0, 2000, LM_EFIELD,
			 "ack of round");
	round_reply_case("sender_ack_of_round_1_early", FRX_ACK, 0, 1, 0, 2000, LM_EFIELD,
			 "ack of round");
	round_reply_case("sender_ack_of_round_2^32", FRX_ACK, 0, 1ull << 32, 0, 2000, LM_EFIELD,
			 "ack of round");
	round_reply_case("sender_round_ack_other_session", FRX_ACK, 0, 0, 1, 2000, LM_ESESSION,
			 "ack.session");
	round_reply_case("sender_round_ack_of_complete", FRX_ACK, LM_KIND_COMPLETE, 0, 0, 2000,
			 LM_EFIELD, "ack.kind");
	round_reply_case("sender_round_ack_of_hello", FRX_ACK, LM_KIND_HELLO, 0, 0, 2000,
			 LM_EFIELD, "ack.kind");
	round_reply_case("sender_round_error_frame", FRX_ERROR, 0, 0, 0, 2000, LM_EPEER,
			 "test round refusal");
	round_reply_case("sender_round_ack_silence", FRX_SILENT, 0, 0, 0, 300, LM_ETIMEDOUT, NULL);
}

typedef struct live_calls {
	int pause, resume, dirty_log;
} live_calls;

static int lc_pause(void *u)
{
	((live_calls *)u)->pause++;
	return 0;
}

static void lc_resume(void *u)
{
	((live_calls *)u)->resume++;
}

static int lc_dirty_log(void *u, uint32_t region, uint64_t *bitmap, uint64_t pages)
{
	(void)region;
	(void)bitmap;
	(void)pages;
	((live_calls *)u)->dirty_log++;
	return 0;
}

/* A receiver without ROUND_ACK has no round barrier: lm_sender_migrate
 * refuses before anything is sent or paused (docs/protocol.md §12). */
static void reject_sender_migrate_without_round_ack(void)
{
	const char *name = "sender_migrate_receiver_without_round_ack";
	int f0 = lm_test_failures;
	live_calls calls = {0, 0, 0};
	lm_live_config lc;
	fake_rx f;

	memset(&f, 0, sizeof(f));
	f.mode = FRX_LISTEN; /* accepts no feature */
	memset(&lc, 0, sizeof(lc));
	lc.size = sizeof(lc);
	lc.dirty = LM_DIRTY_CALLBACK;
	lc.dirty_log = lc_dirty_log;
	lc.pause = lc_pause;
	lc.resume = lc_resume;
	lc.user = &calls;
	sender_case(name, &f, TX_MIGRATE, 1000, &lc, LM_EFEATURE, "does not acknowledge rounds");
	CHECK_EQ(calls.pause, 0);
	CHECK_EQ(calls.resume, 0);
	CHECK_EQ(calls.dirty_log, 0);
	CHECK_EQ(f.data + f.syncs + f.completes, 0);
	report_tx(name, f0);
}

/* The right session id, a channel index already taken: refused, and the
 * session goes on to a verified completion. */
static void reject_duplicate_channel(void)
{
	const char *name = "duplicate_channel_index";
	int f0 = lm_test_failures, dfd;
	lm__hello h = mk_hello(1, 2);
	lm__region_sum sums[1];
	uint8_t *exp = calloc(1, NPAGES * PS);
	pkt p0 = good_pkt(0, 0, 0, 1, 0, 0x11), p1 = good_pkt(0, 0, PS, 1, 0, 0x22);
	got g;
	char c;
	sess s;

	if (!sess_open(&s, NULL, 2)) {
		dfd = fs_connect(s.x.port);
		send_hello(dfd, &h);
		{
			int d2 = dup(dfd);
			collect(&d2, 1, &g);
		}
		CHECK(g.frame);
		CHECK_EQ(g.code, LM_ESESSION);
		CHECK(strstr(g.msg, "hello.channel") != NULL);
		CHECK(g.frame && recv(dfd, &c, 1, 0) == 0); /* and closed */
		close(dfd);
		/* the session is unharmed */
		expect_pages(exp, 0, 1, 0x11);
		expect_pages(exp, PS, 1, 0x22);
		sums[0] = (lm__region_sum){0, NPAGES * PS, region_sum(exp, NPAGES * PS)};
		send_pkt(s.fd[0], &p0);
		send_pkt(s.fd[1], &p1);
		send_sync(s.fd[0], 0, 1);
		send_sync(s.fd[1], 0, 1);
		send_complete(s.fd[0], sums, 1);
		CHECK_EQ(expect_ack(s.fd[0], LM_KIND_COMPLETE), 0);
		close(s.fd[0]);
		close(s.fd[1]);
	}
	rx_join(&s.x);
	CHECK_EQ(s.x.rc, 0);
	CHECK(memcmp(exp, s.x.base, NPAGES * PS) == 0);
	CHECK(canaries_ok(&s.x));
	report(name, f0, &s.x);
	rx_free(&s.x);
	free(exp);
}

static void reject_baseline(void)
{
	baseline_fake(NPAGES * PS);
	baseline_fake(2 * PS + 100);
}

static const struct {
	const char *name;
	void (*fn)(void);
} cases[] = {
#define C(f) {#f, f}
	C(reject_baseline),
	C(reject_hello_bad_magic),
	C(reject_hello_unknown_kind),
	C(reject_hello_version),
	C(reject_hello_zero_session),
	C(reject_hello_channels),
	C(reject_hello_channel_index),
	C(reject_hello_page_size),
	C(reject_hello_codec),
	C(reject_hello_packet_pages),
	C(reject_hello_region_count),
	C(reject_hello_required_feature),
	C(reject_hello_reserved),
	C(reject_hello_frame_flags),
	C(reject_hello_body_length),
	C(reject_hello_max_channels),
	C(reject_hello_mismatch),
	C(reject_hello_features_mismatch),
	C(reject_region_name_len_0),
	C(reject_region_name_nul),
	C(reject_region_length_mismatch),
	C(reject_region_id_order),
	C(reject_region_unknown),
	C(reject_region_length_differs),
	C(reject_region_other),
	C(reject_data_region_unknown),
	C(reject_data_round),
	C(reject_data_pages_0),
	C(reject_data_pages_over),
	C(reject_data_pages_sum),
	C(reject_data_ref),
	C(reject_data_codec_flags),
	C(reject_data_codec_id),
	C(reject_data_payload_bound),
	C(reject_data_body_length),
	C(reject_data_offset_align),
	C(reject_data_offset_outside),
	C(reject_data_page_length),
	C(reject_data_payload_sum),
	C(reject_data_packet_num),
	C(reject_data_page_twice),
	C(reject_data_tail_padding),
	C(reject_sync_round),
	C(reject_sync_count_low),
	C(reject_sync_count_high),
	C(reject_sync_other),
	C(reject_complete_channel),
	C(reject_complete_region_count),
	C(reject_complete_length),
	C(reject_complete_checksum),
	C(reject_complete_unsynced_packets),
	C(reject_barrier_wait),
	C(reject_data_after_complete),
	C(reject_round_ack),
	C(reject_features_unknown_bits),
	C(reject_unexpected_kinds),
	C(reject_peer_error),
	C(reject_peer_eof_mid_packet),
	C(reject_peer_stall_mid_packet),
	C(reject_peer_eof_between_frames),
	C(reject_channels_missing),
	C(reject_silent_probe),
	C(reject_duplicate_channel),
	C(reject_intruder_session),
	C(reject_intruder_bad_hello),
	C(reject_intruder_idle),
	C(reject_sender_stops_after_receiver_error),
	C(reject_sender_round_ack_baseline),
	C(reject_sender_ack_features),
	C(reject_sender_round_ack),
	C(reject_sender_migrate_without_round_ack),
#undef C
};

/* Arguments: substrings of case function names to run (default all). */
int main(int argc, char **argv)
{
	uint64_t t0 = now_ms();

	signal(SIGPIPE, SIG_IGN);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int run = argc < 2;
		for (int a = 1; a < argc && !run; a++)
			run = strstr(cases[i].name, argv[a]) != NULL;
		if (run)
			cases[i].fn();
	}
	printf("test_reject: %.1f s\n", (double)(now_ms() - t0) / 1000.0);
	TEST_DONE("test_reject");
}
