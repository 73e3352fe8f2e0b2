//===- Tokenizer.cpp - RWKV World tokenizer: vocab parsing, trie, encode
//---===//
//
// Implements spec §5.1: the vocabulary is parsed from Python literals, and
// encoding is a greedy longest match over bytes, found by walking a byte trie
// and remembering the last node that carries a token.
//
//===----------------------------------------------------------------------===//

#include "runtime/text/Tokenizer.h"
#include "runtime/text/BpeTokenizer.h"

#include <algorithm>
#include <fstream>
#include <limits>
#include <sstream>
#include <stdexcept>

using namespace rwkv;

Tokenizer::~Tokenizer() = default;

std::string Tokenizer::decode(const int32_t *ids, size_t count) const {
  std::string out;
  for (size_t i = 0; i < count; ++i)
    out += tokenBytes(ids[i]);
  return out;
}

//===----------------------------------------------------------------------===//
// Python literal parsing
//===----------------------------------------------------------------------===//

static void appendUtf8(std::string &out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

static int hexValue(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/// Reads exactly `digits` hex digits at body[pos...].
static uint32_t readHex(std::string_view body, size_t pos, size_t digits,
                        char escape) {
  if (pos + digits > body.size())
    throw std::invalid_argument(std::string("truncated \\") + escape +
                                " escape");
  uint32_t value = 0;
  for (size_t k = 0; k < digits; ++k) {
    int h = hexValue(body[pos + k]);
    if (h < 0)
      throw std::invalid_argument(std::string("bad hex digit in \\") + escape +
                                  " escape");
    value = value * 16 + static_cast<uint32_t>(h);
  }
  return value;
}

std::string WorldTokenizer::parsePythonLiteral(std::string_view lit) {
  bool isBytes = false;
  if (!lit.empty() && (lit[0] == 'b' || lit[0] == 'B')) {
    isBytes = true;
    lit.remove_prefix(1);
  }
  if (lit.size() < 2 || (lit[0] != '\'' && lit[0] != '"') ||
      lit.back() != lit[0])
    throw std::invalid_argument("not a quoted Python string literal");
  const char quote = lit[0];
  std::string_view body = lit.substr(1, lit.size() - 2);

  std::string out;
  out.reserve(body.size());
  for (size_t i = 0; i < body.size();) {
    char c = body[i];
    if (c == quote)
      throw std::invalid_argument("unescaped quote inside literal");
    if (c != '\\') {
      // Python only allows ASCII characters in bytes literals.
      if (isBytes && static_cast<unsigned char>(c) >= 0x80)
        throw std::invalid_argument("non-ASCII character in bytes literal");
      out += c;
      ++i;
      continue;
    }
    if (i + 1 >= body.size())
      throw std::invalid_argument("literal ends with a lone backslash");
    char e = body[i + 1];
    i += 2;
    switch (e) {
    case '\\':
      out += '\\';
      break;
    case '\'':
      out += '\'';
      break;
    case '"':
      out += '"';
      break;
    case 'n':
      out += '\n';
      break;
    case 't':
      out += '\t';
      break;
    case 'r':
      out += '\r';
      break;
    case 'a':
      out += '\a';
      break;
    case 'b':
      out += '\b';
      break;
    case 'f':
      out += '\f';
      break;
    case 'v':
      out += '\v';
      break;
    case '\n':
      break; // line continuation
    case 'x': {
      uint32_t v = readHex(body, i, 2, 'x');
      i += 2;
      // In a str literal \xHH is the code point U+00HH, UTF-8 encoded.
      if (isBytes)
        out += static_cast<char>(v);
      else
        appendUtf8(out, v);
      break;
    }
    case 'u':
    case 'U': {
      if (isBytes) { // Not an escape in bytes: Python keeps it verbatim.
        out += '\\';
        out += e;
        break;
      }
      size_t digits = e == 'u' ? 4 : 8;
      uint32_t cp = readHex(body, i, digits, e);
      i += digits;
      if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        throw std::invalid_argument("code point is not encodable as UTF-8");
      appendUtf8(out, cp);
      break;
    }
    default:
      if (e >= '0' && e <= '7') { // octal: up to three digits
        uint32_t v = static_cast<uint32_t>(e - '0');
        for (int k = 0;
             k < 2 && i < body.size() && body[i] >= '0' && body[i] <= '7';
             ++k, ++i)
          v = v * 8 + static_cast<uint32_t>(body[i] - '0');
        if (isBytes)
          out += static_cast<char>(v & 0xFF);
        else
          appendUtf8(out, v);
        break;
      }
      // Unknown escapes are kept verbatim, as Python does.
      out += '\\';
      out += e;
      break;
    }
  }
  return out;
}

//===----------------------------------------------------------------------===//
// Vocabulary file
//===----------------------------------------------------------------------===//

static bool parseUnsigned(std::string_view s, uint64_t &value) {
  if (s.empty() || s.size() > 18)
    return false;
  value = 0;
  for (char c : s) {
    if (c < '0' || c > '9')
      return false;
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  return true;
}

std::unique_ptr<WorldTokenizer>
WorldTokenizer::fromFile(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw std::runtime_error(path + ": cannot open vocabulary file");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad())
    throw std::runtime_error(path + ": error reading vocabulary file");
  return fromString(buffer.str(), path);
}

std::unique_ptr<WorldTokenizer>
WorldTokenizer::fromString(std::string_view text, const std::string &name) {
  std::unique_ptr<WorldTokenizer> tok(new WorldTokenizer());
  // Id 0 (end of text) is implicit and decodes to the empty string.
  tok->tokens.assign(1, std::string());
  tok->present.assign(1, true);

  size_t lineNo = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos)
      end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++lineNo;
    // The last field is a number, so a trailing '\r' is never literal data.
    if (!line.empty() && line.back() == '\r')
      line.remove_suffix(1);
    if (line.empty())
      continue;

    auto fail = [&](const std::string &msg) -> std::runtime_error {
      return std::runtime_error(name + ":" + std::to_string(lineNo) + ": " +
                                msg);
    };
    size_t first = line.find(' ');
    size_t last = line.rfind(' ');
    if (first == std::string_view::npos || last <= first + 1)
      throw fail("malformed line, expected '<id> <literal> <byte_length>'");
    uint64_t id = 0, length = 0;
    if (!parseUnsigned(line.substr(0, first), id))
      throw fail("malformed token id '" + std::string(line.substr(0, first)) +
                 "'");
    if (!parseUnsigned(line.substr(last + 1), length))
      throw fail("malformed byte length '" +
                 std::string(line.substr(last + 1)) + "'");
    if (id == 0 ||
        id > static_cast<uint64_t>(std::numeric_limits<int32_t>::max() - 1))
      throw fail("token id " + std::to_string(id) +
                 " out of range (id 0 is reserved for end of text)");
    std::string bytes;
    try {
      bytes = parsePythonLiteral(line.substr(first + 1, last - first - 1));
    } catch (const std::invalid_argument &e) {
      throw fail(std::string("bad literal: ") + e.what());
    }
    if (bytes.size() != length)
      throw fail("literal decodes to " + std::to_string(bytes.size()) +
                 " bytes but the line says " + std::to_string(length));
    if (bytes.empty())
      throw fail("empty token");
    if (id >= tok->tokens.size()) {
      tok->tokens.resize(id + 1);
      tok->present.resize(id + 1, false);
    }
    if (tok->present[id])
      throw fail("duplicate token id " + std::to_string(id));
    tok->present[id] = true;
    tok->maxLen = std::max(tok->maxLen, bytes.size());
    tok->tokens[id] = std::move(bytes);
    ++tok->entries;
  }
  tok->buildTrie();
  // Every byte must be encodable, otherwise greedy matching can get stuck.
  for (unsigned b = 0; b < 256; ++b)
    if (tok->rootChild[b] == 0 || tok->nodeToken[tok->rootChild[b]] < 0)
      throw std::runtime_error(name +
                               ": vocabulary has no single-byte token "
                               "for byte " +
                               std::to_string(b));
  return tok;
}

