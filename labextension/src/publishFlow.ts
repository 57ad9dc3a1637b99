/**
 * "Publish ERC": folder (what will be packed: the notebook's folder or a parent, its files
 * and sizes, how it relates to the launched compendium, and "Run all and save first?" when
 * the notebook's outputs cannot be the reference of its check) -> metadata (the shared form,
 * pre-filled from the notebook and the login; an author and the licences are required; Save
 * uploads the folder as a candidate) -> job (build and run it, live) -> publish, or submit for
 * review (publishing saves the metadata once more, which makes the candidate public; the
 * journal's way keeps it unpublished and makes a review link, open or blind, with an optional
 * last day) -> done (the id and the hub's launch link; or the review link's full address to
 * send, with Copy, its mode and what blind mode cannot hide). Each step shows what it does
 * and, when it fails, why in plain words with a button to try again.
 */

import { ErchubApi, errorMessage, isAbort, PublishMode, PublishPreview } from './api';
import { errorBox, h, replaceChildren, uniqueId } from './dom';
import { JobView } from './jobView';
import { O2rMetadata } from './metadata';
import { MetadataEditor } from './metadataEditor';
import { HubLocation, launchUrl } from './outputs';
import { formatBytes, modeLabel, runFirstReason } from './publishing';
import { ReviewLink, ReviewLinkRequest } from './reviewLinks';
import { LinkChoice, linkToSend } from './reviewLinksView';

export const PUBLISH_STEPS = [
  { id: 'folder', title: 'Choose what to publish' },
  { id: 'metadata', title: 'Describe the compendium and upload it' },
  { id: 'job', title: 'Build its runtime and run it' },
  { id: 'publish', title: 'Publish, or submit for review' },
  { id: 'done', title: 'Done' }
] as const;
export type PublishStep = (typeof PUBLISH_STEPS)[number]['id'];
export type StepStatus = 'pending' | 'active' | 'done' | 'failed';
/** What the last step does with the candidate: make it public, or keep it unpublished and
 * make a review link (the journal's workflow). */
export type Outcome = 'publish' | 'review';

/** What the flow asks of the open notebooks. */
export interface NotebookActions {
  /** whether the notebook is open with unsaved changes */
  isDirty: (path: string) => boolean;
  /** run every cell of the notebook (opened if need be) and save it */
  runAllAndSave: (path: string) => Promise<void>;
}

export interface PublishFlowOptions extends NotebookActions {
  /** where the hub is (for the launch link) */
  hub: HubLocation;
  /** the compendium the flow made, and whether it is still a candidate */
  onCompendium: (id: string, candidate: boolean) => void;
  /** a review link of the compendium was made */
  onReviewLink: (link: ReviewLink) => void;
  /** the flow was closed */
  onClose: () => void;
}

export class PublishFlow {
  readonly node: HTMLElement;

  constructor(
    private readonly api: ErchubApi,
    private readonly options: PublishFlowOptions
  ) {
    this.jobView = new JobView(api);
    this.editor = new MetadataEditor({
      saveLabel: 'Upload and check',
      forPublishing: true,
      save: o2r => this.saveMetadata(o2r)
    });
    this.editorDetails = h(
      'details',
      { class: 'erchub-metadata-details', open: true },
      h('summary', {}, 'Metadata'),
      this.editor.node
    );
    this.steps = new Map(
      PUBLISH_STEPS.map(step => [
        step.id,
        h(
          'li',
          { class: 'erchub-publish-step', 'data-step': step.id, 'data-status': 'pending' },
          h('h4', { class: 'erchub-publish-step-title' }, step.title),
          h('div', { class: 'erchub-publish-step-body' })
        )
      ])
    );
    const close = h(
      'button',
      {
        type: 'button',
        class: 'erchub-publish-close jp-mod-styled',
        title: 'Close the publish steps'
      },
      'Close'
    );
    close.addEventListener('click', () => this.close());
    this.node = h(
      'section',
      { class: 'erchub-section erchub-publish', hidden: true },
      h('div', { class: 'erchub-section-header' }, h('h3', {}, 'Publish ERC'), close),
      this.notebookLine,
      h('ol', { class: 'erchub-publish-steps' }, ...this.steps.values())
    );
  }

