import { describe, expect, it } from 'vitest';

import { formatBytes, modeLabel, runFirstReason } from '../src/publishing';

describe('formatBytes', () => {
  it('reads as people read sizes', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(999)).toBe('999 B');
    expect(formatBytes(4100)).toBe('4.1 kB');
    expect(formatBytes(12_000_000)).toBe('12.0 MB');
    expect(formatBytes(3e15)).toBe('3000.0 TB');
  });
});

describe('runFirstReason', () => {
  it('asks for a run when the outputs cannot be the reference', () => {
    expect(runFirstReason('current', 'fine', false)).toBeNull();
    expect(runFirstReason('missing', 'no stored outputs', false)).toBe('no stored outputs');
    expect(runFirstReason('stale', 'out of order', false)).toBe('out of order');
  });

  it('asks for a run when the open notebook has unsaved changes', () => {
    expect(runFirstReason('current', 'fine', true)).toMatch(/unsaved changes/);
    // what the saved file lacks says more
    expect(runFirstReason('missing', 'no stored outputs', true)).toBe('no stored outputs');
  });
});

describe('modeLabel', () => {
  it('names the related compendium', () => {
    expect(modeLabel('new', null)).toBe('A new compendium');
    expect(modeLabel('new_version', 'abc123')).toMatch(/new version of your compendium abc123/);
    expect(modeLabel('derived', 'abc123')).toMatch(/derived from abc123/);
  });
});
