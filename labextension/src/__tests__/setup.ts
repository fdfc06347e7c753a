// jsdom has no DragEvent, and @lumino/dragdrop (loaded with @lumino/widgets)
// subclasses it when imported. The tests never drag anything.
if (typeof globalThis.DragEvent === 'undefined') {
  globalThis.DragEvent = class DragEvent extends MouseEvent {
    readonly dataTransfer: DataTransfer | null = null;
  };
}