  /** Whether a flow was started (and not closed). */
  get active(): boolean {
    return !this.node.hidden;
  }

  /** Start over for a notebook. */
  start(path: string): void {
    this.jobView.stop();
    this.generation += 1;
    this.path = path;
    this.folder = undefined;
    this.mode = null;
    this.compendiumId = null;
    this.saved = null;
    this.jobSucceeded = false;
    this.node.hidden = false;
    this.notebookLine.textContent = `Notebook: ${path}`;
    for (const step of PUBLISH_STEPS) {
      this.set(step.id, 'pending');
    }
    void this.preview();
  }

  /** Hide the flow; a job it started goes on, but is no longer followed. */
  close(): void {
    this.jobView.stop();
    this.node.hidden = true;
    this.options.onClose();
  }

  dispose(): void {
    this.jobView.stop();
  }

  /** The first step: what publishing would pack, from the folder chosen (the proposed
   * one at first). */
  private async preview(folder?: string): Promise<void> {
    const generation = this.generation;
    this.set('folder', 'active', h('p', {}, 'Looking at the notebook’s folder…'));
    let preview: PublishPreview;
    try {
      preview = await this.api.publishPreview(this.path, folder);
    } catch (error) {
      if (generation === this.generation) {
        this.fail(
          'folder',
          `Nothing can be published: ${errorMessage(error)}`,
          () => void this.preview(folder)
        );
      }
      return;
    }
    if (generation !== this.generation) {
      return;
    }
    this.folder = preview.folder;
    this.mode = preview.modes[0];
    const reason = runFirstReason(
      preview.outputs.state,
      preview.outputs.message,
      this.options.isDirty(this.path)
    );
    const next = h(
      'button',
      { type: 'button', class: 'erchub-publish-next jp-mod-styled jp-mod-accept' },
      'Continue'
    );
    next.disabled = reason !== null;
    next.addEventListener('click', () => this.describe(preview));
    this.set(
      'folder',
      'active',
      this.folderChoice(preview),
      this.fileTable(preview),
      ...preview.warnings.map(warning => h('p', { class: 'erchub-warning' }, warning)),
      this.modeChoice(preview),
      reason === null ? null : this.runFirst(reason),
      next
    );
  }

  private folderChoice(preview: PublishPreview): HTMLElement {
    const id = uniqueId('erchub-folder');
    const select = h('select', { id, class: 'erchub-publish-folder jp-mod-styled' });
    for (const folder of preview.folders) {
      const option = h('option', { value: folder }, folder);
      option.selected = folder === preview.folder;
      select.appendChild(option);
    }
    select.addEventListener('change', () => void this.preview(select.value));
    return h(
      'div',
      { class: 'erchub-field' },
      h('label', { for: id }, 'Folder to publish (it becomes the compendium)'),
      select
    );
  }

  private fileTable(preview: PublishPreview): HTMLElement {
    return h(
      'details',
      { class: 'erchub-publish-files', open: preview.total_files <= 20 },
      h(
        'summary',
        { class: 'erchub-publish-totals' },
        `${preview.total_files} files, ${formatBytes(preview.total_bytes)}, with `,
        h('code', {}, preview.path.split('/').pop() ?? preview.path),
        ' as the main notebook'
      ),
      h(
        'table',
        { class: 'erchub-file-list' },
        ...preview.files.map(file =>
          h(
            'tr',
            { 'data-path': file.path },
            h('td', { class: 'erchub-file-path' }, file.path, file.written ? ' (written)' : ''),
            h('td', { class: 'erchub-file-size' }, formatBytes(file.size))
          )
        )
      )
    );
  }

