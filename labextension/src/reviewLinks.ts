/**
 * Review links (the journal's workflow): what the erc service answers about a link, the
 * request that makes one from the author's choices, and how a link is shown (its full URL,
 * state, expiry, uses, mode). Pure: no JupyterLab imports.
 */

/** open: the reviewer sees the authors; blind: the authors are hidden from them */
export type LinkMode = 'open' | 'blind';

export const LINK_MODES: readonly LinkMode[] = ['open', 'blind'];

/** A review link as the erc service answers it (`PUT /compendium/{id}/link`, `GET /link`). */
export interface ReviewLink {
  id: string;
  compendium_id: string;
  /** who made it (the compendium's author) */
  user: string;
  mode: LinkMode;
  /** ISO 8601 (UTC), null: it does not expire */
  expires: string | null;
  created: string | null;
  /** ISO 8601 when it was revoked, else null */
  revoked: string | null;
  /** neither revoked nor expired */
  active: boolean;
  /** how often it was used (a landing page seen, a download, a check), never by whom */
  uses: number;
  /** the service's path of the link's own page, e.g. `/services/erc/link/<id>` */
  url: string;
  /** blind links: what blind mode cannot hide, in the service's words */
  blind_cannot_hide?: string;
}

/** The body of `PUT erchub/compendium/{id}/link`. */
export interface ReviewLinkRequest {
  mode: LinkMode;
  /** ISO 8601 date-time; none: the link does not expire */
  expires?: string;
}

/** `YYYY-MM-DD`, as a date input gives it */
const DAY = /^(\d{4})-(\d{2})-(\d{2})$/;

/**
 * The expiry of a link that works through the whole chosen day (UTC), as the landing page's
 * form makes it: `2027-01-31` -> `2027-01-31T23:59:59Z`; '' (no day) -> null. A day that is
 * no calendar day is an Error naming it.
 */
export function expiryOfDay(day: string): string | null {
  const text = day.trim();
  if (text === '') {
    return null;
  }
  const match = DAY.exec(text);
  const date = match ? new Date(`${text}T00:00:00Z`) : null;
  if (
    match === null ||
    date === null ||
    Number.isNaN(date.getTime()) ||
    date.getUTCDate() !== Number(match[3])
  ) {
    throw new Error(`the expiry ${JSON.stringify(text)} is no day (YYYY-MM-DD)`);
  }
  return `${text}T23:59:59Z`;
}

/** The request for a link of `mode` that expires at the end of `day` ('' for never). */
export function reviewLinkRequest(mode: LinkMode, day: string): ReviewLinkRequest {
  const expires = expiryOfDay(day);
  return expires === null ? { mode } : { mode, expires };
}

/** A day as a date input's `min` wants it: `YYYY-MM-DD` of `now` in UTC (a link expiring at
 * its end is still in the future). */
export function utcDay(now: Date): string {
  return now.toISOString().slice(0, 10);
}

/**
 * The link's full address, to send to an editor: the service's `url` (a path) made absolute
 * against `base` (the hub's host when it has one of its own, else the page's origin). A URL
 * that is already absolute stays as it is.
 */
export function absoluteLinkUrl(url: string, base: string): string {
  return new URL(url, base.replace(/\/+$/, '') + '/').href;
}

export type LinkState = 'active' | 'revoked' | 'expired';

export function linkState(link: ReviewLink): LinkState {
  if (link.active) {
    return 'active';
  }
  return link.revoked ? 'revoked' : 'expired';
}

/** How often a link was used, in words. */
export function usesText(uses: number): string {
  if (uses === 0) {
    return 'not used yet';
  }
  return uses === 1 ? 'used once' : `used ${uses} times`;
}

/** A mode as the author chooses it. */
export function modeText(mode: LinkMode): string {
  return mode === 'blind' ? 'blind (authors hidden)' : 'open (authors shown)';
}

/** When a link stops working, in words: `expires 2027-01-31 23:59 UTC`, `does not expire`;
 * `expired …` once it has. */
export function expiryText(link: Pick<ReviewLink, 'expires' | 'active' | 'revoked'>): string {
  if (link.expires === null) {
    return 'does not expire';
  }
  const date = new Date(link.expires);
  const shown = Number.isNaN(date.getTime())
    ? link.expires
    : `${date.toISOString().slice(0, 10)} ${date.toISOString().slice(11, 16)} UTC`;
  return !link.active && !link.revoked ? `expired ${shown}` : `expires ${shown}`;
}

/** The links of a list in the order the panel shows them: those in force first, each group
 * in the service's order. */
export function ordered(links: readonly ReviewLink[]): ReviewLink[] {
  return [...links.filter(link => link.active), ...links.filter(link => !link.active)];
}
