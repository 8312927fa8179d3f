// The demo page: two files in, the diff shown, the change set and the new index out.
// Query parameters run it without clicks (the headless test uses them):
//   ?previous=URL&current=URL&key=a,b[&output=split]
import init, { diff, diffAgainstIndex, inspect, toCsv, version } from "../pkg/web/highwater_wasm.js";

const PREVIEW_ROWS = 50;
const files = { previous: null, current: null };
let last = null;
const $ = (id) => document.getElementById(id);

function status(text, error = false) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
}

/** Whether bytes are a snapshot index (Arrow IPC with fingerprints and row hashes). */
function isIndex(info) {
  const names = info.columns.map((c) => c.name);
  return names.includes("fingerprint") && names.includes("row_hash");
}

function setFile(side, name, bytes) {
  files[side] = { name, bytes };
  $(`name-${side}`).textContent = `${name} (${(bytes.length / 1024).toFixed(1)} KiB)`;
  if (files.previous && files.current) showKeys();
}

function showKeys(preselect = []) {
  let current;
  try {
    current = inspect(files.current.bytes);
  } catch (e) {
    status(`current: ${e.message}`, true);
    return;
  }
  const previousInfo = safeInspect(files.previous.bytes);
  const againstIndex = previousInfo && isIndex(previousInfo);
  const keys = $("keys");
  keys.replaceChildren();
  for (const column of current.columns) {
    const label = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.value = column.name;
    box.checked = preselect.length ? preselect.includes(column.name) : column.name === "id";
    box.disabled = againstIndex;
    label.append(box, ` ${column.name} `);
    const type = document.createElement("small");
    type.textContent = column.type;
    label.append(type);
    keys.append(label);
  }
  $("keys-section").hidden = false;
  status(againstIndex
    ? "The previous file is a snapshot index: its key is used."
    : `${current.format}, ${current.rows ?? "?"} rows, ${current.columns.length} columns: choose the key.`);
}

function safeInspect(bytes) {
  try { return inspect(bytes); } catch { return null; }
}

function run() {
  const key = [...document.querySelectorAll("#keys input:checked")].map((b) => b.value);
  const previousInfo = safeInspect(files.previous.bytes);
  const againstIndex = previousInfo && isIndex(previousInfo);
  const output = $("split").checked ? "split" : "feed";
  status("Diffing…");
  const started = performance.now();
  try {
    const onProgress = (p) => { if (p.total) status(`${p.stage}: ${p.done} / ${p.total}`); };
    last = againstIndex
      ? diffAgainstIndex(files.previous.bytes, files.current.bytes, { preview: PREVIEW_ROWS, output }, onProgress)
      : diff(files.previous.bytes, files.current.bytes, { key, index: true, preview: PREVIEW_ROWS, output }, onProgress);
  } catch (e) {
    $("result").hidden = true;
    status(e.message, true);
    return;
  }
  const seconds = ((performance.now() - started) / 1000).toFixed(2);
  status(`Done in ${seconds} s.`);
  render(last);
}

function render(result) {
  const c = result.counts;
  const counts = $("counts");
  counts.replaceChildren();
  for (const [name, value, kind] of [
    ["inserted", c.inserted, "insert"], ["updated", c.updated, "update"], ["deleted", c.deleted, "delete"],
    ["unchanged", c.unchanged, ""], ["rows before", c.rowsBefore, ""], ["rows after", c.rowsAfter, ""],
  ]) {
    const box = document.createElement("div");
    box.className = `count ${kind}`;
    box.dataset.count = name;
    const b = document.createElement("b");
    b.textContent = String(value);
    box.append(b, name);
    counts.append(box);
  }
  const rows = result.preview ?? [];
  const table = $("rows");
  table.replaceChildren();
  const columns = (result.previewColumns ?? []).filter((n) => n !== "_change_type" && n !== "_changed_columns");
  const head = table.createTHead().insertRow();
  for (const name of ["change", ...columns]) {
    const th = document.createElement("th");
    th.textContent = name;
    head.append(th);
  }
  const body = table.createTBody();
  for (const row of rows) {
    const tr = body.insertRow();
    tr.className = row._change_type;
    tr.insertCell().textContent = row._change_type;
    const changed = new Set(row._changed_columns ?? []);
    for (const name of columns) {
      const td = tr.insertCell();
      const value = row[name];
      td.textContent = value === null ? "null" : value;
      if (value === null) td.classList.add("null");
      if (changed.has(name)) td.classList.add("changed");
    }
  }
  $("download-index").disabled = !result.index;
  $("result").hidden = false;
}

function download(name, bytes, type) {
  const url = URL.createObjectURL(new Blob([bytes], { type }));
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function changeTables() {
  return last.changes ? [["changes", last.changes]] : [["inserts", last.inserts], ["updates", last.updates], ["deletes", last.deletes]];
}

function wire() {
  for (const side of ["previous", "current"]) {
    $(`file-${side}`).addEventListener("change", async (event) => {
      const file = event.target.files[0];
      if (file) setFile(side, file.name, new Uint8Array(await file.arrayBuffer()));
    });
    const zone = $(`drop-${side}`);
    zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", async (e) => {
      e.preventDefault();
      zone.classList.remove("over");
      const file = e.dataTransfer.files[0];
      if (file) setFile(side, file.name, new Uint8Array(await file.arrayBuffer()));
    });
  }
  $("run").addEventListener("click", run);
  $("download-ipc").addEventListener("click", () => {
    for (const [name, bytes] of changeTables()) download(`${name}.arrows`, bytes, "application/vnd.apache.arrow.stream");
  });
  $("download-csv").addEventListener("click", () => {
    for (const [name, bytes] of changeTables()) download(`${name}.csv`, toCsv(bytes), "text/csv");
  });
  $("download-index").addEventListener("click", () => download("snapshot.index", last.index, "application/octet-stream"));
}

async function fromQuery() {
  const query = new URLSearchParams(location.search);
  if (!query.get("previous") || !query.get("current")) return;
  for (const side of ["previous", "current"]) {
    const url = query.get(side);
    const response = await fetch(url);
    if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
    setFile(side, url.split("/").pop(), new Uint8Array(await response.arrayBuffer()));
  }
  const key = (query.get("key") ?? "").split(",").filter(Boolean);
  showKeys(key);
  if (query.get("output") === "split") $("split").checked = true;
  run();
}

await init();
$("version").textContent = version();
wire();
fromQuery().catch((e) => status(e.message, true)).finally(() => { document.body.dataset.ready = "true"; });
