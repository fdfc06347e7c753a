/**
 * Notebook 7 on the same server as JupyterLab: plain Playwright pages (galata
 * drives JupyterLab only), the notebook created through the contents API and
 * opened from /tree as a user would.
 */

import { expect, Page, test } from '@playwright/test';
import type { NotebookPanel } from '@jupyterlab/notebook';
import * as path from 'path';

import { ARTIFACTS, SENDER } from './helpers';

const PANEL = '#pgmagic-feed';
const ROW = `${PANEL} .jp-PgFeed-row`;
const PAYLOAD = 'sent to notebook 7';

/** An nbformat 4 notebook of code cells, on the python3 kernel. */
function notebook(sources: string[]) {
  return {
    cells: sources.map(source => ({
      cell_type: 'code',
      source,
      metadata: {},
      outputs: [],
      execution_count: null
    })),
    metadata: {
      kernelspec: { name: 'python3', display_name: 'Python 3' }
    },
    nbformat: 4,
    nbformat_minor: 4
  };
}

/**
 * Notebook 7's file browser in `dir`, listing `name`. Measured: about 20 s
 * from navigation to the listing on a loaded 2-core machine.
 */
async function browse(page: Page, dir: string, name: string): Promise<void> {
  await page.goto(`/tree/${dir}`);
  await expect(
    page.locator('.jp-DirListing-item', { hasText: name })
  ).toBeVisible({ timeout: 60000 });
}

/** The open notebook's kernel status, as the page sees it. */
function kernelStatus(page: Page): Promise<string> {
  return page.evaluate(() => {
    const panel = window.jupyterapp.shell.currentWidget as NotebookPanel;
    return panel?.sessionContext?.session?.kernel?.status ?? 'none';
  });
}

test('Notebook 7: pgmagic cells, the feed widget and the panel from the View menu', async ({
  page,
  request
}) => {
  // A kernel, maybe the embedded server, and a reload.
  test.slow();
  const dir = `notebook7-${Date.now()}`;
  const name = 'listen.ipynb';
  expect(
    (
      await request.put(`/api/contents/${dir}`, { data: { type: 'directory' } })
    ).ok()
  ).toBe(true);
  const created = await request.put(`/api/contents/${dir}/${name}`, {
    data: {
      type: 'notebook',
      format: 'json',
      content: notebook([
        `%run ${SENDER}\n%load_ext pgmagic`,
        "%pg SELECT 'text' AS t, 1 AS n",
        '%pg listen orders',
        `notify_later("orders", "${PAYLOAD}")`
      ])
    }
  });
  expect(created.ok()).toBe(true);

  await browse(page, dir, name);
  await page.goto(`/notebooks/${dir}/${name}`);
  await expect.poll(() => kernelStatus(page), { timeout: 30000 }).toBe('idle');
  // The sidebar starts closed; the panel is there but hidden.
  await expect(page.locator(PANEL)).toBeHidden();

  await page.evaluate(() =>
    window.jupyterapp.commands.execute('notebook:run-all-cells')
  );
  const table = page.locator('.jp-OutputArea-output .pgmagic-result table');
  await expect(table).toBeVisible({ timeout: 60000 });
  await expect(table.locator('tbody td')).toHaveText(['text', '1']);
  await expect(
    page.locator('.pgmagic-feed .pgmagic-feed-row', { hasText: PAYLOAD })
  ).toBeVisible({ timeout: 15000 });

  await page.locator('.lm-MenuBar-itemLabel', { hasText: /^View$/ }).click();
  await page
    .locator('.lm-Menu-itemLabel', { hasText: /^Show PostgreSQL panel$/ })
    .click();
  await expect(page.locator(PANEL)).toBeVisible();
  await expect(page.locator(`${PANEL} .jp-PgFeed-badge`)).toHaveText(
    'listening'
  );
  await expect(page.locator(ROW, { hasText: PAYLOAD })).toBeVisible();
  await page.screenshot({ path: path.join(ARTIFACTS, 'notebook7.png') });

  // Open when the page went away: open again after a reload, re-attached.
  await page.reload();
  await expect(page.locator(PANEL)).toBeVisible({ timeout: 30000 });
  await expect(page.locator(ROW, { hasText: PAYLOAD })).toBeVisible();
  // Not on the file browser page, which has no notebook to show.
  await browse(page, dir, name);
  await expect(page.locator(PANEL)).toBeHidden();
  await page.goto(`/notebooks/${dir}/${name}`);
  await expect(page.locator(PANEL)).toBeVisible({ timeout: 30000 });

  // Closed when the page went away: closed after a reload.
  await page.evaluate(() =>
    // Notebook 7's shell API (what View > Right Sidebar does).
    (
      window.jupyterapp.shell as unknown as { collapseRight(): void }
    ).collapseRight()
  );
  await expect(page.locator(PANEL)).toBeHidden();
  await page.reload();
  await expect.poll(() => kernelStatus(page), { timeout: 30000 }).toBe('idle');
  await expect(page.locator(PANEL)).toBeHidden();
});
