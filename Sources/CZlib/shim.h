#ifndef SCENESTREAM_CZLIB_SHIM_H
#define SCENESTREAM_CZLIB_SHIM_H
#include <zlib.h>

/// deflateInit2 is a macro; Swift cannot call it directly.
static inline int scenestream_deflateInit2(z_streamp strm, int level, int windowBits, int memLevel) {
    return deflateInit2(strm, level, Z_DEFLATED, windowBits, memLevel, Z_DEFAULT_STRATEGY);
}

/// inflateInit2 is a macro; Swift cannot call it directly.
static inline int scenestream_inflateInit2(z_streamp strm, int windowBits) {
    return inflateInit2(strm, windowBits);
}
#endif
