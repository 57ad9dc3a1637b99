/**
 * Review links on screen: the author's choice of a link (mode, optional expiry day), one link
 * to send (its full URL with a Copy button, mode, expiry and, for a blind link, what blind mode
 * cannot hide), and the ERC panel's section listing the links of the author's own candidate
 * (uses, Copy, Revoke, and a form making another).
 */

import { ErchubApi, errorMessage } from './api';
import { errorBox, h, replaceChildren, uniqueId } from './dom';
import {
  absoluteLinkUrl,
  expiryText,
  LINK_MODES,
  LinkMode,
  linkState,
  modeText,
  ordered,
  ReviewLink,
  ReviewLinkRequest,
  reviewLinkRequest,
  usesText,
  utcDay
} from './reviewLinks';

/** Copy `text` to the clipboard; whether it worked (the Clipboard API needs a secure page:
 * elsewhere a selected text area and the copy command stand in). */
export async function copyText(text: string): Promise<boolean> {
  if (window.isSecureContext && navigator.clipboard) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      // refused (no permission, the page not focused): try the old way
    }
  }
  const area = h('textarea', { readonly: true, class: 'erchub-copy-area', 'aria-hidden': 'true' });
  area.value = text;
  document.body.appendChild(area);
  area.select();
  let copied = false;
  try {
    copied = document.execCommand('copy');
  } catch {
    copied = false;
  }
  area.remove();
  return copied;
}

/** A Copy button for `text`, which says whether it worked beside it. */
export function copyButton(text: string, label = 'Copy'): HTMLElement {
  const button = h(
    'button',
    { type: 'button', class: 'erchub-review-link-copy jp-mod-styled', title: 'Copy the link' },
    label
  );
  const status = h('span', { class: 'erchub-copy-status', role: 'status', 'aria-live': 'polite' });
  button.addEventListener('click', async () => {
    const copied = await copyText(text);
    status.dataset.copied = String(copied);
    status.textContent = copied
      ? 'Copied.'
      : 'Copying is not allowed here: select the link and copy it.';
  });
  return h('span', { class: 'erchub-copy' }, button, ' ', status);
}

/** The author's choice of a link: its mode (radio buttons, `.erchub-review-mode input`) and an
 * optional last day (`.erchub-review-expires`). */
export class LinkChoice {
  readonly node: HTMLElement;

  constructor(initialMode: LinkMode = 'blind') {
    const name = uniqueId('erchub-review-mode');
    const expiresId = uniqueId('erchub-review-expires');
    const caveat = h(
      'div',
      { class: 'erchub-field-help erchub-blind-caveat' },
      'Blind mode cannot hide names written inside the files (notebooks, their outputs and metadata, code, data): remove those first.'
    );
    this.modes = LINK_MODES.map(mode => {
      const input = h('input', { type: 'radio', name, value: mode });
      input.checked = mode === initialMode;
      input.addEventListener('change', () => {
        caveat.hidden = this.chosenMode !== 'blind';
      });
      return input;
    });
    caveat.hidden = initialMode !== 'blind';
    this.expires = h('input', {
      id: expiresId,
      type: 'date',
      class: 'erchub-review-expires jp-mod-styled',
      min: utcDay(new Date())
    });
    this.node = h(
      'div',
      { class: 'erchub-review-choice' },
      h(
        'fieldset',
        { class: 'erchub-review-mode' },
        h('legend', {}, 'Review link'),
        ...this.modes.map((input, index) =>
          h(
            'label',
            { class: 'erchub-choice', 'data-mode': LINK_MODES[index] },
            input,
            h('span', {}, modeText(LINK_MODES[index]))
          )
        ),
        caveat
      ),
      h(
        'div',
        { class: 'erchub-field' },
        h('label', { for: expiresId }, 'Works until (optional)'),
        this.expires,
        h(
          'div',
          { class: 'erchub-field-help' },
          'The link works through that day (UTC); without a day, until you revoke it.'
        )
      )
    );
  }

