/**
 * SQL highlighting for `%%pg` cells.
 *
 * A CodeMirror extension, added to every editor through the editor
 * extension registry, keeps a compartment that holds the PostgreSQL
 * language while the first line is a `%%pg` magic and nothing otherwise.
 * The compartment sits at the highest precedence, so it overrides the
 * Python language JupyterLab configures from the notebook's mimetype without
 * touching the cell model: the notebook resets cell mimetypes whenever the
 * kernel changes, and a model-level switch would fight it.
 */

import { Compartment, EditorState, Extension, Prec } from '@codemirror/state';
import { Decoration, EditorView } from '@codemirror/view';
import type { CodeEditor } from '@jupyterlab/codeeditor';
import {
  EditorExtensionRegistry,
  IEditorExtensionFactory
} from '@jupyterlab/codemirror';
import type { LanguageSupport } from '@codemirror/language';

/** MIME type of the PostgreSQL dialect in JupyterLab's language registry. */
export const PGSQL_MIME = 'text/x-pgsql';

/**
 * `%%pg` followed by options or nothing. `%%pgbench`-like names are other
 * magics and keep Python.
 */
const PG_MAGIC = /^%%pg(?:\s|$)/;

const MAGIC_LINE_CLASS = 'jp-PgMagic-magicLine';

/** True when the first line is a `%%pg` magic; `text` may be the whole cell. */
function startsWithPgMagic(text: string): boolean {
  return PG_MAGIC.test(text);
}

/**
 * The registry factory. Only code cells opt in: markdown cells and file
 * editors keep their own language whatever their first line says.
 */
export function pgCellLanguageFactory(
  pgsql: LanguageSupport
): IEditorExtensionFactory {
  return {
    name: 'pgmagic:sql-cells',
    factory: ({ model }) =>
      isCodeCell(model)
        ? EditorExtensionRegistry.createImmutableExtension(
            pgCellLanguage(
              pgsql,
              startsWithPgMagic(model.sharedModel.getSource())
            )
          )
        : null
  };
}

/**
 * The per-editor extension: starts as SQL when `initiallyPg`, then switches
 * whenever an edit changes what the first line says.
 */
function pgCellLanguage(
  pgsql: LanguageSupport,
  initiallyPg: boolean
): Extension {
  const compartment = new Compartment();
  const sql: Extension = [pgsql, magicLineDecoration];
  return [
    Prec.highest(compartment.of(initiallyPg ? sql : [])),
    EditorState.transactionExtender.of(tr => {
      if (!tr.docChanged) {
        return null;
      }
      const wanted = startsWithPgMagic(tr.newDoc.line(1).text);
      const active = compartment.get(tr.startState) === sql;
      return wanted === active
        ? null
        : { effects: compartment.reconfigure(wanted ? sql : []) };
    })
  ];
}

/** The magic line is not SQL: style it as a whole instead of as tokens. */
const magicLineDecoration = EditorView.decorations.compute(['doc'], state =>
  Decoration.set(
    Decoration.line({ class: MAGIC_LINE_CLASS }).range(state.doc.line(1).from)
  )
);

function isCodeCell(model: CodeEditor.IModel): boolean {
  const shared = model.sharedModel;
  return 'cell_type' in shared && shared.cell_type === 'code';
}
