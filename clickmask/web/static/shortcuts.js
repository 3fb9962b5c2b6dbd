// Configurable keyboard shortcuts: action -> key string such as "ctrl+z", " ", "d".
export const ACTIONS = {
  prev: ["Previous image", "a"],
  next: ["Next image", "d"],
  finish: ["Finish object", " "],
  acceptProposal: ["Accept the proposed first click", "enter"],
  undo: ["Undo click / edit", "ctrl+z"],
  redo: ["Redo click / edit", "ctrl+y"],
  cancel: ["Drop the current clicks (or deselect)", "escape"],
  nextMask: ["Next mask of the first click or box (part / whole)", "tab"],
  prevMask: ["Previous mask of the first click or box", "shift+tab"],
  modeClick: ["Click mode (Shift+drag: box)", "c"],
  modeBox: ["Box mode: drag a box around the object", "r"],
  modePolygon: ["Polygon mode", "p"],
  modeBrush: ["Brush", "b"],
  modeEraser: ["Eraser", "e"],
  radiusUp: ["Bigger brush", "]"],
  radiusDown: ["Smaller brush", "["],
  fit: ["Fit to window", "f"],
  gridNext: ["Large image: next patch not done", "n"],
  gridDone: ["Large image: mark the patch done (or not)", "k"],
  done: ["Mark image done", "m"],
  hide: ["Hide / show selected object", "h"],
  remove: ["Delete selected object", "delete"],
  help: ["Shortcuts help", "?"],
};

export function defaults() {
  return Object.fromEntries(Object.entries(ACTIONS).map(([k, v]) => [k, v[1]]));
}

/** The key string of a keyboard event, e.g. "ctrl+shift+z". */
export function keyOf(ev) {
  let key = ev.key.length === 1 ? ev.key.toLowerCase() : ev.key.toLowerCase();
  if (key === "?" || key === "[" || key === "]") {
    return key;
  }
  const mods = [];
  if (ev.ctrlKey || ev.metaKey) mods.push("ctrl");
  if (ev.altKey) mods.push("alt");
  if (ev.shiftKey && (key.length > 1 || ev.ctrlKey || ev.metaKey)) mods.push("shift");
  return [...mods, key].join("+");
}

export function label(key) {
  return key === " " ? "Space" : key;
}

export function actionFor(bindings, ev) {
  const key = keyOf(ev);
  for (const [action, k] of Object.entries(bindings)) {
    if (k === key) return action;
  }
  return null;
}
