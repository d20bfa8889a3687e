// polychrome's hint page: plain JavaScript over the JSON API (see /docs). No build step, no network
// beyond this server.
//
// State lives here; the server keeps only the photo. Every change to the hints schedules one preview
// request (debounced); at most one is in flight, and changes made meanwhile are sent when it returns.
"use strict";

const $ = (id) => document.getElementById(id);

const state = {
  info: null,          // GET /api/info
  file: null,          // the File last opened (re-uploaded if the server dropped the photo)
  photo: null,         // PhotoInfo of the current photo
  hints: [],           // [{x, y, color}] in ORIGINAL photo pixels
  selected: -1,        // index into hints, -1 for none
  history: [],         // earlier hint lists, for undo
  colourEditOpen: false, // a colour-picker drag already pushed its undo step
  resultUrl: null,     // object URL of the latest preview
  grayUrl: null,       // object URL of the grey input
  renderTimer: null,  // the debounce timer of the next preview, null when none is waiting
  inFlight: false,
  pending: false,
  renders: 0,          // previews shown (the browser test waits on it)
  recent: [],          // colours recently used (this page only; not model output)
  lastColour: "#c0392b",
  suggestSeq: 0,
  photoSeq: 0,         // bumped by each photo opened, so a late answer about the previous one is dropped
};

const DEBOUNCE_MS = 180;

// ---------------------------------------------------------------------------------------------- API

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, { method = "GET", json, body } = {}) {
  const opts = { method, headers: {} };
  if (json !== undefined) { opts.body = JSON.stringify(json); opts.headers["Content-Type"] = "application/json"; }
  if (body !== undefined) opts.body = body;
  let resp;
  for (let attempt = 0; ; attempt++) {
    try {
      resp = await fetch(path, opts);
    } catch (e) {
      throw new ApiError(0, "cannot reach the polychrome server (is `polychrome serve` still running?)");
    }
    // 429: every colourisation slot is taken (another tab or person); wait as told and try again.
    if (resp.status !== 429 || attempt >= 8) break;
    const wait = 1000 * (parseFloat(resp.headers.get("Retry-After")) || 1);
    await new Promise((done) => setTimeout(done, wait));
  }
  if (!resp.ok) {
    let detail = `${resp.status} ${resp.statusText}`;
    try { const j = await resp.json(); if (j && j.detail) detail = typeof j.detail === "string" ? j.detail : JSON.stringify(j.detail); } catch (_) { /* not JSON */ }
    throw new ApiError(resp.status, detail);
  }
  return resp;
}

