// RUN: rwkv-opt %s -split-input-file --rwkv-gpu-host-buffers -verify-diagnostics | FileCheck %s

// rwkv-gpu-host-buffers (codegen/CUDA/GpuHostBuffers.cpp): the CUDA library
// is called with device pointers, so the buffers the host code of an entry
// point makes live on the device too. After rwkv-map-parallel-loops-to-gpu a
// host memref.alloc / memref.dealloc / contiguous memref.copy becomes
// gpu.alloc / gpu.dealloc / gpu.memcpy. The deallocation lowering's
// bookkeeping (memrefs of i1 / index) stays host memory, and what a kernel
// allocates is the kernel's business. Host code that still dereferences a
// buffer, or copies a strided view, is an error: it would read device
// memory on the host.

// CHECK-LABEL: func.func @host_buffers
// CHECK-SAME:    (%[[N:[^:]+]]: index, %[[OUT:[^:]+]]: memref<?x64xf32>)
// CHECK:         %[[T:.+]] = gpu.alloc (%[[N]]) : memref<?x64xf32>
// CHECK-NEXT:    %[[S:.+]] = gpu.alloc () : memref<4x64xf32>
// CHECK-NEXT:    gpu.memcpy %[[OUT]], %[[T]] : memref<?x64xf32>, memref<?x64xf32>
// CHECK-NEXT:    gpu.memcpy %[[T]], %[[S]] : memref<?x64xf32>, memref<4x64xf32>
// CHECK-NEXT:    gpu.dealloc %[[S]] : memref<4x64xf32>
// CHECK-NEXT:    gpu.dealloc %[[T]] : memref<?x64xf32>
// CHECK-NEXT:    return
// CHECK-NOT:     memref.
func.func @host_buffers(%n: index, %out: memref<?x64xf32>) {
  %t = memref.alloc(%n) : memref<?x64xf32>
  %s = memref.alloc() : memref<4x64xf32>
  memref.copy %t, %out : memref<?x64xf32> to memref<?x64xf32>
  memref.copy %s, %t : memref<4x64xf32> to memref<?x64xf32>
  memref.dealloc %s : memref<4x64xf32>
  memref.dealloc %t : memref<?x64xf32>
  return
}

// -----

// A view with a non-identity layout that is still one contiguous run (a row
// of a matrix) is copied with gpu.memcpy too.
// CHECK-LABEL: func.func @contiguous_view
// CHECK-SAME:    (%[[A:[^:]+]]: memref<4x8xf32>, %[[B:[^:]+]]: memref<8xf32>)
// CHECK:         %[[ROW:.+]] = memref.subview %[[A]][1, 0] [1, 8] [1, 1]
// CHECK-NEXT:    gpu.memcpy %[[B]], %[[ROW]] : memref<8xf32>, memref<8xf32, strided<[1], offset: 8>>
// CHECK-NOT:     memref.copy
func.func @contiguous_view(%a: memref<4x8xf32>, %b: memref<8xf32>) {
  %row = memref.subview %a[1, 0] [1, 8] [1, 1] : memref<4x8xf32> to memref<8xf32, strided<[1], offset: 8>>
  memref.copy %row, %b : memref<8xf32, strided<[1], offset: 8>> to memref<8xf32>
  return
}

// -----

