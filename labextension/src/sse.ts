/**
 * Server-Sent Events, parsed as the HTML standard describes them
 * (https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation)
 * from a stream read in chunks: a line, an event or a UTF-8 character may be split between
 * two reads. No JupyterLab imports: EventSource cannot send the XSRF and token headers of a
 * jupyter-server request, so the streams are read with fetch and parsed here.
 */

/** One dispatched event. */
export interface SseEvent {
  /** the `event:` field, `message` when absent */
  event: string;
  /** the `data:` lines joined by newlines */
  data: string;
  /** the last `id:` seen (it carries over to later events), '' when none */
  id: string;
}

/** Turns chunks of an event stream's text into events. */
export class SseParser {
  /** Parse one chunk; returns the events it completes. */
  feed(chunk: string): SseEvent[] {
    const events: SseEvent[] = [];
    let text = this.pending + chunk;
    if (this.skipLineFeed && text.startsWith('\n')) {
      text = text.slice(1);
    }
    this.skipLineFeed = false;
    let start = 0;
    for (let index = 0; index < text.length; index++) {
      const char = text[index];
      if (char !== '\n' && char !== '\r') {
        continue;
      }
      this.line(text.slice(start, index), events);
      if (char === '\r') {
        if (index + 1 === text.length) {
          // a CR at the end of the chunk: its LF, if any, comes with the next chunk
          this.skipLineFeed = true;
        } else if (text[index + 1] === '\n') {
          index++;
        }
      }
      start = index + 1;
    }
    this.pending = text.slice(start);
    return events;
  }

  /**
   * The stream ended. As the standard says, an event that was not ended by a blank line is
   * discarded; the parser is ready for a new stream (the last event id is kept for resuming).
   */
  end(): void {
    this.pending = '';
    this.skipLineFeed = false;
    this.eventType = '';
    this.dataLines = [];
  }

  /** The id of the last event, to resume a stream with `Last-Event-ID`. */
  get lastEventId(): string {
    return this.lastId;
  }

  private line(line: string, events: SseEvent[]): void {
    if (line === '') {
      this.dispatch(events);
      return;
    }
    if (line.startsWith(':')) {
      return; // a comment, e.g. a keep-alive
    }
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) {
      value = value.slice(1);
    }
    switch (field) {
      case 'event':
        this.eventType = value;
        break;
      case 'data':
        this.dataLines.push(value);
        break;
      case 'id':
        if (!value.includes('\0')) {
          this.lastId = value;
        }
        break;
      default:
        // `retry` and unknown fields are ignored: reconnecting is the caller's business
        break;
    }
  }

  private dispatch(events: SseEvent[]): void {
    const type = this.eventType;
    const lines = this.dataLines;
    this.eventType = '';
    this.dataLines = [];
    if (lines.length === 0) {
      return;
    }
    events.push({ event: type || 'message', data: lines.join('\n'), id: this.lastId });
  }

  private pending = '';
  private skipLineFeed = false;
  private eventType = '';
  private dataLines: string[] = [];
  private lastId = '';
}

/**
 * The events of a response body, in order, as they arrive. UTF-8 is decoded across chunk
 * boundaries. `parser` may be passed in to keep its last event id after the stream ends.
 */
export async function* readEvents(
  body: ReadableStream<Uint8Array>,
  parser: SseParser = new SseParser()
): AsyncGenerator<SseEvent, void, undefined> {
  const reader = body.getReader();
  const decoder = new TextDecoder('utf-8');
  let finished = false;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) {
        finished = true;
        break;
      }
      yield* parser.feed(decoder.decode(value, { stream: true }));
    }
    yield* parser.feed(decoder.decode());
  } finally {
    parser.end();
    if (!finished) {
      // the consumer stopped early (or reading failed): close the connection
      await reader.cancel().catch(() => undefined);
    }
    reader.releaseLock();
  }
}
