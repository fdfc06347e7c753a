/**
 * Tab completion in `%%pg` cells and `%pg` lines, asked over pgmagic's comm.
 *
 * The kernel's own completer answers only between cells; the comm is served
 * on a kernel subshell (JupyterLab 4.4+, ipykernel 7+), so this provider
 * answers while a cell runs too. Both use the same engine on the kernel side
 * (`pgmagic.frontend.complete.complete_code`): when both answer, the
 * completer's reconciliator keeps one of each text, ours first by rank.
 */

import type {
  CompletionHandler,
  ICompletionContext,
  ICompletionProvider
} from '@jupyterlab/completer';
import type { Widget } from '@lumino/widgets';

import type { KernelFeed } from './feed';
import type { ICompletions } from './protocol';

export const PROVIDER_ID = 'pgmagic:sql';
/** Above the kernel provider (550), so our order wins in the merged list. */
export const PROVIDER_RANK = 700;

/** A `%pg` line, plain or assigned (`rows = %pg SELECT ...`). */
const PG_LINE = /^\s*(?:[A-Za-z_]\w*\s*=\s*)?%pg\b/m;
/** A `%%pg` cell: the magic on its first line. */
const PG_CELL = /^\s*%%pg\b/;

/** Whether pgmagic may have something to complete in a cell's code. */
export function isPgCode(code: string): boolean {
  return PG_CELL.test(code) || PG_LINE.test(code);
}

/** Whether a cell's code is a `%%pg` cell: SQL only, no Python to complete. */
export function isPgCell(code: string): boolean {
  return PG_CELL.test(code);
}

/**
 * Keep `provider` (the kernel's own) out of the cells `served` says this
 * provider answers alone.
 *
 * In a `%%pg` cell both ask the same engine on the kernel side, so the
 * kernel's answer adds nothing; but its request waits behind a running cell,
 * and the completer shows no list until every provider has answered or its
 * timeout (1 s by default) has passed. The manager has no public way to make
 * one provider step aside per cell, hence the wrapped method.
 */
export function stepAside(
  provider: ICompletionProvider,
  served: (context: ICompletionContext) => boolean
): void {
  const isApplicable = provider.isApplicable.bind(provider);
  provider.isApplicable = async context =>
    !served(context) && (await isApplicable(context));
}

/** The completer's reply for the kernel's: documentation is the detail. */
export function toItemsReply(
  reply: ICompletions | null,
  offset: number
): CompletionHandler.ICompletionItemsReply {
  if (reply === null) {
    return { start: offset, end: offset, items: [] };
  }
  return {
    start: reply.start,
    end: reply.end,
    items: reply.items.map(item => ({
      label: item.label,
      type: item.type,
      ...(item.detail ? { documentation: item.detail } : {})
    }))
  };
}

function sourceOf(context: ICompletionContext): string {
  return context.editor?.model.sharedModel.getSource() ?? '';
}

export class PgCompletionProvider implements ICompletionProvider {
  /**
   * @param feedFor - The feed of a widget's kernel, or null where there is
   *   none (not a notebook, no kernel, a connection that cannot carry comms).
   */
  constructor(
    private readonly feedFor: (widget: Widget) => KernelFeed | null
  ) {}

  readonly identifier = PROVIDER_ID;
  readonly rank = PROVIDER_RANK;
  readonly renderer = null;

  async isApplicable(context: ICompletionContext): Promise<boolean> {
    return isPgCode(sourceOf(context)) && this.feedFor(context.widget) !== null;
  }

  /** Whether this provider alone answers in `context`: a `%%pg` cell of a
   * kernel whose pgmagic comm is attached. */
  servesAlone(context: ICompletionContext): boolean {
    return (
      isPgCell(sourceOf(context)) &&
      this.feedFor(context.widget)?.status === 'attached'
    );
  }

  async fetch(
    request: CompletionHandler.IRequest,
    context: ICompletionContext
  ): Promise<CompletionHandler.ICompletionItemsReply> {
    const feed = this.feedFor(context.widget);
    // The feed answers null at once while pgmagic is not loaded.
    const reply = feed
      ? await feed.complete(request.text, request.offset)
      : null;
    return toItemsReply(reply, request.offset);
  }
}
