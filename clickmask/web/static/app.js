// clickmask front end: wires the image list, the canvas, the panels and the shortcuts to the API.
import { api, inTurn, onPendingChange } from "./api.js";
import { Viewer } from "./canvas.js";
import { SequenceView } from "./sequence.js";
import { ACTIONS, actionFor, defaults, keyOf, label } from "./shortcuts.js";

const $ = (sel) => document.querySelector(sel);
const state = {
  images: [], imageId: null, image: null, tiles: null, grid: null, patch: -1, instances: [], categories: [], currentCategory: null,
  selected: null, selectedOnPurpose: false, clicks: [], box: null, choice: { index: 0, count: 0 }, mode: "click", radius: 8, shortcuts: defaults(), pending: 0, serverBusy: false,
  busyText: "ready", prefetchText: "", statusSent: 0, statusClicking: false, clickBusy: false, lastClickMs: null, exportResult: null, proposal: null, adaptation: null,
  display: null,
};
window.cm = { state }; // handle for the end-to-end test and for debugging (refreshAdaptation added below)
let proposalEpoch = 0; // bumped by every click and image change: an older proposal answer is stale
const inProgress = () => state.clicks.length > 0 || state.box !== null; // an object is being clicked

function toast(msg, isError = false) {
  const el = $("#toast");
  el.textContent = msg;
  el.className = isError ? "error" : "";
  el.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (el.hidden = true), isError ? 6000 : 3000);
}

async function guard(fn) {
  try {
    return await fn();
  } catch (err) {
    toast(err.message, true);
    if (err.status === 409 && state.imageId !== null) await reloadInstances();
    return undefined;
  }
}

const colors = () => Object.fromEntries(state.categories.map((c) => [c.id, c.color]));

const viewer = new Viewer($("#stage"), {
  mode: () => state.mode,
  radius: () => state.radius,
  onClick: (x, y, positive) => guard(() => (seqView.active() ? seqView.click(x, y, positive) : addClick(x, y, positive))),
  onBox: (x0, y0, x1, y1) => guard(() => (seqView.active() ? seqView.click((x0 + x1) / 2, (y0 + y1) / 2, true)
    : addBox(x0, y0, x1, y1))),
  onSelect: (id) => select(id),
  onPolygonEdit: (inst, polygons) => guard(() => editPolygon(inst, polygons)),
  onStroke: (points, erase) => guard(() => stroke(points, erase)),
  onPointer: (p) => showCoords(p),
});
window.cm.viewer = viewer;

// ------------------------------------------------------------ videos and volumes (sequence.js)
/** Leave the image shown (its unfinished clicks kept) before a video or volume takes the canvas. */
async function leaveImage() {
  await autosaveClicks();
  state.imageId = null;
  state.selected = null;
  state.instances = [];
  state.tiles = state.grid = state.display = null;
  showObject(null);
  setProposal(null);
  renderGrid();
  renderDisplay();
  renderInstances();
  renderImageList();
  $("#canvas-message").hidden = true;
}
const seqView = new SequenceView({ state, viewer, toast, guard, leaveImage });
window.cm.seq = seqView;

// ------------------------------------------------------------ images
async function loadImages() {
  const data = await api.images();
  state.images = data.images;
  const c = data.counts;
  $("#counts").textContent = `${c.done}/${c.images} done · ${c.instances} obj${c.errors ? ` · ${c.errors} unreadable` : ""}`;
  renderImageList();
}

function renderImageList() {
  const ul = $("#image-list");
  ul.replaceChildren();
  for (const img of state.images) {
    const li = document.createElement("li");
    li.dataset.id = img.id;
    li.dataset.testid = "image-item";
    li.className = (img.id === state.imageId ? "current " : "") + (img.error ? "error" : "");
    li.title = img.error || img.path;
    const name = document.createElement("span");
    name.textContent = img.path + (img.instances ? ` (${img.instances})` : "");
    const st = document.createElement("span");
    st.className = `status ${img.error ? "" : img.status}`;
    st.textContent = img.error ? "error" : img.status.replace("_", " ");
    li.append(name, st);
    li.addEventListener("click", () => guard(() => openImage(img.id)));
    ul.append(li);
    if (img.id === state.imageId) requestAnimationFrame(() => li.scrollIntoView({ block: "nearest" }));
  }
}

async function autosaveClicks() {
  if (state.imageId !== null && inProgress()) {
    await api.finish(state.imageId, state.currentCategory);
    showObject(null);
  }
}

async function openImage(id) {
  if (seqView.active()) { seqView.close(); await seqView.loadList(); }
  if (id === state.imageId) return;
  await autosaveClicks();
  state.imageId = id;
  state.selected = null;
  showObject(null);
  proposalEpoch += 1;
  setProposal(null);
  history.replaceState(null, "", `#image=${id}`);
  const info = await api.open(id);
  renderImageList();
  const msg = $("#canvas-message");
  if (info.error) {
    viewer.clear();
    viewer.stage.batchDraw();
    state.display = null;
    renderDisplay();
    msg.textContent = `Cannot annotate ${info.path}: ${info.error}`;
    state.tiles = state.grid = null;
    renderGrid();
    msg.hidden = false;
    state.instances = [];
    renderInstances();
    await loadImages();
    return;
  }
  msg.hidden = true;
  state.display = await api.display(id).catch(() => null);
  renderDisplay();
  state.tiles = info.tiles || null; // a large image: shown as tiles, segmented on a window around each object
  await showPixels(id);
  await loadGrid(id);
  const detail = await api.image(id);
  state.image = detail;
  state.instances = detail.annotations;
  const left = await api.currentMask(id); // an object left unfinished on an earlier visit
  showObject(left.clicks.length || left.box ? left : null);
  redraw();
  await loadImages();
  refreshProposal();
}

function step(delta) {
  const ids = state.images.map((i) => i.id);
  const pos = ids.indexOf(state.imageId);
  const next = ids[Math.max(0, Math.min(ids.length - 1, pos + delta))];
  if (next !== undefined && next !== state.imageId) guard(() => openImage(next));
}

// ------------------------------------------------------------ clicks
function setProposal(p) {
  state.proposal = p;
  viewer.setProposal(p);
}