  private modeChoice(preview: PublishPreview): HTMLElement | null {
    if (preview.modes.length === 1 && preview.modes[0] === 'new') {
      return null;
    }
    const name = uniqueId('erchub-mode');
    return h(
      'fieldset',
      { class: 'erchub-publish-modes' },
      h('legend', {}, 'This is the folder of the launched compendium. Publish it as:'),
      ...preview.modes.map((mode: PublishMode) => {
        const input = h('input', { type: 'radio', name, value: mode });
        input.checked = mode === this.mode;
        input.addEventListener('change', () => {
          this.mode = mode;
        });
        return h(
          'label',
          { class: 'erchub-publish-mode' },
          input,
          ' ',
          modeLabel(mode, preview.related_compendium)
        );
      })
    );
  }

  /** "Run all and save first?": the reason and one button that does it, then looks again. */
  private runFirst(reason: string): HTMLElement {
    const button = h(
      'button',
      { type: 'button', class: 'erchub-run-all jp-mod-styled jp-mod-accept' },
      'Run all and save'
    );
    const box = h(
      'div',
      { class: 'erchub-run-first', role: 'alert' },
      h('p', {}, h('strong', {}, 'Run all and save first? '), reason),
      button
    );
    button.addEventListener('click', async () => {
      button.disabled = true;
      button.textContent = 'Running all cells…';
      try {
        await this.options.runAllAndSave(this.path);
      } catch (error) {
        button.disabled = false;
        button.textContent = 'Run all and save';
        box.appendChild(errorBox(`The notebook did not run: ${errorMessage(error)}`));
        return;
      }
      await this.preview(this.folder);
    });
    return box;
  }

  /** The second step: the metadata proposed for the folder, to complete before uploading. */
  private describe(preview: PublishPreview): void {
    this.set(
      'folder',
      'done',
      h(
        'p',
        { class: 'erchub-publish-summary' },
        `${preview.folder}: ${preview.total_files} files, ${formatBytes(preview.total_bytes)}`
      )
    );
    this.editor.load(preview.metadata.o2r);
    this.editorDetails.open = true;
    this.set(
      'metadata',
      'active',
      h(
        'p',
        {},
        'This is what was found in the notebook and your login. Complete it: publishing needs at least one author and the code, data and text licences.'
      ),
      this.editorDetails
    );
  }

  private async saveMetadata(o2r: O2rMetadata): Promise<void> {
    if (this.compendiumId === null) {
      // the candidate's metadata holds what the service derived from its files (main
      // notebook, files, ...): the form edits that from now on, and publishing saves it
      const saved = await this.upload(o2r);
      this.editor.load(saved);
      this.saved = saved;
    } else {
      await this.api.saveMetadata(this.compendiumId, o2r, false);
      this.saved = o2r;
    }
    this.setStatus('metadata', 'done');
    // folded away so that the job's steps are in sight; it can be opened to edit again
    this.editorDetails.open = false;
    if (!this.jobSucceeded && this.status('job') !== 'active') {
      void this.job();
    }
  }

  /** Upload the chosen folder as a candidate with the author's metadata; the candidate's
   * metadata as saved. */
  private async upload(o2r: O2rMetadata): Promise<O2rMetadata> {
    if (this.folder === undefined || this.mode === null) {
      throw new Error('choose the folder first');
    }
    const candidate = await this.api.publish({
      path: this.path,
      folder: this.folder,
      mode: this.mode,
      metadata: { o2r }
    });
    this.compendiumId = candidate.compendium_id;
    this.editorDetails.before(
      h(
        'p',
        { class: 'erchub-publish-candidate' },
        'Candidate ',
        h('code', { class: 'erchub-compendium-id' }, candidate.compendium_id),
        `: ${candidate.files} files from ${candidate.folder}.`
      )
    );
    this.options.onCompendium(candidate.compendium_id, true);
    return candidate.metadata.o2r ?? o2r;
  }

