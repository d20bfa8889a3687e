// polychrome's hint page: plain JavaScript over the JSON API (see /docs). No build step, no network
// beyond this server.
//
// State lives here; the server keeps only the photo. Every change to the hints schedules one preview
// request (debounced); at most one is in flight, and changes made meanwhile are sent when it returns.
// Hints are saved in this browser (localStorage) for each photo, keyed by its name, byte size and pixel
// size, so a reload or opening the same photo again brings them back.
"use strict";

const $ = (id) => document.getElementById(id);

const state = {
  info: null,          // GET /api/info
  file: null,          // the File last opened (re-uploaded if the server dropped the photo)
  photo: null,         // {id (null while uploading), name, bytes, width, height, preview_*, jpeg_quality}
  hints: [],           // [{x, y, color}] in ORIGINAL photo pixels; color null until the model's colour is known
  selected: -1,        // index into hints, -1 for none
  history: [],         // earlier hint lists, for undo
  future: [],          // undone hint lists, for redo
  editOpen: false,     // a colour-picker drag or a keyboard move already pushed its undo step
  resultUrl: null,     // object URL of the latest preview
  resultPixels: null,  // its pixels (ImageData), to read the model's colour at a spot
  grayUrl: null,       // object URL of the grey input
  localUrl: null,      // object URL of the file being uploaded (shown until the server's images come)
  renderTimer: null,   // the debounce timer of the next preview, null when none is waiting
  inFlight: false,
  pending: false,
  renders: 0,          // previews shown on this page, all photos (the browser test waits on it)
  photoRenders: 0,     // previews shown of the current photo
  recent: [],          // colours recently used (this page only; not model output)
  suggestSeq: 0,
  photoSeq: 0,         // bumped by each photo opened, so a late answer about the previous one is dropped
  upload: null,        // the XMLHttpRequest of an upload in progress
  zoom: 1,             // 1 = the photo fits the viewer
  cursor: null,        // the keyboard crosshair, photo pixels
  panMode: false,
  spaceDown: false,
  doubtOn: false,
  doubtSeq: 0,
  tasks: 0,            // uploads and downloads showing progress
};

const DEBOUNCE_MS = 180;
const STORE_PREFIX = "polychrome.hints.v1:";
const LAST_KEY = "polychrome.last.v1";
const STORE_MAX = 200;  // photos whose hints are kept; the least recently saved go first

// Everyday colours people ask for (sRGB; a hint uses only the chroma, the photo keeps its lightness).
const PALETTE = [
  ["#f3cfb3", "skin, fair"], ["#e0ac89", "skin, light"], ["#c68a62", "skin, medium"], ["#a0694a", "skin, tan"],
  ["#70452f", "skin, dark"], ["#4b2d21", "skin, deep"], ["#8fb4dc", "sky"], ["#4f7fae", "sea"],
  ["#74a340", "grass"], ["#3e6b2c", "foliage"], ["#a5493a", "brick"], ["#8a5a36", "wood"],
  ["#c9ab78", "sand, khaki"], ["#d9b14a", "straw, gold"], ["#4a6488", "denim"], ["#25345a", "navy"],
  ["#b3261e", "red"], ["#6d2a3c", "wine"], ["#efe7d6", "white-ish"], ["#808080", "no colour (grey)"],
];

// ---------------------------------------------------------------------------------------------- API

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function errorDetail(resp) {
  let detail = `${resp.status} ${resp.statusText}`;
  try { const j = await resp.json(); if (j && j.detail) detail = typeof j.detail === "string" ? j.detail : JSON.stringify(j.detail); } catch (_) { /* not JSON */ }
  return detail;
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
  if (!resp.ok) throw new ApiError(resp.status, await errorDetail(resp));
  return resp;
}

// A request about the current photo; if the server has dropped it (404), upload it again once.
async function photoApi(suffix, opts) {
  try {
    return await api(`/api/photos/${state.photo.id}${suffix}`, opts);
  } catch (e) {
    if (e.status === 404 && state.file) {
      const info = await uploadFile(state.file, "Uploading the photo again");
      state.photo.id = info.id;
      return await api(`/api/photos/${state.photo.id}${suffix}`, opts);
    }
    if (e.status === 404) throw new ApiError(404, `the server no longer has ${state.photo.name}; open it again (its hints are kept)`);
    throw e;
  }
}

// POST a file with upload progress (fetch cannot report it): resolves to the PhotoInfo.
function uploadFile(file, verb = "Uploading") {
  const limits = state.info && state.info.limits;
  if (limits && file.size > limits.max_upload_bytes) {
    return Promise.reject(new ApiError(413, `${file.name}: ${fmtBytes(file.size)} is over the ${fmtBytes(limits.max_upload_bytes)} upload limit`));
  }
  const task = startTask(`${verb} ${file.name}`, true);
  const once = () => new Promise((resolve, reject) => {
    const form = new FormData();
    form.append("file", file, file.name);
    const xhr = new XMLHttpRequest();
    state.upload = xhr;
    xhr.open("POST", "/api/photos");
    xhr.responseType = "json";
    xhr.upload.onprogress = (ev) => {
      if (ev.lengthComputable) task.update(ev.loaded / ev.total, `${verb} ${file.name}: ${fmtBytes(ev.loaded)} of ${fmtBytes(ev.total)}`);
    };
    xhr.upload.onload = () => task.update(null, `Reading ${file.name} on the server…`);
    xhr.onload = () => {
      const body = xhr.response;
      if (xhr.status >= 200 && xhr.status < 300) resolve(body);
      else reject(new ApiError(xhr.status, (body && typeof body.detail === "string") ? body.detail : `${xhr.status} ${xhr.statusText}`));
    };
    xhr.onerror = () => reject(new ApiError(0, "cannot reach the polychrome server (is `polychrome serve` still running?)"));
    xhr.onabort = () => reject(new ApiError(-1, `upload of ${file.name} cancelled`));
    xhr.send(form);
  });
  const run = async () => {
    for (let attempt = 0; ; attempt++) {
      try {
        return await once();
      } catch (e) {
        if (e.status !== 429 || attempt >= 8) throw e;
        task.update(null, "The server is busy; trying again…");
        await new Promise((done) => setTimeout(done, 1000));
      }
    }
  };
  return run().finally(() => { state.upload = null; task.done(); });
}

