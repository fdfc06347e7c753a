import { describe, expect, it } from 'vitest';

import type { IGapItem, INotificationItem } from '../protocol';
import { formatTime, renderRow } from '../rows';
import { LOSSY } from './fakes';

// 2023-11-14 22:13:20.250 UTC; vitest.config.mts pins TZ=UTC.
const TIME = 1700000000.25;

function note(payload: string): INotificationItem {
  return {
    seq: 7,
    kind: 'notification',
    time: TIME,
    channel: 'orders',
    pid: 4242,
    payload,
    connection: ''
  };
}

function gap(start: number, end: number): IGapItem {
  return {
    seq: 8,
    kind: 'gap',
    time: end,
    start,
    end,
    message: 'listener disconnected'
  };
}

function text(row: HTMLElement, suffix: string): string | null | undefined {
  return row.querySelector(`.p-${suffix}`)?.textContent;
}

describe('renderRow', () => {
  it("names another connection's notification, and only that", () => {
    const own = renderRow(note('shipped'), 'p');
    expect(own.querySelector('.p-connection')).toBeNull();
    const away = renderRow({ ...note('shipped'), connection: 'sales' }, 'p');
    expect(text(away, 'connection')).toBe('sales');
    expect(away.querySelector('.p-meta')?.textContent).toContain('salesorders');
  });

  it('lays out a notification with the host prefix', () => {
    const row = renderRow(note('shipped'), 'p');
    expect(row.className).toBe('p-row');
    expect(row.dataset.seq).toBe('7');
    expect(row.dataset.time).toBe(String(TIME));
    expect(row.getAttribute('role')).toBeNull();
    const meta = row.querySelector(':scope > .p-meta');
    expect(
      [...(meta?.children ?? [])].map(child => [
        child.className,
        child.textContent
      ])
    ).toEqual([
      ['p-time', '22:13:20.250'],
      ['p-channelName', 'orders'],
      ['p-pid', 'pid 4242']
    ]);
    expect(text(row, 'payload')).toBe('shipped');
  });

  it('uses only the given prefix, so each host keeps its own styles', () => {
    const row = renderRow(note('{"a":1}'), 'jp-PgFeed');
    const classes = [row, ...row.querySelectorAll('*')].flatMap(node => [
      ...node.classList
    ]);
    expect(classes.length).toBeGreaterThan(0);
    expect(classes.every(name => name.startsWith('jp-PgFeed-'))).toBe(true);
  });

  it('collapses a JSON object to its text as sent and re-indents it inside', () => {
    const payload = ' {"order": 42, "lines": [1, 2]}';
    const row = renderRow(note(payload), 'p');
    const details = row.querySelector('details');
    expect(details?.className).toBe('p-payload p-json');
    expect(details?.open).toBe(false);
    expect(details?.querySelector('summary')?.textContent).toBe(payload);
    expect(details?.querySelector('pre')?.textContent).toBe(
      JSON.stringify({ order: 42, lines: [1, 2] }, null, 2)
    );
  });

  it('shows JSON values exactly as sent, where a round trip would change them', () => {
    const row = renderRow(note(LOSSY), 'p');
    expect(row.querySelector('summary')?.textContent).toBe(LOSSY);
    const pretty = row.querySelector('pre')?.textContent ?? '';
    for (const value of [
      '9007199254740993',
      '1.10',
      '1e400',
      '"é\\u0000"',
      '"second"',
      '-0.0',
      '123456789012345678901234567890',
      '1E+2'
    ]) {
      expect(pretty).toContain(value);
    }
    expect(pretty.replace(/\s/g, '')).toBe(LOSSY.replace(/\s/g, ''));
  });

  it('treats a JSON array like an object', () => {
    const row = renderRow(note('[1,"two"]'), 'p');
    expect(row.querySelector('summary')?.textContent).toBe('[1,"two"]');
  });

  it.each([
    ['a bare number', '42'],
    ['a JSON string', '"quoted"'],
    ['broken JSON', '{"order": 42'],
    ['text that starts like JSON', '[draft] order 42'],
    ['numbers in text', 'id 9007199254740993 paid 1.10'],
    ['non-ASCII and control characters', 'é\u0000\t ünïcode 🐘'],
    ['JSON with trailing text', '{"id": 9007199254740993} and more'],
    ['multi-line text', '  line 1\n\n    line 3  ']
  ])('shows %s as sent', (_case, payload) => {
    const row = renderRow(note(payload), 'p');
    expect(row.querySelector('details')).toBeNull();
    expect(text(row, 'payload')).toBe(payload);
  });

  it('marks an empty payload instead of showing nothing', () => {
    const row = renderRow(note(''), 'p');
    const payload = row.querySelector('.p-payload');
    expect(payload?.textContent).toBe('(empty payload)');
    expect(payload?.classList.contains('p-muted')).toBe(true);
  });

  it('never interprets a payload as markup', () => {
    const payload = '<img src=x onerror="alert(1)"><b>bold</b>';
    const row = renderRow({ ...note(payload), channel: '<i>ch</i>' }, 'p');
    expect(row.querySelector('img, b, i')).toBeNull();
    expect(text(row, 'payload')).toBe(payload);
    expect(text(row, 'channelName')).toBe('<i>ch</i>');
  });

  it('announces a gap with its length and window', () => {
    const row = renderRow(gap(TIME, TIME + 2.5), 'p');
    expect(row.className).toBe('p-row p-gap');
    expect(row.getAttribute('role')).toBe('alert');
    expect(row.dataset.seq).toBe('8');
    expect(text(row, 'gapLabel')).toBe('gap 2.5 s');
    expect(row.querySelector('.p-channelName, .p-pid')).toBeNull();
    expect(text(row, 'payload')).toBe(
      'listener disconnected (22:13:20.250 → 22:13:22.750)'
    );
  });

  it('never reports a negative gap when the clock went back', () => {
    const row = renderRow(gap(TIME, TIME - 3), 'p');
    expect(text(row, 'gapLabel')).toBe('gap 0.0 s');
  });
});

describe('formatTime', () => {
  it.each([
    [0, '00:00:00.000'],
    [TIME, '22:13:20.250'],
    [1700000000.0019, '22:13:20.001'],
    [1700003599.999, '23:13:19.999']
  ])('formats %d as %s', (seconds, expected) => {
    expect(formatTime(seconds)).toBe(expected);
  });
});
