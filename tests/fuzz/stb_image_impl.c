/* stb_image's implementation from Debian's libstb-dev header, compiled into the image
 * harness so it is instrumented like our code (the executable's definitions take
 * precedence over libstb.so's).  Same source as the packaged library. */
#define STB_IMAGE_IMPLEMENTATION
#include <stb/stb_image.h>
