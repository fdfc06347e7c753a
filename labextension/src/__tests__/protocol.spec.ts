import { describe, expect, it } from 'vitest';

import {
  parseFeedItem,
  parseFeedState,
  parseKernelMessage,
  toCommData
} from '../protocol';

const STATE = {
  listener: 'listening',
  channels: ['orders'],
  count: 3,
  rate: 1.5,
  dropped: 0
};

const NOTE = {
  seq: 1,
  kind: 'notification',
  time: 1700000000.25,
  channel: 'orders',
  pid: 4242,
  payload: '{"id":1}',
  connection: ''
};

const GAP = {
  seq: 2,
  kind: 'gap',
  time: 1700000010,
  start: 1700000005,
  end: 1700000009.5,
  message: 'disconnected'
};

describe('parseKernelMessage', () => {
  it.each(['snapshot', 'batch'] as const)('reads a %s', type => {
    expect(
      parseKernelMessage({ type, items: [NOTE, GAP], state: STATE })
    ).toEqual({ type, items: [NOTE, GAP], state: STATE });
  });

  it('skips malformed items but keeps the rest of the batch', () => {
    const message = parseKernelMessage({
      type: 'batch',
      items: [
        NOTE,
        null,
        'text',
        { ...NOTE, seq: 'x' },
        { ...NOTE, seq: Number.NaN },
        { ...NOTE, time: Infinity },
        { ...NOTE, kind: 'other' },
        GAP
      ],
      state: STATE
    });
    expect(message?.type === 'batch' && message.items).toEqual([NOTE, GAP]);
  });

  it.each([
    ['items missing', { type: 'batch', state: STATE }],
    ['items not a list', { type: 'batch', items: {}, state: STATE }],
    ['state missing', { type: 'snapshot', items: [] }],
    [
      'unknown listener',
      { type: 'snapshot', items: [], state: { listener: 'up' } }
    ],
    ['exported without rows', { type: 'exported', variable: 'df' }],
    [
      'exported with a string count',
      { type: 'exported', variable: 'df', rows: '3' }
    ],
    ['exported without a variable', { type: 'exported', rows: 3 }],
    ['error without text', { type: 'error', message: 42 }],
    ['unknown type', { type: 'hello' }],
    ['no type', { items: [] }],
    ['an array', [{ type: 'batch', items: [], state: STATE }]],
    ['null', null],
    ['a string', 'snapshot']
  ])('rejects %s', (_case, data) => {
    expect(parseKernelMessage(data)).toBeNull();
  });

  it('reads export replies and errors', () => {
    expect(
      parseKernelMessage({ type: 'exported', variable: 'df', rows: 7 })
    ).toEqual({ type: 'exported', variable: 'df', rows: 7 });
    expect(parseKernelMessage({ type: 'error', message: 'bad name' })).toEqual({
      type: 'error',
      message: 'bad name'
    });
  });

  it('reads the end of a background job, and refuses unknown states', () => {
    const ended = {
      type: 'job-ended',
      job: 3,
      name: 'big',
      state: 'done',
      summary: 'big: 1,204 rows in 4.1 s',
      connection: 'prod'
    };
    expect(parseKernelMessage(ended)).toEqual(ended);
    expect(parseKernelMessage({ ...ended, state: 'running' })).toBeNull();
    expect(parseKernelMessage({ ...ended, job: '3' })).toBeNull();
    expect(
      parseKernelMessage({ type: 'job-ended', job: 1, state: 'failed' })
    ).toEqual({
      type: 'job-ended',
      job: 1,
      name: '',
      state: 'failed',
      summary: '',
      connection: ''
    });
  });

  it('reads completions, skipping items without a label', () => {
    expect(
      parseKernelMessage({
        type: 'completions',
        id: 4,
        start: 5,
        end: 8,
        items: [
          { label: 'orders', type: 'table', detail: 'public' },
          { label: 'order_id' },
          { type: 'table' },
          'text'
        ]
      })
    ).toEqual({
      type: 'completions',
      id: 4,
      start: 5,
      end: 8,
      items: [
        { label: 'orders', type: 'table', detail: 'public' },
        { label: 'order_id', type: '', detail: '' }
      ]
    });
  });

  it.each([
    ['a string id', { id: '4', start: 0, end: 0, items: [] }],
    ['no start', { id: 4, end: 0, items: [] }],
    ['items not a list', { id: 4, start: 0, end: 0, items: {} }]
  ])('rejects completions with %s', (_case, data) => {
    expect(parseKernelMessage({ type: 'completions', ...data })).toBeNull();
  });

  it('drops fields the protocol does not define', () => {
    const message = parseKernelMessage({
      type: 'exported',
      variable: 'df',
      rows: 1,
      extra: true
    });
    expect(message).toEqual({ type: 'exported', variable: 'df', rows: 1 });
  });
});

describe('parseFeedItem', () => {
  it('fills optional notification fields with neutral values', () => {
    expect(parseFeedItem({ seq: 3, kind: 'notification', time: 5 })).toEqual({
      seq: 3,
      kind: 'notification',
      time: 5,
      channel: '',
      pid: 0,
      payload: '',
      connection: ''
    });
  });

  it('turns non-string channel and payload into text', () => {
    const item = parseFeedItem({ ...NOTE, channel: 7, payload: 12 });
    expect(item).toMatchObject({ channel: '7', payload: '12' });
  });

  it('bounds a gap by its own time when start or end is missing', () => {
    expect(parseFeedItem({ seq: 4, kind: 'gap', time: 9 })).toEqual({
      seq: 4,
      kind: 'gap',
      time: 9,
      start: 9,
      end: 9,
      message: ''
    });
  });
});

describe('parseFeedState', () => {
  it('defaults missing counters to zero', () => {
    expect(parseFeedState({ listener: 'stopped' })).toEqual({
      listener: 'stopped',
      channels: [],
      count: 0,
      rate: 0,
      dropped: 0
    });
  });

  it('rejects a state without a known listener value', () => {
    expect(parseFeedState({ ...STATE, listener: undefined })).toBeNull();
    expect(parseFeedState([STATE])).toBeNull();
  });
});

describe('toCommData', () => {
  it('copies the message, so later edits do not leak into a sent one', () => {
    const request = {
      type: 'export' as const,
      variable: 'pg_notifications',
      channel: null,
      text: 'x'
    };
    const data = toCommData(request);
    request.text = 'changed';
    expect(data).toEqual({
      type: 'export',
      variable: 'pg_notifications',
      channel: null,
      text: 'x'
    });
  });
});
