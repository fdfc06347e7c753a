import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { Clipboard, ICommandPalette, Notification } from '@jupyterlab/apputils';
import {
  CompletionProviderManager,
  ICompletionProviderManager,
  KERNEL_PROVIDER_ID
} from '@jupyterlab/completer';
import {
  IEditorExtensionRegistry,
  IEditorLanguageRegistry
} from '@jupyterlab/codemirror';
import {
  INotebookTracker,
  NotebookActions,
  NotebookPanel
} from '@jupyterlab/notebook';
import { LabIcon } from '@jupyterlab/ui-components';
import { Message, MessageLoop } from '@lumino/messaging';
import type { Widget } from '@lumino/widgets';

import { PgCompletionProvider, stepAside } from './completion';
import { FeedRegistry } from './feed';
// The side panel loads it anyway; its context menu is registered at startup.
// eslint-disable-next-line jupyter/prefer-lazy-imports
import {
  ISchemaActions,
  relationAt,
  relationMenu,
  RELATION_SELECTOR
} from './schemaView';
// Activation needs it at once: the panel joins the sidebar at startup, and
// the active notebook's kernel gets its feed (which opens the comm) at once.
// eslint-disable-next-line jupyter/prefer-lazy-imports
import { PgSidePanel } from './sidePanel';
// The renderer must be on a notebook's registry before its outputs render.
// eslint-disable-next-line jupyter/prefer-lazy-imports
import { addPlanRenderer } from './planView';
import { addFeedRenderer } from './savedFeed';
import { addJobRenderer, JOB_MIME } from './jobView';
import type { IJobEnded } from './protocol';
import { PGSQL_MIME, pgCellLanguageFactory } from './sqlHighlight';

const PANEL_ID = 'pgmagic-feed';
/** Also in the View menu, through schema/feed-panel.json. */
const SHOW_COMMAND = 'pgmagic:show-panel';
/** Where the panel's open state survives a reload without a layout restorer. */
const OPEN_KEY = 'pgmagic-labextension:feed-panel-open';

/**
 * One feed (one comm) per kernel for the whole page, shared by the panel
 * and the completion provider.
 */
const feeds = new FeedRegistry();

/** A database with a broadcast wave: LISTEN/NOTIFY. */
const pgIcon = new LabIcon({
  name: 'pgmagic:feed',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24" fill="none">' +
    '<g class="jp-icon3" stroke="#616161" stroke-width="2" stroke-linecap="round">' +
    '<ellipse cx="9" cy="6" rx="6" ry="2.5"/>' +
    '<path d="M3 6v12c0 1.4 2.7 2.5 6 2.5s6-1.1 6-2.5V6"/>' +
    '<path d="M3 12c0 1.4 2.7 2.5 6 2.5s6-1.1 6-2.5"/>' +
    '<path d="M18.5 5a4.5 4.5 0 0 1 0 6"/>' +
    '<path d="M21 2.5a8 8 0 0 1 0 11"/>' +
    '</g></svg>'
});

/**
 * The "PostgreSQL" side panel, following the active notebook's kernel.
 *
 * JupyterLab and Notebook 7 alike: "Show PostgreSQL panel" in the command
 * palette and the View menu opens it; it reopens after a reload through the
 * layout restorer (JupyterLab) or, where there is none (Notebook 7), through
 * localStorage.
 */
const feedPanelPlugin: JupyterFrontEndPlugin<void> = {
  id: 'pgmagic-labextension:feed-panel',
  description:
    'Side panel with the LISTEN/NOTIFY feed of the active notebook kernel.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ILayoutRestorer, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null
  ) => {
    const actions = schemaActions(tracker);
    const panel = new PgSidePanel(actions);
    addRelationMenu(app, actions);
    panel.id = PANEL_ID;
    panel.title.icon = pgIcon;
    panel.title.caption = 'PostgreSQL';
    app.shell.add(panel, 'right', { rank: 900 });

    app.commands.addCommand(SHOW_COMMAND, {
      label: 'Show PostgreSQL panel',
      caption: 'LISTEN/NOTIFY notifications of the active notebook kernel',
      describedBy: { args: { type: 'object', properties: {} } },
      execute: () => app.shell.activateById(PANEL_ID)
    });
    palette?.addItem({ command: SHOW_COMMAND, category: 'PostgreSQL' });

    if (restorer) {
      restorer.add(panel, PANEL_ID);
    } else {
      rememberOpenState(panel);
      // Reopen with a notebook, not on Notebook 7's file browser page
      // (where the plugin runs too, with nothing to show).
      const reopen = () => {
        tracker.widgetAdded.disconnect(reopen);
        app.shell.activateById(PANEL_ID);
      };
      if (readOpenState()) {
        // Activated before the shell restored its own layout, the panel
        // ended up closed (Notebook 7.6).
        void app.restored.then(() => {
          if (tracker.size > 0) {
            reopen();
          } else {
            tracker.widgetAdded.connect(reopen);
          }
        });
      }
    }

    // Feeds are made for the active notebook only: each attempt at a kernel
    // without pgmagic costs it a refused comm_open, so background kernels
    // are left alone until their notebook becomes active.
    const showCurrent = () => {
      const notebook = tracker.currentWidget;
      if (notebook === null) {
        panel.setSource(null);
        return;
      }
      const kernel = notebook.sessionContext.session?.kernel ?? null;
      panel.setSource({
        label: notebook.title.label,
        feed: kernel ? feeds.feedFor(kernel) : null
      });
    };

    const watch = (notebook: NotebookPanel) => {
      const update = () => {
        if (notebook === tracker.currentWidget) {
          showCurrent();
        }
      };
      notebook.sessionContext.kernelChanged.connect(update);
      notebook.title.changed.connect(update);
    };
    tracker.forEach(watch);
    tracker.widgetAdded.connect((_tracker, notebook) => watch(notebook));
    tracker.currentChanged.connect(showCurrent);
    showCurrent();
  }
};