// Ask for the proposed first click of the current category (ICP); shown only before the first click,
// and only while the user wants suggestions (the "suggest where to click" switch, kept in this browser).
async function refreshProposal() {
  const id = state.imageId;
  const cat = state.currentCategory;
  const off = localStorage.getItem("clickmask-proposals") === "off";
  // the marker of another category or image goes at once, not when the new answer arrives
  if (state.proposal && state.proposalFor !== `${id}:${cat}`) setProposal(null);
  if (off || id === null || cat === null || inProgress() || state.mode !== "click") { setProposal(null); return; }
  const epoch = ++proposalEpoch;
  try {
    const r = await api.proposal(id, cat);
    const fresh = epoch === proposalEpoch && id === state.imageId && cat === state.currentCategory;
    if (fresh && !inProgress() && !state.clickBusy && state.mode === "click") {
      state.proposalFor = `${id}:${cat}`;
      setProposal(r.proposal);
    }
  } catch (err) {
    setProposal(null); // no proposal is never an error worth a message
  }
}

async function acceptProposal() {
  if (!state.proposal || inProgress()) return;
  const p = state.proposal;
  await addClick(p.x, p.y, true);
}

// ------------------------------------------------------------ display: raster bands and stretch, DICOM window
/** Show the image: whole, or as tiles when it is large (their URLs change with the display settings too). */
function showPixels(id) {
  const url = imageUrl(id);
  if (state.tiles) return viewer.setTiles(`/api/images/${id}/tiles`, state.tiles, url.slice(url.indexOf("?")));
  return viewer.setImage(imageUrl(id));
}

/** The image's URL; it changes with the display settings, so the browser never shows cached old pixels. */
function imageUrl(id) {
  const text = JSON.stringify(state.display ? state.display.settings : null);
  let h = 0;
  for (let i = 0; i < text.length; i += 1) h = (h * 31 + text.charCodeAt(i)) | 0;
  return `/api/images/${id}/file?d=${(h >>> 0).toString(36)}`;
}

function fillBands(select, count, value) {
  select.replaceChildren();
  for (let b = 1; b <= count; b += 1) {
    const o = document.createElement("option");
    o.value = String(b);
    o.textContent = String(b);
    select.append(o);
  }
  select.value = String(value);
}

/** The right panel's Image section for the image shown (hidden for a plain picture). */
function renderDisplay() {
  const d = state.display;
  const kind = d ? d.kind : "plain";
  $("#display").hidden = kind === "plain";
  $("#display-raster").hidden = kind !== "raster";
  $("#display-dicom").hidden = kind !== "dicom";
  if (kind === "raster") {
    const bands = d.bands.length === 3 ? d.bands : [d.bands[0], d.bands[0], d.bands[0]];
    ["#band-r", "#band-g", "#band-b"].forEach((sel, k) => fillBands($(sel), d.count, bands[k]));
    $("#band-gray").checked = d.bands.length === 1;
    $("#band-g").disabled = $("#band-b").disabled = d.bands.length === 1;
    $("#stretch-low").value = String(d.stretch.low);
    $("#stretch-high").value = String(d.stretch.high);
    const mode = d.stretch.mode === "none" ? "values as they are (8-bit)" : `${d.stretch.mode} stretch`;
    $("#raster-crs").textContent = `${d.count} bands ${d.dtype} · ${mode} · ${d.georeferenced ? d.crs : "no CRS: pixel coordinates"}`;
  } else if (kind === "dicom") {
    $("#window-preset").value = d.window.preset || "";
    $("#window-level").value = String(d.window.level);
    $("#window-width").value = String(d.window.width);
    const dl = $("#dicom-meta");
    dl.replaceChildren();
    const m = d.metadata || {};
    for (const [key, label] of [["patient_name", "patient"], ["patient_id", "patient id"], ["patient_birth_date", "born"],
      ["patient_sex", "sex"], ["study_date", "study date"], ["study_description", "study"], ["series_description", "series"],
      ["modality", "modality"], ["manufacturer", "maker"]]) {
      if (!m[key]) continue;
      const dt = document.createElement("dt");
      dt.textContent = label;
      const dd = document.createElement("dd");
      dd.textContent = m[key];
      dl.append(dt, dd);
    }
  }
  showCoords(null);
}

/** The settings the panel's fields say, for PUT /display. */
function displayFromPanel() {
  if (state.display.kind === "raster") {
    const bands = $("#band-gray").checked ? [Number($("#band-r").value)]
      : ["#band-r", "#band-g", "#band-b"].map((sel) => Number($(sel).value));
    const low = Number($("#stretch-low").value), high = Number($("#stretch-high").value);
    const same = low === state.display.stretch.low && high === state.display.stretch.high;
    // changed percentiles mean a percentile stretch (also for 8-bit data, which is shown as it is by default)
    const stretch = same && !(state.display.settings && state.display.settings.stretch === "percentile") ? "auto" : "percentile";
    return { bands, stretch, low, high };
  }
  const preset = $("#window-preset").value;
  return preset ? { preset } : { level: Number($("#window-level").value), width: Number($("#window-width").value) };
}

/** Show the image with new display settings (null: the defaults): new pixels for the browser and the model. */
async function applyDisplay(settings) {
  const id = state.imageId;
  if (id === null || !state.display) return;
  state.display = await api.setDisplay(id, settings);
  renderDisplay();
  await showPixels(id);
  redraw();
  const left = await api.currentMask(id); // an unfinished object is redone on the new pixels
  showObject(left.clicks.length || left.box ? left : null);
  refreshProposal();
}

/** The status line under the pointer: map coordinates in the raster's CRS, or pixels (with a note). */
function showCoords(p) {
  const el = $("#coords");
  if (!p || state.imageId === null || !viewer.width || p.x < 0 || p.y < 0 || p.x > viewer.width || p.y > viewer.height) {
    el.hidden = true;
    return;
  }
  const px = `x ${Math.floor(p.x)}, y ${Math.floor(p.y)} px`;
  const d = state.display;
  if (d && d.georeferenced && d.transform) {
    const [a, b, c, dd, e, f] = d.transform;
    const X = a * p.x + b * p.y + c, Y = dd * p.x + e * p.y + f;
    const geographic = Math.abs(a) < 0.01 && Math.abs(e) < 0.01; // degrees: more decimals
    const digits = geographic ? 7 : 2;
    el.textContent = `${d.crs}  X ${X.toFixed(digits)}  Y ${Y.toFixed(digits)}  ·  ${px}`;
  } else {
    el.textContent = `${px} (no CRS: pixel coordinates)`;
  }
  el.hidden = false;
}

