import { Widget } from '@lumino/widgets';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import { KernelFeed } from '../feed';
import { FeedPanel } from '../panel';
import type { FeedItem } from '../protocol';
import { FakeComm, FakeKernel, LOSSY, note, settle, state } from './fakes';

let panel: FeedPanel;

function find(suffix: string): HTMLElement {
  const node = panel.node.querySelector<HTMLElement>(`.jp-PgFeed-${suffix}`);
  if (node === null) {
    throw new Error(`no .jp-PgFeed-${suffix}`);
  }
  return node;
}

const rows = () => [
  ...panel.node.querySelectorAll<HTMLElement>('.jp-PgFeed-row')
];
const seqs = () => rows().map(row => Number(row.dataset.seq));
const frame = () => vi.advanceTimersToNextFrame();

function buttonLabelled(label: string): HTMLButtonElement {
  const found = [...panel.node.querySelectorAll('button')].find(
    b => b.textContent === label
  );
  if (found === undefined) {
    throw new Error(`no ${label} button`);
  }
  return found;
}

/** A panel showing a feed attached to a kernel comm with `items`. */
async function showing(items: FeedItem[]) {
  const kernel = new FakeKernel();
  const feed = new KernelFeed(kernel.asConnection());
  await settle();
  const comm: FakeComm = kernel.lastComm;
  comm.receive({
    type: 'snapshot',
    items,
    state: state({ channels: ['orders', 'payments'], count: items.length })
  });
  panel.setSource({ label: 'orders.ipynb', feed });
  frame();
  return { feed, comm };
}

function typeFilter(text: string): void {
  const input = find('text') as HTMLInputElement;
  input.value = text;
  input.dispatchEvent(new Event('input'));
  frame();
}

beforeEach(() => {
  vi.useFakeTimers({
    toFake: ['requestAnimationFrame', 'cancelAnimationFrame']
  });
  panel = new FeedPanel();
  Widget.attach(panel, document.body);
  frame();
});

afterEach(() => {
  panel.dispose();
  vi.useRealTimers();
});

const payments: FeedItem = { ...note(3, 'refund'), channel: 'payments' };
const gap: FeedItem = {
  seq: 4,
  kind: 'gap',
  time: 1700000004,
  start: 1700000002,
  end: 1700000004,
  message: 'listener disconnected'
};

describe('FeedPanel', () => {
  it('tells the user to open a notebook when there is none', () => {
    expect(find('badge').textContent).toBe('no notebook');
    expect(find('empty').textContent).toBe(
      'Open a notebook to see the notifications its kernel receives.'
    );
  });

  it('tells the user to load pgmagic when the kernel refuses the comm', async () => {
    const kernel = new FakeKernel();
    const feed = new KernelFeed(kernel.asConnection());
    await settle();
    panel.setSource({ label: 'a.ipynb', feed });
    frame();
    expect(find('badge').textContent).toBe('connecting…');
    kernel.lastComm.closeFromKernel();
    frame();
    expect(find('badge').textContent).toBe('pgmagic not loaded');
    expect(find('empty').textContent).toContain('%load_ext pgmagic');
  });

  it('renders the feed newest first through the shared row renderer', async () => {
    await showing([note(1), note(2, '{"id":2}'), payments, gap]);
    expect(seqs()).toEqual([4, 3, 2, 1]);
    expect(rows()[0].classList.contains('jp-PgFeed-gap')).toBe(true);
    expect(
      rows()[2].querySelector('.jp-PgFeed-json summary')?.textContent
    ).toBe('{"id":2}');
    expect(find('badge').textContent).toBe('listening');
    expect(find('source').textContent).toBe('orders.ipynb');
    expect(find('stats').textContent).toContain('channels: orders, payments');
    expect(find('empty').hidden).toBe(true);
  });

  it('filters by channel and text, keeping gaps for any channel', async () => {
    await showing([note(1), note(2, 'shipped'), payments, gap]);
    const select = find('channel') as HTMLSelectElement;
    expect([...select.options].map(o => o.value)).toEqual([
      '',
      'orders',
      'payments'
    ]);
    select.value = 'orders';
    select.dispatchEvent(new Event('change'));
    frame();
    expect(seqs()).toEqual([4, 2, 1]);

    typeFilter('SHIP');
    expect(seqs()).toEqual([2]);

    typeFilter('nothing like it');
    expect(rows()).toEqual([]);
    expect(find('empty').textContent).toBe(
      'No notifications match the filter.'
    );
  });

  it('shows payloads as sent and filters on that text', async () => {
    const text = 'id 9007199254740993 paid 1.10';
    await showing([note(1, LOSSY), note(2, text), note(3, '{"amount": 1.1}')]);
    /** The one-line text of a row's payload: a JSON payload's summary. */
    const payload = (seq: number) => {
      const row = rows().find(row => row.dataset.seq === String(seq));
      return (
        row?.querySelector('summary') ??
        row?.querySelector('.jp-PgFeed-payload')
      )?.textContent;
    };
    expect(payload(1)).toBe(LOSSY);
    expect(payload(2)).toBe(text);

    typeFilter('1.10');
    expect(seqs()).toEqual([2, 1]);
    typeFilter('9007199254740993');
    expect(seqs()).toEqual([2, 1]);
    typeFilter('1e400');
    expect(seqs()).toEqual([1]);
    expect(payload(1)).toBe(LOSSY);
    typeFilter('"amount": 1.1}');
    expect(seqs()).toEqual([3]);
  });

  it('exports with the filter the rows on screen were chosen by', async () => {
    const { comm } = await showing([note(1), note(2, 'shipped')]);
    typeFilter('  Shipped ');
    buttonLabelled('Export').click();
    expect(comm.sent).toEqual([
      {
        type: 'export',
        variable: 'pg_notifications',
        channel: null,
        text: 'Shipped'
      }
    ]);
    frame();
    expect(find('notice').textContent).toContain(
      'Exporting to pg_notifications'
    );
    comm.receive({ type: 'exported', variable: 'pg_notifications', rows: 1 });
    frame();
    expect(find('notice').textContent).toBe(
      'Exported 1 rows to pg_notifications'
    );
  });

  it('holds the rows while paused and counts what arrived', async () => {
    const { comm } = await showing([note(1)]);
    buttonLabelled('Pause').click();
    comm.receive({ type: 'batch', items: [note(2), note(3)], state: state() });
    frame();
    expect(seqs()).toEqual([1]);
    expect(find('notice').textContent).toBe('Paused — 2 new');

    buttonLabelled('Resume').click();
    frame();
    expect(seqs()).toEqual([3, 2, 1]);
    expect(find('notice').hidden).toBe(true);
  });

  it('applies a filter changed while paused to the held rows only', async () => {
    const { comm } = await showing([note(1, 'a'), note(2, 'b')]);
    buttonLabelled('Pause').click();
    comm.receive({ type: 'batch', items: [note(3, 'a')], state: state() });
    typeFilter('a');
    expect(seqs()).toEqual([1]);
    typeFilter('');
    expect(seqs()).toEqual([2, 1]);
  });

  it('empties the list on Clear', async () => {
    await showing([note(1), note(2)]);
    buttonLabelled('Clear').click();
    frame();
    expect(rows()).toEqual([]);
    expect(find('empty').textContent).toBe('No notifications yet.');
  });
});
