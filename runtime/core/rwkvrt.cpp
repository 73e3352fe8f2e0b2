//===- rwkvrt.cpp - librwkvrt.so ------------------------------------------===//
//
// The shared library is RWKVRuntime linked whole (CApi.cpp holds the entry
// points); this file only gives the target a source of its own.
//
//===----------------------------------------------------------------------===//

#include "runtime/core/rwkv_runtime.h"
