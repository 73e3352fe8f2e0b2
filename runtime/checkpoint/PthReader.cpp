//===- PthReader.cpp - torch.save zip + pickle reader ---------------------===//
//
// Walks the zip with minizip over an in-memory stream (the file is mmapped),
// takes each stored record's payload offset from its local header so tensors
// are views into the mapping, and decodes data.pkl with a small pickle
// machine that only knows the opcodes and globals torch.save emits. Nothing
// from the pickle is ever executed: REDUCE is interpreted for an allow-list of
// callables, everything else is rejected with an error naming it.
//
//===----------------------------------------------------------------------===//

#include "runtime/checkpoint/Internal.h"

#include <minizip/unzip.h>

#include <cstring>
#include <map>
#include <unordered_map>

namespace rwkv {
namespace {

//===----------------------------------------------------------------------===//
// minizip over a memory buffer
//===----------------------------------------------------------------------===//

struct MemStream {
  const uint8_t *data;
  uint64_t size;
  uint64_t pos;
};

voidpf ZCALLBACK memOpen(voidpf opaque, const void *, int) { return opaque; }
uLong ZCALLBACK memRead(voidpf, voidpf stream, void *buf, uLong size) {
  auto *s = static_cast<MemStream *>(stream);
  uint64_t avail = s->pos < s->size ? s->size - s->pos : 0;
  uint64_t n = size < avail ? size : avail;
  if (n)
    std::memcpy(buf, s->data + s->pos, n);
  s->pos += n;
  return uLong(n);
}
uLong ZCALLBACK memWrite(voidpf, voidpf, const void *, uLong) { return 0; }
ZPOS64_T ZCALLBACK memTell(voidpf, voidpf stream) {
  return static_cast<MemStream *>(stream)->pos;
}
long ZCALLBACK memSeek(voidpf, voidpf stream, ZPOS64_T offset, int origin) {
  auto *s = static_cast<MemStream *>(stream);
  uint64_t base = origin == ZLIB_FILEFUNC_SEEK_SET   ? 0
                  : origin == ZLIB_FILEFUNC_SEEK_CUR ? s->pos
                                                     : s->size;
  uint64_t np;
  if (!addOk(base, offset, np) || np > s->size)
    return -1;
  s->pos = np;
  return 0;
}
int ZCALLBACK memClose(voidpf, voidpf) { return 0; }
int ZCALLBACK memError(voidpf, voidpf) { return 0; }

struct ZipEntry {
  unz64_file_pos pos;
  uint64_t compressedSize = 0, size = 0;
  unsigned long method = 0, flag = 0;
};

class ZipArchive {
public:
  ZipArchive(const std::string &file, const uint8_t *data, size_t size)
      : file_(file), stream_{data, size, 0} {
    zlib_filefunc64_def funcs{};
    funcs.zopen64_file = memOpen;
    funcs.zread_file = memRead;
    funcs.zwrite_file = memWrite;
    funcs.ztell64_file = memTell;
    funcs.zseek64_file = memSeek;
    funcs.zclose_file = memClose;
    funcs.zerror_file = memError;
    funcs.opaque = &stream_;
    zf_.h = unzOpen2_64(&stream_, &funcs);
    if (!zf_)
      fail(file_, "corrupted or truncated zip archive: cannot find or read "
                  "its central directory");
    int rc = unzGoToFirstFile(zf_);
    while (rc == UNZ_OK) {
      unz_file_info64 info;
      char name[4096];
      if (unzGetCurrentFileInfo64(zf_, &info, name, sizeof(name), nullptr, 0,
                                  nullptr, 0) != UNZ_OK)
        fail(file_, "corrupted zip archive: bad central directory entry #{}",
             order_.size());
      if (info.size_filename >= sizeof(name))
        fail(file_, "corrupted zip archive: entry name too long");
      ZipEntry e;
      if (unzGetFilePos64(zf_, &e.pos) != UNZ_OK)
        fail(file_, "corrupted zip archive");
      e.compressedSize = info.compressed_size;
      e.size = info.uncompressed_size;
      e.method = info.compression_method;
      e.flag = info.flag;
      std::string n(name, info.size_filename);
      order_.push_back(n);
      entries_[n] = e;
      rc = unzGoToNextFile(zf_);
    }
    if (rc != UNZ_END_OF_LIST_OF_FILE)
      fail(file_,
           "corrupted zip archive: central directory is damaged "
           "(minizip error {})",
           rc);
  }

