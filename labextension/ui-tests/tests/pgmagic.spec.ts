import {
  expect,
  IJupyterLabPageFixture,
  JupyterLabPage,
  test
} from '@jupyterlab/galata';
import type { NotebookPanel } from '@jupyterlab/notebook';
import type { Locator } from '@playwright/test';
import * as path from 'path';

import { ARTIFACTS, pythonString, SENDER, setCells } from './helpers';

const PANEL = '#pgmagic-feed';
const ROW = `${PANEL} .jp-PgFeed-row`;

/**
 * JSON whose values a parse and re-serialize would change (a 64-bit id, a
 * trailing zero, a number beyond a double, an escaped NUL, a duplicate key),
 * text with such numbers, and JSON sent already indented.
 */
const LOSSY =
  '{"id": 9007199254740993, "amount": 1.10, "n": 1e400, "s": "é\\u0000", "s": "second"}';
const INDENTED = '{\n    "price": 0.30,\n    "tags": [ ]\n}';
const PAYLOADS = [LOSSY, 'id 9007199254740993 paid 1.10 · é 🐘', INDENTED];
/** The expanded view of the JSON payloads: re-indented, values untouched. */
const PRETTY: Record<string, string> = {
  [LOSSY]: [
    '{',
    '  "id": 9007199254740993,',
    '  "amount": 1.10,',
    '  "n": 1e400,',
    '  "s": "é\\u0000",',
    '  "s": "second"',
    '}'
  ].join('\n'),
  [INDENTED]: '{\n  "price": 0.30,\n  "tags": []\n}'
};

async function kernelStatus(page: IJupyterLabPageFixture): Promise<string> {
  return page.evaluate(() => {
    const panel = window.jupyterapp.shell.currentWidget as NotebookPanel;
    return panel.sessionContext.session?.kernel?.status ?? 'none';
  });
}

/**
 * Record, for every row the panel adds from now on, how long after the
 * kernel received the item it reached the DOM (browser and kernel share
 * the machine's clock).
 */
async function trackRowLatency(page: IJupyterLabPageFixture) {
  await page.evaluate(selector => {
    const list = document.querySelector(`${selector} .jp-PgFeed-list`)!;
    const latencies: Record<string, number> = {};
    (window as unknown as { pgLatency: typeof latencies }).pgLatency =
      latencies;
    new MutationObserver(records => {
      const now = (performance.timeOrigin + performance.now()) / 1000;
      for (const record of records) {
        record.addedNodes.forEach(node => {
          const row = node as HTMLElement;
          const seq = row.dataset?.seq;
          if (seq !== undefined && !(seq in latencies)) {
            latencies[seq] = now - Number(row.dataset.time);
          }
        });
      }
    }).observe(list, { childList: true });
  }, PANEL);
}

async function latencyOf(
  page: IJupyterLabPageFixture,
  row: Locator
): Promise<number> {
  const seq = await row.getAttribute('data-seq');
  return page.evaluate(
    seq =>
      (window as unknown as { pgLatency: Record<string, number> }).pgLatency[
        seq!
      ],
    seq
  );
}

/**
 * Record when each widget row first appears (by seq), to compare with the
 * time the kernel received it (the panel row's `data-time`).
 */
async function trackWidgetRows(page: IJupyterLabPageFixture) {
  await page.evaluate(() => {
    const added: Record<string, number> = {};
    (window as unknown as { pgWidgetAdded: typeof added }).pgWidgetAdded =
      added;
    new MutationObserver(records => {
      const now = (performance.timeOrigin + performance.now()) / 1000;
      for (const record of records) {
        record.addedNodes.forEach(node => {
          const seq = (node as HTMLElement).dataset?.seq;
          if (seq !== undefined && !(seq in added)) {
            added[seq] = now;
          }
        });
      }
    }).observe(document.body, { childList: true, subtree: true });
  });
}

/** Seconds from the kernel receiving a widget row's item to the row showing. */
async function widgetLatencyOf(
  page: IJupyterLabPageFixture,
  row: Locator
): Promise<number> {
  const seq = (await row.getAttribute('data-seq'))!;
  const received = Number(
    await page.locator(`${ROW}[data-seq="${seq}"]`).getAttribute('data-time')
  );
  const added = await page.evaluate(
    seq =>
      (window as unknown as { pgWidgetAdded: Record<string, number> })
        .pgWidgetAdded[seq],
    seq
  );
  return added - received;
}

/**
 * The real kernel side: pgmagic listens on `orders` and `jobs`, a ticker
 * notifies from another connection every 0.4 s, and cell 1 keeps the kernel
 * busy while one more notification arrives.
 */
