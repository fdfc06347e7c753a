/**
 * The side panel's Schema view: the active kernel's database as a tree of
 * schemas → relations → columns, the columns read when a relation is
 * expanded. Clicking a relation inserts its name at the notebook cursor;
 * the buttons beside it add a `SELECT … LIMIT 100` or `\d` cell below.
 */

import { Widget } from '@lumino/widgets';

import { button, el } from './dom';
import type { KernelFeed } from './feed';
import {
  filterTree,
  formatBytes,
  formatRows,
  IColumn,
  IRelation,
  ISchemaTree,
  describeSource,
  relationName,
  NOT_LOADED,
  selectSource,
  RelationKind,
  SchemaClient
} from './schema';

const CLASS = 'jp-PgSchema';

/** A relation's row in the tree, where its context menu opens. */
export const RELATION_SELECTOR = `.${CLASS}-relationRow`;

/** A context menu entry on a relation: command id suffix, label, action. */
export type RelationMenuItem = [string, string, (name: string) => void];

/** The context menu on a relation: what its click and buttons do, and copy. */
export function relationMenu(actions: ISchemaActions): RelationMenuItem[] {
  return [
    ['insert-name', 'Insert Name at Cursor', name => actions.insertText(name)],
    ['copy-name', 'Copy Name', name => actions.copyText(name)],
    [
      'select',
      'New Cell: SELECT * … LIMIT 100',
      name => actions.insertCell(selectSource(name))
    ],
    [
      'describe',
      'New Cell: \\d (describe)',
      name => actions.insertCell(describeSource(name))
    ]
  ];
}

/**
 * The SQL name of the relation an element belongs to (`schema.table`,
 * quoted as needed), or null outside a relation.
 */
export function relationAt(node: HTMLElement | null): string | null {
  return node?.closest<HTMLElement>(`.${CLASS}-relation`)?.dataset.name ?? null;
}

/** What the view does to the active notebook; index.ts wires them. */
export interface ISchemaActions {
  /** Put text on the system clipboard. */
  copyText(text: string): void;
  /** Put text at the cursor of the active cell's editor. */
  insertText(text: string): void;
  /** Add a code cell below the active one with this source. */
  insertCell(source: string): void;
}

/** Short labels beside a relation's name, by kind. */
const KIND_LABELS: Record<RelationKind, string> = {
  table: 'T',
  'partitioned table': 'P',
  view: 'V',
  'materialized view': 'M',
  'foreign table': 'F'
};

export class SchemaView extends Widget {
  constructor(private readonly _actions: ISchemaActions) {
    super();
    this.addClass(CLASS);
    this._filter.type = 'search';
    this._filter.className = `${CLASS}-filter`;
    this._filter.placeholder = 'Filter schemas and tables';
    this._filter.addEventListener('input', () => this._renderTree());
    this._refresh.title = 'Read the schema again';
    this._refresh.addEventListener('click', () => void this.refresh());
    const toolbar = el('div', `${CLASS}-toolbar`);
    toolbar.append(this._filter, this._refresh);
    this._tree.setAttribute('role', 'tree');
    this.node.append(this._connection, toolbar, this._message, this._tree);
    this._show();
  }

  /** Follow another kernel's feed (or none); reads its schema when shown. */
  setFeed(feed: KernelFeed | null): void {
    if (feed === this._client?.feed || (feed === null && !this._client)) {
      return;
    }
    this._client?.feed.changed.disconnect(this._onFeedChanged, this);
    this._client?.feed.catalogChanged.disconnect(this._onCatalogChanged, this);
    this._client?.dispose();
    this._client = feed ? new SchemaClient(feed) : null;
    feed?.changed.connect(this._onFeedChanged, this);
    feed?.catalogChanged.connect(this._onCatalogChanged, this);
    this._data = null;
    this._expanded.clear();
    this._columns.clear();
    this._error = '';
    this._show();
    if (this.isVisible) {
      void this.refresh();
    }
  }

