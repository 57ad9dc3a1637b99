import { describe, expect, it } from 'vitest';

import {
  emptyCreator,
  formFromO2r,
  joinWords,
  MetadataForm,
  missingForPublishing,
  o2rFromForm,
  validateMetadata
} from '../src/metadata';

const O2R = {
  erc_id: '5d1e8f3a-6b2c-4f0e-9a7d-3c1b2e4f5a60',
  title: 'Sine waves',
  description: 'A minimal ERC.',
  creators: [
    { name: 'Josiah Carberry', orcid: '0000-0002-1825-0097', affiliation: 'Brown University' },
    { name: 'Ada', orcid: null, affiliation: null }
  ],
  keywords: ['waves'],
  license: {
    code: 'Apache-2.0',
    data: { 'data/a.csv': 'ODbL-1.0' },
    text: 'CC-BY-4.0',
    uibindings: 'CC0-1.0'
  },
  mainfile: 'main.ipynb'
};

function form(changes: Partial<MetadataForm> = {}): MetadataForm {
  return { ...formFromO2r(O2R), ...changes };
}

describe('formFromO2r', () => {
  it('reads the edited fields', () => {
    const read = formFromO2r(O2R);
    expect(read.title).toBe('Sine waves');
    expect(read.description).toBe('A minimal ERC.');
    expect(read.creators).toEqual([
      { name: 'Josiah Carberry', orcid: '0000-0002-1825-0097', affiliation: 'Brown University' },
      { name: 'Ada', orcid: '', affiliation: '' }
    ]);
    expect(read.license).toEqual({ code: 'Apache-2.0', data: '', text: 'CC-BY-4.0', metadata: '' });
    expect(read.perFileLicenses).toEqual({ data: { 'data/a.csv': 'ODbL-1.0' } });
  });

  it('reads missing and malformed fields as empty', () => {
    const read = formFromO2r({ title: 3, creators: 'nobody', license: [] });
    expect(read.title).toBe('');
    expect(read.creators).toEqual([]);
    expect(read.license.code).toBe('');
    expect(formFromO2r({ creators: [null, 'x', { name: 'B' }] }).creators).toEqual([
      { name: 'B', orcid: '', affiliation: '' }
    ]);
  });
});

describe('validateMetadata', () => {
  it('accepts the metadata as read', () => {
    expect(validateMetadata(form())).toEqual(new Map());
  });

  it('requires a title', () => {
    expect(validateMetadata(form({ title: '  ' })).get('title')).toBe('A title is required');
    expect(validateMetadata(form({ title: 'x'.repeat(1001) })).get('title')).toMatch(/too long/);
  });

  it('checks each author: name required, ORCID format and check digit', () => {
    const errors = validateMetadata(
      form({
        creators: [
          { name: '', orcid: '0000-0002-1825-0097', affiliation: '' },
          { name: 'B', orcid: '0000-0002-1825-0098', affiliation: '' },
          { name: 'C', orcid: '1234', affiliation: 'x'.repeat(1001) }
        ]
      })
    );
    expect(errors.get('creators.0.name')).toBe('Each author needs a name');
    expect(errors.get('creators.1.orcid')).toMatch(/should be 7/);
    expect(errors.get('creators.2.orcid')).toMatch(/16 digits/);
    expect(errors.get('creators.2.affiliation')).toMatch(/too long/);
    expect(errors.size).toBe(4);
  });

  it('ignores empty author rows', () => {
    expect(
      validateMetadata(
        form({ creators: [emptyCreator(), { name: ' ', orcid: '', affiliation: '' }] })
      )
    ).toEqual(new Map());
  });

  it('checks license identifiers', () => {
    const errors = validateMetadata(
      form({
        license: {
          code: 'MIT OR (Apache-2.0 WITH LLVM-exception)',
          data: 'my license!',
          text: '',
          metadata: 'CC0-1.0'
        }
      })
    );
    expect([...errors.keys()]).toEqual(['license.data']);
    expect(errors.get('license.data')).toMatch(/SPDX/);
  });

  it('limits the description', () => {
    expect(validateMetadata(form({ description: 'x'.repeat(100001) })).get('description')).toMatch(
      /too long/
    );
  });
});

describe('o2rFromForm', () => {
  it('gives back the metadata unchanged when nothing was edited', () => {
    expect(o2rFromForm(formFromO2r(O2R), O2R)).toEqual(O2R);
  });

  it('writes the edits and keeps the other fields', () => {
    const edited = form({
      title: '  New title ',
      description: '   ',
      creators: [
        { name: ' Josiah ', orcid: 'https://orcid.org/0000-0002-1694-233x', affiliation: ' ' },
        emptyCreator()
      ],
      license: { code: 'MIT', data: '', text: '', metadata: 'CC0-1.0' }
    });
    const o2r = o2rFromForm(edited, O2R);
    expect(o2r.title).toBe('New title');
    expect(o2r.description).toBeNull();
    expect(o2r.creators).toEqual([
      { name: 'Josiah', orcid: '0000-0002-1694-233X', affiliation: null }
    ]);
    // per-file data licenses are kept, an emptied text license is removed, uibindings stays
    expect(o2r.license).toEqual({
      code: 'MIT',
      data: { 'data/a.csv': 'ODbL-1.0' },
      metadata: 'CC0-1.0',
      uibindings: 'CC0-1.0'
    });
    expect(o2r.keywords).toEqual(['waves']);
    expect(o2r.mainfile).toBe('main.ipynb');
    // the base is not changed
    expect(O2R.title).toBe('Sine waves');
  });

  it('replaces per-file licenses by an identifier typed for the kind', () => {
    const edited = form();
    edited.license.data = 'CC-BY-4.0';
    expect((o2rFromForm(edited, O2R).license as { data: unknown }).data).toBe('CC-BY-4.0');
  });
});

describe('what publishing needs', () => {
  const generated = {
    title: 'Doubling',
    creators: [],
    license: { code: 'NOASSERTION', data: 'NOASSERTION', text: 'NOASSERTION' }
  };

  it('shows licences nobody chose as empty', () => {
    expect(formFromO2r(generated).license).toEqual({ code: '', data: '', text: '', metadata: '' });
  });

  it('names each missing thing', () => {
    const form = formFromO2r(generated);
    expect(missingForPublishing(form)).toEqual([
      'at least one author',
      'the code, data and text licences'
    ]);
    form.creators = [{ name: 'Ada', orcid: '', affiliation: '' }];
    form.license.code = 'MIT';
    form.license.text = 'CC-BY-4.0';
    expect(missingForPublishing(form)).toEqual(['the data licence']);
    form.perFileLicenses.data = { 'a.csv': 'ODbL-1.0' };
    expect(missingForPublishing(form)).toEqual([]);
  });

  it('marks the fields only when publishing', () => {
    const form = formFromO2r(generated);
    expect(validateMetadata(form).size).toBe(0);
    const errors = validateMetadata(form, true);
    expect(errors.get('creators.0.name')).toMatch(/At least one author/);
    expect([...errors.keys()].filter(key => key.startsWith('license.'))).toEqual([
      'license.code',
      'license.data',
      'license.text'
    ]);
  });

  it('joins words', () => {
    expect(joinWords(['a'])).toBe('a');
    expect(joinWords(['a', 'b', 'c'])).toBe('a, b and c');
  });
});
