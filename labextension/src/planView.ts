/**
 * `%%pg --explain` and `--explain-analyze` in JupyterLab: the plan as a tree
 * whose branches fold, with the server's own fields for a node on hover.
 *
 * The kernel sends, beside the static HTML, the same rows and cells as data
 * (`pgmagic.results.planview.view`): nothing is computed here, so the tree
 * reads exactly as the HTML and the text do. Rendered with text nodes only,
 * so it is safe in an untrusted notebook.
 */

import type { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { Widget } from '@lumino/widgets';

import { button, el } from './dom';

/** The plan's type in the display bundle (`pgmagic.results.plan.MIME_TYPE`). */
export const PLAN_MIME = 'application/vnd.pgmagic.plan+json';
/** Ahead of the bundle's HTML (JupyterLab ranks HTML at 50). */
export const PLAN_RANK = 40;

const CLASS = 'jp-PgPlan';
/** Cells lit for a node that takes much of the time, or misjudged its rows. */
const HOT_COLUMNS = new Set(['self', '%']);
const MISESTIMATE_COLUMNS = new Set(['misestimate']);

export interface IPlanNode {
  depth: number;
  title: string;
  subplan: string;
  details: string[];
  markers: string[];
  hot: boolean;
  misestimated: boolean;
  cells: string[];
  hover: Record<string, unknown>;
}

export interface IPlanView {
  columns: string[];
  nodes: IPlanNode[];
  summary: string[];
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isStrings(value: unknown): value is string[] {
  return Array.isArray(value) && value.every(v => typeof v === 'string');
}

function parseNode(value: unknown, width: number): IPlanNode | null {
  if (
    !isRecord(value) ||
    typeof value.depth !== 'number' ||
    typeof value.title !== 'string' ||
    typeof value.subplan !== 'string' ||
    !isStrings(value.details) ||
    !isStrings(value.markers) ||
    typeof value.hot !== 'boolean' ||
    typeof value.misestimated !== 'boolean' ||
    !isStrings(value.cells) ||
    value.cells.length !== width ||
    !isRecord(value.hover)
  ) {
    return null;
  }
  return {
    depth: value.depth,
    title: value.title,
    subplan: value.subplan,
    details: value.details,
    markers: value.markers,
    hot: value.hot,
    misestimated: value.misestimated,
    cells: value.cells,
    hover: value.hover
  };
}

/**
 * The `view` of a plan bundle's data, or null when it is not one this
 * renderer knows (an older or newer pgmagic): the bundle's HTML shows then.
 */
export function parsePlanView(data: unknown): IPlanView | null {
  const view = isRecord(data) ? data.view : null;
  if (
    !isRecord(view) ||
    !isStrings(view.columns) ||
    view.columns.length < 1 ||
    !Array.isArray(view.nodes) ||
    !isStrings(view.summary)
  ) {
    return null;
  }
  const width = view.columns.length - 1;
  const nodes = view.nodes.map(n => parseNode(n, width));
  if (nodes.length === 0 || nodes.some(n => n === null)) {
    return null;
  }
  return {
    columns: view.columns,
    nodes: nodes as IPlanNode[],
    summary: view.summary
  };
}

/** What hovering a node shows: the server's fields, one per line. */
export function hoverText(node: IPlanNode): string {
  return Object.entries(node.hover)
    .map(([key, value]) => `${key}: ${String(value)}`)
    .join('\n');
}

/** The nodes a folded node hides: those after it, deeper, up to its next peer. */
export function descendants(
  nodes: readonly IPlanNode[],
  index: number
): number[] {
  const hidden: number[] = [];
  for (let i = index + 1; i < nodes.length; i++) {
    if (nodes[i].depth <= nodes[index].depth) {
      break;
    }
    hidden.push(i);
  }
  return hidden;
}

export class PlanOutput extends Widget implements IRenderMime.IRenderer {
  constructor(private readonly _fallback: () => IRenderMime.IRenderer) {
    super();
    this.addClass(CLASS);
  }

  async renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    const view = parsePlanView(model.data[PLAN_MIME]);
    this.node.replaceChildren();
    if (view === null) {
      const fallback = this._fallback();
      await fallback.renderModel(model);
      this.node.append(fallback.node);
      return;
    }
    this._view = view;
    this._folded.clear();
    this._render();
  }

  /** Fold or unfold node `index`'s children. */
  toggle(index: number): void {
    if (this._folded.has(index)) {
      this._folded.delete(index);
    } else {
      this._folded.add(index);
    }
    this._render();
  }

  private _render(): void {
    const view = this._view;
    if (view === null) {
      return;
    }
    const hidden = new Set<number>();
    for (const index of this._folded) {
      descendants(view.nodes, index).forEach(i => hidden.add(i));
    }
    const table = el('table', `${CLASS}-table`);
    const head = el('thead', '');
    const names = el('tr', '');
    view.columns.forEach((name, i) =>
      names.append(
        el('th', i === 0 ? `${CLASS}-nodeHead` : `${CLASS}-num`, name)
      )
    );
    head.append(names);
    const body = el('tbody', '');
    view.nodes.forEach((node, index) => {
      if (!hidden.has(index)) {
        body.append(this._row(view, node, index));
      }
    });
    table.append(head, body);
    const summary = el('div', `${CLASS}-summary`);
    view.summary.forEach(line => summary.append(el('div', '', line)));
    this.node.replaceChildren(table, summary);
  }

  private _row(view: IPlanView, node: IPlanNode, index: number): HTMLElement {
    const row = el('tr', `${CLASS}-row`);
    row.dataset.depth = String(node.depth);
    row.classList.toggle(`${CLASS}-hot`, node.hot);
    row.classList.toggle(`${CLASS}-misestimated`, node.misestimated);
    const tree = el('td', `${CLASS}-node`);
    tree.style.paddingLeft = `${4 + node.depth * 16}px`;
    tree.title = hoverText(node);
    const children = descendants(view.nodes, index).length;
    if (children > 0) {
      const folded = this._folded.has(index);
      const caret = button(`${CLASS}-caret`, folded ? '▸' : '▾');
      caret.title = folded
        ? `Show the ${children} node${children === 1 ? '' : 's'} below`
        : 'Fold the nodes below';
      caret.setAttribute('aria-expanded', String(!folded));
      caret.addEventListener('click', () => this.toggle(index));
      tree.append(caret);
    } else {
      tree.append(el('span', `${CLASS}-leaf`));
    }
    if (node.subplan) {
      tree.append(el('span', `${CLASS}-subplan`, `${node.subplan}: `));
    }
    tree.append(el('b', `${CLASS}-title`, node.title));
    if (node.markers.length > 0) {
      tree.append(el('div', `${CLASS}-markers`, node.markers.join(' ')));
    }
    node.details.forEach(detail =>
      tree.append(el('div', `${CLASS}-detail`, detail))
    );
    row.append(tree);
    node.cells.forEach((text, i) => {
      const column = view.columns[i + 1];
      const cell = el('td', `${CLASS}-num`, text);
      cell.classList.toggle(
        `${CLASS}-slow`,
        node.hot && HOT_COLUMNS.has(column)
      );
      cell.classList.toggle(
        `${CLASS}-off`,
        node.misestimated && MISESTIMATE_COLUMNS.has(column)
      );
      row.append(cell);
    });
    return row;
  }

  private _view: IPlanView | null = null;
  private _folded = new Set<number>();
}

/** Register the renderer on a notebook's rendermime registry. */
export function addPlanRenderer(rendermime: {
  addFactory(factory: IRenderMime.IRendererFactory, rank?: number): void;
  createRenderer(mimeType: string): IRenderMime.IRenderer;
}): void {
  rendermime.addFactory(
    {
      // Text nodes only, no script: an untrusted notebook may show it.
      safe: true,
      mimeTypes: [PLAN_MIME],
      createRenderer: () =>
        new PlanOutput(() => rendermime.createRenderer('text/html'))
    },
    PLAN_RANK
  );
}
