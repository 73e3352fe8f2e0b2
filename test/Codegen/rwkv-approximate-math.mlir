// RUN: rwkv-opt %s --rwkv-approximate-math | FileCheck %s

// rwkv-approximate-math (codegen/ApproximateMath.cpp): f32 exp and tanh,
// scalar or vector, become polynomial arithmetic (no libm call after
// lowering, so element-wise loops vectorise); other math ops are untouched.

// CHECK-LABEL: func.func @exp_tanh
// CHECK-NOT:     math.exp
// CHECK-NOT:     math.tanh
// exp: 2^k scaling by integer exponent arithmetic.
// CHECK-DAG:     arith.fptosi
// CHECK-DAG:     arith.shli
// CHECK-DAG:     math.fma
// tanh: a rational approximation (one division).
// CHECK-DAG:     arith.divf %{{.+}} : vector<8xf32>
// sqrt is not approximated.
// CHECK:         math.sqrt
// CHECK-NOT:     math.exp
// CHECK-NOT:     math.tanh
// CHECK:         return
func.func @exp_tanh(%x: f32, %y: vector<8xf32>) -> (f32, vector<8xf32>, f32) {
  %a = math.exp %x : f32
  %b = math.tanh %y : vector<8xf32>
  %c = math.sqrt %x : f32
  return %a, %b, %c : f32, vector<8xf32>, f32
}
