# Sourced by scripts/test and .ci/run: installs what the tests need, once, idempotently.
# A fresh machine of this kind has the stable Rust toolchain (with rustfmt and clippy), nightly,
# Python 3.11 and Node; everything else comes from the package registries.

HIGHWATER_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export HIGHWATER_ROOT
# Python tools (the spec's reference implementation; later the S3 server) live in one venv.
export HIGHWATER_VENV=${HIGHWATER_VENV:-$HIGHWATER_ROOT/.venv}
CARGO_FUZZ_VERSION=0.13.2
# Must equal the `wasm-bindgen` crate version pinned in Cargo.toml.
WASM_BINDGEN_VERSION=0.2.130
BINARYEN_VERSION=132.0.0
# npm-installed tools (wasm-opt) live outside the clone's sources.
export HIGHWATER_TOOLS=${HIGHWATER_TOOLS:-$HIGHWATER_ROOT/.tools}

setup_rust() {
  rustup component add rustfmt clippy >/dev/null 2>&1 || true
  if ! rustup target list --installed | grep -q '^wasm32-unknown-unknown$'; then
    rustup target add wasm32-unknown-unknown
  fi
}

setup_fuzz() {
  if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
  fi
}

setup_python() {
  if [ ! -x "$HIGHWATER_VENV/bin/python" ]; then
    python3 -m venv "$HIGHWATER_VENV"
  fi
  "$HIGHWATER_VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$HIGHWATER_ROOT/scripts/requirements.txt"
}

# The wasm build: clang (zstd's C code for wasm32), the wasm-bindgen CLI of the crate's exact
# version (without --locked: its lock file wants a crate this registry lacks), wasm-opt from npm
# binaryen (Debian's is too old for wasm-bindgen 0.2.130's output).
setup_wasm() {
  if ! command -v clang >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang >/dev/null
  fi
  if ! wasm-bindgen --version 2>/dev/null | grep -q "$WASM_BINDGEN_VERSION"; then
    cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
  fi
  if [ ! -x "$HIGHWATER_TOOLS/node_modules/.bin/wasm-opt" ]; then
    mkdir -p "$HIGHWATER_TOOLS"
    npm install --prefix "$HIGHWATER_TOOLS" --silent --no-audit --no-fund "binaryen@$BINARYEN_VERSION"
  fi
  export WASM_OPT="$HIGHWATER_TOOLS/node_modules/.bin/wasm-opt"
}

# Headless Chromium and its driver, for the browser tests (Debian's packages).
setup_browser() {
  if ! command -v chromedriver >/dev/null || ! command -v chromium >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  fi
}

setup_tests() {
  setup_rust
  setup_fuzz
  setup_python
  setup_wasm
  setup_browser
}

# `step NAME COMMAND...`: runs a command, prints how long it took, stops on failure.
step() {
  local name=$1
  shift
  local started=$SECONDS
  echo "==> $name"
  if "$@"; then
    echo "<== $name: ok in $((SECONDS - started)) s"
  else
    local status=$?
    echo "<== $name: FAILED after $((SECONDS - started)) s (exit $status)"
    exit "$status"
  fi
}
