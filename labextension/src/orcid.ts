/**
 * ORCID iDs (https://support.orcid.org/hc/en-us/articles/360006897674): 16 characters in four
 * groups, the last one a check character computed with ISO 7064 MOD 11-2 over the first 15
 * digits ('X' stands for 10). No JupyterLab imports.
 */

const BARE_ORCID = /^\d{4}-\d{4}-\d{4}-\d{3}[\dX]$/;
const ORCID_URL_PREFIX = /^(https?:\/\/)?(www\.)?orcid\.org\//i;

/** The check character of 15 digits, by ISO 7064 MOD 11-2. */
export function orcidCheckCharacter(digits: string): string {
  if (!/^\d{15}$/.test(digits)) {
    throw new Error(`expected 15 digits, got ${JSON.stringify(digits)}`);
  }
  let total = 0;
  for (const digit of digits) {
    total = (total + Number(digit)) * 2;
  }
  const result = (12 - (total % 11)) % 11;
  return result === 10 ? 'X' : String(result);
}

/**
 * The bare form of what a person typed: spaces trimmed, an `https://orcid.org/` prefix
 * dropped, a lowercase check 'x' made uppercase. The result is not checked.
 */
export function normalizeOrcid(text: string): string {
  return text.trim().replace(ORCID_URL_PREFIX, '').toUpperCase();
}

/**
 * What is wrong with an ORCID iD as typed, or null when it is fine or empty (the iD is
 * optional). The format is checked first, then the check character.
 */
export function orcidProblem(text: string): string | null {
  const orcid = normalizeOrcid(text);
  if (orcid === '') {
    return null;
  }
  if (!BARE_ORCID.test(orcid)) {
    return 'An ORCID iD has 16 digits in groups of four, like 0000-0002-1825-0097';
  }
  const digits = orcid.replace(/-/g, '');
  const expected = orcidCheckCharacter(digits.slice(0, 15));
  if (digits[15] !== expected) {
    return `${orcid} is not a valid ORCID iD: its last character should be ${expected} (a typo?)`;
  }
  return null;
}
