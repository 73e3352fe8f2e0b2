//===- CApiError.h - Shared helpers of the C API entry points ---*- C++ -*-===//
//
// rwkvrt_last_error() (CApi.cpp) returns lastErrorMessage(); every C entry
// point, in whichever file, clears it on entry and sets it on failure.
// Handles count their users here so that a close can refuse
// (RWKVRT_ERR_BUSY) instead of freeing memory that is still in use.
//
//===----------------------------------------------------------------------===//

#ifndef RWKV_RUNTIME_CORE_CAPIERROR_H
#define RWKV_RUNTIME_CORE_CAPIERROR_H

#include <fmt/format.h>

#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>

namespace rwkv::capi {

/// The calling thread's last error message.
std::string &lastErrorMessage();

/// Thrown inside an entry point for RWKVRT_ERR_INVALID_ARGUMENT.
struct ArgumentError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
/// Thrown inside an entry point for RWKVRT_ERR_BUSY.
struct BusyError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Sets the message, returns `code`.
inline int fail(int code, const std::string &message) {
  lastErrorMessage() = message;
  return code;
}

/// RWKVRT_ERR_INVALID_ARGUMENT naming `function` and the first null pointer
/// among `args` ({name, pointer} pairs); 0 (RWKVRT_OK) when none is null.
int checkNotNull(
    const char *function,
    std::initializer_list<std::pair<const char *, const void *>> args);

/// What keeps a handle open: dependent objects (the states and batches of a
/// model) and calls in progress on any thread. A close is refused while any
/// is left, as sqlite3_close() refuses while statements are unfinalized: a
/// mutex per handle is cheap next to any call that does work.
class Users {
public:
  enum Kind { Call, State, Batch, NumKinds };
  void acquire(Kind kind) {
    std::lock_guard<std::mutex> lock(mutex_);
    ++count_[kind];
  }
  void release(Kind kind) {
    std::lock_guard<std::mutex> lock(mutex_);
    --count_[kind];
  }
  /// Empty when nothing uses the handle, else "<what> is in use by ...".
  std::string busyMessage(const char *what);

private:
  std::mutex mutex_;
  int64_t count_[NumKinds] = {};
};

/// A call in progress on a handle, for the scope of an entry point.
class CallScope {
public:
  explicit CallScope(Users &users) : users_(users) {
    users_.acquire(Users::Call);
  }
  ~CallScope() { users_.release(Users::Call); }
  CallScope(const CallScope &) = delete;
  CallScope &operator=(const CallScope &) = delete;

private:
  Users &users_;
};

/// Guards an object that must not be used by two threads at once (a state,
/// a batch): any number of readers or one writer. A conflicting call is
/// refused with BusyError instead of racing (the API forbids it, but a
/// silent race corrupts the state, and a free during a call is a
/// use-after-free).
class Access {
public:
  /// Throws BusyError naming `what` if a writer holds the object (or, for a
  /// write, anyone).
  void begin(bool write, const char *what) {
    int n = n_.load(std::memory_order_relaxed);
    while (true) {
      if (write ? n != 0 : n < 0)
        throw BusyError(fmt::format(
            "{} is in use by a call on another thread (a state or batch may "
            "be used by one thread at a time)",
            what));
      if (n_.compare_exchange_weak(n, write ? -1 : n + 1,
                                   std::memory_order_acquire))
        return;
    }
  }
  void end(bool write) {
    if (write)
      n_.store(0, std::memory_order_release);
    else
      n_.fetch_sub(1, std::memory_order_release);
  }

private:
  std::atomic<int> n_{0}; // > 0: readers, -1: a writer
};

/// Holds an Access for a scope; a null `access` is skipped.
class AccessScope {
public:
  AccessScope(Access *access, bool write, const char *what)
      : access_(access), write_(write) {
    if (access_)
      access_->begin(write, what);
  }
  ~AccessScope() {
    if (access_)
      access_->end(write_);
  }
  AccessScope(const AccessScope &) = delete;
  AccessScope &operator=(const AccessScope &) = delete;

private:
  Access *access_;
  bool write_;
};

} // namespace rwkv::capi

#endif // RWKV_RUNTIME_CORE_CAPIERROR_H
