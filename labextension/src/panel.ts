/**
 * The "PostgreSQL" side panel: renders one KernelFeed, newest first.
 *
 * Rendering is decoupled from message arrival: feed changes only set
 * flags, and one requestAnimationFrame callback renders whatever piled up,
 * so a burst of batches costs one layout, not one per message.
 */

import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { button, el } from './dom';
import { FeedChange, IExportResult, KernelFeed, MAX_ITEMS } from './feed';
import { filterFromInputs, IFeedFilter, matchesFilter } from './filter';
import { EXPORT_VARIABLE, FeedItem } from './protocol';
import { renderRow } from './rows';

/** What the panel shows: the active notebook and its kernel's feed. */
export interface IFeedSource {
  /** Notebook title, so the user can tell which kernel the feed is for. */
  label: string;
  /** Null while the notebook has no kernel that can carry comms. */
  feed: KernelFeed | null;
}

const CLASS = 'jp-PgFeed';

export class FeedPanel extends Widget {
  constructor() {
    super();
    this.addClass(CLASS);

    const header = el('div', `${CLASS}-header`);
    const titleRow = el('div', `${CLASS}-titleRow`);
    titleRow.append(el('h2', `${CLASS}-title`, 'PostgreSQL'), this._badge);
    header.append(titleRow, this._source, this._stats, this._dropped);

    this._channelSelect.className = `${CLASS}-channel`;
    this._channelSelect.title = 'Show one channel';
    this._channelSelect.addEventListener('change', () =>
      this._scheduleRender(true)
    );

    this._textInput.className = `${CLASS}-text`;
    this._textInput.type = 'search';
    this._textInput.placeholder = 'Filter text';
    this._textInput.addEventListener('input', () => this._scheduleRender(true));

    this._pauseButton.addEventListener('click', () => this._togglePause());
    this._clearButton.addEventListener('click', () => this._feed?.clear());
    this._exportButton.title = `Assign the matching rows to ${EXPORT_VARIABLE} in the notebook`;
    this._exportButton.addEventListener('click', () => this._export());

    const toolbar = el('div', `${CLASS}-toolbar`);
    const buttons = el('div', `${CLASS}-buttons`);
    buttons.append(this._pauseButton, this._clearButton, this._exportButton);
    toolbar.append(this._channelSelect, this._textInput, buttons);

    this._list.setAttribute('role', 'log');
    this._list.setAttribute('aria-live', 'off');
    this.node.append(header, toolbar, this._notice, this._list, this._empty);
    this._setChannelOptions([]);
    this._scheduleRender(true);
  }

  /** Show another notebook's feed (or none). */
  setSource(source: IFeedSource | null): void {
    const feed = source?.feed ?? null;
    this._label = source?.label ?? '';
    if (feed !== this._feed) {
      this._feed?.changed.disconnect(this._onFeedChanged, this);
      this._feed?.exported.disconnect(this._onExported, this);
      this._feed?.exportFailed.disconnect(this._onExportFailed, this);
      this._feed?.disposed.disconnect(this._onFeedDisposed, this);
      this._feed = feed;
      feed?.changed.connect(this._onFeedChanged, this);
      feed?.exported.connect(this._onExported, this);
      feed?.exportFailed.connect(this._onExportFailed, this);
      feed?.disposed.connect(this._onFeedDisposed, this);
      this._seenChannels.clear();
      this._exportNotice = '';
      // Even when paused, show what the other kernel holds: rows from a
      // different kernel would be misleading.
      this._renderedThroughSeq = Infinity;
      this._scheduleRender(true);
    } else {
      this._scheduleRender(false);
    }
  }

