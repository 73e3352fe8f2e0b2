//===- GoldenTestUtil.h - shared by the compiled-model test binaries ------===//
//
// Comparison and command-line helpers of RWKVGoldenTests,
// RWKVChunkLengthTests and RWKVGenerateTests, which all run libraries that
// a ctest fixture compiled from ../shared/golden.
//
//===----------------------------------------------------------------------===//

#ifndef RWKV_UNITTESTS_RUNTIME_GOLDENTESTUTIL_H
#define RWKV_UNITTESTS_RUNTIME_GOLDENTESTUTIL_H

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

namespace rwkv::golden {

/// Largest |a[i] - b[i]|; a NaN anywhere counts as infinitely wrong.
inline float maxAbsDiff(const float *a, const float *b, size_t n) {
  float m = 0;
  for (size_t i = 0; i < n; ++i) {
    float d = std::fabs(a[i] - b[i]);
    if (!(d <= m))
      m = std::isnan(d) ? INFINITY : d;
  }
  return m;
}

/// Initialises gtest, then reads each `--NAME=value` flag into its string.
/// Returns false (after printing the usage) when one is missing, unless
/// gtest only lists the tests (ctest's discovery run passes no flags).
inline bool
parseTestFlags(int &argc, char **argv, const char *program,
               std::vector<std::pair<std::string, std::string *>> flags) {
  ::testing::InitGoogleTest(&argc, argv);
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    for (auto &[name, value] : flags)
      if (a.rfind("--" + name + "=", 0) == 0)
        *value = a.substr(name.size() + 3);
  }
  if (::testing::GTEST_FLAG(list_tests))
    return true;
  std::string usage;
  bool complete = true;
  for (auto &[name, value] : flags) {
    usage += " --" + name + "=...";
    complete &= !value->empty();
  }
  if (!complete)
    std::fprintf(stderr, "usage: %s%s [gtest flags]\n", program, usage.c_str());
  return complete;
}

} // namespace rwkv::golden

#endif // RWKV_UNITTESTS_RUNTIME_GOLDENTESTUTIL_H
