/**
 * The Schema view's side of the `pgmagic.panel` comm: `schema` and
 * `columns` requests, their validated replies, and the text the view shows.
 *
 * Each request carries an `id`; the kernel answers with the same `id`, or
 * with `{type: 'error', id, message}`. Replies are validated here as the
 * feed's messages are in `protocol.ts`: the kernel is another codebase.
 */

import type { KernelFeed } from './feed';

/** Why a request cannot be answered: no comm, or it closed. */
export const NOT_LOADED =
  'pgmagic is not loaded in this kernel. Run %load_ext pgmagic in the notebook.';

export type RelationKind =
  | 'table'
  | 'view'
  | 'materialized view'
  | 'foreign table'
  | 'partitioned table';

const KINDS: readonly RelationKind[] = [
  'table',
  'view',
  'materialized view',
  'foreign table',
  'partitioned table'
];

export interface IRelation {
  name: string;
  kind: RelationKind;
  /** Row estimate (`reltuples`); null when never analyzed. */
  rows: number | null;
  /** Total size on disk; null for views and foreign tables. */
  bytes: number | null;
}

export interface ISchema {
  name: string;
  relations: IRelation[];
}

export interface ISchemaTree {
  database: string;
  user: string;
  schemas: ISchema[];
}

export interface IColumn {
  name: string;
  type: string;
  nullable: boolean;
  key: 'PK' | 'FK' | null;
  /** `schema.table(column)` of a foreign key. */
  references: string | null;
}

/** The tree, or null when the reply is not a well-formed `schema` reply. */
export function parseSchemaReply(data: unknown): ISchemaTree | null {
  if (
    !isRecord(data) ||
    data.type !== 'schema' ||
    typeof data.database !== 'string' ||
    typeof data.user !== 'string' ||
    !Array.isArray(data.schemas)
  ) {
    return null;
  }
  const schemas: ISchema[] = [];
  for (const schema of data.schemas) {
    if (!isRecord(schema) || typeof schema.name !== 'string') {
      continue;
    }
    const relations = Array.isArray(schema.relations)
      ? schema.relations
          .map(parseRelation)
          .filter((r): r is IRelation => r !== null)
      : [];
    schemas.push({ name: schema.name, relations });
  }
  return { database: data.database, user: data.user, schemas };
}

function parseRelation(value: unknown): IRelation | null {
  if (!isRecord(value) || typeof value.name !== 'string') {
    return null;
  }
  const kind = KINDS.find(k => k === value.kind);
  if (kind === undefined) {
    return null;
  }
  return {
    name: value.name,
    kind,
    rows: isNumber(value.rows) ? value.rows : null,
    bytes: isNumber(value.bytes) ? value.bytes : null
  };
}

/** The columns, or null when the reply is not a well-formed `columns` reply. */
export function parseColumnsReply(data: unknown): IColumn[] | null {
  if (
    !isRecord(data) ||
    data.type !== 'columns' ||
    !Array.isArray(data.columns)
  ) {
    return null;
  }
  const columns: IColumn[] = [];
  for (const c of data.columns) {
    if (!isRecord(c) || typeof c.name !== 'string') {
      continue;
    }
    columns.push({
      name: c.name,
      type: String(c.type ?? ''),
      nullable: c.nullable !== false,
      key: c.key === 'PK' || c.key === 'FK' ? c.key : null,
      references: typeof c.references === 'string' ? c.references : null
    });
  }
  return columns;
}

/** The message of an error reply, or null. */
export function parseErrorReply(data: unknown): string | null {
  return isRecord(data) && data.type === 'error'
    ? String(data.message ?? 'unknown error')
    : null;
}

/**
 * Requests over one kernel's feed comm, each settled by the reply with its
 * id: resolved with the reply's data, rejected with an `Error` whose message
 * is the kernel's (or "pgmagic is not loaded" when there is no comm).
 */
export class SchemaClient {
  constructor(readonly feed: KernelFeed) {
    feed.replied.connect(this._onReply, this);
    feed.changed.connect(this._onFeedChanged, this);
  }

  /** The schemas and relations of the kernel's database. */
  async schema(): Promise<ISchemaTree> {
    const reply = await this._request({ type: 'schema' });
    const tree = parseSchemaReply(reply);
    if (tree === null) {
      throw new Error('malformed schema reply');
    }
    return tree;
  }

