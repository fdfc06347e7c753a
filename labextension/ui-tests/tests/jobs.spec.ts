import { expect, test } from '@jupyterlab/galata';
import * as path from 'path';

import { ARTIFACTS, running, setCells } from './helpers';

test.describe('%%pg --bg', () => {
  test('the handle cancels on the server while another cell runs, and a notification says so', async ({
    page
  }) => {
    // A kernel and maybe the embedded server's first start.
    test.slow();
    await page.notebook.createNew();
    await setCells(page, [
      '%load_ext pgmagic',
      '%%pg --bg -o slow\nSELECT 1 AS ui_job_probe, pg_sleep(60)',
      'import time; time.sleep(20)',
      "%pg --scalar SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT 1 AS ui_job_probe%'",
      '%%pg --bg -o quick\nSELECT g FROM generate_series(1, 1234) g'
    ]);
    await page.notebook.runCell(0);
    // Returns at once: the job runs on the pool.
    const started = Date.now();
    await page.notebook.runCell(1);
    expect(Date.now() - started).toBeLessThan(15000);

    const handle = page.locator('.jp-OutputArea-output.jp-PgJob').first();
    await expect(handle).toHaveAttribute('data-state', 'running');
    await expect(handle.locator('.jp-PgJob-facts')).toContainText(/pid \d+/);
    await page.screenshot({ path: path.join(ARTIFACTS, 'job-running.png') });

    // The kernel is busy with another cell: Cancel still reaches it (comm).
    await page.notebook.runCell(2, { wait: false });
    await expect.poll(() => running(page, 2)).toBe(true);
    await handle.getByRole('button', { name: 'Cancel' }).click();
    await expect(handle).toHaveAttribute('data-state', 'cancelled');
    expect(await running(page, 2)).toBe(true);
    await expect(handle).toContainText('slow cancelled after');
    const toast = page.locator('.Toastify__toast', {
      hasText: 'slow cancelled'
    });
    await expect(toast).toBeVisible();
    await page.screenshot({ path: path.join(ARTIFACTS, 'job-cancelled.png') });

    // No backend is left running the query.
    await expect.poll(() => running(page, 2), { timeout: 30000 }).toBe(false);
    await page.notebook.runCell(3);
    expect(await page.notebook.getCellTextOutput(3)).toEqual(['0']);

    // A job that ends well: its handle says so, and so does a notification
    // whose Show button brings its cell into view.
    await page.notebook.runCell(4);
    const quick = page.locator('.jp-OutputArea-output.jp-PgJob').nth(1);
    await expect(quick).toHaveAttribute('data-state', 'done');
    await expect(quick).toContainText('quick: 1,234 rows in');
    const done = page.locator('.Toastify__toast', {
      hasText: 'quick: 1,234 rows'
    });
    await expect(done).toBeVisible();
    await page.notebook.selectCells(0);
    await done.getByRole('button', { name: 'Show' }).click();
    await expect
      .poll(() =>
        page.evaluate(() => {
          const panel = window.jupyterapp.shell.currentWidget as any;
          return panel.content.activeCellIndex;
        })
      )
      .toBe(4);
    await page.screenshot({ path: path.join(ARTIFACTS, 'job-done.png') });
  });
});
