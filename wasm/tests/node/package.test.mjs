// The npm package as a user installs it: resolved through package.json's `exports` map, by
// `import` and by `require`, from a project that has it under node_modules/.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, symlinkSync, writeFileSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const pkg = fileURLToPath(new URL("../../pkg", import.meta.url));
const fixtures = fileURLToPath(new URL("../fixtures", import.meta.url));

function project() {
  const dir = mkdtempSync(join(tmpdir(), "highwater-wasm-"));
  mkdirSync(join(dir, "node_modules"));
  symlinkSync(pkg, join(dir, "node_modules", "highwater-wasm"), "dir");
  return dir;
}

test("package.json names, versions and lists what it ships", () => {
  const manifest = JSON.parse(readFileSync(join(pkg, "package.json"), "utf8"));
  assert.equal(manifest.name, "highwater-wasm");
  assert.match(manifest.version, /^\d+\.\d+\.\d+$/);
  assert.deepEqual(Object.keys(manifest.exports["."]), ["types", "node", "default"]);
  assert.deepEqual(manifest.files, ["web/", "node/", "README.md"]);
});

test("import and require resolve the node build through the exports map", () => {
  const dir = project();
  const script = (body) => `const f = (n) => require("fs").readFileSync(${JSON.stringify(fixtures)} + "/" + n);\n${body}`;
  writeFileSync(join(dir, "a.cjs"), script(
    `const { diff } = require("highwater-wasm");
     console.log(JSON.stringify(diff(f("previous.parquet"), f("current.lz4.parquet"), { key: ["region", "id"] }).counts));`));
  writeFileSync(join(dir, "b.mjs"), `import { createRequire } from "node:module"; const require = createRequire(import.meta.url);
    import { diff } from "highwater-wasm";
    ${script(`console.log(JSON.stringify(diff(f("previous.parquet"), f("current.zstd.parquet"), { key: ["region", "id"] }).counts));`)}`);
  for (const file of ["a.cjs", "b.mjs"]) {
    const counts = JSON.parse(execFileSync(process.execPath, [join(dir, file)], { cwd: dir, encoding: "utf8" }));
    assert.deepEqual([counts.inserted, counts.updated, counts.deleted], [2, 3, 2], file);
  }
});
