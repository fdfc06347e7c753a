import { Widget } from '@lumino/widgets';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { KernelFeed } from '../feed';
import {
  filterTree,
  formatBytes,
  formatRows,
  ISchema,
  NOT_LOADED,
  parseColumnsReply,
  parseSchemaReply,
  relationName,
  SchemaClient
} from '../schema';
import { relationAt, relationMenu, SchemaView } from '../schemaView';
import { FakeComm, FakeKernel, settle, state } from './fakes';

const SCHEMAS: ISchema[] = [
  {
    name: 'public',
    relations: [
      { name: 'customers', kind: 'table', rows: 1500, bytes: 65536 },
      { name: 'big_orders', kind: 'view', rows: null, bytes: null }
    ]
  },
  {
    name: 'Sales',
    relations: [{ name: 'Orders', kind: 'table', rows: null, bytes: 8192 }]
  },
  { name: 'empty', relations: [] }
];

describe('reply parsing', () => {
  it('keeps well-formed relations and drops malformed ones', () => {
    const tree = parseSchemaReply({
      type: 'schema',
      id: 1,
      database: 'shop',
      user: 'alice',
      schemas: [
        {
          name: 'public',
          relations: [
            { name: 't', kind: 'table', rows: 3, bytes: 8192 },
            { name: 'odd', kind: 'sequence', rows: 1, bytes: 1 },
            { kind: 'view' },
            { name: 'v', kind: 'view', rows: null, bytes: null }
          ]
        },
        'not a schema'
      ]
    });
    expect(tree).toEqual({
      database: 'shop',
      user: 'alice',
      schemas: [
        {
          name: 'public',
          relations: [
            { name: 't', kind: 'table', rows: 3, bytes: 8192 },
            { name: 'v', kind: 'view', rows: null, bytes: null }
          ]
        }
      ]
    });
  });

  it.each([
    null,
    { type: 'columns', id: 1, columns: [] },
    { type: 'schema', id: 1, user: 'u', schemas: [] },
    { type: 'schema', id: 1, database: 'd', user: 'u', schemas: {} }
  ])('rejects %j as a schema reply', data => {
    expect(parseSchemaReply(data)).toBeNull();
  });

  it('reads columns with their keys and references', () => {
    expect(
      parseColumnsReply({
        type: 'columns',
        id: 2,
        columns: [
          {
            name: 'id',
            type: 'bigint',
            nullable: false,
            key: 'PK',
            references: null
          },
          {
            name: 'customer_id',
            type: 'integer',
            nullable: true,
            key: 'FK',
            references: 'public.customers(id)'
          },
          { name: 'x', type: 'text', key: 'UNIQUE' }
        ]
      })
    ).toEqual([
      {
        name: 'id',
        type: 'bigint',
        nullable: false,
        key: 'PK',
        references: null
      },
      {
        name: 'customer_id',
        type: 'integer',
        nullable: true,
        key: 'FK',
        references: 'public.customers(id)'
      },
      { name: 'x', type: 'text', nullable: true, key: null, references: null }
    ]);
    expect(parseColumnsReply({ type: 'schema', columns: [] })).toBeNull();
  });
});

describe('what the tree shows', () => {
  it.each([
    [null, '?'],
    [0, '0'],
    [999, '999'],
    [1500, '1.5k'],
    [25000, '25k'],
    [3_400_000, '3.4M'],
    [7e9, '7.0G']
  ])('row estimate %s as %s', (rows, shown) => {
    expect(formatRows(rows)).toBe(shown);
  });

  it.each([
    [null, ''],
    [0, '0 bytes'],
    [8192, '8.0 kB'],
    [65536, '64 kB'],
    [1.5 * 2 ** 20, '1.5 MB'],
    [3 * 2 ** 30, '3.0 GB']
  ])('size %s as %s', (bytes, shown) => {
    expect(formatBytes(bytes)).toBe(shown);
  });

  it.each([
    ['public', 'orders', 'orders'],
    ['public', 'Orders', '"Orders"'],
    ['sales', 'orders', 'sales.orders'],
    ['Sales', 'my "t"', '"Sales"."my ""t"""']
  ])('%s.%s is inserted as %s', (schema, relation, name) => {
    expect(relationName(schema, relation)).toBe(name);
  });

  it('filters by relation name, case-insensitively, dropping empty schemas', () => {
    expect(filterTree(SCHEMAS, 'ORD')).toEqual([
      { name: 'public', relations: [SCHEMAS[0].relations[1]] },
      SCHEMAS[1]
    ]);
  });

  it('keeps all relations of a schema whose name matches', () => {
    expect(filterTree(SCHEMAS, 'sales')).toEqual([SCHEMAS[1]]);
    expect(filterTree(SCHEMAS, '  ')).toEqual(SCHEMAS);
    expect(filterTree(SCHEMAS, 'nothing')).toEqual([]);
  });
});