// Ownership flags (i1) and base addresses (index) are host memory: their
// allocations and loads stay as they are.
// CHECK-LABEL: func.func @bookkeeping
// CHECK-NOT:     gpu.
// CHECK:         %[[F:.+]] = memref.alloc() : memref<2xi1>
// CHECK-NEXT:    %[[P:.+]] = memref.alloc() : memref<2xindex>
// CHECK-NEXT:    %[[B:.+]] = memref.load %[[F]][%{{.+}}] : memref<2xi1>
// CHECK-NEXT:    memref.store %{{.+}}, %[[P]][%{{.+}}] : memref<2xindex>
// CHECK-NEXT:    memref.dealloc %[[F]] : memref<2xi1>
// CHECK-NEXT:    memref.dealloc %[[P]] : memref<2xindex>
// CHECK-NEXT:    return %[[B]] : i1
// CHECK-NOT:     gpu.
func.func @bookkeeping(%i: index) -> i1 {
  %c0 = arith.constant 0 : index
  %f = memref.alloc() : memref<2xi1>
  %p = memref.alloc() : memref<2xindex>
  %b = memref.load %f[%c0] : memref<2xi1>
  memref.store %i, %p[%c0] : memref<2xindex>
  memref.dealloc %f : memref<2xi1>
  memref.dealloc %p : memref<2xindex>
  return %b : i1
}

// -----

// Inside a kernel, allocations, copies and deallocations (thread-private
// scratch) are device code already and are left alone.
// CHECK-LABEL: func.func @in_kernel
// CHECK:         gpu.launch
// CHECK-NEXT:      %[[S:.+]] = memref.alloc() : memref<4xf32>
// CHECK-NEXT:      %[[A:.+]] = memref.alloca() : memref<4xf32>
// CHECK-NEXT:      memref.copy %[[S]], %[[A]] : memref<4xf32> to memref<4xf32>
// CHECK-NEXT:      memref.dealloc %[[S]] : memref<4xf32>
// CHECK-NEXT:      gpu.terminator
// CHECK-NOT:     gpu.alloc
// CHECK-NOT:     gpu.memcpy
// CHECK-NOT:     gpu.dealloc
func.func @in_kernel() {
  %c1 = arith.constant 1 : index
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c1, %sy = %c1, %sz = %c1) {
    %s = memref.alloc() : memref<4xf32>
    %a = memref.alloca() : memref<4xf32>
    memref.copy %s, %a : memref<4xf32> to memref<4xf32>
    memref.dealloc %s : memref<4xf32>
    gpu.terminator
  }
  return
}

// -----

// The dealloc_helper function of the deallocation lowering is host code by
// construction and not touched.
// CHECK-LABEL: func.func @dealloc_helper
// CHECK-NEXT:    memref.alloc() : memref<4xf32>
// CHECK-NOT:     gpu.
func.func @dealloc_helper() {
  %a = memref.alloc() : memref<4xf32>
  memref.dealloc %a : memref<4xf32>
  return
}

// -----

func.func @host_load(%y: memref<1xf32>) -> f32 {
  %c0 = arith.constant 0 : index
  // expected-error @+1 {{host code accesses a buffer, which lives in device memory (rwkv-map-parallel-loops-to-gpu should have made it a kernel)}}
  %a = memref.load %y[%c0] : memref<1xf32>
  return %a : f32
}

// -----

func.func @host_store(%y: memref<1xf32>, %v: f32) {
  %c0 = arith.constant 0 : index
  // expected-error @+1 {{host code accesses a buffer, which lives in device memory}}
  memref.store %v, %y[%c0] : memref<1xf32>
  return
}

// -----

func.func @host_alloca() {
  // expected-error @+1 {{host code accesses a buffer, which lives in device memory}}
  %a = memref.alloca() : memref<4xf32>
  return
}

// -----

// A copy into a token slice of a batch (a strided view) is not one
// contiguous run: gpu.memcpy cannot do it.
func.func @strided_copy(%y: memref<2x7x128xf32>, %a: memref<2x128xf32>, %t: index) {
  %s = memref.subview %y[0, %t, 0] [2, 1, 128] [1, 1, 1] : memref<2x7x128xf32> to memref<2x128xf32, strided<[896, 1], offset: ?>>
  // expected-error @+1 {{a strided copy on the host: it must be a kernel (run rwkv-lower-strided-copies first)}}
  memref.copy %a, %s : memref<2x128xf32> to memref<2x128xf32, strided<[896, 1], offset: ?>>
  return
}
