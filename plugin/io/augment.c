/* Augmentation, seeded: Darknet's classifier crop/scale/rotation, flip and colour
 * (lwf_image_prepare), and its detection jitter, which moves an image's boxes with it
 * (lwf_det_image_prepare).  Randoms come from the caller's stream, so runs repeat. */
#include "io/io.h"

int lwf_augment_is_on(const lwf_augment *aug, int w)
{
    return aug->flip || aug->angle != 0 || aug->aspect != 1 || aug->hue != 0 || aug->saturation != 1 ||
           aug->exposure != 1 || aug->min != w || aug->max != w;
}

/* Darknet's rand_scale: a factor in [1, s] or its inverse, each half the time. */
static float rand_scale(lwf_rng *r, float s)
{
    float lo = s < 1 ? s : 1, hi = s < 1 ? 1 : s;
    float v = lwf_rng_uniform(r, lo, hi);
    return (lwf_rng_next(r) & 1) ? v : 1.0f / v;
}

image lwf_image_prepare(image im, const lwf_augment *aug, int on, int w, int h, lwf_rng *rng)
{
    if (!on) return center_crop_image(im, w, h); /* what stock `classifier valid` does */
    /* Darknet's load_image_augment_paths: the centre crop (center=1) or a random crop, then
     * a random flip, then random_distort_image, in that order */
    image crop;
    if (aug->center) {
        crop = center_crop_image(im, w, h);
    } else {
        /* the formulas of Darknet's random_augment_args, with our randoms */
        float aspect = rand_scale(rng, aug->aspect);
        int lo = aug->min < aug->max ? aug->min : aug->max, hi = aug->min < aug->max ? aug->max : aug->min;
        int r = lo + (int)(lwf_rng_next(rng) % (unsigned long long)(hi - lo + 1));
        float side = (im.h < im.w * aspect) ? im.h : im.w * aspect;
        float scale = (float)r / side;
        float rad = lwf_rng_uniform(rng, -aug->angle, aug->angle) * 6.2831853f / 360.0f;
        float dx = (im.w * scale / aspect - w) / 2.0f, dy = (im.h * scale - w) / 2.0f;
        /* drawn whatever dx's sign, as Darknet does: a scaled image smaller than the
         * crop (dx < 0) lands anywhere in it, not in one corner (lwf_rng_uniform takes
         * lo > hi: a value between them) */
        dx = lwf_rng_uniform(rng, -dx, dx);
        dy = lwf_rng_uniform(rng, -dy, dy);
        crop = rotate_crop_image(im, rad, scale, w, h, dx, dy, aspect);
    }
    if (aug->flip && (lwf_rng_next(rng) & 1)) flip_image(crop);
    lwf_distort_random(crop, aug, rng);
    return crop;
}

void lwf_distort_random(image im, const lwf_augment *aug, lwf_rng *rng)
{
    /* (Darknet distorts with neutral factors too: no change but rounding, skipped here) */
    if (aug->hue == 0 && aug->saturation == 1 && aug->exposure == 1) return;
    float dhue = lwf_rng_uniform(rng, -aug->hue, aug->hue);
    float dsat = rand_scale(rng, aug->saturation), dexp = rand_scale(rng, aug->exposure);
    distort_image(im, dhue, dsat, dexp);
}

image lwf_det_image_prepare(image im, const lwf_augment *aug, float jitter, int w, int h, lwf_rng *rng,
                            lwf_boxes *bs)
{
    image out = make_image(w, h, im.c);
    fill_image(out, .5f);
    float dw = jitter * im.w, dh = jitter * im.h;
    float ar = (im.w + lwf_rng_uniform(rng, -dw, dw)) / (im.h + lwf_rng_uniform(rng, -dh, dh));
    /* the placed size and offset in whole pixels (place_image takes ints), and the boxes
     * moved by those same whole pixels (Darknet moves them by the unrounded values) */
    int nw = (int)(ar < 1 ? h * ar : w), nh = (int)(ar < 1 ? h : w / ar);
    /* anywhere the placed image fits, or overhangs (w - nw < 0: a value between them) */
    int dx = (int)lwf_rng_uniform(rng, 0, (float)(w - nw)), dy = (int)lwf_rng_uniform(rng, 0, (float)(h - nh));
    place_image(im, nw, nh, dx, dy, out);
    lwf_distort_random(out, aug, rng);
    int flip = aug->flip && (lwf_rng_next(rng) & 1);
    if (flip) flip_image(out);
    lwf_boxes_place(bs, (float)dx / w, (float)dy / h, (float)nw / w, (float)nh / h, flip);
    return out;
}
