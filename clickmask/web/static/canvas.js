// The Konva canvas: image, finished objects (polygons with holes), the current
// click mask, click markers, polygon vertex handles and the brush.
/* global Konva */

const HANDLE_PX = 5; // vertex handle radius on screen
const TILE_DELAY_MS = 80; // a large image's tiles are fetched once zooming or panning pauses this long

function hexToRgba(hex, alpha) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255},${(n >> 8) & 255},${n & 255},${alpha})`;
}

function distToSegment(p, a, b) {
  const dx = b[0] - a[0], dy = b[1] - a[1];
  const len2 = dx * dx + dy * dy;
  let t = len2 ? ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / len2 : 0;
  t = Math.max(0, Math.min(1, t));
  const x = a[0] + t * dx, y = a[1] + t * dy;
  return Math.hypot(p[0] - x, p[1] - y);
}

export class Viewer {
  constructor(container, handlers) {
    this.container = container;
    // {onClick(x,y,pos), onBox(x0,y0,x1,y1), onSelect(id), onPolygonEdit(inst, polygons), onStroke(points, erase), mode(), radius()}
    this.h = handlers;
    this.stage = new Konva.Stage({ container, width: container.clientWidth, height: container.clientHeight });
    this.imageLayer = new Konva.Layer({ listening: false });
    this.annLayer = new Konva.Layer();
    this.seqLayer = new Konva.Layer({ listening: false }); // a video's or volume's track masks on the frame shown
    this.maskLayer = new Konva.Layer({ listening: false });
    this.uiLayer = new Konva.Layer();
    this.stage.add(this.imageLayer, this.annLayer, this.seqLayer, this.maskLayer, this.uiLayer);
    this.imageNode = null;
    this.maskNode = null;
    this.width = 0;
    this.height = 0;
    this.opacity = 0.55;
    this.instances = [];
    this.colors = {};
    this.selected = null;
    this.spaceDown = false;
    this.spaceUsed = false;
    this._press = null;
    this._stroke = null;
    this.brushCursor = new Konva.Circle({ stroke: "#fff", strokeWidth: 1, dash: [4, 3], listening: false, visible: false, strokeScaleEnabled: false });
    this.uiLayer.add(this.brushCursor);
    this._bind();
    new ResizeObserver(() => this.resize()).observe(container);
  }

  resize() {
    this.stage.size({ width: this.container.clientWidth, height: this.container.clientHeight });
    this._updateTiles();
  }

  // ------------------------------------------------------------ image + view
  setImage(url) {
    return new Promise((resolve, reject) => {
      const img = new window.Image();
      img.onload = () => {
        this.clear();
        this.width = img.naturalWidth;
        this.height = img.naturalHeight;
        this.imageNode = new Konva.Image({ image: img, x: 0, y: 0, width: this.width, height: this.height });
        this.imageLayer.add(this.imageNode);
        this.fit();
        resolve();
      };
      img.onerror = () => reject(new Error("the image could not be loaded"));
      img.src = url;
    });
  }

  /** Show a large image as a tile pyramid (deep zoom): {width, height, tile, levels}; only the tiles
   *  of the visible part at the level that matches the zoom are fetched (tiles/{level}/{col}/{row}.jpg,
   *  level 0 = full resolution). The coarsest level stays underneath while finer tiles load. */
  setTiles(url, info, query = "") {
    this.clear();
    this.width = info.width;
    this.height = info.height;
    this.tiles = { url, info, query, nodes: new Map() };
    this.fit();
    return Promise.resolve();
  }

  /** The level whose pixels are closest to (not coarser than) the screen's at this zoom. */
  tileLevel() {
    const info = this.tiles.info;
    const level = Math.floor(Math.log2(1 / this.stage.scaleX()));
    return Math.max(0, Math.min(info.levels - 1, level));
  }

  /** The visible rectangle of the image, [x0, y0, x1, y1] in image pixels (clamped to the image). */
  view() {
    const s = this.stage.scaleX(), o = this.stage.position();
    const x0 = Math.max(0, -o.x / s), y0 = Math.max(0, -o.y / s);
    const x1 = Math.min(this.width, (this.stage.width() - o.x) / s), y1 = Math.min(this.height, (this.stage.height() - o.y) / s);
    return x1 > x0 && y1 > y0 ? [x0, y0, x1, y1] : null;
  }

  /** Fetch the tiles of the new view once the wheel or the drag pauses (not those of every step on the way). */
  _scheduleTiles() {
    if (!this.tiles) return;
    clearTimeout(this._tileTimer);
    this._tileTimer = setTimeout(() => this._updateTiles(), TILE_DELAY_MS);
  }

  _updateTiles() {
    if (!this.tiles) return;
    const { info, nodes } = this.tiles;
    const top = info.levels - 1;
    const wanted = new Set();
    const want = (level) => {
      const span = info.tile * 2 ** level;
      const v = level === top ? [0, 0, this.width, this.height] : this.view();
      if (!v) return;
      for (let r = Math.floor(v[1] / span); r * span < Math.min(v[3], this.height); r += 1) {
        for (let c = Math.floor(v[0] / span); c * span < Math.min(v[2], this.width); c += 1) wanted.add(`${level}/${c}/${r}`);
      }
    };
    want(top);
    const level = this.tileLevel();
    if (level !== top) want(level);
    for (const [key, node] of nodes) {
      if (!wanted.has(key)) { node.destroy(); nodes.delete(key); }
    }
    for (const key of wanted) {
      if (nodes.has(key)) continue;
      const [l, c, r] = key.split("/").map(Number);
      const span = info.tile * 2 ** l;
      const node = new Konva.Image({ x: c * span, y: r * span, width: Math.min(span, this.width - c * span),
                                     height: Math.min(span, this.height - r * span), name: `tile level-${l}` });
      const img = new window.Image();
      img.onload = () => { node.image(img); node.setAttr("loaded", true); this.imageLayer.batchDraw(); };
      img.src = `${this.tiles.url}/${key}.jpg${this.tiles.query}`;
      this.imageLayer.add(node);
      nodes.set(key, node);
      if (l === top) node.moveToBottom();
    }
    this.imageLayer.batchDraw();
  }

  /** Show another frame of the same size in place (the zoom and position stay); else as setImage. */
  replaceImage(url) {
    return new Promise((resolve, reject) => {
      const img = new window.Image();
      img.onload = () => {
        if (this.imageNode && img.naturalWidth === this.width && img.naturalHeight === this.height) {
          this.imageNode.image(img);
          this.imageLayer.batchDraw();
          resolve();
        } else {
          this.setImage(url).then(resolve, reject);
        }
      };
      img.onerror = () => reject(new Error("the frame could not be loaded"));
      img.src = url;
    });
  }

  /** The tracks' masks on the frame shown: [{runs, color}] (row-major runs, see setMask). */
  setFrameMasks(masks) {
    this.seqLayer.destroyChildren();
    for (const m of masks) {
      const [h, w] = m.runs.size;
      const n = parseInt(m.color.slice(1), 16);
      const canvas = Viewer.runsCanvas(m.runs, [(n >> 16) & 255, (n >> 8) & 255, n & 255, 150]);
      this.seqLayer.add(new Konva.Image({ image: canvas, x: 0, y: 0, width: w, height: h, name: `framemask track-${m.track}` }));
    }
    this.seqLayer.batchDraw();
  }

  /** Draw a large image's patch grid ({patch, cols, rows, done}) with patch ``current`` outlined; null: none. */
  setGrid(grid, current = -1) {
    this.uiLayer.find(".grid").forEach((n) => n.destroy());
    if (grid) {
      const done = new Set(grid.done);
      for (let k = 0; k < grid.cols * grid.rows; k += 1) {
        const x = (k % grid.cols) * grid.patch, y = Math.floor(k / grid.cols) * grid.patch;
        const rect = new Konva.Rect({
          name: "grid", x, y, width: Math.min(grid.patch, this.width - x), height: Math.min(grid.patch, this.height - y),
          fill: done.has(k) ? "rgba(40,200,90,0.18)" : undefined, stroke: k === current ? "#ffc400" : "rgba(255,255,255,0.45)",
          strokeWidth: k === current ? 3 : 1, strokeScaleEnabled: false, listening: false,
        });
        this.uiLayer.add(rect);
        rect.moveToBottom();
      }
    }
    this.uiLayer.batchDraw();
  }

  /** Fit the view to a rectangle of the image (a patch of a large image). */
  showRect(x0, y0, x1, y1) {
    const sw = this.stage.width(), sh = this.stage.height();
    const s = Math.min(sw / (x1 - x0), sh / (y1 - y0)) * 0.96;
    this.stage.scale({ x: s, y: s });
    this.stage.position({ x: sw / 2 - ((x0 + x1) / 2) * s, y: sh / 2 - ((y0 + y1) / 2) * s });
    this._rescaleHandles();
    this._updateTiles();
  }

  /** Tiles wanted now and how many of them are shown (for tests and the status line). */
  tileStatus() {
    if (!this.tiles) return null;
    const nodes = [...this.tiles.nodes.values()];
    return { level: this.tileLevel(), wanted: nodes.length, loaded: nodes.filter((n) => n.getAttr("loaded")).length };
  }

  clear() {
    this.tiles = null;
    this.seqLayer.destroyChildren();
    this.imageLayer.destroyChildren();
    this.annLayer.destroyChildren();
    this.maskLayer.destroyChildren();
    this.uiLayer.find(".click, .handle, .edge, .stroke, .proposal, .box, .drawbox").forEach((n) => n.destroy());
    this.imageNode = null;
    this.maskNode = null;
    this.instances = [];
    this.selected = null;
  }

  fit() {
    if (!this.width) return;
    const sw = this.stage.width(), sh = this.stage.height();
    const s = Math.min(sw / this.width, sh / this.height) * 0.96;
    this.stage.scale({ x: s, y: s });
    this.stage.position({ x: (sw - this.width * s) / 2, y: (sh - this.height * s) / 2 });
    this._rescaleHandles();
    this._updateTiles();
  }

  zoomAt(point, factor) {
    const old = this.stage.scaleX();
    const s = Math.max(0.05, Math.min(40, old * factor));
    const p = this.stage.position();
    const world = { x: (point.x - p.x) / old, y: (point.y - p.y) / old };
    this.stage.scale({ x: s, y: s });
    this.stage.position({ x: point.x - world.x * s, y: point.y - world.y * s });
    this._rescaleHandles();
    this._scheduleTiles();
  }

  /** Fill strength (0..1) of finished objects; their outlines stay fully visible. */
  setOpacity(value) {
    this.opacity = value;
    this.maskLayer.opacity(Math.min(1, value + 0.15));
    if (this.instances) this.setInstances(this.instances, this.colors, this.selected);
  }

  /** Image coordinates (pixel corners) of the pointer. */
  pointer() {
    const p = this.stage.getPointerPosition();
    if (!p) return null;
    const s = this.stage.scaleX(), o = this.stage.position();
    return { x: (p.x - o.x) / s, y: (p.y - o.y) / s };
  }

  /** Screen (page) coordinates of an image point, for tests and tooltips. */
  toPage(x, y) {
    const s = this.stage.scaleX(), o = this.stage.position();
    const r = this.container.getBoundingClientRect();
    return { x: r.left + o.x + x * s, y: r.top + o.y + y * s };
  }

  // ------------------------------------------------------------ current mask + clicks
  /** Show the current click mask, given as row-major runs {size: [h, w], runs: [bg, fg, ...]}. */
  setMask(mask) {
    this.maskLayer.destroyChildren();
    this.maskNode = null;
    if (mask) {
      const [h, w] = mask.size;
      const [x, y] = mask.offset || [0, 0]; // a large image's mask covers a window of it
      const canvas = Viewer.runsCanvas(mask, [255, 196, 0, 255]);
      this.maskNode = new Konva.Image({ image: canvas, x, y, width: w, height: h, name: "mask" });
      this.maskLayer.add(this.maskNode);
    }
    this.maskLayer.draw();
  }

  /** Paint row-major mask runs {size: [h, w], runs: [bg, fg, ...]} in one RGBA colour on a canvas. */
  static runsCanvas(mask, rgba) {
    const [h, w] = mask.size;
    const canvas = document.createElement("canvas");
    canvas.width = w;
    canvas.height = h;
    const ctx = canvas.getContext("2d");
    const img = ctx.createImageData(w, h);
    const px = new Uint32Array(img.data.buffer);
    const value = new Uint32Array(new Uint8Array(rgba).buffer)[0]; // RGBA, in memory order
    let pos = 0;
    mask.runs.forEach((n, i) => {
      if (i % 2 === 1) px.fill(value, pos, pos + n);
      pos += n;
    });
    ctx.putImageData(img, 0, 0);
    return canvas;
  }

  /** Show the proposed first click (ICP) as a dashed purple ring, with a faint preview of the
   *  object it would select when the proposal carries one (p.mask: runs), or remove it (null). */
  setProposal(p) {
    this.uiLayer.find(".proposal").forEach((n) => n.destroy());
    if (p && p.mask) {
      const [h, w] = p.mask.size;
      const canvas = Viewer.runsCanvas(p.mask, [192, 77, 255, 70]);
      const node = new Konva.Image({ image: canvas, x: 0, y: 0, width: w, height: h, name: "proposal proposal-mask",
                                     listening: false });
      this.uiLayer.add(node);
      node.moveToBottom();
    }
    if (p) {
      const r = Math.max(4, 11 / this.stage.scaleX());
      this.uiLayer.add(new Konva.Circle({
        name: "proposal", x: p.x + 0.5, y: p.y + 0.5, radius: r, listening: false,
        stroke: "#c04dff", strokeWidth: 3, dash: [5, 3], strokeScaleEnabled: false,
      }));
      this.uiLayer.add(new Konva.Circle({
        name: "proposal", x: p.x + 0.5, y: p.y + 0.5, radius: r / 4, listening: false, fill: "#c04dff",
      }));
    }
    this.uiLayer.draw();
  }

  setClicks(clicks) {
    this.uiLayer.find(".click").forEach((n) => n.destroy());
    const r = Math.max(2, 6 / this.stage.scaleX());
    for (const c of clicks) {
      this.uiLayer.add(new Konva.Circle({
        name: "click", x: c.x + 0.5, y: c.y + 0.5, radius: r, listening: false,
        fill: c.positive ? "#22dd44" : "#ff3344", stroke: "#fff", strokeWidth: 1.5, strokeScaleEnabled: false,
      }));
    }
    this.uiLayer.draw();
  }

  /** Show the box the current object was started with ([x0, y0, x1, y1] in image pixels), or none (null). */
  setBox(box) {
    this.uiLayer.find(".box").forEach((n) => n.destroy());
    if (box) {
      const [x0, y0, x1, y1] = box;
      this.uiLayer.add(new Konva.Rect({
        name: "box", x: x0, y: y0, width: x1 - x0, height: y1 - y0, listening: false,
        stroke: "#ffc400", strokeWidth: 1.5, dash: [6, 4], strokeScaleEnabled: false,
      }));
    }
    this.uiLayer.draw();
  }

  /** The finished object under a page point of the stage (its id), or null. */
  instanceAt(pos) {
    const shape = this.annLayer.getIntersection(pos);
    return shape && shape.hasName("instance") ? Number(shape.id().slice(5)) : null;
  }

  // ------------------------------------------------------------ finished objects
  setInstances(instances, colors, selectedId) {
    this.instances = instances;
    this.colors = colors;
    this.selected = selectedId;
    this.annLayer.destroyChildren();
    for (const inst of instances) {
      if (inst.hidden) continue;
      const color = colors[inst.category_id] || "#bbbbbb";
      const isSel = inst.id === selectedId;
      const shape = new Konva.Shape({
        name: "instance",
        id: `inst-${inst.id}`,
        // the outline at full strength, the fill as light as the user sets it (see setOpacity)
        fill: hexToRgba(color, isSel ? Math.min(1, this.opacity + 0.2) : this.opacity),
        stroke: isSel ? "#ffffff" : color,
        strokeWidth: isSel ? 3 : 2,
        strokeScaleEnabled: false,
        fillRule: "evenodd",
        sceneFunc: (ctx, node) => {
          ctx.beginPath();
          for (const poly of inst.polygons) {
            for (const ring of [poly.exterior, ...poly.holes]) {
              ring.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
              ctx.closePath();
            }
          }
          ctx.fillStrokeShape(node);
        },
      });
      shape.on("click tap", (ev) => {
        const mode = this.h.mode();
        if (mode === "polygon" || mode === "eraser" || (mode === "brush" && this.selected === null)) {
          if (ev.evt.button === 0 && !this._moved) this.h.onSelect(inst.id);
        }
      });
      this.annLayer.add(shape);
    }
    this.annLayer.draw();
    this._drawHandles();
  }

  _drawHandles() {
    this.uiLayer.find(".handle, .edge").forEach((n) => n.destroy());
    const inst = this.instances.find((i) => i.id === this.selected);
    if (!inst || inst.hidden || this.h.mode() !== "polygon") { this.uiLayer.draw(); return; }
    const polygons = JSON.parse(JSON.stringify(inst.polygons));
    const commit = () => this.h.onPolygonEdit(inst, polygons);
    polygons.forEach((poly, pi) => {
      const rings = [poly.exterior, ...poly.holes];
      rings.forEach((ring, ri) => {
        const edge = new Konva.Line({
          name: "edge", points: ring.flat(), closed: true, stroke: "#ffffff", strokeWidth: 1.5,
          hitStrokeWidth: 10, strokeScaleEnabled: false, dash: [6, 4],
        });
        edge.on("dblclick dbltap", () => {
          const p = this.pointer();
          let best = 0, bestD = Infinity;
          ring.forEach((a, i) => {
            const d = distToSegment([p.x, p.y], a, ring[(i + 1) % ring.length]);
            if (d < bestD) { bestD = d; best = i; }
          });
          ring.splice(best + 1, 0, [Math.round(p.x * 2) / 2, Math.round(p.y * 2) / 2]);
          commit();
        });
        this.uiLayer.add(edge);
        ring.forEach((pt, vi) => {
          const handle = new Konva.Circle({
            name: "handle", x: pt[0], y: pt[1], radius: HANDLE_PX / this.stage.scaleX(),
            fill: "#ffffff", stroke: "#2f6fdb", strokeWidth: 1.5, strokeScaleEnabled: false, draggable: true,
          });
          handle.setAttr("vertex", { pi, ri, vi });
          handle.on("dragmove", () => {
            ring[vi] = [handle.x(), handle.y()];
            edge.points(ring.flat());
          });
          handle.on("dragend", () => {
            const clamp = (v, hi) => Math.max(0, Math.min(hi, Math.round(v * 2) / 2));
            ring[vi] = [clamp(handle.x(), this.width), clamp(handle.y(), this.height)];
            commit();
          });
          handle.on("dblclick dbltap", (ev) => {
            ev.cancelBubble = true;
            if (ring.length <= 3) {
              if (ri === 0) polygons.splice(pi, 1); else poly.holes.splice(ri - 1, 1);
            } else {
              ring.splice(vi, 1);
            }
            commit();
          });
          handle.on("mouseenter", () => (this.container.style.cursor = "move"));
          handle.on("mouseleave", () => (this.container.style.cursor = ""));
          this.uiLayer.add(handle);
        });
      });
    });
    this.uiLayer.draw();
  }

  /** Page coordinates of vertex ``vi`` of the selected object's first exterior (for tests). */
  vertexPage(vi = 0) {
    const inst = this.instances.find((i) => i.id === this.selected);
    if (!inst) return null;
    const [x, y] = inst.polygons[0].exterior[vi];
    return this.toPage(x, y);
  }

  refreshHandles() { this._drawHandles(); }

  _rescaleHandles() {
    const s = this.stage.scaleX();
    this.uiLayer.find(".handle").forEach((n) => n.radius(HANDLE_PX / s));
    this.uiLayer.find(".click").forEach((n) => n.radius(Math.max(2, 6 / s)));
    this.stage.batchDraw();
  }

  _drawBox(a, b) {
    let node = this.uiLayer.findOne(".drawbox");
    if (!node) {
      node = new Konva.Rect({ name: "drawbox", listening: false, stroke: "#ffc400", strokeWidth: 2,
                              dash: [4, 3], strokeScaleEnabled: false, fill: "rgba(255,196,0,0.08)" });
      this.uiLayer.add(node);
    }
    node.setAttrs({ x: Math.min(a.x, b.x), y: Math.min(a.y, b.y), width: Math.abs(b.x - a.x), height: Math.abs(b.y - a.y) });
  }

  // ------------------------------------------------------------ input
  _bind() {
    const el = this.container;
    el.addEventListener("contextmenu", (e) => e.preventDefault());
    this.stage.on("wheel", (e) => {
      e.evt.preventDefault();
      this.zoomAt(this.stage.getPointerPosition(), e.evt.deltaY < 0 ? 1.15 : 1 / 1.15);
    });
    this.stage.on("mousedown", (e) => {
      const onHandle = e.target.hasName && (e.target.hasName("handle") || e.target.hasName("edge"));
      const pos = this.stage.getPointerPosition();
      this._moved = false;
      const mode = this.h.mode();
      const paint = (mode === "brush" || mode === "eraser") && e.evt.button === 0 && !this.spaceDown;
      // a box is dragged in box mode, or with Shift in click mode
      const boxing = e.evt.button === 0 && !this.spaceDown && (mode === "box" || (mode === "click" && e.evt.shiftKey));
      const select = e.evt.button === 0 && (e.evt.ctrlKey || e.evt.metaKey) && (mode === "click" || mode === "box");
      this._press = { x: pos.x, y: pos.y, button: e.evt.button, start: this.stage.position(), onHandle, paint,
                      boxing: boxing && !select, select, from: this.pointer() };
      if (paint) {
        const p = this.pointer();
        this._stroke = { points: [[p.x, p.y]], erase: mode === "eraser" };
        this._strokeLine = new Konva.Line({
          name: "stroke", points: [p.x, p.y, p.x + 0.01, p.y], lineCap: "round", lineJoin: "round",
          stroke: mode === "eraser" ? "rgba(0,0,0,0.55)" : "rgba(255,196,0,0.6)", strokeWidth: this.h.radius() * 2,
          listening: false,
        });
        this.uiLayer.add(this._strokeLine);
      }
    });
    this.stage.on("mousemove", () => {
      const pos = this.stage.getPointerPosition();
      const mode = this.h.mode();
      const p = this.pointer();
      if (this.h.onPointer) this.h.onPointer(p);
      const brush = mode === "brush" || mode === "eraser";
      this.brushCursor.visible(brush && !!p);
      if (brush && p) this.brushCursor.setAttrs({ x: p.x, y: p.y, radius: this.h.radius() });
      const pr = this._press;
      if (pr && !pr.onHandle) {
        const dx = pos.x - pr.x, dy = pos.y - pr.y;
        if (Math.hypot(dx, dy) > 4) this._moved = true;
        if (this._stroke) {
          this._stroke.points.push([p.x, p.y]);
          this._strokeLine.points(this._stroke.points.flat());
        } else if (pr.boxing) {
          this._drawBox(pr.from, p);
        } else if (this._moved) {
          if (this.spaceDown) this.spaceUsed = true;
          this.stage.position({ x: pr.start.x + dx, y: pr.start.y + dy });
          this._scheduleTiles();
        }
      }
      this.stage.batchDraw();
    });
    const release = (e) => {
      const pr = this._press;
      this._press = null;
      if (!pr) return;
      if (this._stroke) {
        const stroke = this._stroke;
        this._stroke = null;
        this.h.onStroke(stroke.points, stroke.erase).finally(() => {
          if (this._strokeLine) this._strokeLine.destroy();
          this._strokeLine = null;
          this.uiLayer.draw();
        });
        return;
      }
      this.uiLayer.find(".drawbox").forEach((n) => n.destroy());
      const p = this.pointer();
      if (pr.boxing && this._moved && p) {
        const clampX = (v) => Math.max(0, Math.min(this.width, v)), clampY = (v) => Math.max(0, Math.min(this.height, v));
        this.h.onBox(clampX(pr.from.x), clampY(pr.from.y), clampX(p.x), clampY(p.y));
        this.uiLayer.draw();
        return;
      }
      if (this._moved || pr.onHandle || this.spaceDown) return;
      const mode = this.h.mode();
      if (pr.select) { // Ctrl (Cmd) + click selects the finished object under the pointer, or deselects
        this.h.onSelect(this.instanceAt(this.stage.getPointerPosition()));
        return;
      }
      if ((mode === "click" || mode === "box") && p && (pr.button === 0 || pr.button === 2)) {
        if (p.x < 0 || p.y < 0 || p.x >= this.width || p.y >= this.height) return;
        const x = Math.max(0, Math.min(this.width - 1, p.x - 0.5));
        const y = Math.max(0, Math.min(this.height - 1, p.y - 0.5));
        this.h.onClick(x, y, pr.button === 0);
      } else if (mode === "polygon" && e.target === this.stage) {
        this.h.onSelect(null);
      }
    };
    this.stage.on("mouseup", release);
    window.addEventListener("mouseup", (e) => { // a drag that ends outside the canvas still ends
      if (this._press && e.target.tagName !== "CANVAS") release(e);
    });
    this.stage.on("mouseleave", () => {
      this.brushCursor.visible(false);
      if (this.h.onPointer) this.h.onPointer(null);
    });
  }
}
