/**
 * The handle of a background job (`%%pg --bg`): state, rows so far, the
 * server process, and a Cancel button.
 *
 * The kernel updates the output in place about twice a second while the
 * job runs (`update_display_data`) and once when it ends. Cancel goes over
 * pgmagic's comm, so it works while another cell keeps the kernel busy.
 */

import type { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { Widget } from '@lumino/widgets';

import { button, el } from './dom';

export const JOB_MIME = 'application/vnd.pgmagic.job+json';
/** Ahead of text/html, which the kernel also sends for other front ends. */
const JOB_RANK = 40;
const CLASS = 'jp-PgJob';

export type JobState = 'queued' | 'running' | 'done' | 'failed' | 'cancelled';

export interface IJobView {
  id: number;
  name: string;
  state: JobState;
  connection: string;
  rows: number;
  pid: number | null;
  summary: string;
  /** psql's rendering of the error, when the job failed. */
  error: string;
}

const STATES: readonly JobState[] = [
  'queued',
  'running',
  'done',
  'failed',
  'cancelled'
];

/** The job's data, or null when it is malformed. */
export function parseJobView(data: unknown): IJobView | null {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    return null;
  }
  const value = data as Record<string, unknown>;
  const state = STATES.find(s => s === value.state);
  if (typeof value.id !== 'number' || state === undefined) {
    return null;
  }
  return {
    id: value.id,
    name: String(value.name ?? ''),
    state,
    connection: String(value.connection ?? ''),
    rows: typeof value.rows === 'number' ? value.rows : 0,
    pid: typeof value.pid === 'number' ? value.pid : null,
    summary: String(value.summary ?? ''),
    error: String(value.error ?? '')
  };
}

/** Whether a job in this state can still be cancelled. */
export function isActive(state: JobState): boolean {
  return state === 'queued' || state === 'running';
}

/**
 * Asks the kernel to cancel a job; resolves to null when it took the
 * request, else to why it could not.
 */
export type CancelJob = (job: number) => Promise<string | null>;

export class JobOutput extends Widget implements IRenderMime.IRenderer {
  constructor(
    private readonly _cancel: CancelJob,
    private readonly _fallback: () => IRenderMime.IRenderer
  ) {
    super();
    this.addClass(CLASS);
  }

  async renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    const view = parseJobView(model.data[JOB_MIME]);
    if (view === null) {
      const fallback = this._fallback();
      await fallback.renderModel(model);
      this.node.replaceChildren(fallback.node);
      return;
    }
    this.node.dataset.job = String(view.id);
    this.node.dataset.state = view.state;
    const line = el('div', `${CLASS}-line`);
    line.append(
      el('span', `${CLASS}-state ${CLASS}-${view.state}`, view.state),
      el('span', `${CLASS}-summary`, view.summary)
    );
    const facts = [`job ${view.id}`, view.connection];
    if (view.pid !== null && isActive(view.state)) {
      facts.push(`pid ${view.pid}`);
    }
    line.append(el('span', `${CLASS}-facts`, facts.join(' · ')));
    if (isActive(view.state)) {
      line.append(this._cancelButton(view));
    }
    const parts: HTMLElement[] = [line];
    if (this._problem) {
      parts.push(el('div', `${CLASS}-problem`, this._problem));
    }
    if (view.error) {
      parts.push(el('pre', `${CLASS}-error`, view.error));
    }
    this.node.replaceChildren(...parts);
  }

  private _cancelButton(view: IJobView): HTMLButtonElement {
    const cancel = button(`${CLASS}-cancel jp-mod-styled`, 'Cancel');
    cancel.title = `Cancel ${view.name} on the server`;
    if (this._cancelling === view.id) {
      cancel.disabled = true;
      cancel.textContent = 'Cancelling…';
    }
    cancel.addEventListener('click', () => {
      this._cancelling = view.id;
      cancel.disabled = true;
      cancel.textContent = 'Cancelling…';
      void this._cancel(view.id).then(problem => {
        if (problem !== null) {
          this._cancelling = null;
          this._problem = problem;
          cancel.disabled = false;
          cancel.textContent = 'Cancel';
          this.node.append(el('div', `${CLASS}-problem`, problem));
        }
      });
    });
    return cancel;
  }

  /** The job whose cancel was asked for: updates keep the button disabled. */
  private _cancelling: number | null = null;
  private _problem = '';
}

/** Register the renderer on a notebook's rendermime registry. */
export function addJobRenderer(
  rendermime: {
    addFactory(factory: IRenderMime.IRendererFactory, rank?: number): void;
    createRenderer(mimeType: string): IRenderMime.IRenderer;
  },
  cancel: CancelJob
): void {
  rendermime.addFactory(
    {
      // Text nodes only, no script: an untrusted notebook may show it.
      safe: true,
      mimeTypes: [JOB_MIME],
      createRenderer: () =>
        new JobOutput(cancel, () => rendermime.createRenderer('text/html'))
    },
    JOB_RANK
  );
}
