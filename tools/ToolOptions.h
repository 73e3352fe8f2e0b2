//===- ToolOptions.h - Checks shared by the tools' option parsing -*- C++
//-*-===//
//
// Boost.Program_options converts values with lexical_cast, which reads "-1"
// for an unsigned option as its largest value and accepts "nan" and "inf"
// for a floating-point one: checkParsedValues refuses both, naming the
// option and the value. The other helpers check ranges and file arguments
// before anything is loaded. Every failure is a po::error, which each tool
// reports like its other command-line errors.
//
//===----------------------------------------------------------------------===//

#ifndef RWKV_TOOLS_TOOLOPTIONS_H
#define RWKV_TOOLS_TOOLOPTIONS_H

#include <boost/program_options.hpp>
#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <initializer_list>
#include <string>
#include <system_error>

namespace rwkv::tools {

namespace po = boost::program_options;

/// A minus sign on an unsigned option, or a NaN or infinity for a
/// floating-point one, throws po::error naming the option and the value.
inline void checkParsedValues(const po::parsed_options &parsed,
                              const po::variables_map &vm) {
  for (const po::option &o : parsed.options) {
    if (o.unregistered || o.string_key.empty() || !vm.count(o.string_key))
      continue;
    const boost::any &v = vm[o.string_key].value();
    bool isUnsigned = boost::any_cast<unsigned>(&v) ||
                      boost::any_cast<unsigned long>(&v) ||
                      boost::any_cast<unsigned long long>(&v);
    for (const std::string &text : o.value) {
      size_t first = text.find_first_not_of(" \t");
      if (isUnsigned && first != std::string::npos && text[first] == '-')
        throw po::error(fmt::format(
            "the argument ('{}') for option '--{}' is invalid: it must be >= 0",
            text, o.string_key));
    }
  }
  for (const auto &[name, value] : vm) {
    const boost::any &v = value.value();
    double d = 0;
    if (const double *p = boost::any_cast<double>(&v))
      d = *p;
    else if (const float *f = boost::any_cast<float>(&v))
      d = *f;
    else
      continue;
    if (!std::isfinite(d))
      throw po::error(fmt::format("the argument ('{}') for option '--{}' is "
                                  "invalid: it must be a finite number",
                                  d, name));
  }
}

/// Parses with `parser`, stores into `vm`, notifies and checks the values.
inline po::parsed_options storeChecked(po::command_line_parser &parser,
                                       po::variables_map &vm) {
  po::parsed_options parsed = parser.run();
  po::store(parsed, vm);
  po::notify(vm);
  checkParsedValues(parsed, vm);
  return parsed;
}

/// `value` of option `name` is in [lo, hi]; the message names both.
template <typename T> void checkRange(const char *name, T value, T lo, T hi) {
  if (!(value >= lo && value <= hi))
    throw po::error(
        fmt::format("--{} must be in [{}, {}], not {}", name, lo, hi, value));
}

/// `value` of option `name` is at least `lo`.
template <typename T> void checkAtLeast(const char *name, T value, T lo) {
  if (!(value >= lo))
    throw po::error(fmt::format("--{} must be >= {}, not {}", name, lo, value));
}

/// The same for an option that may be absent.
template <typename T>
void checkRange(const po::variables_map &vm, const char *name, T lo, T hi) {
  if (vm.count(name))
    checkRange(name, vm[name].as<T>(), lo, hi);
}

/// An input file named by option `name`: it exists and is not a directory
/// (std::ifstream opens a directory and fails only when read, with a
/// message that names neither the option nor the file).
inline void checkInputFile(const char *name, const std::string &path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (path.empty())
    throw po::error(fmt::format("--{}: the path is empty", name));
  if (!fs::exists(path, ec))
    throw po::error(fmt::format("--{}: '{}' does not exist", name, path));
  if (fs::is_directory(path, ec))
    throw po::error(
        fmt::format("--{}: '{}' is a directory, not a file", name, path));
}

template <typename T>
void checkAtLeast(const po::variables_map &vm, const char *name, T lo) {
  if (vm.count(name))
    checkAtLeast(name, vm[name].as<T>(), lo);
}

inline void checkInputFile(const po::variables_map &vm, const char *name) {
  if (vm.count(name))
    checkInputFile(name, vm[name].as<std::string>());
}

/// An output file must not be one of the inputs: writing it would destroy
/// an input that is still mapped (a crash by SIGBUS, and a lost file).
inline void checkNotAnInput(const char *name, const std::string &output,
                            std::initializer_list<std::string> inputs) {
  namespace fs = std::filesystem;
  for (const std::string &in : inputs) {
    std::error_code ec;
    if (!in.empty() && fs::equivalent(output, in, ec))
      throw po::error(fmt::format(
          "--{} '{}' is an input file ('{}'); write to another file", name,
          output, in));
  }
}

} // namespace rwkv::tools

#endif // RWKV_TOOLS_TOOLOPTIONS_H