// GET or POST with download progress (the response body read in chunks): resolves to {blob, resp}.
async function fetchWithProgress(suffix, opts, label, onFirstByte) {
  const resp = await photoApi(suffix, opts);
  onFirstByte && onFirstByte();
  const total = parseInt(resp.headers.get("Content-Length") || "0", 10);
  if (!resp.body || !resp.body.getReader) return { blob: await resp.blob(), resp };
  const reader = resp.body.getReader();
  const chunks = [];
  let got = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    got += value.length;
    label(got, total);
  }
  return { blob: new Blob(chunks, { type: resp.headers.get("Content-Type") || "" }), resp };
}

// ---------------------------------------------------------------------------------------------- progress

// Progress of uploads and downloads: one bar under the toolbar, visible whatever else is shown.
function startTask(text, cancellable = false) {
  state.tasks += 1;
  const bar = $("progressBar");
  $("progress").hidden = false;
  $("cancelBtn").hidden = !cancellable;
  const t0 = performance.now();
  let lastText = text;
  const task = {
    update(fraction, msg) {
      if (fraction === null || fraction === undefined) bar.removeAttribute("value");
      else bar.value = Math.round(fraction * 100);
      if (msg) lastText = msg;
      const pct = fraction === null || fraction === undefined ? "" : ` · ${Math.round(fraction * 100)}%`;
      $("progressText").textContent = lastText + pct;
      document.body.dataset.progress = $("progressText").textContent;
    },
    tick() {
      const s = (performance.now() - t0) / 1000;
      if (!bar.hasAttribute("value")) $("progressText").textContent = `${lastText} ${s.toFixed(0)} s`;
    },
    done() {
      clearInterval(timer);
      state.tasks -= 1;
      if (state.tasks <= 0) { state.tasks = 0; $("progress").hidden = true; $("cancelBtn").hidden = true; }
    },
  };
  const timer = setInterval(() => task.tick(), 1000);
  task.update(null, text);
  announce(text);
  watchQueue();
  return task;
}

// ---------------------------------------------------------------------------------------------- UI bits

function showError(message) {
  $("errorText").textContent = message;
  $("errorBox").hidden = false;
}
function clearError() { $("errorBox").hidden = true; }

// A short message for screen readers (an aria-live region); the status bar shows the details.
function announce(text) {
  const box = $("announce");
  box.textContent = "";
  setTimeout(() => { box.textContent = text; }, 30);
  document.body.dataset.announced = text;
}

function setBusy(on, text = "Colourising…") {
  $("busy").hidden = !on;
  $("busyText").textContent = text;
  document.body.dataset.busy = on ? "1" : "0";
  if (on) watchQueue();
}

