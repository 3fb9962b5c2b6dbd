// Videos and volumes: a frame on the canvas, the timeline (per-frame status, scrubbing, playback),
// the tracks, propagation with progress and cancel, the frame to check next, and the exports.
import { inOrder, request } from "./api.js";

const seqApi = {
  list: () => request("GET", "/api/sequences"),
  info: (id) => request("GET", `/api/sequences/${id}`),
  masks: (id, f) => request("GET", `/api/sequences/${id}/frames/${f}/masks`),
  click: (id, f, x, y, positive, categoryId) =>
    inOrder("POST", `/api/sequences/${id}/frames/${f}/clicks`, { x, y, positive, category_id: categoryId }),
  undo: (id, f) => inOrder("DELETE", `/api/sequences/${id}/frames/${f}/clicks/last`),
  reset: (id, f) => inOrder("DELETE", `/api/sequences/${id}/frames/${f}/clicks`),
  finish: (id, f, trackId, categoryId) =>
    inOrder("POST", `/api/sequences/${id}/frames/${f}/finish`, { track_id: trackId, category_id: categoryId }),
  propagate: (id, trackId, frame) => request("POST", `/api/sequences/${id}/propagate`, { track_id: trackId, frame }),
  job: (id) => request("GET", `/api/sequences/${id}/job`),
  cancel: (id) => request("DELETE", `/api/sequences/${id}/job`),
  exportAs: (id, format) => request("POST", `/api/sequences/${id}/export`, { format }),
  importPng: (id, folder) => request("POST", `/api/sequences/${id}/import`, { folder }),
};

const TRACK_COLORS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6", "#bcf60c"];
const PLAY_MS = 125;
const POLL_MS = 300;

const $ = (sel) => document.querySelector(sel);

export function trackColor(trackId) {
  return TRACK_COLORS[(trackId - 1) % TRACK_COLORS.length];
}

export class SequenceView {
  /** deps: {state, viewer, toast, guard, leaveImage()} */
  constructor(deps) {
    Object.assign(this, deps);
    this.current = null; // {id, info, frame, track (selected id or null = a new track), clicks}
    this._playTimer = null;
    this._pollTimer = null;
  }

  active() { return this.current !== null; }

  async loadList() {
    const data = await seqApi.list();
    const ul = $("#sequence-list");
    ul.replaceChildren();
    $("#sequences").hidden = data.sequences.length === 0;
    for (const s of data.sequences) {
      const li = document.createElement("li");
      li.textContent = `${s.kind === "volume" ? "▦" : "▶"} ${s.path}${s.tracks ? ` (${s.tracks})` : ""}`;
      li.dataset.testid = "sequence";
      if (s.error) { li.classList.add("error"); li.title = s.error; }
      if (this.current && this.current.id === s.id) li.classList.add("current");
      li.addEventListener("click", () => this.guard(() => this.open(s.id)));
      ul.appendChild(li);
    }
  }

  async open(id) {
    const info = await seqApi.info(id);
    await this.leaveImage();
    this.current = { id, info, frame: 0, track: info.tracks.length ? info.tracks[0].id : null, clicks: [] };
    window.cm.sequence = this.current;
    $("#timeline").hidden = false;
    $("#sequence-panel").hidden = false;
    await this.viewer.setImage(this.frameUrl(0));
    this.renderAll();
    await this.showFrame();
    await this.loadList();
    if (info.job && info.job.running) this.poll();
  }

  close() {
    this.stopPlay();
    clearTimeout(this._pollTimer);
    this.current = null;
    window.cm.sequence = null;
    $("#timeline").hidden = true;
    $("#sequence-panel").hidden = true;
    this.viewer.setFrameMasks([]);
  }

  frameUrl(f) { return `/api/sequences/${this.current.id}/frames/${f}.jpg`; }

  async refresh() {
    this.current.info = await seqApi.info(this.current.id);
    this.renderAll();
  }

