import { describe, expect, it } from 'vitest';

import { filterFromInputs, IFeedFilter, matchesFilter } from '../filter';
import type { IGapItem, INotificationItem } from '../protocol';

const ORDER: INotificationItem = {
  seq: 1,
  kind: 'notification',
  time: 0,
  channel: 'Orders',
  pid: 4242,
  payload: '{"status":"Shipped"}',
  connection: ''
};

const GAP: IGapItem = {
  seq: 2,
  kind: 'gap',
  time: 0,
  start: 0,
  end: 1,
  message: 'Listener disconnected'
};

const ALL: IFeedFilter = { channel: null, text: null };

describe('matchesFilter', () => {
  it.each<[string, IFeedFilter, boolean]>([
    ['no filter', ALL, true],
    ['its channel', { channel: 'Orders', text: null }, true],
    ['another channel', { channel: 'payments', text: null }, false],
    ['a channel differing in case', { channel: 'orders', text: null }, false],
    ['payload text in another case', { channel: null, text: 'shipped' }, true],
    ['channel text', { channel: null, text: 'ORD' }, true],
    ['part of the pid', { channel: null, text: '424' }, true],
    ['text found nowhere', { channel: null, text: 'refund' }, false],
    [
      'its channel and matching text',
      { channel: 'Orders', text: 'ship' },
      true
    ],
    [
      'its channel, text elsewhere',
      { channel: 'Orders', text: 'refund' },
      false
    ],
    ['another channel, matching text', { channel: 'x', text: 'ship' }, false]
  ])('a notification against %s: %s', (_case, filter, expected) => {
    expect(matchesFilter(ORDER, filter)).toBe(expected);
  });

  it("matches another connection's channel by its header label", () => {
    const away = { ...ORDER, connection: 'two' };
    expect(matchesFilter(away, { channel: 'two: Orders', text: null })).toBe(
      true
    );
    expect(matchesFilter(away, { channel: 'Orders', text: null })).toBe(false);
    expect(matchesFilter(ORDER, { channel: 'two: Orders', text: null })).toBe(
      false
    );
  });

  it.each<[string, IFeedFilter, boolean]>([
    ['no filter', ALL, true],
    ['any channel', { channel: 'payments', text: null }, true],
    ['text in its message', { channel: 'payments', text: 'DISCONNECT' }, true],
    ['text not in its message', { channel: null, text: 'orders' }, false]
  ])('a gap against %s: %s', (_case, filter, expected) => {
    expect(matchesFilter(GAP, filter)).toBe(expected);
  });
});

describe('filterFromInputs', () => {
  it('reads an empty select and blank text as no filter', () => {
    expect(filterFromInputs('', '   ')).toEqual(ALL);
  });

  it('trims the text but keeps its case for the kernel', () => {
    expect(filterFromInputs('orders', '  Shipped ')).toEqual({
      channel: 'orders',
      text: 'Shipped'
    });
  });
});
