import {
  language,
  LanguageSupport,
  StreamLanguage
} from '@codemirror/language';
import { EditorState, Extension } from '@codemirror/state';
import { EditorView } from '@codemirror/view';
import type { CodeEditor } from '@jupyterlab/codeeditor';
import { describe, expect, it, vi } from 'vitest';

import { pgCellLanguageFactory } from '../sqlHighlight';

// The real module loads JupyterLab's web components, which need a browser;
// the one function used here only wraps an extension for the registry.
vi.mock('@jupyterlab/codemirror', () => ({
  EditorExtensionRegistry: {
    createImmutableExtension: (extension: Extension) => ({
      instance: () => extension,
      reconfigure: () => null
    })
  }
}));

/** Stands in for JupyterLab's PostgreSQL mode: only its identity matters. */
const pgsql = StreamLanguage.define({
  name: 'pgsql-stand-in',
  token: stream => {
    stream.skipToEnd();
    return null;
  }
});
const factory = pgCellLanguageFactory(new LanguageSupport(pgsql));

function extensionFor(
  source: string,
  cellType = 'code'
): Extension | undefined {
  const model = {
    sharedModel: { cell_type: cellType, getSource: () => source }
  } as unknown as CodeEditor.IModel;
  return factory.factory({ inline: false, model })?.instance(undefined);
}

function editor(source: string): EditorState {
  const extension = extensionFor(source);
  if (extension === undefined) {
    throw new Error('no extension for a code cell');
  }
  return EditorState.create({ doc: source, extensions: extension });
}

const isSql = (state: EditorState) => state.facet(language) === pgsql;

function edit(
  state: EditorState,
  from: number,
  to: number,
  insert: string
): EditorState {
  return state.update({ changes: { from, to, insert } }).state;
}

/** Lines carrying the magic-line class. */
function magicLines(state: EditorState): number[] {
  const lines: number[] = [];
  for (const source of state.facet(EditorView.decorations)) {
    const set = typeof source === 'function' ? null : source;
    set?.between(0, state.doc.length, (from, _to, deco) => {
      if (deco.spec.class === 'jp-PgMagic-magicLine') {
        lines.push(state.doc.lineAt(from).number);
      }
    });
  }
  return lines;
}

describe('%%pg cell highlighting', () => {
  it.each([
    ['%%pg\nSELECT 1', true],
    ['%%pg --as df\nSELECT 1', true],
    ['%%pg\tmydb', true],
    ['%%pg', true],
    ['%%pgbench\nSELECT 1', false],
    ['%pg SELECT 1', false],
    [' %%pg\nSELECT 1', false],
    ['SELECT 1\n%%pg', false],
    ['', false]
  ])('treats %j as SQL: %s', (source, expected) => {
    expect(isSql(editor(source))).toBe(expected);
  });

  it('marks the magic line, not the SQL, as the magic', () => {
    expect(magicLines(editor('%%pg\nSELECT 1\nFROM t'))).toEqual([1]);
    expect(magicLines(editor('x = 1'))).toEqual([]);
  });

  it('switches when an edit changes the first line', () => {
    let state = editor('SELECT 1');
    state = edit(state, 0, 0, '%%pg\n');
    expect(isSql(state)).toBe(true);
    expect(magicLines(state)).toEqual([1]);
    state = edit(state, 0, 4, '%%py');
    expect(isSql(state)).toBe(false);
  });

  it('keeps SQL through edits below the first line', () => {
    let state = editor('%%pg\nSELECT 1');
    state = edit(state, state.doc.length, state.doc.length, '\n%%pg');
    state = edit(state, 5, 11, 'VALUES');
    expect(isSql(state)).toBe(true);
  });

  it('leaves markdown cells alone whatever their first line says', () => {
    expect(extensionFor('%%pg\nSELECT 1', 'markdown')).toBeUndefined();
    expect(extensionFor('%%pg\nSELECT 1', 'raw')).toBeUndefined();
  });
});