  /** Read the schemas and relations again; expanded relations stay open. */
  async refresh(): Promise<void> {
    const client = this._client;
    if (client === null) {
      this._show();
      return;
    }
    this._loading = true;
    this._stale = false;
    this._show();
    try {
      const data = await client.schema();
      if (client !== this._client) {
        return;
      }
      this._data = data;
      this._error = '';
      this._columns.clear();
      for (const key of this._expanded) {
        if (!key.includes('\u0000')) {
          continue;
        }
        const [schema, relation] = key.split('\u0000');
        void this._loadColumns(schema, relation);
      }
    } catch (error) {
      if (client === this._client) {
        this._error = (error as Error).message;
      }
    } finally {
      if (client === this._client) {
        this._loading = false;
        this._show();
        if (this._stale) {
          // More DDL ran while this read was under way.
          this._readIfUnread();
        }
      }
    }
  }

  protected override onAfterShow(): void {
    this._readIfUnread();
  }

  /** `%load_ext pgmagic` just ran (or the kernel restarted and ran it again). */
  private _onFeedChanged(feed: KernelFeed): void {
    if (feed.status === 'attached') {
      this._readIfUnread();
    } else if (feed.status === 'not-loaded' && this._data !== null) {
      // A restart or %unload_ext: the tree may no longer be this kernel's.
      this._data = null;
      this._error = NOT_LOADED;
      this._show();
    }
  }

  /** DDL ran: read again now if shown, else when next shown. */
  private _onCatalogChanged(): void {
    this._stale = true;
    this._readIfUnread();
  }

  private _readIfUnread(): void {
    if (
      this.isVisible &&
      this._client &&
      (this._data === null || this._stale) &&
      !this._loading
    ) {
      void this.refresh();
    }
  }

  private _show(): void {
    const data = this._data;
    this._connection.textContent = data
      ? `${data.user} @ ${data.database}`
      : this._client
        ? 'not read yet'
        : 'no kernel';
    this._refresh.disabled = this._client === null || this._loading;
    let message = this._error;
    if (this._client === null) {
      message = 'Open a notebook with pgmagic loaded to see its database.';
    } else if (this._loading && data === null) {
      message = 'Reading the schema… (waits for a running cell to finish)';
    }
    this._message.textContent = message;
    this._message.hidden = message === '';
    this._renderTree();
  }

  private _renderTree(): void {
    const schemas = filterTree(this._data?.schemas ?? [], this._filter.value);
    const filtering = this._filter.value.trim() !== '';
    const nodes: HTMLElement[] = [];
    for (const schema of schemas) {
      const open = filtering || this._expanded.has(schema.name);
      const item = el('div', `${CLASS}-schema`);
      item.setAttribute('role', 'treeitem');
      item.setAttribute('aria-expanded', String(open));
      const label = el('div', `${CLASS}-row ${CLASS}-schemaRow`);
      label.append(
        el('span', `${CLASS}-caret`, open ? '▾' : '▸'),
        el('span', `${CLASS}-schemaName`, schema.name),
        el('span', `${CLASS}-count`, String(schema.relations.length))
      );
      label.addEventListener('click', () => this._toggle(schema.name));
      item.append(label);
      if (open) {
        for (const relation of schema.relations) {
          item.append(this._relationNode(schema.name, relation));
        }
      }
      nodes.push(item);
    }
    if (this._data && nodes.length === 0) {
      nodes.push(
        el(
          'div',
          `${CLASS}-empty`,
          filtering ? 'Nothing matches the filter.' : 'No schemas to show.'
        )
      );
    }
    this._tree.replaceChildren(...nodes);
  }

