import { expect, IJupyterLabPageFixture, test } from '@jupyterlab/galata';
import * as path from 'path';

import { ARTIFACTS, setCells } from './helpers';

const TABLE = '.jp-OutputArea-output .pgmagic-result table';
const THEMES = ['JupyterLab Light', 'JupyterLab Dark'];

/** Computed `text-align` of the result table's header and body cells. */
async function alignment(page: IJupyterLabPageFixture) {
  return page.locator(TABLE).evaluate(table => {
    const align = (cells: NodeListOf<Element>) =>
      [...cells].map(cell => getComputedStyle(cell).textAlign);
    return {
      header: align(table.querySelectorAll('thead th')),
      body: align(table.querySelectorAll('tbody td'))
    };
  });
}

test.describe('%pg result tables', () => {
  test('align text left and numbers right, in light and dark themes', async ({
    page
  }) => {
    // A kernel, maybe the embedded server, two theme reloads: allow for a slow machine.
    test.slow();
    await page.notebook.createNew();
    await setCells(page, [
      '%load_ext pgmagic',
      "%pg SELECT 'text' AS t, 1 AS n, NULL::text AS z"
    ]);
    await page.notebook.runCell(0);
    await page.notebook.runCell(1);
    await expect(page.locator(TABLE)).toBeVisible({ timeout: 60000 });
    await expect(page.locator(`${TABLE} tbody td`)).toHaveText([
      'text',
      '1',
      'NULL'
    ]);

    const shown: Record<string, unknown> = {};
    for (const theme of THEMES) {
      await page.theme.setTheme(theme);
      await expect
        .poll(() => page.evaluate(() => document.body.dataset.jpThemeName))
        .toBe(theme);
      expect(
        await page.evaluate(() => document.body.dataset.jpThemeLight)
      ).toBe(String(theme.endsWith('Light')));
      shown[theme] = await alignment(page);
      await page.locator(TABLE).screenshot({
        path: path.join(
          ARTIFACTS,
          `result-${theme.split(' ')[1].toLowerCase()}.png`
        )
      });
    }
    // Text (and NULL in a text column) left, numbers right, headers left.
    const expected = {
      header: ['left', 'left', 'left'],
      body: ['left', 'right', 'left']
    };
    expect(shown).toEqual(
      Object.fromEntries(THEMES.map(theme => [theme, expected]))
    );
  });
});