// While the page is busy or a download runs, ask the server where this photo's request waits (GET /api/queue)
// and show " · 2 ahead in the queue, about 12 s": after the busy text, or beside the progress bar's text.
// One watcher at a time; it stops when the page is idle.
let queueWatcher = null;
function watchQueue() {
  if (queueWatcher) return;
  const note = " · ";
  const active = () => document.body.dataset.busy === "1" || state.tasks > 0;
  const clear = () => {
    $("queueNote").textContent = "";
    $("busyText").textContent = $("busyText").textContent.split(note)[0];
  };
  queueWatcher = (async () => {
    try {
      while (active()) {
        await new Promise((done) => setTimeout(done, 800));
        const photo = state.photo;
        if (!photo || !photo.id || !active()) continue;
        let q;
        try { q = await (await fetch(`/api/queue?photo=${encodeURIComponent(photo.id)}`)).json(); } catch (_) { continue; }
        const n = q.position, place = n === 1 ? "next in the queue" : `${n - 1} ahead in the queue`;
        const text = n > 0 ? `${note}${place}, about ${Math.max(1, Math.round(q.eta_s))} s` : "";
        clear();
        if (state.tasks > 0) $("queueNote").textContent = text;
        else $("busyText").textContent += text;
        document.body.dataset.queuePosition = String(n);
      }
    } finally {
      clear();
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
  const n = state.hints.length;
  const parts = [p.name, `${p.width}×${p.height}`, `${n} hint${n === 1 ? "" : "s"}`];
  if (!p.id) parts.push("uploading: you can place hints already");
  if (extra) parts.push(extra);
  $("status").textContent = parts.join("  ·  ");
}

function swapUrl(key, blob) {
  if (state[key]) URL.revokeObjectURL(state[key]);
  state[key] = blob ? URL.createObjectURL(blob) : null;
  return state[key];
}

// What the main image shows: the result, or the grey input (toggle), or the local file while it uploads.
function shownUrl() {
  if ($("grayToggle").checked) return state.grayUrl || state.localUrl;
  return state.resultUrl || state.grayUrl || state.localUrl;
}

async function showImage() {
  const img = $("resultImg");
  const url = shownUrl();
  img.classList.toggle("pending", !state.resultUrl && !$("grayToggle").checked);
  if (!url || img.src === url) return;
  img.src = url;
  try { await img.decode(); } catch (_) { /* shown when it loads */ }
  updateSplit();
}

// The result's pixels, to read the model's own colour at a spot.
async function keepResultPixels(blob) {
  try {
    const bmp = await createImageBitmap(blob);
    const c = document.createElement("canvas");
    c.width = bmp.width; c.height = bmp.height;
    const g = c.getContext("2d", { willReadFrequently: true });
    g.drawImage(bmp, 0, 0);
    state.resultPixels = g.getImageData(0, 0, c.width, c.height);
  } catch (_) {
    state.resultPixels = null;
  }
}

// ---------------------------------------------------------------------------------------------- colour

function srgbToLinear(c) { return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; }
function linearToSrgb(c) { return c <= 0.0031308 ? 12.92 * c : 1.055 * c ** (1 / 2.4) - 0.055; }
const WHITE = [0.95047, 1.0, 1.08883];
function labF(t) { return t > 216 / 24389 ? Math.cbrt(t) : (24389 / 27 * t + 16) / 116; }
function labFinv(t) { return t ** 3 > 216 / 24389 ? t ** 3 : (116 * t - 16) / (24389 / 27); }

function rgbToLab([r, g, b]) {
  const [R, G, B] = [r, g, b].map((v) => srgbToLinear(v / 255));
  const X = 0.4124564 * R + 0.3575761 * G + 0.1804375 * B;
  const Y = 0.2126729 * R + 0.7151522 * G + 0.0721750 * B;
  const Z = 0.0193339 * R + 0.1191920 * G + 0.9503041 * B;
  const [fx, fy, fz] = [X / WHITE[0], Y / WHITE[1], Z / WHITE[2]].map(labF);
  return [116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)];
}

function labToHex([L, a, b]) {
  const fy = (L + 16) / 116, fx = fy + a / 500, fz = fy - b / 200;
  const [X, Y, Z] = [labFinv(fx) * WHITE[0], labFinv(fy) * WHITE[1], labFinv(fz) * WHITE[2]];
  const R = 3.2404542 * X - 1.5371385 * Y - 0.4985314 * Z;
  const G = -0.9692660 * X + 1.8760108 * Y + 0.0415560 * Z;
  const B = 0.0556434 * X - 0.2040259 * Y + 1.0572252 * Z;
  return "#" + [R, G, B].map((v) => Math.round(Math.min(1, Math.max(0, linearToSrgb(Math.max(0, v)))) * 255).toString(16).padStart(2, "0")).join("");
}

// The colour the current result has at photo pixel (x, y) (3x3 mean of the preview), written at a
// lightness kept within 40..80 so a dark or bright spot still shows its hue; null without a result.
function modelColourAt(x, y) {
  const px = state.resultPixels, p = state.photo;
  if (!px || !p) return null;
  const cx = Math.min(px.width - 1, Math.floor(((x + 0.5) / p.width) * px.width));
  const cy = Math.min(px.height - 1, Math.floor(((y + 0.5) / p.height) * px.height));
  const sum = [0, 0, 0];
  let n = 0;
  for (let j = Math.max(0, cy - 1); j <= Math.min(px.height - 1, cy + 1); j++) {
    for (let i = Math.max(0, cx - 1); i <= Math.min(px.width - 1, cx + 1); i++) {
      const o = (j * px.width + i) * 4;
      sum[0] += px.data[o]; sum[1] += px.data[o + 1]; sum[2] += px.data[o + 2]; n++;
    }
  }
  const [L, a, b] = rgbToLab(sum.map((v) => v / n));
  return labToHex([Math.min(80, Math.max(40, L)), a, b]);
}

// ---------------------------------------------------------------------------------------------- saving

function photoKey(p) { return `${STORE_PREFIX}${p.name}|${p.bytes}|${p.width}x${p.height}`; }

function saveHints() {
  const p = state.photo;
  if (!p || !p.width) return;
  const hints = state.hints.filter((h) => h.color);
  try {
    localStorage.setItem(photoKey(p), JSON.stringify({ hints, saved: Date.now() }));
    if (p.id) localStorage.setItem(LAST_KEY, JSON.stringify({ id: p.id, name: p.name, bytes: p.bytes, width: p.width, height: p.height }));
    pruneStore();
  } catch (_) { /* storage full or off: the hint file download still works */ }
}

function savedHints(p) {
  try {
    const rec = JSON.parse(localStorage.getItem(photoKey(p)) || "null");
    return rec && Array.isArray(rec.hints) ? rec.hints.filter((h) => h && typeof h.x === "number" && typeof h.y === "number" && typeof h.color === "string") : [];
  } catch (_) { return []; }
}

function pruneStore() {
  const keys = [];
  for (let i = 0; i < localStorage.length; i++) {
    const k = localStorage.key(i);
    if (k && k.startsWith(STORE_PREFIX)) keys.push(k);
  }
  if (keys.length <= STORE_MAX) return;
  const age = (k) => { try { return JSON.parse(localStorage.getItem(k)).saved || 0; } catch (_) { return 0; } };
  keys.sort((a, b) => age(a) - age(b)).slice(0, keys.length - STORE_MAX).forEach((k) => localStorage.removeItem(k));
}

// ---------------------------------------------------------------------------------------------- view

function refreshControls() {
  const have = !!state.photo, ready = have && !!state.photo.id;
  const coloured = state.hints.filter((h) => h.color).length;
  $("undoBtn").disabled = !have || state.history.length === 0;
  $("redoBtn").disabled = !have || state.future.length === 0;
  $("clearBtn").disabled = !have || state.hints.length === 0;
  $("grayToggle").disabled = !ready;
  $("downloadBtn").disabled = !ready;
  $("formatSelect").disabled = !ready;
  $("loadHintsBtn").disabled = !ready;
  $("doubtBtn").disabled = !ready;
  if (ready) {
    const q = state.photo.jpeg_quality || 92;
    $("formatSelect").options[1].textContent = `JPEG ${q}`;
    $("formatSelect").title = `Format of the full-resolution result: PNG (lossless) or JPEG at quality ${q}${state.photo.jpeg_quality ? ", the photo's own" : ""}`;
    $("downloadBtn").title = `Colourise at full resolution (${state.photo.width}×${state.photo.height}) and save`;
  }
  $("downloadHintsBtn").disabled = !ready || coloured === 0;
  $("hintCount").textContent = String(state.hints.length);
  $("noHints").hidden = state.hints.length > 0;
  $("dropZone").hidden = have;
  $("viewwrap").hidden = !have;
  $("viewbar").hidden = !have;
}

// Size the photo: fitted to the viewer, times the zoom.
function fitImage() {
  const p = state.photo, viewer = $("viewer"), img = $("resultImg");
  if (!p || $("viewwrap").hidden) return;
  // offsetWidth, not clientWidth: scrollbars come and go with the zoom, the fitted size must not.
  const availW = viewer.offsetWidth - 24, availH = viewer.offsetHeight - 24;
  if (availW <= 0 || availH <= 0) return;
  state.fit = Math.min(availW / p.width, availH / p.height);
  const scale = state.fit * state.zoom;
  img.style.width = `${Math.max(1, Math.round(p.width * scale))}px`;
  img.style.height = `${Math.max(1, Math.round(p.height * scale))}px`;
  $("frame").style.setProperty("--px", String(scale));  // screen px per photo px (rings' size)
  $("zoomText").textContent = `${Math.round(scale * 100)}%`;
  $("zoomText").title = `${Math.round(state.zoom * 100)}% of the fitted size`;
}

function maxZoom() { return Math.max(2, 8 / Math.max(state.fit || 1, 1e-6)); }

// Zoom to `z` (1 = fit) keeping the photo point under (clientX, clientY) where it is.
function setZoom(z, clientX, clientY) {
  if (!state.photo) return;
  const viewer = $("viewer"), img = $("resultImg");
  z = Math.min(maxZoom(), Math.max(1, z));
  const vr = viewer.getBoundingClientRect();
  if (clientX === undefined) { clientX = vr.left + vr.width / 2; clientY = vr.top + vr.height / 2; }
  const before = img.getBoundingClientRect();
  const fx = (clientX - before.left) / before.width, fy = (clientY - before.top) / before.height;
  state.zoom = z;
  fitImage();
  const after = img.getBoundingClientRect();
  viewer.scrollLeft += after.left + fx * after.width - clientX;
  viewer.scrollTop += after.top + fy * after.height - clientY;
  viewer.classList.toggle("zoomed", z > 1);
}

function updateSplit() {
  const v = +$("splitRange").value;
  const img = $("splitImg");
  const url = state.grayUrl || state.localUrl;
  img.hidden = v === 0 || !url;
  $("splitLine").hidden = v === 0 || v === 100;
  if (url && img.src !== url) img.src = url;
  img.style.clipPath = `inset(0 ${100 - v}% 0 0)`;
  $("splitLine").style.left = `${v}%`;
  $("splitRange").setAttribute("aria-valuetext", v === 0 ? "result only" : v === 100 ? "grey input only" : `grey input on the left ${v}%`);
}

function pct(v, n) { return `${((v + 0.5) / n) * 100}%`; }

function renderMarkers() {
  const box = $("markers");
  const focusedIndex = document.activeElement && document.activeElement.classList.contains("marker") ? +document.activeElement.dataset.index : -1;
  box.textContent = "";
  const list = $("hintList");
  list.textContent = "";
  if (!state.photo) return;
  const { width: W, height: H } = state.photo;
  state.hints.forEach((h, i) => {
    const m = document.createElement("button");
    m.className = "marker" + (i === state.selected ? " selected" : "") + (h.color ? "" : " waiting");
    m.style.left = pct(h.x, W);
    m.style.top = pct(h.y, H);
    if (h.color) m.style.setProperty("--c", h.color);
    const what = h.color ? h.color : "waiting for the model's colour";
    m.setAttribute("aria-label", `Hint ${i + 1}: ${what} at ${h.x}, ${h.y}. Arrow keys move it, Delete removes it.`);
    m.title = `Hint ${i + 1}: ${what} at (${h.x}, ${h.y})`;
    m.dataset.index = String(i);
    m.addEventListener("pointerdown", (ev) => startDrag(ev, i));
    m.addEventListener("focus", () => { if (state.selected !== i) select(i); });
    m.addEventListener("keydown", (ev) => markerKey(ev, i));
    box.appendChild(m);

    const li = document.createElement("li");
    li.className = i === state.selected ? "selected" : "";
    li.innerHTML = `<button class="pick"><span class="dot"></span><span class="where"></span></button><button class="del" title="Delete this hint">&times;</button>`;
    if (h.color) li.querySelector(".dot").style.setProperty("--c", h.color);
    li.querySelector(".where").textContent = `${h.color || "…"}  at ${h.x}, ${h.y}`;
    li.querySelector(".pick").setAttribute("aria-label", `Select hint ${i + 1}, ${what} at ${h.x}, ${h.y}`);
    li.querySelector(".del").setAttribute("aria-label", `Delete hint ${i + 1}`);
    li.querySelector(".pick").addEventListener("click", () => select(i));
    li.querySelector(".del").addEventListener("click", (ev) => { ev.stopPropagation(); deleteHint(i); });
    list.appendChild(li);
  });
  if (focusedIndex >= 0 && box.children[focusedIndex]) box.children[focusedIndex].focus({ preventScroll: true });
  refreshControls();
}

function renderEditor() {
  const h = state.hints[state.selected];
  $("editor").hidden = !h;
  $("panelHelp").hidden = !!h;
  if (!h) return;
  if (h.color) $("colorInput").value = h.color;
  $("colorHex").textContent = h.color || "waiting for the model's colour…";
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
  b.setAttribute("aria-label", title);
  b.dataset.color = color;
  b.innerHTML = `<span class="chip"></span>${label ? `<span class="label"></span>` : ""}`;
  b.querySelector(".chip").style.setProperty("--c", color);
  if (label) b.querySelector(".label").textContent = label;
  b.addEventListener("click", () => setColour(color, true));
  return b;
}

function renderPalette() {
  const box = $("palette");
  for (const [c, name] of PALETTE) box.appendChild(swatch(c, "", "paint", `${name} ${c}`));
}

// ---------------------------------------------------------------------------------------------- hints

function snapshot() { return state.hints.map((h) => ({ ...h })); }
function sendable() { return state.hints.filter((h) => h.color).map(({ x, y, color }) => ({ x, y, color })); }

function pushHistory() {
  state.history.push(snapshot());
  if (state.history.length > 200) state.history.shift();
  state.future = [];
}

function changed({ suggest = false } = {}) {
  renderMarkers();
  renderEditor();
  setStatus();
  saveHints();
  scheduleRender();
  if (suggest) loadSuggestions();
  if (state.doubtOn) loadDoubt();
}

function select(i) {
  state.selected = i;
  state.editOpen = false;
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
  // The model's own colour there: placing a hint changes nothing until its colour is picked.
  const color = modelColourAt(x, y);
  state.hints.push({ x, y, color });
  state.selected = state.hints.length - 1;
  state.editOpen = false;
  changed({ suggest: true });
  announce(`Hint ${state.hints.length} placed at ${x}, ${y}${color ? `, colour ${color}` : "; it takes the model's colour when the photo is ready"}.`);
}

function deleteHint(i) {
  if (i < 0 || i >= state.hints.length) return;
  pushHistory();
  state.hints.splice(i, 1);
  state.selected = -1;
  changed();
  announce(`Hint ${i + 1} deleted. Undo brings it back.`);
  $("viewer").focus({ preventScroll: true });
}

function setColour(color, commit) {
  const h = state.hints[state.selected];
  if (!h) return;
  color = color.toLowerCase();
  if (!state.editOpen) { pushHistory(); state.editOpen = !commit; }
  if (commit) state.editOpen = false;
  h.color = color;
  if (commit) remember(color);
  changed();
}

function remember(color) {
  state.recent = [color, ...state.recent.filter((c) => c !== color)].slice(0, 8);
  renderRecent();
}

function undo() {
  if (!state.history.length) return;
  state.future.push(snapshot());
  state.hints = state.history.pop();
  if (state.selected >= state.hints.length) state.selected = -1;
  state.editOpen = false;
  changed({ suggest: state.selected >= 0 });
  announce(`Undone: ${state.hints.length} hint${state.hints.length === 1 ? "" : "s"}.`);
}

function redo() {
  if (!state.future.length) return;
  state.history.push(snapshot());
  state.hints = state.future.pop();
  if (state.selected >= state.hints.length) state.selected = -1;
  state.editOpen = false;
  changed({ suggest: state.selected >= 0 });
  announce(`Redone: ${state.hints.length} hint${state.hints.length === 1 ? "" : "s"}.`);
}

function clearHints() {
  if (!state.hints.length) return;
  const n = state.hints.length;
  pushHistory();
  state.hints = [];
  state.selected = -1;
  changed();
  announce(`${n} hint${n === 1 ? "" : "s"} cleared. Undo (Ctrl+Z) brings them back.`);
  setStatus(`cleared ${n} hint${n === 1 ? "" : "s"}: Undo brings them back`);
}

// Photo pixel (column, row) under a pointer event, or null outside the image (zoom and scroll included:
// the image's box on screen is measured, whatever its size and position).
function photoPixel(ev) {
  const r = $("resultImg").getBoundingClientRect();
  const fx = (ev.clientX - r.left) / r.width, fy = (ev.clientY - r.top) / r.height;
  if (!(fx >= 0 && fx < 1 && fy >= 0 && fy < 1)) return null;
  const { width: W, height: H } = state.photo;
  return { x: Math.min(W - 1, Math.floor(fx * W)), y: Math.min(H - 1, Math.floor(fy * H)) };
}

function startDrag(ev, i) {
  if (ev.button !== 0 || panning()) return;
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
    marker.style.left = pct(p.x, state.photo.width);
    marker.style.top = pct(p.y, state.photo.height);
  };
  const up = () => {
    marker.removeEventListener("pointermove", move);
    marker.removeEventListener("pointerup", up);
    marker.removeEventListener("pointercancel", up);
    if (moved) {
      state.history.push(before);
      state.future = [];
      changed({ suggest: true });
    }
  };
  marker.addEventListener("pointermove", move);
  marker.addEventListener("pointerup", up);
  marker.addEventListener("pointercancel", up);
}

function keyStep(ev) {
  const p = state.photo;
  const step = Math.max(1, Math.round(Math.max(p.width, p.height) / 100));
  return ev.shiftKey ? step * 10 : step;
}

const ARROWS = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };

// Arrow keys on a focused marker move its hint (one undo step per run of moves).
function markerKey(ev, i) {
  const d = ARROWS[ev.key];
  if (!d || !state.photo) return;
  ev.preventDefault();
  ev.stopPropagation();
  const h = state.hints[i], s = keyStep(ev);
  if (!state.editOpen) { pushHistory(); state.editOpen = true; }
  h.x = Math.min(state.photo.width - 1, Math.max(0, h.x + d[0] * s));
  h.y = Math.min(state.photo.height - 1, Math.max(0, h.y + d[1] * s));
  changed();
  announce(`Hint ${i + 1} at ${h.x}, ${h.y}.`);
}

// Arrow keys on the focused photo move a crosshair; Enter places a hint there.
function viewerKey(ev) {
  if (!state.photo || ev.target !== $("viewer")) return;
  const p = state.photo;
  if (!state.cursor) state.cursor = { x: Math.floor(p.width / 2), y: Math.floor(p.height / 2) };
  const d = ARROWS[ev.key];
  if (d) {
    ev.preventDefault();
    const s = keyStep(ev);
    state.cursor.x = Math.min(p.width - 1, Math.max(0, state.cursor.x + d[0] * s));
    state.cursor.y = Math.min(p.height - 1, Math.max(0, state.cursor.y + d[1] * s));
    showCrosshair();
    announce(`Crosshair at ${state.cursor.x}, ${state.cursor.y}.`);
  } else if (ev.key === "Enter") {
    ev.preventDefault();
    addHint(state.cursor.x, state.cursor.y);
  }
}

