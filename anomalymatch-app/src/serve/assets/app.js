// The labelling page: a gallery of the current candidates, one image large on a canvas with
// display controls applied here in the browser, answers by button or key, and the server's
// jobs (train, score, next batch) with their progress from the event stream.
"use strict";

const $ = (id) => document.getElementById(id);
const token = new URLSearchParams(location.search).get("token") || "";
const state = { items: [], current: -1, sort: "anomalous", original: null, pan: [0, 0], bands: 0 };

async function api(path, options = {}) {
  const headers = Object.assign({ "X-Token": token }, options.headers || {});
  // Writes are JSON, body or not: the server refuses any other kind (another site's form).
  if ((options.method || "GET") !== "GET") headers["Content-Type"] = "application/json";
  const r = await fetch(path, Object.assign({}, options, { headers }));
  const text = await r.text();
  let body = null;
  try { body = JSON.parse(text); } catch (_) { body = { error: text }; }
  if (!r.ok) throw new Error((body && body.error) || r.statusText);
  return body;
}

function imageUrl(name, size) {
  return `/api/image?size=${size}&name=${encodeURIComponent(name)}${size === "large" ? bandsParam() : ""}`;
}

// ---- bands: R/G/B switches for three-band images (applied here), one switch per band for
// any other count (the server renders the false colour of the bands left on) ----------------

const rgbIds = ["ch-r", "ch-g", "ch-b"];

function bandBoxes() {
  return Array.from(document.querySelectorAll(".channels input.band"));
}

function bandsParam() {
  const boxes = bandBoxes();
  if (!boxes.length || boxes.every((b) => b.checked)) return "";
  return "&bands=" + boxes.filter((b) => b.checked).map((b) => b.dataset.band).join(",");
}

function setupBands(count) {
  state.bands = count;
  if (count === 3) return;
  const span = document.querySelector(".channels");
  span.innerHTML = "";
  for (let k = 0; k < count; k++) {
    const label = document.createElement("label");
    label.className = "inline";
    label.title = `band ${k + 1} of ${count}, shortest wavelength first`;
    const box = document.createElement("input");
    box.type = "checkbox";
    box.className = "band";
    box.id = `band-${k}`;
    box.dataset.band = k;
    box.checked = true;
    box.addEventListener("change", () => select(state.current, false));
    label.append(box, ` ${k + 1}`);
    span.appendChild(label);
  }
}

// ---- counts, status and jobs ------------------------------------------------------------

function showCounts(c) {
  $("count-anomaly").textContent = c.anomaly;
  $("count-normal").textContent = c.normal;
  $("count-remembered").textContent = c.remembered;
}

async function loadStatus() {
  const s = await api("/api/status");
  showCounts(s.counts);
  if (!state.bands) setupBands(s.bands);
  const sort = $("sort");
  if (!sort.dataset.filled) {
    for (const name of s.strategies) {
      const o = document.createElement("option");
      o.value = "strategy:" + name;
      o.textContent = "strategy: " + name + (name === s.query ? " (configured)" : "");
      sort.appendChild(o);
    }
    sort.dataset.filled = "1";
  }
  if (s.mode === "file") {
    $("next").disabled = true;
    $("next").title = "candidates come from a score run's file";
  }
  showProgress(s.progress);
  return s;
}

async function loadModels() {
  const m = await api("/api/models");
  const sel = $("models");
  sel.innerHTML = "";
  for (const name of m.models) {
    const o = document.createElement("option");
    o.textContent = name;
    sel.appendChild(o);
  }
  if (!m.models.length) {
    const o = document.createElement("option");
    o.textContent = "no saved models";
    o.value = "";
    sel.appendChild(o);
  }
  $("load-model").disabled = m.models.length === 0;
}

