//===- RWKVDialect.cpp - rwkv dialect registration ------------------------===//

#include "dialect/RWKVDialect.h"
#include "dialect/RWKVOps.h"

#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

#include <tuple>

using namespace mlir;
using namespace mlir::rwkv;

#include "dialect/RWKVEnums.cpp.inc"
#include "dialect/RWKVOpsDialect.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "dialect/RWKVAttrs.cpp.inc"

void RWKVDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "dialect/RWKVOps.cpp.inc"
      >();
  addAttributes<
#define GET_ATTRDEF_LIST
#include "dialect/RWKVAttrs.cpp.inc"
      >();
}

LogicalResult
ModelConfigAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                        int64_t version, int64_t nLayer, int64_t nEmbd,
                        int64_t nHead, int64_t headSize, int64_t dimFfn,
                        int64_t vocabSize, int64_t loraW, int64_t loraA,
                        int64_t loraV, int64_t loraG) {
  if (version < 4 || version > 7)
    return emitError() << "unsupported RWKV version " << version
                       << " (expected 4..7)";
  for (auto [name, v] :
       {std::pair<const char *, int64_t>{"n_layer", nLayer},
        {"n_embd", nEmbd}, {"dim_ffn", dimFfn}, {"vocab_size", vocabSize}})
    if (v <= 0)
      return emitError() << name << " must be positive, got " << v;
  // RWKV-4 has no heads; RWKV-5/6 have no LoRAs of these kinds (6 keeps
  // its decay LoRA in lora_w).
  bool heads = version >= 5, loras = version == 7;
  for (auto [name, v, needed] :
       {std::tuple<const char *, int64_t, bool>{"n_head", nHead, heads},
        {"head_size", headSize, heads},
        {"lora_w", loraW, loras || version == 6},
        {"lora_a", loraA, loras},
        {"lora_v", loraV, loras},
        {"lora_g", loraG, loras}})
    if (needed ? v <= 0 : v < 0)
      return emitError() << name << " must be "
                         << (needed ? "positive" : "non-negative") << ", got "
                         << v;
  if (heads && nHead * headSize != nEmbd)
    return emitError() << "n_head * head_size (" << nHead << " * "
                       << headSize << ") must equal n_embd (" << nEmbd << ")";
  return success();
}