/** A feed attached to a fake kernel's comm. */
async function attachedFeed(): Promise<{ feed: KernelFeed; comm: FakeComm }> {
  const kernel = new FakeKernel();
  const feed = new KernelFeed(kernel.asConnection());
  await settle();
  const comm = kernel.lastComm;
  comm.receive({ type: 'snapshot', items: [], state: state() });
  return { feed, comm };
}

describe('SchemaClient', () => {
  it('matches replies to requests by id, errors included', async () => {
    const { feed, comm } = await attachedFeed();
    const client = new SchemaClient(feed);
    const tree = client.schema();
    const columns = client.columns('public', 'gone');
    const [first, second] = comm.sent.slice(-2);
    expect(first).toMatchObject({ type: 'schema' });
    expect(second).toMatchObject({
      type: 'columns',
      schema: 'public',
      relation: 'gone'
    });
    // Answered out of order, with a stranger's reply between.
    comm.receive({ type: 'error', id: second.id, message: 'no such relation' });
    comm.receive({
      type: 'schema',
      id: -5,
      database: 'x',
      user: 'y',
      schemas: []
    });
    comm.receive({
      type: 'schema',
      id: first.id,
      database: 'shop',
      user: 'alice',
      schemas: []
    });
    await expect(columns).rejects.toThrow('no such relation');
    await expect(tree).resolves.toEqual({
      database: 'shop',
      user: 'alice',
      schemas: []
    });
  });

  it('leaves the notifications alone: an error with an id is no export failure', async () => {
    const { feed, comm } = await attachedFeed();
    const failures: string[] = [];
    feed.exportFailed.connect((_, message) => failures.push(message));
    comm.receive({ type: 'error', id: 7, message: 'for the schema view' });
    comm.receive({ type: 'error', message: 'export went wrong' });
    expect(failures).toEqual(['export went wrong']);
  });
});

