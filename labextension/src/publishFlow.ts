/**
 * "Publish ERC": candidate (the notebook's folder uploaded to the erc service) -> metadata
 * (the shared form; Save keeps the candidate a candidate) -> job (build and run it, live) ->
 * publish (the metadata saved once more, which makes the candidate public) -> done (the id
 * and the hub's launch link). Each step shows what it does and, when it fails, why in plain
 * words with a button to try again.
 */

import { ErchubApi, errorMessage, isAbort } from './api';
import { errorBox, h, replaceChildren } from './dom';
import { JobView } from './jobView';
import { O2rMetadata } from './metadata';
import { MetadataEditor } from './metadataEditor';
import { HubLocation, launchUrl } from './outputs';

export const PUBLISH_STEPS = [
  { id: 'candidate', title: 'Upload the notebook’s folder as a candidate' },
  { id: 'metadata', title: 'Describe the compendium' },
  { id: 'job', title: 'Build its runtime and run it' },
  { id: 'publish', title: 'Publish' },
  { id: 'done', title: 'Done' }
] as const;
export type PublishStep = (typeof PUBLISH_STEPS)[number]['id'];
export type StepStatus = 'pending' | 'active' | 'done' | 'failed';

export interface PublishFlowOptions {
  /** where the hub is (for the launch link) */
  hub: HubLocation;
  /** the compendium the flow made, and whether it is still a candidate */
  onCompendium: (id: string, candidate: boolean) => void;
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
      saveLabel: 'Save and run the check',
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
    this.compendiumId = null;
    this.saved = null;
    this.jobSucceeded = false;
    this.node.hidden = false;
    this.notebookLine.textContent = `Notebook: ${path}`;
    for (const step of PUBLISH_STEPS) {
      this.set(step.id, 'pending');
    }
    void this.candidate();
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

  private async candidate(): Promise<void> {
    const generation = this.generation;
    this.set(
      'candidate',
      'active',
      h('p', {}, 'Packing the notebook’s folder and uploading it to the erc service…')
    );
    try {
      const candidate = await this.api.publish(this.path);
      if (generation !== this.generation) {
        return; // started again meanwhile
      }
      this.compendiumId = candidate.compendium_id;
      this.set(
        'candidate',
        'done',
        h(
          'p',
          {},
          'Candidate ',
          h('code', { class: 'erchub-compendium-id' }, candidate.compendium_id),
          `: ${candidate.files} files from ${candidate.root || 'the server’s root folder'}.`
        )
      );
      this.options.onCompendium(candidate.compendium_id, true);
      this.editor.load(candidate.metadata?.o2r ?? {});
      this.editorDetails.open = true;
      this.set(
        'metadata',
        'active',
        h(
          'p',
          {},
          'This is what was found in the notebook and its folder. Correct and complete it.'
        ),
        this.editorDetails
      );
    } catch (error) {
      if (generation !== this.generation) {
        return;
      }
      this.fail(
        'candidate',
        `No candidate was made: ${errorMessage(error)}`,
        () => void this.candidate()
      );
    }
  }

  private async saveMetadata(o2r: O2rMetadata): Promise<void> {
    const id = this.compendiumId;
    if (id === null) {
      throw new Error('there is no candidate to describe');
    }
    await this.api.saveMetadata(id, o2r, false);
    this.saved = o2r;
    this.setStatus('metadata', 'done');
    // folded away so that the job's steps are in sight; it can be opened to edit again
    this.editorDetails.open = false;
    if (!this.jobSucceeded && this.status('job') !== 'active') {
      void this.job();
    }
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
    const button = h(
      'button',
      { type: 'button', class: 'erchub-publish-confirm jp-mod-styled jp-mod-accept' },
      'Publish'
    );
    button.addEventListener('click', () => void this.publish(button));
    this.set(
      'publish',
      'active',
      h(
        'p',
        {},
        'The compendium ran. Publishing makes it public: anyone on the hub can find, open and check it.'
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

  private set(step: PublishStep, status: StepStatus, ...content: Node[]): void {
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
  private compendiumId: string | null = null;
  private saved: O2rMetadata | null = null;
  private jobSucceeded = false;
  private readonly jobView: JobView;
  private readonly editor: MetadataEditor;
  private readonly editorDetails: HTMLDetailsElement;
  private readonly steps: Map<PublishStep, HTMLElement>;
  private readonly notebookLine = h('div', { class: 'erchub-notebook-path' });
}
