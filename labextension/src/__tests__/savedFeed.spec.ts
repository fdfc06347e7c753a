import type { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { Panel, Widget } from '@lumino/widgets';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import {
  FEED_MIME,
  FeedOutput,
  IRendererSource,
  VIEW_WAIT_MS,
  WIDGET_VIEW_MIME
} from '../savedFeed';

/** What ipywidgets' renderer does with a model id. */
type ViewOutcome = 'view' | 'not found' | 'never';

/** ipywidgets' renderer as the feed output sees it: a Panel that may get a view. */
class FakeWidgetRenderer extends Panel implements IRenderMime.IRenderer {
  constructor(private readonly _outcome: ViewOutcome) {
    super();
  }

  renderModel(): Promise<void> {
    if (this._outcome === 'never') {
      this.node.textContent = 'Loading widget...';
      return new Promise(() => undefined);
    }
    if (this._outcome === 'not found') {
      this.node.textContent = 'Error displaying widget: model not found';
    } else {
      const view = new Widget();
      view.node.textContent = 'live view';
      this.addWidget(view);
    }
    return Promise.resolve();
  }
}

class FakeHtmlRenderer extends Widget implements IRenderMime.IRenderer {
  renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    this.node.textContent = String(model.data['text/html']);
    return Promise.resolve();
  }
}

class FakeSource implements IRendererSource {
  constructor(public outcome: ViewOutcome) {}

  readonly created: string[] = [];

  createRenderer(mimeType: string): IRenderMime.IRenderer {
    this.created.push(mimeType);
    return mimeType === WIDGET_VIEW_MIME
      ? new FakeWidgetRenderer(this.outcome)
      : new FakeHtmlRenderer();
  }
}

function bundle(modelId: string, html: string): IRenderMime.IMimeModel {
  return {
    trusted: true,
    data: {
      [WIDGET_VIEW_MIME]: { model_id: modelId, version_major: 2 },
      [FEED_MIME]: {},
      'text/html': html
    },
    metadata: {},
    setData: () => undefined
  };
}

describe('FeedOutput', () => {
  const outputs: FeedOutput[] = [];
  const feedOutput = (source: FakeSource) => {
    const output = new FeedOutput(source);
    outputs.push(output);
    return output;
  };

  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
    outputs.splice(0).forEach(output => output.dispose());
  });

  it.each<[ViewOutcome, string]>([
    ['view', 'live view'],
    ['not found', 'LISTEN orders · 3 received'],
    ['never', 'LISTEN orders · 3 received']
  ])(
    'with a widget renderer that gives %s, shows %s',
    async (outcome, shown) => {
      const output = feedOutput(new FakeSource(outcome));
      const done = output.renderModel(
        bundle('m1', 'LISTEN orders · 3 received')
      );
      await vi.advanceTimersByTimeAsync(VIEW_WAIT_MS);
      await done;
      expect(output.node.textContent).toBe(shown);
    }
  );

  it('keeps its live view when the display is updated', async () => {
    const source = new FakeSource('view');
    const output = feedOutput(source);
    await output.renderModel(bundle('m1', 'LISTEN orders · 1 received'));
    const view = output.widgets[0];
    await output.renderModel(bundle('m1', 'LISTEN orders · 2 received'));
    expect(output.widgets).toEqual([view]);
    expect(source.created).toEqual([WIDGET_VIEW_MIME]);
  });

  it('updates the saved HTML while there is no view', async () => {
    const source = new FakeSource('not found');
    const output = feedOutput(source);
    await output.renderModel(bundle('m1', 'one'));
    const second = output.renderModel(bundle('m1', 'two'));
    await vi.advanceTimersByTimeAsync(VIEW_WAIT_MS);
    await second;
    expect(output.node.textContent).toBe('two');
    expect(output.widgets).toHaveLength(1);
  });
});