  const std::vector<std::string> &names() const { return order_; }
  const ZipEntry *find(const std::string &name) const {
    auto it = entries_.find(name);
    return it == entries_.end() ? nullptr : &it->second;
  }

  /// Returns a pointer into the buffer for a stored record; for a deflated
  /// record (only accepted when `allowCopy`) inflates it into `copy`.
  const uint8_t *view(const std::string &name, const ZipEntry &e,
                      bool allowCopy, std::vector<uint8_t> &copy) {
    unz64_file_pos pos = e.pos;
    if (unzGoToFilePos64(zf_, &pos) != UNZ_OK)
      fail(file_, "corrupted zip archive: cannot seek to record '{}'", name);
    if (e.flag & 1)
      fail(file_, "record '{}' is encrypted", name);
    if (e.method != 0 && !(allowCopy && e.method == Z_DEFLATED))
      fail(file_,
           "record '{}' is compressed (zip method {}); torch checkpoints "
           "store tensor data uncompressed",
           name, e.method);
    if (unzOpenCurrentFile(zf_) != UNZ_OK)
      fail(file_, "corrupted zip archive: bad local header for record '{}'",
           name);
    const uint8_t *result = nullptr;
    if (e.method == 0) {
      uint64_t off = unzGetCurrentFileZStreamPos64(zf_), end;
      if (e.compressedSize != e.size || !addOk(off, e.size, end) ||
          end > stream_.size) {
        unzCloseCurrentFile(zf_);
        fail(file_,
             "truncated or corrupted zip: record '{}' ({} bytes at offset "
             "{}) extends past the end of the file ({} bytes)",
             name, e.size, off, stream_.size);
      }
      result = stream_.data + off;
    } else {
      // Deflate expands at most ~1032x; refuse sizes that cannot be real
      // before allocating.
      if (e.size > (uint64_t(1) << 32) ||
          e.size > e.compressedSize * 1100 + 4096) {
        unzCloseCurrentFile(zf_);
        fail(file_, "record '{}' declares an implausible size {}", name,
             e.size);
      }
      copy.resize(e.size);
      int got = unzReadCurrentFile(zf_, copy.data(), unsigned(e.size));
      if (got < 0 || uint64_t(got) != e.size) {
        unzCloseCurrentFile(zf_);
        fail(file_, "corrupted zip: cannot inflate record '{}'", name);
      }
      result = copy.data();
    }
    unzCloseCurrentFile(zf_);
    return result;
  }

private:
  const std::string &file_;
  MemStream stream_;
  // A member (not a destructor body) closes the handle, so that it is also
  // released when the constructor throws half-way through the directory.
  struct Handle {
    unzFile h = nullptr;
    ~Handle() {
      if (h)
        unzClose(h);
    }
    operator unzFile() const { return h; }
  } zf_;
  std::vector<std::string> order_;
  std::unordered_map<std::string, ZipEntry> entries_;
};

//===----------------------------------------------------------------------===//
// Pickle machine
//===----------------------------------------------------------------------===//

struct Obj {
  enum Kind {
    None,
    Bool,
    Int,
    Float,
    Str,
    Bytes,
    Tuple,
    List,
    Dict,
    Global,
    Storage,
    TensorV
  };
  Kind kind;
  int64_t i = 0;            // Int/Bool value; Storage numel; TensorV offset
  double f = 0;             // Float
  std::string s, s2;        // Str/Bytes; Global module/name; Storage key
  std::vector<Obj *> items; // Tuple/List; Dict as k0,v0,k1,v1,...
  DType dtype = DType::F32; // Storage
  Obj *storage = nullptr;   // TensorV
  std::vector<int64_t> shape, strides; // TensorV
};

const char *kindName(Obj::Kind k) {
  static const char *names[] = {"None", "bool",   "int",     "float",
                                "str",  "bytes",  "tuple",   "list",
                                "dict", "global", "storage", "tensor"};
  return names[k];
}

struct StorageType {
  const char *name;
  DType dtype;
};
const StorageType kStorageTypes[] = {
    {"FloatStorage", DType::F32},     {"HalfStorage", DType::F16},
    {"BFloat16Storage", DType::BF16}, {"DoubleStorage", DType::F64},
    {"LongStorage", DType::I64},      {"IntStorage", DType::I32},
    {"ShortStorage", DType::I16},     {"CharStorage", DType::I8},
    {"ByteStorage", DType::U8},       {"BoolStorage", DType::Bool}};
const char *kTorchDTypes[] = {"float32",  "float",   "float16", "half",
                              "bfloat16", "float64", "double",  "int64",
                              "long",     "int32",   "int",     "int16",
                              "short",    "int8",    "uint8",   "bool"};

class Unpickler {
public:
  Unpickler(const std::string &file, const uint8_t *data, size_t size)
      : file_(file), p_(data), n_(size) {}