/** The Schema view's context menu on a relation (see `relationMenu`). */
function addRelationMenu(app: JupyterFrontEnd, actions: ISchemaActions): void {
  // The relation under the right-click that opened the menu.
  const relation = () =>
    relationAt(
      app.contextMenuHitTest(node => relationAt(node) !== null) ?? null
    );
  relationMenu(actions).forEach(([id, label, act], rank) => {
    const command = `pgmagic:schema-${id}`;
    app.commands.addCommand(command, {
      label,
      describedBy: { args: { type: 'object', properties: {} } },
      isEnabled: () => relation() !== null,
      execute: () => {
        const name = relation();
        if (name !== null) {
          act(name);
        }
      }
    });
    app.contextMenu.addItem({ command, selector: RELATION_SELECTOR, rank });
  });
}

/** What the Schema view's clicks do to the active notebook. */
function schemaActions(tracker: INotebookTracker): ISchemaActions {
  return {
    copyText: (text: string) => Clipboard.copyToSystem(text),
    insertText: (text: string) => {
      const cell = tracker.activeCell;
      const editor = cell?.editor;
      if (!cell || !editor) {
        return;
      }
      const offset = editor.getOffsetAt(editor.getCursorPosition());
      cell.model.sharedModel.updateSource(offset, offset, text);
      editor.setCursorPosition(editor.getPositionAt(offset + text.length)!);
      editor.focus();
    },
    insertCell: (source: string) => {
      const notebook = tracker.currentWidget?.content;
      if (!notebook) {
        return;
      }
      NotebookActions.insertBelow(notebook);
      notebook.activeCell?.model.sharedModel.setSource(source);
    }
  };
}

function readOpenState(): boolean {
  try {
    return window.localStorage.getItem(OPEN_KEY) === 'true';
  } catch {
    // Storage can be disabled (privacy settings): then nothing reopens.
    return false;
  }
}

/** Record in localStorage whether the panel is shown, as the user leaves it. */
function rememberOpenState(panel: Widget): void {
  MessageLoop.installMessageHook(panel, (_handler, msg: Message) => {
    if (msg.type === 'after-show' || msg.type === 'before-hide') {
      try {
        window.localStorage.setItem(
          OPEN_KEY,
          String(msg.type === 'after-show')
        );
      } catch {
        // As in readOpenState: no storage, no memory of the panel.
      }
    }
    return true;
  });
}

/**
 * PostgreSQL highlighting for notebook cells starting with `%%pg`.
 */
const sqlHighlightPlugin: JupyterFrontEndPlugin<void> = {
  id: 'pgmagic-labextension:sql-highlight',
  description: 'Highlights %%pg cells as PostgreSQL.',
  autoStart: true,
  requires: [IEditorExtensionRegistry, IEditorLanguageRegistry],
  // Async on purpose: startup waits for the plugin, so the extension is
  // registered before the first notebook editors are created.
  activate: async (
    _app: JupyterFrontEnd,
    extensions: IEditorExtensionRegistry,
    languages: IEditorLanguageRegistry
  ) => {
    const spec = languages.findByMIME(PGSQL_MIME);
    const pgsql = spec
      ? (await languages.getLanguage(spec))?.support
      : undefined;
    if (!pgsql) {
      console.warn(
        `pgmagic: no ${PGSQL_MIME} language, %%pg cells stay Python`
      );
      return;
    }
    extensions.addExtension(pgCellLanguageFactory(pgsql));
  }
};

/**
 * The `%pg listen` output: the live widget, or its saved HTML once the
 * kernel that made it is gone (see `savedFeed.ts`).
 */
const savedFeedPlugin: JupyterFrontEndPlugin<void> = {
  id: 'pgmagic-labextension:saved-feed',
  description:
    'Shows a saved %pg listen feed as HTML when its widget model is gone.',
  autoStart: true,
  requires: [INotebookTracker],
  activate: (_app: JupyterFrontEnd, tracker: INotebookTracker) => {
    const add = (notebook: NotebookPanel) =>
      addFeedRenderer(notebook.content.rendermime);
    tracker.forEach(add);
    tracker.widgetAdded.connect((_tracker, notebook) => add(notebook));
  }
};

