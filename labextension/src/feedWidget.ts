/**
 * Front end of the in-notebook feed widget (`%pg listen`), an anywidget.
 *
 * anywidget loads one self-contained ESM file and resolves no imports, so
 * `scripts/build-widget.mjs` bundles this module with the row renderer it
 * shares with the side panel into `pgmagic/_static/feed.js`, the file
 * `pgmagic.feed.FeedWidget` ships. The labextension never loads it.
 *
 * Traits are the source of truth: `items` (newest last), `state`, `paused`.
 * The Python side resends the whole bounded `items` list on every batch, so
 * rows are cached by item and reused: re-rendering 200 rows costs no JSON
 * parsing and keeps expanded payloads expanded.
 */

import type { AnyModel } from '@anywidget/types';

import { button, el } from './dom';
import { IFeedState, parseFeedItem, parseFeedState } from './protocol';
import { renderRow } from './rows';

const CLASS = 'pgmagic-feed';

/** The traits of `pgmagic.feed.FeedWidget`, unvalidated: Python fills them. */
export type FeedWidgetTraits = {
  items: unknown[];
  state: unknown;
  paused: boolean;
};

/** The part of anywidget's model this view uses. */
export type FeedWidgetModel = Pick<
  AnyModel<FeedWidgetTraits>,
  'get' | 'set' | 'on' | 'off' | 'save_changes' | 'send'
>;

/** Shown for a state without a known listener value. */
const UNKNOWN_STATE: IFeedState = {
  listener: 'stopped',
  channels: [],
  count: 0,
  rate: 0,
  dropped: 0
};

const EVENTS = ['change:items', 'change:state', 'change:paused'] as const;

/** anywidget's render hook; the returned function is its cleanup. */
export function render({
  model,
  el: host
}: {
  model: FeedWidgetModel;
  el: HTMLElement;
}): () => void {
  const root = el('div', CLASS);
  const header = el('div', `${CLASS}-header`);
  const badge = el('span', `${CLASS}-badge`);
  const stats = el('span', `${CLASS}-stats`);
  const dropped = el('span', `${CLASS}-dropped`);
  const pause = button(`${CLASS}-button`, 'Pause');
  const clear = button(`${CLASS}-button`, 'Clear');
  const actions = el('span', `${CLASS}-actions`);
  const list = el('div', `${CLASS}-list`);
  const empty = el('div', `${CLASS}-empty`, 'No notifications yet.');
  actions.append(pause, clear);
  header.append(badge, stats, dropped, actions);
  root.append(header, list, empty);
  host.append(root);

  pause.addEventListener('click', () => {
    model.set('paused', !model.get('paused'));
    model.save_changes();
  });
  clear.addEventListener('click', () => model.send({ type: 'clear' }));

  // Keyed by seq and time: seq restarts when the kernel-side feed does.
  let rows = new Map<string, HTMLElement>();
  let frame = 0;

  const draw = () => {
    frame = 0;
    const state = parseFeedState(model.get('state')) ?? UNKNOWN_STATE;
    const paused = model.get('paused') === true;
    badge.textContent = state.listener;
    badge.dataset.state = state.listener;
    const channels = state.channels.length ? state.channels.join(', ') : 'none';
    stats.textContent =
      `${channels} · ${state.count.toLocaleString()} received · ` +
      `${state.rate.toFixed(1)}/s`;
    dropped.textContent =
      state.dropped > 0
        ? `dropped from view: ${state.dropped.toLocaleString()}`
        : '';
    dropped.hidden = state.dropped === 0;
    pause.textContent = paused ? 'Resume' : 'Pause';
    pause.setAttribute('aria-pressed', String(paused));
    root.classList.toggle(`${CLASS}-paused`, paused);
    if (paused) {
      // Keep the rows the user is reading.
      return;
    }

    const items = model.get('items');
    const next = new Map<string, HTMLElement>();
    const ordered: HTMLElement[] = [];
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

export default { render };
