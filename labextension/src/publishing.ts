/**
 * The publish flow's pure logic: what its first step shows and when it must ask for a run.
 * No JupyterLab imports.
 */

import { OutputState, PublishMode } from './api';

/** A size in bytes as people read it: `812 B`, `4.1 kB`, `12.0 MB` (powers of 1000). */
export function formatBytes(bytes: number): string {
  if (bytes < 1000) {
    return `${bytes} B`;
  }
  const units = ['kB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = -1;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

/** Why the notebook should be run from top to bottom and saved before it is published, or
 * null when its stored outputs can be the reference of its check: the server's `message` on
 * the saved file's outputs, else (an open notebook with unsaved changes is published as
 * saved) that its outputs may not be those of its cells. */
export function runFirstReason(state: OutputState, message: string, dirty: boolean): string | null {
  if (state !== 'current') {
    return message;
  }
  return dirty
    ? 'The open notebook has unsaved changes: what is published is the saved file, whose outputs may not be those of its cells.'
    : null;
}

/** How each mode is offered to the author; `id` is the related compendium. */
export function modeLabel(mode: PublishMode, id: string | null): string {
  switch (mode) {
    case 'new':
      return 'A new compendium';
    case 'new_version':
      return `A new version of your compendium ${id ?? ''} (it stays as it is; the versions are linked)`;
    case 'derived':
      return `A new compendium derived from ${id ?? 'the launched one'} (the derivation is recorded)`;
  }
}
