#!/usr/bin/env bash
# llama-cpp-python, the engine's fast CPU backend (engine/backends/llamacpp.py).
# PyPI has only its source, so the first install compiles llama.cpp (about 6 minutes on two
# idle cores). The wheel is kept in ~/.cache/text2sql/wheels, keyed by version, build flags and
# CPU (a native build uses this CPU's instructions), so later runs on the machine install it in
# seconds. A failed build is not fatal: the engine then uses transformers on CPU and the
# llama.cpp tests are skipped, saying why.
#   scripts/install_llamacpp.sh [--build-only] [PYTHON]     TEXT2SQL_SKIP_LLAMACPP=1 skips it
# --build-only builds (or finds) the cached wheel and installs nothing: setup.sh runs it in the
# background while pip installs everything else, then calls this script again to install.
set -euo pipefail
build_only=0
if [ "${1:-}" = --build-only ]; then
  build_only=1
  shift
fi
PY="${1:-.venv/bin/python}"
VERSION=0.3.36
SDIST_SHA256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
here="$(cd "$(dirname "$0")" && pwd)"
# CPU only; skip the multimodal library, tools, tests and examples the bindings don't use, and
# (the cmake file says why) llama.cpp's common library.
FLAGS="-DGGML_NATIVE=ON -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF"
PROJECT_INCLUDE="$here/llamacpp_bindings_only.cmake"

if [ "${TEXT2SQL_SKIP_LLAMACPP:-0}" = 1 ]; then
  echo "TEXT2SQL_SKIP_LLAMACPP=1: not installing llama-cpp-python"
  exit 0
fi
if [ "$build_only" = 0 ] && "$PY" -c "import importlib.metadata as m, sys; sys.exit(m.version('llama_cpp_python') != '$VERSION')" 2>/dev/null; then
  exit 0
fi
cpu=$(grep -m1 -E '^(flags|Features)' /proc/cpuinfo || uname -m)
key=$(printf '%s|%s|%s|%s' "$VERSION" "$FLAGS" "$(cat "$PROJECT_INCLUDE")" "$cpu" | sha256sum | cut -c1-12)
cache="${TEXT2SQL_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/text2sql/wheels}/llama-cpp-python-$VERSION-$key"
if ! compgen -G "$cache/*.whl" >/dev/null; then
  echo "Building llama-cpp-python $VERSION (compiles llama.cpp, about 6 minutes on 2 cores)..."
  start=$(date +%s)
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  echo "llama-cpp-python==$VERSION --hash=sha256:$SDIST_SHA256" >"$tmp/req.txt"
  # --no-cache-dir: pip would otherwise reuse a wheel it built earlier with other CMAKE_ARGS
  if CMAKE_ARGS="$FLAGS -DCMAKE_PROJECT_llama.cpp_INCLUDE=$PROJECT_INCLUDE" \
    CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" nice -n 10 \
    "$PY" -m pip wheel -q --disable-pip-version-check --no-cache-dir --no-deps --no-binary llama-cpp-python \
    --require-hashes -r "$tmp/req.txt" -w "$tmp/wheel" >"$tmp/build.log" 2>&1; then
    mkdir -p "$cache"
    mv "$tmp"/wheel/llama_cpp_python-*.whl "$cache"/
    echo "llama-cpp-python built in $(($(date +%s) - start)) s, kept in $cache"
  else
    tail -20 "$tmp/build.log" >&2
    echo "warning: llama-cpp-python did not build; the engine will use transformers on CPU" >&2
    exit 0
  fi
fi
if [ "$build_only" = 1 ]; then
  exit 0
fi
"$PY" -m pip install -q --disable-pip-version-check "$cache"/llama_cpp_python-*.whl
echo "llama-cpp-python $VERSION installed"