describe('SchemaView', () => {
  let view: SchemaView;
  const inserted: string[] = [];
  const cells: string[] = [];
  const copied: string[] = [];

  beforeEach(() => {
    inserted.length = 0;
    copied.length = 0;
    cells.length = 0;
    view = new SchemaView({
      copyText: text => copied.push(text),
      insertText: text => inserted.push(text),
      insertCell: source => cells.push(source)
    });
    Widget.attach(view, document.body);
  });

  afterEach(() => view.dispose());

  const q = <T extends HTMLElement = HTMLElement>(selector: string) => [
    ...view.node.querySelectorAll<T>(selector)
  ];
  const text = (selector: string) => q(selector).map(n => n.textContent);
  const click = (node: HTMLElement | undefined) => {
    if (!node) {
      throw new Error('nothing to click');
    }
    node.click();
  };

  async function loaded(): Promise<FakeComm> {
    const { feed, comm } = await attachedFeed();
    view.setFeed(feed);
    const request = comm.sent[comm.sent.length - 1];
    expect(request).toMatchObject({ type: 'schema' });
    comm.receive({
      type: 'schema',
      id: request.id,
      database: 'shop',
      user: 'alice',
      schemas: SCHEMAS
    });
    await settle();
    return comm;
  }

  it('shows the connection and the schemas, relations on expand', async () => {
    await loaded();
    expect(text('.jp-PgSchema-connection')).toEqual(['alice @ shop']);
    expect(text('.jp-PgSchema-schemaName')).toEqual([
      'public',
      'Sales',
      'empty'
    ]);
    expect(q('.jp-PgSchema-relation')).toHaveLength(0);
    click(q('.jp-PgSchema-schemaRow')[0]);
    expect(text('.jp-PgSchema-relationName')).toEqual([
      'customers',
      'big_orders'
    ]);
    expect(text('.jp-PgSchema-kind')).toEqual(['T', 'V']);
    expect(text('.jp-PgSchema-stats')).toEqual(['1.5k rows · 64 kB', '']);
  });

  it('filters the tree as the user types', async () => {
    await loaded();
    const filter = q<HTMLInputElement>('.jp-PgSchema-filter')[0];
    filter.value = 'orders';
    filter.dispatchEvent(new Event('input'));
    expect(text('.jp-PgSchema-relationName')).toEqual(['big_orders', 'Orders']);
    filter.value = 'zzz';
    filter.dispatchEvent(new Event('input'));
    expect(text('.jp-PgSchema-empty')).toEqual(['Nothing matches the filter.']);
  });

  it('reads columns on expand and marks PK and FK', async () => {
    const comm = await loaded();
    click(q('.jp-PgSchema-schemaRow')[1]);
    click(q('.jp-PgSchema-relationRow .jp-PgSchema-caret')[0]);
    expect(text('.jp-PgSchema-note')).toEqual(['Reading the columns…']);
    const request = comm.sent[comm.sent.length - 1];
    expect(request).toMatchObject({
      type: 'columns',
      schema: 'Sales',
      relation: 'Orders'
    });
    comm.receive({
      type: 'columns',
      id: request.id,
      columns: [
        {
          name: 'id',
          type: 'bigint',
          nullable: false,
          key: 'PK',
          references: null
        },
        {
          name: 'customer_id',
          type: 'integer',
          nullable: true,
          key: 'FK',
          references: 'public.customers(id)'
        }
      ]
    });
    await settle();
    expect(text('.jp-PgSchema-columnName')).toEqual(['id', 'customer_id']);
    expect(text('.jp-PgSchema-key')).toEqual(['PK', 'FK']);
    expect(text('.jp-PgSchema-type')).toEqual(['bigint not null', 'integer']);
    expect(text('.jp-PgSchema-references')).toEqual(['→ public.customers(id)']);
  });

  it('shows a columns error in the tree', async () => {
    const comm = await loaded();
    click(q('.jp-PgSchema-schemaRow')[0]);
    click(q('.jp-PgSchema-relationRow .jp-PgSchema-caret')[0]);
    const request = comm.sent[comm.sent.length - 1];
    comm.receive({ type: 'error', id: request.id, message: 'relation gone' });
    await settle();
    expect(text('.jp-PgSchema-error')).toEqual(['relation gone']);
  });

  it('inserts names and cells, qualified outside public', async () => {
    await loaded();
    click(q('.jp-PgSchema-schemaRow')[1]);
    click(q('.jp-PgSchema-relationName')[0]);
    const [select, describe] = q('.jp-PgSchema-action');
    click(select);
    click(describe);
    expect(inserted).toEqual(['"Sales"."Orders"']);
    expect(cells).toEqual([
      '%%pg\nSELECT * FROM "Sales"."Orders" LIMIT 100',
      '%pg \\d "Sales"."Orders"'
    ]);
  });

  it('names the relation under a node for the context menu', async () => {
    await loaded();
    click(q('.jp-PgSchema-schemaRow')[1]);
    expect(relationAt(q('.jp-PgSchema-stats')[0])).toBe('"Sales"."Orders"');
    expect(relationAt(q('.jp-PgSchema-schemaRow')[0])).toBeNull();
    expect(relationAt(null)).toBeNull();
  });

  it('offers in the context menu what the row offers, and copy', async () => {
    await loaded();
    const menu = relationMenu({
      copyText: text => copied.push(text),
      insertText: text => inserted.push(text),
      insertCell: source => cells.push(source)
    });
    menu.forEach(([, , act]) => act('"Sales"."Orders"'));
    expect(menu.map(([id]) => id)).toEqual([
      'insert-name',
      'copy-name',
      'select',
      'describe'
    ]);
    expect(inserted).toEqual(['"Sales"."Orders"']);
    expect(copied).toEqual(['"Sales"."Orders"']);
    expect(cells).toEqual([
      '%%pg\nSELECT * FROM "Sales"."Orders" LIMIT 100',
      '%pg \\d "Sales"."Orders"'
    ]);
  });

  it('reads the tree again after DDL, keeping what was open', async () => {
    const comm = await loaded();
    click(q('.jp-PgSchema-schemaRow')[0]);
    const sent = comm.sent.length;
    comm.receive({ type: 'catalog-changed' });
    const request = comm.sent[comm.sent.length - 1];
    expect(comm.sent).toHaveLength(sent + 1);
    expect(request).toMatchObject({ type: 'schema' });
    comm.receive({
      type: 'schema',
      id: request.id,
      database: 'shop',
      user: 'alice',
      schemas: [
        {
          name: 'public',
          relations: [
            ...SCHEMAS[0].relations,
            { name: 'new_table', kind: 'table', rows: 0, bytes: 0 }
          ]
        }
      ]
    });
    await settle();
    expect(text('.jp-PgSchema-relationName')).toEqual([
      'customers',
      'big_orders',
      'new_table'
    ]);
  });

  it('reads again once more when DDL lands during a read', async () => {
    const comm = await loaded();
    void view.refresh();
    const first = comm.sent[comm.sent.length - 1];
    comm.receive({ type: 'catalog-changed' });
    // Not a second request while the first is under way...
    expect(comm.sent[comm.sent.length - 1]).toBe(first);
    comm.receive({ ...first, database: 'shop', user: 'alice', schemas: [] });
    await settle();
    // ...but one after it, for the DDL it may have missed.
    const second = comm.sent[comm.sent.length - 1];
    expect(second).toMatchObject({ type: 'schema' });
    expect(second).not.toBe(first);
  });

  it('waits to read again until shown when hidden', async () => {
    const comm = await loaded();
    view.hide();
    const sent = comm.sent.length;
    comm.receive({ type: 'catalog-changed' });
    expect(comm.sent).toHaveLength(sent);
    view.show();
    expect(comm.sent[comm.sent.length - 1]).toMatchObject({ type: 'schema' });
    expect(comm.sent).toHaveLength(sent + 1);
  });

  it('says so when the kernel has no pgmagic', async () => {
    const kernel = new FakeKernel();
    const feed = new KernelFeed(kernel.asConnection());
    await settle();
    kernel.lastComm.closeFromKernel();
    view.setFeed(feed);
    await settle();
    expect(text('.jp-PgSchema-message')).toEqual([NOT_LOADED]);
  });

  it('reads the schema once %load_ext pgmagic has run', async () => {
    const kernel = new FakeKernel();
    const feed = new KernelFeed(kernel.asConnection());
    await settle();
    kernel.lastComm.closeFromKernel();
    view.setFeed(feed);
    await settle();
    // The cell with %load_ext finishes: the feed opens a new comm.
    kernel.emitStatus('idle', 'execute_request');
    await settle();
    const comm = kernel.lastComm;
    comm.receive({ type: 'snapshot', items: [], state: state() });
    const request = comm.sent[comm.sent.length - 1];
    expect(request).toMatchObject({ type: 'schema' });
    comm.receive({
      ...request,
      database: 'shop',
      user: 'alice',
      schemas: SCHEMAS
    });
    await settle();
    expect(text('.jp-PgSchema-connection')).toEqual(['alice @ shop']);
    expect(text('.jp-PgSchema-message')).toEqual(['']);

    // A restart: the tree was the old kernel's, and the pending read fails.
    void view.refresh();
    kernel.statusChanged.emit('restarting');
    await settle();
    expect(text('.jp-PgSchema-schemaName')).toEqual([]);
    expect(text('.jp-PgSchema-message')).toEqual([NOT_LOADED]);
    expect(q<HTMLButtonElement>('.jp-PgSchema-button')[0].disabled).toBe(false);
  });
});