/** Show the object in progress from a server answer ({runs, clicks, box, choice}), or none (null). */
function showObject(r) {
  state.clicks = r ? r.clicks : [];
  state.box = r ? r.box : null;
  state.choice = r && r.choice ? r.choice : { index: 0, count: 0 };
  state.maskArea = r ? r.area : 0;
  state.clickRedo = r && r.redo ? r.redo : 0;
  viewer.setMask(r ? r.runs : null);
  viewer.setClicks(state.clicks);
  viewer.setBox(state.box);
  const c = state.choice;
  $("#choice").hidden = c.count < 2;
  $("#choice-text").textContent = `mask ${c.index + 1} of ${c.count}`;
  state.objectReference = r && r.reference ? r.reference : null; // the reference its first click used
  renderReferenceBadge();
  renderHint();
}

/** The empty-canvas hint: what to do on an image without objects. */
function renderHint() {
  $("#canvas-hint").hidden = state.imageId === null || !$("#canvas-message").hidden || inProgress()
    || state.instances.length > 0 || state.clickBusy;
}

/** Send a prompt (a click or a box) and show the answer; a slow answer shows the seconds it takes. */
async function sendPrompt(send) {
  const id = state.imageId;
  proposalEpoch += 1;
  setProposal(null); // a click replaces the proposal
  state.clickBusy = true;
  state.clickStarted = performance.now();
  updateBusy();
  const ticker = setInterval(updateBusy, 250);
  try {
    const r = await send(id);
    if (id !== state.imageId) return;
    state.lastClickMs = performance.now() - state.clickStarted;
    showObject(r);
  } finally {
    clearInterval(ticker);
    state.clickBusy = false;
    state.clickDone = performance.now();
    updateBusy();
    renderHint();
  }
}

const addClick = (x, y, positive) => sendPrompt((id) => api.click(id, x, y, positive, state.currentCategory,
                                                                state.tiles ? viewer.view() : null));
const addBox = (x0, y0, x1, y1) => sendPrompt((id) => api.box(id, x0, y0, x1, y1, state.currentCategory));

/** Show the next (step 1) or previous (-1) of the masks the first click or box offered. */
async function cycleMask(step) {
  if (state.choice.count < 2) { toast(inProgress() ? "No other masks: they are offered after the first click or box" : "Click on an object first"); return; }
  showObject(await api.choose(state.imageId, state.choice.index + step));
}

async function undoClick() {
  showObject(await api.undoClick(state.imageId));
  if (!inProgress()) refreshProposal();
}

async function cancelClicks() {
  await api.resetClicks(state.imageId);
  showObject(null);
  refreshProposal();
}

async function finishObject() {
  if (!inProgress()) { toast("Click on an object first"); return; }
  const inst = await api.finish(state.imageId, state.currentCategory);
  showObject(null);
  await reloadInstances(null); // finishing deselects: the next keys are for the next object
  if (inst.category_id === null) toast("Saved without a category: choose one with 1–9 before finishing");
  await loadImages();
  refreshProposal();
  refreshAdaptation();
  if (state.grid) await loadGrid(state.imageId, state.patch); // its objects per patch changed
}

// ------------------------------------------------------------ the patch grid of a large image (as EISeg's)
async function loadGrid(id, patch = -1) {
  state.grid = state.tiles ? await api.grid(id) : null;
  state.patch = state.grid ? patch : -1;
  renderGrid();
}

function renderGrid() {
  const g = state.grid;
  $("#grid").hidden = !g;
  if (!g) { viewer.setGrid(null); return; }
  const n = g.cols * g.rows;
  $("#grid-patch").value = String(g.patch);
  const here = state.patch >= 0 ? `patch ${state.patch + 1} of ${n} (${g.objects[state.patch]} objects)` : `${n} patches`;
  $("#grid-text").textContent = `${here} · ${g.done.length} of ${n} done`;
  $("#btn-grid-done").textContent = g.done.includes(state.patch) ? "✗ not done" : "✓ done";
  $("#btn-grid-done").disabled = state.patch < 0;
  viewer.setGrid($("#grid-show").checked ? g : null, state.patch);
}

function gridGo(k) {
  const g = state.grid;
  state.patch = k;
  const x = (k % g.cols) * g.patch, y = Math.floor(k / g.cols) * g.patch;
  viewer.showRect(x, y, Math.min(viewer.width, x + g.patch), Math.min(viewer.height, y + g.patch));
  renderGrid();
}

/** Go to the next (delta 1) or previous (-1) patch not marked done, in reading order. */
function gridStep(delta) {
  const g = state.grid;
  if (!g) return;
  const n = g.cols * g.rows;
  const from = state.patch < 0 && delta > 0 ? -1 : state.patch;
  for (let i = 1; i <= n; i += 1) {
    const k = (((from + delta * i) % n) + n) % n;
    if (!g.done.includes(k)) { gridGo(k); return; }
  }
  toast("Every patch is marked done");
}

async function gridToggleDone() {
  const g = state.grid;
  if (!g || state.patch < 0) return;
  const done = new Set(g.done);
  if (done.has(state.patch)) done.delete(state.patch); else done.add(state.patch);
  state.grid = await api.setGrid(state.imageId, { done: [...done] });
  renderGrid();
}

async function gridPatchSize(side) {
  state.grid = await api.setGrid(state.imageId, { patch: side });
  state.patch = -1;
  renderGrid();
}

// ------------------------------------------------------------ instances
async function reloadInstances(selectId) {
  const detail = await api.image(state.imageId);
  state.instances = detail.annotations;
  if (selectId !== undefined) { state.selected = selectId; state.selectedOnPurpose = false; }
  if (!state.instances.some((i) => i.id === state.selected)) state.selected = null;
  redraw();
}

function replaceInstance(inst) {
  state.instances = state.instances.map((i) => (i.id === inst.id ? inst : i));
  redraw();
}

/** The user selects an object (list or canvas): number keys then change its category. */
function select(id) {
  state.selected = id;
  state.selectedOnPurpose = id !== null;
  redraw();
}

function redraw() {
  viewer.setInstances([...state.instances].sort((a, b) => a.z_order - b.z_order), colors(), state.selected);
  renderInstances();
  renderReferenceMaker();
  renderHint();
}

// Edits of finished objects run one after another, each sent with the version the edit before it
// returned (looked up when it is sent): two quick strokes on an object are two edits, not an edit and
// a "changed elsewhere" that throws the second away.
const editInTurn = inTurn();
const shown = (id) => state.instances.find((i) => i.id === id);

