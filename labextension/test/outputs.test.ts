import { describe, expect, it } from 'vitest';

import {
  bundleOf,
  captionOf,
  countOutputs,
  hubRoot,
  inNotebookOrder,
  launchPath,
  launchUrl,
  localTime,
  markedRun,
  NotebookOutput,
  omittedNote,
  RunCell,
  runSummary,
  STDERR_MIME,
  STDOUT_MIME
} from '../src/outputs';

const figure: NotebookOutput = {
  output_type: 'display_data',
  data: { 'image/png': 'iVBORw==', 'text/plain': '<Figure>' },
  metadata: { 'image/png': { width: 480 } }
};
const printed: NotebookOutput = { output_type: 'stream', name: 'stdout', text: ['4', '\n'] };

function cell(index: number, outputs: NotebookOutput[], source = `line ${index}`): RunCell {
  return {
    cell_id: `c${index}`,
    cell_index: index,
    source_line: source,
    bound: false,
    execution_count: index,
    outputs,
    published: [],
    omitted_outputs: 0,
    omitted_published: 0
  };
}

describe('bundleOf', () => {
  it('shows streams and errors as rendermime shows them in a notebook', () => {
    expect(bundleOf(printed)).toEqual({ data: { [STDOUT_MIME]: '4\n' }, metadata: {} });
    expect(bundleOf({ output_type: 'stream', name: 'stderr', text: 'careful' })).toEqual({
      data: { [STDERR_MIME]: 'careful' },
      metadata: {}
    });
    expect(
      bundleOf({ output_type: 'error', ename: 'ValueError', evalue: 'n', traceback: ['a', 'b'] })
    ).toEqual({ data: { [STDERR_MIME]: 'a\nb' }, metadata: {} });
    expect(bundleOf({ output_type: 'error', ename: 'ValueError', evalue: 'n' })).toEqual({
      data: { [STDERR_MIME]: 'ValueError: n' },
      metadata: {}
    });
  });

  it('keeps the data and metadata of results and displays', () => {
    expect(bundleOf(figure)).toEqual({ data: figure.data, metadata: figure.metadata });
    const table = { output_type: 'execute_result', data: { 'text/html': '<table/>' } };
    expect(bundleOf(table)).toEqual({ data: { 'text/html': '<table/>' }, metadata: {} });
    expect(bundleOf({ output_type: 'update_display_data', data: {} })).toBeNull();
  });
});

describe('a run in the results tab', () => {
  it('lists cells in notebook order, each once', () => {
    const cells = [cell(4, [printed]), cell(1, [figure]), cell(4, [])];
    expect(inNotebookOrder(cells).map(c => c.cell_index)).toEqual([1, 4]);
    expect(inNotebookOrder(cells)[1].outputs).toEqual([printed]);
  });

  it('captions a cell by its number, counted from 1, and its first line', () => {
    expect(captionOf(cell(2, [], 'plot(x)\u2026'))).toEqual({
      label: 'Cell 3',
      source: 'plot(x)\u2026'
    });
  });

  it('says what was left out', () => {
    expect(omittedNote(0)).toBe('');
    expect(omittedNote(1)).toBe(
      'One output is too large to show here: run the notebook to see it.'
    );
    expect(omittedNote(3)).toContain('3 outputs are too large');
  });

  it('sums a run up in one line', () => {
    expect(countOutputs([cell(1, [figure, printed]), cell(2, [printed])])).toEqual({
      figures: 1,
      others: 2
    });
    expect(runSummary([cell(1, [figure, printed]), cell(2, [printed])])).toBe(
      '1 figure and 2 other outputs'
    );
    expect(runSummary([cell(1, [printed])])).toBe('1 output');
    expect(runSummary([cell(1, [figure, figure])])).toBe('2 figures');
    expect(runSummary([])).toBe('The run produced no output.');
  });

  it("shows the run's time on the reader's clock", () => {
    expect(localTime('2026-11-22T10:00:00+00:00', 'en-GB')).toContain('2026');
    expect(localTime('not a time')).toBe('not a time');
  });

  it("marks applied outputs, keeping the cell's other erchub metadata", () => {
    const run = { values: { n: 5 }, time: '2026-11-22T10:00:00+00:00' };
    expect(markedRun({ note: 'kept' }, run)).toEqual({ note: 'kept', parameterised_run: run });
    expect(markedRun(undefined, run)).toEqual({ parameterised_run: run });
    expect(markedRun(['odd'], run)).toEqual({ parameterised_run: run });
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