// A request about the current photo; if the server has dropped it (404), upload it again once.
async function photoApi(suffix, opts) {
  try {
    return await api(`/api/photos/${state.photo.id}${suffix}`, opts);
  } catch (e) {
    if (e.status === 404 && state.file) {
      await uploadFile(state.file, { keepHints: true, quiet: true });
      return await api(`/api/photos/${state.photo.id}${suffix}`, opts);
    }
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------- UI bits

function showError(message) {
  $("errorText").textContent = message;
  $("errorBox").hidden = false;
}
function clearError() { $("errorBox").hidden = true; }

function setBusy(on, text = "Colourising…") {
  $("busy").hidden = !on;
  $("busyText").textContent = text;
  document.body.dataset.busy = on ? "1" : "0";
  if (on) watchQueue();
}

// While the page is busy, ask the server where this photo's request waits (GET /api/queue) and add
// "· 2 ahead in the queue, about 12 s" to the busy text. One watcher at a time; it stops when the page is idle.
let queueWatcher = null;
function watchQueue() {
  if (queueWatcher) return;
  const note = " · ";
  queueWatcher = (async () => {
    try {
      while (document.body.dataset.busy === "1") {
        await new Promise((done) => setTimeout(done, 800));
        const photo = state.photo;
        if (!photo || document.body.dataset.busy !== "1") continue;
        let q;
        try { q = await (await fetch(`/api/queue?photo=${encodeURIComponent(photo.id)}`)).json(); } catch (_) { continue; }
        const base = $("busyText").textContent.split(note)[0];
        const n = q.position, place = n === 1 ? "next in the queue" : `${n - 1} ahead in the queue`;
        $("busyText").textContent = n > 0 ? `${base}${note}${place}, about ${Math.max(1, Math.round(q.eta_s))} s` : base;
        document.body.dataset.queuePosition = String(n);
      }
    } finally {
      queueWatcher = null;
    }
  })();
}

function fmtBytes(n) {
  if (n >= 1024 * 1024) return `${+(n / 1024 / 1024).toPrecision(3)} MB`;
  if (n >= 1024) return `${+(n / 1024).toPrecision(3)} KB`;
  return `${n} bytes`;
}

function setStatus(extra) {
  const p = state.photo;
  if (!p) { $("status").textContent = "Open a photo to begin."; return; }
  const parts = [p.name, `${p.width}×${p.height}`, `${state.hints.length} hint${state.hints.length === 1 ? "" : "s"}`];
  if (extra) parts.push(extra);
  $("status").textContent = parts.join("  ·  ");
}

function swapUrl(key, blob) {
  if (state[key]) URL.revokeObjectURL(state[key]);
  state[key] = blob ? URL.createObjectURL(blob) : null;
  return state[key];
}

async function showImage() {
  const img = $("resultImg");
  const url = $("grayToggle").checked ? state.grayUrl : state.resultUrl;
  if (!url || img.src === url) return;
  img.src = url;
  try { await img.decode(); } catch (_) { /* shown when it loads */ }
  fitImage();
}

// Show the photo as large as the viewer allows (small photos too: previews are at most preview_size px).
function fitImage() {
  const p = state.photo, viewer = $("viewer"), img = $("resultImg");
  if (!p || viewer.hidden) return;
  const availW = viewer.clientWidth - 8, availH = viewer.clientHeight - 8;
  if (availW <= 0 || availH <= 0) return;
  const scale = Math.min(availW / p.width, availH / p.height);
  img.style.width = `${Math.floor(p.width * scale)}px`;
  img.style.height = `${Math.floor(p.height * scale)}px`;
}

function refreshControls() {
  const have = !!state.photo;
  $("undoBtn").disabled = !have || state.history.length === 0;
  $("clearBtn").disabled = !have || state.hints.length === 0;
  $("grayToggle").disabled = !have;
  $("downloadBtn").disabled = !have;
  if (have) $("downloadBtn").title = `Colourise at full resolution (${state.photo.width}×${state.photo.height}) and save as PNG`;
  $("downloadHintsBtn").disabled = !have || state.hints.length === 0;
  $("hintCount").textContent = String(state.hints.length);
  $("noHints").hidden = state.hints.length > 0;
  $("dropZone").hidden = have;
  $("viewer").hidden = !have;
}

function renderMarkers() {
  const box = $("markers");
  box.textContent = "";
  const list = $("hintList");
  list.textContent = "";
  if (!state.photo) return;
  const { width: W, height: H } = state.photo;
  state.hints.forEach((h, i) => {
    const m = document.createElement("button");
    m.className = "marker" + (i === state.selected ? " selected" : "");
    m.style.left = `${((h.x + 0.5) / W) * 100}%`;
    m.style.top = `${((h.y + 0.5) / H) * 100}%`;
    m.style.setProperty("--c", h.color);
    m.title = `Hint ${i + 1}: ${h.color} at (${h.x}, ${h.y})`;
    m.dataset.index = String(i);
    m.addEventListener("pointerdown", (ev) => startDrag(ev, i));
    box.appendChild(m);

    const li = document.createElement("li");
    li.className = i === state.selected ? "selected" : "";
    li.innerHTML = `<span class="dot"></span><span class="where"></span><button class="del" title="Delete this hint" aria-label="Delete hint">&times;</button>`;
    li.querySelector(".dot").style.setProperty("--c", h.color);
    li.querySelector(".where").textContent = `${h.color}  at ${h.x}, ${h.y}`;
    li.addEventListener("click", () => select(i));
    li.querySelector(".del").addEventListener("click", (ev) => { ev.stopPropagation(); deleteHint(i); });
    list.appendChild(li);
  });
  refreshControls();
}

function renderEditor() {
  const h = state.hints[state.selected];
  $("editor").hidden = !h;
  $("panelHelp").hidden = !!h;
  if (!state.info || state.info.uses_hints) {
    $("panelHelp").textContent = "Click on the photo to place a colour hint, then pick its colour.";
  }
  if (!h) return;
  $("colorInput").value = h.color;
  $("colorHex").textContent = h.color;
  $("hintWhere").textContent = `hint ${state.selected + 1} · ${h.x}, ${h.y}`;
}

function renderRecent() {
  const box = $("recent");
  box.textContent = "";
  $("recentTitle").hidden = state.recent.length === 0;
  for (const c of state.recent) box.appendChild(swatch(c, "", "recent", `Recently used ${c}`));
}

function swatch(color, label, cls, title) {
  const b = document.createElement("button");
  b.className = "swatch " + cls;
  b.title = title;
  b.dataset.color = color;
  b.innerHTML = `<span class="chip"></span>${label ? `<span class="label"></span>` : ""}`;
  b.querySelector(".chip").style.setProperty("--c", color);
  if (label) b.querySelector(".label").textContent = label;
  b.addEventListener("click", () => setColour(color, true));
  return b;
}

// ---------------------------------------------------------------------------------------------- hints

function snapshot() { return state.hints.map((h) => ({ ...h })); }

function pushHistory() {
  state.history.push(snapshot());
  if (state.history.length > 200) state.history.shift();
}

function changed({ suggest = false } = {}) {
  renderMarkers();
  renderEditor();
  setStatus();
  scheduleRender();
  if (suggest) loadSuggestions();
}

function select(i) {
  state.selected = i;
  state.colourEditOpen = false;
  // Classes only, no rebuild: a marker being pressed must stay in the page to be dragged.
  document.querySelectorAll("#markers .marker").forEach((m, j) => m.classList.toggle("selected", j === i));
  document.querySelectorAll("#hintList li").forEach((li, j) => li.classList.toggle("selected", j === i));
  renderEditor();
  if (i >= 0) loadSuggestions();
}

function addHint(x, y) {
  if (state.info && !state.info.uses_hints) {
    showError(`model ${state.info.model} cannot use colour hints; start the server with a hint model (polychrome serve --model hints)`);
    return;
  }
  pushHistory();
  state.hints.push({ x, y, color: state.lastColour });
  state.selected = state.hints.length - 1;
  state.colourEditOpen = false;
  changed({ suggest: true });
}

function deleteHint(i) {
  if (i < 0 || i >= state.hints.length) return;
  pushHistory();
  state.hints.splice(i, 1);
  state.selected = -1;
  changed();
}

function setColour(color, commit) {
  const h = state.hints[state.selected];
  if (!h) return;
  color = color.toLowerCase();
  if (!state.colourEditOpen) { pushHistory(); state.colourEditOpen = !commit; }
  if (commit) state.colourEditOpen = false;
  h.color = color;
  state.lastColour = color;
  if (commit) remember(color);
  changed();
}

function remember(color) {
  state.recent = [color, ...state.recent.filter((c) => c !== color)].slice(0, 8);
  renderRecent();
}

function undo() {
  if (!state.history.length) return;
  state.hints = state.history.pop();
  if (state.selected >= state.hints.length) state.selected = -1;
  state.colourEditOpen = false;
  changed({ suggest: state.selected >= 0 });
}

function clearHints() {
  if (!state.hints.length) return;
  pushHistory();
  state.hints = [];
  state.selected = -1;
  changed();
}

// Photo pixel (column, row) under a pointer event, or null outside the image.
function photoPixel(ev) {
  const r = $("resultImg").getBoundingClientRect();
  const fx = (ev.clientX - r.left) / r.width, fy = (ev.clientY - r.top) / r.height;
  if (!(fx >= 0 && fx < 1 && fy >= 0 && fy < 1)) return null;
  const { width: W, height: H } = state.photo;
  return { x: Math.min(W - 1, Math.floor(fx * W)), y: Math.min(H - 1, Math.floor(fy * H)) };
}

function startDrag(ev, i) {
  ev.preventDefault();
  ev.stopPropagation();
  if (i !== state.selected) select(i);
  const marker = ev.currentTarget;
  marker.setPointerCapture(ev.pointerId);
  const before = snapshot();
  let moved = false;
  const move = (e) => {
    const p = photoPixel(e);
    if (!p) return;
    const h = state.hints[i];
    if (p.x === h.x && p.y === h.y) return;
    moved = true;
    h.x = p.x; h.y = p.y;
    marker.style.left = `${((p.x + 0.5) / state.photo.width) * 100}%`;
    marker.style.top = `${((p.y + 0.5) / state.photo.height) * 100}%`;
  };
  const up = () => {
    marker.removeEventListener("pointermove", move);
    marker.removeEventListener("pointerup", up);
    marker.removeEventListener("pointercancel", up);
    if (moved) {
      state.history.push(before);
      changed({ suggest: true });
    }
  };
  marker.addEventListener("pointermove", move);
  marker.addEventListener("pointerup", up);
  marker.addEventListener("pointercancel", up);
}

// ---------------------------------------------------------------------------------------------- server work

function scheduleRender() {
  if (!state.photo) return;
  clearTimeout(state.renderTimer);
  setBusy(true);
  state.renderTimer = setTimeout(() => { state.renderTimer = null; render(); }, DEBOUNCE_MS);
}

// Busy while a preview is in flight or waiting for its debounce.
function settleBusy() { setBusy(state.inFlight || state.renderTimer !== null); }

async function render() {
  if (!state.photo) return;
  if (state.inFlight) { state.pending = true; return; }
  state.inFlight = true;
  const hints = snapshot();
  const seq = state.photoSeq;
  const t0 = performance.now();
  let retry = false;
  try {
    const resp = await photoApi("/colorize", { method: "POST", json: hints });
    if (seq !== state.photoSeq) return;  // another photo was opened meanwhile
    swapUrl("resultUrl", await resp.blob());
    await showImage();
    const img = $("resultImg");
    img.dataset.hints = JSON.stringify(hints);
    state.renders += 1;
    img.dataset.renders = String(state.renders);
    clearError();
    const server = resp.headers.get("X-Elapsed-Ms");
    setStatus(`updated in ${Math.round(performance.now() - t0)} ms${server ? ` (model ${server} ms)` : ""}`);
  } catch (e) {
    if (e.status === 429) retry = true;  // another job holds the slots: try again shortly
    else showError(e.message);
  } finally {
    state.inFlight = false;
    if (retry) {
      state.renderTimer = setTimeout(() => { state.renderTimer = null; render(); }, 600);
    } else if (state.pending) {
      state.pending = false;
      render();
    } else {
      settleBusy();
    }
  }
}

async function loadSuggestions() {
  const i = state.selected;
  const h = state.hints[i];
  const box = $("suggestions");
  if (!h) return;
  const seq = ++state.suggestSeq;
  box.innerHTML = `<span class="muted small">asking the models…</span>`;
  const others = state.hints.filter((_, j) => j !== i);
  try {
    const resp = await photoApi(`/suggestions?x=${h.x}&y=${h.y}`, { method: "POST", json: others });
    const data = await resp.json();
    if (seq !== state.suggestSeq) return;
    box.textContent = "";
    for (const s of data.suggestions) box.appendChild(swatch(s.color, s.label, "suggested", `${s.label}: ${s.color} (a ${s.ab[0]}, b ${s.ab[1]})`));
    if (!data.suggestions.length) box.innerHTML = `<span class="muted small">no suggestion here</span>`;
  } catch (e) {
    if (seq !== state.suggestSeq) return;
    box.innerHTML = `<span class="muted small">${e.status === 429 ? "server busy; click the hint again" : "no suggestions"}</span>`;
    if (e.status !== 429) showError(e.message);
  }
}

async function uploadFile(file, { keepHints = false, quiet = false } = {}) {
  const limits = state.info && state.info.limits;
  if (limits && file.size > limits.max_upload_bytes) {
    throw new ApiError(413, `${file.name}: ${fmtBytes(file.size)} is over the ${fmtBytes(limits.max_upload_bytes)} upload limit`);
  }
  const form = new FormData();
  form.append("file", file, file.name);
  if (!quiet) setBusy(true, `Reading ${file.name}…`);
  const resp = await api("/api/photos", { method: "POST", body: form });
  const photo = await resp.json();
  state.photo = photo;
  state.file = file;
  if (!keepHints) {
    state.hints = [];
    state.history = [];
    state.selected = -1;
  }
  const gray = await api(`/api/photos/${photo.id}/gray`);
  swapUrl("grayUrl", await gray.blob());
  return photo;
}

async function openPhoto(file) {
  if (!file) return;
  clearError();
  try {
    await uploadFile(file);
    state.photoSeq += 1;
    swapUrl("resultUrl", null);
    $("resultImg").removeAttribute("src");
    $("resultImg").dataset.renders = "0";
    state.renders = 0;
    refreshControls();
    fitImage();
    state.lastColour = $("colorInput").value;
    changed();
    await showImageWhenReady();
  } catch (e) {
    setBusy(false);
    showError(e.message);
  }
}

// Show the grey photo at once, so there is something to look at while the first result comes.
async function showImageWhenReady() {
  const img = $("resultImg");
  if (!state.resultUrl && state.grayUrl) { img.src = state.grayUrl; try { await img.decode(); } catch (_) { /* */ } }
}

async function download(kind) {
  if (!state.photo) return;
  clearError();
  const isImage = kind === "image";
  const { width, height } = state.photo;
  setBusy(true, isImage ? `Colourising ${width}×${height} at full resolution…` : "Preparing the hint file…");
  try {
    const resp = await photoApi(isImage ? "/full?format=png" : "/hints", { method: "POST", json: snapshot() });
    const blob = await resp.blob();
    const cd = resp.headers.get("Content-Disposition") || "";
    const m = /filename="([^"]+)"/.exec(cd);
    const name = m ? m[1] : isImage ? "colour.png" : "hints.json";
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = name;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 60000);
    document.body.dataset.lastDownload = name;
    setStatus(`saved ${name} (${fmtBytes(blob.size)})`);
  } catch (e) {
    showError(e.message);
  } finally {
    settleBusy();
  }
}

