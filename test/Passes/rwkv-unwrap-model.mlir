// RUN: rwkv-opt %s -split-input-file -verify-diagnostics --rwkv-unwrap-model | FileCheck %s

// The model's entry points move to module level and its config becomes the
// module's rwkv.config.

// CHECK-LABEL: module attributes
// CHECK-SAME:    rwkv.config = #rwkv.config<version = 7, n_layer = 1, n_embd = 8, n_head = 2, head_size = 4
// CHECK-NOT:   rwkv.model
// CHECK:       func.func @rwkv_step(%[[T:.+]]: tensor<1x?xi32>, %[[S:.+]]: tensor<1x2x4x4xf32> {rwkv.state = "wkv:0"})
// CHECK:         return %[[S]]
// CHECK:       func.func private @helper
module {
  rwkv.model @m config = #rwkv.config<version = 7, n_layer = 1, n_embd = 8, n_head = 2, head_size = 4, dim_ffn = 32, vocab_size = 16, lora_w = 2, lora_a = 2, lora_v = 2, lora_g = 2> {
    func.func @rwkv_step(%t: tensor<1x?xi32>, %s: tensor<1x2x4x4xf32> {rwkv.state = "wkv:0"}) -> tensor<1x2x4x4xf32> {
      return %s : tensor<1x2x4x4xf32>
    }
    func.func private @helper() {
      return
    }
  }
}

// -----

// A module already in codegen form is left alone.

// CHECK-LABEL: module attributes
// CHECK-SAME:    rwkv.config
// CHECK:       func.func @f
module attributes {rwkv.config = #rwkv.config<version = 7, n_layer = 1, n_embd = 8, n_head = 2, head_size = 4, dim_ffn = 32, vocab_size = 16, lora_w = 2, lora_a = 2, lora_v = 2, lora_g = 2>} {
  func.func @f(%t: tensor<1x?xi32>) {
    return
  }
}

// -----

module attributes {rwkv.config = #rwkv.config<version = 7, n_layer = 2, n_embd = 8, n_head = 2, head_size = 4, dim_ffn = 32, vocab_size = 16, lora_w = 2, lora_a = 2, lora_v = 2, lora_g = 2>} {
  // expected-error @+1 {{config disagrees with the module's rwkv.config}}
  rwkv.model @m config = #rwkv.config<version = 7, n_layer = 1, n_embd = 8, n_head = 2, head_size = 4, dim_ffn = 32, vocab_size = 16, lora_w = 2, lora_a = 2, lora_v = 2, lora_g = 2> {
    func.func @g(%t: tensor<1x?xi32>) {
      return
    }
  }
}

// -----

module {
  func.func @g(%t: tensor<1x?xi32>) {
    return
  }
  rwkv.model @m config = #rwkv.config<version = 7, n_layer = 1, n_embd = 8, n_head = 2, head_size = 4, dim_ffn = 32, vocab_size = 16, lora_w = 2, lora_a = 2, lora_v = 2, lora_g = 2> {
    // expected-error @+1 {{symbol 'g' already exists in the module}}
    func.func @g(%t: tensor<1x?xi32>) {
      return
    }
  }
}

// -----

module {
  rwkv.model @a config = #rwkv.config<version = 7, n_layer = 1, n_embd = 8, n_head = 2, head_size = 4, dim_ffn = 32, vocab_size = 16, lora_w = 2, lora_a = 2, lora_v = 2, lora_g = 2> {
    func.func @g(%t: tensor<1x?xi32>) {
      return
    }
  }
  // expected-error @+1 {{a module holds at most one rwkv.model}}
  rwkv.model @b config = #rwkv.config<version = 7, n_layer = 1, n_embd = 8, n_head = 2, head_size = 4, dim_ffn = 32, vocab_size = 16, lora_w = 2, lora_a = 2, lora_v = 2, lora_g = 2> {
    func.func @h(%t: tensor<1x?xi32>) {
      return
    }
  }
}