function showCrosshair() {
  const c = $("crosshair");
  if (!state.photo || !state.cursor || document.activeElement !== $("viewer")) { c.hidden = true; return; }
  c.hidden = false;
  c.style.left = pct(state.cursor.x, state.photo.width);
  c.style.top = pct(state.cursor.y, state.photo.height);
  c.scrollIntoView({ block: "nearest", inline: "nearest" });
}

// Hints placed before the first result (while the photo uploads) take the model's colour from it.
function fillWaitingColours() {
  let filled = 0;
  for (const h of state.hints) {
    if (h.color) continue;
    h.color = modelColourAt(h.x, h.y);
    if (h.color) filled++;
  }
  if (filled) changed({ suggest: state.selected >= 0 });
}

// ---------------------------------------------------------------------------------------------- panning

function panning() { return state.panMode || state.spaceDown; }

function wirePanning() {
  const viewer = $("viewer");
  viewer.addEventListener("pointerdown", (ev) => {
    if (!(ev.button === 1 || (ev.button === 0 && panning()))) return;
    ev.preventDefault();
    viewer.setPointerCapture(ev.pointerId);
    viewer.classList.add("panning");
    let lx = ev.clientX, ly = ev.clientY;
    const move = (e) => { viewer.scrollLeft -= e.clientX - lx; viewer.scrollTop -= e.clientY - ly; lx = e.clientX; ly = e.clientY; };
    const up = () => {
      viewer.classList.remove("panning");
      viewer.removeEventListener("pointermove", move);
      viewer.removeEventListener("pointerup", up);
      viewer.removeEventListener("pointercancel", up);
    };
    viewer.addEventListener("pointermove", move);
    viewer.addEventListener("pointerup", up);
    viewer.addEventListener("pointercancel", up);
  }, true);
  viewer.addEventListener("wheel", (ev) => {
    if (!state.photo) return;
    ev.preventDefault();
    setZoom(state.zoom * Math.exp(-ev.deltaY * (ev.deltaMode === 1 ? 0.05 : 0.0015)), ev.clientX, ev.clientY);
  }, { passive: false });
}

