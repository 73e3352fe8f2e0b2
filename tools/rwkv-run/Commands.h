//===- Commands.h - rwkv-run subcommands ------------------------*- C++ -*-===//
//
// Each subcommand takes the arguments after its name (argv[0] is the
// subcommand) and returns the exit status; errors are thrown (UsageError for
// bad arguments) and reported by main.
//
//===----------------------------------------------------------------------===//

#ifndef RWKV_TOOLS_RWKV_RUN_COMMANDS_H
#define RWKV_TOOLS_RWKV_RUN_COMMANDS_H

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace rwkv {

struct UsageError : std::runtime_error {
  using runtime_error::runtime_error;
};

/// The token ids of a JSON array (`text`). Throws UsageError naming `what`
/// and the first element that is not an integer in the int32 range (JSON's
/// 2.5 or 1e10 would otherwise be truncated or wrapped silently).
std::vector<int32_t> parseIdJson(const std::string &text,
                                 const std::string &what);

int tokenizeMain(int argc, char **argv);
int detokenizeMain(int argc, char **argv);
int generateMain(int argc, char **argv);
int chatMain(int argc, char **argv);

} // namespace rwkv

#endif // RWKV_TOOLS_RWKV_RUN_COMMANDS_H
