#include "vpxbind.h"

#include <string.h>
#include <vpx/vp8cx.h>
#include <vpx/vp8dx.h>

// Largest intra frame as a percentage of the per-frame bandwidth, as WebRTC computes it: half
// of the optimal buffer (in ms) scaled by the frame rate, never below 300 %.
static unsigned int max_intra_pct(unsigned int optimal_buffer_ms, double fps) {
	double pct = (double)optimal_buffer_ms * 0.5 * fps / 10.0;
	if (pct < 300.0) {
		return 300;
	}
	return (unsigned int)pct;
}

vpx_codec_err_t sb_vp8_enc_init(sb_vp8_enc *e, int width, int height, int fps_num, int fps_den,
                                int kbps, int cpu_used, int threads, int kf_max_dist) {
	vpx_codec_err_t rc = vpx_codec_enc_config_default(vpx_codec_vp8_cx(), &e->cfg, 0);
	if (rc != VPX_CODEC_OK) {
		return rc;
	}
	vpx_codec_enc_cfg_t *c = &e->cfg;
	c->g_w = (unsigned int)width;
	c->g_h = (unsigned int)height;
	c->g_threads = (unsigned int)threads;
	c->g_timebase.num = 1;
	c->g_timebase.den = 90000; // RTP video clock: pts are in 90 kHz ticks
	c->g_error_resilient = VPX_ERROR_RESILIENT_DEFAULT;
	c->g_pass = VPX_RC_ONE_PASS;
	c->g_lag_in_frames = 0;
	c->rc_end_usage = VPX_CBR;
	c->rc_target_bitrate = (unsigned int)kbps;
	c->rc_resize_allowed = 0;
	c->rc_dropframe_thresh = 30;
	c->rc_min_quantizer = 2;
	c->rc_max_quantizer = 56;
	c->rc_undershoot_pct = 100;
	c->rc_overshoot_pct = 15;
	c->rc_buf_initial_sz = 500;
	c->rc_buf_optimal_sz = 600;
	c->rc_buf_sz = 1000;
	c->kf_mode = VPX_KF_AUTO;
	c->kf_min_dist = 0;
	c->kf_max_dist = (unsigned int)kf_max_dist;

	rc = vpx_codec_enc_init(&e->ctx, vpx_codec_vp8_cx(), c, 0);
	if (rc != VPX_CODEC_OK) {
		return rc;
	}
	e->inited = 1;
	double fps = (double)fps_num / (double)fps_den;
	if ((rc = vpx_codec_control(&e->ctx, VP8E_SET_CPUUSED, cpu_used)) != VPX_CODEC_OK ||
	    (rc = vpx_codec_control(&e->ctx, VP8E_SET_NOISE_SENSITIVITY, 0u)) != VPX_CODEC_OK ||
	    (rc = vpx_codec_control(&e->ctx, VP8E_SET_STATIC_THRESHOLD, 1u)) != VPX_CODEC_OK ||
	    (rc = vpx_codec_control(&e->ctx, VP8E_SET_ENABLEAUTOALTREF, 0u)) != VPX_CODEC_OK ||
	    (rc = vpx_codec_control(&e->ctx, VP8E_SET_TOKEN_PARTITIONS, (int)VP8_ONE_TOKENPARTITION)) != VPX_CODEC_OK ||
	    (rc = vpx_codec_control(&e->ctx, VP8E_SET_MAX_INTRA_BITRATE_PCT,
	                            max_intra_pct(c->rc_buf_optimal_sz, fps))) != VPX_CODEC_OK) {
		return rc;
	}

	// The picture descriptor wraps the caller's packed I420 planes on each encode call.
	memset(&e->img, 0, sizeof(e->img));
	e->img.fmt = VPX_IMG_FMT_I420;
	e->img.w = e->img.d_w = e->img.r_w = (unsigned int)width;
	e->img.h = e->img.d_h = e->img.r_h = (unsigned int)height;
	e->img.bit_depth = 8;
	e->img.x_chroma_shift = 1;
	e->img.y_chroma_shift = 1;
	e->img.bps = 12;
	e->img.stride[0] = width;
	e->img.stride[1] = e->img.stride[2] = (width + 1) / 2;
	return VPX_CODEC_OK;
}