const editPolygon = (inst, polygons) => (polygons.length ? patchInstance(inst.id, { polygons }) : removeInstance(inst));

function stroke(points, erase) {
  const pts = points.map(([x, y]) => [x - 0.5, y - 0.5]);
  const radius = state.radius;
  const target = state.selected;
  const imageId = state.imageId;
  const before = shown(target);
  return editInTurn(async () => {
    // the object as it is now, or the one a stroke before this one made; after a switch of image, as it was
    const inst = imageId === state.imageId ? shown(target ?? state.selected) : before;
    if (inst) {
      const r = await api.strokeInstance(inst.id, { version: inst.version, points: pts, radius, erase });
      if (r.deleted) await reloadInstances(); else replaceInstance(r);
    } else if (!erase) {
      const r = await api.strokeNew(imageId, { points: pts, radius, category_id: state.currentCategory });
      if (imageId !== state.imageId) return; // the page has moved on to another image
      await reloadInstances(r.id);
      await loadImages();
    } else {
      toast("Select an object to erase from");
    }
  });
}

/** Change the object ``id`` with ``body``, or with ``body(object)`` for a change that depends on it. */
function patchInstance(id, body) {
  return editInTurn(async () => {
    const inst = shown(id);
    if (!inst) return;
    const change = typeof body === "function" ? body(inst) : body;
    replaceInstance(await api.patchInstance(inst.id, { version: inst.version, ...change }));
  });
}

async function patchSelected(body) {
  if (!shown(state.selected)) { toast("Select an object first"); return; }
  await patchInstance(state.selected, body);
}

function removeInstance(inst) {
  return editInTurn(async () => {
    const now = shown(inst.id);
    if (!now) return;
    await api.deleteInstance(now.id, now.version);
    if (state.selected === now.id) state.selected = null;
    await reloadInstances();
    await loadImages();
  });
}

async function move(inst, delta) {
  const order = [...state.instances].sort((a, b) => a.z_order - b.z_order).map((i) => i.id);
  const pos = order.indexOf(inst.id);
  const to = pos + delta;
  if (to < 0 || to >= order.length) return;
  [order[pos], order[to]] = [order[to], order[pos]];
  state.instances = await api.reorder(state.imageId, order);
  redraw();
}

function renderInstances() {
  const ul = $("#instance-list");
  ul.replaceChildren();
  const sorted = [...state.instances].sort((a, b) => b.z_order - a.z_order); // top first
  for (const inst of sorted) {
    const li = document.createElement("li");
    li.dataset.testid = "instance-item";
    li.dataset.id = inst.id;
    li.className = (inst.id === state.selected ? "selected " : "") + (inst.hidden ? "hidden-inst" : "");
    const sw = document.createElement("span");
    sw.className = "swatch";
    sw.style.background = colors()[inst.category_id] || "#bbbbbb";
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = `#${inst.id}`;
    name.title = `object ${inst.id}: ${inst.area} pixels, by ${inst.author || "?"}, version ${inst.version}`;
    name.addEventListener("click", () => select(inst.id));
    const sel = document.createElement("select");
    sel.dataset.testid = "instance-category";
    sel.append(new Option("(none)", ""));
    for (const c of state.categories) sel.append(new Option(c.name, String(c.id), false, c.id === inst.category_id));
    sel.addEventListener("change", () => guard(async () => {
      sel.blur(); // keep the shortcuts working
      const cid = sel.value === "" ? null : Number(sel.value);
      await patchInstance(inst.id, { category_id: cid, set_category: true });
    }));
    const mk = (text, title, fn) => {
      const b = document.createElement("button");
      b.className = "mini";
      b.textContent = text;
      b.title = title;
      b.addEventListener("click", () => guard(fn));
      return b;
    };
    li.append(sw, name, sel,
      mk(inst.hidden ? "show" : "hide", "Hide / show", () => patchInstance(inst.id, (now) => ({ hidden: !now.hidden }))),
      mk("▲", "Bring forward", () => move(inst, 1)),
      mk("▼", "Send backward", () => move(inst, -1)),
      mk("✕", "Delete", () => removeInstance(inst)));
    ul.append(li);
  }
}

// ------------------------------------------------------------ categories
async function loadCategories(list) {
  state.categories = list || (await api.categories());
  // no category is chosen for the user: until they pick one, objects are saved without
  if (!state.categories.some((c) => c.id === state.currentCategory)) state.currentCategory = null;
  renderCategories();
  redraw();
}

function renderCategories() {
  const ul = $("#category-list");
  ul.replaceChildren();
  if ((state.adaptation ? state.adaptation.category_id : null) !== state.currentCategory) refreshAdaptation();
  renderReference();
  state.categories.forEach((cat, i) => {
    const li = document.createElement("li");
    li.dataset.testid = "category-item";
    li.className = cat.id === state.currentCategory ? "current" : "";
    const radio = document.createElement("input");
    radio.type = "radio";
    radio.name = "current-category";
    radio.checked = cat.id === state.currentCategory;
    radio.title = `Category for new objects (key ${i + 1})`;
    radio.addEventListener("change", () => { state.currentCategory = cat.id; renderCategories(); refreshProposal(); });
    const color = document.createElement("input");
    color.type = "color";
    color.value = cat.color;
    color.addEventListener("change", () => guard(async () => { await api.patchCategory(cat.id, { color: color.value }); await loadCategories(); }));
    const name = document.createElement("input");
    name.type = "text";
    name.value = cat.name;
    name.addEventListener("change", () => guard(async () => { await api.patchCategory(cat.id, { name: name.value }); await loadCategories(); }));
    const del = document.createElement("button");
    del.className = "mini";
    del.textContent = "✕";
    del.title = "Delete the category (its objects become uncategorised)";
    del.addEventListener("click", () => guard(async () => {
      if (!confirm(`Delete category "${cat.name}"?`)) return;
      await api.deleteCategory(cat.id);
      await loadCategories();
      if (state.imageId !== null) await reloadInstances();
    }));
    const key = document.createElement("span");
    key.textContent = i < 9 ? String(i + 1) : "";
    key.style.color = "#777";
    li.append(radio, key, color, name, del);
    ul.append(li);
  });
}

// ------------------------------------------------------------ online adaptation (OPO) of the current category
let adaptationEpoch = 0; // an older answer (another category) is stale

