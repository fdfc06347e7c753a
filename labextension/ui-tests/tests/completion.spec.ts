import {
  expect,
  galata,
  IJupyterLabPageFixture,
  test
} from '@jupyterlab/galata';
import type { NotebookPanel } from '@jupyterlab/notebook';
import * as path from 'path';

import { ARTIFACTS, running, setCells } from './helpers';

const PANEL = '#pgmagic-feed';
/** Two tables share the typed prefix, so the completer lists rather than inserts. */
const TABLES = ['completion_probe_orders', 'completion_probe_order_lines'];
/** A character outside the BMP before the cursor: offsets must count code points. */
const PG_CELL =
  '%%pg\n-- 🐘 while the sleep runs\nSELECT * FROM completion_probe_o';

async function kernelStatus(page: IJupyterLabPageFixture): Promise<string> {
  return page.evaluate(() => {
    const panel = window.jupyterapp.shell.currentWidget as NotebookPanel;
    return panel.sessionContext.session?.kernel?.status ?? 'none';
  });
}

async function cellSource(
  page: IJupyterLabPageFixture,
  index: number
): Promise<string> {
  return page.evaluate(index => {
    const panel = window.jupyterapp.shell.currentWidget as NotebookPanel;
    return panel.content.model!.sharedModel.cells[index].getSource();
  }, index);
}

test.describe('%%pg completion', () => {
  test('lists tables on Tab while another cell runs', async ({ page }) => {
    // A kernel and maybe the embedded server's first start.
    test.slow();
    await page.notebook.createNew();
    await page.sidebar.openTab('pgmagic-feed');
    await setCells(page, [
      '%load_ext pgmagic\n' +
        `%pg DROP TABLE IF EXISTS ${TABLES.join(', ')}\n` +
        TABLES.map(t => `%pg CREATE TABLE ${t} (id int)`).join('\n'),
      'import time; time.sleep(20)',
      PG_CELL
    ]);
    await page.notebook.runCell(0);
    // The feed attaches after the cell that loaded pgmagic: then the
    // provider has a comm to ask on.
    await expect(page.locator(`${PANEL} .jp-PgFeed-badge`)).toHaveAttribute(
      'data-state',
      /listening|stopped|reconnecting/,
      { timeout: 15000 }
    );

    await page.notebook.runCell(1, { wait: false });
    await expect.poll(() => kernelStatus(page)).toBe('busy');
    const sleeping = Date.now();
    await page.notebook.enterCellEditingMode(2);
    await page.keyboard.press('Control+End');
    const pressed = Date.now();
    await page.keyboard.press('Tab');

    const item = page.locator('.jp-Completer-item', { hasText: TABLES[0] });
    await expect(item).toBeVisible({ timeout: 5000 });
    const shownAfter = Date.now() - pressed;
    await expect(
      page.locator('.jp-Completer-item', { hasText: TABLES[1] })
    ).toBeVisible();
    // Still inside the 20 s sleep: the kernel's own completer could not answer.
    expect(await running(page, 1)).toBe(true);
    expect(Date.now() - sleeping).toBeLessThan(15000);
    console.log(
      `completer shown ${shownAfter} ms after Tab, the sleep running`
    );
    await page.screenshot({ path: path.join(ARTIFACTS, 'completion.png') });

    await item.click();
    await expect
      .poll(() => cellSource(page, 2))
      .toBe(PG_CELL.replace(/completion_probe_o$/, TABLES[0]));
    expect(await running(page, 1)).toBe(true);
  });
});

test.describe('%%pg completion as the user types', () => {
  test.use({
    mockSettings: {
      ...galata.DEFAULT_SETTINGS,
      '@jupyterlab/completer-extension:manager': { autoCompletion: true }
    }
  });

  test('lists tables without Tab when continuous hinting is on', async ({
    page
  }) => {
    test.slow();
    await page.notebook.createNew();
    await setCells(page, [
      '%load_ext pgmagic\n' +
        `%pg DROP TABLE IF EXISTS ${TABLES.join(', ')}\n` +
        TABLES.map(t => `%pg CREATE TABLE ${t} (id int)`).join('\n'),
      '%%pg\nSELECT * FROM completion_probe_'
    ]);
    await page.notebook.runCell(0);
    await page.notebook.enterCellEditingMode(1);
    await page.keyboard.press('Control+End');
    await page.keyboard.type('o');
    await expect(
      page.locator('.jp-Completer-item', { hasText: TABLES[0] })
    ).toBeVisible({ timeout: 5000 });
    await expect(
      page.locator('.jp-Completer-item', { hasText: TABLES[1] })
    ).toBeVisible();
  });
});