  private async job(): Promise<void> {
    const id = this.compendiumId;
    if (id === null) {
      return;
    }
    const generation = this.generation;
    this.set('job', 'active', this.jobView.node);
    try {
      const state = await this.jobView.start(id);
      if (generation !== this.generation) {
        return;
      }
      if (state.status !== 'success') {
        const reason = state.reason ? `: ${state.reason}` : '';
        this.fail(
          'job',
          `The job ended with ${state.status}${reason}. See the failed step above; fix the notebook and publish again, or run the job again.`,
          () => void this.job(),
          false
        );
        return;
      }
    } catch (error) {
      if (!isAbort(error) && generation === this.generation) {
        this.fail(
          'job',
          `The job did not run: ${errorMessage(error)}`,
          () => void this.job(),
          false
        );
      }
      return;
    }
    this.jobSucceeded = true;
    this.setStatus('job', 'done');
    this.offerOutcomes();
  }

  /** The last choice: publish now, or submit for review (stays unpublished, a review link). */
  private offerOutcomes(): void {
    const button = h(
      'button',
      { type: 'button', class: 'erchub-publish-confirm jp-mod-styled jp-mod-accept' },
      'Publish'
    );
    const choice = new LinkChoice();
    const reviewOptions = h('div', { class: 'erchub-review-options', hidden: true }, choice.node);
    const name = uniqueId('erchub-outcome');
    const options: { outcome: Outcome; label: string; help: string }[] = [
      {
        outcome: 'publish',
        label: 'Publish',
        help: 'It becomes public: anyone on the hub can find, open and check it.'
      },
      {
        outcome: 'review',
        label: 'Submit for review (stays unpublished)',
        help: 'A review link lets the journal’s reviewers read, download and check it; nobody else sees it.'
      }
    ];
    const radios = options.map(({ outcome, label, help }) => {
      const input = h('input', { type: 'radio', name, value: outcome });
      input.checked = outcome === 'publish';
      input.addEventListener('change', () => {
        reviewOptions.hidden = outcome !== 'review';
        button.textContent = outcome === 'review' ? 'Submit for review' : 'Publish';
      });
      return h(
        'label',
        { class: 'erchub-choice erchub-outcome', 'data-outcome': outcome },
        input,
        h('strong', {}, label),
        h('span', { class: 'erchub-choice-help' }, help)
      );
    });
    button.addEventListener('click', () => {
      const chosen = radios.find(label => label.querySelector('input')?.checked);
      if (chosen?.dataset.outcome === 'review') {
        void this.submitForReview(button, choice);
      } else {
        void this.publish(button);
      }
    });
    this.set(
      'publish',
      'active',
      h('p', {}, 'The compendium ran. What now?'),
      h(
        'fieldset',
        { class: 'erchub-publish-outcomes' },
        h('legend', {}, 'Publish it, or keep it for a journal’s review'),
        ...radios,
        reviewOptions
      ),
      button
    );
  }

  private async publish(button: HTMLButtonElement): Promise<void> {
    const id = this.compendiumId;
    if (id === null || this.saved === null) {
      return;
    }
    const generation = this.generation;
    button.disabled = true;
    this.body('publish').querySelector('.erchub-error')?.remove();
    try {
      const answer = await this.api.saveMetadata(id, this.saved, true);
      if (generation !== this.generation) {
        return;
      }
      if (answer.candidate) {
        throw new Error('the erc service kept it a candidate (only its author can publish it)');
      }
    } catch (error) {
      button.disabled = false;
      this.body('publish').appendChild(errorBox(`It was not published: ${errorMessage(error)}`));
      this.setStatus('publish', 'failed');
      return;
    }
    this.set('publish', 'done', h('p', {}, 'Published.'));
    const url = launchUrl(this.options.hub, id, window.location.origin);
    this.set(
      'done',
      'done',
      h('p', {}, 'Compendium ', h('code', { class: 'erchub-compendium-id' }, id), ' is published.'),
      h(
        'p',
        {},
        'Readers and reviewers open it at ',
        h('a', { class: 'erchub-launch-link', href: url, target: '_blank', rel: 'noopener' }, url)
      )
    );
    this.options.onCompendium(id, false);
  }

