// RUN: rwkv-opt %s -split-input-file --rwkv-outline-blocks | FileCheck %s
// RUN: rwkv-opt %s -split-input-file --rwkv-outline-blocks --duplicate-function-elimination | FileCheck %s --check-prefix=DFE

// Each rwkv.block becomes a call to a private function taking the values the
// block used from above; layers of the same shape merge after
// duplicate-function-elimination.

// CHECK-LABEL: func.func @two_layers
// CHECK-SAME:    (%[[X:.+]]: tensor<1x?x8xf32>, %[[P:.+]]: tensor<1x?x8xf32>, %[[M0:.+]]: tensor<8xbf16>, %[[M1:.+]]: tensor<8xbf16>)
// CHECK:         %[[R0:.+]] = call @two_layers_layer0(%[[X]], %[[P]], %[[M0]]) : (tensor<1x?x8xf32>, tensor<1x?x8xf32>, tensor<8xbf16>) -> tensor<1x?x8xf32>
// CHECK:         %[[R1:.+]] = call @two_layers_layer1(%[[R0]], %[[P]], %[[M1]])
// CHECK:         return %[[R1]]
// CHECK-NOT:     rwkv.block
// CHECK-LABEL: func.func private @two_layers_layer0
// CHECK-SAME:    (%[[A:.+]]: tensor<1x?x8xf32>, %[[B:.+]]: tensor<1x?x8xf32>, %[[C:.+]]: tensor<8xbf16>) -> tensor<1x?x8xf32>
// CHECK:         %[[Y:.+]] = rwkv.mix %[[A]], %[[B]], %[[C]]
// CHECK:         return %[[Y]]
// CHECK-LABEL: func.func private @two_layers_layer1

// DFE-LABEL: func.func @two_layers
// DFE:         call @two_layers_layer0
// DFE:         call @two_layers_layer0
// DFE-NOT:     func.func private @two_layers_layer1
func.func @two_layers(%x: tensor<1x?x8xf32>, %p: tensor<1x?x8xf32>, %m0: tensor<8xbf16>, %m1: tensor<8xbf16>) -> tensor<1x?x8xf32> {
  %r0 = rwkv.block layer 0 -> (tensor<1x?x8xf32>) {
    %y = rwkv.mix %x, %p, %m0 : tensor<1x?x8xf32>, tensor<8xbf16> -> tensor<1x?x8xf32>
    rwkv.yield %y : tensor<1x?x8xf32>
  }
  %r1 = rwkv.block layer 1 -> (tensor<1x?x8xf32>) {
    %y = rwkv.mix %r0, %p, %m1 : tensor<1x?x8xf32>, tensor<8xbf16> -> tensor<1x?x8xf32>
    rwkv.yield %y : tensor<1x?x8xf32>
  }
  return %r1 : tensor<1x?x8xf32>
}

// -----

// Layers that differ in structure stay separate functions.

// DFE-LABEL: func.func @different
// DFE:         call @different_layer0
// DFE:         call @different_layer1
// DFE:       func.func private @different_layer0
// DFE:         rwkv.mix
// DFE:       func.func private @different_layer1
// DFE:         rwkv.layer_norm
func.func @different(%x: tensor<1x?x8xf32>, %m: tensor<8xbf16>) -> tensor<1x?x8xf32> {
  %r0 = rwkv.block layer 0 -> (tensor<1x?x8xf32>) {
    %y = rwkv.mix %x, %x, %m : tensor<1x?x8xf32>, tensor<8xbf16> -> tensor<1x?x8xf32>
    rwkv.yield %y : tensor<1x?x8xf32>
  }
  %r1 = rwkv.block layer 1 -> (tensor<1x?x8xf32>) {
    %y = rwkv.layer_norm %r0, %m, %m : tensor<1x?x8xf32>, tensor<8xbf16> -> tensor<1x?x8xf32>
    rwkv.yield %y : tensor<1x?x8xf32>
  }
  return %r1 : tensor<1x?x8xf32>
}
