/**
 * The metadata form's model: the o2r fields an author edits (title, description, creators,
 * licenses), read from and written back into the full o2r metadata, and their checks (the
 * rules of services/schemas/metadata_o2r.schema.json, with messages in plain words).
 * No JupyterLab imports.
 */

import { normalizeOrcid, orcidProblem } from './orcid';

/** o2r metadata as the erc API gives it (the value of `metadata.o2r`). */
export type O2rMetadata = { [key: string]: unknown };

export const LICENSE_KINDS = ['code', 'data', 'text', 'metadata'] as const;
export type LicenseKind = (typeof LICENSE_KINDS)[number];

export interface CreatorForm {
  name: string;
  orcid: string;
  affiliation: string;
}

export interface MetadataForm {
  title: string;
  description: string;
  creators: CreatorForm[];
  /** one SPDX identifier (or expression) per kind, '' for none */
  license: Record<LicenseKind, string>;
  /** licenses given per file (erc.yml may map paths to licenses): kept unless replaced */
  perFileLicenses: Partial<Record<LicenseKind, { [path: string]: string }>>;
}

/** Messages by field: `title`, `description`, `creators.<i>.name|orcid|affiliation`,
 * `license.<kind>`. */
export type FieldErrors = Map<string, string>;

export const TITLE_MAX = 1000;
export const DESCRIPTION_MAX = 100000;
export const TEXT_MAX = 1000;

/** SPDX's "no licence was asserted", what a generated erc.yml holds until the author chooses. */
export const LICENSE_NOT_SPECIFIED = 'NOASSERTION';

/** The licences publishing needs (the metadata licence is optional). */
export const REQUIRED_LICENSE_KINDS: readonly LicenseKind[] = ['code', 'data', 'text'];

/** Characters of an SPDX license expression: ids (MIT, CC-BY-4.0, LicenseRef-x), AND, OR,
 * WITH, parentheses, '+'. */
const SPDX_EXPRESSION = /^[A-Za-z0-9][A-Za-z0-9.+\-:() ]*$/;

