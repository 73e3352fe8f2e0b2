//===- WarpUtils.h - what warp reductions and their emulation share -------===//
//
// rwkv-warp-reductions splits sums across the lanes of a warp and
// rwkv-emulate-gpu-launch recomputes a warp's lanes on the host: both must
// agree on the warp size and on which ops may run once per lane.
//
//===----------------------------------------------------------------------===//

#ifndef RWKV_CODEGEN_CUDA_WARPUTILS_H
#define RWKV_CODEGEN_CUDA_WARPUTILS_H

#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

namespace mlir::rwkv {

/// Lanes per warp (gpu.subgroup_reduce's subgroup on NVIDIA GPUs).
inline constexpr int64_t kWarpSize = 32;

/// Whether `op` and everything nested in it only reads memory, so that it
/// may run once per lane (or be recomputed for another lane).
inline bool readsOnly(Operation *op) {
  WalkResult r = op->walk([](Operation *inner) {
    if (isPure(inner) || isa<scf::YieldOp>(inner))
      return WalkResult::advance();
    auto effects = dyn_cast<MemoryEffectOpInterface>(inner);
    if (!effects && inner->hasTrait<OpTrait::HasRecursiveMemoryEffects>())
      return WalkResult::advance();
    // No effects but not speculatable (arith.divui by a run-time value)
    // is fine: every lane runs it under the same conditions.
    if (!effects || (!effects.hasNoEffect() &&
                     !effects.onlyHasEffect<MemoryEffects::Read>()))
      return WalkResult::interrupt();
    return WalkResult::advance();
  });
  return !r.wasInterrupted();
}

} // namespace mlir::rwkv

#endif // RWKV_CODEGEN_CUDA_WARPUTILS_H