async function startFeed(page: IJupyterLabPageFixture, extra = '') {
  await setCells(page, [
    `%run ${SENDER}\n%load_ext pgmagic\n%pg listen orders jobs\n${extra}ticker = Ticker()`,
    'import time\nnotify_later("orders", "during-sleep", 1.0)\ntime.sleep(5)'
  ]);
}

test.describe('PostgreSQL panel', () => {
  test.beforeEach(async ({ page }) => {
    // No name: galata names a notebook by saving it under a new path, which
    // leaves its kernel session on the old one.
    await page.notebook.createNew();
    await page.sidebar.openTab('pgmagic-feed');
    await expect(page.locator(PANEL)).toBeVisible();
  });

  test('shows notifications within 1 s, also while a cell sleeps', async ({
    page
  }) => {
    await startFeed(
      page,
      'kill_listener()\n' +
        'notify_later("orders", \'{"order": 42, "status": "paid", "lines": [{"sku": "A-1", "qty": 2}]}\')\n'
    );
    // No comm yet: the panel says so instead of staying blank.
    await expect(page.locator(`${PANEL} .jp-PgFeed-badge`)).toHaveText(
      'pgmagic not loaded'
    );
    await trackRowLatency(page);
    await trackWidgetRows(page);

    await page.notebook.runCell(0);
    // The first cell of the run may start the embedded server: allow for it.
    await expect(page.locator(`${PANEL} .jp-PgFeed-badge`)).toHaveText(
      'listening',
      { timeout: 15000 }
    );
    await expect(page.locator(ROW).first()).toBeVisible({ timeout: 2000 });
    expect(await latencyOf(page, page.locator(ROW).first())).toBeLessThan(1);

    await page.notebook.runCell(1, { wait: false });
    await expect.poll(() => kernelStatus(page)).toBe('busy');
    const marker = page.locator(ROW, { hasText: 'during-sleep' });
    await expect(marker).toBeVisible({ timeout: 3000 });
    const widget = page.locator('.pgmagic-feed');
    const widgetMarker = widget.locator('.pgmagic-feed-row', {
      hasText: 'during-sleep'
    });
    await expect(widgetMarker).toBeVisible({ timeout: 1000 });
    expect(await kernelStatus(page)).toBe('busy');
    expect(await latencyOf(page, marker)).toBeLessThan(1);
    expect(await widgetLatencyOf(page, widgetMarker)).toBeLessThan(1);

    // Every row, idle or busy, arrived within a second.
    const latencies = await page.evaluate(() =>
      Object.values(
        (window as unknown as { pgLatency: Record<string, number> }).pgLatency
      )
    );
    expect(latencies.length).toBeGreaterThan(3);
    expect(Math.max(...latencies)).toBeLessThan(1);
    console.log(
      `row latency over ${latencies.length} rows: max ${Math.max(...latencies).toFixed(3)} s`
    );

    // kill_listener() cost a reconnect: the gap shows in the panel and the widget.
    await expect(page.locator(`${PANEL} .jp-PgFeed-gap`)).toHaveCount(1);
    await expect(widget.locator('.pgmagic-feed-gap')).toHaveCount(1);
    await expect(page.locator(`${PANEL} .jp-PgFeed-gap`)).toContainText(
      /disconnected \d\d:\d\d:\d\d to \d\d:\d\d:\d\d: notifications sent in this window were not received/
    );
    await page
      .locator(`${PANEL} .jp-PgFeed-json summary`, { hasText: '"order": 42' })
      .click();
    await page
      .locator(PANEL)
      .screenshot({ path: path.join(ARTIFACTS, 'panel.png') });

    // Rows reached the widget within a second of the kernel receiving them.
    for (const row of await widget
      .locator('.pgmagic-feed-row:not(.pgmagic-feed-gap)')
      .all()) {
      expect(await widgetLatencyOf(page, row)).toBeLessThan(1);
    }
    await widget
      .locator('.pgmagic-feed-json summary', { hasText: '"order": 42' })
      .click();
    await page.screenshot({ path: path.join(ARTIFACTS, 'lab.png') });
    // Full notebook width for the widget on its own.
    await page.sidebar.close('right');
    await widget.screenshot({ path: path.join(ARTIFACTS, 'widget.png') });
    await page.notebook.waitForRun(1);
    // The kernel refused the panel's comm before %load_ext and said so on
    // stderr, on behalf of the comm_open: no cell shows it.
    await expect(page.locator('.jp-OutputArea-output').first()).toBeVisible();
    await expect(
      page.locator('.jp-OutputArea-output', { hasText: 'comm target' })
    ).toHaveCount(0);
  });

  test("names another connection's notifications and channels", async ({
    page
  }) => {
    await setCells(page, [
      '%load_ext pgmagic\n' +
        '%pg listen home\n' +
        "socket = %pg --scalar SELECT current_setting('unix_socket_directories')\n" +
        "port = %pg --scalar SELECT current_setting('port')\n" +
        'user = %pg --scalar SELECT current_user\n' +
        'two_dsn = f"host={socket} port={port} user={user} dbname=postgres"\n' +
        '%pg connect two $two_dsn\n' +
        '%pg listen away',
      "%pg notify away 'from the other connection'\n" +
        "%pg @default notify home 'from the first'"
    ]);
    await page.notebook.runCell(0);
    await expect(page.locator(`${PANEL} .jp-PgFeed-badge`)).toHaveText(
      'listening',
      { timeout: 15000 }
    );
    await expect(page.locator(PANEL)).toContainText('two: away');
    await page.notebook.runCell(1);
    const away = page.locator(ROW, { hasText: 'from the other connection' });
    await expect(away.locator('.jp-PgFeed-connection')).toHaveText('two');
    const home = page.locator(ROW, { hasText: 'from the first' });
    await expect(home).toBeVisible();
    await expect(home.locator('.jp-PgFeed-connection')).toHaveCount(0);
    await page
      .locator(PANEL)
      .screenshot({ path: path.join(ARTIFACTS, 'panel-connections.png') });
    // The channel filter offers the other connection's channel, and keeps to it.
    await page.locator(`${PANEL} select`).selectOption('two: away');
    await expect(page.locator(ROW)).toHaveCount(1);
    await expect(page.locator(ROW)).toContainText('from the other connection');
  });

  test('filters, pauses, clears and exports', async ({ page }) => {
    await startFeed(page);
    await page.notebook.runCell(0);
    await expect(page.locator(ROW).nth(3)).toBeVisible();

    const select = page.locator(`${PANEL} .jp-PgFeed-channel`);
    await select.selectOption('jobs');
    await expect(
      page.locator(`${ROW} .jp-PgFeed-channelName`, { hasText: 'orders' })
    ).toHaveCount(0);
    await select.selectOption('');

    await page
      .locator(`${PANEL} .jp-PgFeed-button`, { hasText: 'Pause' })
      .click();
    const frozen = await page.locator(ROW).count();
    await expect(page.locator(`${PANEL} .jp-PgFeed-notice`)).toContainText(
      /Paused — \d+ new/
    );
    expect(await page.locator(ROW).count()).toBe(frozen);
    await page
      .locator(`${PANEL} .jp-PgFeed-button`, { hasText: 'Resume' })
      .click();
    await expect.poll(() => page.locator(ROW).count()).toBeGreaterThan(frozen);

    // Export sends after_seq once the panel is cleared: nothing at or below
    // the last seq shown before the Clear comes back.
    const clearedThrough = Math.max(
      ...(await page
        .locator(ROW)
        .evaluateAll(rows =>
          rows.map(row => Number((row as HTMLElement).dataset.seq))
        ))
    );
    await page
      .locator(`${PANEL} .jp-PgFeed-button`, { hasText: 'Clear' })
      .click();
    await expect
      .poll(() => page.locator(ROW).count(), { timeout: 300 })
      .toBeLessThan(3);

    // A burst beyond the panel's bound: rows stay capped, the header says
    // how many fell off.
    await setCells(page, [
      "%%pg -q\nSELECT pg_notify('jobs', 'burst ' || g) FROM generate_series(1, 2100) g"
    ]);
    await page.notebook.runCell(0);
    await expect(page.locator(`${PANEL} .jp-PgFeed-dropped`)).toHaveText(
      /^dropped from view: \d{3}$/
    );
    await expect(page.locator(ROW)).toHaveCount(2000);

    await page.locator(`${PANEL} .jp-PgFeed-text`).fill('shipped');
    await page
      .locator(`${PANEL} .jp-PgFeed-button`, { hasText: 'Export' })
      .click();
    const notice = page.locator(`${PANEL} .jp-PgFeed-notice`);
    await expect(notice).toContainText(/Exported \d+ rows to pg_notifications/);
    const rows = Number(
      (await notice.textContent())!.match(/Exported (\d+)/)![1]
    );

    await setCells(page, [
      'df = pg_notifications\n' +
        'print(type(df).__name__, len(df), df.payload.str.contains("shipped").all(), ' +
        `bool((df.seq > ${clearedThrough}).all()))`
    ]);
    await page.notebook.runCell(0);
    expect((await page.notebook.getCellTextOutput(0))!.join('')).toContain(
      `DataFrame ${rows} True True`
    );

    // An export the kernel refuses says why instead of "Exporting…".
    await setCells(page, [
      'from pgmagic.frontend import feed\n' +
        'from pgmagic.live.listener import listener_for\n' +
        'from pgmagic.runtime.connections import default_runtime\n' +
        'bridge = next(s for s in listener_for(default_runtime()).sinks if isinstance(s, feed.PanelBridge))\n' +
        'bridge._export({"variable": "not a name"})'
    ]);
    await page.notebook.runCell(0);
    await expect(notice).toContainText(
      "Export failed: cannot export to 'not a name': not a Python variable name"
    );
  });

  test('shows payloads exactly as sent, in the panel and the widget', async ({
    page
  }) => {
    test.slow();
    await setCells(page, [
      `%run ${SENDER}\n%load_ext pgmagic\n%pg listen payloads`,
      PAYLOADS.map(
        payload => `notify_later("payloads", ${pythonString(payload)})`
      ).join('\n')
    ]);
    await page.notebook.runCell(0);
    await expect(page.locator(`${PANEL} .jp-PgFeed-badge`)).toHaveText(
      'listening',
      { timeout: 30000 }
    );
    await page.notebook.runCell(1);

    const widgetRows = page.locator('.pgmagic-feed .pgmagic-feed-row');
    for (const rows of [page.locator(ROW), widgetRows]) {
      await expect(rows).toHaveCount(PAYLOADS.length, { timeout: 10000 });
      const shown = await rows.evaluateAll(rows =>
        rows.map(row => {
          const json = row.querySelector('details');
          return json
            ? {
                text: json.querySelector('summary')!.textContent,
                pretty: json.querySelector('pre')!.textContent
              }
            : {
                text: row.querySelector('[class$="-payload"]')!.textContent,
                pretty: null
              };
        })
      );
      const byText = (
        a: { text: string | null },
        b: { text: string | null }
      ) => (a.text! < b.text! ? -1 : 1);
      expect(shown.sort(byText)).toEqual(
        PAYLOADS.map(text => ({ text, pretty: PRETTY[text] ?? null })).sort(
          byText
        )
      );
    }

    // The expanded view: what a user reads, values intact.
    const lossy = page.locator(`${PANEL} .jp-PgFeed-json`, {
      hasText: '9007199254740993'
    });
    await lossy.locator('summary').click();
    expect(await lossy.locator('pre').innerText()).toBe(PRETTY[LOSSY]);
    const widgetLossy = page.locator('.pgmagic-feed-json', {
      hasText: '9007199254740993'
    });
    await widgetLossy.locator('summary').click();
    expect(await widgetLossy.locator('pre').innerText()).toBe(PRETTY[LOSSY]);
    await page
      .locator(PANEL)
      .screenshot({ path: path.join(ARTIFACTS, 'payloads.png') });

    // The text filter searches the payload as sent.
    const filter = page.locator(`${PANEL} .jp-PgFeed-text`);
    await filter.fill('1.10');
    await expect(page.locator(ROW)).toHaveCount(2);
    await filter.fill('1e400');
    await expect(page.locator(ROW)).toHaveCount(1);
    await expect(page.locator(`${ROW} summary`)).toHaveText(LOSSY);
    await filter.fill('');
    await expect(page.locator(ROW)).toHaveCount(PAYLOADS.length);
  });

  test('re-attaches to the kernel comm after a page reload', async ({
    page
  }) => {
    await startFeed(page);
    await page.notebook.runCell(0);
    await expect(page.locator(ROW).first()).toBeVisible();
    await page.notebook.save();

    const [notebookPath, kernelId] = await page.evaluate(() => {
      const panel = window.jupyterapp.shell.currentWidget as NotebookPanel;
      return [panel.context.path, panel.sessionContext.session?.kernel?.id];
    });
    // The fixture proxies JupyterLabPage, whose reload can skip waiting for
    // a Launcher. It also resets the workspace, so reopen the notebook: the
    // server still has its session, hence the same kernel.
    await (page as unknown as JupyterLabPage).reload({ waitForIsReady: false });
    await page.locator('#jupyterlab-splash').waitFor({ state: 'detached' });
    await page.evaluate(
      path => window.jupyterapp.commands.execute('docmanager:open', { path }),
      notebookPath
    );
    await expect
      .poll(() =>
        page.evaluate(
          () =>
            (window.jupyterapp.shell.currentWidget as NotebookPanel)
              .sessionContext.session?.kernel?.id
        )
      )
      .toBe(kernelId);
    await page.sidebar.openTab('pgmagic-feed');
    await expect(page.locator(`${PANEL} .jp-PgFeed-badge`)).toHaveText(
      'listening'
    );
    await expect(page.locator(ROW).nth(2)).toBeVisible();
    // The reloaded page took over the comm it had opened: the kernel
    // serves one bridge, not one per page load.
    await setCells(page, [
      'from pgmagic.frontend import feed\n' +
        'from pgmagic.live.listener import listener_for\n' +
        'from pgmagic.runtime.connections import default_runtime\n' +
        'print("bridges", sum(isinstance(s, feed.PanelBridge) for s in listener_for(default_runtime()).sinks))'
    ]);
    await page.notebook.runCell(0);
    expect((await page.notebook.getCellTextOutput(0))!.join('')).toContain(
      'bridges 1'
    );
  });
});