  /** The request the choice makes; an Error for a day that is none. */
  get value(): ReviewLinkRequest {
    return reviewLinkRequest(this.chosenMode, this.expires.value);
  }

  set disabled(disabled: boolean) {
    this.modes.forEach(input => {
      input.disabled = disabled;
    });
    this.expires.disabled = disabled;
  }

  private get chosenMode(): LinkMode {
    const index = this.modes.findIndex(input => input.checked);
    return LINK_MODES[index < 0 ? 0 : index];
  }

  private readonly modes: HTMLInputElement[];
  private readonly expires: HTMLInputElement;
}

/** A link to send: its full address with a Copy button, its mode and expiry, and for a blind
 * link what blind mode cannot hide (the service's words). `base`: see absoluteLinkUrl. */
export function linkToSend(link: ReviewLink, base: string): HTMLElement {
  const url = absoluteLinkUrl(link.url, base);
  return h(
    'div',
    { class: 'erchub-review-link-card', 'data-link-id': link.id, 'data-mode': link.mode },
    h(
      'p',
      { class: 'erchub-review-link-line' },
      h('a', { class: 'erchub-review-link', href: url, target: '_blank', rel: 'noopener' }, url)
    ),
    h('p', { class: 'erchub-buttons' }, copyButton(url, 'Copy link')),
    h(
      'p',
      { class: 'erchub-review-link-facts' },
      h('span', { class: 'erchub-review-link-mode' }, modeText(link.mode)),
      ', ',
      expiryText(link)
    ),
    link.blind_cannot_hide
      ? h(
          'p',
          { class: 'erchub-blind-note', role: 'note' },
          h('strong', {}, 'What blind mode cannot hide: '),
          link.blind_cannot_hide
        )
      : null
  );
}

export interface ReviewLinksOptions {
  /** the base of the links' full addresses (the hub's host, else the page's origin) */
  base: () => string;
}

/**
 * The ERC panel's "Review links" of the author's own candidate: every link with its state,
 * uses, Copy and Revoke; a form making another, whose link is shown to send.
 */
export class ReviewLinksView {
  readonly node: HTMLElement;

  constructor(
    private readonly api: ErchubApi,
    private readonly options: ReviewLinksOptions
  ) {
    this.create.addEventListener('click', () => void this.createLink());
    this.node = h(
      'section',
      { class: 'erchub-section erchub-review-links-section', hidden: true },
      h('div', { class: 'erchub-section-header' }, h('h3', {}, 'Review links'), this.reloadButton),
      h(
        'p',
        { class: 'erchub-hint' },
        'The candidate stays unpublished. Whoever has one of its review links may read it, download it and check it: nothing else.'
      ),
      this.list,
      h(
        'details',
        { class: 'erchub-review-new' },
        h('summary', {}, 'New review link'),
        this.choice.node,
        h('div', { class: 'erchub-buttons' }, this.create),
        this.created
      )
    );
    this.reloadButton.addEventListener('click', () => void this.reload());
  }

  /** Show the links of `compendiumId`, the user's own candidate. */
  show(compendiumId: string): void {
    const changed = compendiumId !== this.compendiumId;
    this.compendiumId = compendiumId;
    this.node.hidden = false;
    if (changed) {
      replaceChildren(this.created);
      void this.reload();
    }
  }

  hide(): void {
    this.compendiumId = null;
    this.node.hidden = true;
    replaceChildren(this.list);
    replaceChildren(this.created);
  }

