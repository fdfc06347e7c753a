// Generated from labextension/src/feedWidget.ts by labextension/scripts/build-widget.mjs (jlpm build:widget): do not edit.

// src/dom.ts
function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text !== void 0) {
    node.textContent = text;
  }
  return node;
}
function button(className, label) {
  const node = el("button", className, label);
  node.type = "button";
  return node;
}

// src/protocol.ts
function parseFeedItem(value) {
  if (!isRecord(value) || !isNumber(value.seq) || !isNumber(value.time)) {
    return null;
  }
  if (value.kind === "notification") {
    return {
      seq: value.seq,
      kind: "notification",
      time: value.time,
      channel: String(value.channel ?? ""),
      pid: isNumber(value.pid) ? value.pid : 0,
      payload: String(value.payload ?? ""),
      connection: typeof value.connection === "string" ? value.connection : ""
    };
  }
  if (value.kind === "gap") {
    return {
      seq: value.seq,
      kind: "gap",
      time: value.time,
      start: isNumber(value.start) ? value.start : value.time,
      end: isNumber(value.end) ? value.end : value.time,
      message: String(value.message ?? "")
    };
  }
  return null;
}
function parseFeedState(value) {
  if (!isRecord(value)) {
    return null;
  }
  const listener = value.listener;
  if (listener !== "listening" && listener !== "reconnecting" && listener !== "stopped") {
    return null;
  }
  return {
    listener,
    channels: Array.isArray(value.channels) ? value.channels.map(String) : [],
    count: isNumber(value.count) ? value.count : 0,
    rate: isNumber(value.rate) ? value.rate : 0,
    dropped: isNumber(value.dropped) ? value.dropped : 0
  };
}
function isRecord(value) {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
function isNumber(value) {
  return typeof value === "number" && Number.isFinite(value);
}

// src/payload.ts
function isJsonContainer(text) {
  const first = text.trimStart()[0];
  if (first !== "{" && first !== "[") {
    return false;
  }
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}
var TOKEN = /\s+|"(?:[^"\\]|\\.)*"|[{}[\],:]|[^\s{}[\],:"]+/gy;
function jsonTokens(text) {
  const tokens = [];
  TOKEN.lastIndex = 0;
  for (let match = TOKEN.exec(text); match; match = TOKEN.exec(text)) {
    if (!/^\s/.test(match[0])) {
      tokens.push(match[0]);
    }
  }
  return tokens;
}
var CLOSING = { "{": "}", "[": "]" };
function reindentJson(text, indent = 2) {
  if (!isJsonContainer(text)) {
    return void 0;
  }
  const tokens = jsonTokens(text);
  const parts = [];
  let depth = 0;
  const newline = () => "\n" + " ".repeat(depth * indent);
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i];
    if (token === "{" || token === "[") {
      if (tokens[i + 1] === CLOSING[token]) {
        parts.push(token, tokens[++i]);
      } else {
        depth++;
        parts.push(token, newline());
      }
    } else if (token === "}" || token === "]") {
      depth--;
      parts.push(newline(), token);
    } else if (token === ",") {
      parts.push(",", newline());
    } else if (token === ":") {
      parts.push(": ");
    } else {
      parts.push(token);
    }
  }
  return parts.join("");
}

