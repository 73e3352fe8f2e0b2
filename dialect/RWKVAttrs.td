//===- RWKVAttrs.td - rwkv attributes and enums ------------*- tablegen -*-===//

#ifndef RWKV_DIALECT_RWKVATTRS_TD
#define RWKV_DIALECT_RWKVATTRS_TD

include "dialect/RWKVBase.td"

def RWKV_WKVMode : I32EnumAttr<"WKVMode", "how the WKV recurrence is evaluated", [
  I32EnumAttrCase<"sequential", 0>,
  I32EnumAttrCase<"chunked", 1>
]> {
  let cppNamespace = "::mlir::rwkv";
  let genSpecializedAttr = 0;
}
def RWKV_WKVModeAttr : EnumAttr<RWKV_Dialect, RWKV_WKVMode, "wkv_mode">;

def RWKV_Activation_Kind : I32EnumAttr<"ActivationKind",
    "activation applied between the two factors of a low-rank projection", [
  I32EnumAttrCase<"none", 0>,
  I32EnumAttrCase<"tanh", 1>,
  I32EnumAttrCase<"sigmoid", 2>
]> {
  let cppNamespace = "::mlir::rwkv";
  let genSpecializedAttr = 0;
}
def RWKV_ActivationKindAttr
    : EnumAttr<RWKV_Dialect, RWKV_Activation_Kind, "activation">;

def RWKV_HeadPositions : I32EnumAttr<"HeadPositions",
    "which sequence positions the head projects to logits", [
  I32EnumAttrCase<"all", 0>,
  I32EnumAttrCase<"last", 1>
]> {
  let cppNamespace = "::mlir::rwkv";
  let genSpecializedAttr = 0;
}
def RWKV_HeadPositionsAttr
    : EnumAttr<RWKV_Dialect, RWKV_HeadPositions, "positions">;

def RWKV_ModelConfigAttr : RWKV_Attr<"ModelConfig", "config"> {
  let summary = "Hyper-parameters of a whole RWKV model";
  let description = [{
    Recorded on the module by the model importer, read by the runtime to check
    a checkpoint against a compiled library.

    ```mlir
    module attributes {rwkv.config = #rwkv.config<version = 7, n_layer = 2,
        n_embd = 128, n_head = 2, head_size = 64, dim_ffn = 512,
        vocab_size = 512, lora_w = 32, lora_a = 32, lora_v = 32,
        lora_g = 64>} {}
    ```
  }];
  let parameters = (ins "int64_t":$version, "int64_t":$n_layer,
                        "int64_t":$n_embd, "int64_t":$n_head,
                        "int64_t":$head_size, "int64_t":$dim_ffn,
                        "int64_t":$vocab_size, "int64_t":$lora_w,
                        "int64_t":$lora_a, "int64_t":$lora_v,
                        "int64_t":$lora_g);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

#endif // RWKV_DIALECT_RWKVATTRS_TD