  // ---------------------------------------------------------------- frames
  async goto(f) {
    const c = this.current;
    const n = c.info.frames;
    f = Math.max(0, Math.min(n - 1, f));
    if (f === c.frame) return;
    if (c.clicks.length) await seqApi.reset(c.id, c.frame); // an unfinished object stays on its frame
    c.frame = f;
    c.clicks = [];
    await this.viewer.replaceImage(this.frameUrl(f));
    this.viewer.setMask(null);
    this.viewer.setClicks([]);
    this.renderTimeline();
    await this.showFrame();
  }

  step(delta) { return this.goto(this.current.frame + delta); }

  async showFrame() {
    const c = this.current;
    const frame = c.frame;
    const data = await seqApi.masks(c.id, frame);
    if (!this.current || this.current.frame !== frame) return;
    this.viewer.setFrameMasks(data.masks.map((m) => ({ runs: m.runs, color: trackColor(m.track), track: m.track })));
    const encoding = c.info.encoded < c.info.frames ? ` · embeddings ${c.info.encoded}/${c.info.frames}` : "";
    $("#frame-text").textContent = `${c.info.kind === "volume" ? "slice" : "frame"} ${frame + 1} / ${c.info.frames}${encoding}`;
  }

  togglePlay() {
    if (this._playTimer) { this.stopPlay(); return; }
    $("#btn-play").textContent = "⏸";
    const tick = async () => {
      if (!this.current) return;
      const next = (this.current.frame + 1) % this.current.info.frames;
      await this.goto(next);
      if (this._playTimer) this._playTimer = setTimeout(tick, PLAY_MS);
    };
    this._playTimer = setTimeout(tick, PLAY_MS);
  }

  stopPlay() {
    clearTimeout(this._playTimer);
    this._playTimer = null;
    $("#btn-play").textContent = "▶";
  }

  // ---------------------------------------------------------------- clicking a frame
  async click(x, y, positive) {
    const c = this.current;
    const r = await seqApi.click(c.id, c.frame, x, y, positive, this.state.currentCategory);
    c.clicks = r.clicks;
    this.viewer.setMask(r.runs);
    this.viewer.setClicks(r.clicks);
  }

  async undo() {
    const c = this.current;
    const r = await seqApi.undo(c.id, c.frame);
    c.clicks = r.clicks;
    this.viewer.setMask(r.runs);
    this.viewer.setClicks(r.clicks);
  }

  async cancelClicks() {
    const c = this.current;
    await seqApi.reset(c.id, c.frame);
    c.clicks = [];
    this.viewer.setMask(null);
    this.viewer.setClicks([]);
  }

  /** Space: the clicked object becomes this frame's annotation of the selected track (or of a new one). */
  async finish() {
    const c = this.current;
    if (!c.clicks.length) { this.toast("Click on an object first"); return; }
    const track = await seqApi.finish(c.id, c.frame, c.track, this.state.currentCategory);
    c.track = track.id;
    c.clicks = [];
    this.viewer.setMask(null);
    this.viewer.setClicks([]);
    await this.refresh();
    await this.showFrame();
  }

  // ---------------------------------------------------------------- propagation
  async propagate() {
    const c = this.current;
    if (c.track === null) { this.toast("Finish an object on this frame first (Space)"); return; }
    const t = c.info.tracks.find((x) => x.id === c.track);
    const from = t && t.annotated.includes(c.frame) ? c.frame : t && t.annotated.length ? t.annotated[t.annotated.length - 1] : null;
    if (from === null) { this.toast("This track has no annotated frame yet"); return; }
    const job = await seqApi.propagate(c.id, c.track, from);
    this.renderJob(job);
    this.poll();
  }

  poll() {
    clearTimeout(this._pollTimer);
    const tick = async () => {
      if (!this.current) return;
      const { job } = await seqApi.job(this.current.id);
      this.renderJob(job);
      await this.refresh();
      await this.showFrame(); // the frames appear as they are propagated
      if (job && job.running) this._pollTimer = setTimeout(() => this.guard(tick), POLL_MS);
      else if (job && job.error) this.toast(`Propagation failed: ${job.error}`, true);
    };
    this._pollTimer = setTimeout(() => this.guard(tick), POLL_MS);
  }

