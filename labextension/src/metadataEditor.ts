/**
 * The metadata form (title, authors with ORCID iD and affiliation, description, licenses),
 * used by the ERC panel and by the publish flow. It checks the fields as the author types
 * (messages next to the fields) and again before saving; what the server answers to a save
 * (a 400 naming the field, say) is shown above the Save button.
 */

import { errorMessage } from './api';
import { errorBox, h, replaceChildren, uniqueId } from './dom';
import {
  emptyCreator,
  FieldErrors,
  formFromO2r,
  joinWords,
  LICENSE_KINDS,
  LicenseKind,
  MetadataForm,
  missingForPublishing,
  O2rMetadata,
  o2rFromForm,
  validateMetadata
} from './metadata';

export interface MetadataEditorOptions {
  /** the Save button's label */
  saveLabel: string;
  /** require what publishing needs (an author, the code, data and text licences) */
  forPublishing?: boolean;
  /** save the metadata; a rejection's message is shown */
  save: (o2r: O2rMetadata) => Promise<void>;
}

const LICENSE_LABELS: Record<LicenseKind, string> = {
  code: 'Code license',
  data: 'Data license',
  text: 'Text license',
  metadata: 'Metadata license'
};

export class MetadataEditor {
  readonly node: HTMLElement;

  constructor(private readonly options: MetadataEditorOptions) {
    this.node = h('form', { class: 'erchub-metadata-form', novalidate: true });
    this.node.addEventListener('submit', event => {
      event.preventDefault();
      void this.submit();
    });
    this.load({});
  }

  /** Show `o2r` in the form (the fields the form does not edit are kept for saving);
   * `readOnly` names why it cannot be changed here (no Save), null when it can. */
  load(o2r: O2rMetadata, readOnly: string | null = null): void {
    this.readOnly = readOnly;
    this.base = o2r;
    this.form = formFromO2r(o2r);
    // an empty row to type the first author in, where one may be typed
    if (this.form.creators.length === 0 && readOnly === null) {
      this.form.creators.push(emptyCreator());
    }
    this.touched.clear();
    this.render();
  }

  /** The metadata as the form would save it. */
  get value(): O2rMetadata {
    return o2rFromForm(this.form, this.base);
  }

  /** Turn the form on or off (while something else is going on). */
  set disabled(disabled: boolean) {
    this.node
      .querySelectorAll<HTMLInputElement | HTMLButtonElement | HTMLTextAreaElement>(
        'input, textarea, button'
      )
      .forEach(control => {
        control.disabled = disabled;
      });
  }

  private async submit(): Promise<void> {
    // every field is checked on Save, also those not typed in
    this.allTouched = true;
    const errors = this.showErrors();
    if (errors.size > 0) {
      const missing = this.options.forPublishing ? missingForPublishing(this.form) : [];
      this.setStatus(
        errorBox(
          missing.length > 0
            ? `Not uploaded: publishing needs ${joinWords(missing)}. Please complete the fields marked above.`
            : 'Please correct the fields marked above.'
        )
      );
      const first = this.node.querySelector<HTMLElement>('[aria-invalid="true"]');
      first?.focus();
      return;
    }
    if (this.readOnly !== null) {
      return;
    }
    this.disabled = true;
    this.setStatus(h('span', { class: 'erchub-saving' }, 'Saving…'));
    try {
      await this.options.save(this.value);
      this.setStatus(h('span', { class: 'erchub-saved' }, 'Saved.'));
    } catch (error) {
      this.setStatus(errorBox(`The metadata was not saved: ${errorMessage(error)}`));
    } finally {
      this.disabled = false;
    }
  }

  private setStatus(content: Node): void {
    replaceChildren(this.status, content);
  }

  private render(): void {
    this.allTouched = false;
    this.fields.clear();
    this.status = h('div', { class: 'erchub-metadata-status', 'aria-live': 'polite' });
    this.creatorList = h('div', { class: 'erchub-creators' });
    this.renderCreators();
    const licenses = h(
      'fieldset',
      { class: 'erchub-licenses' },
      h('legend', {}, 'Licenses (SPDX identifiers)'),
      ...LICENSE_KINDS.map(kind => this.licenseField(kind))
    );
    const readOnlyNote =
      this.readOnly === null
        ? null
        : h('p', { class: 'erchub-read-only-note', role: 'note' }, this.readOnly);
    replaceChildren(
      this.node,
      readOnlyNote,
      this.textField('title', 'Title', this.form.title, value => (this.form.title = value), {
        required: true
      }),
      h(
        'fieldset',
        { class: 'erchub-authors' },
        h('legend', {}, 'Authors'),
        this.creatorList,
        h('button', { type: 'button', class: 'erchub-add-author jp-mod-styled' }, 'Add author')
      ),
      this.textField(
        'description',
        'Description',
        this.form.description,
        value => (this.form.description = value),
        {
          multiline: true
        }
      ),
      licenses,
      this.status,
      this.readOnly === null
        ? h(
            'button',
            { type: 'submit', class: 'erchub-metadata-save jp-mod-styled jp-mod-accept' },
            this.options.saveLabel
          )
        : null
    );
    this.node.classList.toggle('erchub-read-only', this.readOnly !== null);
    if (this.readOnly !== null) {
      this.node
        .querySelectorAll<HTMLInputElement | HTMLTextAreaElement>('input, textarea')
        .forEach(control => {
          control.readOnly = true;
          // an example in an empty read-only field reads as the compendium's value
          control.placeholder = '';
        });
      this.node
        .querySelectorAll<HTMLButtonElement>('.erchub-add-author, .erchub-remove-author')
        .forEach(button => button.remove());
    }
    this.node.querySelector('.erchub-add-author')?.addEventListener('click', () => {
      this.form.creators.push(emptyCreator());
      this.renderCreators();
      const names = this.creatorList.querySelectorAll<HTMLInputElement>(
        '.erchub-author input[data-part="name"]'
      );
      names[names.length - 1]?.focus();
    });
  }