  protected override onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this._scheduleRender(true);
  }

  private _onFeedChanged(_feed: KernelFeed, change: FeedChange): void {
    this._scheduleRender(change === 'reset');
  }

  private _onFeedDisposed(): void {
    this.setSource({ label: this._label, feed: null });
  }

  private _onExported(_feed: KernelFeed, result: IExportResult): void {
    this._exportNotice = `Exported ${result.rows.toLocaleString()} rows to ${result.variable}`;
    this._scheduleRender(false);
  }

  private _onExportFailed(_feed: KernelFeed, message: string): void {
    this._exportNotice = `Export failed: ${message}`;
    this._scheduleRender(false);
  }

  private _export(): void {
    const requested = this._feed?.requestExport(this._filter());
    if (requested) {
      this._exportNotice = `Exporting to ${EXPORT_VARIABLE}… (waits for a running cell to finish)`;
      this._scheduleRender(false);
    }
  }

  private _togglePause(): void {
    this._paused = !this._paused;
    this._scheduleRender(false);
  }

  private _scheduleRender(full: boolean): void {
    this._needsFullRender = this._needsFullRender || full;
    if (this._frame === 0) {
      this._frame = requestAnimationFrame(() => {
        this._frame = 0;
        this._render();
      });
    }
  }

  private _render(): void {
    if (this.isDisposed || !this.isVisible) {
      // onAfterShow schedules a full render; flags stay set until then.
      return;
    }
    if (this._needsFullRender) {
      // Filter changes and Clear apply while paused too, but only to the
      // rows that were on screen when the user paused.
      this._renderAllRows(this._paused ? this._renderedThroughSeq : Infinity);
      this._needsFullRender = false;
    } else if (!this._paused) {
      this._renderNewRows();
    }
    this._renderHeader();
    this._renderNotice();
    this._renderEmpty();
  }

  private _renderHeader(): void {
    const feed = this._feed;
    const state = feed?.state ?? null;
    let label: string;
    let badge: string;
    if (feed === null) {
      [label, badge] = this._label
        ? ['no kernel', 'none']
        : ['no notebook', 'none'];
    } else if (feed.status === 'not-loaded') {
      [label, badge] = ['pgmagic not loaded', 'none'];
    } else if (feed.status === 'connecting' || state === null) {
      [label, badge] = ['connecting…', 'none'];
    } else {
      [label, badge] = [state.listener, state.listener];
    }
    this._badge.textContent = label;
    this._badge.dataset.state = badge;

    this._source.textContent = this._label;
    this._source.title = this._label;

    const attached = feed?.status === 'attached' && state !== null;
    if (attached) {
      const channels = state.channels.length
        ? state.channels.join(', ')
        : 'none';
      this._stats.textContent =
        `channels: ${channels} · ${state.count.toLocaleString()} received · ` +
        `${state.rate.toFixed(1)}/s`;
    } else {
      this._stats.textContent = '';
    }
    const dropped = feed?.droppedFromView ?? 0;
    this._dropped.textContent =
      dropped > 0 ? `dropped from view: ${dropped.toLocaleString()}` : '';
    this._dropped.hidden = dropped === 0;

    this._pauseButton.textContent = this._paused ? 'Resume' : 'Pause';
    this._pauseButton.setAttribute('aria-pressed', String(this._paused));
    this._clearButton.disabled = feed === null;
    this._exportButton.disabled = !attached;
    this._setChannelOptions(state?.channels ?? []);
  }

  private _renderNotice(): void {
    let text = this._exportNotice;
    if (this._paused) {
      const pending = this._countUnrendered();
      const paused =
        pending > 0 ? `Paused — ${pending.toLocaleString()} new` : 'Paused';
      text = text ? `${paused} · ${text}` : paused;
    }
    this._notice.textContent = text;
    this._notice.hidden = text === '';
  }

  private _renderEmpty(): void {
    const feed = this._feed;
    let text = '';
    if (this._list.childElementCount > 0) {
      // Rows speak for themselves.
    } else if (feed === null) {
      text = this._label
        ? 'This notebook has no running kernel.'
        : 'Open a notebook to see the notifications its kernel receives.';
    } else if (feed.status === 'not-loaded') {
      text =
        'pgmagic is not loaded in this kernel. Run %load_ext pgmagic in the notebook.';
    } else if (feed.items.length > 0) {
      text = 'No notifications match the filter.';
    } else if (feed.status === 'attached') {
      text = 'No notifications yet.';
    }
    this._empty.textContent = text;
    this._empty.hidden = text === '';
  }

  /**
   * Rebuild the list from the feed's items up to `throughSeq`; rows are
   * cached per item, so this is cheap.
   */
  private _renderAllRows(throughSeq: number): void {
    const items = this._feed?.items ?? [];
    let last = items.length - 1;
    while (last >= 0 && items[last].seq > throughSeq) {
      last--;
    }
    const filter = this._filter();
    const rows: HTMLElement[] = [];
    for (let i = last; i >= 0 && rows.length < MAX_ITEMS; i--) {
      this._noteChannel(items[i]);
      if (matchesFilter(items[i], filter)) {
        rows.push(this._rowFor(items[i]));
      }
    }
    this._list.replaceChildren(...rows);
    this._renderedThroughSeq = items[last]?.seq ?? -Infinity;
  }

  /** Prepend rows for items that arrived since the last render. */
  private _renderNewRows(): void {
    const items = this._feed?.items ?? [];
    const filter = this._filter();
    const rows: HTMLElement[] = [];
    for (let i = items.length - 1; i >= 0; i--) {
      const item = items[i];
      if (item.seq <= this._renderedThroughSeq) {
        break;
      }
      this._noteChannel(item);
      if (matchesFilter(item, filter)) {
        rows.push(this._rowFor(item));
      }
    }
    if (rows.length === 0) {
      return;
    }
    this._list.prepend(...rows);
    while (this._list.childElementCount > MAX_ITEMS) {
      this._list.lastElementChild?.remove();
    }
    this._renderedThroughSeq = items[items.length - 1].seq;
  }

  private _countUnrendered(): number {
    const items = this._feed?.items ?? [];
    let count = 0;
    for (
      let i = items.length - 1;
      i >= 0 && items[i].seq > this._renderedThroughSeq;
      i--
    ) {
      count++;
    }
    return count;
  }

  /** Channels no longer listened to still deserve a filter option. */
  private _noteChannel(item: FeedItem): void {
    if (item.kind === 'notification') {
      this._seenChannels.add(item.channel);
    }
  }

  /** What the toolbar asks for; exports send the same filter to the kernel. */
  private _filter(): IFeedFilter {
    return filterFromInputs(this._channelSelect.value, this._textInput.value);
  }

  private _rowFor(item: FeedItem): HTMLElement {
    let row = this._rows.get(item);
    if (row === undefined) {
      row = renderRow(item, CLASS);
      this._rows.set(item, row);
    }
    return row;
  }

  /** Options: the kernel's channels, channels seen in rows, the selection. */
  private _setChannelOptions(channels: readonly string[]): void {
    const selected = this._channelSelect.value;
    const names = new Set([...channels, ...this._seenChannels]);
    if (selected) {
      names.add(selected);
    }
    const sorted = [...names].sort();
    const key = sorted.join('\u0000');
    if (key === this._channelOptionsKey) {
      return;
    }
    this._channelOptionsKey = key;
    const all = new Option('All channels', '');
    this._channelSelect.replaceChildren(
      all,
      ...sorted.map(name => new Option(name, name))
    );
    this._channelSelect.value = selected;
  }

  private _feed: KernelFeed | null = null;
  private _label = '';
  private _paused = false;
  private _exportNotice = '';
  private _frame = 0;
  private _needsFullRender = true;
  private _renderedThroughSeq = -Infinity;
  private _channelOptionsKey: string | null = null;
  private _seenChannels = new Set<string>();
  /** Items are immutable once received, so their rows can be reused. */
  private _rows = new WeakMap<FeedItem, HTMLElement>();

  private _badge = el('span', `${CLASS}-badge`);
  private _source = el('div', `${CLASS}-source`);
  private _stats = el('div', `${CLASS}-stats`);
  private _dropped = el('div', `${CLASS}-dropped`);
  private _notice = el('div', `${CLASS}-notice`);
  private _list = el('div', `${CLASS}-list`);
  private _empty = el('div', `${CLASS}-empty`);
  private _channelSelect = document.createElement('select');
  private _textInput = document.createElement('input');
  private _pauseButton = button(`${CLASS}-button`, 'Pause');
  private _clearButton = button(`${CLASS}-button`, 'Clear');
  private _exportButton = button(`${CLASS}-button`, 'Export');
}
