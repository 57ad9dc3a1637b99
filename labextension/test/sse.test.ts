import { describe, expect, it } from 'vitest';

import { readEvents, SseEvent, SseParser } from '../src/sse';

function feedAll(chunks: string[]): SseEvent[] {
  const parser = new SseParser();
  return chunks.flatMap(chunk => parser.feed(chunk));
}

function streamOf(chunks: Uint8Array[]): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    start(controller) {
      chunks.forEach(chunk => controller.enqueue(chunk));
      controller.close();
    }
  });
}

async function collect(body: ReadableStream<Uint8Array>): Promise<SseEvent[]> {
  const events: SseEvent[] = [];
  for await (const event of readEvents(body)) {
    events.push(event);
  }
  return events;
}

const STREAM =
  'event: progress\ndata: {"cell": 1, "total": 2}\n\n' +
  ': keep-alive\n\n' +
  'id: 7\nevent: result\ndata: {"values": {}}\n\n';

describe('SseParser', () => {
  it('parses typed events with their data', () => {
    expect(feedAll([STREAM])).toEqual([
      { event: 'progress', data: '{"cell": 1, "total": 2}', id: '' },
      { event: 'result', data: '{"values": {}}', id: '7' }
    ]);
  });

  it('gives the same events however the stream is split', () => {
    const whole = feedAll([STREAM]);
    for (let size = 1; size <= STREAM.length; size++) {
      const chunks: string[] = [];
      for (let start = 0; start < STREAM.length; start += size) {
        chunks.push(STREAM.slice(start, start + size));
      }
      expect(feedAll(chunks)).toEqual(whole);
    }
  });

  it('accepts CRLF and CR line ends, also when CRLF is split between chunks', () => {
    const crlf = 'event: a\r\ndata: 1\r\n\r\nevent: b\rdata: 2\r\r';
    const expected = [
      { event: 'a', data: '1', id: '' },
      { event: 'b', data: '2', id: '' }
    ];
    expect(feedAll([crlf])).toEqual(expected);
    expect(feedAll(['event: a\r', '\ndata: 1\r', '\n\r', '\nevent: b\rdata: 2\r\r'])).toEqual(
      expected
    );
  });

  it('joins data lines with newlines and defaults the type to message', () => {
    expect(feedAll(['data: one\ndata:two\ndata\n\n'])).toEqual([
      { event: 'message', data: 'one\ntwo\n', id: '' }
    ]);
  });

  it('strips one space after the colon only', () => {
    expect(feedAll(['data:  two spaces\n\n'])[0].data).toBe(' two spaces');
  });

  it('dispatches nothing for an event without data, and keeps the last id', () => {
    const parser = new SseParser();
    expect(parser.feed('id: 3\nevent: ping\n\n')).toEqual([]);
    expect(parser.lastEventId).toBe('3');
    expect(parser.feed('data: x\n\n')).toEqual([{ event: 'message', data: 'x', id: '3' }]);
  });

  it('ignores comments and unknown fields', () => {
    expect(feedAll([': hello\nretry: 10\nfoo: bar\ndata: x\n\n'])).toEqual([
      { event: 'message', data: 'x', id: '' }
    ]);
  });

  it('waits for the blank line before dispatching', () => {
    const parser = new SseParser();
    expect(parser.feed('event: result\ndata: {"a": 1}\n')).toEqual([]);
    expect(parser.feed('\n')).toEqual([{ event: 'result', data: '{"a": 1}', id: '' }]);
  });

  it('discards an unfinished event when the stream ends', () => {
    const parser = new SseParser();
    expect(parser.feed('event: result\ndata: half')).toEqual([]);
    parser.end();
    expect(parser.feed('\n\ndata: next\n\n')).toEqual([{ event: 'message', data: 'next', id: '' }]);
  });
});

describe('readEvents', () => {
  it('decodes UTF-8 characters split between reads', async () => {
    const bytes = new TextEncoder().encode('data: {"title": "Größe π ✓"}\n\n');
    const chunks = Array.from(bytes, byte => Uint8Array.of(byte));
    expect(await collect(streamOf(chunks))).toEqual([
      { event: 'message', data: '{"title": "Größe π ✓"}', id: '' }
    ]);
  });

  it('yields events as they arrive and ignores a trailing partial event', async () => {
    const encoder = new TextEncoder();
    const events = await collect(
      streamOf([
        encoder.encode('event: step\ndata: {"step": "check"'),
        encoder.encode('}\n\nevent: log\ndata: x')
      ])
    );
    expect(events).toEqual([{ event: 'step', data: '{"step": "check"}', id: '' }]);
  });

  it('cancels the stream when the reader stops early', async () => {
    let canceled = false;
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('data: 1\n\ndata: 2\n\n'));
      },
      cancel() {
        canceled = true;
      }
    });
    for await (const event of readEvents(body)) {
      expect(event.data).toBe('1');
      break;
    }
    expect(canceled).toBe(true);
  });
});
