//===- Sha256.h - minimal SHA-256 for the checkpoint tests ------*- C++ -*-===//
#ifndef RWKV_UNITTESTS_CHECKPOINT_SHA256_H
#define RWKV_UNITTESTS_CHECKPOINT_SHA256_H

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

class Sha256 {
public:
  Sha256();
  void update(const void *data, size_t n);
  std::string hexdigest(); // finalises; call once
private:
  void block(const uint8_t *p);
  uint32_t h_[8];
  uint8_t buf_[64];
  size_t used_ = 0;
  uint64_t total_ = 0;
};

#endif
