/**
 * Requests to the erchub server extension (`<base_url>erchub/...`), authenticated like every
 * jupyter-server request (ServerConnection adds the token and XSRF headers). Errors become
 * ApiError with the server's one-line message.
 */

import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { O2rMetadata } from './metadata';
import { JsonValue, ParametersResponse } from './parameters';
import { RunCell } from './outputs';
import { ReviewLink, ReviewLinkRequest } from './reviewLinks';
import { readEvents, SseEvent, SseParser } from './sse';

/** `GET erchub/context` */
export interface ErcContext {
  compendium_id: string | null;
  job_id: string | null;
  /** whether the session's compendium is seen through a review link (a reviewer's session) */
  review_link: boolean;
  erc_service: boolean;
  /** the session's user */
  user: string;
  /** with `?path=`: the compendium the panel shows for that notebook */
  notebook?: NotebookCompendium;
}

/** Where a notebook's compendium comes from: the session's launch, or this session's
 * publishing of the notebook's folder; null: not yet published. */
export type NotebookSource = 'launched' | 'published';

/** `GET erchub/context?path=` `notebook` */
export interface NotebookCompendium {
  path: string;
  compendium_id: string | null;
  source: NotebookSource | null;
  /** whether the user may change its metadata (its author) */
  editable: boolean;
}

/** How a folder becomes a compendium. */
export type PublishMode = 'new' | 'new_version' | 'derived';

/** `GET erchub/publish?path=&folder=`: what publishing would pack. */
export interface PublishPreview {
  path: string;
  /** folders from the server's root, `/` being the root */
  folder: string;
  proposed_folder: string;
  folders: string[];
  files: { path: string; size: number; written: boolean }[];
  total_files: number;
  total_bytes: number;
  outputs: { state: OutputState; message: string };
  modes: PublishMode[];
  /** the launched compendium the modes other than `new` relate to */
  related_compendium: string | null;
  metadata: { o2r: O2rMetadata };
  missing: string[];
  warnings: string[];
}

/** Whether a notebook's stored outputs can be the reference of its check. */
export type OutputState = 'current' | 'missing' | 'stale';

/** The body of `POST erchub/publish`. */
export interface PublishRequest {
  path: string;
  folder: string;
  mode: PublishMode;
  metadata: { o2r: O2rMetadata };
}

/** The result of `POST erchub/run`. */
export interface RunResult {
  path: string;
  values: Record<string, JsonValue>;
  /** when the run ended, ISO 8601 in UTC */
  time: string;
  duration: number;
  /** every code cell with outputs, in notebook order */
  cells: RunCell[];
}

/** `POST erchub/publish` */
export interface Candidate {
  compendium_id: string;
  candidate: boolean;
  folder: string;
  files: number;
  mode: PublishMode;
  /** `{is_new_version_of|derived_from: id}`, null for a new compendium */
  relation: { [relation: string]: string } | null;
  metadata: { o2r?: O2rMetadata };
}

/** `GET erchub/compendium/{id}` (the fields the panel uses). */
export interface Compendium {
  id: string;
  /** its author */
  user: string;
  candidate: boolean;
  metadata: { o2r?: O2rMetadata };
}

/** `PUT erchub/compendium/{id}/metadata` */
export interface MetadataSaved {
  id: string;
  candidate: boolean;
  metadata: { o2r: O2rMetadata };
}

/** A request that failed: the HTTP status (0 when the server was not reached) and the
 * server's message. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** The message of a failed response: the JSON `message`, else the status line. */
async function responseError(response: Response): Promise<ApiError> {
  let message = '';
  try {
    const body = (await response.json()) as { message?: unknown; reason?: unknown };
    message = typeof body.message === 'string' ? body.message : '';
    if (!message && typeof body.reason === 'string') {
      message = body.reason;
    }
  } catch {
    // not JSON: an HTML error page of a proxy, say
  }
  return new ApiError(
    response.status,
    message || `${response.status} ${response.statusText}`.trim()
  );
}

/** Words for an error, to show to a person. */
export function errorMessage(error: unknown): string {
  if (error instanceof ApiError) {
    return error.message;
  }
  if (error instanceof ServerConnection.NetworkError) {
    return `The Jupyter server cannot be reached (${error.message})`;
  }
  if (error instanceof Error) {
    return error.message;
  }
  return String(error);
}

export function isAbort(error: unknown): boolean {
  return error instanceof DOMException && error.name === 'AbortError';
}

export class ErchubApi {
  constructor(readonly settings: ServerConnection.ISettings = ServerConnection.makeSettings()) {}

  /** The URL of an endpoint, e.g. `url('job', id, 'report')`. */
  url(...parts: string[]): string {
    return URLExt.join(this.settings.baseUrl, 'erchub', ...parts.map(encodeURIComponent));
  }

  /** The session's context; with `path`, also that notebook's compendium. */
  async context(path?: string, signal?: AbortSignal): Promise<ErcContext> {
    const query = path === undefined ? '' : `?path=${encodeURIComponent(path)}`;
    return this.json<ErcContext>(`${this.url('context')}${query}`, { signal });
  }

  async parameters(path: string, signal?: AbortSignal): Promise<ParametersResponse> {
    return this.json<ParametersResponse>(
      `${this.url('parameters')}?path=${encodeURIComponent(path)}`,
      {
        signal
      }
    );
  }