  private renderCreators(): void {
    for (const key of [...this.fields.keys()]) {
      if (key.startsWith('creators.')) {
        this.fields.delete(key);
      }
    }
    replaceChildren(
      this.creatorList,
      ...this.form.creators.map((creator, index) => {
        const remove = h(
          'button',
          {
            type: 'button',
            class: 'erchub-remove-author jp-mod-styled',
            title: 'Remove this author'
          },
          'Remove'
        );
        remove.addEventListener('click', () => {
          this.form.creators.splice(index, 1);
          this.renderCreators();
          this.showErrors();
        });
        return h(
          'div',
          { class: 'erchub-author', 'data-index': index },
          this.textField(
            `creators.${index}.name`,
            'Name',
            creator.name,
            value => (creator.name = value),
            {
              part: 'name'
            }
          ),
          this.textField(
            `creators.${index}.orcid`,
            'ORCID iD',
            creator.orcid,
            value => (creator.orcid = value),
            {
              part: 'orcid',
              placeholder: '0000-0002-1825-0097'
            }
          ),
          this.textField(
            `creators.${index}.affiliation`,
            'Affiliation',
            creator.affiliation,
            value => (creator.affiliation = value),
            { part: 'affiliation' }
          ),
          remove
        );
      })
    );
  }

  private licenseField(kind: LicenseKind): HTMLElement {
    const perFile = this.form.perFileLicenses[kind];
    const field = this.textField(
      `license.${kind}`,
      LICENSE_LABELS[kind],
      this.form.license[kind],
      value => (this.form.license[kind] = value),
      { placeholder: perFile ? 'per file (kept)' : 'e.g. MIT, CC-BY-4.0' }
    );
    if (perFile) {
      const listing = Object.entries(perFile)
        .map(([path, id]) => `${path}: ${id}`)
        .join(', ');
      field.appendChild(
        h(
          'div',
          { class: 'erchub-field-help' },
          `Set per file in erc.yml (${listing}); type an identifier to replace.`
        )
      );
    }
    return field;
  }

  private textField(
    name: string,
    label: string,
    value: string,
    set: (value: string) => void,
    options: { required?: boolean; multiline?: boolean; part?: string; placeholder?: string } = {}
  ): HTMLElement {
    const id = uniqueId('erchub-field');
    const control = options.multiline
      ? h('textarea', { id, name, rows: 4, class: 'jp-mod-styled' })
      : h('input', {
          id,
          name,
          type: 'text',
          class: 'jp-mod-styled',
          required: options.required,
          'data-part': options.part,
          placeholder: options.placeholder
        });
    control.value = value;
    const message = h('div', { class: 'erchub-field-error', 'aria-live': 'polite' });
    control.setAttribute('aria-describedby', uniqueIdFor(message));
    control.addEventListener('input', () => {
      set(control.value);
      this.touched.add(name);
      this.showErrors();
    });
    control.addEventListener('blur', () => {
      this.touched.add(name);
      this.showErrors();
    });
    this.fields.set(name, { control, message });
    return h(
      'div',
      { class: 'erchub-field', 'data-field': name },
      h(
        'label',
        { for: id },
        label,
        options.required ? h('span', { class: 'erchub-required', title: 'required' }, ' *') : null
      ),
      control,
      message
    );
  }

  /** Show the messages of the fields typed in (all of them after Save); returns every
   * problem. */
  private showErrors(): FieldErrors {
    const errors = validateMetadata(this.form, this.options.forPublishing ?? false);
    for (const [name, { control, message }] of this.fields) {
      const text = this.allTouched || this.touched.has(name) ? errors.get(name) : undefined;
      message.textContent = text ?? '';
      if (text) {
        control.setAttribute('aria-invalid', 'true');
      } else {
        control.removeAttribute('aria-invalid');
      }
    }
    return errors;
  }

  private readOnly: string | null = null;
  private base: O2rMetadata = {};
  private form: MetadataForm = formFromO2r({});
  private readonly touched = new Set<string>();
  private allTouched = false;
  private readonly fields = new Map<
    string,
    { control: HTMLInputElement | HTMLTextAreaElement; message: HTMLElement }
  >();
  private status: HTMLElement = h('div');
  private creatorList: HTMLElement = h('div');
}

function uniqueIdFor(element: HTMLElement): string {
  if (!element.id) {
    element.id = uniqueId('erchub-message');
  }
  return element.id;
}