window.cm.refreshAdaptation = () => refreshAdaptation();

async function refreshAdaptation() {
  clearTimeout(refreshAdaptation.timer);
  const cat = state.currentCategory;
  const epoch = ++adaptationEpoch;
  let r = null;
  if (cat !== null) {
    try { r = await api.adaptation(cat); } catch (err) { r = null; }
  }
  if (epoch !== adaptationEpoch) return;
  state.adaptation = r;
  renderAdaptation();
  if (r && r.busy) refreshAdaptation.timer = setTimeout(refreshAdaptation, 1000); // until training is done
}

function renderAdaptation() {
  const r = state.adaptation;
  // the first-click memory works without OPO (no PyTorch, or switched off): keep the panel for it
  const firstClick = !!r && !!r.first_click && r.first_click.token !== null && r.first_click.token !== undefined;
  const proposals = r && r.proposals ? r.proposals : 0; // objects the first-click proposals learned from
  const remembers = !!r && ((!!r.first_click && r.first_click.objects > 0) || proposals > 0);
  $("#adaptation").hidden = !r || (!r.enabled && !r.version && !firstClick && !proposals);
  if (!r) return;
  const objects = (n) => `${n} object${n === 1 ? "" : "s"}`;
  let text = r.version ? `learned from ${objects(r.samples)}, ${r.served ? "in use" : "not in use yet"}` : "nothing learned yet";
  if (!r.enabled) text += " (learning off)";
  if (r.busy) text += " · learning…";
  if (firstClick) text += " · remembers part or whole"; // the granularity memory picks the first click's mask
  if (proposals) text += ` · suggests where to click (${objects(proposals)})`;
  $("#adaptation-text").textContent = text;
  const notes = [];
  if (r.version && !r.served) {
    notes.push("held back: clicks use the unadapted model until this category's adapter does better on its latest finished objects");
  }
  if (firstClick) {
    notes.push("first click learned: a first click shows the part or whole this category's finished objects wanted");
  }
  if (proposals) {
    notes.push("proposals: the purple marker (Enter accepts it) is learned from this category's finished objects");
  }
  $("#adaptation-text").title = r.error ? `last training error: ${r.error}` : notes.join("\n");
  $("#btn-adaptation-reset").disabled = !r.version && !r.busy && !remembers;
}

async function resetAdaptation() {
  const cat = state.categories.find((c) => c.id === state.currentCategory);
  if (!cat || !confirm(`Forget what "${cat.name}" learned (online adaptation, first-click memory, proposals)?`)) return;
  state.adaptation = await api.resetAdaptation(cat.id);
  adaptationEpoch += 1;
  renderAdaptation();
  refreshProposal(); // the proposals were forgotten too: the marker goes
}

// ------------------------------------------------------------ reference-guided clicks (RefCut, issue 24)
// A category can carry a reference: a finished object (and what is not the target: the rest of an object
// containing it, or a neighbour). The first click of the category's next objects then gives the same kind of
// target. The panel shows the current category's reference; the toolbar badge says when one is in use.
Object.assign(state, { references: {}, referencesAvailable: true, referenceReason: null, objectReference: null });
window.cm.loadReferences = () => loadReferences();

const referenceKey = (categoryId) => (categoryId === null ? "none" : String(categoryId));
const referenceOwner = (ref) => (ref.category ? `“${ref.category}”` : "objects without a category");

async function loadReferences() {
  const r = await api.references();
  state.referencesAvailable = r.available;
  state.referenceReason = r.reason;
  state.references = Object.fromEntries(r.references.map((ref) => [ref.key, ref]));
  renderReference();
}

/** The Reference panel for the current category: thumbnail, owner, what is not the target, on/off. */
function renderReference() {
  const ref = state.references[referenceKey(state.currentCategory)] || null;
  const cat = state.categories.find((c) => c.id === state.currentCategory);
  $("#reference-card").hidden = !ref;
  $("#reference-empty").hidden = !!ref;
  $("#reference-empty").textContent = state.referencesAvailable
    ? `No reference for ${cat ? `“${cat.name}”` : "objects without a category"}: select a finished object, then “use as reference”.`
    : `References are off: ${state.referenceReason}`;
  if (ref) {
    const src = `/api/references/${ref.key}/thumbnail.png?v=${encodeURIComponent(ref.created_at)}`;
    if ($("#reference-thumb").getAttribute("src") !== src) $("#reference-thumb").src = src;
    const not = { rest: `, not the rest of #${ref.negative_instance_id}`, other: `, not #${ref.negative_instance_id}` }[ref.negative] || "";
    $("#reference-text").textContent = `${referenceOwner(ref)}: object #${ref.instance_id} on ${ref.image || `image ${ref.image_id}`}${not}`
      + (ref.enabled ? "" : " (off)") + (ref.problem ? ` · not usable: ${ref.problem}` : "");
    $("#reference-on").checked = ref.enabled;
  }
  renderReferenceMaker();
  renderReferenceBadge();
}

/** "use as reference" works on the selected object; the negative choices are the image's other objects. */
function renderReferenceMaker() {
  const inst = state.instances.find((i) => i.id === state.selected);
  const select = $("#reference-negative");
  const keep = select.value;
  select.replaceChildren(new Option("no negative", ""));
  for (const other of inst ? state.instances : []) {
    if (other.id === inst.id) continue;
    const [x, y, w, h] = inst.bbox, [ox, oy, ow, oh] = other.bbox;
    const contains = ox <= x && oy <= y && ox + ow >= x + w && oy + oh >= y + h; // then: the rest of that object
    select.append(new Option(contains ? `not the rest of #${other.id}` : `not #${other.id}`, String(other.id)));
  }
  select.value = [...select.options].some((o) => o.value === keep) ? keep : "";
  select.disabled = !inst;
  $("#btn-reference-use").disabled = !inst || !state.referencesAvailable;
}

/** The toolbar badge: the object being clicked used a reference, or the next first click will. */
function renderReferenceBadge() {
  const el = $("#reference-badge");
  const armed = state.references[referenceKey(state.currentCategory)];
  const used = inProgress() && state.objectReference ? state.references[state.objectReference] : null;
  if (inProgress() && state.objectReference) {
    el.textContent = `reference in use${used ? `: ${referenceOwner(used)}` : ""}`;
    el.className = "used";
  } else if (!inProgress() && armed && armed.enabled) {
    el.textContent = `reference on: ${referenceOwner(armed)}`;
    el.className = "armed";
  } else {
    el.hidden = true;
    return;
  }
  el.hidden = false;
}

