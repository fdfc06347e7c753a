import type { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { Widget } from '@lumino/widgets';
import { afterEach, describe, expect, it } from 'vitest';

import {
  descendants,
  hoverText,
  IPlanNode,
  parsePlanView,
  PLAN_MIME,
  PlanOutput
} from '../planView';

function node(depth: number, title: string, extra: Partial<IPlanNode> = {}) {
  return {
    depth,
    title,
    subplan: '',
    details: [],
    markers: [],
    hot: false,
    misestimated: false,
    cells: ['1 ms', '10%'],
    hover: { 'Node Type': title, 'Actual Rows': 3 },
    ...extra
  };
}

/** A bundle as `Plan._repr_mimebundle_` makes it. */
const DATA = {
  plan: { Plan: { 'Node Type': 'Hash Join' } },
  view: {
    columns: ['node', 'self', '%'],
    nodes: [
      node(0, 'Hash Join', { details: ['Hash Cond: (o.c = c.id)'] }),
      node(1, 'Seq Scan on public.orders o', {
        hot: true,
        markers: ['◀ slow: 90% of the time']
      }),
      node(1, 'Hash'),
      node(2, 'Seq Scan on public.customers c', { misestimated: true })
    ],
    summary: ['Planning: 0.1 ms · Execution: 2.0 ms']
  }
};

function model(data: unknown): IRenderMime.IMimeModel {
  return {
    trusted: false,
    data: { [PLAN_MIME]: data, 'text/html': '<b>fallback</b>' },
    metadata: {},
    setData: () => undefined
  } as unknown as IRenderMime.IMimeModel;
}

describe('parsePlanView', () => {
  it('reads the view of a plan bundle', () => {
    const view = parsePlanView(DATA);
    expect(view?.nodes.map(n => n.depth)).toEqual([0, 1, 1, 2]);
    expect(view?.summary).toEqual(DATA.view.summary);
  });

  it.each([
    ['no view', { plan: {} }],
    [
      'cells that do not fit the columns',
      {
        view: { ...DATA.view, nodes: [node(0, 'x', { cells: ['1'] })] }
      }
    ],
    ['no nodes', { view: { ...DATA.view, nodes: [] } }],
    [
      'a node without a title',
      {
        view: { ...DATA.view, nodes: [{ ...node(0, 'x'), title: 3 }] }
      }
    ]
  ])('refuses %s', (_name, data) => {
    expect(parsePlanView(data)).toBeNull();
  });
});

describe('tree helpers', () => {
  const nodes = parsePlanView(DATA)!.nodes;

  it('finds what folding a node hides', () => {
    expect(descendants(nodes, 0)).toEqual([1, 2, 3]);
    expect(descendants(nodes, 1)).toEqual([]);
    expect(descendants(nodes, 2)).toEqual([3]);
  });

  it('shows the server fields on hover', () => {
    expect(hoverText(nodes[0])).toBe('Node Type: Hash Join\nActual Rows: 3');
  });
});

describe('PlanOutput', () => {
  let output: PlanOutput;
  let fallbacks = 0;

  afterEach(() => output.dispose());

  async function rendered(data: unknown): Promise<PlanOutput> {
    fallbacks = 0;
    output = new PlanOutput(() => {
      fallbacks += 1;
      const html = new Widget();
      return {
        ...html,
        node: html.node,
        renderModel: async (m: IRenderMime.IMimeModel) => {
          html.node.innerHTML = m.data['text/html'] as string;
        }
      } as unknown as IRenderMime.IRenderer;
    });
    Widget.attach(output, document.body);
    await output.renderModel(model(data));
    return output;
  }

  const titles = () =>
    [...output.node.querySelectorAll('.jp-PgPlan-title')].map(
      n => n.textContent
    );

  it('draws the rows, lit cells, markers, details and summary', async () => {
    await rendered(DATA);
    expect(titles()).toEqual(DATA.view.nodes.map(n => n.title));
    const rows = [...output.node.querySelectorAll('tbody tr')];
    expect(rows[1].classList.contains('jp-PgPlan-hot')).toBe(true);
    expect(rows[1].querySelectorAll('.jp-PgPlan-slow')).toHaveLength(2);
    expect(rows[3].querySelectorAll('.jp-PgPlan-off')).toHaveLength(0);
    expect(rows[3].classList.contains('jp-PgPlan-misestimated')).toBe(true);
    expect(rows[1].textContent).toContain('◀ slow: 90% of the time');
    expect(rows[0].textContent).toContain('Hash Cond: (o.c = c.id)');
    expect((rows[0].firstChild as HTMLElement).title).toContain(
      'Actual Rows: 3'
    );
    expect(output.node.querySelector('.jp-PgPlan-summary')?.textContent).toBe(
      DATA.view.summary[0]
    );
  });

  it('folds and unfolds a branch with its caret', async () => {
    await rendered(DATA);
    const caret = () =>
      output.node.querySelectorAll<HTMLButtonElement>('.jp-PgPlan-caret');
    // The root and the Hash have children; the scans do not.
    expect(caret()).toHaveLength(2);
    caret()[1].click();
    expect(titles()).toEqual(DATA.view.nodes.slice(0, 3).map(n => n.title));
    caret()[0].click();
    expect(titles()).toEqual(['Hash Join']);
    caret()[0].click();
    // The Hash stays folded inside the unfolded root.
    expect(titles()).toEqual(DATA.view.nodes.slice(0, 3).map(n => n.title));
  });

  it('falls back to the HTML for a bundle it does not know', async () => {
    await rendered({ plan: {} });
    expect(fallbacks).toBe(1);
    expect(output.node.textContent).toBe('fallback');
  });
});
