import { describe, expect, it } from 'vitest';

import { normalizeOrcid, orcidCheckCharacter, orcidProblem } from '../src/orcid';

describe('orcidCheckCharacter', () => {
  it('computes ISO 7064 MOD 11-2', () => {
    expect(orcidCheckCharacter('000000021825009')).toBe('7');
    expect(orcidCheckCharacter('000000015109370')).toBe('0');
    // the check value 10 is written X
    expect(orcidCheckCharacter('000000021694233')).toBe('X');
  });

  it('refuses anything but 15 digits', () => {
    expect(() => orcidCheckCharacter('00000002182500')).toThrow();
    expect(() => orcidCheckCharacter('00000002182500a')).toThrow();
  });
});

describe('orcidProblem', () => {
  it('accepts valid iDs, with X, URL prefix and lowercase x', () => {
    expect(orcidProblem('0000-0002-1825-0097')).toBeNull();
    expect(orcidProblem('0000-0002-1694-233X')).toBeNull();
    expect(orcidProblem('0000-0002-1694-233x')).toBeNull();
    expect(orcidProblem(' https://orcid.org/0000-0002-1825-0097 ')).toBeNull();
  });

  it('accepts an empty iD (it is optional)', () => {
    expect(orcidProblem('')).toBeNull();
    expect(orcidProblem('   ')).toBeNull();
  });

  it('names the format when the shape is wrong', () => {
    for (const text of [
      '0000000218250097',
      '0000-0002-1825-009',
      '0000-0002-1825-00X7',
      'abcd-0002-1825-0097'
    ]) {
      expect(orcidProblem(text)).toMatch(/16 digits in groups of four/);
    }
  });

  it('names the expected check character when it is wrong', () => {
    expect(orcidProblem('0000-0002-1825-0098')).toMatch(/last character should be 7/);
    expect(orcidProblem('0000-0002-1694-2330')).toMatch(/should be X/);
  });
});

describe('normalizeOrcid', () => {
  it('keeps the bare form', () => {
    expect(normalizeOrcid('http://www.orcid.org/0000-0002-1694-233x')).toBe('0000-0002-1694-233X');
    expect(normalizeOrcid('')).toBe('');
  });
});
