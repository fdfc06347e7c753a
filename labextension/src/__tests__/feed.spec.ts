import { afterEach, describe, expect, it, vi } from 'vitest';

import {
  COMPLETE_ASKED,
  COMPLETE_REPLIED,
  FeedChange,
  FeedRegistry,
  KernelFeed,
  MAX_ITEMS
} from '../feed';
import { COMM_TARGET, EXPORT_VARIABLE } from '../protocol';
import { FakeComm, FakeKernel, note, settle, state } from './fakes';

const feeds: KernelFeed[] = [];

/** A feed on a fresh kernel, with its change log and discovery settled. */
async function setup(kernel = new FakeKernel()) {
  const feed = new KernelFeed(kernel.asConnection());
  feeds.push(feed);
  const changes: FeedChange[] = [];
  feed.changed.connect((_feed, change) => changes.push(change));
  await settle();
  return { kernel, feed, changes };
}

/** A feed that opened its comm and got the kernel's snapshot. */
async function attached(items = [note(1), note(2)], dropped = 0) {
  const ctx = await setup();
  const comm = ctx.kernel.lastComm;
  comm.receive({ type: 'snapshot', items, state: state({ dropped }) });
  ctx.changes.length = 0;
  return { ...ctx, comm };
}

/** The kernel refuses the open: pgmagic is not loaded there. */
async function refused() {
  const ctx = await setup();
  ctx.kernel.lastComm.closeFromKernel();
  return ctx;
}

const seqs = (feed: KernelFeed) => feed.items.map(item => item.seq);
const lastSent = (comm: FakeComm) => comm.sent[comm.sent.length - 1];

afterEach(() => {
  feeds.splice(0).forEach(feed => feed.dispose());
});

