/**
 * The `pgmagic.panel` comm protocol, frontend side.
 *
 * The kernel side lives in the Python package and is a separate codebase,
 * so every message is validated here instead of being trusted by type
 * assertion: a malformed item is skipped, a malformed message is ignored.
 */

import type { JSONObject } from '@lumino/coreutils';

/** Comm target name shared with the kernel side. */
export const COMM_TARGET = 'pgmagic.panel';

/** Variable the kernel assigns the exported DataFrame to. */
export const EXPORT_VARIABLE = 'pg_notifications';

export type ListenerState = 'listening' | 'reconnecting' | 'stopped';

export interface IFeedState {
  listener: ListenerState;
  channels: string[];
  /** Total notifications received by the kernel. */
  count: number;
  /** Recent notifications per second. */
  rate: number;
  /** Items the kernel-side history no longer holds. */
  dropped: number;
}

export interface INotificationItem {
  seq: number;
  kind: 'notification';
  /** Epoch seconds when the kernel received the notification. */
  time: number;
  channel: string;
  pid: number;
  payload: string;
  /** Another named connection's name, when its listener received it; else empty. */
  connection: string;
}

/** The listener lost its connection between `start` and `end`. */
export interface IGapItem {
  seq: number;
  kind: 'gap';
  time: number;
  start: number;
  end: number;
  message: string;
}

export type FeedItem = INotificationItem | IGapItem;

/** One completion the kernel offers: what to insert, its kind, a detail. */
export interface ICompletionItem {
  label: string;
  /** table, column, function, keyword, variable, pgmagic, psql... */
  type: string;
  /** A type or a schema; may be empty. */
  detail: string;
}

/**
 * The kernel's answer to a `complete` request. Offsets count Unicode code
 * points, as the completer's requests and replies do.
 */
export interface ICompletions {
  type: 'completions';
  /** The request's id; null when the request was too malformed to have one. */
  id: number | null;
  start: number;
  end: number;
  items: ICompletionItem[];
}

/** How a background job (`%%pg --bg`) ended. */
export type JobEndState = 'done' | 'failed' | 'cancelled';

/** The kernel's word that a background job ended (JupyterLab notifies). */
export interface IJobEnded {
  type: 'job-ended';
  job: number;
  name: string;
  state: JobEndState;
  /** One line: `big: 1,204,332 rows in 41.2 s`. */
  summary: string;
  connection: string;
}

export type KernelMessage =
  | { type: 'snapshot'; items: FeedItem[]; state: IFeedState }
  | { type: 'batch'; items: FeedItem[]; state: IFeedState }
  | { type: 'exported'; variable: string; rows: number }
  | { type: 'error'; message: string }
  /** A cell ran DDL: what the Schema view shows may be out of date. */
  | { type: 'catalog-changed' }
  | IJobEnded
  | ICompletions;

/** Filter the kernel applies before exporting; null means "no filter". */
export interface IExportRequest {
  type: 'export';
  variable: string;
  channel: string | null;
  text: string | null;
  /** Only items with a larger seq: set after a Clear, so cleared rows stay out. */
  after_seq?: number;
}

/** Completions at `pos` (in code points) of a cell's `code`. */
export interface ICompleteRequest {
  type: 'complete';
  id: number;
  code: string;
  pos: number;
}

/** A job handle's Cancel button: cancel job `job` on the server. */
export interface ICancelJobRequest {
  type: 'cancel-job';
  id: number;
  job: number;
}

export type FrontendMessage =
  { type: 'hello' } | IExportRequest | ICompleteRequest | ICancelJobRequest;

/**
 * Validate the `data` of a kernel `comm_msg` (or `comm_open`).
 *
 * Returns null for anything that is not a known message type.
 */
export function parseKernelMessage(data: unknown): KernelMessage | null {
  if (!isRecord(data)) {
    return null;
  }
  switch (data.type) {
    case 'snapshot':
    case 'batch': {
      const state = parseFeedState(data.state);
      if (!Array.isArray(data.items) || state === null) {
        return null;
      }
      const items = data.items
        .map(parseFeedItem)
        .filter((item): item is FeedItem => item !== null);
      return { type: data.type, items, state };
    }
    case 'exported':
      if (typeof data.variable !== 'string' || !isNumber(data.rows)) {
        return null;
      }
      return { type: 'exported', variable: data.variable, rows: data.rows };
    case 'catalog-changed':
      return { type: 'catalog-changed' };
    case 'job-ended': {
      const state = data.state;
      if (
        !isNumber(data.job) ||
        (state !== 'done' && state !== 'failed' && state !== 'cancelled')
      ) {
        return null;
      }
      return {
        type: 'job-ended',
        job: data.job,
        name: String(data.name ?? ''),
        state,
        summary: String(data.summary ?? ''),
        connection: String(data.connection ?? '')
      };
    }
    case 'error':
      return typeof data.message === 'string'
        ? { type: 'error', message: data.message }
        : null;
    case 'completions': {
      const id = data.id === null || isNumber(data.id) ? data.id : undefined;
      if (
        id === undefined ||
        !isNumber(data.start) ||
        !isNumber(data.end) ||
        !Array.isArray(data.items)
      ) {
        return null;
      }
      const items = data.items
        .map(parseCompletionItem)
        .filter((item): item is ICompletionItem => item !== null);
      return {
        type: 'completions',
        id,
        start: data.start,
        end: data.end,
        items
      };
    }
    default:
      return null;
  }
}

/** Comm payloads must be JSON objects; the message types above all are. */
export function toCommData(message: FrontendMessage): JSONObject {
  return { ...message };
}

/** One history item, or null when it is malformed or of an unknown kind. */
export function parseFeedItem(value: unknown): FeedItem | null {
  if (!isRecord(value) || !isNumber(value.seq) || !isNumber(value.time)) {
    return null;
  }
  if (value.kind === 'notification') {
    return {
      seq: value.seq,
      kind: 'notification',
      time: value.time,
      channel: String(value.channel ?? ''),
      pid: isNumber(value.pid) ? value.pid : 0,
      payload: String(value.payload ?? ''),
      connection: typeof value.connection === 'string' ? value.connection : ''
    };
  }
  if (value.kind === 'gap') {
    return {
      seq: value.seq,
      kind: 'gap',
      time: value.time,
      start: isNumber(value.start) ? value.start : value.time,
      end: isNumber(value.end) ? value.end : value.time,
      message: String(value.message ?? '')
    };
  }
  return null;
}

/** One completion, or null without a string label. */
export function parseCompletionItem(value: unknown): ICompletionItem | null {
  if (!isRecord(value) || typeof value.label !== 'string') {
    return null;
  }
  return {
    label: value.label,
    type: typeof value.type === 'string' ? value.type : '',
    detail: typeof value.detail === 'string' ? value.detail : ''
  };
}

/** The listener state, or null without a known `listener` value. */
export function parseFeedState(value: unknown): IFeedState | null {
  if (!isRecord(value)) {
    return null;
  }
  const listener = value.listener;
  if (
    listener !== 'listening' &&
    listener !== 'reconnecting' &&
    listener !== 'stopped'
  ) {
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

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}
