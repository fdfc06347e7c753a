import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  IEditorExtensionRegistry,
  IEditorLanguageRegistry
} from '@jupyterlab/codemirror';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { LabIcon } from '@jupyterlab/ui-components';

// Activation needs both at once: the panel joins the sidebar at startup, and
// every kernel needs its feed before `%load_ext pgmagic` opens the comm.
// eslint-disable-next-line jupyter/prefer-lazy-imports
import { FeedRegistry } from './feed';
// eslint-disable-next-line jupyter/prefer-lazy-imports
import { FeedPanel } from './panel';
import { addFeedRenderer } from './savedFeed';
import { PGSQL_MIME, pgCellLanguageFactory } from './sqlHighlight';

const PANEL_ID = 'pgmagic-feed';

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
 */
const feedPanelPlugin: JupyterFrontEndPlugin<void> = {
  id: 'pgmagic-labextension:feed-panel',
  description:
    'Side panel with the LISTEN/NOTIFY feed of the active notebook kernel.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    restorer: ILayoutRestorer | null
  ) => {
    const feeds = new FeedRegistry();
    const panel = new FeedPanel();
    panel.id = PANEL_ID;
    panel.title.icon = pgIcon;
    panel.title.caption = 'PostgreSQL';
    app.shell.add(panel, 'right', { rank: 900 });
    restorer?.add(panel, PANEL_ID);

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

    // Every notebook kernel gets a feed, not only the active one: a kernel
    // connection without the comm target closes comms the kernel opens, so
    // `%load_ext pgmagic` in a background notebook would otherwise be lost.
    const watch = (notebook: NotebookPanel) => {
      const update = () => {
        const kernel = notebook.sessionContext.session?.kernel;
        if (kernel) {
          feeds.feedFor(kernel);
        }
        if (notebook === tracker.currentWidget) {
          showCurrent();
        }
      };
      notebook.sessionContext.kernelChanged.connect(update);
      notebook.title.changed.connect(update);
      update();
    };
    tracker.forEach(watch);
    tracker.widgetAdded.connect((_tracker, notebook) => watch(notebook));
    tracker.currentChanged.connect(showCurrent);
    showCurrent();
  }
};

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

export default [feedPanelPlugin, sqlHighlightPlugin, savedFeedPlugin];
