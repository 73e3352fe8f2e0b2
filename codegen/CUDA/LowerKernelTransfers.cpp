//===- LowerKernelTransfers.cpp - vector transfers in kernels as loads ----===//
//
// Kernels built on tensors (rwkv-lower-wkv-to-rows) read and write whole
// rows with vector.transfer_read / transfer_write. convert-gpu-to-nvvm does
// not lower those (it does lower vector.load / store), and the host-side
// vector lowering runs only after the kernel module has been reconciled, so
// the NVVM pipeline fails on an unrealized cast (../shared/docs/
// cuda-codegen.md §1.2). In-bounds rank-1 transfers over a unit-stride
// dimension are plain vector loads and stores; upstream's transfer lowering
// patterns rewrite them to exactly that inside every gpu.launch.
//
// Those loads carry only the element's alignment, so the NVPTX back end
// splits a vector<64xf32> into 64 scalar ld.global. Where the access offset
// is provably a multiple of 4 elements, the load or store gets
// `alignment = 16` and becomes 16 ld.global.v4 (../shared/docs/
// cuda-codegen.md §1.2, "Vector width of the loads"). The proof: a memref
// with the identity layout is a whole buffer (cuMemAlloc: 256-byte
// aligned; host buffers of the emulation: the allocations' own 64-byte
// alignment, the runtime's aligned ones), a subview adds its offsets
// times the source strides, and an index's divisibility follows constants,
// products, sums and loop counters (start and step).
//
//===----------------------------------------------------------------------===//

#include "codegen/Passes.h"

#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Vector/Transforms/LoweringPatterns.h"
#include "mlir/IR/Matchers.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

#define DEBUG_TYPE "rwkv-lower-kernel-transfers"

