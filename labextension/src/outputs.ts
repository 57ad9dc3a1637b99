/**
 * How the panel shows a run's outputs and where the hub's pages are. No JupyterLab imports.
 */

/** One output of a run (`POST erchub/run`). */
export interface RunOutput {
  cell_id: string;
  cell_index: number;
  mime: string;
  /** base64 for image/png and image/jpeg, text otherwise */
  data: string;
}

/** What element shows an output: an image, a sandboxed frame for HTML, or preformatted
 * text. SVG is shown as an image too, so that its scripts never run. */
export type Display =
  | { element: 'img'; src: string }
  | { element: 'iframe'; srcdoc: string }
  | { element: 'pre'; text: string };

export function displayOf(output: RunOutput): Display {
  switch (output.mime) {
    case 'image/png':
    case 'image/jpeg':
      return {
        element: 'img',
        src: `data:${output.mime};base64,${output.data.replace(/\s/g, '')}`
      };
    case 'image/svg+xml':
      return {
        element: 'img',
        src: `data:image/svg+xml;charset=utf-8,${encodeURIComponent(output.data)}`
      };
    case 'text/html':
      return { element: 'iframe', srcdoc: output.data };
    default:
      return { element: 'pre', text: output.data };
  }
}

/**
 * The hub's root from the single-user server's `hubPrefix` page option (`/hub/` on a hub at
 * `/`, `/base/hub/` on a hub at `/base/`); '/' when the option is missing.
 */
export function hubRoot(hubPrefix: string): string {
  const prefix = hubPrefix.trim();
  if (prefix === '') {
    return '/';
  }
  const withSlash = prefix.endsWith('/') ? prefix : `${prefix}/`;
  return withSlash.replace(/hub\/$/, '') || '/';
}

/** The hub page that launches a compendium for readers and reviewers. */
export function launchPath(hubPrefix: string, compendiumId: string): string {
  return `${hubRoot(hubPrefix)}services/erc/launch/${encodeURIComponent(compendiumId)}`;
}

/** Where the hub is, from the single-user server's page options. */
export interface HubLocation {
  /** `hubPrefix`, e.g. `/hub/`; '' outside a hub */
  prefix: string;
  /** `hubHost`, e.g. `https://hub.example.org` when the hub is on another host (subdomains);
   * '' when it is this page's */
  host: string;
}

/** The absolute URL of the launch page, `origin` being this page's. */
export function launchUrl(hub: HubLocation, compendiumId: string, origin: string): string {
  const host = (hub.host || origin).replace(/\/+$/, '');
  return host + launchPath(hub.prefix, compendiumId);
}
