/**
 * What the results tab shows of a run (order, captions, bundles for rendermime, the side
 * panel's summary, the mark of an applied run) and where the hub's pages are. No JupyterLab
 * imports.
 */

/** One output as nbformat stores it (the fields the results tab reads). */
export interface NotebookOutput {
  output_type: string;
  /** stream */
  name?: string;
  text?: string | string[];
  /** display_data, execute_result, update_display_data */
  data?: Record<string, unknown>;
  metadata?: Record<string, unknown>;
  execution_count?: number | null;
  /** error */
  ename?: string;
  evalue?: string;
  traceback?: string[];
}

/** One code cell of a run (`POST erchub/run`), in notebook order. */
export interface RunCell {
  cell_id: string;
  /** the cell's index in the author's notebook */
  cell_index: number;
  /** the first line of its source that is not blank (cut, with an ellipsis) */
  source_line: string;
  /** named by the ERC's ui_bindings for showing results */
  bound: boolean;
  execution_count: number | null;
  /** the run's outputs */
  outputs: NotebookOutput[];
  /** the saved notebook's outputs */
  published: NotebookOutput[];
  /** outputs left out for their size */
  omitted_outputs: number;
  omitted_published: number;
}

/** A MIME bundle for JupyterLab's rendermime registry, as its OutputModel makes one: a stream
 * is `application/vnd.jupyter.stdout` (or `stderr`), an error its traceback as stderr. */
export interface Bundle {
  data: Record<string, unknown>;
  metadata: Record<string, unknown>;
}

export const STDOUT_MIME = 'application/vnd.jupyter.stdout';
export const STDERR_MIME = 'application/vnd.jupyter.stderr';

function joined(text: string | string[] | undefined): string {
  return Array.isArray(text) ? text.join('') : (text ?? '');
}

/** The bundle that shows an output; null for an output that shows nothing (an update of a
 * display, an unknown kind). */
export function bundleOf(output: NotebookOutput): Bundle | null {
  switch (output.output_type) {
    case 'stream':
      return {
        data: { [output.name === 'stderr' ? STDERR_MIME : STDOUT_MIME]: joined(output.text) },
        metadata: {}
      };
    case 'error':
      return {
        data: {
          [STDERR_MIME]:
            output.traceback && output.traceback.length > 0
              ? output.traceback.join('\n')
              : `${output.ename ?? 'Error'}: ${output.evalue ?? ''}`
        },
        metadata: {}
      };
    case 'display_data':
    case 'execute_result':
      return { data: output.data ?? {}, metadata: output.metadata ?? {} };
    default:
      return null;
  }
}

/** The cells to show, in notebook order, each once (the server sends them so; a result
 * from elsewhere is put right rather than shown jumbled). */
export function inNotebookOrder(cells: readonly RunCell[]): RunCell[] {
  const seen = new Set<string>();
  const ordered: RunCell[] = [];
  for (const cell of [...cells].sort((a, b) => a.cell_index - b.cell_index)) {
    if (!seen.has(cell.cell_id)) {
      seen.add(cell.cell_id);
      ordered.push(cell);
    }
  }
  return ordered;
}

/** The caption above a cell's outputs: "Cell 3" (counted from 1, as a reader counts) and the
 * first line of its source. */
export function captionOf(cell: RunCell): { label: string; source: string } {
  return { label: `Cell ${cell.cell_index + 1}`, source: cell.source_line };
}

/** What a cell's outputs left out say, or '' when none was. */
export function omittedNote(count: number): string {
  if (count === 0) {
    return '';
  }
  const what = count === 1 ? 'One output is' : `${count} outputs are`;
  return `${what} too large to show here: run the notebook to see ${count === 1 ? 'it' : 'them'}.`;
}

const IMAGE_PREFIX = 'image/';

/** How many figures (outputs with an image) and other outputs a run has. */
export function countOutputs(cells: readonly RunCell[]): { figures: number; others: number } {
  let figures = 0;
  let others = 0;
  for (const cell of cells) {
    for (const output of cell.outputs) {
      const bundle = bundleOf(output);
      if (bundle === null) {
        continue;
      }
      if (Object.keys(bundle.data).some(mime => mime.startsWith(IMAGE_PREFIX))) {
        figures += 1;
      } else {
        others += 1;
      }
    }
  }
  return { figures, others };
}

/** The one line the side panel keeps about a run, e.g. "2 figures and 1 other output". */
export function runSummary(cells: readonly RunCell[]): string {
  const { figures, others } = countOutputs(cells);
  if (figures === 0 && others === 0) {
    return 'The run produced no output.';
  }
  const parts = [];
  if (figures > 0) {
    parts.push(`${figures} ${figures === 1 ? 'figure' : 'figures'}`);
  }
  if (others > 0) {
    const noun = others === 1 ? 'output' : 'outputs';
    parts.push(figures > 0 ? `${others} other ${noun}` : `${others} ${noun}`);
  }
  return parts.join(' and ');
}

/** The run's time as the reader's clock shows it (the server sends ISO 8601 in UTC). */
export function localTime(iso: string, locale?: string): string {
  const date = new Date(iso);
  return Number.isNaN(date.getTime())
    ? iso
    : date.toLocaleString(locale, { dateStyle: 'medium', timeStyle: 'medium' });
}

/** The cell metadata that marks outputs put into a notebook from a parameterised run. */
export interface ParameterisedRun {
  values: Record<string, unknown>;
  time: string;
}

/** A cell's `erchub` metadata with the run recorded, keeping what else is there. */
export function markedRun(erchub: unknown, run: ParameterisedRun): Record<string, unknown> {
  const kept =
    erchub !== null && typeof erchub === 'object' && !Array.isArray(erchub)
      ? (erchub as Record<string, unknown>)
      : {};
  return { ...kept, parameterised_run: { values: { ...run.values }, time: run.time } };
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
