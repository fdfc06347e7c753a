import type {
  ICompletionContext,
  ICompletionProvider
} from '@jupyterlab/completer';
import type { Widget } from '@lumino/widgets';
import { afterEach, describe, expect, it } from 'vitest';

import {
  isPgCode,
  PgCompletionProvider,
  PROVIDER_RANK,
  stepAside,
  toItemsReply
} from '../completion';
import { KernelFeed } from '../feed';
import { FakeKernel, settle, state } from './fakes';

const feeds: KernelFeed[] = [];

afterEach(() => {
  feeds.splice(0).forEach(feed => feed.dispose());
});

/** A completion context whose editor holds `code`. */
function context(code: string): ICompletionContext {
  return {
    widget: {} as Widget,
    editor: { model: { sharedModel: { getSource: () => code } } }
  } as unknown as ICompletionContext;
}

/** A feed on a fake kernel, attached (snapshot received) or refused. */
async function feedOn(kernel: FakeKernel, attach: boolean) {
  const feed = new KernelFeed(kernel.asConnection());
  feeds.push(feed);
  await settle();
  if (attach) {
    kernel.lastComm.receive({ type: 'snapshot', items: [], state: state() });
  } else {
    kernel.lastComm.closeFromKernel();
  }
  return feed;
}

describe('isPgCode', () => {
  it.each([
    ['%%pg\nSELECT 1', true],
    ['  %%pg --one\nSELECT 1', true],
    ['x = 1\n%pg SELECT 1', true],
    ['rows = %pg SELECT 1', true],
    ['%pg\\dt', true],
    ['import os', false],
    ['%%time\n%pg SELECT 1', true],
    ['%%time\nx = 1', false],
    ['%pgsql SELECT 1', false],
    ['%%pgx\nSELECT', false],
    ['print("%pg")', false]
  ])('%j: %s', (code, expected) => {
    expect(isPgCode(code)).toBe(expected);
  });
});

describe('toItemsReply', () => {
  it('keeps the range and order and makes the detail the documentation', () => {
    expect(
      toItemsReply(
        {
          type: 'completions',
          id: 1,
          start: 19,
          end: 37,
          items: [
            { label: 'orders', type: 'table', detail: 'public' },
            { label: 'ORDER', type: 'keyword', detail: '' }
          ]
        },
        37
      )
    ).toEqual({
      start: 19,
      end: 37,
      items: [
        { label: 'orders', type: 'table', documentation: 'public' },
        { label: 'ORDER', type: 'keyword' }
      ]
    });
  });

  it('is empty at the cursor without a reply', () => {
    expect(toItemsReply(null, 12)).toEqual({ start: 12, end: 12, items: [] });
  });
});

describe('PgCompletionProvider', () => {
  it('ranks above the kernel provider', () => {
    expect(PROVIDER_RANK).toBeGreaterThan(550);
  });

  it('applies to pgmagic code with a feed, nowhere else', async () => {
    const feed = await feedOn(new FakeKernel(), true);
    const withFeed = new PgCompletionProvider(() => feed);
    const noFeed = new PgCompletionProvider(() => null);
    expect(await withFeed.isApplicable(context('%%pg\nSELECT'))).toBe(true);
    expect(await withFeed.isApplicable(context('import os'))).toBe(false);
    expect(await noFeed.isApplicable(context('%%pg\nSELECT'))).toBe(false);
  });

  it('asks the feed with the request and maps its reply', async () => {
    const kernel = new FakeKernel();
    const feed = await feedOn(kernel, true);
    const provider = new PgCompletionProvider(() => feed);
    const code = '%%pg\nSELECT * FROM ord';
    const fetched = provider.fetch(
      { text: code, offset: code.length },
      context(code)
    );
    expect(kernel.lastComm.sent).toEqual([
      { type: 'complete', id: 1, code, pos: code.length }
    ]);
    kernel.lastComm.receive({
      type: 'completions',
      id: 1,
      start: code.length - 3,
      end: code.length,
      items: [{ label: 'orders', type: 'table', detail: 'public' }]
    });
    expect(await fetched).toEqual({
      start: code.length - 3,
      end: code.length,
      items: [{ label: 'orders', type: 'table', documentation: 'public' }]
    });
  });

  it('answers empty at once when pgmagic is not loaded', async () => {
    const feed = await feedOn(new FakeKernel(), false);
    const provider = new PgCompletionProvider(() => feed);
    const started = Date.now();
    const reply = await provider.fetch(
      { text: '%%pg\nSELECT', offset: 11 },
      context('%%pg\nSELECT')
    );
    expect(reply).toEqual({ start: 11, end: 11, items: [] });
    expect(Date.now() - started).toBeLessThan(100);
  });
});

describe('stepAside', () => {
  /** Applicable where the context has a kernel, as JupyterLab's is. */
  class KernelCompleterProvider {
    readonly identifier = 'CompletionProvider:kernel';
    readonly renderer = null;
    async isApplicable(context: ICompletionContext): Promise<boolean> {
      return Boolean(context.session?.kernel);
    }
    async fetch(): Promise<never> {
      throw new Error('not asked here');
    }
  }

  function kernelContext(code: string): ICompletionContext {
    return {
      ...context(code),
      session: { kernel: {} }
    } as unknown as ICompletionContext;
  }

  it('keeps the kernel provider out of %%pg cells an attached feed serves', async () => {
    const attached = await feedOn(new FakeKernel(), true);
    const provider = new PgCompletionProvider(() => attached);
    const kernel: ICompletionProvider = new KernelCompleterProvider();
    stepAside(kernel, c => provider.servesAlone(c));
    expect(await kernel.isApplicable(kernelContext('%%pg\nSELECT'))).toBe(
      false
    );
    // Python around a %pg line still needs the kernel's own completions.
    expect(
      await kernel.isApplicable(kernelContext('import os\n%pg SELECT'))
    ).toBe(true);
    expect(await kernel.isApplicable(kernelContext('import os'))).toBe(true);
  });

  it('leaves the kernel provider alone without an attached feed', async () => {
    const refused = await feedOn(new FakeKernel(), false);
    for (const feed of [refused, null]) {
      const provider = new PgCompletionProvider(() => feed);
      const kernel: ICompletionProvider = new KernelCompleterProvider();
      stepAside(kernel, c => provider.servesAlone(c));
      expect(await kernel.isApplicable(kernelContext('%%pg\nSELECT'))).toBe(
        true
      );
    }
  });

  it('still asks the wrapped provider where it applies', async () => {
    const provider = new PgCompletionProvider(() => null);
    const kernel: ICompletionProvider = new KernelCompleterProvider();
    stepAside(kernel, c => provider.servesAlone(c));
    // No session, no kernel: the kernel provider's own answer.
    expect(await kernel.isApplicable(context('import os'))).toBe(false);
  });
});