async function useAsReference() {
  const inst = state.instances.find((i) => i.id === state.selected);
  if (!inst) { toast("Select a finished object first (click it in the Objects list, or Ctrl+click it)"); return; }
  const negative = $("#reference-negative").value;
  // an object without a category becomes the current category's reference
  const category = inst.category_id !== null ? inst.category_id : state.currentCategory;
  const ref = await api.makeReference(inst.id, negative === "" ? null : Number(negative), category);
  state.currentCategory = ref.category_id; // the next clicks are of the reference's category
  await loadReferences();
  renderCategories();
  toast(`Object #${inst.id} is the reference of ${referenceOwner(ref)}: first clicks now give that kind of target`);
}

async function switchReference(enabled) {
  const key = referenceKey(state.currentCategory);
  state.references[key] = await api.switchReference(key, enabled);
  renderReference();
}

async function clearReference() {
  const key = referenceKey(state.currentCategory);
  await api.clearReference(key);
  delete state.references[key];
  renderReference();
  toast("Reference cleared: first clicks are the model's own again");
}

function bindReferencePanel() {
  $("#btn-reference-use").addEventListener("click", () => guard(useAsReference));
  $("#reference-on").addEventListener("change", (ev) => {
    ev.target.blur(); // keep the shortcuts (Esc, Space) working
    guard(() => switchReference(ev.target.checked));
  });
  $("#btn-reference-clear").addEventListener("click", () => guard(clearReference));
  $("#reference-negative").addEventListener("change", (ev) => ev.target.blur()); // keep the shortcuts working
}

// ------------------------------------------------------------ busy indicator
function updateBusy() {
  const el = $("#busy");
  let text = "ready";
  const waited = state.clickBusy ? (performance.now() - state.clickStarted) / 1000 : 0;
  // a status asked for before this tab's click ended may say "segmenting" about that very click
  const stale = state.statusClicking && state.clickDone > state.statusSent;
  if (state.clickBusy) text = waited >= 1 ? `segmenting… ${waited.toFixed(1)} s` : "segmenting…";
  else if (state.serverBusy && !stale) text = state.busyText;
  else if (state.serverBusy && state.prefetchText) text = state.prefetchText;
  else if (state.pending) text = "saving…";
  el.className = text === "ready" ? "idle" : "";
  $("#busy-text").textContent = text === "ready" && state.lastClickMs ? `ready · last click ${Math.round(state.lastClickMs)} ms` : text;
}
onPendingChange((n) => { state.pending = n; updateBusy(); });

const imageName = (id) => (state.images.find((i) => i.id === id) || { path: `image ${id}` }).path;

async function pollStatus() {
  try {
    const sent = performance.now();
    const st = await fetch("/api/status").then((r) => r.json());
    state.serverBusy = st.busy;
    state.statusSent = sent;
    state.statusClicking = st.clicking;
    const pf = st.prefetch;
    state.prefetchText = pf.crop ? "preparing the zoom-in for the next click…" : pf.busy ? `encoding ${imageName(pf.current ?? pf.queued[0])} (${pf.queued.length} queued)…` : "";
    state.busyText = st.clicking ? (st.waiting ? `segmenting… (${st.waiting} more clicks waiting)` : "segmenting…") : state.prefetchText || "ready";
    $("#model-info").textContent = `model ${st.model_id}${st.is_fallback ? " (fallback: run 'clickmask models pull')" : ""} · ${st.project}`;
  } catch (err) {
    state.busyText = "server unreachable";
    state.serverBusy = true;
  }
  updateBusy();
  setTimeout(pollStatus, 800);
}

// ------------------------------------------------------------ modes, toolbar, help
function setMode(mode) {
  state.mode = mode;
  document.querySelectorAll("#modes button").forEach((b) => b.classList.toggle("active", b.dataset.mode === mode));
  viewer.brushCursor.visible(false);
  viewer.refreshHandles();
  refreshProposal();
}

function setRadius(r) {
  state.radius = Math.max(1, Math.min(200, Math.round(r)));
  $("#radius").value = String(state.radius);
  $("#radius-value").textContent = String(state.radius);
}

async function exportNow() {
  const fmt = $("#export-format").value;
  const r = await api.exportAs(fmt);
  state.exportResult = r;
  const skipped = r.unassigned && r.unassigned.count ? ` (${r.unassigned.message})` : "";
  toast(`Exported ${r.files.length} files to ${r.dir}${skipped}`);
}

async function openImportDialog() {
  const { files } = await api.importFiles();
  const select = $("#import-path");
  select.replaceChildren(...files.map((f) => new Option(f.kind === "folder" ? `${f.path}/ (LabelMe folder)` : f.path, f.path)));
  if (!files.length) select.append(new Option("(no JSON files in the project folder)", ""));
  $("#import-dialog").hidden = false;
}

async function imported(r) {
  $("#import-dialog").hidden = true;
  state.importResult = r;
  toast(`Imported ${r.added} objects${r.skipped ? ` (${r.skipped} for images not in the project)` : ""}`);
  await loadCategories();
  await loadImages();
  if (state.imageId !== null) await reloadInstances();
}

async function markDone() {
  const img = state.images.find((i) => i.id === state.imageId);
  if (!img) return;
  await autosaveClicks();
  await api.setStatus(img.id, img.status === "done" ? "in_progress" : "done");
  await loadImages();
}

async function undoAny() {
  if (inProgress()) return undoClick();
  const r = await api.undo(state.imageId);
  if (!r.undone) toast("Nothing to undo");
  state.instances = r.annotations;
  redraw();
  await loadImages();
}

async function redoAny() {
  if (state.clickRedo > 0) { showObject(await api.redoClick(state.imageId)); return; } // an undone click first
  const r = await api.redo(state.imageId);
  if (!r.redone) toast("Nothing to redo");
  state.instances = r.annotations;
  redraw();
}