  /** The columns of one relation. */
  async columns(schema: string, relation: string): Promise<IColumn[]> {
    const reply = await this._request({ type: 'columns', schema, relation });
    const columns = parseColumnsReply(reply);
    if (columns === null) {
      throw new Error('malformed columns reply');
    }
    return columns;
  }

  dispose(): void {
    this.feed.replied.disconnect(this._onReply, this);
    this.feed.changed.disconnect(this._onFeedChanged, this);
    this._rejectAll('the panel moved to another kernel');
  }

  /** A comm that closed (restart, `%unload_ext`) will answer nothing. */
  private _onFeedChanged(): void {
    if (this.feed.status === 'not-loaded') {
      this._rejectAll(NOT_LOADED);
    }
  }

  private _rejectAll(message: string): void {
    for (const pending of this._pending.values()) {
      pending.reject(new Error(message));
    }
    this._pending.clear();
  }

  private _request(
    data:
      { type: 'schema' } | { type: 'columns'; schema: string; relation: string }
  ): Promise<unknown> {
    const id = this._nextId++;
    return new Promise((resolve, reject) => {
      if (!this.feed.request({ ...data, id })) {
        reject(new Error(NOT_LOADED));
        return;
      }
      this._pending.set(id, { resolve, reject });
    });
  }

  private _onReply(_feed: KernelFeed, data: Record<string, unknown>): void {
    if (data.type === 'completions') {
      return; // the completer's, numbered apart from ours
    }
    const id = data.id as number;
    const pending = this._pending.get(id);
    if (pending === undefined) {
      // Another tab's request on the shared comm, or an abandoned one.
      return;
    }
    this._pending.delete(id);
    const error = parseErrorReply(data);
    if (error !== null) {
      pending.reject(new Error(error));
    } else {
      pending.resolve(data);
    }
  }

  // Random start: tabs sharing a comm see each other's replies.
  private _nextId = Math.floor(Math.random() * 2 ** 30);
  private _pending = new Map<
    number,
    { resolve: (data: unknown) => void; reject: (error: Error) => void }
  >();
}

/** `12`, `1.2k`, `3.4M`, `5.6G`; `?` when never analyzed. */
export function formatRows(rows: number | null): string {
  if (rows === null) {
    return '?';
  }
  const units: [number, string][] = [
    [1e9, 'G'],
    [1e6, 'M'],
    [1e3, 'k']
  ];
  for (const [scale, unit] of units) {
    if (rows >= scale) {
      return `${(rows / scale).toFixed(rows >= scale * 10 ? 0 : 1)}${unit}`;
    }
  }
  return String(rows);
}

/** `8 kB`, `1.5 MB`, as `pg_size_pretty` would (binary units); '' for none. */
export function formatBytes(bytes: number | null): string {
  if (bytes === null) {
    return '';
  }
  const units = ['bytes', 'kB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  const shown = unit === 0 || value >= 10 ? value.toFixed(0) : value.toFixed(1);
  return `${shown} ${units[unit]}`;
}

/** An identifier as SQL needs it: quoted unless lower-case and plain. */
export function quoteIdent(name: string): string {
  return /^[a-z_][a-z0-9_$]*$/.test(name)
    ? name
    : `"${name.replace(/"/g, '""')}"`;
}

/** What to insert for a relation: schema-qualified unless in `public`. */
export function relationName(schema: string, relation: string): string {
  const name = quoteIdent(relation);
  return schema === 'public' ? name : `${quoteIdent(schema)}.${name}`;
}

/** A new cell's source showing a relation's first rows. */
export function selectSource(name: string): string {
  return `%%pg\nSELECT * FROM ${name} LIMIT 100`;
}

/** A new cell's source describing a relation as psql's `\d` does. */
export function describeSource(name: string): string {
  return `%pg \\d ${name}`;
}

/**
 * The schemas whose name or relations match a filter (case-insensitive
 * substring): a matching schema keeps all its relations, otherwise only
 * the matching relations are kept, and schemas left empty are dropped.
 */
export function filterTree(
  schemas: readonly ISchema[],
  text: string
): ISchema[] {
  const needle = text.trim().toLowerCase();
  if (!needle) {
    return [...schemas];
  }
  const kept: ISchema[] = [];
  for (const schema of schemas) {
    if (schema.name.toLowerCase().includes(needle)) {
      kept.push(schema);
      continue;
    }
    const relations = schema.relations.filter(r =>
      r.name.toLowerCase().includes(needle)
    );
    if (relations.length > 0) {
      kept.push({ name: schema.name, relations });
    }
  }
  return kept;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}