describe('KernelFeed attaching', () => {
  it('opens a comm when the kernel holds none and takes its snapshot', async () => {
    const { kernel, feed, changes } = await setup();
    expect(kernel.commInfoRequests).toEqual([COMM_TARGET]);
    expect(kernel.created.map(c => [c.target, c.opened])).toEqual([
      [COMM_TARGET, {}]
    ]);
    expect(feed.status).toBe('connecting');

    kernel.lastComm.receive({
      type: 'snapshot',
      items: [note(3), note(1), note(2)],
      state: state({ count: 3 })
    });
    // The kernel sends its snapshot on open: no hello needed.
    expect(kernel.lastComm.sent).toEqual([]);
    expect(feed.status).toBe('attached');
    expect(seqs(feed)).toEqual([1, 2, 3]);
    expect(feed.state?.count).toBe(3);
    expect(changes).toEqual(['state', 'reset']);
  });

  it('says pgmagic is not loaded when the kernel refuses the comm', async () => {
    const { kernel, feed } = await refused();
    expect(feed.status).toBe('not-loaded');
    expect(feed.state).toBeNull();
    expect(kernel.lastComm.isDisposed).toBe(true);
    expect(feed.requestExport({ channel: null, text: null })).toBe(false);
  });

  it('tries again once per finished cell, not on other idles', async () => {
    const { kernel, feed } = await refused();
    kernel.emitStatus('idle', 'comm_open');
    kernel.emitStatus('idle', 'comm_info_request');
    kernel.emitStatus('busy', 'execute_request');
    await settle();
    expect(kernel.created).toHaveLength(1);

    kernel.emitStatus('idle', 'execute_request');
    await settle();
    expect(kernel.commInfoRequests).toHaveLength(2);
    expect(kernel.created).toHaveLength(2);
    expect(kernel.lastComm.opened).toEqual({});
    expect(feed.status).toBe('connecting');

    // While that open is unanswered, more finished cells send nothing.
    kernel.emitStatus('idle', 'execute_request');
    kernel.emitStatus('idle', 'execute_request');
    await settle();
    expect(kernel.created).toHaveLength(2);

    // %load_ext ran meanwhile: the kernel answers with its snapshot.
    kernel.lastComm.receive({ type: 'snapshot', items: [], state: state() });
    expect(feed.status).toBe('attached');
  });

  it('sends nothing more once attached', async () => {
    const { kernel } = await attached();
    kernel.emitStatus('idle', 'execute_request');
    await settle();
    expect(kernel.commInfoRequests).toHaveLength(1);
    expect(kernel.created).toHaveLength(1);
  });

  it('re-attaches to a comm the kernel already holds and says hello', async () => {
    const kernel = new FakeKernel();
    // Old kernels ignore target_name and list every comm.
    kernel.commInfo = {
      other: { target_name: 'jupyter.widget' },
      c9: { target_name: COMM_TARGET }
    };
    const { feed } = await setup(kernel);
    expect(kernel.created.map(c => [c.commId, c.target, c.opened])).toEqual([
      ['c9', COMM_TARGET, null]
    ]);
    expect(kernel.created[0].sent).toEqual([{ type: 'hello' }]);
    expect(feed.status).toBe('connecting');

    kernel.created[0].receive({
      type: 'snapshot',
      items: [note(1)],
      state: state()
    });
    expect(feed.status).toBe('attached');
  });

  it('opens its own comm beside one this connection already has', async () => {
    const kernel = new FakeKernel();
    kernel.commInfo = { c9: { target_name: COMM_TARGET } };
    kernel.openHere.add('c9');
    await setup(kernel);
    expect(kernel.created.map(c => [c.commId, c.opened])).toEqual([
      ['new-1', {}]
    ]);
  });

  it('opens a comm when the kernel refuses comm_info', async () => {
    const kernel = new FakeKernel();
    kernel.commInfo = { c9: { target_name: COMM_TARGET } };
    kernel.commInfoStatus = 'error';
    await setup(kernel);
    expect(kernel.created.map(c => [c.commId, c.opened])).toEqual([
      ['new-1', {}]
    ]);
  });

  it('goes back to not-loaded when the kernel closes the comm, then retries', async () => {
    const { kernel, feed, comm, changes } = await attached();
    comm.closeFromKernel();
    expect(feed.status).toBe('not-loaded');
    expect(changes).toEqual(['state']);
    expect(feed.requestExport({ channel: null, text: null })).toBe(false);

    kernel.emitStatus('idle', 'execute_request');
    await settle();
    expect(kernel.created.map(c => c.commId)).toEqual(['new-1', 'new-2']);
  });

  it('resyncs with a hello after the websocket reconnects', async () => {
    const { kernel, comm } = await attached();
    kernel.connectionStatusChanged.emit('connecting');
    kernel.connectionStatusChanged.emit('connected');
    expect(comm.sent).toEqual([{ type: 'hello' }]);
    expect(kernel.created).toHaveLength(1);
  });

  it('forgets the comm on a restart and opens a new one on reconnect', async () => {
    const { kernel, feed } = await attached();
    kernel.statusChanged.emit('restarting');
    expect(feed.status).toBe('not-loaded');
    expect(feed.requestExport({ channel: null, text: null })).toBe(false);
    // The connection reconnects after every restart.
    kernel.connectionStatusChanged.emit('connected');
    await settle();
    expect(kernel.created.map(c => [c.commId, c.opened])).toEqual([
      ['new-1', {}],
      ['new-2', {}]
    ]);
    expect(feed.status).toBe('connecting');
  });
});

describe('KernelFeed history', () => {
  it('appends only items newer than the last one held', async () => {
    const { feed, comm, changes } = await attached([note(1), note(2)]);
    comm.receive({
      type: 'batch',
      items: [note(2), note(3), note(4)],
      state: state({ count: 4 })
    });
    expect(seqs(feed)).toEqual([1, 2, 3, 4]);
    expect(changes).toEqual(['append']);
    expect(feed.state?.count).toBe(4);
  });

  it('reports a batch with nothing new as a state change', async () => {
    const { feed, comm, changes } = await attached([note(1), note(2)]);
    comm.receive({
      type: 'batch',
      items: [note(1)],
      state: state({ rate: 2 })
    });
    expect(seqs(feed)).toEqual([1, 2]);
    expect(changes).toEqual(['state']);
    expect(feed.state?.rate).toBe(2);
  });

  it('ignores malformed messages without touching the history', async () => {
    const { feed, comm, changes } = await attached([note(1)]);
    comm.receive({ type: 'batch', items: 'nope', state: state() });
    comm.receive({ type: 'snapshot', items: [], state: { listener: 'on' } });
    comm.receive('not an object');
    expect(seqs(feed)).toEqual([1]);
    expect(changes).toEqual([]);
  });

  it('evicts the oldest items past the bound and counts them', async () => {
    const { feed, comm } = await attached([note(1)]);
    const items = Array.from({ length: MAX_ITEMS + 4 }, (_, i) => note(i + 2));
    comm.receive({ type: 'batch', items, state: state() });
    expect(feed.items).toHaveLength(MAX_ITEMS);
    expect(feed.items[0].seq).toBe(6);
    expect(feed.items[MAX_ITEMS - 1].seq).toBe(MAX_ITEMS + 5);
    expect(feed.droppedFromView).toBe(5);
  });

  it('counts what the kernel lost plus what a big snapshot overflows', async () => {
    const items = Array.from({ length: MAX_ITEMS + 3 }, (_, i) => note(i + 1));
    const { feed } = await attached(items, 10);
    expect(feed.items).toHaveLength(MAX_ITEMS);
    expect(feed.items[0].seq).toBe(4);
    expect(feed.droppedFromView).toBe(13);
  });

  it('replaces the history on a new snapshot', async () => {
    const { feed, comm, changes } = await attached([note(1), note(2)]);
    comm.receive({ type: 'snapshot', items: [note(7)], state: state() });
    expect(seqs(feed)).toEqual([7]);
    expect(changes).toEqual(['reset']);
  });
});