  async cancel() {
    const { job } = await seqApi.cancel(this.current.id);
    this.renderJob(job);
  }

  gotoPointer() {
    const p = this.current.info.pointer;
    if (!p) { this.toast("Nothing propagated yet"); return Promise.resolve(); }
    this.current.track = p.track;
    return this.goto(p.frame);
  }

  async exportNow() {
    const fmt = $("#sequence-export-format").value;
    const r = await seqApi.exportAs(this.current.id, fmt);
    this.state.exportResult = { format: fmt, dir: r.dir, files: r.files };
    this.toast(`Exported ${r.files.length} file${r.files.length === 1 ? "" : "s"} to ${r.dir}`);
  }

  async importPng() {
    const folder = $("#sequence-import-folder").value.trim();
    if (!folder) { this.toast("Type the folder of label PNGs (inside the project)"); return; }
    const r = await seqApi.importPng(this.current.id, folder);
    this.current.info = r.sequence;
    this.renderAll();
    await this.showFrame();
    this.toast(`Imported ${Object.keys(r.tracks).length} track(s)`);
  }

  // ---------------------------------------------------------------- rendering
  renderAll() {
    this.renderTimeline();
    this.renderTracks();
    this.renderJob(this.current.info.job);
  }

  /** Per frame: annotated (blue), propagated (green), low confidence (orange), nothing (grey); the current one
   *  outlined. A click on a cell goes to that frame. */
  renderTimeline() {
    const c = this.current;
    const status = new Array(c.info.frames).fill("empty");
    for (const t of c.info.tracks) {
      for (const [f, conf] of Object.entries(t.propagated)) {
        const k = Number(f);
        if (status[k] === "annotated") continue;
        if (conf < c.info.low_confidence) status[k] = "low";
        else if (status[k] !== "low") status[k] = "propagated";
      }
      for (const f of t.annotated) status[f] = "annotated";
    }
    const bar = $("#timeline-cells");
    bar.replaceChildren();
    status.forEach((s, f) => {
      const cell = document.createElement("span");
      cell.className = `cell ${s}${f === c.frame ? " current" : ""}`;
      cell.title = `${f + 1}: ${s}`;
      cell.dataset.frame = String(f);
      cell.dataset.status = s;
      cell.addEventListener("click", () => this.guard(() => this.goto(f)));
      bar.appendChild(cell);
    });
    const p = c.info.pointer;
    $("#btn-pointer").disabled = !p;
    $("#btn-pointer").textContent = p ? `check ${p.frame + 1} ⚑` : "check ⚑";
  }

  renderTracks() {
    const c = this.current;
    const ul = $("#track-list");
    ul.replaceChildren();
    const names = Object.fromEntries(this.state.categories.map((k) => [k.id, k.name]));
    const add = (id, text, color) => {
      const li = document.createElement("li");
      li.dataset.testid = "track";
      if (color) { const sw = document.createElement("span"); sw.className = "swatch"; sw.style.background = color; li.appendChild(sw); }
      li.appendChild(document.createTextNode(text));
      if (c.track === id) li.classList.add("current");
      li.addEventListener("click", () => { c.track = id; this.renderTracks(); });
      ul.appendChild(li);
    };
    for (const t of c.info.tracks) {
      const n = Object.keys(t.propagated).length;
      add(t.id, `#${t.id} ${names[t.category_id] || "no category"} · ${t.annotated.length} drawn, ${n} propagated`, trackColor(t.id));
    }
    add(null, "+ new track", null);
  }

  renderJob(job) {
    const el = $("#job-text");
    $("#btn-cancel-propagation").hidden = !(job && job.running);
    if (!job) { el.textContent = ""; return; }
    const speed = job.ms_per_frame ? ` · ${Math.round(job.ms_per_frame)} ms/frame` : "";
    const state = job.running ? "propagating" : job.cancelled ? "cancelled" : job.error ? "failed" : "propagated";
    el.textContent = `${state} ${job.done}/${job.total}${speed}`;
    el.dataset.running = job.running ? "1" : "0";
  }
}