vpx_codec_err_t sb_vp8_enc_encode(sb_vp8_enc *e, uint8_t *y, uint8_t *u, uint8_t *v,
                                  int64_t pts, unsigned long duration, int force_key) {
	e->img.planes[0] = y;
	e->img.planes[1] = u;
	e->img.planes[2] = v;
	e->iter = NULL;
	e->out = NULL;
	e->out_len = 0;
	e->out_key = 0;
	vpx_codec_err_t rc = vpx_codec_encode(&e->ctx, &e->img, (vpx_codec_pts_t)pts, duration,
	                                      force_key ? VPX_EFLAG_FORCE_KF : 0, VPX_DL_REALTIME);
	// libvpx copied the picture into its own buffers; forget the caller's memory.
	e->img.planes[0] = e->img.planes[1] = e->img.planes[2] = NULL;
	return rc;
}

int sb_vp8_enc_next(sb_vp8_enc *e) {
	const vpx_codec_cx_pkt_t *pkt;
	while ((pkt = vpx_codec_get_cx_data(&e->ctx, &e->iter)) != NULL) {
		if (pkt->kind == VPX_CODEC_CX_FRAME_PKT) {
			e->out = (const uint8_t *)pkt->data.frame.buf;
			e->out_len = pkt->data.frame.sz;
			e->out_key = (pkt->data.frame.flags & VPX_FRAME_IS_KEY) != 0;
			return 1;
		}
	}
	e->out = NULL;
	e->out_len = 0;
	e->out_key = 0;
	return 0;
}

vpx_codec_err_t sb_vp8_enc_set_bitrate(sb_vp8_enc *e, int kbps) {
	e->cfg.rc_target_bitrate = (unsigned int)kbps;
	return vpx_codec_enc_config_set(&e->ctx, &e->cfg);
}

void sb_vp8_enc_destroy(sb_vp8_enc *e) {
	if (e->inited) {
		vpx_codec_destroy(&e->ctx);
		e->inited = 0;
	}
}

vpx_codec_err_t sb_vp8_dec_init(sb_vp8_dec *d) {
	vpx_codec_dec_cfg_t cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.threads = 1;
	vpx_codec_err_t rc = vpx_codec_dec_init(&d->ctx, vpx_codec_vp8_dx(), &cfg, 0);
	if (rc == VPX_CODEC_OK) {
		d->inited = 1;
	}
	return rc;
}

vpx_codec_err_t sb_vp8_dec_decode(sb_vp8_dec *d, const uint8_t *data, size_t len) {
	d->img = NULL;
	d->corrupted = 0;
	vpx_codec_err_t rc = vpx_codec_decode(&d->ctx, data, (unsigned int)len, NULL, 0);
	if (rc != VPX_CODEC_OK) {
		return rc;
	}
	int corrupted = 0;
	if (vpx_codec_control(&d->ctx, VP8D_GET_FRAME_CORRUPTED, &corrupted) == VPX_CODEC_OK) {
		d->corrupted = corrupted;
	}
	vpx_codec_iter_t iter = NULL;
	vpx_image_t *img = vpx_codec_get_frame(&d->ctx, &iter);
	if (img != NULL && img->fmt == VPX_IMG_FMT_I420 && img->d_w > 0 && img->d_h > 0) {
		d->img = img;
	}
	// Drain anything else so that the next call starts clean (VP8 shows at most one).
	while (vpx_codec_get_frame(&d->ctx, &iter) != NULL) {
	}
	return VPX_CODEC_OK;
}

static void copy_plane(uint8_t *dst, int dst_stride, const uint8_t *src, int src_stride,
                       int width, int height) {
	for (int row = 0; row < height; row++) {
		memcpy(dst, src, (size_t)width);
		dst += dst_stride;
		src += src_stride;
	}
}

int sb_vp8_dec_copy(sb_vp8_dec *d, uint8_t *y, uint8_t *u, uint8_t *v) {
	vpx_image_t *img = d->img;
	if (img == NULL) {
		return -1;
	}
	int w = (int)img->d_w, h = (int)img->d_h;
	int cw = (w + 1) / 2, ch = (h + 1) / 2;
	copy_plane(y, w, img->planes[VPX_PLANE_Y], img->stride[VPX_PLANE_Y], w, h);
	copy_plane(u, cw, img->planes[VPX_PLANE_U], img->stride[VPX_PLANE_U], cw, ch);
	copy_plane(v, cw, img->planes[VPX_PLANE_V], img->stride[VPX_PLANE_V], cw, ch);
	return 0;
}

void sb_vp8_dec_destroy(sb_vp8_dec *d) {
	if (d->inited) {
		vpx_codec_destroy(&d->ctx);
		d->inited = 0;
	}
	d->img = NULL;
}
