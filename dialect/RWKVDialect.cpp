//===- RWKVDialect.cpp - rwkv dialect registration ------------------------===//

#include "dialect/RWKVDialect.h"
#include "dialect/RWKVOps.h"

#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

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
        {"n_embd", nEmbd}, {"n_head", nHead}, {"head_size", headSize},
        {"dim_ffn", dimFfn}, {"vocab_size", vocabSize}, {"lora_w", loraW},
        {"lora_a", loraA}, {"lora_v", loraV}, {"lora_g", loraG}})
    if (v <= 0)
      return emitError() << name << " must be positive, got " << v;
  if (nHead * headSize != nEmbd)
    return emitError() << "n_head * head_size (" << nHead << " * "
                       << headSize << ") must equal n_embd (" << nEmbd << ")";
  return success();
}