  /** The journal's way: the candidate stays unpublished, with a review link to send. */
  private async submitForReview(button: HTMLButtonElement, choice: LinkChoice): Promise<void> {
    const id = this.compendiumId;
    if (id === null) {
      return;
    }
    const generation = this.generation;
    this.body('publish').querySelector('.erchub-error')?.remove();
    let request: ReviewLinkRequest;
    try {
      request = choice.value;
    } catch (error) {
      this.body('publish').appendChild(errorBox(errorMessage(error)));
      return;
    }
    button.disabled = true;
    choice.disabled = true;
    let link: ReviewLink;
    try {
      link = await this.api.createReviewLink(id, request);
    } catch (error) {
      if (generation === this.generation) {
        button.disabled = false;
        choice.disabled = false;
        this.body('publish').appendChild(
          errorBox(`No review link was made: ${errorMessage(error)}`)
        );
        this.setStatus('publish', 'failed');
      }
      return;
    }
    if (generation !== this.generation) {
      return;
    }
    this.set('publish', 'done', h('p', {}, 'Kept unpublished for review; a review link was made.'));
    this.set(
      'done',
      'done',
      h(
        'p',
        {},
        'Candidate ',
        h('code', { class: 'erchub-compendium-id' }, id),
        ' stays unpublished: only you, and whoever has its review link, can see it.'
      ),
      h('p', {}, 'Send this review link to the journal’s editor:'),
      linkToSend(link, this.options.hub.host || window.location.origin),
      h(
        'p',
        { class: 'erchub-hint' },
        'The ERC panel lists its review links with how often each was used, and revokes them.'
      )
    );
    this.options.onCompendium(id, true);
    this.options.onReviewLink(link);
  }

  /** Mark a step failed with a message and a button that tries again. */
  private fail(step: PublishStep, message: string, retry: () => void, replace = true): void {
    const button = h(
      'button',
      { type: 'button', class: 'erchub-retry-button jp-mod-styled' },
      'Try again'
    );
    button.addEventListener('click', () => {
      button.remove();
      retry();
    });
    if (replace) {
      this.set(step, 'failed', errorBox(message), button);
    } else {
      this.setStatus(step, 'failed');
      this.body(step).append(errorBox(message), button);
    }
  }

  private set(step: PublishStep, status: StepStatus, ...content: (Node | string | null)[]): void {
    this.setStatus(step, status);
    replaceChildren(this.body(step), ...content);
    if (status === 'active') {
      this.steps.get(step)?.scrollIntoView?.({ block: 'nearest' });
    }
  }

  private setStatus(step: PublishStep, status: StepStatus): void {
    const node = this.steps.get(step);
    if (node) {
      node.dataset.status = status;
    }
  }

  private status(step: PublishStep): string | undefined {
    return this.steps.get(step)?.dataset.status;
  }

  private body(step: PublishStep): HTMLElement {
    return this.steps.get(step)!.querySelector<HTMLElement>('.erchub-publish-step-body')!;
  }

  /** counts the starts, so that the answers of an earlier start are ignored */
  private generation = 0;
  private path = '';
  /** the folder chosen, from the server's root */
  private folder: string | undefined = undefined;
  private mode: PublishMode | null = null;
  private compendiumId: string | null = null;
  private saved: O2rMetadata | null = null;
  private jobSucceeded = false;
  private readonly jobView: JobView;
  private readonly editor: MetadataEditor;
  private readonly editorDetails: HTMLDetailsElement;
  private readonly steps: Map<PublishStep, HTMLElement>;
  private readonly notebookLine = h('div', { class: 'erchub-notebook-path' });
}
