/**
 * The results tab of a run with new values: a main-area tab beside the notebook with every
 * output of the run in notebook order, each under a caption naming its cell, the values used
 * and the run's time at the top, the published outputs beside them on demand, and "Apply to
 * notebook", which puts the run's outputs into the open notebook's cells.
 *
 * Outputs are drawn by JupyterLab's rendermime registry (the notebook's), trusted as the
 * notebook's cell is: an untrusted cell's HTML is sanitised and its scripts never run.
 */

import { JupyterFrontEnd } from '@jupyterlab/application';
import { MainAreaWidget } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import type { ICellModel } from '@jupyterlab/cells';
import type { IOutput } from '@jupyterlab/nbformat';
import type { ISharedCodeCell } from '@jupyter/ydoc';
import type { ReadonlyPartialJSONObject } from '@lumino/coreutils';
import { Panel, Widget } from '@lumino/widgets';

import { RunResult } from './api';
import { h, replaceChildren } from './dom';
import {
  bundleOf,
  captionOf,
  inNotebookOrder,
  localTime,
  markedRun,
  NotebookOutput,
  omittedNote,
  RunCell
} from './outputs';
import { formatValue } from './parameters';
import { ercIcon } from './panel';

type RenderMime = NotebookPanel['content']['rendermime'];

/** The key of erchub's cell metadata. */
const METADATA_KEY = 'erchub';

/** One run's outputs, for the notebook it ran. */
export class ResultsView extends Panel {
  constructor(private readonly rendermime: RenderMime) {
    super();
    this.addClass('erchub-results-view');
    this.publishedToggle.addEventListener('change', () => this.showPublished());
    this.applyButton.addEventListener('click', () => this.apply());
    this.addWidget(this.header);
    this.addWidget(this.body);
  }

  /** Show a run (replacing the last one shown). */
  showRun(result: RunResult, notebook: NotebookPanel): void {
    this.result = result;
    this.notebook = notebook;
    this.title.label = `Results: ${result.path.split('/').pop() ?? result.path}`;
    this.title.caption = `The last run of ${result.path} with new values`;
    replaceChildren(this.applyStatus);
    this.applyButton.disabled = false;
    replaceChildren(
      this.header.node,
      h('h2', {}, 'Results of a run with these values'),
      h('div', { class: 'erchub-results-path' }, result.path),
      h(
        'ul',
        { class: 'erchub-values' },
        ...Object.entries(result.values).map(([name, value]) =>
          h(
            'li',
            { 'data-name': name },
            h('code', {}, name),
            ' = ',
            h('code', { class: 'erchub-value' }, formatValue(value))
          )
        )
      ),
      h(
        'div',
        { class: 'erchub-results-time' },
        'Run ',
        h('time', { datetime: result.time }, localTime(result.time)),
        `, in ${result.duration.toFixed(1)} s`
      ),
      h(
        'div',
        { class: 'erchub-results-actions' },
        h(
          'label',
          { class: 'erchub-published-toggle' },
          this.publishedToggle,
          ' Show published output'
        ),
        this.applyButton
      ),
      this.applyStatus
    );
    for (const widget of [...this.body.widgets]) {
      widget.dispose();
    }
    const cells = inNotebookOrder(result.cells);
    if (cells.length === 0) {
      this.body.addWidget(
        new Widget({ node: h('p', { class: 'erchub-hint' }, 'The run produced no output.') })
      );
    }
    for (const cell of cells) {
      this.body.addWidget(this.cellView(cell));
    }
    this.showPublished();
  }

  private cellView(cell: RunCell): Panel {
    const trusted = this.cellModel(cell.cell_id)?.trusted ?? false;
    const { label, source } = captionOf(cell);
    const view = new Panel();
    view.addClass('erchub-result');
    view.node.dataset.cellId = cell.cell_id;
    view.node.dataset.bound = String(cell.bound);
    view.addWidget(
      new Widget({
        node: h(
          'h3',
          { class: 'erchub-result-caption' },
          label,
          source ? ' · ' : null,
          source ? h('code', {}, source) : null,
          cell.bound ? h('span', { class: 'erchub-result-bound' }, 'a result the ERC names') : null
        )
      })
    );
    const columns = new Panel();
    columns.addClass('erchub-result-columns');
    columns.addWidget(
      this.column('erchub-result-run', 'This run', cell.outputs, cell.omitted_outputs, trusted)
    );
    columns.addWidget(
      this.column(
        'erchub-result-published',
        'Published',
        cell.published,
        cell.omitted_published,
        trusted
      )
    );
    view.addWidget(columns);
    return view;
  }

  private column(
    className: string,
    heading: string,
    outputs: NotebookOutput[],
    omitted: number,
    trusted: boolean
  ): Panel {
    const column = new Panel();
    column.addClass(className);
    column.addWidget(new Widget({ node: h('div', { class: 'erchub-column-label' }, heading) }));
    let shown = 0;
    for (const output of outputs) {
      const bundle = bundleOf(output);
      if (bundle === null) {
        continue;
      }
      const data = bundle.data as ReadonlyPartialJSONObject;
      const mime = this.rendermime.preferredMimeType(data, trusted ? 'any' : 'ensure');
      if (mime === undefined) {
        column.addWidget(
          new Widget({
            node: h(
              'p',
              { class: 'erchub-hint' },
              'This output has no form that can be shown here.'
            )
          })
        );
        continue;
      }
      const renderer = this.rendermime.createRenderer(mime);
      renderer.addClass('erchub-result-output');
      renderer.node.dataset.mime = mime;
      void renderer.renderModel(
        this.rendermime.createModel({
          data,
          metadata: bundle.metadata as ReadonlyPartialJSONObject,
          trusted
        })
      );
      column.addWidget(renderer);
      shown += 1;
    }
    const note = omittedNote(omitted);
    if (note) {
      column.addWidget(new Widget({ node: h('p', { class: 'erchub-warning' }, note) }));
    } else if (shown === 0) {
      column.addWidget(new Widget({ node: h('p', { class: 'erchub-hint' }, 'No output.') }));
    }
    return column;
  }

