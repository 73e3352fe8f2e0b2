// RUN: rwkv-opt %s -split-input-file --rwkv-merge-gpu-modules -verify-diagnostics | FileCheck %s
// RUN: rwkv-opt %s -split-input-file --rwkv-merge-gpu-modules=module-name=model_kernels -verify-diagnostics | FileCheck %s --check-prefix=NAME

// rwkv-merge-gpu-modules (codegen/CUDA/MergeGpuModules.cpp): gpu-kernel-outlining
// makes one gpu.module per kernel, and gpu-module-to-binary one ptxas run and
// one device image per module: minutes of compile time for a model with a
// few hundred launches. This pass moves every kernel into one gpu.module
// (@rwkv_kernels, or `module-name`) and retargets the gpu.launch_funcs.
// Outlining names each kernel after its function and only the modules
// uniquely (@f_kernel::@f_kernel, @f_kernel_0::@f_kernel), so each kernel
// takes its module's name. The globals outlining copies into every module
// that uses them are kept once if identical; differing ones are an error.

// Two launches of @f as gpu-kernel-outlining leaves them (its output,
// verbatim): both kernels are called @f_kernel, both modules hold a copy of
// @table.
// CHECK-LABEL: func.func @f
// CHECK-DAG:     %[[C1:.+]] = arith.constant 1 : index
// CHECK-DAG:     %[[C256:.+]] = arith.constant 256 : index
// CHECK:         gpu.launch_func @rwkv_kernels::@f_kernel blocks in ({{[^)]+}}) threads in (%[[C256]], %[[C1]], %[[C1]])
// CHECK-NEXT:    gpu.launch_func @rwkv_kernels::@f_kernel_0 blocks in ({{[^)]+}}) threads in (%[[C1]], %[[C1]], %[[C1]])
// CHECK-NOT:     gpu.module @f_kernel
// CHECK:         gpu.module @rwkv_kernels {
// CHECK-NEXT:      gpu.func @f_kernel(%{{.+}}: memref<?xf32>) kernel attributes {known_block_size = array<i32: 256, 1, 1>} {
// CHECK:             %[[TID:.+]] = gpu.thread_id x
// CHECK:             memref.load %{{.+}}[%[[TID]]] : memref<4xf32>
// CHECK:             gpu.return
// CHECK-NEXT:      }
// CHECK-NEXT:      memref.global "private" constant @table : memref<4xf32> = dense<[1.000000e+00, 2.000000e+00, 3.000000e+00, 4.000000e+00]>
// CHECK-NEXT:      gpu.func @f_kernel_0(%{{.+}}: memref<?xf32>) kernel attributes {known_block_size = array<i32: 1, 1, 1>} {
// CHECK:             %[[BID:.+]] = gpu.block_id x
// CHECK:             memref.load %{{.+}}[%[[BID]]] : memref<4xf32>
// CHECK:             gpu.return
// CHECK-NEXT:      }
// CHECK-NEXT:    }
// CHECK-NEXT:  }
// CHECK-NOT:   gpu.module

// NAME-LABEL: func.func @f
// NAME:         gpu.launch_func @model_kernels::@f_kernel blocks
// NAME-NEXT:    gpu.launch_func @model_kernels::@f_kernel_0 blocks
// NAME:         gpu.module @model_kernels {
// NAME-NOT:     rwkv_kernels
module attributes {gpu.container_module} {
  memref.global "private" constant @table : memref<4xf32> = dense<[1.000000e+00, 2.000000e+00, 3.000000e+00, 4.000000e+00]>
  func.func @f(%arg0: index, %arg1: memref<?xf32>) {
    %c1 = arith.constant 1 : index
    %c256 = arith.constant 256 : index
    gpu.launch_func  @f_kernel::@f_kernel blocks in (%arg0, %c1, %c1) threads in (%c256, %c1, %c1)  args(%arg1 : memref<?xf32>)
    gpu.launch_func  @f_kernel_0::@f_kernel blocks in (%arg0, %c1, %c1) threads in (%c1, %c1, %c1)  args(%arg1 : memref<?xf32>)
    return
  }
  gpu.module @f_kernel {
    gpu.func @f_kernel(%arg0: memref<?xf32>) kernel attributes {known_block_size = array<i32: 256, 1, 1>} {
      %block_id_x = gpu.block_id  x
      %block_id_y = gpu.block_id  y
      %block_id_z = gpu.block_id  z
      %thread_id_x = gpu.thread_id  x
      %thread_id_y = gpu.thread_id  y
      %thread_id_z = gpu.thread_id  z
      %grid_dim_x = gpu.grid_dim  x
      %grid_dim_y = gpu.grid_dim  y
      %grid_dim_z = gpu.grid_dim  z
      %block_dim_x = gpu.block_dim  x
      %block_dim_y = gpu.block_dim  y
      %block_dim_z = gpu.block_dim  z
      %0 = memref.get_global @table : memref<4xf32>
      %1 = memref.load %0[%thread_id_x] : memref<4xf32>
      memref.store %1, %arg0[%block_id_x] : memref<?xf32>
      gpu.return
    }
    memref.global "private" constant @table : memref<4xf32> = dense<[1.000000e+00, 2.000000e+00, 3.000000e+00, 4.000000e+00]>
  }
  gpu.module @f_kernel_0 {
    gpu.func @f_kernel(%arg0: memref<?xf32>) kernel attributes {known_block_size = array<i32: 1, 1, 1>} {
      %block_id_x = gpu.block_id  x
      %block_id_y = gpu.block_id  y
      %block_id_z = gpu.block_id  z
      %thread_id_x = gpu.thread_id  x
      %thread_id_y = gpu.thread_id  y
      %thread_id_z = gpu.thread_id  z
      %grid_dim_x = gpu.grid_dim  x
      %grid_dim_y = gpu.grid_dim  y
      %grid_dim_z = gpu.grid_dim  z
      %block_dim_x = gpu.block_dim  x
      %block_dim_y = gpu.block_dim  y
      %block_dim_z = gpu.block_dim  z
      %0 = memref.get_global @table : memref<4xf32>
      %1 = memref.load %0[%block_id_x] : memref<4xf32>
      memref.store %1, %arg0[%block_id_x] : memref<?xf32>
      gpu.return
    }
    memref.global "private" constant @table : memref<4xf32> = dense<[1.000000e+00, 2.000000e+00, 3.000000e+00, 4.000000e+00]>
  }
}