  Obj *run() {
    while (true) {
      size_t opPos = pos_;
      uint8_t op = u8();
      switch (op) {
      case 0x80: { // PROTO
        uint8_t proto = u8();
        if (proto > 5)
          error(opPos, "unsupported pickle protocol {}", proto);
        break;
      }
      case 0x95: { // FRAME: framing is only a hint for buffered readers
        uint64_t len = u64();
        if (len > n_ - pos_)
          error(opPos, "truncated pickle: FRAME of {} bytes", len);
        break;
      }
      case '.': { // STOP
        Obj *result = pop(opPos, "STOP");
        return result;
      }
      case '(':
        marks_.push_back(stack_.size());
        break;
      case '0':
        pop(opPos, "POP");
        break;
      case '1':
        popMark(opPos, "POP_MARK");
        break;
      case 'N':
        push(make(Obj::None));
        break;
      case 0x88:
      case 0x89: { // NEWTRUE / NEWFALSE
        Obj *o = make(Obj::Bool);
        o->i = op == 0x88;
        push(o);
        break;
      }
      case 'J':
        pushInt(int32_t(u32()));
        break;
      case 'K':
        pushInt(u8());
        break;
      case 'M':
        pushInt(u16());
        break;
      case 0x8a:
        pushInt(readLong(opPos, u8()));
        break; // LONG1
      case 0x8b:
        pushInt(readLong(opPos, u32()));
        break;    // LONG4
      case 'G': { // BINFLOAT, big-endian
        uint64_t bits = 0;
        for (int k = 0; k < 8; ++k)
          bits = (bits << 8) | u8();
        Obj *o = make(Obj::Float);
        std::memcpy(&o->f, &bits, 8);
        push(o);
        break;
      }
      case 'X':
        pushStr(opPos, Obj::Str, u32());
        break; // BINUNICODE
      case 0x8c:
        pushStr(opPos, Obj::Str, u8());
        break; // SHORT_BINUNICODE
      case 0x8d:
        pushStr(opPos, Obj::Str, u64());
        break; // BINUNICODE8
      case 'T':
        pushStr(opPos, Obj::Str, u32());
        break; // BINSTRING
      case 'U':
        pushStr(opPos, Obj::Str, u8());
        break; // SHORT_BINSTRING
      case 'B':
        pushStr(opPos, Obj::Bytes, u32());
        break; // BINBYTES
      case 'C':
        pushStr(opPos, Obj::Bytes, u8());
        break; // SHORT_BINBYTES
      case 0x8e:
        pushStr(opPos, Obj::Bytes, u64());
        break; // BINBYTES8
      case ')':
        push(make(Obj::Tuple));
        break;
      case ']':
        push(make(Obj::List));
        break;
      case '}':
        push(make(Obj::Dict));
        break;
      case 't': {
        Obj *o = make(Obj::Tuple);
        o->items = popMark(opPos, "TUPLE");
        push(o);
        break;
      }
      case 0x85:
      case 0x86:
      case 0x87: { // TUPLE1/2/3
        size_t k = op - 0x84;
        Obj *o = make(Obj::Tuple);
        o->items.resize(k);
        for (size_t j = k; j-- > 0;)
          o->items[j] = pop(opPos, "TUPLEn");
        push(o);
        break;
      }
      case 'a': {
        Obj *v = pop(opPos, "APPEND");
        expect(top(opPos, "APPEND"), Obj::List, opPos, "APPEND")
            ->items.push_back(v);
        break;
      }
      case 'e': {
        std::vector<Obj *> vs = popMark(opPos, "APPENDS");
        Obj *l = expect(top(opPos, "APPENDS"), Obj::List, opPos, "APPENDS");
        l->items.insert(l->items.end(), vs.begin(), vs.end());
        break;
      }
      case 's': {
        Obj *v = pop(opPos, "SETITEM");
        Obj *k = pop(opPos, "SETITEM");
        Obj *d = expect(top(opPos, "SETITEM"), Obj::Dict, opPos, "SETITEM");
        d->items.push_back(k);
        d->items.push_back(v);
        break;
      }
      case 'u': {
        std::vector<Obj *> kv = popMark(opPos, "SETITEMS");
        if (kv.size() % 2)
          error(opPos, "SETITEMS with an odd number of items");
        Obj *d = expect(top(opPos, "SETITEMS"), Obj::Dict, opPos, "SETITEMS");
        d->items.insert(d->items.end(), kv.begin(), kv.end());
        break;
      }
      case 'q':
        memoPut(opPos, u8());
        break; // BINPUT
      case 'r':
        memoPut(opPos, u32());
        break; // LONG_BINPUT
      case 0x94:
        memoPut(opPos, uint32_t(memo_.size()));
        break; // MEMOIZE
      case 'h':
        memoGet(opPos, u8());
        break; // BINGET
      case 'j':
        memoGet(opPos, u32());
        break;    // LONG_BINGET
      case 'c': { // GLOBAL "module\nname\n"
        std::string module = line(opPos), name = line(opPos);
        push(global(opPos, module, name));
        break;
      }
      case 0x93: { // STACK_GLOBAL
        Obj *name =
            expect(pop(opPos, "STACK_GLOBAL"), Obj::Str, opPos, "STACK_GLOBAL");
        Obj *module =
            expect(pop(opPos, "STACK_GLOBAL"), Obj::Str, opPos, "STACK_GLOBAL");
        push(global(opPos, module->s, name->s));
        break;
      }
      case 'Q':
        push(persistentLoad(opPos, pop(opPos, "BINPERSID")));
        break;
      case 'R': {
        Obj *args =
            expect(pop(opPos, "REDUCE"), Obj::Tuple, opPos, "REDUCE args");
        Obj *callable = pop(opPos, "REDUCE");
        push(reduce(opPos, callable, args));
        break;
      }
      case 'b': { // BUILD: only the state of dicts (_metadata) and tensors
        pop(opPos, "BUILD");
        Obj *target = top(opPos, "BUILD");
        if (target->kind != Obj::Dict && target->kind != Obj::TensorV)
          error(opPos, "BUILD on a {} is not supported",
                kindName(target->kind));
        break;
      }
      default:
        if (op >= 0x20 && op < 0x7f)
          error(opPos, "unsupported pickle opcode 0x{:02x} ('{}')", op,
                char(op));
        error(opPos, "unsupported pickle opcode 0x{:02x}", op);
      }
    }
  }

private:
  template <typename... Args>
  [[noreturn]] void error(size_t at, const char *f, Args &&...args) {
    fail(file_, "data.pkl offset {}: {}", at,
         fmt::format(fmt::runtime(f), std::forward<Args>(args)...));
  }

