// RUN: rwkv-opt %s -split-input-file --rwkv-inline-blocks | FileCheck %s

// rwkv-inline-blocks splices every rwkv.block body into its parent and
// replaces the block's results with the values its rwkv.yield returns.

// CHECK-LABEL: func.func @single
// CHECK-SAME:    (%[[X:[^:]+]]: tensor<1x3x8xf32>, %[[P:[^:]+]]: tensor<1x8xf32>, %[[MU:[^:]+]]: tensor<8xbf16>)
// CHECK-NOT:     rwkv.block
// CHECK:         %[[S:.+]], %[[L:.+]] = rwkv.token_shift %[[X]], %[[P]]
// CHECK-NEXT:    %[[M:.+]] = rwkv.mix %[[X]], %[[S]], %[[MU]]
// CHECK-NEXT:    %[[SUM:.+]] = arith.addf %[[M]], %[[X]]
// CHECK-NEXT:    return %[[SUM]], %[[L]] : tensor<1x3x8xf32>, tensor<1x8xf32>
// CHECK-NOT:     rwkv.yield
func.func @single(%x: tensor<1x3x8xf32>, %p: tensor<1x8xf32>, %mu: tensor<8xbf16>)
    -> (tensor<1x3x8xf32>, tensor<1x8xf32>) {
  %r:2 = rwkv.block layer 0 -> (tensor<1x3x8xf32>, tensor<1x8xf32>) {
    %s, %l = rwkv.token_shift %x, %p : tensor<1x3x8xf32>, tensor<1x8xf32>
    %m = rwkv.mix %x, %s, %mu : tensor<1x3x8xf32>, tensor<8xbf16> -> tensor<1x3x8xf32>
    rwkv.yield %m, %l : tensor<1x3x8xf32>, tensor<1x8xf32>
  }
  %sum = arith.addf %r#0, %x : tensor<1x3x8xf32>
  return %sum, %r#1 : tensor<1x3x8xf32>, tensor<1x8xf32>
}

// -----

// Two layers in sequence: the second consumes the first's results, which
// become the values yielded by the first.
// CHECK-LABEL: func.func @two_layers
// CHECK-SAME:    (%[[X:[^:]+]]: tensor<1x3x8xf32>, %[[P0:[^:]+]]: tensor<1x8xf32>, %[[P1:[^:]+]]: tensor<1x8xf32>, %[[MU:[^:]+]]: tensor<8xf32>)
// CHECK-NOT:     rwkv.block
// CHECK:         %[[S0:.+]], %[[L0:.+]] = rwkv.token_shift %[[X]], %[[P0]]
// CHECK-NEXT:    %[[M0:.+]] = rwkv.mix %[[X]], %[[S0]], %[[MU]]
// CHECK-NEXT:    %[[S1:.+]], %[[L1:.+]] = rwkv.token_shift %[[M0]], %[[P1]]
// CHECK-NEXT:    %[[M1:.+]] = rwkv.mix %[[M0]], %[[S1]], %[[MU]]
// CHECK-NEXT:    return %[[M1]], %[[L0]], %[[L1]]
func.func @two_layers(%x: tensor<1x3x8xf32>, %p0: tensor<1x8xf32>, %p1: tensor<1x8xf32>, %mu: tensor<8xf32>)
    -> (tensor<1x3x8xf32>, tensor<1x8xf32>, tensor<1x8xf32>) {
  %a:2 = rwkv.block layer 0 -> (tensor<1x3x8xf32>, tensor<1x8xf32>) {
    %s, %l = rwkv.token_shift %x, %p0 : tensor<1x3x8xf32>, tensor<1x8xf32>
    %m = rwkv.mix %x, %s, %mu : tensor<1x3x8xf32>, tensor<8xf32> -> tensor<1x3x8xf32>
    rwkv.yield %m, %l : tensor<1x3x8xf32>, tensor<1x8xf32>
  }
  %b:2 = rwkv.block layer 1 -> (tensor<1x3x8xf32>, tensor<1x8xf32>) {
    %s, %l = rwkv.token_shift %a#0, %p1 : tensor<1x3x8xf32>, tensor<1x8xf32>
    %m = rwkv.mix %a#0, %s, %mu : tensor<1x3x8xf32>, tensor<8xf32> -> tensor<1x3x8xf32>
    rwkv.yield %m, %l : tensor<1x3x8xf32>, tensor<1x8xf32>
  }
  return %b#0, %a#1, %b#1 : tensor<1x3x8xf32>, tensor<1x8xf32>, tensor<1x8xf32>
}

// -----

