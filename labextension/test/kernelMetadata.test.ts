import { describe, expect, it } from 'vitest';

import { isKernelSync } from '../src/kernelMetadata';

const spec = (name: string, display_name: string) => ({ name, display_name, language: 'python' });

describe('isKernelSync', () => {
  it('is the same kernel or language described anew', () => {
    expect(
      isKernelSync({
        key: 'kernelspec',
        type: 'change',
        oldValue: spec('python3', 'Python 3'),
        newValue: spec('python3', 'Python 3 (ipykernel)')
      })
    ).toBe(true);
    expect(
      isKernelSync({
        key: 'language_info',
        type: 'change',
        oldValue: { name: 'python', version: '3.11.2' },
        newValue: { name: 'python', version: '3.11.7' }
      })
    ).toBe(true);
  });

  it('is not a change to another kernel, nor any other metadata', () => {
    expect(
      isKernelSync({
        key: 'kernelspec',
        type: 'change',
        oldValue: spec('python3', 'Python 3'),
        newValue: spec('ir', 'R')
      })
    ).toBe(false);
    expect(
      isKernelSync({ key: 'kernelspec', type: 'add', newValue: spec('python3', 'Python 3') })
    ).toBe(false);
    expect(
      isKernelSync({
        key: 'kernelspec',
        type: 'change',
        oldValue: spec('', ''),
        newValue: spec('', 'x')
      })
    ).toBe(false);
    expect(
      isKernelSync({
        key: 'authors',
        type: 'change',
        oldValue: { name: 'a' },
        newValue: { name: 'a' }
      })
    ).toBe(false);
  });
});
