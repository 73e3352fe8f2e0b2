#!/usr/bin/env bash
# Installs every package the build and the tests need. Idempotent: it runs
# apt-get only when something is missing.
set -euo pipefail
PKGS=(
  cmake ninja-build g++ git python3
  llvm-22-dev llvm-22-tools libmlir-22-dev mlir-22-tools
  libfmt-dev libboost-program-options-dev libgtest-dev libgmock-dev libbenchmark-dev
  libminizip-dev zlib1g-dev nlohmann-json3-dev
  pkg-config libpcre2-dev libicu-dev
  python3-torch python3-numpy python3-pytest
  clang-14 libclang-rt-14-dev libomp-22-dev
  libcpp-httplib-dev nodejs npm
)
missing=()
for p in "${PKGS[@]}"; do
  # A nodejs build that bundles npm (NodeSource) conflicts with Debian's npm.
  [ "$p" = npm ] && command -v npm >/dev/null && continue
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
