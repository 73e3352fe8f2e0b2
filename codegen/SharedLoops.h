//===- SharedLoops.h - OpenMP regions of plain work-shared loops -*- C++
//-*-===//
//
// Shared by rwkv-merge-parallel-regions and rwkv-inline-static-schedule:
// the regions the first may combine are the ones the second can schedule.
//
//===----------------------------------------------------------------------===//

#ifndef RWKV_CODEGEN_SHAREDLOOPS_H
#define RWKV_CODEGEN_SHAREDLOOPS_H

#include "mlir/Dialect/OpenMP/OpenMPDialect.h"

namespace mlir::rwkv {

/// The loop nests of `parallel` when the region is nothing but work-shared
/// loops with the default schedule and no clauses that need the runtime
/// (reductions, privatization, ordering), or none. One loop is what
/// convert-scf-to-openmp builds; several come from
/// rwkv-merge-parallel-regions.
SmallVector<omp::LoopNestOp> plainSharedLoops(omp::ParallelOp parallel);

} // namespace mlir::rwkv

#endif // RWKV_CODEGEN_SHAREDLOOPS_H
