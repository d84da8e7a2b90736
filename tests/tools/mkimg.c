/* mkimg: writes small synthetic images for the command-line tests (PNG, JPEG or BMP through
 * stb_image_write), and forged PNG headers that claim any size.  Test data only: what the
 * images look like is deterministic but carries no meaning.
 *
 *   mkimg [-s SIZE] [-q QUALITY] OUT...     one SIZE x SIZE RGB image per OUT (default 8),
 *                                           PNG, JPEG or BMP by OUT's extension (.png,
 *                                           .jpg/.jpeg, .bmp: 24-bit, bottom-up rows)
 *   mkimg -forge WIDTH HEIGHT OUT           a PNG signature, an IHDR chunk claiming WIDTH x
 *                                           HEIGHT (8-bit RGB, correct CRC) and IEND: no pixels
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stb/stb_image_write.h>

static int usage(void)
{
    fprintf(stderr, "usage: mkimg [-s SIZE] [-q QUALITY] OUT.png|OUT.jpg|OUT.bmp...\n"
                    "       mkimg -forge WIDTH HEIGHT OUT.png\n");
    return 2;
}

static int parse_num(const char *s, long lo, long hi, long *out)
{
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "mkimg: '%s' is not a number in [%ld, %ld]\n", s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

static int has_ext(const char *path, const char *ext)
{
    size_t n = strlen(path), e = strlen(ext);
    return n > e && strcmp(path + n - e, ext) == 0;
}

/* PNG's CRC-32 (ISO 3309), bitwise: only a few bytes are ever checked. */
static uint32_t crc32(const unsigned char *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; ++i) {
        c ^= p[i];
        for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
    }
    return c ^ 0xffffffffu;
}

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static int forge(uint32_t w, uint32_t h, const char *out)
{
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    unsigned char ihdr[4 + 4 + 13 + 4], iend[12];
    put32(ihdr, 13);
    memcpy(ihdr + 4, "IHDR", 4);
    put32(ihdr + 8, w);
    put32(ihdr + 12, h);
    ihdr[16] = 8; /* bit depth */
    ihdr[17] = 2; /* colour type: RGB */
    ihdr[18] = ihdr[19] = ihdr[20] = 0;
    put32(ihdr + 21, crc32(ihdr + 4, 17));
    put32(iend, 0);
    memcpy(iend + 4, "IEND", 4);
    put32(iend + 8, crc32(iend + 4, 4));
    FILE *fp = fopen(out, "wb");
    if (!fp) {
        perror(out);
        return 1;
    }
    int ok = fwrite(sig, 1, 8, fp) == 8 && fwrite(ihdr, 1, sizeof ihdr, fp) == sizeof ihdr &&
             fwrite(iend, 1, sizeof iend, fp) == sizeof iend;
    if (fclose(fp) != 0) ok = 0;
    if (!ok) fprintf(stderr, "mkimg: cannot write %s\n", out);
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    long size = 8, quality = 90;
    int i = 1;
    if (argc == 5 && strcmp(argv[1], "-forge") == 0) {
        long w, h;
        if (parse_num(argv[2], 0, 0x7fffffffL, &w) || parse_num(argv[3], 0, 0x7fffffffL, &h)) return 2;
        return forge((uint32_t)w, (uint32_t)h, argv[4]);
    }
    for (; i + 1 < argc && argv[i][0] == '-'; i += 2) {
        if (strcmp(argv[i], "-s") == 0) {
            if (parse_num(argv[i + 1], 1, 4096, &size)) return 2;
        } else if (strcmp(argv[i], "-q") == 0) {
            if (parse_num(argv[i + 1], 1, 100, &quality)) return 2;
        } else {
            return usage();
        }
    }
    if (i >= argc) return usage();
    unsigned char *px = malloc((size_t)size * (size_t)size * 3);
    if (!px) return 1;
    for (int f = i; f < argc; ++f) {
        /* a smooth pattern that differs per file (by its position on the command line) */
        for (long y = 0; y < size; ++y)
            for (long x = 0; x < size; ++x)
                for (int k = 0; k < 3; ++k)
                    px[(y * size + x) * 3 + k] = (unsigned char)((x * 29 + y * 13 + k * 71 + f * 53) & 0xff);
        int ok;
        if (has_ext(argv[f], ".png")) ok = stbi_write_png(argv[f], (int)size, (int)size, 3, px, (int)size * 3);
        else if (has_ext(argv[f], ".jpg") || has_ext(argv[f], ".jpeg"))
            ok = stbi_write_jpg(argv[f], (int)size, (int)size, 3, px, (int)quality);
        else if (has_ext(argv[f], ".bmp"))
            ok = stbi_write_bmp(argv[f], (int)size, (int)size, 3, px);
        else {
            fprintf(stderr, "mkimg: %s: use a .png, .jpg, .jpeg or .bmp name\n", argv[f]);
            free(px);
            return 2;
        }
        if (!ok) {
            fprintf(stderr, "mkimg: cannot write %s\n", argv[f]);
            free(px);
            return 1;
        }
    }
    free(px);
    return 0;
}