function setPanMode(on) {
  state.panMode = on;
  $("panBtn").setAttribute("aria-pressed", on ? "true" : "false");
  $("viewer").classList.toggle("panmode", on);
}

// ---------------------------------------------------------------------------------------------- server work

function scheduleRender() {
  if (!state.photo || !state.photo.id) return;
  clearTimeout(state.renderTimer);
  setBusy(true);
  state.renderTimer = setTimeout(() => { state.renderTimer = null; render(); }, DEBOUNCE_MS);
}

// Busy while a preview is in flight or waiting for its debounce.
function settleBusy() { setBusy(state.inFlight || state.renderTimer !== null); }

async function render() {
  if (!state.photo || !state.photo.id) return;
  if (state.inFlight) { state.pending = true; return; }
  state.inFlight = true;
  const hints = sendable();
  const seq = state.photoSeq;
  const t0 = performance.now();
  let retry = false;
  try {
    const resp = await photoApi("/colorize", { method: "POST", json: hints });
    const blob = await resp.blob();
    if (seq !== state.photoSeq) return;  // another photo was opened meanwhile
    swapUrl("resultUrl", blob);
    await keepResultPixels(blob);
    await showImage();
    const img = $("resultImg");
    img.dataset.hints = JSON.stringify(hints);
    state.renders += 1;
    state.photoRenders += 1;
    img.dataset.renders = String(state.renders);
    clearError();
    const server = resp.headers.get("X-Elapsed-Ms");
    setStatus(`updated in ${Math.round(performance.now() - t0)} ms${server ? ` (model ${server} ms)` : ""}`);
    if (state.photoRenders === 1) announce(`${state.photo.name} colourised${state.hints.length ? ` with ${state.hints.length} hint${state.hints.length === 1 ? "" : "s"}` : ""}.`);
    fillWaitingColours();
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
  if (!state.photo.id) { box.innerHTML = `<span class="muted small">after the upload…</span>`; return; }
  const seq = ++state.suggestSeq;
  box.innerHTML = `<span class="muted small">asking the models…</span>`;
  const others = state.hints.filter((o, j) => j !== i && o.color).map(({ x, y, color }) => ({ x, y, color }));
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

// "Where would a hint help?": dashed rings on the spots the server finds the models least sure of.
async function loadDoubt() {
  const box = $("doubtRings");
  if (!state.doubtOn || !state.photo || !state.photo.id) { box.textContent = ""; $("doubtNote").hidden = true; fitImage(); return; }
  const seq = ++state.doubtSeq;
  try {
    const resp = await photoApi("/doubt", { method: "POST", json: sendable() });
    const data = await resp.json();
    if (seq !== state.doubtSeq || !state.doubtOn) return;
    box.textContent = "";
    const { width: W, height: H } = state.photo;
    data.spots.forEach((s, k) => {
      const b = document.createElement("button");
      b.className = "doubt";
      b.style.left = pct(s.x, W);
      b.style.top = pct(s.y, H);
      b.style.setProperty("--r", String(s.radius));
      const label = `Suggested spot ${k + 1} at ${s.x}, ${s.y}: the model is unsure here. Place a hint.`;
      b.title = label;
      b.setAttribute("aria-label", label);
      b.dataset.x = String(s.x);
      b.dataset.y = String(s.y);
      b.addEventListener("click", (ev) => { ev.stopPropagation(); addHint(s.x, s.y); });
      box.appendChild(b);
    });
    const note = data.spots.length
      ? `Dashed rings: ${data.spots.length} spot${data.spots.length === 1 ? "" : "s"} where a hint would help most (${data.label}). Click one to place a hint.`
      : data.source === "none" ? "This server has no way to tell where the model is unsure." : "No spot stands out: the models are about equally sure everywhere.";
    $("doubtNote").textContent = note;
    if ($("doubtNote").hidden) { $("doubtNote").hidden = false; fitImage(); }
    announce(note);
  } catch (e) {
    if (seq === state.doubtSeq && e.status !== 429) showError(e.message);
  }
}

function setDoubt(on) {
  state.doubtOn = on;
  $("doubtBtn").setAttribute("aria-pressed", on ? "true" : "false");
  loadDoubt();
}

// Show a photo the server has (after an upload, or found again after a reload).
async function showServerPhoto(info, file, bytes) {
  const seq = state.photoSeq;
  const p = state.photo;
  if (p && p.width && (p.width !== info.width || p.height !== info.height)) {
    // The browser and the server read the photo at different sizes (orientation): scale the hints.
    for (const h of state.hints) {
      h.x = Math.min(info.width - 1, Math.floor((h.x / p.width) * info.width));
      h.y = Math.min(info.height - 1, Math.floor((h.y / p.height) * info.height));
    }
  }
  state.photo = { ...info, bytes };
  state.file = file;
  const gray = await api(`/api/photos/${info.id}/gray`);
  const blob = await gray.blob();
  if (seq !== state.photoSeq) return;
  swapUrl("grayUrl", blob);
  refreshControls();
  fitImage();
  await showImage();
  changed();
}

// Hints saved for this photo, with the ones placed while it uploaded after them.
function restoreHints(p) {
  const saved = savedHints(p);
  const placed = state.hints.filter((h) => !saved.some((s) => s.x === h.x && s.y === h.y));
  state.hints = [...saved.map((h) => ({ x: h.x, y: h.y, color: h.color })), ...placed];
  return saved.length;
}

async function openPhoto(file) {
  if (!file) return;
  clearError();
  if (state.upload) state.upload.abort();
  const before = state.photo;
  const leaving = before && state.hints.some((h) => h.color) ? before.name : null;
  saveHints();
  state.photoSeq += 1;
  const seq = state.photoSeq;
  // Start from the file itself, shown at once (when the browser can decode it): hints can be placed
  // while it uploads, in its own pixels.
  state.hints = [];
  state.history = [];
  state.future = [];
  state.selected = -1;
  state.cursor = null;
  state.zoom = 1;
  swapUrl("resultUrl", null);
  swapUrl("grayUrl", null);
  state.resultPixels = null;
  state.photoRenders = 0;
  $("resultImg").dataset.hints = "[]";
  $("resultImg").removeAttribute("src");
  $("doubtRings").textContent = "";
  swapUrl("localUrl", file);
  let local = null;
  try {
    const probe = new Image();
    probe.src = state.localUrl;
    await probe.decode();
    local = { width: probe.naturalWidth, height: probe.naturalHeight };
  } catch (_) { /* a format this browser cannot show (TIFF): wait for the server's grey image */ }
  if (seq !== state.photoSeq) return;
  state.photo = { id: null, name: file.name, bytes: file.size, width: local ? local.width : 0, height: local ? local.height : 0 };
  state.file = file;
  const restoredLocal = local ? restoreHints(state.photo) : 0;
  refreshControls();
  fitImage();
  if (local) await showImage();
  renderMarkers();
  renderEditor();
  setStatus();
  if (leaving) announce(`The hints of ${leaving} are kept in this browser; open it again to continue with them.`);
  try {
    const info = await uploadFile(file);
    if (seq !== state.photoSeq) return;
    const restored = local ? restoredLocal : restoreHints({ name: file.name, bytes: file.size, width: info.width, height: info.height });
    await showServerPhoto(info, file, file.size);
    if (seq !== state.photoSeq) return;
    swapUrl("localUrl", null);
    const msg = `Opened ${file.name}, ${info.width}×${info.height}` + (restored ? `; restored ${restored} saved hint${restored === 1 ? "" : "s"}.` : ".");
    announce(msg);
    if (restored) setStatus(`restored ${restored} saved hint${restored === 1 ? "" : "s"}`);
  } catch (e) {
    if (seq !== state.photoSeq) return;
    setBusy(false);
    showError(e.message);
    // Back to the photo that was open (its hints are saved), or to the empty page.
    saveHints();
    state.photo = null;
    swapUrl("localUrl", null);
    state.hints = [];
    if (before && before.id) {
      state.photoSeq += 1;
      try {
        const info = await (await api(`/api/photos/${before.id}`)).json();
        restoreHints({ ...before });
        await showServerPhoto(info, null, before.bytes);
        return;
      } catch (_) { /* gone too */ }
    }
    refreshControls();
    renderMarkers();
    renderEditor();
    setStatus();
  }
}

// After a reload: the photo this browser last worked on, if the server still has it, with its hints.
async function reopenLast() {
  let last;
  try { last = JSON.parse(localStorage.getItem(LAST_KEY) || "null"); } catch (_) { return; }
  if (!last || !last.id) return;
  let info;
  try {
    info = await (await fetch(`/api/photos/${encodeURIComponent(last.id)}`)).json();
  } catch (_) { return; }
  if (!info || info.id !== last.id || info.width !== last.width || info.height !== last.height || state.photo) return;
  state.photoSeq += 1;
  state.hints = [];
  const restored = restoreHints(last);
  await showServerPhoto(info, null, last.bytes);
  announce(`Reopened ${info.name} with ${restored} saved hint${restored === 1 ? "" : "s"}.`);
  setStatus(`reopened with ${restored} saved hint${restored === 1 ? "" : "s"}`);
}

function downloadBlob(blob, name) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 60000);
}

