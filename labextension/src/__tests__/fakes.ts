/**
 * Stand-ins for a JupyterLab kernel connection and its comms: only the
 * members KernelFeed uses, recording what it sends.
 */

import type { Kernel, KernelMessage } from '@jupyterlab/services';
import type { JSONObject } from '@lumino/coreutils';
import { Signal } from '@lumino/signaling';

import { COMM_TARGET, IFeedState, INotificationItem } from '../protocol';

export class FakeComm {
  constructor(
    readonly commId: string,
    readonly target = COMM_TARGET
  ) {}

  /** What the frontend sent, oldest first. */
  readonly sent: JSONObject[] = [];
  /** The data of the frontend's `comm_open`, or null if it never opened it. */
  opened: JSONObject | null = null;
  isDisposed = false;
  onMsg: (msg: KernelMessage.ICommMsgMsg) => void = () => undefined;
  onClose: (msg: KernelMessage.ICommCloseMsg) => void = () => undefined;

  open(data: JSONObject): void {
    this.opened = data;
  }

  send(data: JSONObject): void {
    this.sent.push(data);
  }

  /** Closed by the frontend. */
  close(): void {
    this.isDisposed = true;
  }

  dispose(): void {
    this.isDisposed = true;
  }

  /** A `comm_msg` from the kernel. */
  receive(data: unknown): void {
    this.onMsg({ content: { comm_id: this.commId, data } } as never);
  }

  /** A `comm_close` from the kernel. */
  closeFromKernel(): void {
    this.onClose({ content: { comm_id: this.commId, data: {} } } as never);
  }

  asComm(): Kernel.IComm {
    return this as unknown as Kernel.IComm;
  }
}

export class FakeKernel {
  constructor(readonly id = 'kernel-1') {}

  handleComms = true;
  isDisposed = false;
  readonly statusChanged = new Signal<this, Kernel.Status>(this);
  readonly connectionStatusChanged = new Signal<this, Kernel.ConnectionStatus>(
    this
  );
  readonly iopubMessage = new Signal<this, KernelMessage.IIOPubMessage>(this);
  readonly disposed = new Signal<this, void>(this);
  /** Comms the kernel holds, as its `comm_info_reply` lists them. */
  commInfo: Record<string, { target_name: string }> = {};
  commInfoStatus: 'ok' | 'error' = 'ok';
  /** The target name of each `comm_info_request`. */
  readonly commInfoRequests: (string | undefined)[] = [];
  /** Comm ids this connection already has open. */
  readonly openHere = new Set<string>();
  /** Comms the frontend created: to open them, or to re-attach by id. */
  readonly created: FakeComm[] = [];

  async requestCommInfo(content: { target_name?: string }): Promise<unknown> {
    this.commInfoRequests.push(content.target_name);
    return {
      content: { status: this.commInfoStatus, comms: { ...this.commInfo } }
    };
  }

  hasComm(commId: string): boolean {
    return this.openHere.has(commId);
  }

  createComm(
    target: string,
    commId = `new-${this.created.length + 1}`
  ): Kernel.IComm {
    const comm = new FakeComm(commId, target);
    this.created.push(comm);
    return comm.asComm();
  }

  /** The comm the frontend created last. */
  get lastComm(): FakeComm {
    return this.created[this.created.length - 1];
  }

  /** An iopub status message caused by a request of type `parent`. */
  emitStatus(state: 'busy' | 'idle', parent: string): void {
    this.iopubMessage.emit({
      header: { msg_type: 'status' },
      parent_header: { msg_type: parent },
      content: { execution_state: state }
    } as never);
  }

  asConnection(): Kernel.IKernelConnection {
    return this as unknown as Kernel.IKernelConnection;
  }
}

export function state(overrides: Partial<IFeedState> = {}): IFeedState {
  return {
    listener: 'listening',
    channels: ['orders'],
    count: 0,
    rate: 0,
    dropped: 0,
    ...overrides
  };
}

export function note(seq: number, payload = `n${seq}`): INotificationItem {
  return {
    seq,
    kind: 'notification',
    time: 1700000000 + seq,
    channel: 'orders',
    pid: 100,
    payload,
    connection: ''
  };
}

/**
 * A JSON payload whose values a parse and re-serialize would change: a 64-bit
 * id past 2^53, a trailing zero, a number beyond a double, an escaped NUL, a
 * duplicate key, a negative zero, an integer past a double's precision.
 */
export const LOSSY =
  '{"id": 9007199254740993, "amount": 1.10, "n": 1e400, "s": "é\\u0000", ' +
  '"s": "second", "neg": -0.0, "big": [123456789012345678901234567890, 1E+2]}';

/** Let pending promise callbacks (comm discovery) run. */
export function settle(): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, 0));
}
