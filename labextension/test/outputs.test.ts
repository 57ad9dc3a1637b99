import { describe, expect, it } from 'vitest';

import { displayOf, hubRoot, launchPath, launchUrl, RunOutput } from '../src/outputs';

function output(mime: string, data: string): RunOutput {
  return { cell_id: 'plot', cell_index: 3, mime, data };
}

describe('displayOf', () => {
  it('shows PNG and JPEG as data URIs', () => {
    expect(displayOf(output('image/png', 'iVBO\nRw=='))).toEqual({
      element: 'img',
      src: 'data:image/png;base64,iVBORw=='
    });
    expect(displayOf(output('image/jpeg', '/9j/'))).toEqual({
      element: 'img',
      src: 'data:image/jpeg;base64,/9j/'
    });
  });

  it('shows SVG as an image, never inline', () => {
    const display = displayOf(
      output('image/svg+xml', '<svg xmlns="http://www.w3.org/2000/svg"><script>x</script></svg>')
    );
    expect(display.element).toBe('img');
    if (display.element === 'img') {
      expect(display.src.startsWith('data:image/svg+xml;charset=utf-8,%3Csvg')).toBe(true);
      expect(decodeURIComponent(display.src.split(',')[1])).toContain('<script>');
    }
  });

  it('shows HTML in a frame and anything else as text', () => {
    expect(displayOf(output('text/html', '<b>x</b>'))).toEqual({
      element: 'iframe',
      srcdoc: '<b>x</b>'
    });
    expect(displayOf(output('text/plain', 'a\nb'))).toEqual({ element: 'pre', text: 'a\nb' });
    expect(displayOf(output('application/json', '{}'))).toEqual({ element: 'pre', text: '{}' });
  });
});

describe('hub links', () => {
  it('finds the hub root from hubPrefix', () => {
    expect(hubRoot('/hub/')).toBe('/');
    expect(hubRoot('/hub')).toBe('/');
    expect(hubRoot('/base/hub/')).toBe('/base/');
    expect(hubRoot('')).toBe('/');
  });

  it('builds the launch link', () => {
    expect(launchPath('/hub/', 'AbC12')).toBe('/services/erc/launch/AbC12');
    expect(launchPath('/jh/hub/', 'a b')).toBe('/jh/services/erc/launch/a%20b');
    expect(launchPath('', 'x')).toBe('/services/erc/launch/x');
  });

  it('makes the link absolute on the hub host', () => {
    expect(launchUrl({ prefix: '/hub/', host: '' }, 'x', 'http://127.0.0.1:8000')).toBe(
      'http://127.0.0.1:8000/services/erc/launch/x'
    );
    expect(
      launchUrl(
        { prefix: '/hub/', host: 'https://hub.example.org/' },
        'x',
        'https://u.hub.example.org'
      )
    ).toBe('https://hub.example.org/services/erc/launch/x');
  });
});
