#include "block/qcow2/compress.h"

#include <zlib.h>
#include <zstd.h>

#include "block/qcow2/format.h"

namespace kumo::block::qcow2 {

Status decompress_cluster(uint8_t type, std::span<const uint8_t> in, std::span<uint8_t> out) {
  if (type == kCompressionZstd) {
    ZSTD_DCtx* ctx = ZSTD_createDCtx();
    if (ctx == nullptr) {
      return host_error_errno(ENOMEM, "ZSTD_createDCtx");
    }
    ZSTD_inBuffer ib{in.data(), in.size(), 0};
    ZSTD_outBuffer ob{out.data(), out.size(), 0};
    size_t rc = 1;
    while (ob.pos < ob.size && ib.pos < ib.size) {
      rc = ZSTD_decompressStream(ctx, &ob, &ib);
      if (ZSTD_isError(rc) || rc == 0) {
        break;
      }
    }
    ZSTD_freeDCtx(ctx);
    if (ZSTD_isError(rc) || ob.pos != ob.size) {
      return invalid_input("corrupt zstd-compressed cluster");
    }
    return {};
  }
  z_stream z{};
  if (inflateInit2(&z, -12) != Z_OK) {
    return host_error_errno(ENOMEM, "inflateInit2");
  }
  z.next_in = const_cast<Bytef*>(in.data());
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = out.data();
  z.avail_out = static_cast<uInt>(out.size());
  const int rc = inflate(&z, Z_FINISH);
  const bool full = z.avail_out == 0;
  inflateEnd(&z);
  if ((rc != Z_STREAM_END && rc != Z_BUF_ERROR && rc != Z_OK) || !full) {
    return invalid_input("corrupt deflate-compressed cluster");
  }
  return {};
}

std::optional<std::vector<uint8_t>> compress_cluster(uint8_t type, std::span<const uint8_t> in) {
  if (in.size() <= 512) {
    return std::nullopt;
  }
  std::vector<uint8_t> out(in.size() - 512);
  if (type == kCompressionZstd) {
    const size_t n = ZSTD_compress(out.data(), out.size(), in.data(), in.size(), 3);
    if (ZSTD_isError(n)) {
      return std::nullopt;
    }
    out.resize(n);
    return out;
  }
  z_stream z{};
  if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -12, 9, Z_DEFAULT_STRATEGY) != Z_OK) {
    return std::nullopt;
  }
  z.next_in = const_cast<Bytef*>(in.data());
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = out.data();
  z.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&z, Z_FINISH);
  const size_t produced = out.size() - z.avail_out;
  deflateEnd(&z);
  if (rc != Z_STREAM_END) {
    return std::nullopt;
  }
  out.resize(produced);
  return out;
}

}  // namespace kumo::block::qcow2