  Obj *make(Obj::Kind k) {
    arena_.push_back(std::make_unique<Obj>());
    arena_.back()->kind = k;
    return arena_.back().get();
  }
  void push(Obj *o) { stack_.push_back(o); }
  void pushInt(int64_t v) {
    Obj *o = make(Obj::Int);
    o->i = v;
    push(o);
  }
  size_t fence() const { return marks_.empty() ? 0 : marks_.back(); }
  Obj *pop(size_t at, const char *op) {
    if (stack_.size() <= fence())
      error(at, "pickle stack underflow in {}", op);
    Obj *o = stack_.back();
    stack_.pop_back();
    return o;
  }
  Obj *top(size_t at, const char *op) {
    if (stack_.size() <= fence())
      error(at, "pickle stack underflow in {}", op);
    return stack_.back();
  }
  std::vector<Obj *> popMark(size_t at, const char *op) {
    if (marks_.empty())
      error(at, "{} without a MARK", op);
    size_t m = marks_.back();
    marks_.pop_back();
    std::vector<Obj *> items(stack_.begin() + m, stack_.end());
    stack_.resize(m);
    return items;
  }
  Obj *expect(Obj *o, Obj::Kind k, size_t at, const char *what) {
    if (o->kind != k)
      error(at, "{}: expected a {}, got a {}", what, kindName(k),
            kindName(o->kind));
    return o;
  }