void WorldTokenizer::buildTrie() {
  // Build with per-node edge lists first, then flatten into sorted arrays.
  std::vector<std::vector<std::pair<uint8_t, uint32_t>>> kids(1);
  std::vector<int32_t> tokAt(1, -1);
  for (size_t id = 1; id < tokens.size(); ++id) {
    if (!present[id])
      continue;
    uint32_t node = 0;
    for (unsigned char b : tokens[id]) {
      auto &edges = kids[node];
      auto it = std::find_if(edges.begin(), edges.end(),
                             [b](const auto &e) { return e.first == b; });
      if (it != edges.end()) {
        node = it->second;
        continue;
      }
      uint32_t child = static_cast<uint32_t>(kids.size());
      edges.emplace_back(b, child);
      kids.emplace_back();
      tokAt.push_back(-1);
      node = child;
    }
    // Byte strings are unique in a valid vocabulary; if two ids share bytes,
    // the smaller id wins so encoding stays deterministic.
    if (tokAt[node] < 0)
      tokAt[node] = static_cast<int32_t>(id);
  }

  nodeToken = std::move(tokAt);
  edgeBegin.assign(kids.size() + 1, 0);
  edgeBytes.clear();
  edgeChild.clear();
  std::fill(std::begin(rootChild), std::end(rootChild), 0u);
  for (size_t n = 0; n < kids.size(); ++n) {
    auto &edges = kids[n];
    std::sort(edges.begin(), edges.end());
    edgeBegin[n] = static_cast<uint32_t>(edgeBytes.size());
    for (auto &e : edges) {
      edgeBytes.push_back(e.first);
      edgeChild.push_back(e.second);
      if (n == 0)
        rootChild[e.first] = e.second;
    }
  }
  edgeBegin[kids.size()] = static_cast<uint32_t>(edgeBytes.size());
}

