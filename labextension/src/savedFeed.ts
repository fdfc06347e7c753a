/**
 * The `%pg listen` output in a notebook: the live widget while its model
 * lives, the saved HTML once it does not.
 *
 * ipywidgets draws a widget view whose model is gone (the kernel that made
 * it was shut down) as "Error displaying widget: model not found", or as
 * "Loading widget..." with no kernel at all, and never falls back to the
 * other types of the output's bundle. The feed's bundle carries, besides the
 * widget view, static HTML of what the feed last showed and a marker type,
 * `FEED_MIME`, which this renderer claims ahead of the widget view: it asks
 * ipywidgets' own renderer for the view and shows the HTML instead when no
 * view comes.
 *
 * It also keeps the view across `update_display_data`: the kernel updates
 * the output at the end of a cell so that saved notebooks hold the feed's
 * latest state, and ipywidgets would draw a new view (scroll position and
 * expanded payloads lost) for each update.
 */

import type { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { Panel } from '@lumino/widgets';

/** The marker type in the feed's display bundle (`pgmagic.frontend.feed`). */
export const FEED_MIME = 'application/vnd.pgmagic.feed+json';
export const WIDGET_VIEW_MIME = 'application/vnd.jupyter.widget-view+json';

/** Ahead of ipywidgets' renderer (rank -10). */
export const FEED_RANK = -20;

/** The part of a rendermime registry the renderer uses. */
export interface IRendererSource {
  createRenderer(mimeType: string): IRenderMime.IRenderer;
}

function modelId(model: IRenderMime.IMimeModel): string | null {
  const view = model.data[WIDGET_VIEW_MIME] as { model_id?: unknown } | null;
  return typeof view?.model_id === 'string' ? view.model_id : null;
}

/**
 * How long a view may take before the saved HTML shows instead. A live
 * model resolves at once; ipywidgets takes 2 s to give up on a missing one,
 * and a renderer it has not given its manager yet never answers.
 */
export const VIEW_WAIT_MS = 300;

function delay(ms: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, ms));
}

export class FeedOutput extends Panel implements IRenderMime.IRenderer {
  constructor(private readonly _source: IRendererSource) {
    super();
    this.addClass('jp-PgFeedOutput');
  }

  async renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    const id = modelId(model);
    if (id !== null && id === this._liveId) {
      // The live view already shows this model's state: keep it.
      return;
    }
    const render = ++this._renders;
    this._liveId = null;
    if (id === null) {
      this._setPending(null);
      await this._showHtml(model);
      return;
    }
    const view = this._source.createRenderer(WIDGET_VIEW_MIME);
    this._setPending(view);
    const rendered = view.renderModel(model);
    await Promise.race([rendered, delay(VIEW_WAIT_MS)]);
    if (render !== this._renders) {
      return;
    }
    const adopt = () => {
      if (render === this._renders && hasView(view)) {
        this._pending = null;
        this._liveId = id;
        this._show(view);
      }
    };
    if (hasView(view)) {
      adopt();
      return;
    }
    await this._showHtml(model);
    // A view may still come (ipywidgets restoring saved widget state).
    void rendered.then(adopt);
  }

  override dispose(): void {
    this._setPending(null);
    super.dispose();
  }

  private _setPending(view: IRenderMime.IRenderer | null): void {
    this._pending?.dispose();
    this._pending = view;
  }

  private async _showHtml(model: IRenderMime.IMimeModel): Promise<void> {
    const html = this._source.createRenderer('text/html');
    this._show(html);
    await html.renderModel(model);
  }

  private _show(child: IRenderMime.IRenderer): void {
    for (const old of [...this.widgets]) {
      if (old !== child) {
        old.dispose();
      }
    }
    this.addWidget(child);
  }

  private _liveId: string | null = null;
  private _pending: IRenderMime.IRenderer | null = null;
  private _renders = 0;
}

/** ipywidgets' renderer is a Panel that holds the view once there is one. */
function hasView(renderer: IRenderMime.IRenderer): boolean {
  return renderer instanceof Panel && renderer.widgets.length > 0;
}

/**
 * Register the renderer on a notebook's own rendermime registry (ipywidgets
 * puts its widget renderer there too, per notebook).
 */
export function addFeedRenderer(rendermime: {
  addFactory(factory: IRenderMime.IRendererFactory, rank?: number): void;
  createRenderer(mimeType: string): IRenderMime.IRenderer;
}): void {
  rendermime.addFactory(
    {
      // Unsafe like the widget view it wraps: an untrusted notebook gets
      // the sanitized HTML of the bundle instead.
      safe: false,
      mimeTypes: [FEED_MIME],
      createRenderer: () => new FeedOutput(rendermime)
    },
    FEED_RANK
  );
}
