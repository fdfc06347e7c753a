/**
 * Completion latency with the browser in the loop: from the Tab keydown to
 * the frame that paints the list, measured in the page.
 *
 * Run by `benchmarks/bench_complete_browser.py`, which builds the catalogs and
 * passes them in `PGMAGIC_BENCH_CATALOGS` (JSON: `[{tables, dsn}]`), the
 * rounds per case in `PGMAGIC_BENCH_ROUNDS`, and where to write the samples
 * in `PGMAGIC_BENCH_OUT`.
 */

import { expect, IJupyterLabPageFixture, test } from '@jupyterlab/galata';
import type { NotebookPanel } from '@jupyterlab/notebook';
import * as fs from 'fs';

import { pythonString, setCells } from '../tests/helpers';

interface ICatalog {
  tables: number;
  dsn: string;
}

interface ICase {
  name: string;
  /** Only where the kernel answers between cells: a Python cell. */
  idleOnly?: boolean;
  /** Cell text; `|` marks the cursor. */
  code: (round: number, tables: number) => string;
  /** A painted item whose value matches this ends the measurement. */
  want: (round: number, tables: number) => string;
}

const CATALOGS: ICatalog[] = JSON.parse(
  process.env.PGMAGIC_BENCH_CATALOGS ?? '[]'
);
const ROUNDS = Number(process.env.PGMAGIC_BENCH_ROUNDS ?? '30');
const OUT = process.env.PGMAGIC_BENCH_OUT ?? 'completion-bench.json';

/** Table `t<k>` for k = 10..99 names a prefix that several tables share. */
const prefix = (round: number) => `t${10 + (round % 90)}`;

const CASES: ICase[] = [
  {
    name: 'FROM t<k>',
    code: round => `%%pg\nSELECT * FROM ${prefix(round)}|`,
    want: round => `^${prefix(round)}`
  },
  {
    name: 'alias. (columns cached)',
    code: (_round, tables) => `%%pg\nSELECT x.| FROM t${tables} x`,
    want: () => '^(id|prev|c\\d+)$'
  },
  {
    // A different table each round: its columns are read on demand.
    name: 'alias. (columns read)',
    code: (round, tables) => `%%pg\nSELECT x.| FROM t${tables - 1 - round} x`,
    want: () => '^(id|prev|c\\d+)$'
  },
  {
    name: 'JOIN … ON (foreign key)',
    code: (_round, tables) =>
      `%%pg\nSELECT * FROM t${tables} a JOIN t${tables - 1} b ON |`,
    want: () => '='
  },
  {
    // The reference: JupyterLab's own kernel completer in a Python cell.
    name: 'Python os.pa (kernel completer)',
    idleOnly: true,
    code: () => 'os.pa|',
    want: () => '^(os\\.)?pa'
  }
];

/** Milliseconds from the Tab to the list, and to pgmagic's comm request and reply. */
interface ISample {
  shown: number;
  asked: number | null;
  replied: number | null;
}

/** Listen for Tab and for the completer's items, once per page. */
async function instrument(page: IJupyterLabPageFixture): Promise<void> {
  await page.evaluate(() => {
    const bench = { tab: 0, shown: 0, want: '' };
    (window as any).__pgBench = bench;
    document.addEventListener(
      'keydown',
      event => {
        if (event.key === 'Tab') {
          bench.tab = performance.now();
          bench.shown = 0;
        }
      },
      true
    );
    new MutationObserver(() => {
      if (!bench.tab || bench.shown) {
        return;
      }
      const want = new RegExp(bench.want);
      const items = document.querySelectorAll(
        '.jp-Completer:not(.lm-mod-hidden) .jp-Completer-item'
      );
      for (const item of Array.from(items)) {
        if (want.test(item.getAttribute('data-value') ?? '')) {
          bench.shown = -1;
          // The frame that paints it, not the DOM insertion before it.
          requestAnimationFrame(() => {
            bench.shown = performance.now();
          });
          return;
        }
      }
    }).observe(document.body, {
      childList: true,
      subtree: true,
      attributes: true,
      attributeFilter: ['class']
    });
  });
}

