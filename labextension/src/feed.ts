/**
 * One notification feed per kernel: the comm to the kernel side of pgmagic
 * and the bounded history the side panel renders.
 *
 * The frontend opens the `pgmagic.panel` comm; the kernel only registers its
 * target on `%load_ext pgmagic` (front ends without this extension must not
 * be sent comms they cannot handle). Before that, the kernel answers an
 * open with a close, and the feed tries again after the next cell.
 */

import type { Kernel, KernelMessage } from '@jupyterlab/services';
import type { JSONObject } from '@lumino/coreutils';
import type { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';

import type { IFeedFilter } from './filter';
import {
  COMM_TARGET,
  EXPORT_VARIABLE,
  FeedItem,
  ICompletions,
  IExportRequest,
  IJobEnded,
  IFeedState,
  parseKernelMessage,
  toCommData
} from './protocol';

/** Rows the frontend keeps per kernel; older ones are evicted. */
export const MAX_ITEMS = 2000;

/**
 * How long a completion request waits for the kernel. With subshells
 * (JupyterLab 4.4+, ipykernel 7+) it answers in milliseconds even while a
 * cell runs; without them it answers only after the cell, too late to help.
 */
export const COMPLETE_TIMEOUT_MS = 1500;

/** How long a job's Cancel button waits for the kernel to take the request. */
export const CANCEL_TIMEOUT_MS = 5000;

/**
 * User Timing marks around the latest completion request's comm round trip,
 * for the performance panel of the browser's developer tools and for
 * `benchmarks/bench_complete_browser.py`. Only the latest of each is kept.
 */
export const COMPLETE_ASKED = 'pgmagic:complete-asked';
export const COMPLETE_REPLIED = 'pgmagic:complete-replied';

function mark(name: string): void {
  performance.clearMarks(name);
  performance.mark(name);
}

/**
 * Where the feed stands with respect to the kernel side.
 *
 * - `not-loaded`: no comm; the kernel refused the last one (pgmagic is not
 *   loaded) or closed it (`%unload_ext`, restart).
 * - `connecting`: a comm is open or being opened, no snapshot yet.
 * - `attached`: the kernel has sent its state at least once.
 */
export type FeedStatus = 'not-loaded' | 'connecting' | 'attached';

/**
 * What changed, so the panel can render incrementally.
 *
 * `reset` means the item list was replaced (snapshot, clear); `append` means
 * items were added at the end; `state` covers header-only changes.
 */
export type FeedChange = 'reset' | 'append' | 'state';

export interface IExportResult {
  variable: string;
  rows: number;
}

export class KernelFeed implements IDisposable {
  constructor(readonly kernel: Kernel.IKernelConnection) {
    kernel.statusChanged.connect(this._onStatusChanged, this);
    kernel.connectionStatusChanged.connect(this._onConnectionStatus, this);
    kernel.iopubMessage.connect(this._onIOPubMessage, this);
    kernel.disposed.connect(this.dispose, this);
    void this._attach();
  }

  get changed(): ISignal<this, FeedChange> {
    return this._changed;
  }

  get exported(): ISignal<this, IExportResult> {
    return this._exported;
  }

  /** The kernel could not export; the message says why. */
  get exportFailed(): ISignal<this, string> {
    return this._exportFailed;
  }

  /** The kernel ran DDL since the catalog was last read. */
  get catalogChanged(): ISignal<this, void> {
    return this._catalogChanged;
  }

  /** A background job of this kernel ended. */
  get jobEnded(): ISignal<this, IJobEnded> {
    return this._jobEnded;
  }

  get disposed(): ISignal<this, void> {
    return this._disposed;
  }

  /**
   * Replies to requests (`schema`, `columns`): every kernel message that
   * carries a numeric `id`, as received; `schema.ts` validates them.
   */
  get replied(): ISignal<this, Record<string, unknown>> {
    return this._replied;
  }

  /**
   * Send a request on the comm; false when there is none. The reply comes
   * on `replied`, after a running cell finishes (the shell channel).
   */
  request(data: JSONObject): boolean {
    if (!this._comm) {
      return false;
    }
    this._comm.send(data);
    return true;
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  get status(): FeedStatus {
    return this._status;
  }

  /** Latest state sent by the kernel, or null before the first message. */
  get state(): IFeedState | null {
    return this._state;
  }

  /** Held items, oldest first. */
  get items(): readonly FeedItem[] {
    return this._items;
  }

  /**
   * Items received but no longer shown: evicted by the bound here or
   * already gone from the kernel's history when the snapshot was taken.
   */
  get droppedFromView(): number {
    return this._droppedFromView;
  }

  /** Forget the held items; the kernel keeps its own history. */
  clear(): void {
    const last = this._items[this._items.length - 1];
    if (last) {
      this._clearedThroughSeq = Math.max(this._clearedThroughSeq, last.seq);
    }
    this._items = [];
    this._droppedFromView = 0;
    this._changed.emit('reset');
  }

  /**
   * Ask the kernel to assign the matching items to a DataFrame variable.
   *
   * Returns false when there is no comm to send on. The reply arrives on
   * `exported`; while a cell runs, at once when the kernel serves comms on a
   * subshell (JupyterLab 4.4+, ipykernel 7+), else once the cell finishes.
   */
  requestExport(filter: IFeedFilter): boolean {
    if (!this._comm) {
      return false;
    }
    const request: IExportRequest = {
      type: 'export',
      variable: EXPORT_VARIABLE,
      channel: filter.channel,
      text: filter.text
    };
    if (this._clearedThroughSeq > -Infinity) {
      // The kernel keeps its history through a Clear; leave the cleared rows out.
      request.after_seq = this._clearedThroughSeq;
    }
    this._comm.send(toCommData(request));
    return true;
  }

  /**
   * Ask the kernel what completes the word at `pos` (in code points) of a
   * cell's `code`.
   *
   * Resolves to null at once without an attached comm (pgmagic not loaded),
   * and after `timeoutMs` without a reply.
   */
  complete(
    code: string,
    pos: number,
    timeoutMs = COMPLETE_TIMEOUT_MS
  ): Promise<ICompletions | null> {
    const comm = this._comm;
    if (!comm || this._status !== 'attached') {
      return Promise.resolve(null);
    }
    const id = ++this._lastCompleteId;
    return new Promise(resolve => {
      const timer = setTimeout(() => this._settle(id, null), timeoutMs);
      this._pending.set(id, reply => {
        clearTimeout(timer);
        mark(COMPLETE_REPLIED);
        resolve(reply);
      });
      mark(COMPLETE_ASKED);
      comm.send(toCommData({ type: 'complete', id, code, pos }));
    });
  }

  /**
   * Ask the kernel to cancel background job `job` on the server.
   *
   * Resolves to null once the kernel has taken the request (the job's
   * handle then shows `cancelled` when it has wound down), or to the reason
   * it could not: no comm, a job the kernel does not know, no answer.
   */
  cancelJob(
    job: number,
    timeoutMs = CANCEL_TIMEOUT_MS
  ): Promise<string | null> {
    const comm = this._comm;
    if (!comm) {
      return Promise.resolve('pgmagic is not loaded in this kernel');
    }
    // Negative: the Schema view numbers its requests from 0 up, on the same signal.
    const id = -++this._lastCancelId;
    return new Promise(resolve => {
      const timer = setTimeout(() => {
        this._replied.disconnect(onReply);
        resolve('the kernel did not answer');
      }, timeoutMs);
      const onReply = (_feed: this, data: Record<string, unknown>) => {
        if (data.id !== id) {
          return;
        }
        clearTimeout(timer);
        this._replied.disconnect(onReply);
        resolve(
          data.type === 'error'
            ? String(data.message ?? 'the kernel refused')
            : null
        );
      };
      this._replied.connect(onReply);
      comm.send(toCommData({ type: 'cancel-job', id, job }));
    });
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    this._settleAll();
    // The comm is left open on purpose: it belongs to the kernel session,
    // and a reloaded page re-attaches to it by id.
    this._comm = null;
    this._disposed.emit();
    Signal.clearData(this);
  }

  /**
   * Attach to the kernel side: re-attach to a comm the kernel already holds
   * (page reload, another tab), else open one. Re-attaching first keeps one
   * bridge per kernel instead of one more per page load.
   */
  private async _attach(): Promise<void> {
    if (this._comm || this._attaching || this._isDisposed) {
      return;
    }
    this._attaching = true;
    try {
      const commId = await this._findKernelComm();
      if (this._comm || this._isDisposed) {
        return;
      }
      if (commId !== null) {
        this._adopt(this.kernel.createComm(COMM_TARGET, commId));
        this._send({ type: 'hello' });
      } else {
        const comm = this.kernel.createComm(COMM_TARGET);
        this._adopt(comm);
        // Answered by a snapshot, or by a close while pgmagic is not loaded.
        void comm.open({});
      }
    } catch (reason) {
      // The kernel went away mid-request; the next status change retries.
      console.debug('pgmagic: attaching to the kernel failed', reason);
    } finally {
      this._attaching = false;
    }
  }

  /** A `pgmagic.panel` comm the kernel holds and this connection does not. */
  private async _findKernelComm(): Promise<string | null> {
    const reply = await this.kernel.requestCommInfo({
      target_name: COMM_TARGET
    });
    if (reply.content.status !== 'ok') {
      return null;
    }
    const comms = reply.content.comms;
    // Old kernels ignore target_name and list every comm.
    const commId = Object.keys(comms).find(
      id => comms[id].target_name === COMM_TARGET && !this.kernel.hasComm(id)
    );
    return commId ?? null;
  }

  private _adopt(comm: Kernel.IComm): void {
    this._comm = comm;
    if (comm.commId !== this._lastCommId) {
      // Another comm may come from another `%load_ext`: a new sequence space.
      this._clearedThroughSeq = -Infinity;
      this._lastCommId = comm.commId;
    }
    comm.onMsg = msg => {
      if (this._comm === comm) {
        this._handleData(msg.content.data);
      }
    };
    comm.onClose = () => {
      // A refused open leaves a handler behind (listening to the kernel's
      // status, holding a subshell reference): one per attempt otherwise.
      comm.dispose();
      if (this._comm === comm) {
        this._comm = null;
        this._settleAll();
        this._setStatus('not-loaded');
      }
    };
    this._setStatus('connecting');
  }

  private _send(message: { type: 'hello' }): void {
    this._comm?.send(toCommData(message));
  }

  private _handleData(data: unknown): void {
    if (isReply(data)) {
      this._replied.emit(data);
      if (data.type !== 'completions') {
        // An error with an id answers a request, not an export.
        return;
      }
    }
    const message = parseKernelMessage(data);
    if (message === null) {
      return;
    }
    switch (message.type) {
      case 'snapshot': {
        const cleared = this._clearedThroughSeq > -Infinity;
        const items = message.items
          .filter(item => item.seq > this._clearedThroughSeq)
          .sort((a, b) => a.seq - b.seq);
        const evicted = Math.max(0, items.length - MAX_ITEMS);
        this._items = items.slice(evicted);
        // After a Clear, the kernel's losses predate what the user wants.
        this._droppedFromView = (cleared ? 0 : message.state.dropped) + evicted;
        this._state = message.state;
        this._setStatus('attached', false);
        this._changed.emit('reset');
        break;
      }
      case 'batch': {
        const lastSeq = this._items[this._items.length - 1]?.seq ?? -Infinity;
        // A batch can overlap the snapshot that answered our hello.
        const fresh = message.items.filter(item => item.seq > lastSeq);
        this._items = this._items.concat(fresh);
        const evicted = Math.max(0, this._items.length - MAX_ITEMS);
        if (evicted > 0) {
          this._items = this._items.slice(evicted);
          this._droppedFromView += evicted;
        }
        this._state = message.state;
        this._setStatus('attached', false);
        this._changed.emit(fresh.length > 0 ? 'append' : 'state');
        break;
      }
      case 'exported':
        this._exported.emit({
          variable: message.variable,
          rows: message.rows
        });
        break;
      case 'error':
        this._exportFailed.emit(message.message);
        break;
      case 'catalog-changed':
        this._catalogChanged.emit();
        break;
      case 'job-ended':
        this._jobEnded.emit(message);
        break;
      case 'completions':
        if (message.id !== null) {
          this._settle(message.id, message);
        }
        break;
    }
  }

  /** Answer one pending completion request; later replies to it are ignored. */
  private _settle(id: number, reply: ICompletions | null): void {
    const resolve = this._pending.get(id);
    this._pending.delete(id);
    resolve?.(reply);
  }

  /** No comm any more: nobody will answer the pending requests. */
  private _settleAll(): void {
    [...this._pending.keys()].forEach(id => this._settle(id, null));
  }

  private _onStatusChanged(
    _kernel: Kernel.IKernelConnection,
    status: Kernel.Status
  ): void {
    if (
      status === 'restarting' ||
      status === 'autorestarting' ||
      status === 'dead'
    ) {
      // The connection disposes its comms on restart without calling
      // onClose; the restarted kernel's comm starts a new sequence space.
      this._comm = null;
      this._settleAll();
      this._setStatus('not-loaded');
    }
  }

  private _onConnectionStatus(
    _kernel: Kernel.IKernelConnection,
    status: Kernel.ConnectionStatus
  ): void {
    if (status !== 'connected') {
      return;
    }
    if (this._comm) {
      // Messages sent while the websocket was down are lost: resync.
      this._send({ type: 'hello' });
    } else {
      // Also the end of a restart: the connection reconnects after one.
      void this._attach();
    }
  }

  /**
   * While detached, try again each time a cell finishes: that is when
   * `%load_ext pgmagic` may just have run. One attempt per busy→idle at
   * most, none while one is pending, and the status messages our own
   * comm_info and comm_open cause do not match, so this cannot loop.
   */
  private _onIOPubMessage(
    _kernel: Kernel.IKernelConnection,
    msg: KernelMessage.IIOPubMessage
  ): void {
    if (
      !this._comm &&
      msg.header.msg_type === 'status' &&
      (msg as KernelMessage.IStatusMsg).content.execution_state === 'idle' &&
      msg.parent_header.msg_type === 'execute_request'
    ) {
      void this._attach();
    }
  }

  private _setStatus(status: FeedStatus, emit = true): void {
    if (this._status === status) {
      return;
    }
    this._status = status;
    if (emit) {
      this._changed.emit('state');
    }
  }

  private _comm: Kernel.IComm | null = null;
  /** The comm adopted last, to tell a new sequence space from a resync. */
  private _lastCommId: string | null = null;
  private _attaching = false;
  private _status: FeedStatus = 'not-loaded';
  private _state: IFeedState | null = null;
  private _items: FeedItem[] = [];
  private _droppedFromView = 0;
  /** Items up to this seq were cleared by the user; snapshots skip them. */
  private _clearedThroughSeq = -Infinity;
  private _isDisposed = false;
  private _lastCompleteId = 0;
  private _lastCancelId = 0;
  /** Completion requests sent and not yet answered, by id. */
  private _pending = new Map<number, (reply: ICompletions | null) => void>();
  private _changed = new Signal<this, FeedChange>(this);
  private _exported = new Signal<this, IExportResult>(this);
  private _exportFailed = new Signal<this, string>(this);
  private _disposed = new Signal<this, void>(this);
  private _catalogChanged = new Signal<this, void>(this);
  private _jobEnded = new Signal<this, IJobEnded>(this);
  private _replied = new Signal<this, Record<string, unknown>>(this);
}

/**
 * Replies to requests carry the request's `id`; feed messages never do.
 * (`complete` replies also go on to the completer, which parses them itself.)
 */
function isReply(data: unknown): data is Record<string, unknown> {
  return (
    typeof data === 'object' &&
    data !== null &&
    typeof (data as Record<string, unknown>).id === 'number'
  );
}

/**
 * Feeds by kernel id, so notebooks sharing a kernel share one feed and
 * one comm.
 */
export class FeedRegistry {
  /**
   * The feed for a kernel connection, created on first use.
   *
   * Within one page JupyterLab lets only the first connection to a kernel
   * handle comms; a feed can only live on that one. Returns null when the
   * connection cannot carry comms and no feed exists for its kernel.
   */
  feedFor(kernel: Kernel.IKernelConnection): KernelFeed | null {
    const existing = this._feeds.get(kernel.id);
    if (existing && !existing.isDisposed) {
      return existing;
    }
    if (!kernel.handleComms || kernel.isDisposed) {
      return null;
    }
    const feed = new KernelFeed(kernel);
    this._feeds.set(kernel.id, feed);
    feed.jobEnded.connect((_feed, ended) =>
      this._jobEnded.emit({ kernelId: kernel.id, ended })
    );
    feed.disposed.connect(() => {
      if (this._feeds.get(kernel.id) === feed) {
        this._feeds.delete(kernel.id);
      }
    });
    return feed;
  }

  /** A background job of any kernel with a feed ended. */
  get jobEnded(): ISignal<this, { kernelId: string; ended: IJobEnded }> {
    return this._jobEnded;
  }

  private _feeds = new Map<string, KernelFeed>();
  private _jobEnded = new Signal<this, { kernelId: string; ended: IJobEnded }>(
    this
  );
}