async function download(kind) {
  if (!state.photo || !state.photo.id) return;
  clearError();
  const isImage = kind === "image";
  const { width, height } = state.photo;
  const format = $("formatSelect").value;
  const task = startTask(isImage ? `Colourising ${width}×${height} at full resolution…` : "Preparing the hint file…");
  try {
    const { blob, resp } = await fetchWithProgress(
      isImage ? `/full?format=${format}` : "/hints",
      { method: "POST", json: sendable() },
      (got, total) => task.update(total ? got / total : null, `Downloading ${fmtBytes(got)}${total ? ` of ${fmtBytes(total)}` : ""}`),
      () => task.update(null, "Downloading…"),
    );
    const cd = resp.headers.get("Content-Disposition") || "";
    const m = /filename="([^"]+)"/.exec(cd);
    const name = m ? m[1] : isImage ? `colour.${format === "png" ? "png" : "jpg"}` : "hints.json";
    downloadBlob(blob, name);
    document.body.dataset.lastDownload = name;
    setStatus(`saved ${name} (${fmtBytes(blob.size)})`);
    announce(`Saved ${name}, ${fmtBytes(blob.size)}.`);
  } catch (e) {
    showError(e.message);
  } finally {
    task.done();
  }
}

async function loadHintFile(file) {
  if (!file || !state.photo || !state.photo.id) { if (file) showError("open a photo first, then load its hints"); return; }
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
    announce(`Loaded ${hints.length} hint${hints.length === 1 ? "" : "s"} from ${file.name}. Undo brings back the earlier ones.`);
  } catch (e) {
    showError(e.message.startsWith("hints:") ? `${file.name}: ${e.message.slice(7)}` : e.message);
  }
}

