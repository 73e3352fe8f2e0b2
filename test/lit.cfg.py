# -*- Python -*-
import os
import sys
import shutil

import lit.formats
from lit.llvm import llvm_config

config.name = "RWKV"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".test"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.rwkv_obj_root, "test")
config.excludes = ["Inputs", "CMakeLists.txt", "lit.cfg.py", "lit.site.cfg.py"]
config.environment["FILECHECK_OPTS"] = "--enable-var-scope"

llvm_config.with_system_environment(["HOME", "INCLUDE", "LIB", "TMP", "TEMP"])
llvm_config.use_default_substitutions()
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)

tool_dirs = [os.path.join(config.rwkv_obj_root, "bin"), config.llvm_tools_dir]
tools = ["rwkv-opt", "mlir-translate", "mlir-runner", "llc", "opt"]
for t in ["rwkv-compile", "rwkv-run", "rwkv-init", "rwkv-inspect", "rwkv-quantize"]:
    if os.path.exists(os.path.join(config.rwkv_obj_root, "bin", t)):
        tools.append(t)
        config.available_features.add(t)
llvm_config.add_tool_substitutions(tools, tool_dirs)

config.substitutions.append(("%shared", config.rwkv_shared_dir))
# Debian's interpreter (helper scripts need only the standard library).
config.substitutions.append(
    ("%python", "/usr/bin/python3" if os.path.exists("/usr/bin/python3")
     else sys.executable))

config.substitutions.append(("%rwkv_src", config.rwkv_src_root))

# JIT execution tests: mlir-runner (a tool above) and its support libraries.
_llvm_lib_dir = os.path.join(os.path.dirname(config.llvm_tools_dir), "lib")
_runner_libs = [os.path.join(_llvm_lib_dir, l + ".so")
                for l in ("libmlir_runner_utils", "libmlir_c_runner_utils")]
if os.path.exists(os.path.join(config.llvm_tools_dir, "mlir-runner")) and all(
        os.path.exists(l) for l in _runner_libs):
    config.available_features.add("mlir-runner")
config.substitutions.append(("%mlir_runner_utils", _runner_libs[0]))
config.substitutions.append(("%mlir_c_runner_utils", _runner_libs[1]))

_cuda = os.environ.get("CUDA_ROOT") or os.environ.get("CUDA_HOME") or "/usr/local/cuda"
if shutil.which("ptxas") or os.path.exists(os.path.join(_cuda, "bin", "ptxas")):
    config.available_features.add("ptxas")
    config.environment["CUDA_ROOT"] = _cuda
    config.substitutions.append(
        ("%ptxas", shutil.which("ptxas") or os.path.join(_cuda, "bin", "ptxas")))