  void need(size_t k) {
    if (k > n_ - pos_)
      fail(file_, "data.pkl is truncated at offset {} (needs {} more bytes)",
           pos_, k);
  }
  uint8_t u8() {
    need(1);
    return p_[pos_++];
  }
  uint64_t le(size_t k) {
    need(k);
    uint64_t v = 0;
    for (size_t j = 0; j < k; ++j)
      v |= uint64_t(p_[pos_ + j]) << (8 * j);
    pos_ += k;
    return v;
  }
  uint16_t u16() { return uint16_t(le(2)); }
  uint32_t u32() { return uint32_t(le(4)); }
  uint64_t u64() { return le(8); }
  int64_t readLong(size_t at, uint64_t len) {
    if (len > 8)
      error(at, "integer of {} bytes is too large", len);
    uint64_t v = le(size_t(len));
    if (len > 0 && len < 8 && (v >> (8 * len - 1)) & 1) // sign-extend
      v |= ~uint64_t(0) << (8 * len);
    return int64_t(v);
  }
  void pushStr(size_t at, Obj::Kind k, uint64_t len) {
    if (len > n_ - pos_)
      error(at, "truncated pickle: string of {} bytes", len);
    Obj *o = make(k);
    o->s.assign(reinterpret_cast<const char *>(p_ + pos_), size_t(len));
    pos_ += size_t(len);
    push(o);
  }
  std::string line(size_t at) {
    const void *nl = std::memchr(p_ + pos_, '\n', n_ - pos_);
    if (!nl)
      error(at, "truncated pickle: unterminated GLOBAL");
    size_t end = static_cast<const uint8_t *>(nl) - p_;
    std::string s(reinterpret_cast<const char *>(p_ + pos_), end - pos_);
    pos_ = end + 1;
    return s;
  }
  void memoPut(size_t at, uint32_t idx) { memo_[idx] = top(at, "BINPUT"); }
  void memoGet(size_t at, uint32_t idx) {
    auto it = memo_.find(idx);
    if (it == memo_.end())
      error(at, "memo index {} out of range (BINGET of an unset slot)", idx);
    push(it->second);
  }

  Obj *global(size_t at, const std::string &module, const std::string &name) {
    bool ok = (module == "collections" && name == "OrderedDict") ||
              (module == "torch._utils" &&
               (name == "_rebuild_tensor_v2" || name == "_rebuild_parameter"));
    if (module == "torch") {
      for (const StorageType &st : kStorageTypes)
        ok |= name == st.name;
      for (const char *d : kTorchDTypes)
        ok |= name == d;
    }
    if (!ok)
      error(at,
            "disallowed global '{}.{}' (only torch tensor rebuild "
            "functions, storages and collections.OrderedDict are allowed)",
            module, name);
    Obj *o = make(Obj::Global);
    o->s = module;
    o->s2 = name;
    return o;
  }