  /**
   * Run the notebook with `values`, calling `onProgress` after each code cell. Resolves with the
   * result; rejects with the server's 400/422 message.
   */
  async run(
    path: string,
    values: Record<string, JsonValue>,
    onProgress: (cell: number, total: number) => void,
    signal?: AbortSignal
  ): Promise<RunResult> {
    const response = await this.request(this.url('run'), {
      method: 'POST',
      body: JSON.stringify({ path, values }),
      headers: { Accept: 'text/event-stream', 'Content-Type': 'application/json' },
      signal
    });
    if (!isEventStream(response) || response.body === null) {
      return (await response.json()) as RunResult;
    }
    for await (const event of readEvents(response.body)) {
      const data = parseData(event);
      if (event.event === 'progress') {
        const { cell, total } = data as { cell: number; total: number };
        onProgress(cell, total);
      } else if (event.event === 'result') {
        return data as RunResult;
      } else if (event.event === 'error') {
        const { status, message } = data as { status?: number; message?: string };
        throw new ApiError(status ?? 500, message ?? 'the run failed');
      }
    }
    throw new ApiError(0, 'The run ended without a result (the connection was closed)');
  }

  /** What publishing `path` from `folder` (default: the proposed one) would pack. */
  async publishPreview(path: string, folder?: string): Promise<PublishPreview> {
    const query = new URLSearchParams({ path, ...(folder === undefined ? {} : { folder }) });
    return this.json<PublishPreview>(`${this.url('publish')}?${query.toString()}`);
  }

  /** Upload the folder as a candidate with the author's metadata. */
  async publish(request: PublishRequest): Promise<Candidate> {
    return this.json<Candidate>(this.url('publish'), {
      method: 'POST',
      body: JSON.stringify(request)
    });
  }

  async compendium(id: string): Promise<Compendium> {
    return this.json<Compendium>(this.url('compendium', id));
  }

  /** Save metadata; `publish: false` keeps a candidate a candidate, `true` publishes it. */
  async saveMetadata(id: string, o2r: O2rMetadata, publish: boolean): Promise<MetadataSaved> {
    const query = publish ? '' : '?publish=false';
    return this.json<MetadataSaved>(`${this.url('compendium', id, 'metadata')}${query}`, {
      method: 'PUT',
      body: JSON.stringify({ o2r })
    });
  }

  async startJob(compendiumId: string): Promise<string> {
    const body = await this.json<{ job_id: string }>(this.url('job'), {
      method: 'POST',
      body: JSON.stringify({ compendium_id: compendiumId })
    });
    return body.job_id;
  }

  /** The session user's review links of a compendium (its author's). */
  async reviewLinks(compendiumId: string): Promise<ReviewLink[]> {
    const body = await this.json<{ results: ReviewLink[] }>(
      this.url('compendium', compendiumId, 'link')
    );
    return body.results;
  }

  /** Make a review link of a compendium (the same one again for the same mode and expiry). */
  async createReviewLink(compendiumId: string, request: ReviewLinkRequest): Promise<ReviewLink> {
    return this.json<ReviewLink>(this.url('compendium', compendiumId, 'link'), {
      method: 'PUT',
      body: JSON.stringify(request)
    });
  }

  /** Revoke a review link (its id travels in the body: it is a secret, URLs are logged). */
  async revokeReviewLink(compendiumId: string, linkId: string): Promise<void> {
    await this.request(this.url('compendium', compendiumId, 'link'), {
      method: 'DELETE',
      body: JSON.stringify({ link: linkId })
    });
  }

  /**
   * The events of a job as they happen (`GET erchub/job/{id}/logs`), ending after the stream
   * ends. `parser` keeps the last event id, to resume with `Last-Event-ID`.
   */
  async *jobEvents(
    jobId: string,
    parser: SseParser,
    signal?: AbortSignal
  ): AsyncGenerator<SseEvent> {
    const headers: Record<string, string> = { Accept: 'text/event-stream' };
    if (parser.lastEventId) {
      headers['Last-Event-ID'] = parser.lastEventId;
    }
    const response = await this.request(this.url('job', jobId, 'logs'), { headers, signal });
    if (response.body === null) {
      return;
    }
    yield* readEvents(response.body, parser);
  }

  /** The check report's HTML. */
  async report(jobId: string, signal?: AbortSignal): Promise<string> {
    const response = await this.request(this.url('job', jobId, 'report'), { signal });
    return response.text();
  }

  /** A request; rejects with ApiError unless the answer is 2xx. */
  private async request(url: string, init: RequestInit = {}): Promise<Response> {
    // 'no-cache' rather than ServerConnection's 'no-store', whose cache buster adds a query
    // argument the endpoints do not know
    const response = await ServerConnection.makeRequest(
      url,
      { cache: 'no-cache', ...init },
      this.settings
    );
    if (!response.ok) {
      throw await responseError(response);
    }
    return response;
  }

  private async json<T>(url: string, init: RequestInit = {}): Promise<T> {
    const response = await this.request(url, init);
    return (await response.json()) as T;
  }
}

function isEventStream(response: Response): boolean {
  return (response.headers.get('Content-Type') ?? '').startsWith('text/event-stream');
}

/** An event's JSON data; a malformed one is an error naming the event. */
export function parseData(event: SseEvent): unknown {
  try {
    return JSON.parse(event.data) as unknown;
  } catch {
    throw new ApiError(0, `The server sent a malformed ${event.event} event`);
  }
}
