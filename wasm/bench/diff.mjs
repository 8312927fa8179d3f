// Times highwater-wasm diffing two Parquet snapshots in Node (single-threaded, like all wasm).
// Usage: node wasm/bench/diff.mjs PREVIOUS.parquet CURRENT.parquet [KEY] [REPS]
// Needs wasm/pkg/node (wasm/build.sh). Prints one JSON line per repetition and the median.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { performance } from "node:perf_hooks";

const require = createRequire(import.meta.url);
const hw = require(process.env.HIGHWATER_WASM_NODE ?? "../pkg/node/highwater_wasm.js");
const [previousPath, currentPath, key = "id", reps = "3"] = process.argv.slice(2);
if (!previousPath || !currentPath) {
  console.error("usage: node wasm/bench/diff.mjs PREVIOUS.parquet CURRENT.parquet [KEY] [REPS]");
  process.exit(2);
}
const times = [];
for (let rep = 0; rep < Number(reps); rep++) {
  const started = performance.now();
  // Reading the files is part of the work, as it is for the native run.
  const previous = readFileSync(previousPath);
  const current = readFileSync(currentPath);
  const result = hw.diff(previous, current, { key: key.split(","), output: "split", changedColumns: process.env.CHANGED_COLUMNS !== "0" });
  const seconds = (performance.now() - started) / 1000;
  times.push(seconds);
  console.log(JSON.stringify({ rep, seconds: Number(seconds.toFixed(3)), counts: result.counts,
    rss_mib: Math.round(process.memoryUsage().rss / 2 ** 20) }));
}
times.sort((a, b) => a - b);
console.log(JSON.stringify({ median_s: Number(times[Math.floor(times.length / 2)].toFixed(3)) }));