// -----

// A single gpu.module (one kernel, or modules merged already) is left as
// it is: no new module, no renaming.
// CHECK-LABEL: func.func @single
// CHECK:         gpu.launch_func @f_kernel_0::@f_kernel blocks
// CHECK:         gpu.module @f_kernel_0 {
// CHECK-NEXT:      gpu.func @f_kernel(
// CHECK-NOT:     rwkv_kernels
// NAME-LABEL: func.func @single
// NAME-NOT:     model_kernels
module attributes {gpu.container_module} {
  func.func @single(%arg0: index) {
    %c1 = arith.constant 1 : index
    gpu.launch_func @f_kernel_0::@f_kernel blocks in (%arg0, %c1, %c1) threads in (%c1, %c1, %c1)
    return
  }
  gpu.module @f_kernel_0 {
    gpu.func @f_kernel() kernel {
      gpu.return
    }
  }
}

// -----

// The same global with different contents in two kernel modules.
module attributes {gpu.container_module} {
  func.func @g(%arg0: index) {
    %c1 = arith.constant 1 : index
    gpu.launch_func @g_kernel::@g_kernel blocks in (%arg0, %c1, %c1) threads in (%c1, %c1, %c1)
    gpu.launch_func @g_kernel_0::@g_kernel blocks in (%arg0, %c1, %c1) threads in (%c1, %c1, %c1)
    return
  }
  gpu.module @g_kernel {
    gpu.func @g_kernel() kernel {
      %0 = memref.get_global @table : memref<2xf32>
      gpu.return
    }
    memref.global "private" constant @table : memref<2xf32> = dense<[1.0, 2.0]>
  }
  gpu.module @g_kernel_0 {
    gpu.func @g_kernel() kernel {
      %0 = memref.get_global @table : memref<2xf32>
      gpu.return
    }
    // expected-error @+1 {{two kernel modules define 'table' differently}}
    memref.global "private" constant @table : memref<2xf32> = dense<[1.0, 3.0]>
  }
}

// -----

// One PTX module has one target: modules compiled for different chips stay
// apart.
module attributes {gpu.container_module} {
  gpu.module @a [#nvvm.target<chip = "sm_90">] {
    gpu.func @a() kernel {
      gpu.return
    }
  }
  // expected-error @+1 {{gpu.modules with different targets cannot be merged}}
  gpu.module @b [#nvvm.target<chip = "sm_80">] {
    gpu.func @b() kernel {
      gpu.return
    }
  }
}

// -----

// The module's name is taken by another symbol, so its kernel cannot take
// it.
module attributes {gpu.container_module} {
  gpu.module @a {
    gpu.func @a() {
      gpu.return
    }
    // expected-error @+1 {{cannot give kernel 'k' its module's name}}
    gpu.func @k() kernel {
      gpu.return
    }
  }
  gpu.module @b {
    gpu.func @b() kernel {
      gpu.return
    }
  }
}

// -----

// A launch of a kernel that is not in one of the merged modules (a
// precompiled gpu.binary) cannot be retargeted.
module attributes {gpu.container_module} {
  func.func @h(%arg0: index) {
    %c1 = arith.constant 1 : index
    gpu.launch_func @a::@a blocks in (%arg0, %c1, %c1) threads in (%c1, %c1, %c1)
    // expected-error @+1 {{launches a kernel outside the merged modules}}
    gpu.launch_func @bin::@k blocks in (%arg0, %c1, %c1) threads in (%c1, %c1, %c1)
    return
  }
  gpu.module @a {
    gpu.func @a() kernel {
      gpu.return
    }
  }
  gpu.module @b {
    gpu.func @b() kernel {
      gpu.return
    }
  }
  gpu.binary @bin [#gpu.object<#nvvm.target, "">]
}