function text(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

function record(value: unknown): { [key: string]: unknown } | null {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
    ? (value as { [key: string]: unknown })
    : null;
}

/** An empty author row. */
export function emptyCreator(): CreatorForm {
  return { name: '', orcid: '', affiliation: '' };
}

/** The form's fields from o2r metadata (missing or malformed fields are empty). */
export function formFromO2r(o2r: O2rMetadata): MetadataForm {
  const creators = Array.isArray(o2r.creators) ? o2r.creators : [];
  const licenses = record(o2r.license) ?? {};
  const form: MetadataForm = {
    title: text(o2r.title),
    description: text(o2r.description),
    creators: creators
      .map(record)
      .filter((creator): creator is { [key: string]: unknown } => creator !== null)
      .map(creator => ({
        name: text(creator.name),
        orcid: text(creator.orcid),
        affiliation: text(creator.affiliation)
      })),
    license: { code: '', data: '', text: '', metadata: '' },
    perFileLicenses: {}
  };
  for (const kind of LICENSE_KINDS) {
    const value = licenses[kind];
    const perFile = record(value);
    if (typeof value === 'string') {
      // NOASSERTION marks a licence nobody chose yet: the author chooses it
      form.license[kind] = value === LICENSE_NOT_SPECIFIED ? '' : value;
    } else if (perFile !== null) {
      form.perFileLicenses[kind] = Object.fromEntries(
        Object.entries(perFile).map(([path, id]) => [path, text(id)])
      );
    }
  }
  return form;
}

function isBlank(creator: CreatorForm): boolean {
  return !creator.name.trim() && !creator.orcid.trim() && !creator.affiliation.trim();
}

/** `a`, `a and b`, `a, b and c`. */
export function joinWords(words: string[]): string {
  return words.length <= 1
    ? (words[0] ?? '')
    : `${words.slice(0, -1).join(', ')} and ${words[words.length - 1]}`;
}

/** What publishing needs and the form lacks, in words (the server's list, see
 * erchub.extensions.publishing.missing_metadata): at least one author, the code, data and
 * text licences. */
export function missingForPublishing(form: MetadataForm): string[] {
  const missing: string[] = [];
  if (!form.creators.some(creator => creator.name.trim() !== '')) {
    missing.push('at least one author');
  }
  const kinds = REQUIRED_LICENSE_KINDS.filter(
    kind => form.license[kind].trim() === '' && form.perFileLicenses[kind] === undefined
  );
  if (kinds.length > 0) {
    missing.push(`the ${joinWords([...kinds])} licence${kinds.length > 1 ? 's' : ''}`);
  }
  return missing;
}

/** The checks of the form: every problem, by field. Author rows left entirely empty are
 * ignored (they are dropped when saving). `forPublishing` also requires an author and the
 * code, data and text licences. */
export function validateMetadata(form: MetadataForm, forPublishing = false): FieldErrors {
  const errors: FieldErrors = new Map();
  if (forPublishing) {
    if (!form.creators.some(creator => creator.name.trim() !== '')) {
      errors.set('creators.0.name', 'At least one author is required to publish');
    }
    for (const kind of REQUIRED_LICENSE_KINDS) {
      if (form.license[kind].trim() === '' && form.perFileLicenses[kind] === undefined) {
        errors.set(`license.${kind}`, `A ${kind} licence is required to publish`);
      }
    }
  }
  const title = form.title.trim();
  if (title === '') {
    errors.set('title', 'A title is required');
  } else if (form.title.length > TITLE_MAX) {
    errors.set('title', `The title is too long: at most ${TITLE_MAX} characters`);
  }
  if (form.description.length > DESCRIPTION_MAX) {
    errors.set('description', `The description is too long: at most ${DESCRIPTION_MAX} characters`);
  }
  form.creators.forEach((creator, index) => {
    if (isBlank(creator)) {
      return;
    }
    const field = `creators.${index}`;
    if (creator.name.trim() === '') {
      errors.set(`${field}.name`, 'Each author needs a name');
    } else if (creator.name.length > TEXT_MAX) {
      errors.set(`${field}.name`, `The name is too long: at most ${TEXT_MAX} characters`);
    }
    const orcid = orcidProblem(creator.orcid);
    if (orcid !== null) {
      errors.set(`${field}.orcid`, orcid);
    }
    if (creator.affiliation.length > TEXT_MAX) {
      errors.set(
        `${field}.affiliation`,
        `The affiliation is too long: at most ${TEXT_MAX} characters`
      );
    }
  });
  for (const kind of LICENSE_KINDS) {
    const value = form.license[kind].trim();
    if (value !== '' && (!SPDX_EXPRESSION.test(value) || value.length > TEXT_MAX)) {
      errors.set(
        `license.${kind}`,
        'Use an SPDX license identifier such as MIT, Apache-2.0 or CC-BY-4.0'
      );
    }
  }
  return errors;
}

/**
 * The o2r metadata to PUT: `base` (the metadata as read, so the fields the form does not
 * edit are kept) with the form's fields. Empty author rows are dropped, ORCID iDs are sent in
 * their bare form, an empty description or affiliation is null, and a license kind left empty
 * is removed (its per-file licenses are kept when it had some).
 */
export function o2rFromForm(form: MetadataForm, base: O2rMetadata): O2rMetadata {
  const license: { [kind: string]: unknown } = { ...(record(base.license) ?? {}) };
  for (const kind of LICENSE_KINDS) {
    const value = form.license[kind].trim();
    const perFile = form.perFileLicenses[kind];
    if (value !== '') {
      license[kind] = value;
    } else if (perFile !== undefined) {
      license[kind] = perFile;
    } else {
      delete license[kind];
    }
  }
  return {
    ...base,
    title: form.title.trim(),
    description: form.description.trim() || null,
    creators: form.creators
      .filter(creator => !isBlank(creator))
      .map(creator => ({
        name: creator.name.trim(),
        orcid: normalizeOrcid(creator.orcid) || null,
        affiliation: creator.affiliation.trim() || null
      })),
    license
  };
}
