/**
 * Helpers shared by the specs.
 */

import type { IJupyterLabPageFixture } from '@jupyterlab/galata';
import type { NotebookPanel } from '@jupyterlab/notebook';
import * as path from 'path';

/** NOTIFY from other connections, from the notebook (see the file). */
export const SENDER = path.resolve(__dirname, '..', 'sender.py');
export const ARTIFACTS = path.resolve(__dirname, '..', 'artifacts');

/**
 * Replace the notebook's cells through the shared model: typing into
 * CodeMirror auto-indents and has produced broken Python.
 */
export async function setCells(
  page: IJupyterLabPageFixture,
  sources: string[]
): Promise<void> {
  await page.evaluate(sources => {
    const panel = window.jupyterapp.shell.currentWidget as NotebookPanel;
    const shared = panel.content.model!.sharedModel;
    const old = shared.cells.length;
    // Two steps: the notebook view mis-renders a single transaction that
    // both inserts and deletes cells.
    shared.insertCells(
      old,
      sources.map(source => ({ cell_type: 'code', source }))
    );
    shared.deleteCellRange(0, old);
  }, sources);
}

/** A Python string literal for `text` (JSON's escapes are Python's too). */
export function pythonString(text: string): string {
  return JSON.stringify(text);
}

/**
 * Whether a cell still runs, by its `[*]` prompt. Not the kernel's status:
 * the subshell's busy/idle around each comm message reaches it too.
 */
export async function running(
  page: IJupyterLabPageFixture,
  index: number
): Promise<boolean> {
  const cell = await page.notebook.getCellLocator(index);
  return (await cell!.locator('.jp-InputPrompt').textContent()) === '[*]:';
}