/** Put `code` (with `|` for the cursor) into cell `index` and focus it there. */
async function place(
  page: IJupyterLabPageFixture,
  index: number,
  code: string
): Promise<void> {
  await page.evaluate(
    ({ index, text, offset }) => {
      const panel = window.jupyterapp.shell.currentWidget as NotebookPanel;
      const cell = panel.content.widgets[index];
      cell.model.sharedModel.setSource(text);
      panel.content.activeCellIndex = index;
      panel.content.mode = 'edit';
      const editor = cell.editor!;
      editor.focus();
      editor.setCursorPosition(editor.getPositionAt(offset)!);
    },
    { index, text: code.replace('|', ''), offset: code.indexOf('|') }
  );
}

/** One Tab: milliseconds from keydown to the painted list. */
async function measure(
  page: IJupyterLabPageFixture,
  want: string
): Promise<ISample> {
  await page.evaluate(want => {
    (window as any).__pgBench.want = want;
  }, want);
  await page.keyboard.press('Tab');
  const handle = await page.waitForFunction(
    () => {
      const bench = (window as any).__pgBench;
      if (!(bench.shown > 0)) {
        return null;
      }
      // The feed's User Timing marks of this Tab's request, if it sent one.
      const since = (name: string) => {
        const entry = performance.getEntriesByName(name).pop();
        return entry && entry.startTime >= bench.tab
          ? entry.startTime - bench.tab
          : null;
      };
      return {
        shown: bench.shown - bench.tab,
        asked: since('pgmagic:complete-asked'),
        replied: since('pgmagic:complete-replied')
      };
    },
    null,
    { timeout: 10000, polling: 'raf' }
  );
  const sample = (await handle.jsonValue()) as ISample;
  await page.keyboard.press('Escape');
  await expect(page.locator('.jp-Completer:not(.lm-mod-hidden)')).toHaveCount(
    0
  );
  return sample;
}

test('completion latency, browser in the loop', async ({ page }) => {
  expect(CATALOGS.length).toBeGreaterThan(0);
  const samples: Record<string, ISample[]> = {};
  for (const catalog of CATALOGS) {
    await page.notebook.createNew();
    await setCells(page, [
      'import os\n%load_ext pgmagic\n' +
        `%pg connect ${pythonString(catalog.dsn)}\n%pg refresh`,
      'import time; time.sleep(3600)',
      '%%pg\n'
    ]);
    await page.notebook.runCell(0);
    await instrument(page);
    // The first Tab after connecting waits for the comm and the snapshot.
    await place(page, 2, CASES[0].code(0, catalog.tables));
    const first = await measure(page, CASES[0].want(0, catalog.tables));
    samples[`${catalog.tables}|first|${CASES[0].name}`] = [first];

    for (const state of ['idle', 'busy']) {
      if (state === 'busy') {
        await page.notebook.runCell(1, { wait: false });
        await expect
          .poll(async () => {
            const cell = await page.notebook.getCellLocator(1);
            return cell!.locator('.jp-InputPrompt').textContent();
          })
          .toBe('[*]:');
      }
      for (const benchCase of CASES) {
        if (benchCase.idleOnly && state === 'busy') {
          continue;
        }
        const key = `${catalog.tables}|${state}|${benchCase.name}`;
        samples[key] = [];
        for (let round = 0; round < ROUNDS; round++) {
          await place(page, 2, benchCase.code(round, catalog.tables));
          samples[key].push(
            await measure(page, benchCase.want(round, catalog.tables))
          );
        }
      }
    }
    // Shut down, sleep and all: galata's request proxy fails on the empty
    // reply of an interrupt.
    await page.evaluate(async () => {
      const panel = window.jupyterapp.shell.currentWidget as NotebookPanel;
      await panel.sessionContext.shutdown();
    });
  }
  fs.writeFileSync(OUT, JSON.stringify(samples, null, 1));
});