  private _relationNode(schema: string, relation: IRelation): HTMLElement {
    const key = `${schema}\u0000${relation.name}`;
    const open = this._expanded.has(key);
    const name = relationName(schema, relation.name);
    const item = el('div', `${CLASS}-relation`);
    item.setAttribute('role', 'treeitem');
    item.setAttribute('aria-expanded', String(open));
    item.dataset.kind = relation.kind;
    // What the context menu's commands act on (see RELATION_SELECTOR).
    item.dataset.name = name;
    const row = el('div', `${CLASS}-row ${CLASS}-relationRow`);
    const caret = el('span', `${CLASS}-caret`, open ? '▾' : '▸');
    caret.title = open ? 'Hide the columns' : 'Show the columns';
    caret.addEventListener('click', () => this._toggle(key, schema, relation));
    const kind = el('span', `${CLASS}-kind`, KIND_LABELS[relation.kind]);
    kind.title = relation.kind;
    const label = el('span', `${CLASS}-relationName`, relation.name);
    label.title = `Insert ${name} at the cursor`;
    label.addEventListener('click', () => this._actions.insertText(name));
    const size = [
      relation.kind === 'view' ? '' : `${formatRows(relation.rows)} rows`,
      formatBytes(relation.bytes)
    ]
      .filter(Boolean)
      .join(' · ');
    const stats = el('span', `${CLASS}-stats`, size);
    stats.title = 'Row estimate and size as of the last VACUUM or ANALYZE';
    const select = button(`${CLASS}-action`, 'SELECT');
    select.title = `New cell below: SELECT * FROM ${name} LIMIT 100`;
    select.addEventListener('click', () =>
      this._actions.insertCell(selectSource(name))
    );
    const describe = button(`${CLASS}-action`, '\\d');
    describe.title = `New cell below: %pg \\d ${name}`;
    describe.addEventListener('click', () =>
      this._actions.insertCell(describeSource(name))
    );
    const actions = el('span', `${CLASS}-actions`);
    actions.append(select, describe);
    row.append(caret, kind, label, stats, actions);
    item.append(row);
    if (open) {
      item.append(this._columnsNode(key));
    }
    return item;
  }

  private _columnsNode(key: string): HTMLElement {
    const list = el('div', `${CLASS}-columns`);
    const columns = this._columns.get(key);
    if (columns === undefined) {
      list.append(el('div', `${CLASS}-note`, 'Reading the columns…'));
    } else if (typeof columns === 'string') {
      list.append(el('div', `${CLASS}-note ${CLASS}-error`, columns));
    } else if (columns.length === 0) {
      list.append(el('div', `${CLASS}-note`, 'No columns.'));
    } else {
      for (const column of columns) {
        list.append(columnRow(column));
      }
    }
    return list;
  }

  private _toggle(key: string, schema?: string, relation?: IRelation): void {
    if (this._expanded.has(key)) {
      this._expanded.delete(key);
    } else {
      this._expanded.add(key);
      if (schema !== undefined && relation && !this._columns.has(key)) {
        void this._loadColumns(schema, relation.name);
      }
    }
    this._renderTree();
  }

  private async _loadColumns(schema: string, relation: string): Promise<void> {
    const client = this._client;
    if (client === null) {
      return;
    }
    const key = `${schema}\u0000${relation}`;
    let result: IColumn[] | string;
    try {
      result = await client.columns(schema, relation);
    } catch (error) {
      result = (error as Error).message;
    }
    if (client === this._client) {
      this._columns.set(key, result);
      this._renderTree();
    }
  }

  private _client: SchemaClient | null = null;
  private _data: ISchemaTree | null = null;
  private _loading = false;
  /** DDL ran since the tree was read. */
  private _stale = false;
  private _error = '';
  /** Schema names and `schema\0relation` keys the user opened. */
  private _expanded = new Set<string>();
  /** Columns by `schema\0relation`, or the error reading them. */
  private _columns = new Map<string, IColumn[] | string>();
  private _connection = el('div', `${CLASS}-connection`);
  private _filter = document.createElement('input');
  private _refresh = button(`${CLASS}-button`, 'Refresh');
  private _message = el('div', `${CLASS}-message`);
  private _tree = el('div', `${CLASS}-tree`);
}

function columnRow(column: IColumn): HTMLElement {
  const row = el('div', `${CLASS}-column`);
  const key = el('span', `${CLASS}-key`, column.key ?? '');
  if (column.key) {
    key.dataset.key = column.key;
  }
  if (column.references) {
    key.title = `references ${column.references}`;
  }
  const type = el(
    'span',
    `${CLASS}-type`,
    column.nullable ? column.type : `${column.type} not null`
  );
  // The narrow panel may cut it short.
  type.title = type.textContent ?? '';
  row.append(key, el('span', `${CLASS}-columnName`, column.name), type);
  if (column.references) {
    row.append(el('span', `${CLASS}-references`, `→ ${column.references}`));
  }
  return row;
}