std::vector<int32_t> WorldTokenizer::encode(std::string_view bytes) const {
  std::vector<int32_t> ids;
  ids.reserve(bytes.size() / 3 + 1);
  const auto *data = reinterpret_cast<const uint8_t *>(bytes.data());
  const size_t n = bytes.size();
  size_t i = 0;
  while (i < n) {
    uint32_t node = rootChild[data[i]];
    // Every single byte is a token (checked at load time).
    int32_t best = nodeToken[node];
    size_t bestEnd = i + 1;
    for (size_t j = i + 1; j < n; ++j) {
      const uint8_t *first = edgeBytes.data() + edgeBegin[node];
      const uint8_t *last = edgeBytes.data() + edgeBegin[node + 1];
      const uint8_t *it = std::lower_bound(first, last, data[j]);
      if (it == last || *it != data[j])
        break;
      node = edgeChild[static_cast<size_t>(it - edgeBytes.data())];
      if (nodeToken[node] >= 0) {
        best = nodeToken[node];
        bestEnd = j + 1;
      }
    }
    ids.push_back(best);
    i = bestEnd;
  }
  return ids;
}

std::string_view WorldTokenizer::tokenBytes(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= tokens.size() ||
      !present[static_cast<size_t>(id)])
    throw std::out_of_range("token id " + std::to_string(id) +
                            " is not in the vocabulary (vocab size " +
                            std::to_string(tokens.size()) + ")");
  return tokens[static_cast<size_t>(id)];
}

std::unique_ptr<Tokenizer> rwkv::openTokenizer(const std::string &path) {
  // By content, not by name: a World vocabulary line starts with a digit, a
  // tokenizer.json with '{' (after optional white space and a UTF-8 BOM).
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw std::runtime_error(path + ": cannot open vocabulary file");
  char head[4096];
  in.read(head, sizeof head);
  std::string_view text(head, size_t(in.gcount()));
  if (text.substr(0, 3) == "\xEF\xBB\xBF")
    text.remove_prefix(3);
  size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string_view::npos && text[first] == '{')
    return BpeTokenizer::fromFile(path);
  return WorldTokenizer::fromFile(path);
}
