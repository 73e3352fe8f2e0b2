//===- Npy.cpp - Minimal float32 .npy reader and writer -------------------===//
//
// Enough of the NumPy format (versions 1-3, C order, <f4 / <f8) to write
// logits and read the golden references.
//
//===----------------------------------------------------------------------===//

#include "runtime/core/Runtime.h"

#include <fmt/format.h>

#include <cstring>
#include <fstream>
#include <iterator>

namespace rwkv {

void writeNpy(const std::string &path, const float *data,
              const std::vector<int64_t> &shape) {
  std::string dims;
  size_t numel = 1;
  for (int64_t d : shape) {
    dims += fmt::format("{}, ", d);
    numel *= size_t(d);
  }
  if (shape.size() > 1)
    dims.resize(dims.size() - 2); // "(T, V)", but "(N,)" for rank 1
  else if (shape.size() == 1)
    dims.pop_back();
  std::string header = fmt::format(
      "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}), }}", dims);
  // Magic (6) + version (2) + length (2) + header + '\n' is 64-aligned.
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');

  std::ofstream out(path, std::ios::binary);
  if (!out)
    throw RuntimeError(fmt::format("cannot write '{}'", path));
  out.write("\x93NUMPY\x01\x00", 8);
  uint16_t len = uint16_t(header.size());
  char lenBytes[2] = {char(len & 0xff), char(len >> 8)};
  out.write(lenBytes, 2);
  out.write(header.data(), std::streamsize(header.size()));
  // The data is written as is: every supported host is little-endian.
  out.write(reinterpret_cast<const char *>(data),
            std::streamsize(numel * sizeof(float)));
  if (!out)
    throw RuntimeError(fmt::format("error writing '{}'", path));
}

NpyArray readNpy(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw RuntimeError(fmt::format("cannot open '{}'", path));
  std::string bytes((std::istreambuf_iterator<char>(in)),
                    std::istreambuf_iterator<char>());
  auto fail = [&](const std::string &what) -> RuntimeError {
    return RuntimeError(
        fmt::format("'{}' is not a supported .npy: {}", path, what));
  };
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0)
    throw fail("bad magic");
  int major = uint8_t(bytes[6]);
  size_t headerLen, headerStart;
  if (major == 1) {
    headerLen = uint8_t(bytes[8]) | size_t(uint8_t(bytes[9])) << 8;
    headerStart = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12)
      throw fail("truncated header");
    headerLen = 0;
    for (int i = 3; i >= 0; --i)
      headerLen = headerLen << 8 | uint8_t(bytes[8 + i]);
    headerStart = 12;
  } else {
    throw fail(fmt::format("version {}", major));
  }
  if (headerStart + headerLen > bytes.size())
    throw fail("truncated header");
  std::string header = bytes.substr(headerStart, headerLen);

  size_t elemSize;
  if (header.find("'descr': '<f4'") != std::string::npos)
    elemSize = 4;
  else if (header.find("'descr': '<f8'") != std::string::npos)
    elemSize = 8;
  else
    throw fail("dtype is not <f4 or <f8");
  if (header.find("'fortran_order': False") == std::string::npos)
    throw fail("not C order");
  size_t open = header.find("'shape': (");
  size_t close = header.find(')', open);
  if (open == std::string::npos || close == std::string::npos)
    throw fail("no shape");
  NpyArray arr;
  size_t numel = 1;
  const char *p = header.c_str() + open + 10;
  const char *end = header.c_str() + close;
  while (p < end) {
    char *next;
    long long d = std::strtoll(p, &next, 10);
    if (next == p) {
      ++p; // skip ", " separators
      continue;
    }
    arr.shape.push_back(d);
    numel *= size_t(d);
    p = next;
  }
  size_t dataStart = headerStart + headerLen;
  if (bytes.size() - dataStart < numel * elemSize)
    throw fail(fmt::format("{} bytes of data for {} elements",
                           bytes.size() - dataStart, numel));
  arr.data.resize(numel);
  const char *src = bytes.data() + dataStart;
  if (elemSize == 4) {
    std::memcpy(arr.data.data(), src, numel * 4);
  } else {
    for (size_t i = 0; i < numel; ++i) {
      double v;
      std::memcpy(&v, src + 8 * i, 8);
      arr.data[i] = float(v);
    }
  }
  return arr;
}

} // namespace rwkv
