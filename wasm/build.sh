#!/usr/bin/env bash
# Builds the npm package of highwater-wasm into wasm/pkg/ (not committed):
#   pkg/web/   ES module for browsers, bundlers and Workers (`await init()` first)
#   pkg/node/  CommonJS module for Node (ready on require)
#   pkg/package.json with an `exports` map choosing between them.
# Usage: wasm/build.sh            default features (Parquet: snappy, zstd, lz4)
#        WASM_FEATURES=csv,tz wasm/build.sh   add CSV input and IANA zones (see README.md)
# Needs: the wasm32-unknown-unknown target, wasm-bindgen-cli of the crate's exact version, and
# wasm-opt (npm binaryen@132; WASM_OPT overrides). Prints the gzipped size of the module.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$root/target}
features=${WASM_FEATURES:-}
wasm_opt=${WASM_OPT:-wasm-opt}
# -O1 compresses best: -Oz/-Os give smaller raw modules that gzip ~4% larger (measured).
opt_flags=(-O1 --strip-debug --enable-reference-types --enable-bulk-memory --enable-nontrapping-float-to-int
  --enable-sign-ext --enable-mutable-globals --enable-multivalue)

cargo build -p highwater-wasm --target wasm32-unknown-unknown --profile wasm-release ${features:+--features "$features"}
module="$target_dir/wasm32-unknown-unknown/wasm-release/highwater_wasm.wasm"
rm -rf "$here/pkg"
for flavour in web node; do
  bindgen_target=$([ "$flavour" = node ] && echo nodejs || echo web)
  wasm-bindgen --target "$bindgen_target" --out-dir "$here/pkg/$flavour" "$module"
  "$wasm_opt" "${opt_flags[@]}" "$here/pkg/$flavour/highwater_wasm_bg.wasm" -o "$here/pkg/$flavour/highwater_wasm_bg.wasm"
done
# Node reads pkg/node as CommonJS even though the package root is an ES module package.
echo '{"type": "commonjs"}' > "$here/pkg/node/package.json"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -1)
sed "s/\"version\": \"0.0.0\"/\"version\": \"$version\"/" "$here/package.template.json" > "$here/pkg/package.json"
cp "$here/README.md" "$here/pkg/README.md"
gz=$(gzip -9 -c "$here/pkg/web/highwater_wasm_bg.wasm" | wc -c)
raw=$(stat -c %s "$here/pkg/web/highwater_wasm_bg.wasm")
echo "highwater-wasm [${features:-default}]: $raw bytes, $gz gzipped"
echo "$gz" > "$here/pkg/size.gz.txt"