/**
 * `%%pg --explain` plans as a tree whose branches fold (see `planView.ts`).
 */
const planPlugin: JupyterFrontEndPlugin<void> = {
  id: 'pgmagic-labextension:plan',
  description: 'Shows EXPLAIN plans from %%pg --explain as a folding tree.',
  autoStart: true,
  requires: [INotebookTracker],
  activate: (_app: JupyterFrontEnd, tracker: INotebookTracker) => {
    const add = (notebook: NotebookPanel) =>
      addPlanRenderer(notebook.content.rendermime);
    tracker.forEach(add);
    tracker.widgetAdded.connect((_tracker, notebook) => add(notebook));
  }
};

/**
 * Background jobs (`%%pg --bg`): their handles, with a Cancel button, and a
 * notification when one ends, also while the user is in another notebook.
 */
const jobsPlugin: JupyterFrontEndPlugin<void> = {
  id: 'pgmagic-labextension:jobs',
  description:
    'Shows %%pg --bg jobs with a Cancel button and notifies when one ends.',
  autoStart: true,
  requires: [INotebookTracker],
  activate: (app: JupyterFrontEnd, tracker: INotebookTracker) => {
    const add = (notebook: NotebookPanel) =>
      addJobRenderer(notebook.content.rendermime, job => {
        const kernel = notebook.sessionContext.session?.kernel;
        const feed = kernel ? feeds.feedFor(kernel) : null;
        return feed
          ? feed.cancelJob(job)
          : Promise.resolve('this notebook has no kernel');
      });
    tracker.forEach(add);
    tracker.widgetAdded.connect((_tracker, notebook) => add(notebook));
    feeds.jobEnded.connect((_registry, { kernelId, ended }) =>
      notifyJobEnded(app, tracker, kernelId, ended)
    );
  }
};

const NOTIFICATION_TYPES = {
  done: 'success',
  failed: 'error',
  cancelled: 'info'
} as const;

/** A notification for an ended job, with a button that shows its cell. */
function notifyJobEnded(
  app: JupyterFrontEnd,
  tracker: INotebookTracker,
  kernelId: string,
  ended: IJobEnded
): void {
  const notebook = tracker.find(
    panel => panel.sessionContext.session?.kernel?.id === kernelId
  );
  const actions = notebook
    ? [
        {
          label: 'Show',
          caption: `Go to the cell of ${ended.name} in ${notebook.title.label}`,
          callback: () => showJob(app, notebook, ended.job)
        }
      ]
    : [];
  Notification.emit(ended.summary, NOTIFICATION_TYPES[ended.state], {
    autoClose: ended.state === 'failed' ? false : 10000,
    actions
  });
}

/** Activate the notebook and scroll to the cell whose output is job `job`. */
function showJob(app: JupyterFrontEnd, notebook: NotebookPanel, job: number) {
  app.shell.activateById(notebook.id);
  const cells = notebook.content.widgets;
  const index = cells.findIndex(cell => {
    const outputs = (cell.model as { outputs?: { toJSON(): unknown[] } })
      .outputs;
    return (outputs?.toJSON() ?? []).some(output => {
      const data = (output as { data?: Record<string, unknown> }).data;
      const handle = data?.[JOB_MIME] as { id?: unknown } | undefined;
      return handle?.id === job;
    });
  });
  if (index >= 0) {
    notebook.content.activeCellIndex = index;
    void notebook.content.scrollToItem(index, 'center');
  }
}

/**
 * Tab completion in `%%pg` cells and `%pg` lines over pgmagic's comm, which
 * keeps working while another cell runs (see `completion.ts`).
 */
const completionPlugin: JupyterFrontEndPlugin<void> = {
  id: 'pgmagic-labextension:completion',
  description: 'Completes SQL in %%pg cells, also while a cell runs.',
  autoStart: true,
  requires: [ICompletionProviderManager],
  activate: (app: JupyterFrontEnd, manager: ICompletionProviderManager) => {
    const provider = new PgCompletionProvider(widget => {
      if (!(widget instanceof NotebookPanel)) {
        return null;
      }
      const kernel = widget.sessionContext.session?.kernel;
      return kernel ? feeds.feedFor(kernel) : null;
    });
    manager.registerProvider(provider);
    // The kernel's provider is registered by another plugin: look for it
    // once every plugin has started. `getProviders` is on JupyterLab's
    // manager, not on the token's interface.
    void app.restored.then(() => {
      const kernel =
        'getProviders' in manager
          ? (manager as CompletionProviderManager)
              .getProviders()
              .get(KERNEL_PROVIDER_ID)
          : undefined;
      if (kernel) {
        stepAside(kernel, context => provider.servesAlone(context));
      }
    });
  }
};

export default [
  feedPanelPlugin,
  sqlHighlightPlugin,
  savedFeedPlugin,
  planPlugin,
  jobsPlugin,
  completionPlugin
];