describe('KernelFeed clear and export', () => {
  it('sends the filter and the export variable', async () => {
    const { feed, comm } = await attached();
    expect(feed.requestExport({ channel: 'orders', text: 'shipped' })).toBe(
      true
    );
    expect(comm.sent).toEqual([
      {
        type: 'export',
        variable: EXPORT_VARIABLE,
        channel: 'orders',
        text: 'shipped'
      }
    ]);
  });

  it('keeps cleared rows out of later snapshots and exports', async () => {
    const { feed, comm, changes } = await attached([note(1), note(2)], 4);
    feed.clear();
    expect(feed.items).toEqual([]);
    expect(feed.droppedFromView).toBe(0);
    expect(changes).toEqual(['reset']);

    // A resync after the Clear: the kernel still holds 1 and 2.
    comm.receive({
      type: 'snapshot',
      items: [note(1), note(2), note(3)],
      state: state({ dropped: 4 })
    });
    expect(seqs(feed)).toEqual([3]);
    // Losses before the Clear no longer concern the user.
    expect(feed.droppedFromView).toBe(0);

    feed.requestExport({ channel: null, text: null });
    expect(lastSent(comm)).toMatchObject({ type: 'export', after_seq: 2 });
  });

  it('keeps the mark when a second Clear finds nothing new', async () => {
    const { feed, comm } = await attached([note(5)]);
    feed.clear();
    feed.clear();
    feed.requestExport({ channel: null, text: null });
    expect(lastSent(comm)).toMatchObject({ after_seq: 5 });
  });

  it('starts a new sequence space with a new comm', async () => {
    const { kernel, feed, comm } = await attached([note(5)]);
    feed.clear();
    // %reload_ext: the old comm closes, the next one numbers from scratch.
    comm.closeFromKernel();
    kernel.emitStatus('idle', 'execute_request');
    await settle();
    const next = kernel.lastComm;
    next.receive({ type: 'snapshot', items: [note(1)], state: state() });
    expect(seqs(feed)).toEqual([1]);
    feed.requestExport({ channel: null, text: null });
    expect(lastSent(next)).not.toHaveProperty('after_seq');
  });

  it('keeps the clear mark when the same comm resyncs', async () => {
    const { kernel, feed, comm } = await attached([note(5)]);
    feed.clear();
    kernel.connectionStatusChanged.emit('connected');
    comm.receive({ type: 'snapshot', items: [note(5)], state: state() });
    expect(seqs(feed)).toEqual([]);
  });

  it('forgets the clear mark on a kernel restart', async () => {
    const { kernel, feed } = await attached([note(5)]);
    feed.clear();
    kernel.statusChanged.emit('restarting');
    kernel.commInfo = { c3: { target_name: COMM_TARGET } };
    kernel.connectionStatusChanged.emit('connected');
    await settle();
    const comm: FakeComm = kernel.lastComm;
    expect(comm.commId).toBe('c3');
    comm.receive({ type: 'snapshot', items: [note(1)], state: state() });
    expect(seqs(feed)).toEqual([1]);
  });

  it('relays the export reply and the kernel errors', async () => {
    const { feed, comm } = await attached();
    const results: unknown[] = [];
    feed.exported.connect((_feed, result) => results.push(result));
    feed.exportFailed.connect((_feed, message) => results.push(message));
    comm.receive({ type: 'exported', variable: 'pg_notifications', rows: 2 });
    comm.receive({ type: 'error', message: 'invalid variable' });
    expect(results).toEqual([
      { variable: 'pg_notifications', rows: 2 },
      'invalid variable'
    ]);
  });
});