  Obj *persistentLoad(size_t at, Obj *pid) {
    if (pid->kind != Obj::Tuple || pid->items.size() != 5 ||
        pid->items[0]->kind != Obj::Str || pid->items[0]->s != "storage" ||
        pid->items[1]->kind != Obj::Global || pid->items[2]->kind != Obj::Str ||
        pid->items[4]->kind != Obj::Int)
      error(at, "malformed persistent id (expected ('storage', <type>, key, "
                "location, numel))");
    const Obj *type = pid->items[1];
    Obj *o = make(Obj::Storage);
    bool found = false;
    for (const StorageType &st : kStorageTypes)
      if (type->s == "torch" && type->s2 == st.name) {
        o->dtype = st.dtype;
        found = true;
      }
    if (!found)
      error(at, "unsupported storage type '{}.{}'", type->s, type->s2);
    if (pid->items[4]->i < 0)
      error(at, "negative storage size {}", pid->items[4]->i);
    o->s = pid->items[2]->s;
    o->i = pid->items[4]->i;
    return o;
  }

  std::vector<int64_t> intTuple(size_t at, const Obj *o, const char *what) {
    if (o->kind != Obj::Tuple)
      error(at, "_rebuild_tensor_v2: {} is a {}, expected a tuple", what,
            kindName(o->kind));
    std::vector<int64_t> v;
    for (const Obj *e : o->items) {
      if (e->kind != Obj::Int)
        error(at, "_rebuild_tensor_v2: {} holds a {}", what, kindName(e->kind));
      v.push_back(e->i);
    }
    return v;
  }

  Obj *reduce(size_t at, Obj *callable, Obj *args) {
    if (callable->kind != Obj::Global)
      error(at, "REDUCE on a {} (not a callable)", kindName(callable->kind));
    const std::string &m = callable->s, &n = callable->s2;
    const std::vector<Obj *> &a = args->items;
    if (m == "collections" && n == "OrderedDict") {
      if (!a.empty())
        error(at, "OrderedDict() with arguments is not supported");
      return make(Obj::Dict);
    }
    if (m == "torch._utils" && n == "_rebuild_tensor_v2") {
      if (a.size() != 6 && a.size() != 7)
        error(at, "_rebuild_tensor_v2 takes 6 or 7 arguments, got {}",
              a.size());
      if (a[0]->kind != Obj::Storage || a[1]->kind != Obj::Int)
        error(at, "_rebuild_tensor_v2: bad storage/offset ({}, {})",
              kindName(a[0]->kind), kindName(a[1]->kind));
      Obj *t = make(Obj::TensorV);
      t->storage = a[0];
      t->i = a[1]->i;
      t->shape = intTuple(at, a[2], "size");
      t->strides = intTuple(at, a[3], "stride");
      if (t->shape.size() != t->strides.size())
        error(at, "_rebuild_tensor_v2: size {} and stride {} differ in rank",
              shapeStr(t->shape), shapeStr(t->strides));
      return t;
    }
    if (m == "torch._utils" && n == "_rebuild_parameter") {
      if (a.empty() || a[0]->kind != Obj::TensorV)
        error(at, "_rebuild_parameter without a tensor argument");
      return a[0];
    }
    error(at, "global '{}.{}' is not callable", m, n);
  }

