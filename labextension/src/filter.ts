/**
 * The side panel's channel and text filters.
 *
 * The same filter travels to the kernel with an export request, and the
 * kernel applies it with `pgmagic.live.log.matches`: the two must agree, or
 * the exported DataFrame would not hold the rows the panel shows.
 */

import type { FeedItem } from './protocol';

export interface IFeedFilter {
  /** Exact channel name; null shows every channel. */
  channel: string | null;
  /** Case-insensitive substring of channel, payload or pid; null matches all. */
  text: string | null;
}

/** The filter as typed: an empty select or blank text means "no filter". */
export function filterFromInputs(channel: string, text: string): IFeedFilter {
  return { channel: channel || null, text: text.trim() || null };
}

export function matchesFilter(item: FeedItem, filter: IFeedFilter): boolean {
  const needle = (filter.text ?? '').toLowerCase();
  if (item.kind === 'gap') {
    // Gaps concern every channel; hide them only for a text mismatch.
    return item.message.toLowerCase().includes(needle);
  }
  if (filter.channel !== null && channelLabel(item) !== filter.channel) {
    return false;
  }
  return (
    item.channel.toLowerCase().includes(needle) ||
    item.payload.toLowerCase().includes(needle) ||
    String(item.pid).includes(needle)
  );
}

/**
 * A notification's channel as the panel's header lists it: `two: away` for
 * another connection's channel `away`.
 */
export function channelLabel(item: {
  channel: string;
  connection: string;
}): string {
  return item.connection ? `${item.connection}: ${item.channel}` : item.channel;
}