test.describe('PostgreSQL panel command', () => {
  test('opens the panel from the View menu and the command palette', async ({
    page
  }) => {
    await page.notebook.createNew();
    await expect(page.locator(PANEL)).toBeHidden();
    await page.menu.clickMenuItem('View>Show PostgreSQL panel');
    await expect(page.locator(PANEL)).toBeVisible();
    await expect(page.locator(`${PANEL} .jp-PgFeed-badge`)).toHaveText(
      'pgmagic not loaded'
    );

    await page.sidebar.close('right');
    await expect(page.locator(PANEL)).toBeHidden();
    await page.keyboard.press('Control+Shift+C');
    const palette = page.locator('#command-palette');
    await palette.locator('.lm-CommandPalette-input').fill('Show PostgreSQL');
    await palette
      .locator('.lm-CommandPalette-item', { hasText: 'Show PostgreSQL panel' })
      .click();
    await expect(page.locator(PANEL)).toBeVisible();

    // The layout restorer reopens it after a reload.
    await (page as unknown as JupyterLabPage).reload({ waitForIsReady: false });
    await page.locator('#jupyterlab-splash').waitFor({ state: 'detached' });
    await expect(page.locator(PANEL)).toBeVisible();
  });
});

test.describe('%%pg highlighting', () => {
  test('SQL keywords in %%pg cells, Python elsewhere', async ({ page }) => {
    await page.notebook.createNew('sql.ipynb');
    await setCells(page, [
      '%%pg -o df\nSELECT id, payload FROM orders WHERE id = 1',
      'import os\nSELECT = 1',
      '%%p\nSELECT now()'
    ]);
    const cell = (i: number) => page.locator('.jp-Notebook .jp-Cell').nth(i);
    // The class JupyterLab's highlight style gives keywords, taken from
    // Python's `import` so the test does not depend on generated names.
    const keyword = (await cell(1)
      .locator('.cm-content span', { hasText: /^import$/ })
      .getAttribute('class'))!;
    expect(keyword).toBeTruthy();
    /** How many `word` tokens in cell `i` are styled as keywords. */
    const keywords = (i: number, word: string) =>
      cell(i)
        .locator('.cm-content span', { hasText: new RegExp(`^${word}$`) })
        .evaluateAll(
          (spans, k) => spans.filter(s => s.className === k).length,
          keyword
        );

    await expect.poll(() => keywords(0, 'SELECT')).toBe(1);
    expect(await keywords(0, 'FROM')).toBe(1);
    expect(await keywords(0, 'WHERE')).toBe(1);
    // `SELECT` is just a name in Python, and `%%p` is not our magic.
    expect(await keywords(1, 'SELECT')).toBe(0);
    expect(await keywords(2, 'SELECT')).toBe(0);

    // Typing the missing `g` makes cell 2 a %%pg cell...
    await cell(2).locator('.cm-line').first().click();
    await page.keyboard.press('End');
    await page.keyboard.type('g');
    await expect.poll(() => keywords(2, 'SELECT')).toBe(1);
    // ...and breaking the magic line turns it back into Python.
    await page.keyboard.press('Backspace');
    await expect.poll(() => keywords(2, 'SELECT')).toBe(0);
    await page.keyboard.type('g');
    await expect.poll(() => keywords(2, 'SELECT')).toBe(1);
    await page.notebook.leaveCellEditingMode(2);

    const top = (await cell(0).boundingBox())!;
    const bottom = (await cell(2).boundingBox())!;
    await page.screenshot({
      path: path.join(ARTIFACTS, 'sql-cells.png'),
      clip: {
        x: top.x,
        y: top.y,
        width: top.width,
        height: bottom.y + bottom.height - top.y
      }
    });
  });
});
