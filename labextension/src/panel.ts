/**
 * The ERC side panel: the publish flow (when started from a notebook's toolbar), the current
 * notebook's parameters, the reproducibility check, the review links of the author's own
 * candidate, and the metadata of the current notebook's compendium: the launched one when the
 * notebook is one of its files, the one this session published from the notebook's folder, or
 * none ("not yet published"). The metadata is read-only, and said so, for a compendium of
 * another user; in a reviewer's session (started through a review link) the panel says that
 * the candidate is seen through the link.
 */

import { LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { ErchubApi, ErcContext, errorMessage, NotebookSource } from './api';
import { errorBox, h, replaceChildren } from './dom';
import { JobView } from './jobView';
import { MetadataEditor } from './metadataEditor';
import { ParametersView, ResultsOpener } from './parametersView';
import { HubLocation } from './outputs';
import { NotebookActions, PublishFlow } from './publishFlow';
import { ReviewLinksView } from './reviewLinksView';

const ICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <path d="M4 3h11l5 5v13H4V3zm2 2v14h12V9h-4V5H6z"/>
    <path d="M8.5 13.2l1.4-1.4 1.6 1.6 3.6-3.6 1.4 1.4-5 5z"/>
  </g>
</svg>`;

export const ercIcon = new LabIcon({ name: 'erchub:erc', svgstr: ICON_SVG });

export class ErcPanel extends Widget {
  constructor(
    private readonly api: ErchubApi,
    hub: HubLocation,
    results: ResultsOpener,
    notebooks: NotebookActions
  ) {
    super();
    this.id = 'erchub-panel';
    this.addClass('erchub-panel');
    this.title.icon = ercIcon;
    this.title.caption = 'ERC';
    this.parameters = new ParametersView(api, results);
    this.checkJob = new JobView(api);
    this.reviewLinks = new ReviewLinksView(api, {
      base: () => hub.host || window.location.origin
    });
    this.flow = new PublishFlow(api, {
      ...notebooks,
      hub,
      onCompendium: (id, candidate) => {
        this.source = 'published';
        this.setCompendium(id, candidate);
      },
      onReviewLink: () => void this.reviewLinks.reload(),
      onClose: () => this.showCompendium()
    });
    this.metadata = new MetadataEditor({
      saveLabel: 'Save metadata',
      save: async o2r => {
        if (this.compendiumId === null) {
          throw new Error('there is no compendium to describe');
        }
        // a candidate stays a candidate here: publishing is the publish flow's last step
        const saved = await this.api.saveMetadata(this.compendiumId, o2r, !this.candidate);
        this.candidate = saved.candidate;
      }
    });
    this.checkButton.addEventListener('click', () => void this.check());
    replaceChildren(
      this.node,
      h('header', { class: 'erchub-header' }, h('h2', {}, 'ERC'), this.contextLine),
      this.flow.node,
      this.parameters.node,
      h(
        'section',
        { class: 'erchub-section erchub-check-section' },
        h('h3', {}, 'Reproducibility'),
        h(
          'p',
          { class: 'erchub-hint' },
          'Build the compendium’s runtime, run it again and compare the outputs with the published ones.'
        ),
        this.checkButton,
        this.checkJob.node
      ),
      this.reviewLinks.node,
      h(
        'section',
        { class: 'erchub-section erchub-metadata-section' },
        h('h3', {}, 'Metadata'),
        this.metadataArea
      )
    );
    this.showCompendium();
  }

  /** What the server says about this session (`GET erchub/context`), null when it does not
   * answer (the message is shown). */
  async loadContext(): Promise<ErcContext | null> {
    let context: ErcContext;
    try {
      context = await this.api.context();
    } catch (error) {
      replaceChildren(
        this.contextLine,
        errorBox(`The erchub server extension does not answer: ${errorMessage(error)}`)
      );
      return null;
    }
    this.ercService = context.erc_service;
    this.user = context.user;
    this.reviewing = context.review_link === true;
    this.sessionCompendium = context.compendium_id;
    // until a notebook is followed, the session's own compendium
    if (context.compendium_id && this.compendiumId === null && this.notebookPath === null) {
      this.setCompendium(context.compendium_id, null);
    } else {
      this.showCompendium();
    }
    return context;
  }

  /** Follow a notebook (null when none is open): its parameters and its compendium. */
  setNotebook(path: string | null): void {
    this.parameters.setNotebook(path);
    this.notebookPath = path;
    if (path !== null) {
      void this.followNotebook(path);
    }
  }

  /** Show the compendium of the notebook `path` (ask the server which it is). */
  private async followNotebook(path: string): Promise<void> {
    let context: ErcContext;
    try {
      context = await this.api.context(path);
    } catch (error) {
      if (this.notebookPath === path) {
        replaceChildren(
          this.contextLine,
          errorBox(`The compendium of ${path} is not known: ${errorMessage(error)}`)
        );
      }
      return;
    }
    if (this.notebookPath !== path || context.notebook === undefined) {
      return; // another notebook meanwhile
    }
    this.user = context.user;
    this.reviewing = context.review_link === true;
    this.sessionCompendium = context.compendium_id;
    this.source = context.notebook.source;
    if (context.notebook.compendium_id === null) {
      this.compendiumId = null;
      this.showCompendium();
    } else {
      this.setCompendium(context.notebook.compendium_id, null);
    }
  }

  /** Read the current notebook's parameters again (after it was saved). */
  reloadParameters(): void {
    void this.parameters.reload();
  }

  /** Start "Publish ERC" for a notebook. */
  publish(path: string): void {
    this.flow.start(path);
    this.showCompendium();
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this.parameters.dispose();
    this.checkJob.stop();
    this.flow.dispose();
    super.dispose();
  }

  /** The current ERC changed; `candidate` null when not known yet. */
  private setCompendium(id: string, candidate: boolean | null): void {
    const changed = id !== this.compendiumId;
    this.compendiumId = id;
    if (changed) {
      // until it is read
      this.own = false;
      this.reviewed = false;
    }
    this.candidate = candidate ?? this.candidate;
    this.showCompendium();
    if (changed || candidate === false) {
      void this.loadCompendium(id);
    }
  }

  private async loadCompendium(id: string): Promise<void> {
    replaceChildren(this.metadataArea, h('p', { class: 'erchub-hint' }, 'Loading the metadata…'));
    try {
      const compendium = await this.api.compendium(id);
      if (this.compendiumId !== id) {
        return;
      }
      this.candidate = compendium.candidate;
      // a reviewer sees the session's candidate through a review link (a blind one hides
      // whose it is); its author sees it as it is, also through a link
      this.own = compendium.user === this.user;
      this.reviewed = this.reviewing && id === this.sessionCompendium && !this.own;
      this.metadata.load(
        compendium.metadata?.o2r ?? {},
        this.own
          ? null
          : this.reviewed
            ? `Read-only: you see candidate ${id} through a review link; only its author can change it.`
            : `Read-only: compendium ${id} belongs to ${compendium.user}; only its author can change its metadata. Publish the notebook’s folder to make a compendium of your own.`
      );
      this.showCompendium();
      replaceChildren(this.metadataArea, this.metadata.node);
    } catch (error) {
      if (this.compendiumId === id) {
        replaceChildren(
          this.metadataArea,
          errorBox(`The metadata of ${id} cannot be read: ${errorMessage(error)}`)
        );
      }
    }
  }

  private showCompendium(): void {
    const id = this.compendiumId;
    if (id === null) {
      replaceChildren(
        this.contextLine,
        this.ercService === false
          ? 'No erc service is configured for this server: publishing and checks need a server started by erchub’s hub.'
          : h(
              'span',
              { class: 'erchub-not-published' },
              this.notebookPath === null
                ? 'No compendium yet: use “Publish ERC” in a notebook’s toolbar to make one.'
                : 'This notebook is not yet published: use “Publish ERC” in its toolbar.'
            )
      );
      replaceChildren(
        this.metadataArea,
        h(
          'p',
          { class: 'erchub-hint' },
          'The metadata is edited once the notebook has been uploaded as a compendium.'
        )
      );
    } else {
      replaceChildren(
        this.contextLine,
        this.candidate ? 'Candidate ' : 'Compendium ',
        h('code', { class: 'erchub-current-compendium' }, id),
        this.reviewed
          ? ' (seen through a review link)'
          : this.source === 'launched'
            ? ' (launched in this session)'
            : this.source === 'published'
              ? this.candidate
                ? ' (uploaded from this notebook’s folder)'
                : ' (published from this notebook’s folder)'
              : ''
      );
    }
    this.checkButton.disabled = id === null;
    this.checkButton.title =
      id === null ? 'There is no compendium to check yet' : `Check compendium ${id}`;
    // while the publish flow is open its own form edits the metadata (and shows a review
    // link it makes)
    this.metadataArea.closest('section')?.toggleAttribute('hidden', this.flow.active);
    if (id !== null && this.own && this.candidate && !this.flow.active) {
      this.reviewLinks.show(id);
    } else {
      this.reviewLinks.hide();
    }
  }

  private async check(): Promise<void> {
    if (this.compendiumId === null) {
      return;
    }
    this.checkButton.disabled = true;
    try {
      await this.checkJob.start(this.compendiumId);
    } catch {
      // the job view shows what went wrong
    } finally {
      this.checkButton.disabled = this.compendiumId === null;
    }
  }

  private compendiumId: string | null = null;
  /** the notebook followed, null when none */
  private notebookPath: string | null = null;
  /** where the shown compendium comes from, for the notebook followed */
  private source: NotebookSource | null = null;
  /** the session's user: the author of what is editable here */
  private user = '';
  private candidate = false;
  /** whether the shown compendium is the user's own (known once it was read) */
  private own = false;
  /** whether the session's compendium is seen through a review link */
  private reviewing = false;
  /** whether the shown compendium is someone else's, seen through the session's review link */
  private reviewed = false;
  /** the compendium the session was started for, null for none */
  private sessionCompendium: string | null = null;
  private ercService: boolean | null = null;
  private readonly parameters: ParametersView;
  private readonly checkJob: JobView;
  private readonly reviewLinks: ReviewLinksView;
  private readonly flow: PublishFlow;
  private readonly metadata: MetadataEditor;
  private readonly contextLine = h('div', { class: 'erchub-context' });
  private readonly metadataArea = h('div', { class: 'erchub-metadata-area' });
  private readonly checkButton = h(
    'button',
    { type: 'button', class: 'erchub-check-button jp-mod-styled jp-mod-accept' },
    'Check reproducibility'
  );
}