function fmtSeconds(s) {
  if (s == null || !isFinite(s)) return "";
  if (s < 60) return `${s.toFixed(0)} s`;
  return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

let lastJobState = "";
function showProgress(p) {
  if (!p || !p.job) return;
  const pct = p.total ? (100 * p.done) / p.total : p.state === "running" ? 0 : 100;
  $("bar").style.width = pct + "%";
  $("bar").style.background = p.state === "failed" ? "#b62324" : "#1f6feb";
  const parts = [`${p.job}: ${p.state}`];
  if (p.total) parts.push(`${p.done}/${p.total}`);
  if (p.loss != null) parts.push(`loss ${p.loss.toFixed(3)}`);
  if (p.mask_ratio != null) parts.push(`mask ${(100 * p.mask_ratio).toFixed(0)}%`);
  if (p.rate != null && p.state === "running") parts.push(`${p.rate.toFixed(p.rate < 10 ? 2 : 0)}/s`);
  if (p.eta_s != null && p.state === "running") parts.push(`ETA ${fmtSeconds(p.eta_s)}`);
  if (p.message) parts.push(p.message);
  $("job-text").textContent = parts.join(" · ");
  const running = p.state === "running";
  for (const id of ["train", "score", "save-model", "load-model"]) $(id).disabled = running;
  if (!$("next").title.includes("file")) $("next").disabled = running;
  const key = p.job + p.state;
  if (lastJobState.endsWith("running") && !running) {
    loadCandidates();
    loadStatus();
  }
  lastJobState = key;
}

function listen() {
  const events = new EventSource("/api/events?token=" + encodeURIComponent(token));
  events.onmessage = (e) => showProgress(JSON.parse(e.data));
}

async function job(path, body) {
  try {
    await api(path, { method: "POST", body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    $("job-text").textContent = e.message;
  }
}

// ---- gallery ------------------------------------------------------------------------------

async function loadCandidates() {
  const keep = state.items[state.current] && state.items[state.current].name;
  let data;
  try {
    data = await api(`/api/candidates?sort=${encodeURIComponent(state.sort)}&limit=1000`);
  } catch (e) {
    $("gallery-info").textContent = e.message;
    return;
  }
  state.items = data.items;
  $("gallery-info").textContent = `${data.items.length} of ${data.total} candidates`;
  renderGallery();
  const at = state.items.findIndex((i) => i.name === keep);
  select(at >= 0 ? at : state.items.length ? 0 : -1, false);
}

function tileLabel(tile, item) {
  tile.dataset.label = item.label || "";
  tile.querySelector(".badge").textContent = item.label || "";
  tile.querySelector(".star").textContent = item.remembered ? "★" : "";
}

function renderGallery() {
  const g = $("gallery");
  g.innerHTML = "";
  const started = performance.now();
  let pending = 0;
  const frag = document.createDocumentFragment();
  state.items.forEach((item, i) => {
    const tile = document.createElement("div");
    tile.className = "tile";
    tile.dataset.name = item.name;
    tile.title = item.name;
    const img = document.createElement("img");
    img.alt = item.name;
    img.decoding = "async";
    if (i >= 150) img.loading = "lazy";
    // The first 100 thumbnails being loaded marks the gallery as on screen (the browser test
    // reads the time).
    if (i < 100) {
      pending++;
      const done = () => {
        if (--pending === 0 && window.galleryReadyMs === undefined) {
          window.galleryReadyMs = performance.now();
          window.galleryRenderMs = performance.now() - started;
        }
      };
      img.onload = done;
      img.onerror = done;
    }
    img.src = imageUrl(item.name, "thumb");
    const meta = document.createElement("div");
    meta.className = "meta";
    meta.innerHTML = `<span class="score"></span><span class="badge"></span>`;
    meta.querySelector(".score").textContent = item.score == null ? "–" : item.score.toFixed(3);
    const star = document.createElement("span");
    star.className = "star";
    tile.append(img, meta, star);
    tileLabel(tile, item);
    tile.onclick = () => select(i, true);
    frag.appendChild(tile);
  });
  g.appendChild(frag);
  window.galleryTiles = state.items.length;
}

function tileAt(i) {
  return $("gallery").children[i];
}

function select(i, scroll) {
  const old = tileAt(state.current);
  if (old) old.classList.remove("current");
  state.current = i;
  const item = state.items[i];
  if (!item) {
    $("view-name").textContent = "no candidates yet";
    $("view-score").textContent = "";
    return;
  }
  const tile = tileAt(i);
  tile.classList.add("current");
  if (scroll !== false) tile.scrollIntoView({ block: "nearest" });
  $("view-name").textContent = item.name;
  $("view-score").textContent = item.score == null ? "not scored" : `score ${item.score.toFixed(4)}`;
  const img = new Image();
  img.onload = () => {
    if (state.items[state.current] !== item) return;
    const c = document.createElement("canvas");
    c.width = img.naturalWidth;
    c.height = img.naturalHeight;
    const cx = c.getContext("2d");
    cx.drawImage(img, 0, 0);
    state.original = cx.getImageData(0, 0, c.width, c.height);
    render();
  };
  img.src = imageUrl(item.name, "large");
}

function move(step) {
  if (!state.items.length) return;
  select(Math.min(state.items.length - 1, Math.max(0, state.current + step)), true);
}

// ---- answers ------------------------------------------------------------------------------

let inFlight = 0;
function saveState(text, cls) {
  const s = $("save-state");
  s.textContent = text;
  s.className = cls;
}

async function answer(kind) {
  const item = state.items[state.current];
  if (!item) return;
  const index = state.current;
  if (kind !== "skip") {
    inFlight++;
    saveState(`saving ${item.name}…`, "pending");
    try {
      const r = await api("/api/label", {
        method: "POST",
        body: JSON.stringify({ name: item.name, label: kind }),
      });
      if (kind === "remember") item.remembered = true;
      else item.label = kind;
      const tile = tileAt(index);
      if (tile && tile.dataset.name === item.name) tileLabel(tile, item);
      showCounts(r.counts);
      inFlight--;
      if (!inFlight) saveState(`saved ${item.name}: ${kind}`, "saved");
    } catch (e) {
      inFlight--;
      saveState(`NOT saved (${item.name}): ${e.message}`, "error");
      return;
    }
  }
  if (kind !== "remember" && state.current === index) move(1);
}

// ---- the large image: display controls on a canvas -----------------------------------------

function settings() {
  return {
    zoom: +$("zoom").value,
    brightness: +$("brightness").value,
    contrast: +$("contrast").value,
    stretch: $("stretch").value,
    unsharp: +$("unsharp").value,
    invert: $("invert").checked,
    channels: rgbIds.map((id) => ($(id) ? $(id).checked : true)),
  };
}

const STRETCH = {
  linear: (v) => v,
  asinh: (v) => Math.asinh(10 * v) / Math.asinh(10),
  log: (v) => Math.log1p(100 * v) / Math.log1p(100),
  sqrt: (v) => Math.sqrt(v),
};

// A 3x3 box blur of one plane, for the unsharp mask.
function blur(plane, w, h) {
  const out = new Float32Array(plane.length);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let sum = 0, n = 0;
      for (let dy = -1; dy <= 1; dy++) {
        const yy = y + dy;
        if (yy < 0 || yy >= h) continue;
        for (let dx = -1; dx <= 1; dx++) {
          const xx = x + dx;
          if (xx < 0 || xx >= w) continue;
          sum += plane[yy * w + xx];
          n++;
        }
      }
      out[y * w + x] = sum / n;
    }
  }
  return out;
}

function process(src, s) {
  const { width: w, height: h, data } = src;
  const out = new ImageData(w, h);
  const f = STRETCH[s.stretch] || STRETCH.linear;
  const lut = new Float32Array(256);
  for (let i = 0; i < 256; i++) lut[i] = f(i / 255);
  for (let c = 0; c < 3; c++) {
    let plane = new Float32Array(w * h);
    for (let p = 0; p < w * h; p++) plane[p] = lut[data[4 * p + c]];
    if (s.unsharp > 0) {
      const b = blur(plane, w, h);
      for (let p = 0; p < plane.length; p++) plane[p] += s.unsharp * (plane[p] - b[p]);
    }
    for (let p = 0; p < w * h; p++) {
      let v = (plane[p] - 0.5) * s.contrast + 0.5 + s.brightness;
      if (s.invert) v = 1 - v;
      if (!s.channels[c]) v = 0;
      out.data[4 * p + c] = Math.max(0, Math.min(255, Math.round(v * 255)));
    }
  }
  for (let p = 0; p < w * h; p++) out.data[4 * p + 3] = 255;
  return out;
}

function render() {
  if (!state.original) return;
  const s = settings();
  $("zoom-out").textContent = s.zoom + "×";
  const processed = process(state.original, s);
  const off = document.createElement("canvas");
  off.width = processed.width;
  off.height = processed.height;
  off.getContext("2d").putImageData(processed, 0, 0);
  const view = $("view");
  const box = $("canvas-box");
  const side = Math.max(256, Math.min(box.clientWidth, box.clientHeight) || 512);
  view.width = side;
  view.height = side;
  const cx = view.getContext("2d");
  cx.fillStyle = "#000";
  cx.fillRect(0, 0, side, side);
  cx.imageSmoothingEnabled = s.zoom < 3;
  const scale = (side / Math.max(off.width, off.height)) * s.zoom;
  const dw = off.width * scale, dh = off.height * scale;
  cx.drawImage(off, (side - dw) / 2 + state.pan[0], (side - dh) / 2 + state.pan[1], dw, dh);
}

function resetControls() {
  $("zoom").value = 1;
  $("brightness").value = 0;
  $("contrast").value = 1;
  $("stretch").value = "linear";
  $("unsharp").value = 0;
  $("invert").checked = false;
  for (const box of rgbIds.map($).filter(Boolean).concat(bandBoxes())) box.checked = true;
  if (bandBoxes().length) select(state.current, false);
  state.pan = [0, 0];
  render();
}

function zoomBy(step) {
  const z = $("zoom");
  z.value = Math.min(8, Math.max(1, +z.value + step));
  if (+z.value === 1) state.pan = [0, 0];
  render();
}

// ---- wiring -------------------------------------------------------------------------------

function wire() {
  for (const id of ["zoom", "brightness", "contrast", "stretch", "unsharp", "invert", "ch-r", "ch-g", "ch-b"]) {
    // Both: some controls (a select driven by a script or WebDriver) fire only `change`.
    $(id).addEventListener("input", render);
    $(id).addEventListener("change", render);
  }
  $("reset").onclick = resetControls;
  $("sort").onchange = () => {
    state.sort = $("sort").value;
    loadCandidates();
  };
  for (const b of document.querySelectorAll("[data-answer]")) b.onclick = () => answer(b.dataset.answer);
  $("train").onclick = () => job("/api/train", { iterations: +$("iterations").value });
  $("score").onclick = () => job("/api/score");
  $("next").onclick = () => job("/api/next");
  $("save-model").onclick = async () => {
    await job("/api/model/save", { name: $("model-name").value });
    loadModels();
  };
  $("load-model").onclick = () => job("/api/model/load", { name: $("models").value });
  $("export").onclick = async () => {
    try {
      const r = await api("/api/export", { method: "POST" });
      $("job-text").textContent = `exported ${r.labels} and ${r.remembered}`;
    } catch (e) {
      $("job-text").textContent = e.message;
    }
  };
  $("help-button").onclick = () => ($("help").hidden = !$("help").hidden);
  $("help").onclick = () => ($("help").hidden = true);
  const box = $("canvas-box");
  box.addEventListener("wheel", (e) => {
    e.preventDefault();
    zoomBy(e.deltaY < 0 ? 0.5 : -0.5);
  }, { passive: false });
  let drag = null;
  box.addEventListener("mousedown", (e) => (drag = [e.clientX - state.pan[0], e.clientY - state.pan[1]]));
  window.addEventListener("mouseup", () => (drag = null));
  window.addEventListener("mousemove", (e) => {
    if (!drag) return;
    state.pan = [e.clientX - drag[0], e.clientY - drag[1]];
    render();
  });
  window.addEventListener("resize", render);
  document.addEventListener("keydown", (e) => {
    const t = e.target;
    if (t && (t.tagName === "INPUT" && t.type !== "checkbox" && t.type !== "range" || t.tagName === "SELECT")) return;
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const keys = {
      a: () => answer("anomaly"), n: () => answer("normal"), s: () => answer("skip"),
      r: () => answer("remember"), j: () => move(1), k: () => move(-1),
      ArrowRight: () => move(1), ArrowDown: () => move(1),
      ArrowLeft: () => move(-1), ArrowUp: () => move(-1),
      "+": () => zoomBy(0.5), "=": () => zoomBy(0.5), "-": () => zoomBy(-0.5),
      "?": () => ($("help").hidden = !$("help").hidden),
      Escape: () => ($("help").hidden = true),
    };
    const f = keys[e.key];
    if (f) {
      e.preventDefault();
      f();
    }
  });
}

wire();
loadStatus().catch((e) => ($("job-text").textContent = e.message));
loadModels().catch(() => {});
loadCandidates();
listen();
