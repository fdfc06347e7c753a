import { expect, IJupyterLabPageFixture, test } from '@jupyterlab/galata';
import type { NotebookPanel } from '@jupyterlab/notebook';
import * as path from 'path';

import { ARTIFACTS, setCells } from './helpers';

const PANEL = '#pgmagic-feed';
const VIEW = `${PANEL} .jp-PgSchema`;
/** Class prefix, for locators inside the view's nodes. */
const C = '.jp-PgSchema';

async function cellSources(page: IJupyterLabPageFixture): Promise<string[]> {
  return page.evaluate(() => {
    const panel = window.jupyterapp.shell.currentWidget as NotebookPanel;
    return panel.content.model!.sharedModel.cells.map(c => c.getSource());
  });
}

test.describe('PostgreSQL panel, Schema tab', () => {
  test('shows related tables, their columns with PK/FK, and adds a \\d cell', async ({
    page
  }) => {
    await page.notebook.createNew();
    await page.sidebar.openTab('pgmagic-feed');
    await setCells(page, [
      '%load_ext pgmagic',
      '%%pg -q\n' +
        'DROP SCHEMA IF EXISTS ui_shop CASCADE;\n' +
        'CREATE SCHEMA ui_shop;\n' +
        'CREATE TABLE ui_shop.orders (id int PRIMARY KEY, placed date NOT NULL);\n' +
        'CREATE TABLE ui_shop.lines (line_id int PRIMARY KEY,\n' +
        '  order_id int REFERENCES ui_shop.orders (id), qty int);\n' +
        'INSERT INTO ui_shop.orders SELECT g, now() FROM generate_series(1, 300) g;\n' +
        'ANALYZE ui_shop.orders'
    ]);
    await page.notebook.runCell(0);
    await page.notebook.runCell(1);

    // The notifications stay the first tab.
    await expect(page.locator(`${PANEL} .jp-PgFeed`)).toBeVisible();
    await page
      .locator(`${PANEL} .jp-PgPanel-tab`, { hasText: 'Schema' })
      .click();
    await expect(page.locator(`${PANEL} .jp-PgFeed`)).toBeHidden();
    await expect(page.locator(`${VIEW}-connection`)).toContainText(' @ ', {
      timeout: 15000
    });

    await page.locator(`${VIEW}-filter`).fill('ui_');
    const shop = page.locator(`${VIEW}-schema`, { hasText: 'ui_shop' });
    await expect(shop.locator(`${C}-relationName`)).toHaveText([
      'lines',
      'orders'
    ]);
    const orders = shop.locator(`${C}-relation`, { hasText: 'orders' });
    await expect(orders.locator(`${C}-kind`)).toHaveText('T');
    await expect(orders.locator(`${C}-stats`)).toContainText('300 rows');

    const lines = shop.locator(`${C}-relation`).first();
    await lines.locator(`${C}-caret`).click();
    await expect(lines.locator(`${C}-columnName`)).toHaveText([
      'line_id',
      'order_id',
      'qty'
    ]);
    await expect(lines.locator(`${C}-key`)).toHaveText(['PK', 'FK', '']);
    await expect(lines.locator(`${C}-references`)).toHaveText(
      '→ ui_shop.orders(id)'
    );

    await lines.locator(`${C}-relationRow`).hover();
    await page
      .locator(`${PANEL}`)
      .screenshot({ path: path.join(ARTIFACTS, 'schema.png') });
    await lines.locator(`${C}-action`, { hasText: '\\d' }).click();
    await expect
      .poll(() => cellSources(page))
      .toContain('%pg \\d ui_shop.lines');

    const index = (await cellSources(page)).indexOf('%pg \\d ui_shop.lines');
    await page.notebook.runCell(index);
    await expect(
      page.locator('.jp-OutputArea-output', { hasText: 'order_id' }).first()
    ).toBeVisible();
    await page.screenshot({ path: path.join(ARTIFACTS, 'schema-lab.png') });

    // DDL in a cell: the open tree reads again by itself.
    const ddl = await appendCell(
      page,
      '%pg CREATE TABLE ui_shop.returns (id int PRIMARY KEY)'
    );
    await page.notebook.runCell(ddl);
    await expect(shop.locator(`${C}-relationName`)).toHaveText([
      'lines',
      'orders',
      'returns'
    ]);
    // Still open after the new read, its columns read again.
    await expect(lines.locator(`${C}-columnName`)).toHaveCount(3);

    // The context menu on a relation.
    await shop
      .locator(`${C}-relationName`, { hasText: /^orders$/ })
      .click({ button: 'right' });
    const menu = page.locator('.lm-Menu');
    const select = menu.locator('.lm-Menu-item', {
      hasText: 'New Cell: SELECT'
    });
    await expect(select).toBeVisible();
    await expect(menu.locator('.lm-Menu-item')).toContainText([
      'Insert Name at Cursor',
      'Copy Name',
      'New Cell: SELECT * … LIMIT 100',
      'New Cell: \\d (describe)'
    ]);
    await page.screenshot({ path: path.join(ARTIFACTS, 'schema-menu.png') });
    await select.click();
    await expect
      .poll(() => cellSources(page))
      .toContain('%%pg\nSELECT * FROM ui_shop.orders LIMIT 100');

    // While a cell runs, the tree still reads: the comm is served on a subshell.
    const sleeper = await appendCell(page, 'import time; time.sleep(30)');
    await page.notebook.runCell(sleeper, { wait: false });
    await expect
      .poll(async () =>
        (await page.notebook.getCellLocator(sleeper))!
          .locator('.jp-InputPrompt')
          .textContent()
      )
      .toBe('[*]:');
    await page.locator(`${VIEW}-filter`).fill('ui_shop');
    await page.locator(`${VIEW}-button`, { hasText: 'Refresh' }).click();
    const returns = shop.locator(`${C}-relation`, { hasText: 'returns' });
    await returns.locator(`${C}-caret`).click();
    await expect(returns.locator(`${C}-columnName`)).toHaveText(['id'], {
      timeout: 5000
    });
    expect(
      await (await page.notebook.getCellLocator(sleeper))!
        .locator('.jp-InputPrompt')
        .textContent()
    ).toBe('[*]:');
  });
});

/** Add a code cell at the end; its index. */
async function appendCell(
  page: IJupyterLabPageFixture,
  source: string
): Promise<number> {
  return page.evaluate(source => {
    const panel = window.jupyterapp.shell.currentWidget as NotebookPanel;
    const shared = panel.content.model!.sharedModel;
    shared.insertCell(shared.cells.length, { cell_type: 'code', source });
    return shared.cells.length - 1;
  }, source);
}
