// Thin JSON client for the clickmask server API. Errors become Error(detail).
let pending = 0;
// One id per browser tab: the server keeps each tab's clicks apart.
const TAB = sessionStorage.getItem("clickmask-tab") || Math.random().toString(36).slice(2, 12);
sessionStorage.setItem("clickmask-tab", TAB);
const listeners = new Set();

export function onPendingChange(fn) { listeners.add(fn); }
function setPending(delta) { pending += delta; listeners.forEach((fn) => fn(pending)); }

export async function request(method, url, body) {
  setPending(1);
  try {
    const init = { method, headers: { "X-Clickmask-Tab": TAB } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const res = await fetch(url, init);
    const text = await res.text();
    const data = text ? JSON.parse(text) : null;
    if (!res.ok) {
      const err = new Error((data && data.detail) || `${res.status} ${res.statusText}`);
      err.status = res.status;
      throw err;
    }
    return data;
  } finally {
    setPending(-1);
  }
}

/** A queue: ``run(fn)`` calls ``fn`` once everything given to it before has settled, and returns its promise. */
export function inTurn() {
  let last = Promise.resolve();
  return (fn) => {
    const done = last.then(fn);
    last = done.catch(() => {});
    return done;
  };
}

// The requests that change an object in progress go out one after another, in the order the user made them:
// an Esc and a quick click after it must not reach the server the other way round and drop the click.
const objectQueue = inTurn();
export const inOrder = (method, url, body) => objectQueue(() => request(method, url, body));

export const api = {
  status: () => request("GET", "/api/status"),
  images: () => request("GET", "/api/images"),
  rescan: () => request("POST", "/api/images/rescan"),
  image: (id) => request("GET", `/api/images/${id}`),
  open: (id) => request("POST", `/api/images/${id}/open`),
  setStatus: (id, status) => request("PUT", `/api/images/${id}/status`, { status }),
  click: (id, x, y, positive, categoryId = null, view = null) =>
    inOrder("POST", `/api/images/${id}/clicks`, { x, y, positive, category_id: categoryId, ...(view ? { view } : {}) }),
  box: (id, x0, y0, x1, y1, categoryId = null) =>
    inOrder("POST", `/api/images/${id}/box`, { x0, y0, x1, y1, category_id: categoryId }),
  choose: (id, index) => inOrder("POST", `/api/images/${id}/choice`, { index }),
  currentMask: (id) => request("GET", `/api/images/${id}/mask`),
  undoClick: (id) => inOrder("DELETE", `/api/images/${id}/clicks/last`),
  redoClick: (id) => inOrder("POST", `/api/images/${id}/clicks/redo`),
  resetClicks: (id) => inOrder("DELETE", `/api/images/${id}/clicks`),
  proposal: (id, categoryId) => request("GET", `/api/images/${id}/proposal?category_id=${categoryId}`),
  adaptation: (cid) => request("GET", `/api/categories/${cid}/adaptation`),
  resetAdaptation: (cid) => request("DELETE", `/api/categories/${cid}/adaptation`),
  finish: (id, categoryId) => inOrder("POST", `/api/images/${id}/finish`, { category_id: categoryId }),
  patchInstance: (iid, body) => request("PATCH", `/api/instances/${iid}`, body),
  strokeInstance: (iid, body) => request("POST", `/api/instances/${iid}/stroke`, body),
  strokeNew: (id, body) => request("POST", `/api/images/${id}/stroke`, body),
  deleteInstance: (iid, version) => request("DELETE", `/api/instances/${iid}?version=${version}`),
  reorder: (id, order) => request("PUT", `/api/images/${id}/order`, { order }),
  undo: (id) => request("POST", `/api/images/${id}/undo`),
  redo: (id) => request("POST", `/api/images/${id}/redo`),
  categories: () => request("GET", "/api/categories"),
  addCategory: (name, color) => request("POST", "/api/categories", { name, color }),
  patchCategory: (cid, body) => request("PATCH", `/api/categories/${cid}`, body),
  deleteCategory: (cid) => request("DELETE", `/api/categories/${cid}`),
  saveCategories: (path, overwrite = false) => request("POST", "/api/categories/save", { path, overwrite }),
  loadCategories: (path) => request("POST", "/api/categories/load", { path }),
  exportAs: (format) => request("POST", "/api/export", { format }),
  importFrom: (path) => request("POST", "/api/import", { path }),
  importFiles: () => request("GET", "/api/import/files"),
  importUpload: (name, text) => request("POST", "/api/import/upload", { name, text }),
  display: (id) => request("GET", `/api/images/${id}/display`),
  grid: (id) => request("GET", `/api/images/${id}/grid`),
  setGrid: (id, change) => request("PUT", `/api/images/${id}/grid`, change),
  setDisplay: (id, settings) => request("PUT", `/api/images/${id}/display`, { settings }),
  getSetting: (key) => request("GET", `/api/settings/${key}`),
  putSetting: (key, value) => request("PUT", `/api/settings/${key}`, { value }),
  references: () => request("GET", "/api/references"),
  makeReference: (instanceId, negativeId, categoryId) =>
    request("POST", "/api/references", { instance_id: instanceId, negative_instance_id: negativeId, category_id: categoryId }),
  switchReference: (key, enabled) => request("PATCH", `/api/references/${key}`, { enabled }),
  clearReference: (key) => request("DELETE", `/api/references/${key}`),
};