const handlers = {
  prev: () => (seqView.active() ? guard(() => seqView.step(-1)) : step(-1)),
  next: () => (seqView.active() ? guard(() => seqView.step(1)) : step(1)),
  finish: () => guard(() => (seqView.active() ? seqView.finish() : finishObject())),
  acceptProposal: () => guard(acceptProposal),
  undo: () => guard(() => (seqView.active() ? seqView.undo() : undoAny())),
  redo: () => guard(redoAny),
  cancel: () => (seqView.active() ? guard(() => seqView.cancelClicks())
    : inProgress() || state.selected === null ? guard(cancelClicks) : select(null)), // Esc: drop clicks, else deselect
  nextMask: () => guard(() => cycleMask(1)),
  prevMask: () => guard(() => cycleMask(-1)),
  modeClick: () => setMode("click"),
  modeBox: () => setMode("box"),
  modePolygon: () => setMode("polygon"),
  modeBrush: () => setMode("brush"),
  modeEraser: () => setMode("eraser"),
  radiusUp: () => setRadius(state.radius * 1.25 + 1),
  radiusDown: () => setRadius(state.radius / 1.25),
  fit: () => viewer.fit(),
  gridNext: () => gridStep(1),
  gridDone: () => guard(gridToggleDone),
  done: () => guard(markDone),
  hide: () => guard(() => patchSelected((inst) => ({ hidden: !inst.hidden }))),
  remove: () => guard(async () => {
    const inst = shown(state.selected);
    if (inst) await removeInstance(inst);
  }),
  help: () => toggleHelp(),
};

function renderHelp() {
  const table = $("#shortcut-table");
  table.replaceChildren();
  for (const [action, [text]] of Object.entries(ACTIONS)) {
    const tr = document.createElement("tr");
    const td1 = document.createElement("td");
    td1.textContent = text;
    const td2 = document.createElement("td");
    const input = document.createElement("input");
    input.readOnly = true;
    input.value = label(state.shortcuts[action] || "");
    input.dataset.action = action;
    input.addEventListener("keydown", (ev) => {
      ev.preventDefault();
      ev.stopPropagation();
      if (["Control", "Shift", "Alt", "Meta"].includes(ev.key)) return;
      state.shortcuts[action] = keyOf(ev);
      input.value = label(state.shortcuts[action]);
    });
    td2.append(input);
    tr.append(td1, td2);
    table.append(tr);
  }
  const extra = document.createElement("tr");
  extra.innerHTML = "<td>Category 1–9 for new / selected object</td><td>1 … 9</td>";
  table.append(extra);
}

function toggleHelp(show) {
  const el = $("#help");
  el.hidden = show === undefined ? !el.hidden : !show;
  if (!el.hidden) renderHelp();
}

document.addEventListener("keydown", (ev) => {
  if (!$("#help").hidden && ev.key === "Escape") { toggleHelp(false); return; }
  if (!$("#import-dialog").hidden) { if (ev.key === "Escape") $("#import-dialog").hidden = true; return; }
  if (ev.target.closest && ev.target.closest("input, select, textarea") && ev.target.type !== "range" && ev.target.type !== "radio") return;
  if (ev.key === " ") {
    ev.preventDefault();
    if (!ev.repeat) { viewer.spaceDown = true; viewer.spaceUsed = false; }
    return;
  }
  if (/^[1-9]$/.test(ev.key) && !ev.ctrlKey && !ev.altKey) {
    const cat = state.categories[Number(ev.key) - 1];
    if (cat) {
      state.currentCategory = cat.id;
      renderCategories();
      const inst = state.instances.find((i) => i.id === state.selected);
      if (inst && state.selectedOnPurpose) {
        guard(async () => {
          await patchSelected({ category_id: cat.id, set_category: true });
          toast(`Object #${inst.id} is now “${cat.name}”`);
        });
      } else {
        refreshProposal();
      }
    }
    return;
  }
  let action = actionFor(state.shortcuts, ev);
  if (!action && keyOf(ev) === "ctrl+shift+z") action = "redo";
  if (!action && ev.key === "ArrowRight") action = "next";
  if (!action && ev.key === "ArrowLeft") action = "prev";
  if (action && handlers[action]) {
    ev.preventDefault();
    handlers[action]();
  }
});

document.addEventListener("keyup", (ev) => {
  if (ev.key !== " ") return;
  const wasPan = viewer.spaceUsed;
  viewer.spaceDown = false;
  viewer.spaceUsed = false;
  if (!wasPan && state.shortcuts.finish === " ") handlers.finish();
});

