// Front end of the pgmagic notification feed widget (anywidget ESM, no build).
//
// Traits are the source of truth: `items` (newest last), `state`, `paused`.
// The Python side resends the whole bounded `items` list on every batch, so
// rows are cached by item identity and reused: re-rendering 200 rows costs
// no JSON parsing and keeps expanded payloads expanded.

const CLS = "pgmagic-feed";
const STATE_LABELS = {
  listening: "listening",
  reconnecting: "reconnecting",
  stopped: "stopped",
};

function h(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Local wall-clock time with milliseconds: HH:MM:SS.mmm. */
function formatTime(epochSeconds) {
  const d = new Date(epochSeconds * 1000);
  const p = (n, w = 2) => String(n).padStart(w, "0");
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

/** Parsed JSON when the payload is an object or array, else undefined. */
function jsonContainer(text) {
  const first = text.trimStart()[0];
  if (first !== "{" && first !== "[") return undefined;
  try {
    const value = JSON.parse(text);
    return typeof value === "object" && value !== null ? value : undefined;
  } catch {
    return undefined;
  }
}

function renderPayload(payload) {
  const json = jsonContainer(payload);
  if (json === undefined) {
    const node = h("div", `${CLS}-payload`, payload === "" ? "(empty payload)" : payload);
    if (payload === "") node.classList.add(`${CLS}-muted`);
    return node;
  }
  const details = h("details", `${CLS}-payload ${CLS}-json`);
  details.append(h("summary", "", JSON.stringify(json)), h("pre", "", JSON.stringify(json, null, 2)));
  return details;
}

function renderRow(item) {
  const row = h("div", `${CLS}-row`);
  row.dataset.seq = String(item.seq);
  const time = h("span", `${CLS}-time`, formatTime(item.time));
  if (item.kind === "gap") {
    row.classList.add(`${CLS}-gap`);
    row.setAttribute("role", "alert");
    const seconds = Math.max(0, (item.end ?? item.time) - (item.start ?? item.time));
    const span = `${formatTime(item.start ?? item.time)} → ${formatTime(item.end ?? item.time)}`;
    row.append(
      time,
      h("span", `${CLS}-gap-label`, `gap ${seconds.toFixed(1)} s`),
      h("span", `${CLS}-pid`, ""),
      h("div", `${CLS}-payload`, `${item.message ?? ""} (${span})`),
    );
    return row;
  }
  row.append(
    time,
    h("span", `${CLS}-channel`, String(item.channel ?? "")),
    h("span", `${CLS}-pid`, `pid ${item.pid}`),
    renderPayload(String(item.payload ?? "")),
  );
  return row;
}

function render({ model, el }) {
  const root = h("div", CLS);
  const header = h("div", `${CLS}-header`);
  const badge = h("span", `${CLS}-badge`);
  const stats = h("span", `${CLS}-stats`);
  const dropped = h("span", `${CLS}-dropped`);
  const pause = h("button", `${CLS}-button`);
  const clear = h("button", `${CLS}-button`, "Clear");
  const actions = h("span", `${CLS}-actions`);
  const list = h("div", `${CLS}-list`);
  const empty = h("div", `${CLS}-empty`, "No notifications yet.");
  pause.type = clear.type = "button";
  actions.append(pause, clear);
  header.append(badge, stats, dropped, actions);
  root.append(header, list, empty);
  el.append(root);

  pause.addEventListener("click", () => {
    model.set("paused", !model.get("paused"));
    model.save_changes();
  });
  clear.addEventListener("click", () => model.send({ type: "clear" }));

  // Keyed by seq and time: seq restarts when the kernel-side feed does.
  let rows = new Map();
  let frame = 0;

  function draw() {
    frame = 0;
    const state = model.get("state") ?? {};
    const paused = Boolean(model.get("paused"));
    const listener = STATE_LABELS[state.listener] ? state.listener : "stopped";
    badge.textContent = STATE_LABELS[listener];
    badge.dataset.state = listener;
    const channels = Array.isArray(state.channels) && state.channels.length ? state.channels.join(", ") : "none";
    stats.textContent =
      `${channels} · ${Number(state.count ?? 0).toLocaleString()} received · ` +
      `${Number(state.rate ?? 0).toFixed(1)}/s`;
    const droppedCount = Number(state.dropped ?? 0);
    dropped.textContent = droppedCount > 0 ? `dropped from view: ${droppedCount.toLocaleString()}` : "";
    dropped.hidden = droppedCount === 0;
    pause.textContent = paused ? "Resume" : "Pause";
    pause.setAttribute("aria-pressed", String(paused));
    root.classList.toggle(`${CLS}-paused`, paused);
    if (paused) return; // Keep the rows the user is reading.

    const items = model.get("items") ?? [];
    const next = new Map();
    const ordered = [];
    for (let i = items.length - 1; i >= 0; i--) {
      const item = items[i];
      const key = `${item.seq}:${item.time}`;
      const row = rows.get(key) ?? renderRow(item);
      next.set(key, row);
      ordered.push(row);
    }
    rows = next;
    list.replaceChildren(...ordered);
    empty.hidden = ordered.length > 0;
  }

  const schedule = () => {
    if (frame === 0) frame = requestAnimationFrame(draw);
  };
  const events = ["change:items", "change:state", "change:paused"];
  for (const event of events) model.on(event, schedule);
  draw();

  return () => {
    cancelAnimationFrame(frame);
    for (const event of events) model.off(event, schedule);
  };
}

export default { render };