  private showPublished(): void {
    this.node.dataset.published = String(this.publishedToggle.checked);
  }

  /** The open notebook's cell of that id, null when the notebook is closed or lacks it. */
  private cellModel(id: string): ICellModel | null {
    const model = this.notebook?.isDisposed ? null : this.notebook?.model;
    if (!model) {
      return null;
    }
    for (let index = 0; index < model.cells.length; index += 1) {
      const cell = model.cells.get(index);
      if (cell.id === id) {
        return cell;
      }
    }
    return null;
  }

  /** Put the run's outputs into the open notebook's cells of the same ids, each marked as a
   * parameterised run; the notebook is then unsaved, for the reader to save or revert. */
  private apply(): void {
    const result = this.result;
    const model = this.notebook?.isDisposed ? null : this.notebook?.model;
    if (result === null || !model) {
      this.say('The notebook is not open: open it and run again to apply the results.');
      return;
    }
    const run = { values: result.values, time: result.time };
    let applied = 0;
    const skipped: string[] = [];
    model.sharedModel.transact(() => {
      for (const cell of inNotebookOrder(result.cells)) {
        const target = this.cellModel(cell.cell_id);
        if (target === null || target.type !== 'code' || cell.omitted_outputs > 0) {
          skipped.push(captionOf(cell).label);
          continue;
        }
        const shared = target.sharedModel as ISharedCodeCell;
        shared.setOutputs(cell.outputs as IOutput[]);
        shared.execution_count = cell.execution_count;
        target.setMetadata(METADATA_KEY, markedRun(target.getMetadata(METADATA_KEY), run));
        applied += 1;
      }
    });
    const left = skipped.length
      ? ` Not applied (changed in the notebook, or too large): ${skipped.join(', ')}.`
      : '';
    this.applyButton.disabled = applied > 0;
    this.say(
      `Applied to ${applied} ${applied === 1 ? 'cell' : 'cells'} of the notebook: save it to keep ` +
        `them, or revert it to the saved version (File › Reload Notebook from Disk).${left}`
    );
  }

  private say(text: string): void {
    replaceChildren(this.applyStatus, text);
  }

  private result: RunResult | null = null;
  private notebook: NotebookPanel | null = null;
  private readonly header = new Widget({ node: h('header', { class: 'erchub-results-header' }) });
  private readonly body = new Panel();
  private readonly publishedToggle = h('input', {
    type: 'checkbox',
    class: 'erchub-published-toggle-input'
  });
  private readonly applyButton = h(
    'button',
    {
      type: 'button',
      class: 'erchub-apply-button jp-mod-styled jp-mod-accept',
      title: "Put this run's outputs into the notebook (it stays unsaved until you save it)"
    },
    'Apply to notebook'
  );
  private readonly applyStatus = h('div', {
    class: 'erchub-apply-status',
    role: 'status',
    'aria-live': 'polite'
  });
}

/** Opens each notebook's results tab beside it, and brings it back. */
export class ResultsTabs {
  constructor(
    private readonly app: JupyterFrontEnd,
    private readonly tracker: INotebookTracker
  ) {}

  /** Show a run in its notebook's results tab: opened to the right of the notebook, or
   * updated when it is open. False when the notebook is no longer open. */
  show(result: RunResult): boolean {
    const notebook = this.tracker.find(panel => panel.context.localPath === result.path);
    if (notebook === undefined) {
      return false;
    }
    let tab = this.tabs.get(result.path);
    if (tab === undefined || tab.isDisposed) {
      tab = this.open(result, notebook);
    } else {
      tab.content.showRun(result, notebook);
      tab.title.label = tab.content.title.label;
      tab.title.caption = tab.content.title.caption;
    }
    this.app.shell.activateById(tab.id);
    return true;
  }

  /** Bring a notebook's results tab to the front; false when it has none open. */
  activate(path: string): boolean {
    const tab = this.tabs.get(path);
    if (tab === undefined || tab.isDisposed) {
      return false;
    }
    this.app.shell.activateById(tab.id);
    return true;
  }

  /** A new results tab, to the right of the notebook. */
  private open(result: RunResult, notebook: NotebookPanel): MainAreaWidget<ResultsView> {
    const tab = new MainAreaWidget({ content: new ResultsView(notebook.content.rendermime) });
    this.counter += 1;
    tab.id = `erchub-results-${this.counter}`;
    tab.addClass('erchub-results-tab');
    tab.title.icon = ercIcon;
    tab.title.closable = true;
    this.tabs.set(result.path, tab);
    // shown before it is added, so that it opens with its title and outputs
    tab.content.showRun(result, notebook);
    tab.title.label = tab.content.title.label;
    tab.title.caption = tab.content.title.caption;
    this.app.shell.add(tab, 'main', { mode: 'split-right', ref: notebook.id });
    return tab;
  }

  private readonly tabs = new Map<string, MainAreaWidget<ResultsView>>();
  private counter = 0;
}