function bindToolbar() {
  document.querySelectorAll("#modes button").forEach((b) => b.addEventListener("click", () => setMode(b.dataset.mode)));
  $("#radius").addEventListener("input", (e) => setRadius(Number(e.target.value)));
  $("#opacity").addEventListener("input", (e) => viewer.setOpacity(Number(e.target.value) / 100));
  $("#btn-finish").addEventListener("click", handlers.finish);
  $("#btn-mask-prev").addEventListener("click", handlers.prevMask);
  $("#btn-mask-next").addEventListener("click", handlers.nextMask);
  $("#btn-undo").addEventListener("click", handlers.undo);
  $("#btn-redo").addEventListener("click", handlers.redo);
  $("#btn-fit").addEventListener("click", handlers.fit);
  $("#btn-done").addEventListener("click", handlers.done);
  $("#btn-export").addEventListener("click", () => guard(exportNow));
  $("#export-format").addEventListener("change", (ev) => { $("#btn-download").href = `/api/export/${ev.target.value}.zip`; });
  $("#btn-import").addEventListener("click", () => guard(openImportDialog));
  $("#btn-import-close").addEventListener("click", () => ($("#import-dialog").hidden = true));
  $("#btn-import-path").addEventListener("click", () => guard(async () => {
    const path = $("#import-path").value;
    if (path) await imported(await api.importFrom(path));
  }));
  $("#import-file").addEventListener("change", (ev) => guard(async () => {
    const file = ev.target.files[0];
    ev.target.value = "";
    if (file) await imported(await api.importUpload(file.name, await file.text()));
  }));
  $("#btn-rescan").addEventListener("click", () => guard(async () => {
    const r = await api.rescan();
    toast(r.added ? `${r.added} new image${r.added === 1 ? "" : "s"} found` : "No new images in the folder");
    await loadImages();
  }));
  $("#btn-help").addEventListener("click", () => toggleHelp());
  $("#btn-help-close").addEventListener("click", () => toggleHelp(false));
  $("#btn-help-reset").addEventListener("click", () => { state.shortcuts = defaults(); renderHelp(); });
  $("#btn-help-save").addEventListener("click", () => guard(async () => {
    await api.putSetting("shortcuts", state.shortcuts);
    toast("Shortcuts saved");
    toggleHelp(false);
  }));
  $("#category-color").addEventListener("input", (ev) => { ev.target.dataset.touched = "1"; });
  $("#category-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    guard(async () => {
      const picker = $("#category-color");
      // the server gives a new category the next colour of its palette unless the user picked one
      const cat = await api.addCategory($("#category-name").value, picker.dataset.touched ? picker.value : null);
      picker.value = cat.color;
      delete picker.dataset.touched;
      $("#category-name").value = "";
      state.currentCategory = cat.id;
      await loadCategories();
    });
  });
  $("#btn-adaptation-reset").addEventListener("click", () => guard(resetAdaptation));
  $("#proposals-on").checked = localStorage.getItem("clickmask-proposals") !== "off";
  $("#proposals-on").addEventListener("change", (ev) => {
    localStorage.setItem("clickmask-proposals", ev.target.checked ? "on" : "off");
    refreshProposal();
  });
  $("#polygon-tolerance").addEventListener("change", (ev) => guard(async () => {
    const r = await api.putSetting("polygon_tolerance", Number(ev.target.value));
    ev.target.blur();
    toast(`New objects get outlines within ${r.value} px of their masks`);
  }));
  $("#proposal-confidence").addEventListener("input", (ev) => { $("#proposal-confidence-value").textContent = `${ev.target.value}%`; });
  $("#proposal-confidence").addEventListener("change", (ev) => guard(async () => {
    await api.putSetting("proposal_confidence", Number(ev.target.value) / 100);
    state.proposalFor = null; // ask again at the new level
    refreshProposal();
  }));
  $("#btn-cat-save").addEventListener("click", () => guard(async () => {
    const path = $("#category-file").value;
    let r;
    try {
      r = await api.saveCategories(path);
    } catch (err) {
      if (err.status !== 409) throw err;
      if (!confirm(err.message)) { toast("Categories not saved"); return; }
      r = await api.saveCategories(path, true);
    }
    toast(`Saved categories to ${r.path}`);
  }));
  $("#btn-cat-load").addEventListener("click", () => guard(async () => {
    await loadCategories(await api.loadCategories($("#category-file").value));
    toast("Categories loaded");
  }));
  $("#btn-display-apply").addEventListener("click", () => guard(() => applyDisplay(displayFromPanel())));
  $("#btn-grid-next").addEventListener("click", () => gridStep(1));
  $("#btn-play").addEventListener("click", () => seqView.togglePlay());
  $("#btn-pointer").addEventListener("click", () => guard(() => seqView.gotoPointer()));
  $("#btn-propagate").addEventListener("click", () => guard(() => seqView.propagate()));
  $("#btn-cancel-propagation").addEventListener("click", () => guard(() => seqView.cancel()));
  $("#btn-sequence-export").addEventListener("click", () => guard(() => seqView.exportNow()));
  $("#btn-sequence-import").addEventListener("click", () => guard(() => seqView.importPng()));
  $("#btn-grid-prev").addEventListener("click", () => gridStep(-1));
  $("#btn-grid-done").addEventListener("click", () => guard(gridToggleDone));
  $("#grid-patch").addEventListener("change", (ev) => guard(() => gridPatchSize(Number(ev.target.value))));
  $("#grid-show").addEventListener("change", renderGrid);
  $("#btn-display-reset").addEventListener("click", () => guard(() => applyDisplay(null)));
  $("#band-gray").addEventListener("change", () => {
    $("#band-g").disabled = $("#band-b").disabled = $("#band-gray").checked;
  });
  $("#window-preset").addEventListener("change", () => {
    if ($("#window-preset").value) guard(() => applyDisplay({ preset: $("#window-preset").value }));
  });
  // the window by mouse: drag on the pad (up = higher level, right = wider), applied on release
  const pad = $("#window-pad");
  let drag = null;
  pad.addEventListener("pointerdown", (ev) => {
    drag = { x: ev.clientX, y: ev.clientY, level: Number($("#window-level").value), width: Number($("#window-width").value) };
    pad.setPointerCapture(ev.pointerId);
  });
  pad.addEventListener("pointermove", (ev) => {
    if (!drag) return;
    const step = Math.max(1, drag.width / 200); // finer for narrow windows
    $("#window-level").value = String(Math.round(drag.level - (ev.clientY - drag.y) * step));
    $("#window-width").value = String(Math.max(1, Math.round(drag.width * Math.exp((ev.clientX - drag.x) / 150))));
    $("#window-preset").value = "";
  });
  pad.addEventListener("pointerup", () => {
    if (!drag) return;
    const moved = Number($("#window-level").value) !== drag.level || Number($("#window-width").value) !== drag.width;
    drag = null;
    if (moved) guard(() => applyDisplay({ level: Number($("#window-level").value), width: Number($("#window-width").value) }));
  });
  for (const sel of ["#window-level", "#window-width"]) {
    $(sel).addEventListener("input", () => { $("#window-preset").value = ""; });
  }
  // Buttons keep no focus, so Space never "clicks" a focused button.
  document.querySelectorAll("button").forEach((b) => b.addEventListener("mouseup", () => b.blur()));
}

async function main() {
  bindToolbar();
  setMode("click");
  setRadius(state.radius);
  viewer.setOpacity(0.35);
  const tolerance = await guard(() => api.getSetting("polygon_tolerance"));
  if (tolerance && tolerance.value !== null && tolerance.value !== undefined) $("#polygon-tolerance").value = String(tolerance.value);
  const level = await guard(() => api.getSetting("proposal_confidence"));
  if (level && level.value !== null && level.value !== undefined) {
    $("#proposal-confidence").value = String(Math.round(level.value * 100));
    $("#proposal-confidence-value").textContent = `${Math.round(level.value * 100)}%`;
  }
  const saved = await guard(() => api.getSetting("shortcuts"));
  if (saved && saved.value) state.shortcuts = { ...defaults(), ...saved.value };
  bindReferencePanel();
  await guard(loadCategories);
  await guard(loadReferences);
  await guard(loadImages);
  await guard(() => seqView.loadList());
  const fromHash = Number((location.hash.match(/image=(\d+)/) || [])[1]);
  const first = state.images.find((i) => i.id === fromHash) || state.images.find((i) => !i.error) || state.images[0];
  if (first) await guard(() => openImage(first.id));
  pollStatus();
  document.body.dataset.ready = "1";
}

main();