async function loadHintFile(file) {
  if (!file || !state.photo) { if (file) showError("open a photo first, then load its hints"); return; }
  clearError();
  try {
    let obj;
    try { obj = JSON.parse(await file.text()); } catch (e) { throw new Error(`${file.name}: not valid JSON (${e.message})`); }
    // The server checks them (format, colours, inside this photo) and returns them in canonical form.
    const resp = await photoApi("/hints", { method: "POST", json: obj });
    const hints = await resp.json();
    pushHistory();
    state.hints = hints;
    state.selected = -1;
    changed();
  } catch (e) {
    showError(e.message.startsWith("hints:") ? `${file.name}: ${e.message.slice(7)}` : e.message);
  }
}

// ---------------------------------------------------------------------------------------------- wiring

function wire() {
  for (const id of ["fileInput", "fileInput2"]) {
    $(id).addEventListener("change", (ev) => { openPhoto(ev.target.files[0]); ev.target.value = ""; });
  }
  $("hintsInput").addEventListener("change", (ev) => { loadHintFile(ev.target.files[0]); ev.target.value = ""; });

  // Drag and drop anywhere on the page.
  let depth = 0;
  window.addEventListener("dragenter", (ev) => { ev.preventDefault(); depth += 1; document.body.classList.add("dragging"); });
  window.addEventListener("dragleave", () => { depth = Math.max(0, depth - 1); if (!depth) document.body.classList.remove("dragging"); });
  window.addEventListener("dragover", (ev) => ev.preventDefault());
  window.addEventListener("drop", (ev) => {
    ev.preventDefault();
    depth = 0;
    document.body.classList.remove("dragging");
    const file = ev.dataTransfer && ev.dataTransfer.files[0];
    if (!file) return;
    if (/\.json$/i.test(file.name)) loadHintFile(file);
    else openPhoto(file);
  });

  $("resultImg").addEventListener("click", (ev) => {
    if (!state.photo) return;
    const p = photoPixel(ev);
    if (p) addHint(p.x, p.y);
  });

  $("colorInput").addEventListener("input", (ev) => setColour(ev.target.value, false));
  $("colorInput").addEventListener("change", (ev) => setColour(ev.target.value, true));
  $("deleteHintBtn").addEventListener("click", () => deleteHint(state.selected));
  $("undoBtn").addEventListener("click", undo);
  $("clearBtn").addEventListener("click", clearHints);
  $("grayToggle").addEventListener("change", showImage);
  $("downloadBtn").addEventListener("click", () => download("image"));
  $("downloadHintsBtn").addEventListener("click", () => download("hints"));
  $("errorClose").addEventListener("click", clearError);
  window.addEventListener("resize", fitImage);

  window.addEventListener("keydown", (ev) => {
    if (ev.target instanceof HTMLInputElement && ev.target.type !== "checkbox") return;
    if ((ev.ctrlKey || ev.metaKey) && ev.key.toLowerCase() === "z") { ev.preventDefault(); undo(); }
    else if ((ev.key === "Delete" || ev.key === "Backspace") && state.selected >= 0) { ev.preventDefault(); deleteHint(state.selected); }
    else if (ev.key === "Escape") select(-1);
    else if (ev.key.toLowerCase() === "g" && state.photo && !ev.ctrlKey && !ev.metaKey) {
      $("grayToggle").checked = !$("grayToggle").checked;
      showImage();
    }
  });
}

async function start() {
  wire();
  refreshControls();
  try {
    const resp = await api("/api/info");
    state.info = await resp.json();
    const i = state.info;
    $("modelBadge").textContent = `model ${i.model} · ${i.working_size} px`;
    $("limitsText").textContent = `JPEG, PNG, WebP, TIFF or BMP · up to ${fmtBytes(i.limits.max_upload_bytes)} and ${+(i.limits.max_pixels / 1e6).toPrecision(3)} megapixels`;
    if (!i.uses_hints) $("panelHelp").textContent = `This server's model (${i.model}) colourises automatically and cannot take hints.`;
  } catch (e) {
    showError(e.message);
  }
}

start();
