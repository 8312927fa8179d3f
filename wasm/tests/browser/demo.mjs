// End-to-end check of the demo page in headless Chromium: serves wasm/ from 127.0.0.1, opens
// www/ with two fixture files, and asserts the counts and the first rows the page shows. Saves a
// screenshot (SCREENSHOT=path; wasm/README.md shows the committed one).
// Needs wasm/pkg (wasm/build.sh), chromedriver and chromium (apt: chromium chromium-driver).
// Usage: node wasm/tests/browser/demo.mjs
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { createServer } from "node:net";

const wasmDir = fileURLToPath(new URL("../..", import.meta.url));
const freePort = () => new Promise((resolve) => {
  const server = createServer().listen(0, "127.0.0.1", () => {
    const { port } = server.address();
    server.close(() => resolve(port));
  });
});
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(url) {
  for (let i = 0; i < 100; i++) {
    try { if ((await fetch(url)).status < 500) return; } catch { /* not up yet */ }
    await sleep(100);
  }
  throw new Error(`${url} did not come up`);
}

const children = [];
const cleanup = () => children.forEach((c) => c.kill());
process.on("exit", cleanup);

const httpPort = await freePort();
children.push(spawn("python3", ["-m", "http.server", String(httpPort), "--bind", "127.0.0.1", "--directory", wasmDir],
  { stdio: "ignore" }));
const driverPort = await freePort();
children.push(spawn(process.env.CHROMEDRIVER ?? "chromedriver", [`--port=${driverPort}`], { stdio: "ignore" }));
const site = `http://127.0.0.1:${httpPort}`;
const driver = `http://127.0.0.1:${driverPort}`;
await waitFor(`${site}/www/index.html`);
await waitFor(`${driver}/status`);

async function call(method, path, body) {
  const response = await fetch(`${driver}${path}`, {
    method, headers: { "content-type": "application/json" }, body: body && JSON.stringify(body),
  });
  const json = await response.json();
  if (!response.ok) throw new Error(`${method} ${path}: ${JSON.stringify(json.value)}`);
  return json.value;
}

const capabilities = JSON.parse((await import("node:fs")).readFileSync(`${wasmDir}/webdriver.json`, "utf8"));
if (process.env.CHROMIUM) capabilities["goog:chromeOptions"].binary = process.env.CHROMIUM;
const { sessionId } = await call("POST", "/session", { capabilities: { alwaysMatch: capabilities } });
const run = (script) => call("POST", `/session/${sessionId}/execute/sync`, { script, args: [] });
try {
  const query = "previous=../tests/fixtures/previous.parquet&current=../tests/fixtures/current.snappy.parquet&key=region,id";
  await call("POST", `/session/${sessionId}/url`, { url: `${site}/www/index.html?${query}` });
  for (let i = 0; i < 100 && (await run("return document.body.dataset.ready")) !== "true"; i++) await sleep(100);
  const state = await run(`return {
    status: document.getElementById("status").textContent,
    counts: Object.fromEntries([...document.querySelectorAll("[data-count]")].map(
      (e) => [e.dataset.count, Number(e.querySelector("b").textContent)])),
    header: [...document.querySelectorAll("#rows th")].map((th) => th.textContent),
    rows: [...document.querySelectorAll("#rows tbody tr")].map((tr) => [...tr.cells].map((td) => td.textContent)),
    changed: [...document.querySelectorAll("#rows td.changed")].map((td) => td.textContent),
  }`);
  assert.match(state.status, /^Done in/, state.status);
  assert.deepEqual(state.counts, {
    inserted: 2, updated: 3, deleted: 2, unchanged: 3, "rows before": 8, "rows after": 8,
  });
  assert.deepEqual(state.header, ["change", "region", "id", "name", "price", "active", "updated"]);
  assert.equal(state.rows.length, 7);
  assert.deepEqual(state.rows.map((r) => `${r[0]} ${r[1]}/${r[2]}`).sort(), [
    "delete ap/2", "delete eu/3", "insert eu/4", "insert sa/1", "update eu/2", "update us/1", "update us/3",
  ]);
  // The changed columns of the updates are highlighted: eu/2 and us/1 price, us/3 name and active.
  assert.deepEqual(state.changed.sort(), ["2.0", "21.0", "false", "ivy"].sort());
  const png = await call("GET", `/session/${sessionId}/screenshot`);
  const path = process.env.SCREENSHOT ?? `${process.env.TMPDIR ?? "/tmp"}/highwater-demo.png`;
  writeFileSync(path, Buffer.from(png, "base64"));
  console.log(`demo page ok: ${JSON.stringify(state.counts)}; screenshot in ${path}`);
} finally {
  await call("DELETE", `/session/${sessionId}`).catch(() => {});
  cleanup();
}
