//===- TestUtil.h - Shared helpers for the RWKVTrain unit tests -----------===//

#ifndef RWKV_UNITTESTS_TRAIN_TESTUTIL_H
#define RWKV_UNITTESTS_TRAIN_TESTUTIL_H

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

namespace rwkv::test {

/// A fresh folder per test, removed afterwards.
class TempDir {
public:
  TempDir() {
    const auto *info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = std::filesystem::temp_directory_path() /
            (std::string("rwkv-train-") + info->test_suite_name() + "-" +
             info->name() + "-" + std::to_string(::getpid()));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string file(const std::string &name) const {
    return (path_ / name).string();
  }
  const std::filesystem::path &path() const { return path_; }

private:
  std::filesystem::path path_;
};

inline void writeFile(const std::string &path, const std::string &bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
}

inline std::string readFile(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

/// Runs `f`, expects it to throw E, and returns the message.
template <typename E, typename F> std::string errorOf(F f) {
  try {
    f();
  } catch (const E &e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an exception";
  return "";
}

} // namespace rwkv::test

#endif // RWKV_UNITTESTS_TRAIN_TESTUTIL_H