namespace mlir::rwkv {
#define GEN_PASS_DEF_RWKVLOWERKERNELTRANSFERSPASS
#include "codegen/Passes.h.inc"

namespace {

/// What every element offset is known to be a multiple of; 0 = always 0.
using Divisor = uint64_t;

Divisor gcdDiv(Divisor a, Divisor b) { return std::gcd(a, b); }

/// A divisor of a product: the power of two of a * b, capped at 2^20 (a
/// capped power of two still divides it; only powers of two matter for
/// alignment, and they cannot overflow).
Divisor mulDiv(Divisor a, Divisor b) {
  if (a == 0 || b == 0)
    return 0;
  return Divisor(1) << std::min<unsigned>(20, llvm::countr_zero(a) +
                                                  llvm::countr_zero(b));
}

/// A divisor of an index value: constants, products and sums of them.
Divisor indexDivisor(Value v, int depth = 0) {
  APInt c;
  if (matchPattern(v, m_ConstantInt(&c)))
    return c.getSExtValue() < 0 ? 1 : c.getZExtValue();
  // A loop counter: its start and its step (a lane's strided sum,
  // rwkv-warp-reductions).
  if (auto arg = dyn_cast<BlockArgument>(v))
    if (auto loop = dyn_cast<scf::ForOp>(arg.getOwner()->getParentOp());
        loop && loop.getInductionVar() == v && depth <= 8)
      return gcdDiv(indexDivisor(loop.getLowerBound(), depth + 1),
                    indexDivisor(loop.getStep(), depth + 1));
  Operation *def = v.getDefiningOp();
  if (!def || depth > 8)
    return 1;
  if (auto mul = dyn_cast<arith::MulIOp>(def))
    return mulDiv(indexDivisor(mul.getLhs(), depth + 1),
                  indexDivisor(mul.getRhs(), depth + 1));
  if (auto add = dyn_cast<arith::AddIOp>(def))
    return gcdDiv(indexDivisor(add.getLhs(), depth + 1),
                  indexDivisor(add.getRhs(), depth + 1));
  return 1;
}

/// Divisors of a memref type's strides: static ones as they are; with the
/// identity layout a dynamic stride is a product that still holds the
/// static sizes after its dimension.
SmallVector<Divisor> strideDivisors(MemRefType type) {
  SmallVector<int64_t> strides;
  int64_t offset;
  if (failed(type.getStridesAndOffset(strides, offset)))
    return SmallVector<Divisor>(type.getRank(), 1);
  SmallVector<Divisor> divs(type.getRank(), 1);
  Divisor trailing = 1;
  for (int64_t d = type.getRank() - 1; d >= 0; --d) {
    if (!ShapedType::isDynamic(strides[d]))
      divs[d] = strides[d];
    else if (type.getLayout().isIdentity())
      divs[d] = trailing;
    if (!type.isDynamicDim(d))
      trailing = mulDiv(trailing, type.getDimSize(d));
  }
  return divs;
}

/// A divisor of the element offset of `m` from the start of its buffer.
Divisor bufferOffsetDivisor(Value m, int depth = 0) {
  auto type = cast<MemRefType>(m.getType());
  if (type.getLayout().isIdentity())
    return 0;
  auto sub = m.getDefiningOp<memref::SubViewOp>();
  if (!sub || depth > 8) {
    SmallVector<int64_t> strides;
    int64_t offset;
    if (succeeded(type.getStridesAndOffset(strides, offset)) &&
        !ShapedType::isDynamic(offset))
      return offset;
    return 1;
  }
  Divisor div = bufferOffsetDivisor(sub.getSource(), depth + 1);
  SmallVector<Divisor> strides = strideDivisors(sub.getSourceType());
  for (auto [d, ofr] : llvm::enumerate(sub.getMixedOffsets())) {
    Divisor o = isa<Attribute>(ofr)
                    ? Divisor(std::max<int64_t>(
                          0, cast<IntegerAttr>(cast<Attribute>(ofr)).getInt()))
                    : indexDivisor(cast<Value>(ofr), depth + 1);
    div = gcdDiv(div, mulDiv(strides[d], o));
  }
  return div;
}

/// The alignment in bytes (at most 16: ld.global.v4) of an access to `m`
/// at `indices`, if it is more than the element's.
std::optional<uint64_t> accessAlignment(Value m, ValueRange indices) {
  auto type = cast<MemRefType>(m.getType());
  Divisor div = bufferOffsetDivisor(m);
  SmallVector<Divisor> strides = strideDivisors(type);
  for (auto [d, idx] : llvm::enumerate(indices))
    div = gcdDiv(div, mulDiv(strides[d], indexDivisor(idx)));
  uint64_t elemBytes = type.getElementTypeBitWidth() / 8;
  if (elemBytes == 0)
    return std::nullopt;
  uint64_t align = 16;
  if (div != 0)
    align = std::min<uint64_t>(16, uint64_t(1)
                                       << llvm::countr_zero(div * elemBytes));
  if (align <= elemBytes)
    return std::nullopt;
  return align;
}

struct RWKVLowerKernelTransfersPass final
    : impl::RWKVLowerKernelTransfersPassBase<RWKVLowerKernelTransfersPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    vector::populateVectorTransferLoweringPatterns(patterns,
                                                   /*maxTransferRank=*/1);
    FrozenRewritePatternSet frozen(std::move(patterns));
    SmallVector<gpu::LaunchOp> launches;
    getOperation()->walk([&](gpu::LaunchOp l) { launches.push_back(l); });
    for (gpu::LaunchOp launch : launches)
      if (failed(applyPatternsGreedily(launch.getBody(), frozen)))
        return signalPassFailure();
    // Wider loads and stores where the offsets allow them.
    for (gpu::LaunchOp launch : launches)
      launch.getBody().walk([](Operation *op) {
        if (auto load = dyn_cast<vector::LoadOp>(op)) {
          if (!load.getAlignment())
            if (auto a = accessAlignment(load.getBase(), load.getIndices()))
              load.setAlignment(*a);
        } else if (auto store = dyn_cast<vector::StoreOp>(op)) {
          if (!store.getAlignment())
            if (auto a = accessAlignment(store.getBase(), store.getIndices()))
              store.setAlignment(*a);
        }
      });
    // A transfer left in a kernel would fail much later, in the NVVM
    // translation, with no hint of where it came from.
    WalkResult left = getOperation()->walk([&](Operation *op) {
      if (isa<vector::TransferReadOp, vector::TransferWriteOp>(op) &&
          op->getParentOfType<gpu::LaunchOp>()) {
        op->emitError("vector transfer in a kernel is not an in-bounds "
                      "rank-1 access to a unit-stride dimension");
        return WalkResult::interrupt();
      }
      return WalkResult::advance();
    });
    if (left.wasInterrupted())
      signalPassFailure();
  }
};

} // namespace
} // namespace mlir::rwkv
