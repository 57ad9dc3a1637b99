/**
 * A notebook opened in a session whose kernel describes itself otherwise than the file does
 * (another display name, Python version or language details: always so for a compendium
 * launched in its runtime image) is no edited notebook.
 *
 * JupyterLab writes the connected kernel's `kernelspec` and `language_info` into the notebook's
 * metadata (NotebookPanel's `_updateSpec` and `_updateLanguage`), and every metadata change
 * marks the notebook unsaved (●) before the reader did anything. Here such a change of a clean
 * notebook to the same kernel or language leaves it clean: the new metadata is saved with the
 * reader's first real edit. A change to another kernel (the reader chose one) stays unsaved.
 */

import type { IMapChange } from '@jupyter/ydoc';
import type { INotebookModel } from '@jupyterlab/notebook';

/** The metadata keys JupyterLab keeps in step with the kernel. */
const KERNEL_KEYS = new Set(['kernelspec', 'language_info']);

function nameOf(value: unknown): unknown {
  return value !== null && typeof value === 'object' ? (value as { name?: unknown }).name : null;
}

/** Whether a metadata change only brings the kernel's description of itself up to date:
 * `kernelspec` or `language_info` changed, naming the same kernel or language as before. */
export function isKernelSync(change: IMapChange): boolean {
  if (!KERNEL_KEYS.has(change.key) || change.type !== 'change') {
    return false;
  }
  const before = nameOf(change.oldValue);
  return typeof before === 'string' && before !== '' && before === nameOf(change.newValue);
}

/** Keep `model` clean across kernel syncs (see the module's comment). */
export function keepCleanOnKernelSync(model: INotebookModel): void {
  model.metadataChanged.connect((_, change) => {
    // the model marks itself dirty right after this signal, in the same task
    if (!model.dirty && isKernelSync(change)) {
      queueMicrotask(() => {
        if (!model.isDisposed) {
          model.dirty = false;
        }
      });
    }
  });
}
