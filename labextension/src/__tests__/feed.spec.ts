import { afterEach, describe, expect, it } from 'vitest';

import { FeedChange, FeedRegistry, KernelFeed, MAX_ITEMS } from '../feed';
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

/** A feed attached to a comm the kernel opened with a snapshot. */
async function attached(items = [note(1), note(2)], dropped = 0) {
  const ctx = await setup();
  const comm = ctx.kernel.openComm('c1', {
    type: 'snapshot',
    items,
    state: state({ dropped })
  });
  ctx.changes.length = 0;
  return { ...ctx, comm };
}

const seqs = (feed: KernelFeed) => feed.items.map(item => item.seq);
const lastSent = (comm: FakeComm) => comm.sent[comm.sent.length - 1];

afterEach(() => {
  feeds.splice(0).forEach(feed => feed.dispose());
});

describe('KernelFeed attaching', () => {
  it('asks the kernel for its comm and reports pgmagic missing', async () => {
    const { kernel, feed } = await setup();
    expect(kernel.targets.has(COMM_TARGET)).toBe(true);
    expect(kernel.commInfoRequests).toEqual([COMM_TARGET]);
    expect(feed.status).toBe('not-loaded');
    expect(feed.state).toBeNull();
  });

  it('re-attaches to a comm the kernel already holds and says hello', async () => {
    const kernel = new FakeKernel();
    // Old kernels ignore target_name and list every comm.
    kernel.commInfo = {
      other: { target_name: 'jupyter.widget' },
      c9: { target_name: COMM_TARGET }
    };
    const { feed } = await setup(kernel);
    expect(kernel.created.map(c => [c.commId, c.target])).toEqual([
      ['c9', COMM_TARGET]
    ]);
    expect(kernel.created[0].sent).toEqual([{ type: 'hello' }]);
    expect(feed.status).toBe('connecting');

    kernel.created[0].receive({
      type: 'snapshot',
      items: [note(3), note(1), note(2)],
      state: state({ count: 3 })
    });
    expect(feed.status).toBe('attached');
    expect(seqs(feed)).toEqual([1, 2, 3]);
    expect(feed.state?.count).toBe(3);
  });

  it('leaves a comm this connection already has alone', async () => {
    const kernel = new FakeKernel();
    kernel.commInfo = { c9: { target_name: COMM_TARGET } };
    kernel.openHere.add('c9');
    const { feed } = await setup(kernel);
    expect(kernel.created).toEqual([]);
    expect(feed.status).toBe('not-loaded');
  });

  it('stays detached when the kernel refuses comm_info', async () => {
    const kernel = new FakeKernel();
    kernel.commInfo = { c9: { target_name: COMM_TARGET } };
    kernel.commInfoStatus = 'error';
    const { feed } = await setup(kernel);
    expect(kernel.created).toEqual([]);
    expect(feed.status).toBe('not-loaded');
  });

  it('takes the snapshot a kernel-opened comm carries without a hello', async () => {
    const { feed, comm, changes } = await attached([note(1)]);
    expect(comm.sent).toEqual([]);
    expect(feed.status).toBe('attached');
    expect(changes).toEqual([]);
    expect(seqs(feed)).toEqual([1]);
  });

  it('asks for a snapshot when the opening comm carries none', async () => {
    const { kernel, feed } = await setup();
    const comm = kernel.openComm('c1');
    expect(comm.sent).toEqual([{ type: 'hello' }]);
    expect(feed.status).toBe('connecting');
  });

  it('closes the previous comm when the kernel opens a new one', async () => {
    const { kernel, feed, comm } = await attached();
    const next = kernel.openComm('c2', {
      type: 'snapshot',
      items: [note(1)],
      state: state()
    });
    expect(comm.isDisposed).toBe(true);
    // The old comm can no longer change the feed.
    comm.receive({ type: 'batch', items: [note(50)], state: state() });
    expect(seqs(feed)).toEqual([1]);
    next.receive({ type: 'batch', items: [note(2)], state: state() });
    expect(seqs(feed)).toEqual([1, 2]);
  });

  it('goes back to not-loaded when the kernel closes the comm', async () => {
    const { feed, comm, changes } = await attached();
    comm.closeFromKernel();
    expect(feed.status).toBe('not-loaded');
    expect(changes).toEqual(['state']);
    expect(feed.requestExport({ channel: null, text: null })).toBe(false);
  });

  it('retries discovery when a cell finishes, not on other idles', async () => {
    const { kernel, feed } = await setup();
    kernel.emitStatus('idle', 'comm_info_request');
    kernel.emitStatus('busy', 'execute_request');
    await settle();
    expect(kernel.commInfoRequests).toHaveLength(1);

    kernel.commInfo = { c5: { target_name: COMM_TARGET } };
    kernel.emitStatus('idle', 'execute_request');
    await settle();
    expect(kernel.commInfoRequests).toHaveLength(2);
    expect(feed.status).toBe('connecting');
  });

  it('resyncs with a hello after the websocket reconnects', async () => {
    const { kernel, comm } = await attached();
    kernel.connectionStatusChanged.emit('connecting');
    kernel.connectionStatusChanged.emit('connected');
    expect(comm.sent).toEqual([{ type: 'hello' }]);
  });

  it('forgets the comm when the kernel restarts', async () => {
    const { kernel, feed } = await attached();
    kernel.statusChanged.emit('restarting');
    expect(feed.status).toBe('not-loaded');
    expect(feed.requestExport({ channel: null, text: null })).toBe(false);
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

  it('starts a new sequence space with a new kernel-opened comm', async () => {
    const { kernel, feed } = await attached([note(5)]);
    feed.clear();
    const next = kernel.openComm('c2', {
      type: 'snapshot',
      items: [note(1)],
      state: state()
    });
    expect(seqs(feed)).toEqual([1]);
    feed.requestExport({ channel: null, text: null });
    expect(lastSent(next)).not.toHaveProperty('after_seq');
  });

  it('forgets the clear mark on a kernel restart', async () => {
    const { kernel, feed } = await attached([note(5)]);
    feed.clear();
    kernel.statusChanged.emit('restarting');
    kernel.commInfo = { c3: { target_name: COMM_TARGET } };
    kernel.connectionStatusChanged.emit('connected');
    await settle();
    const comm: FakeComm = kernel.created[0];
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

describe('KernelFeed disposal', () => {
  it('unregisters its target and keeps the kernel comm open', async () => {
    const { kernel, feed, comm } = await attached();
    let disposed = 0;
    feed.disposed.connect(() => disposed++);
    feed.dispose();
    feed.dispose();
    expect(disposed).toBe(1);
    expect(feed.isDisposed).toBe(true);
    expect(kernel.targets.has(COMM_TARGET)).toBe(false);
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
