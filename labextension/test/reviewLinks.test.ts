import { describe, expect, it } from 'vitest';

import {
  absoluteLinkUrl,
  expiryOfDay,
  expiryText,
  linkState,
  modeText,
  ordered,
  ReviewLink,
  reviewLinkRequest,
  usesText,
  utcDay
} from '../src/reviewLinks';

function link(overrides: Partial<ReviewLink> = {}): ReviewLink {
  return {
    id: 'k'.repeat(43),
    compendium_id: 'c1',
    user: 'alice',
    mode: 'blind',
    expires: null,
    created: '2026-12-07T10:00:00+00:00',
    revoked: null,
    active: true,
    uses: 0,
    url: `/services/erc/link/${'k'.repeat(43)}`,
    ...overrides
  };
}

describe('expiryOfDay', () => {
  it('makes a link work through the whole chosen day (UTC)', () => {
    expect(expiryOfDay('2027-01-31')).toBe('2027-01-31T23:59:59Z');
    expect(expiryOfDay(' 2028-02-29 ')).toBe('2028-02-29T23:59:59Z');
  });

  it('is null without a day', () => {
    expect(expiryOfDay('')).toBeNull();
    expect(expiryOfDay('   ')).toBeNull();
  });

  it('refuses what is no day, naming it', () => {
    expect(() => expiryOfDay('2027-02-30')).toThrow(/"2027-02-30" is no day/);
    expect(() => expiryOfDay('2027-13-01')).toThrow(/no day/);
    expect(() => expiryOfDay('31.01.2027')).toThrow(/YYYY-MM-DD/);
    expect(() => expiryOfDay('next week')).toThrow(/no day/);
  });
});

describe('reviewLinkRequest', () => {
  it('sends an expiry only when a day was chosen', () => {
    expect(reviewLinkRequest('blind', '')).toEqual({ mode: 'blind' });
    expect(reviewLinkRequest('open', '2027-01-31')).toEqual({
      mode: 'open',
      expires: '2027-01-31T23:59:59Z'
    });
  });
});

describe('utcDay', () => {
  it('is the UTC day of a moment', () => {
    expect(utcDay(new Date('2026-12-07T23:30:00-02:00'))).toBe('2026-12-08');
    expect(utcDay(new Date('2026-12-07T00:00:00Z'))).toBe('2026-12-07');
  });
});

describe('absoluteLinkUrl', () => {
  it('makes the service path absolute against the page origin or the hub host', () => {
    const path = '/services/erc/link/abc';
    expect(absoluteLinkUrl(path, 'http://127.0.0.1:8000')).toBe(
      'http://127.0.0.1:8000/services/erc/link/abc'
    );
    expect(absoluteLinkUrl(path, 'https://hub.example.org/')).toBe(
      'https://hub.example.org/services/erc/link/abc'
    );
    // a hub under a prefix: the service's path holds it already
    expect(absoluteLinkUrl('/base/services/erc/link/abc', 'https://example.org')).toBe(
      'https://example.org/base/services/erc/link/abc'
    );
  });

  it('keeps an absolute URL', () => {
    expect(absoluteLinkUrl('https://other.example/services/erc/link/x', 'http://a')).toBe(
      'https://other.example/services/erc/link/x'
    );
  });
});

describe('how a link is shown', () => {
  it('tells active, revoked and expired links apart', () => {
    expect(linkState(link())).toBe('active');
    expect(linkState(link({ active: false, revoked: '2026-12-08T00:00:00+00:00' }))).toBe(
      'revoked'
    );
    expect(linkState(link({ active: false, expires: '2026-12-01T23:59:59+00:00' }))).toBe(
      'expired'
    );
  });

  it('counts uses in words', () => {
    expect(usesText(0)).toBe('not used yet');
    expect(usesText(1)).toBe('used once');
    expect(usesText(12)).toBe('used 12 times');
  });

  it('names the modes as the author chooses them', () => {
    expect(modeText('blind')).toBe('blind (authors hidden)');
    expect(modeText('open')).toBe('open (authors shown)');
  });

  it('says when a link stops working, in UTC', () => {
    expect(expiryText(link())).toBe('does not expire');
    expect(expiryText(link({ expires: '2027-01-31T23:59:59+00:00' }))).toBe(
      'expires 2027-01-31 23:59 UTC'
    );
    expect(
      expiryText(link({ expires: '2026-12-01T23:59:59+00:00', active: false, revoked: null }))
    ).toBe('expired 2026-12-01 23:59 UTC');
    expect(expiryText(link({ expires: 'someday' }))).toBe('expires someday');
  });

  it('lists the links in force first, each group in the service order', () => {
    const revoked = link({ id: 'r', active: false, revoked: '2026-12-08T00:00:00+00:00' });
    const first = link({ id: 'a' });
    const second = link({ id: 'b', mode: 'open' });
    expect(ordered([revoked, first, second]).map(found => found.id)).toEqual(['a', 'b', 'r']);
  });
});
