import type { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { Widget } from '@lumino/widgets';
import { afterEach, describe, expect, it } from 'vitest';

import { isActive, JOB_MIME, JobOutput, parseJobView } from '../jobView';

/** A handle's data as the kernel sends it (`pgmagic.frontend.jobs.bundle`). */
const RUNNING = {
  id: 4,
  name: 'big',
  state: 'running',
  connection: 'prod',
  rows: 1200,
  elapsed: 3.2,
  started: 1700000000,
  pid: 4242,
  summary: 'big: running, 1,200 rows so far (3.2 s)',
  error: '',
  sql: 'SELECT * FROM events'
};

function model(data: unknown): IRenderMime.IMimeModel {
  return {
    trusted: false,
    data: { [JOB_MIME]: data, 'text/html': '<b>fallback</b>' },
    metadata: {},
    setData: () => undefined
  } as unknown as IRenderMime.IMimeModel;
}

describe('parseJobView', () => {
  it('reads a handle', () => {
    expect(parseJobView(RUNNING)).toMatchObject({
      id: 4,
      state: 'running',
      pid: 4242,
      rows: 1200
    });
  });

  it.each([
    ['no id', { ...RUNNING, id: undefined }],
    ['an unknown state', { ...RUNNING, state: 'paused' }],
    ['not an object', ['running']]
  ])('refuses %s', (_name, data) => {
    expect(parseJobView(data)).toBeNull();
  });

  it('knows which states can be cancelled', () => {
    expect(['queued', 'running'].every(s => isActive(s as never))).toBe(true);
    expect(
      ['done', 'failed', 'cancelled'].some(s => isActive(s as never))
    ).toBe(false);
  });
});

describe('JobOutput', () => {
  let output: JobOutput;
  let asked: number[] = [];
  let answer: string | null = null;

  afterEach(() => output.dispose());

  async function rendered(data: unknown): Promise<JobOutput> {
    asked = [];
    output = new JobOutput(
      async job => {
        asked.push(job);
        return answer;
      },
      () => {
        const html = new Widget();
        return {
          ...html,
          node: html.node,
          renderModel: async (m: IRenderMime.IMimeModel) => {
            html.node.innerHTML = m.data['text/html'] as string;
          }
        } as unknown as IRenderMime.IRenderer;
      }
    );
    Widget.attach(output, document.body);
    await output.renderModel(model(data));
    return output;
  }

  const cancel = () =>
    output.node.querySelector<HTMLButtonElement>('.jp-PgJob-cancel');

  it('shows a running job with its pid and a Cancel button', async () => {
    await rendered(RUNNING);
    expect(output.node.dataset.state).toBe('running');
    expect(output.node.dataset.job).toBe('4');
    expect(output.node.textContent).toContain(RUNNING.summary);
    expect(output.node.textContent).toContain('pid 4242');
    expect(cancel()).not.toBeNull();
  });

  it('asks the kernel to cancel, and keeps the button busy through updates', async () => {
    answer = null;
    await rendered(RUNNING);
    cancel()!.click();
    expect(asked).toEqual([4]);
    expect(cancel()!.disabled).toBe(true);
    await output.renderModel(model({ ...RUNNING, rows: 1500 }));
    expect(cancel()!.disabled).toBe(true);
    expect(cancel()!.textContent).toBe('Cancelling…');
    await output.renderModel(
      model({ ...RUNNING, state: 'cancelled', summary: 'big cancelled' })
    );
    expect(cancel()).toBeNull();
    expect(output.node.textContent).not.toContain('pid 4242');
  });

  it('says why a cancel could not be asked for', async () => {
    answer = 'job 4 is not in this kernel (it was restarted since)';
    await rendered(RUNNING);
    cancel()!.click();
    await new Promise(resolve => setTimeout(resolve, 0));
    expect(output.node.textContent).toContain('not in this kernel');
    expect(cancel()!.disabled).toBe(false);
  });

  it('shows the psql error of a failed job', async () => {
    const error = 'ERROR:  column "nope" does not exist\nLINE 1: SELECT nope';
    await rendered({ ...RUNNING, state: 'failed', error, pid: null });
    expect(output.node.querySelector('.jp-PgJob-error')?.textContent).toBe(
      error
    );
    expect(cancel()).toBeNull();
  });

  it('falls back to the HTML for data it cannot read', async () => {
    await rendered({ state: 'running' });
    expect(output.node.innerHTML).toContain('<b>fallback</b>');
  });
});
