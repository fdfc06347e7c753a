import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import { FeedWidgetModel, FeedWidgetTraits, render } from '../feedWidget';
import { LOSSY, note, state } from './fakes';

// anywidget types its event handlers this loosely.
type Handler = (...args: any[]) => void;

/** anywidget's model as far as the view sees it: traits and events. */
class FakeModel implements FeedWidgetModel {
  constructor(traits: Partial<FeedWidgetTraits> = {}) {
    this.traits = { items: [], state: state(), paused: false, ...traits };
  }

  traits: FeedWidgetTraits;
  readonly sent: unknown[] = [];
  saves = 0;
  readonly handlers = new Map<string, Set<Handler>>();

  get<K extends keyof FeedWidgetTraits>(key: K): FeedWidgetTraits[K] {
    return this.traits[key];
  }

  set<K extends keyof FeedWidgetTraits>(
    key: K,
    value: FeedWidgetTraits[K]
  ): void {
    this.traits[key] = value;
    this.handlers.get(`change:${key}`)?.forEach(handler => handler());
  }

  on(event: string, handler: Handler): void {
    if (!this.handlers.has(event)) {
      this.handlers.set(event, new Set());
    }
    this.handlers.get(event)?.add(handler);
  }

  off(event?: string | null, handler?: Handler | null): void {
    if (event && handler) {
      this.handlers.get(event)?.delete(handler);
    }
  }

  save_changes(): void {
    this.saves++;
  }

  send(content: unknown): void {
    this.sent.push(content);
  }

  listeners(): number {
    return [...this.handlers.values()].reduce((n, set) => n + set.size, 0);
  }
}

function mount(model: FakeModel) {
  const host = document.createElement('div');
  const cleanup = render({ model, el: host });
  const find = (suffix: string) =>
    host.querySelector<HTMLElement>(`.pgmagic-feed-${suffix}`);
  const rows = () => [
    ...host.querySelectorAll<HTMLElement>('.pgmagic-feed-row')
  ];
  const button = (label: string) =>
    [...host.querySelectorAll('button')].find(b => b.textContent === label);
  return { host, cleanup, find, rows, button };
}

const seqOf = (row: HTMLElement) => Number(row.dataset.seq);

beforeEach(() => {
  vi.useFakeTimers({
    toFake: ['requestAnimationFrame', 'cancelAnimationFrame']
  });
});

afterEach(() => {
  vi.useRealTimers();
});