  const std::string &file_;
  const uint8_t *p_;
  size_t n_, pos_ = 0;
  std::vector<std::unique_ptr<Obj>> arena_;
  std::vector<Obj *> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint32_t, Obj *> memo_;

public:
  /// Keeps the objects alive for the caller after run().
  std::vector<std::unique_ptr<Obj>> &arena() { return arena_; }
};

} // namespace

void CheckpointLoader::loadPth(Checkpoint &ckpt) {
  const std::string &file = ckpt.path();
  Checkpoint::Impl &impl = CheckpointLoader::impl(ckpt);
  setFormat(ckpt, Checkpoint::Format::Pth);
  ZipArchive zip(file, impl.data, impl.size);
  if (zip.names().empty())
    fail(file, "empty zip archive: not a torch checkpoint");

  // The archive folder is the file's basename at save time, so take it from
  // the records instead of assuming "archive/".
  std::string folder;
  const std::string &first = zip.names().front();
  size_t slash = first.find('/');
  if (slash != std::string::npos &&
      zip.find(first.substr(0, slash) + "/data.pkl"))
    folder = first.substr(0, slash);
  else
    for (const std::string &n : zip.names())
      if (n.size() > 9 && n.compare(n.size() - 9, 9, "/data.pkl") == 0 &&
          n.find('/') == n.size() - 9) {
        folder = n.substr(0, n.size() - 9);
        break;
      }
  if (folder.empty())
    fail(file, "zip archive has no <folder>/data.pkl record: not a torch "
               "checkpoint");
  setArchive(ckpt, folder);

  std::vector<uint8_t> scratch;
  if (const ZipEntry *bo = zip.find(folder + "/byteorder")) {
    const uint8_t *d = zip.view(folder + "/byteorder", *bo, true, scratch);
    std::string order(reinterpret_cast<const char *>(d), size_t(bo->size));
    if (order != "little")
      fail(file,
           "byteorder record is '{}'; only little-endian checkpoints "
           "are supported",
           order);
  }

  const std::string pklName = folder + "/data.pkl";
  std::vector<uint8_t> pklCopy;
  const uint8_t *pkl = zip.view(pklName, *zip.find(pklName), true, pklCopy);
  Unpickler unpickler(file, pkl, size_t(zip.find(pklName)->size));
  Obj *root = unpickler.run();
  if (root->kind != Obj::Dict)
    fail(file, "data.pkl holds a {}, expected a dict/OrderedDict state_dict",
         kindName(root->kind));

  struct StorageView {
    const uint8_t *data;
    uint64_t bytes;
  };
  std::map<std::string, StorageView> storages;
  for (size_t k = 0; k + 1 < root->items.size(); k += 2) {
    const Obj *key = root->items[k], *value = root->items[k + 1];
    if (key->kind != Obj::Str)
      fail(file, "state_dict key #{} is a {}, expected a str", k / 2,
           kindName(key->kind));
    if (value->kind != Obj::TensorV)
      continue; // pip-converted files carry _strategy/_version/... scalars
    const std::string &name = key->s;
    const Obj *st = value->storage;
    size_t es = dtypeSize(st->dtype);
    std::string record = folder + "/data/" + st->s;
    auto it = storages.find(st->s);
    if (it == storages.end()) {
      const ZipEntry *e = zip.find(record);
      if (!e)
        fail(file, "missing storage record '{}' for tensor '{}'", record, name);
      uint64_t want;
      if (!mulOk(uint64_t(st->i), es, want) || want > e->size)
        fail(file,
             "storage record '{}' has {} bytes but tensor '{}' declares {} "
             "{} elements",
             record, e->size, name, st->i, dtypeName(st->dtype));
      // Stored records only (allowCopy=false): the view is zero-copy.
      const uint8_t *d = zip.view(record, *e, false, scratch);
      it = storages.emplace(st->s, StorageView{d, want}).first;
    }
    uint64_t span, start, end;
    if (value->i < 0 || !stridedSpan(value->shape, value->strides, es, span) ||
        !mulOk(uint64_t(value->i), es, start) || !addOk(start, span, end) ||
        end > it->second.bytes)
      fail(file,
           "tensor '{}' (shape {}, stride {}, storage offset {}) extends past "
           "its storage '{}' of {} bytes",
           name, shapeStr(value->shape), shapeStr(value->strides), value->i,
           record, it->second.bytes);
    Tensor t;
    t.name = name;
    t.dtype = st->dtype;
    t.shape = value->shape;
    t.strides = value->strides;
    t.data = it->second.data + start;
    t.nbytes = size_t(span);
    addTensor(ckpt, std::move(t));
  }
}

} // namespace rwkv
