#!/usr/bin/env bash
# Builds the highwater peer and installs it into a scratch copy of shared/bench as peers/highwater.
#   crates/bench/install-peer.sh /tmp/bench
# then, from /tmp/bench:  ./run.sh 1m 3 duckdb highwater
set -euo pipefail
bench=${1:?usage: install-peer.sh BENCH_DIR}
root=$(cd "$(dirname "$0")/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
cargo build --release -p highwater-bench --manifest-path "$root/Cargo.toml"
cat > "$bench/peers/highwater" <<WRAPPER
#!/usr/bin/env bash
# highwater's peer: the release binary of crates/bench, called with WORKLOAD DATA_DIR OUT_DIR.
exec "$target/release/highwater-bench" "\$@"
WRAPPER
chmod +x "$bench/peers/highwater"
echo "installed $bench/peers/highwater -> $target/release/highwater-bench"