describe('KernelFeed complete', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  const reply = (id: number, label: string) => ({
    type: 'completions',
    id,
    start: 14,
    end: 16,
    items: [{ label, type: 'table', detail: 'public' }]
  });

  it('sends a request and resolves each with the reply of its id', async () => {
    const { feed, comm } = await attached();
    const first = feed.complete('%%pg\nTABLE or', 16);
    const second = feed.complete('%%pg\nTABLE ord', 17);
    expect(comm.sent).toEqual([
      { type: 'complete', id: 1, code: '%%pg\nTABLE or', pos: 16 },
      { type: 'complete', id: 2, code: '%%pg\nTABLE ord', pos: 17 }
    ]);
    // Replies may come in any order; a stray id answers nobody.
    comm.receive(reply(99, 'stray'));
    comm.receive(reply(2, 'orders_2'));
    comm.receive(reply(1, 'orders_1'));
    expect((await first)?.items[0].label).toBe('orders_1');
    expect((await second)?.items[0].label).toBe('orders_2');
  });

  it('marks the latest round trip for the performance timeline', async () => {
    const { feed, comm } = await attached();
    for (const id of [1, 2]) {
      const answer = feed.complete('%%pg\nTABLE or', 16);
      comm.receive(reply(id, 'orders'));
      await answer;
    }
    const asked = performance.getEntriesByName(COMPLETE_ASKED);
    const replied = performance.getEntriesByName(COMPLETE_REPLIED);
    expect(asked).toHaveLength(1);
    expect(replied).toHaveLength(1);
    expect(replied[0].startTime).toBeGreaterThanOrEqual(asked[0].startTime);
  });

  it('gives null after the timeout and ignores the late reply', async () => {
    const { feed, comm } = await attached();
    // After attaching: discovery settles on a real timer.
    vi.useFakeTimers();
    const answer = feed.complete('%%pg\nTABLE or', 16, 1500);
    vi.advanceTimersByTime(1499);
    let settled = false;
    void answer.then(() => (settled = true));
    await Promise.resolve();
    expect(settled).toBe(false);
    vi.advanceTimersByTime(1);
    expect(await answer).toBeNull();
    comm.receive(reply(1, 'late'));
    expect(await answer).toBeNull();
  });

  it('gives null at once without sending while pgmagic is not loaded', async () => {
    const { kernel, feed } = await refused();
    expect(await feed.complete('%%pg\nTABLE or', 16)).toBeNull();
    expect(kernel.lastComm.sent).toEqual([]);
  });

  it('gives null to pending requests when the kernel closes the comm', async () => {
    const { feed, comm } = await attached();
    const answer = feed.complete('%%pg\nTABLE or', 16);
    comm.closeFromKernel();
    expect(await answer).toBeNull();
  });
});

describe('KernelFeed disposal', () => {
  it('keeps the kernel comm open', async () => {
    const { feed, comm } = await attached();
    let disposed = 0;
    feed.disposed.connect(() => disposed++);
    feed.dispose();
    feed.dispose();
    expect(disposed).toBe(1);
    expect(feed.isDisposed).toBe(true);
    // A reloaded page re-attaches to it by id.
    expect(comm.isDisposed).toBe(false);
  });

  it('goes with its kernel', async () => {
    const { kernel, feed } = await setup();
    kernel.disposed.emit();
    expect(feed.isDisposed).toBe(true);
  });
});

describe('FeedRegistry', () => {
  it('shares one feed per kernel id and replaces a disposed one', () => {
    const registry = new FeedRegistry();
    const kernel = new FakeKernel('k');
    const first = registry.feedFor(kernel.asConnection());
    expect(first).not.toBeNull();
    // Another notebook on the same kernel: another connection, same id.
    expect(registry.feedFor(new FakeKernel('k').asConnection())).toBe(first);
    first?.dispose();
    const second = registry.feedFor(kernel.asConnection());
    expect(second).not.toBe(first);
    expect(second?.isDisposed).toBe(false);
    second?.dispose();
  });

  it('creates no feed on a connection that cannot carry comms', () => {
    const kernel = new FakeKernel();
    kernel.handleComms = false;
    expect(new FeedRegistry().feedFor(kernel.asConnection())).toBeNull();
  });
});