// Nested blocks are dissolved too, inner and outer.
// CHECK-LABEL: func.func @nested
// CHECK-SAME:    (%[[X:[^:]+]]: tensor<1x3x8xf32>, %[[P:[^:]+]]: tensor<1x8xf32>, %[[MU:[^:]+]]: tensor<8xf32>)
// CHECK-NOT:     rwkv.block
// CHECK:         %[[S:.+]], %[[L:.+]] = rwkv.token_shift %[[X]], %[[P]]
// CHECK-NEXT:    %[[M:.+]] = rwkv.mix %[[X]], %[[S]], %[[MU]]
// CHECK-NEXT:    %[[D:.+]] = arith.addf %[[M]], %[[M]]
// CHECK-NEXT:    return %[[D]], %[[L]], %[[X]]
// CHECK-NOT:     rwkv.yield
func.func @nested(%x: tensor<1x3x8xf32>, %p: tensor<1x8xf32>, %mu: tensor<8xf32>)
    -> (tensor<1x3x8xf32>, tensor<1x8xf32>, tensor<1x3x8xf32>) {
  %o:3 = rwkv.block layer 0 -> (tensor<1x3x8xf32>, tensor<1x8xf32>, tensor<1x3x8xf32>) {
    %i:2 = rwkv.block layer 1 -> (tensor<1x3x8xf32>, tensor<1x8xf32>) {
      %s, %l = rwkv.token_shift %x, %p : tensor<1x3x8xf32>, tensor<1x8xf32>
      %m = rwkv.mix %x, %s, %mu : tensor<1x3x8xf32>, tensor<8xf32> -> tensor<1x3x8xf32>
      rwkv.yield %m, %l : tensor<1x3x8xf32>, tensor<1x8xf32>
    }
    %d = arith.addf %i#0, %i#0 : tensor<1x3x8xf32>
    // The outer block yields a value defined above it.
    rwkv.yield %d, %i#1, %x : tensor<1x3x8xf32>, tensor<1x8xf32>, tensor<1x3x8xf32>
  }
  return %o#0, %o#1, %o#2 : tensor<1x3x8xf32>, tensor<1x8xf32>, tensor<1x3x8xf32>
}

// -----

// Three levels deep, and a block with no results.
// CHECK-LABEL: func.func @deep
// CHECK-SAME:    (%[[X:[^:]+]]: tensor<1x1x8xf32>)
// CHECK-NOT:     rwkv.block
// CHECK:         %[[A:.+]] = arith.addf %[[X]], %[[X]]
// CHECK-NEXT:    %[[B:.+]] = arith.mulf %[[A]], %[[A]]
// CHECK-NEXT:    %[[C:.+]] = arith.subf %[[B]], %[[X]]
// CHECK-NEXT:    return %[[C]]
func.func @deep(%x: tensor<1x1x8xf32>) -> tensor<1x1x8xf32> {
  rwkv.block layer 7 {
  }
  %0 = rwkv.block layer 0 -> (tensor<1x1x8xf32>) {
    %1 = rwkv.block layer 1 -> (tensor<1x1x8xf32>) {
      %2 = rwkv.block layer 2 -> (tensor<1x1x8xf32>) {
        %a = arith.addf %x, %x : tensor<1x1x8xf32>
        rwkv.yield %a : tensor<1x1x8xf32>
      }
      %b = arith.mulf %2, %2 : tensor<1x1x8xf32>
      rwkv.yield %b : tensor<1x1x8xf32>
    }
    %c = arith.subf %1, %x : tensor<1x1x8xf32>
    rwkv.yield %c : tensor<1x1x8xf32>
  }
  return %0 : tensor<1x1x8xf32>
}

// -----

// Composite ops are kept as they are; only the grouping goes away.
// CHECK-LABEL: func.func @keeps_composites
// CHECK-NOT:     rwkv.block
// CHECK:         %[[O:.+]], %[[S:.+]] = rwkv.channel_mix
// CHECK-NEXT:    return %[[O]], %[[S]]
func.func @keeps_composites(%x: tensor<1x1x8xf32>, %sh: tensor<1x8xf32>, %mu: tensor<8xf32>,
                            %k: tensor<32x8xf32>, %v: tensor<8x32xf32>)
    -> (tensor<1x1x8xf32>, tensor<1x8xf32>) {
  %r:2 = rwkv.block layer 0 -> (tensor<1x1x8xf32>, tensor<1x8xf32>) {
    %o, %s = rwkv.channel_mix %x, %sh lerp(%mu) proj(%k, %v)
        : (tensor<1x1x8xf32>, tensor<1x8xf32>, tensor<8xf32>, tensor<32x8xf32>, tensor<8x32xf32>)
        -> (tensor<1x1x8xf32>, tensor<1x8xf32>)
    rwkv.yield %o, %s : tensor<1x1x8xf32>, tensor<1x8xf32>
  }
  return %r#0, %r#1 : tensor<1x1x8xf32>, tensor<1x8xf32>
}