// ---------------------------------------------------------------------------------------------- wiring

function wire() {
  $("openBtn").addEventListener("click", () => $("fileInput").click());
  $("chooseBtn").addEventListener("click", () => $("fileInput").click());
  $("loadHintsBtn").addEventListener("click", () => $("hintsInput").click());
  $("fileInput").addEventListener("change", (ev) => { const f = ev.target.files[0]; ev.target.value = ""; openPhoto(f); });
  $("hintsInput").addEventListener("change", (ev) => { const f = ev.target.files[0]; ev.target.value = ""; loadHintFile(f); });
  $("cancelBtn").addEventListener("click", () => { if (state.upload) state.upload.abort(); });

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
    if (!state.photo || !state.photo.width || panning()) return;
    const p = photoPixel(ev);
    if (p) { state.cursor = { ...p }; addHint(p.x, p.y); }
  });
  wirePanning();
  $("viewer").addEventListener("keydown", viewerKey);
  $("viewer").addEventListener("focus", showCrosshair);
  $("viewer").addEventListener("blur", () => { $("crosshair").hidden = true; });

  $("colorInput").addEventListener("input", (ev) => setColour(ev.target.value, false));
  $("colorInput").addEventListener("change", (ev) => setColour(ev.target.value, true));
  $("deleteHintBtn").addEventListener("click", () => deleteHint(state.selected));
  $("undoBtn").addEventListener("click", undo);
  $("redoBtn").addEventListener("click", redo);
  $("clearBtn").addEventListener("click", clearHints);
  $("grayToggle").addEventListener("change", showImage);
  $("splitRange").addEventListener("input", updateSplit);
  $("zoomInBtn").addEventListener("click", () => setZoom(state.zoom * 1.5));
  $("zoomOutBtn").addEventListener("click", () => setZoom(state.zoom / 1.5));
  $("fitBtn").addEventListener("click", () => setZoom(1));
  $("panBtn").addEventListener("click", () => setPanMode(!state.panMode));
  $("doubtBtn").addEventListener("click", () => setDoubt(!state.doubtOn));
  $("downloadBtn").addEventListener("click", () => download("image"));
  $("downloadHintsBtn").addEventListener("click", () => download("hints"));
  $("errorClose").addEventListener("click", clearError);
  window.addEventListener("resize", fitImage);

  window.addEventListener("keyup", (ev) => {
    if (ev.key === " ") { state.spaceDown = false; $("viewer").classList.remove("spacepan"); }
    if (ARROWS[ev.key]) state.editOpen = false;  // a run of keyboard moves ends: the next is a new undo step
  });
  window.addEventListener("keydown", (ev) => {
    const t = ev.target;
    const typing = (t instanceof HTMLInputElement && !["checkbox", "range"].includes(t.type)) || t instanceof HTMLSelectElement;
    if (typing) return;
    const mod = ev.ctrlKey || ev.metaKey, key = ev.key.toLowerCase();
    if (mod && ((key === "z" && ev.shiftKey) || key === "y")) { ev.preventDefault(); redo(); }
    else if (mod && key === "z") { ev.preventDefault(); undo(); }
    else if (mod) return;
    else if ((ev.key === "Delete" || ev.key === "Backspace") && state.selected >= 0) { ev.preventDefault(); deleteHint(state.selected); }
    else if (ev.key === "Escape") select(-1);
    else if (ev.key === " " && !(t instanceof HTMLButtonElement || t instanceof HTMLInputElement || t instanceof HTMLAnchorElement || t.tagName === "SUMMARY")) { ev.preventDefault(); state.spaceDown = true; $("viewer").classList.add("spacepan"); }
    else if (!state.photo || t instanceof HTMLInputElement) return;
    else if (key === "g") { $("grayToggle").checked = !$("grayToggle").checked; showImage(); }
    else if (ev.key === "+" || ev.key === "=") { ev.preventDefault(); setZoom(state.zoom * 1.5); }
    else if (ev.key === "-") { ev.preventDefault(); setZoom(state.zoom / 1.5); }
    else if (ev.key === "0") { ev.preventDefault(); setZoom(1); }
  });
}

async function start() {
  wire();
  renderPalette();
  refreshControls();
  try {
    const resp = await api("/api/info");
    state.info = await resp.json();
    const i = state.info;
    $("modelBadge").textContent = i.starts_from_auto
      ? `${i.auto_model} + hints by ${i.model} · ${i.working_size} px`
      : `model ${i.model} · ${i.working_size} px`;
    if (i.starts_from_auto) $("noHints").textContent = `No hints yet: this is the ${i.auto_model} model's automatic result; your hints refine it.`;
    $("limitsText").textContent = `JPEG, PNG, WebP, TIFF or BMP · up to ${fmtBytes(i.limits.max_upload_bytes)} and ${+(i.limits.max_pixels / 1e6).toPrecision(3)} megapixels`;
    if (!i.uses_hints) $("panelHelp").textContent = `This server's model (${i.model}) colourises automatically and cannot take hints.`;
    await reopenLast();
  } catch (e) {
    showError(e.message);
  }
  document.body.dataset.started = "1";
}

start();
