// rwkv-cuda-pipeline (codegen/Pipelines.cpp, buildRWKVCudaPipeline): the
// shared front half, bufferization, one gpu.launch per parallel loop nest
// (rwkv-map-parallel-loops-to-gpu), device buffers (rwkv-gpu-host-buffers),
// one merged kernel module (rwkv-merge-gpu-modules) and NVVM down to an
// embedded device binary. gpu-format=isa keeps the PTX text in the module
// and needs no CUDA toolkit (LLVM's NVPTX back end writes it).
// RUN: rwkv-opt %rwkv_src/models/rwkv7/example-2layer.mlir --rwkv-cuda-pipeline='gpu-format=isa' -o %t.mlir
// RUN: FileCheck %s --check-prefix=BIN < %t.mlir
// RUN: FileCheck %s --check-prefix=HOST --implicit-check-not=gpu.module < %t.mlir
// RUN: rwkv-opt %t.mlir -o /dev/null

// One device binary for the whole model, for the requested chip; the host
// code allocates its buffers on the device, launches the merged module's
// kernels, and no gpu.module is left.
// BIN-COUNT-1: gpu.binary @rwkv_kernels  [#gpu.object<#nvvm.target<O = 3, chip = "sm_90", features = "+ptx80">
// BIN-SAME:    .target sm_90
// BIN-SAME:    .visible .entry forward_kernel(
// BIN-SAME:    ld.global.v4.b32
// BIN-NOT:     gpu.binary
// HOST:        llvm.func @forward(
// HOST:        llvm.call @mgpuMemAlloc
// HOST:        gpu.launch_func <{{.+}}> @rwkv_kernels::@forward_kernel

// The mapped IR: every buffer access of an entry point sits in a kernel.
// RUN: rwkv-opt %rwkv_src/models/rwkv7/example-2layer.mlir --rwkv-cuda-pipeline='gpu-format=isa gpu-block-size=128' --mlir-print-ir-after=rwkv-gpu-host-buffers -o /dev/null 2>&1 | FileCheck %s --check-prefix=MAPPED
// MAPPED:     IR Dump After RWKVGpuHostBuffersPass
// MAPPED:     func.func @forward(
// MAPPED:       gpu.alloc
// MAPPED:       gpu.launch blocks({{.+}}) threads({{.+}}) in (%{{.+}} = %c128{{.*}}, %{{.+}} = %c1{{.*}}, %{{.+}} = %c1{{.*}})
// MAPPED:       gpu.dealloc

// The sequential WKV (rwkv-lower-wkv-to-rows, rwkv-lower-kernel-transfers):
// one kernel of B * H * N = 1 * 2 * 64 threads, each carrying its state row
// as a vector<64xf32> through the token loop and reading the head's vectors
// with 16-byte aligned vector.load (what convert-gpu-to-nvvm lowers, and
// NVPTX turns into ld.global.v4).
// RUN: rwkv-opt %rwkv_src/models/rwkv7/example-2layer.mlir --rwkv-cuda-pipeline='gpu-format=isa' --mlir-print-ir-after=rwkv-lower-kernel-transfers -o /dev/null 2>&1 | FileCheck %s --check-prefix=ROWS
// ROWS:     IR Dump After RWKVLowerKernelTransfersPass
// ROWS:     func.func @forward(
// ROWS:       gpu.launch blocks({{.+}}) in (%{{.+}} = %c1{{.*}}, %{{.+}} = %c1{{.*}}, %{{.+}} = %c1{{.*}}) threads({{.+}}) in (%{{.+}} = %c128{{.*}}, %{{.+}} = %c1{{.*}}, %{{.+}} = %c1{{.*}})
// ROWS:         %[[ROW0:.+]] = vector.load %{{.+}}[%{{.+}}] {alignment = 16 : i64} : memref<64xf32, strided<[1], offset: ?>>, vector<64xf32>
// ROWS-NEXT:    scf.for %{{.+}} = %{{.+}} to %{{.+}} step %{{.+}} iter_args(%{{.+}} = %[[ROW0]]) -> (vector<64xf32>) {
// ROWS-COUNT-5:   vector.load %{{.+}} {alignment = 16 : i64} : memref<1x?x128xf32>, vector<64xf32>
// ROWS:           vector.reduction <add>
// ROWS:           vector.reduction <add>
// ROWS-NOT:   vector.transfer_

// Another chip; a bad chip or format is an error, not a pipeline crash.
// RUN: rwkv-opt %rwkv_src/models/rwkv7/example-2layer.mlir --rwkv-cuda-pipeline='gpu-format=isa gpu-chip=sm_80' | FileCheck %s --check-prefix=SM80
// SM80: chip = "sm_80"
// SM80-SAME: .target sm_80
// RUN: not rwkv-opt %rwkv_src/models/rwkv7/example-2layer.mlir --rwkv-cuda-pipeline='gpu-chip=sm80}' 2>&1 | FileCheck %s --check-prefix=BADCHIP
// BADCHIP: error: gpu-chip must be sm_NN (sm_80, sm_90a, ...), got 'sm80}'
// RUN: not rwkv-opt %rwkv_src/models/rwkv7/example-2layer.mlir --rwkv-cuda-pipeline='gpu-format=elf' 2>&1 | FileCheck %s --check-prefix=BADFMT
// BADFMT: error: gpu-format must be fatbin, bin or isa, got 'elf'

// gpu-emulate: the same kernels as host parallel loops, for the CPU back
// end (what rwkv-compile --target=cuda --cuda-emulate builds).
// RUN: rwkv-opt %rwkv_src/models/rwkv7/example-2layer.mlir --rwkv-cuda-pipeline='gpu-emulate=1' | FileCheck %s --check-prefix=EMU
// EMU-NOT: gpu.
// EMU:     llvm.func @forward(
// EMU:     omp.parallel