  /** Read the links again (a link was made elsewhere, a reviewer used one). */
  async reload(): Promise<void> {
    const id = this.compendiumId;
    if (id === null) {
      return;
    }
    this.list.dataset.state = 'loading';
    let links: ReviewLink[];
    try {
      links = await this.api.reviewLinks(id);
    } catch (error) {
      if (this.compendiumId === id) {
        this.list.dataset.state = 'error';
        replaceChildren(
          this.list,
          errorBox(`The review links cannot be read: ${errorMessage(error)}`)
        );
      }
      return;
    }
    if (this.compendiumId !== id) {
      return;
    }
    this.list.dataset.state = 'ready';
    replaceChildren(
      this.list,
      links.length === 0
        ? h('p', { class: 'erchub-hint erchub-no-review-links' }, 'No review link yet.')
        : h(
            'ul',
            { class: 'erchub-review-link-list' },
            ...ordered(links).map(link => this.row(link))
          )
    );
  }

  private row(link: ReviewLink): HTMLElement {
    const state = linkState(link);
    const url = absoluteLinkUrl(link.url, this.options.base());
    const address =
      state === 'active'
        ? h('a', { class: 'erchub-review-link', href: url, target: '_blank', rel: 'noopener' }, url)
        : h('s', { class: 'erchub-review-link' }, url);
    const revoke = h(
      'button',
      { type: 'button', class: 'erchub-review-revoke jp-mod-styled jp-mod-warn' },
      'Revoke'
    );
    revoke.addEventListener('click', () => void this.revoke(link, revoke));
    return h(
      'li',
      { class: 'erchub-review-link-item', 'data-link-id': link.id, 'data-state': state },
      h('div', { class: 'erchub-review-link-line' }, address),
      h(
        'div',
        { class: 'erchub-review-link-facts' },
        h('span', { class: 'erchub-review-link-mode' }, link.mode),
        ' · ',
        h('span', { class: 'erchub-review-link-uses' }, usesText(link.uses)),
        ' · ',
        state === 'revoked'
          ? h('span', { class: 'erchub-review-link-state' }, 'revoked')
          : expiryText(link)
      ),
      state === 'active' ? h('div', { class: 'erchub-buttons' }, copyButton(url), revoke) : null
    );
  }

  private async revoke(link: ReviewLink, button: HTMLButtonElement): Promise<void> {
    const id = this.compendiumId;
    if (id === null) {
      return;
    }
    button.disabled = true;
    try {
      await this.api.revokeReviewLink(id, link.id);
    } catch (error) {
      button.disabled = false;
      button
        .closest('li')
        ?.appendChild(errorBox(`The link was not revoked: ${errorMessage(error)}`));
      return;
    }
    await this.reload();
  }

  private async createLink(): Promise<void> {
    const id = this.compendiumId;
    if (id === null) {
      return;
    }
    let request: ReviewLinkRequest;
    try {
      request = this.choice.value;
    } catch (error) {
      replaceChildren(this.created, errorBox(errorMessage(error)));
      return;
    }
    this.create.disabled = true;
    this.choice.disabled = true;
    try {
      const link = await this.api.createReviewLink(id, request);
      if (this.compendiumId !== id) {
        return;
      }
      replaceChildren(
        this.created,
        h('p', {}, 'Send this link to the journal’s editor:'),
        linkToSend(link, this.options.base())
      );
    } catch (error) {
      replaceChildren(this.created, errorBox(`No review link was made: ${errorMessage(error)}`));
      return;
    } finally {
      this.create.disabled = false;
      this.choice.disabled = false;
    }
    await this.reload();
  }

  private compendiumId: string | null = null;
  private readonly choice = new LinkChoice();
  private readonly list = h('div', { class: 'erchub-review-links', 'data-state': 'empty' });
  private readonly created = h('div', { class: 'erchub-review-created' });
  private readonly create = h(
    'button',
    { type: 'button', class: 'erchub-review-create jp-mod-styled jp-mod-accept' },
    'Create review link'
  );
  private readonly reloadButton = h(
    'button',
    {
      type: 'button',
      class: 'erchub-review-reload jp-mod-styled',
      title: 'Read the links and their uses again'
    },
    'Reload'
  );
}
