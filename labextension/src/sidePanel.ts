/**
 * The "PostgreSQL" side panel: two tabs, Notifications (the LISTEN/NOTIFY
 * feed) and Schema, over the same kernel comm.
 */

import { BoxPanel, Widget } from '@lumino/widgets';

import { button } from './dom';
import { FeedPanel, IFeedSource } from './panel';
import { ISchemaActions, SchemaView } from './schemaView';

const CLASS = 'jp-PgPanel';

export type PanelTab = 'notifications' | 'schema';

export class PgSidePanel extends BoxPanel {
  constructor(actions: ISchemaActions) {
    super({ direction: 'top-to-bottom', spacing: 0 });
    this.addClass(CLASS);
    this.feedPanel = new FeedPanel();
    this.schemaView = new SchemaView(actions);
    const tabs = new Widget();
    tabs.addClass(`${CLASS}-tabs`);
    tabs.node.setAttribute('role', 'tablist');
    for (const [tab, label] of [
      ['notifications', 'Notifications'],
      ['schema', 'Schema']
    ] as const) {
      const node = button(`${CLASS}-tab`, label);
      node.setAttribute('role', 'tab');
      node.addEventListener('click', () => this.select(tab));
      this._tabs.set(tab, node);
      tabs.node.append(node);
    }
    this.addWidget(tabs);
    this.addWidget(this.feedPanel);
    this.addWidget(this.schemaView);
    BoxPanel.setStretch(tabs, 0);
    BoxPanel.setStretch(this.feedPanel, 1);
    BoxPanel.setStretch(this.schemaView, 1);
    this.select('notifications');
  }

  readonly feedPanel: FeedPanel;
  readonly schemaView: SchemaView;

  /** Show one tab; the other is hidden (and renders nothing meanwhile). */
  select(tab: PanelTab): void {
    this.feedPanel.setHidden(tab !== 'notifications');
    this.schemaView.setHidden(tab !== 'schema');
    for (const [name, node] of this._tabs) {
      node.setAttribute('aria-selected', String(name === tab));
    }
  }

  /** Follow the active notebook's kernel in both tabs. */
  setSource(source: IFeedSource | null): void {
    this.feedPanel.setSource(source);
    this.schemaView.setFeed(source?.feed ?? null);
  }

  private _tabs = new Map<PanelTab, HTMLButtonElement>();
}