describe('feed widget', () => {
  it('renders the rows newest first with the shared row renderer', () => {
    const model = new FakeModel({ items: [note(1), note(2, '{"a":1}')] });
    const { rows, find } = mount(model);
    expect(rows().map(seqOf)).toEqual([2, 1]);
    expect(
      rows()[0].querySelector('.pgmagic-feed-json summary')?.textContent
    ).toBe('{"a":1}');
    expect(
      rows()[1].querySelector('.pgmagic-feed-channelName')?.textContent
    ).toBe('orders');
    expect(find('empty')?.hidden).toBe(true);
  });

  it('shows payloads as sent, JSON or not', () => {
    const text = 'id 9007199254740993 paid 1.10 é';
    const model = new FakeModel({ items: [note(1, LOSSY), note(2, text)] });
    const { rows } = mount(model);
    expect(rows()[0].querySelector('.pgmagic-feed-payload')?.textContent).toBe(
      text
    );
    const json = rows()[1].querySelector('.pgmagic-feed-json');
    expect(json?.querySelector('summary')?.textContent).toBe(LOSSY);
    expect(json?.querySelector('pre')?.textContent).toContain(
      '"id": 9007199254740993,\n  "amount": 1.10,\n  "n": 1e400,'
    );
  });

  it('says so while there is nothing to show', () => {
    const { rows, find } = mount(new FakeModel());
    expect(rows()).toEqual([]);
    expect(find('empty')?.hidden).toBe(false);
    expect(find('empty')?.textContent).toBe('No notifications yet.');
  });

  it('skips items the kernel side sent malformed', () => {
    const model = new FakeModel({
      items: [note(1), { seq: 'x' }, null, { ...note(3), kind: 'odd' }]
    });
    expect(mount(model).rows().map(seqOf)).toEqual([1]);
  });

  it('shows the listener state and counters', () => {
    const model = new FakeModel({
      state: state({
        listener: 'reconnecting',
        channels: ['orders', 'payments'],
        count: 1234,
        rate: 2.25,
        dropped: 3
      })
    });
    const { find } = mount(model);
    expect(find('badge')?.textContent).toBe('reconnecting');
    expect(find('badge')?.dataset.state).toBe('reconnecting');
    expect(find('stats')?.textContent).toBe(
      `orders, payments · ${(1234).toLocaleString()} received · 2.3/s`
    );
    expect(find('dropped')?.hidden).toBe(false);
    expect(find('dropped')?.textContent).toBe('dropped from view: 3');
  });

  it('shows an unreadable state as stopped', () => {
    const { find } = mount(new FakeModel({ state: { listener: 'on' } }));
    expect(find('badge')?.textContent).toBe('stopped');
    expect(find('stats')?.textContent).toBe('none · 0 received · 0.0/s');
    expect(find('dropped')?.hidden).toBe(true);
  });

  it('renders trait changes once per frame and reuses unchanged rows', () => {
    const model = new FakeModel({ items: [note(1)] });
    const { rows } = mount(model);
    const first = rows()[0];
    model.set('items', [note(1), note(2)]);
    model.set('items', [note(1), note(2), note(3)]);
    expect(rows().map(seqOf)).toEqual([1]);
    vi.advanceTimersToNextFrame();
    expect(rows().map(seqOf)).toEqual([3, 2, 1]);
    expect(rows()[2]).toBe(first);
  });

  it('renders a fresh row when a restarted feed reuses a seq', () => {
    const model = new FakeModel({ items: [note(1)] });
    const { rows } = mount(model);
    const old = rows()[0];
    model.set('items', [{ ...note(1), time: 1800000000 }]);
    vi.advanceTimersToNextFrame();
    expect(rows()).toHaveLength(1);
    expect(rows()[0]).not.toBe(old);
    expect(rows()[0].dataset.time).toBe('1800000000');
  });

  it('keeps the rows on screen while paused, then catches up', () => {
    const model = new FakeModel({ items: [note(1)] });
    const { rows, button, host } = mount(model);
    button('Pause')?.click();
    expect(model.traits.paused).toBe(true);
    expect(model.saves).toBe(1);
    model.set('items', [note(1), note(2)]);
    vi.advanceTimersToNextFrame();
    expect(rows().map(seqOf)).toEqual([1]);
    expect(button('Resume')?.getAttribute('aria-pressed')).toBe('true');
    expect(
      host.firstElementChild?.classList.contains('pgmagic-feed-paused')
    ).toBe(true);

    button('Resume')?.click();
    vi.advanceTimersToNextFrame();
    expect(model.traits.paused).toBe(false);
    expect(rows().map(seqOf)).toEqual([2, 1]);
    expect(button('Pause')?.getAttribute('aria-pressed')).toBe('false');
  });

  it('asks the kernel side to clear, leaving the rows to the traits', () => {
    const model = new FakeModel({ items: [note(1)] });
    const { rows, button } = mount(model);
    button('Clear')?.click();
    expect(model.sent).toEqual([{ type: 'clear' }]);
    expect(rows()).toHaveLength(1);
  });

  it('stops listening and drawing once cleaned up', () => {
    const model = new FakeModel({ items: [note(1)] });
    const { rows, cleanup } = mount(model);
    expect(model.listeners()).toBe(3);
    model.set('items', [note(1), note(2)]);
    cleanup();
    expect(model.listeners()).toBe(0);
    vi.advanceTimersToNextFrame();
    expect(rows().map(seqOf)).toEqual([1]);
  });
});
