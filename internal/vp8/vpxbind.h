// Thin C layer between the Go package and libvpx's VP8 codec. Each codec instance lives in one
// C-allocated struct so that the Go side passes a single pointer per call and no Go memory is
// retained by C after a call returns.
#ifndef SWITCHBOARD_VP8_VPXBIND_H
#define SWITCHBOARD_VP8_VPXBIND_H

#include <stddef.h>
#include <stdint.h>
#include <vpx/vpx_encoder.h>
#include <vpx/vpx_decoder.h>

typedef struct sb_vp8_enc {
	vpx_codec_ctx_t ctx;
	vpx_codec_enc_cfg_t cfg;
	vpx_image_t img;
	vpx_codec_iter_t iter;
	int inited;
	// The frame packet found by sb_vp8_enc_next, owned by libvpx until the next encode call.
	const uint8_t *out;
	size_t out_len;
	int out_key;
} sb_vp8_enc;

typedef struct sb_vp8_dec {
	vpx_codec_ctx_t ctx;
	int inited;
	// The picture of the last decode call (NULL when it showed none), owned by libvpx.
	vpx_image_t *img;
	int corrupted;
} sb_vp8_dec;

vpx_codec_err_t sb_vp8_enc_init(sb_vp8_enc *e, int width, int height, int fps_num, int fps_den,
                                int kbps, int cpu_used, int threads, int kf_max_dist);
vpx_codec_err_t sb_vp8_enc_encode(sb_vp8_enc *e, uint8_t *y, uint8_t *u, uint8_t *v,
                                  int64_t pts, unsigned long duration, int force_key);
int sb_vp8_enc_next(sb_vp8_enc *e);
vpx_codec_err_t sb_vp8_enc_set_bitrate(sb_vp8_enc *e, int kbps);
void sb_vp8_enc_destroy(sb_vp8_enc *e);

vpx_codec_err_t sb_vp8_dec_init(sb_vp8_dec *d);
vpx_codec_err_t sb_vp8_dec_decode(sb_vp8_dec *d, const uint8_t *data, size_t len);
int sb_vp8_dec_copy(sb_vp8_dec *d, uint8_t *y, uint8_t *u, uint8_t *v);
void sb_vp8_dec_destroy(sb_vp8_dec *d);

#endif