// src/rows.ts
function renderRow(item, prefix) {
  const row = el("div", `${prefix}-row`);
  row.dataset.seq = String(item.seq);
  row.dataset.time = String(item.time);
  const meta = el("div", `${prefix}-meta`);
  meta.append(el("span", `${prefix}-time`, formatTime(item.time)));
  if (item.kind === "gap") {
    row.classList.add(`${prefix}-gap`);
    row.setAttribute("role", "alert");
    meta.append(el("span", `${prefix}-gapLabel`, gapLabel(item)));
    row.append(meta, el("div", `${prefix}-payload`, gapText(item)));
    return row;
  }
  if (item.connection) {
    meta.append(el("span", `${prefix}-connection`, item.connection));
  }
  meta.append(
    el("span", `${prefix}-channelName`, item.channel),
    el("span", `${prefix}-pid`, `pid ${item.pid}`)
  );
  row.append(meta, renderPayload(item.payload, prefix));
  return row;
}
function gapLabel(item) {
  return `gap ${Math.max(0, item.end - item.start).toFixed(1)} s`;
}
function gapText(item) {
  return `${item.message} (${formatTime(item.start)} → ${formatTime(item.end)})`;
}
function renderPayload(payload, prefix) {
  const pretty = reindentJson(payload);
  if (pretty === void 0) {
    if (payload === "") {
      return el("div", `${prefix}-payload ${prefix}-muted`, "(empty payload)");
    }
    return el("div", `${prefix}-payload`, payload);
  }
  const details = el("details", `${prefix}-payload ${prefix}-json`);
  details.append(el("summary", "", payload), el("pre", "", pretty));
  return details;
}
function formatTime(epochSeconds) {
  const date = new Date(epochSeconds * 1e3);
  const pad = (n, width = 2) => String(n).padStart(width, "0");
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;
}

// src/feedWidget.ts
var CLASS = "pgmagic-feed";
var UNKNOWN_STATE = {
  listener: "stopped",
  channels: [],
  count: 0,
  rate: 0,
  dropped: 0
};
var EVENTS = ["change:items", "change:state", "change:paused"];
function render({
  model,
  el: host
}) {
  const root = el("div", CLASS);
  const header = el("div", `${CLASS}-header`);
  const badge = el("span", `${CLASS}-badge`);
  const stats = el("span", `${CLASS}-stats`);
  const dropped = el("span", `${CLASS}-dropped`);
  const pause = button(`${CLASS}-button`, "Pause");
  const clear = button(`${CLASS}-button`, "Clear");
  const actions = el("span", `${CLASS}-actions`);
  const list = el("div", `${CLASS}-list`);
  const empty = el("div", `${CLASS}-empty`, "No notifications yet.");
  actions.append(pause, clear);
  header.append(badge, stats, dropped, actions);
  root.append(header, list, empty);
  host.append(root);
  pause.addEventListener("click", () => {
    model.set("paused", !model.get("paused"));
    model.save_changes();
  });
  clear.addEventListener("click", () => model.send({ type: "clear" }));
  let rows = /* @__PURE__ */ new Map();
  let frame = 0;
  const draw = () => {
    frame = 0;
    const state = parseFeedState(model.get("state")) ?? UNKNOWN_STATE;
    const paused = model.get("paused") === true;
    badge.textContent = state.listener;
    badge.dataset.state = state.listener;
    const channels = state.channels.length ? state.channels.join(", ") : "none";
    stats.textContent = `${channels} · ${state.count.toLocaleString()} received · ${state.rate.toFixed(1)}/s`;
    dropped.textContent = state.dropped > 0 ? `dropped from view: ${state.dropped.toLocaleString()}` : "";
    dropped.hidden = state.dropped === 0;
    pause.textContent = paused ? "Resume" : "Pause";
    pause.setAttribute("aria-pressed", String(paused));
    root.classList.toggle(`${CLASS}-paused`, paused);
    if (paused) {
      return;
    }
    const items = model.get("items");
    const next = /* @__PURE__ */ new Map();
    const ordered = [];
    for (let i = (Array.isArray(items) ? items.length : 0) - 1; i >= 0; i--) {
      const item = parseFeedItem(items[i]);
      if (item === null) {
        continue;
      }
      const key = `${item.seq}:${item.time}`;
      const row = rows.get(key) ?? renderRow(item, CLASS);
      next.set(key, row);
      ordered.push(row);
    }
    rows = next;
    list.replaceChildren(...ordered);
    empty.hidden = ordered.length > 0;
  };
  const schedule = () => {
    if (frame === 0) {
      frame = requestAnimationFrame(draw);
    }
  };
  for (const event of EVENTS) {
    model.on(event, schedule);
  }
  draw();
  return () => {
    cancelAnimationFrame(frame);
    for (const event of EVENTS) {
      model.off(event, schedule);
    }
  };
}
var feedWidget_default = { render };
export {
  feedWidget_default as default,
  render
};
