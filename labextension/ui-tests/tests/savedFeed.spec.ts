import { expect, IJupyterLabPageFixture, test } from '@jupyterlab/galata';
import type { NotebookPanel } from '@jupyterlab/notebook';

import { SENDER, setCells } from './helpers';

const WIDGET = '.pgmagic-feed';
const WIDGET_ROW = `${WIDGET} .pgmagic-feed-row`;

/**
 * Count the feed widget views drawn from now on: a redrawn widget loses its
 * scroll position and expanded payloads, and flickers.
 */
async function countWidgetViews(page: IJupyterLabPageFixture) {
  await page.evaluate(selector => {
    const counts = { views: 0 };
    (window as unknown as { pgViews: typeof counts }).pgViews = counts;
    new MutationObserver(records => {
      for (const record of records) {
        record.addedNodes.forEach(node => {
          if (node instanceof HTMLElement) {
            counts.views += node.matches(selector)
              ? 1
              : node.querySelectorAll(selector).length;
          }
        });
      }
    }).observe(document.body, { childList: true, subtree: true });
  }, WIDGET);
}

function widgetViews(page: IJupyterLabPageFixture): Promise<number> {
  return page.evaluate(
    () => (window as unknown as { pgViews: { views: number } }).pgViews.views
  );
}

test.describe('saved feed widget', () => {
  test('later cells neither redraw the widget nor undo its Pause', async ({
    page
  }) => {
    await page.notebook.createNew();
    await setCells(page, [
      `%run ${SENDER}\n%load_ext pgmagic\n%pg listen saved`,
      '%pg notify saved one\nimport time; time.sleep(0.3)',
      '%pg notify saved two\ntime.sleep(0.3)',
      '%pg notify saved three\ntime.sleep(0.3)'
    ]);
    await page.notebook.runCell(0);
    await expect(page.locator(WIDGET)).toHaveCount(1, { timeout: 30000 });
    await countWidgetViews(page);

    await page.notebook.runCell(1);
    await expect(page.locator(WIDGET_ROW)).toHaveCount(1);
    await page
      .locator(`${WIDGET} .pgmagic-feed-button`, { hasText: 'Pause' })
      .click();
    await page.notebook.runCell(2);
    await page.notebook.runCell(3);
    // Each cell ended with news to record: none of it reached the widget's
    // output as a redraw, and the widget still holds what it showed.
    expect(await widgetViews(page)).toBe(0);
    await expect(
      page.locator(`${WIDGET} .pgmagic-feed-button`, { hasText: 'Resume' })
    ).toBeVisible();
    await expect(page.locator(WIDGET_ROW)).toHaveCount(1);
    await expect(page.locator(`${WIDGET} .pgmagic-feed-stats`)).toContainText(
      '3 received'
    );
  });

  test('a saved feed widget reopened without its kernel shows what it received', async ({
    page
  }) => {
    await page.notebook.createNew();
    await setCells(page, [
      `%run ${SENDER}\n%load_ext pgmagic\n%pg listen saved`,
      "%pg notify saved '<b>&'\n%pg notify saved 1.10\nimport time; time.sleep(0.5)"
    ]);
    await page.notebook.runCell(0);
    await expect(page.locator(WIDGET)).toHaveCount(1, { timeout: 30000 });
    await page.notebook.runCell(1);
    await expect(page.locator(WIDGET_ROW)).toHaveCount(2);
    const path = await page.evaluate(() => {
      const panel = window.jupyterapp.shell.currentWidget as NotebookPanel;
      return panel.context.path;
    });
    await page.evaluate(async () => {
      const panel = window.jupyterapp.shell.currentWidget as NotebookPanel;
      await panel.context.save();
      await panel.sessionContext.shutdown();
      panel.dispose();
    });
    await page.evaluate(async path => {
      await window.jupyterapp.commands.execute('docmanager:open', { path });
    }, path);
    const output = page.locator('.jp-OutputArea-output').first();
    await expect(output).toContainText('LISTEN saved', { timeout: 20000 });
    await expect(output).toContainText('<b>&');
    await expect(output).toContainText('1.10');
    // The new kernel has no such model: no error, no endless "Loading".
    await expect(page.getByText('model not found')).toHaveCount(0);
    await expect(page.getByText('Loading widget')).toHaveCount(0);
    await expect(output.locator('td', { hasText: '<b>&' })).toHaveCount(1);
  });

  test('a feed widget run headless and opened later shows what it received', async ({
    page
  }) => {
    // nbclient signs nothing, so JupyterLab opens the notebook untrusted
    // and draws the bundle's sanitized HTML, not the widget view.
    await page.notebook.createNew();
    await setCells(page, [
      [
        'import nbformat, time',
        'from nbclient import NotebookClient',
        'nb = nbformat.v4.new_notebook()',
        'nb.cells = [nbformat.v4.new_code_cell(c) for c in [',
        '    "%load_ext pgmagic", "%pg listen headless",',
        '    "%pg notify headless \'<b>&\'\\n%pg notify headless 1.10\\nimport time; time.sleep(0.5)",',
        '    "1"]]',
        'NotebookClient(nb, kernel_name="python3").execute()',
        'nbformat.write(nb, "headless.ipynb")'
      ].join('\n')
    ]);
    await page.notebook.runCell(0);
    const path = await page.evaluate(async () => {
      const panel = window.jupyterapp.shell.currentWidget as NotebookPanel;
      const folder = panel.context.path.split('/').slice(0, -1).join('/');
      await panel.sessionContext.shutdown();
      panel.dispose();
      return `${folder}/headless.ipynb`;
    });
    await page.evaluate(async path => {
      await window.jupyterapp.commands.execute('docmanager:open', { path });
    }, path);
    const output = page.locator('.jp-OutputArea-output', {
      hasText: 'LISTEN headless'
    });
    await expect(output).toContainText('2 received', { timeout: 20000 });
    await expect(output.locator('td', { hasText: '<b>&' })).toHaveCount(1);
    await expect(output.locator('td', { hasText: '1.10' })).toHaveCount(1);
    await expect(page.locator(WIDGET)).toHaveCount(0);
    await expect(page.getByText('model not found')).toHaveCount(0);
  });
});
