import { expect, test } from '@jupyterlab/galata';
import * as path from 'path';

import { ARTIFACTS, setCells } from './helpers';

test.describe('%%pg --explain-analyze', () => {
  test('shows the plan as a tree with the slow node and the misestimate marked', async ({
    page
  }) => {
    // A kernel and maybe the embedded server's first start.
    test.slow();
    await page.notebook.createNew();
    await setCells(page, [
      '%load_ext pgmagic',
      '%%pg -q\n' +
        'DROP TABLE IF EXISTS ui_plan;\n' +
        'CREATE TABLE ui_plan AS\n' +
        '  SELECT g AS id, g % 100 AS city, g % 100 AS zip FROM generate_series(1, 50000) g;\n' +
        'ANALYZE ui_plan',
      '%%pg --explain-analyze\n' +
        'SELECT city, count(*) FROM ui_plan WHERE city = 7 AND zip = 7 GROUP BY city'
    ]);
    await page.notebook.runCell(0);
    await page.notebook.runCell(1);
    await page.notebook.runCell(2);

    // pgmagic's renderer draws the plan (ahead of the bundle's HTML).
    const plan = page.locator('.jp-OutputArea-output.jp-PgPlan').first();
    await expect(plan).toBeVisible();
    // The tree: the aggregate over the scan, each node its own row.
    await expect(plan.locator('.jp-PgPlan-title')).toHaveText([
      /Aggregate/,
      /Seq Scan on .*ui_plan/
    ]);
    // The scan takes most of the time and its estimate is 100 times too low
    // (city and zip always go together; the planner multiplies their odds).
    const scan = plan.locator('tr', { hasText: 'Seq Scan' });
    await expect(scan).toHaveClass(/jp-PgPlan-hot/);
    await expect(scan).toHaveClass(/jp-PgPlan-misestimated/);
    await expect(scan.locator('.jp-PgPlan-off')).toHaveText(/^×\d+ under$/);
    await expect(scan.locator('.jp-PgPlan-slow')).toHaveCount(2);
    await expect(scan.locator('.jp-PgPlan-node')).toHaveAttribute(
      'title',
      /Relation Name: ui_plan/
    );
    await expect(plan).toContainText('Execution');
    // Wide enough for every column.
    await page.setViewportSize({ width: 1440, height: 800 });
    await page.screenshot({ path: path.join(ARTIFACTS, 'plan.png') });

    // Folding the aggregate hides the scan under it.
    await plan.locator('.jp-PgPlan-caret').first().click();
    await expect(plan.locator('.jp-PgPlan-title')).toHaveText([/Aggregate/]);
    await plan.locator('.jp-PgPlan-caret').first().click();
    await expect(plan.locator('.jp-PgPlan-title')).toHaveCount(2);
  });
});
