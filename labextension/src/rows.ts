/**
 * One feed item as a DOM row: the single renderer behind the side panel and
 * the in-notebook feed widget.
 *
 * The widget is an anywidget that loads one self-contained ESM file, so it
 * cannot import this module at run time; `scripts/build-widget.mjs` bundles
 * it into `pgmagic/_static/feed.js` instead. The two hosts differ only in
 * the class prefix, which keeps each stylesheet scoped to its own host.
 *
 * Row structure (class names without the prefix):
 *
 *     -row [-gap]        data-seq, data-time
 *       -meta            -time, then [-connection] -channelName and -pid,
 *                        or -gapLabel
 *       -payload         the text as sent, or <details class="-json"> for a
 *                        JSON object or array: summary as sent, pre re-indented
 */

import { el } from './dom';
import { reindentJson } from './payload';
import type { FeedItem } from './protocol';

export function renderRow(item: FeedItem, prefix: string): HTMLElement {
  const row = el('div', `${prefix}-row`);
  row.dataset.seq = String(item.seq);
  row.dataset.time = String(item.time);
  const meta = el('div', `${prefix}-meta`);
  meta.append(el('span', `${prefix}-time`, formatTime(item.time)));

  if (item.kind === 'gap') {
    row.classList.add(`${prefix}-gap`);
    // A gap means lost notifications: worth announcing, unlike new rows.
    row.setAttribute('role', 'alert');
    meta.append(el('span', `${prefix}-gapLabel`, gapLabel(item)));
    row.append(meta, el('div', `${prefix}-payload`, gapText(item)));
    return row;
  }

  if (item.connection) {
    // Another named connection's listener received it (the side panel gathers them).
    meta.append(el('span', `${prefix}-connection`, item.connection));
  }
  meta.append(
    el('span', `${prefix}-channelName`, item.channel),
    el('span', `${prefix}-pid`, `pid ${item.pid}`)
  );
  row.append(meta, renderPayload(item.payload, prefix));
  return row;
}

/** `gap 2.5 s`: how long the listener was disconnected. */
function gapLabel(item: { start: number; end: number }): string {
  return `gap ${Math.max(0, item.end - item.start).toFixed(1)} s`;
}

/** The kernel's message followed by the wall-clock window it covers. */
function gapText(item: {
  start: number;
  end: number;
  message: string;
}): string {
  return `${item.message} (${formatTime(item.start)} → ${formatTime(item.end)})`;
}

/**
 * The payload as sent. A JSON object or array collapses to one line and
 * opens onto a re-indented view of the same tokens; no value is re-serialized.
 */
function renderPayload(payload: string, prefix: string): HTMLElement {
  const pretty = reindentJson(payload);
  if (pretty === undefined) {
    if (payload === '') {
      return el('div', `${prefix}-payload ${prefix}-muted`, '(empty payload)');
    }
    return el('div', `${prefix}-payload`, payload);
  }
  const details = el('details', `${prefix}-payload ${prefix}-json`);
  details.append(el('summary', '', payload), el('pre', '', pretty));
  return details;
}

/** Local wall-clock time with milliseconds: HH:MM:SS.mmm. */
export function formatTime(epochSeconds: number): string {
  const date = new Date(epochSeconds * 1000);
  const pad = (n: number, width = 2) => String(n).padStart(width, '0');
  return (
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}` +
    `.${pad(date.getMilliseconds(), 3)}`
  );
}
