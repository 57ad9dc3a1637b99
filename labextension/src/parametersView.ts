/**
 * The parameters of the current notebook as widgets, "Run with these values" (progress, then
 * the run's outputs in a results tab beside the notebook, and a one-line summary here) and
 * "Reset".
 */

import { ApiError, ErchubApi, errorMessage, isAbort, RunResult } from './api';
import { errorBox, h, replaceChildren, uniqueId } from './dom';
import { runSummary } from './outputs';
import {
  choiceLabel,
  defaultInputs,
  initialInput,
  inputStep,
  InputValue,
  ParameterSpec,
  ParametersResponse,
  parseInput,
  runValues,
  widgetKind
} from './parameters';

type Control = HTMLInputElement | HTMLSelectElement;

interface Field {
  spec: ParameterSpec;
  /** the `.erchub-parameter` element */
  node: HTMLElement;
  control: Control;
  message: HTMLElement;
  /** the slider's value, shown next to it */
  output: HTMLOutputElement | null;
}

/** Where a run's outputs are shown (the results tab, `resultsView.ts`). */
export interface ResultsOpener {
  /** Show a run of the notebook `result.path`; false when that notebook is not open. */
  show(result: RunResult): boolean;
  /** Bring the notebook's last results back to the front; false when they are not open. */
  activate(path: string): boolean;
}

export class ParametersView {
  readonly node: HTMLElement;

  constructor(
    private readonly api: ErchubApi,
    private readonly results: ResultsOpener
  ) {
    this.runButton = h(
      'button',
      { type: 'button', class: 'erchub-run-button jp-mod-styled jp-mod-accept' },
      'Run with these values'
    );
    this.resetButton = h(
      'button',
      { type: 'button', class: 'erchub-reset-button jp-mod-styled' },
      'Reset'
    );
    this.reloadButton = h(
      'button',
      {
        type: 'button',
        class: 'erchub-reload-button jp-mod-styled',
        title: 'Read the parameters cell again (after saving the notebook)'
      },
      'Reload'
    );
    this.runButton.addEventListener('click', () => void this.run());
    this.resetButton.addEventListener('click', () => this.reset());
    this.reloadButton.addEventListener('click', () => void this.reload());
    this.node = h(
      'section',
      { class: 'erchub-section erchub-parameters-section', 'data-state': 'empty' },
      h('h3', {}, 'Parameters'),
      this.pathLine,
      this.messages,
      this.form,
      h('div', { class: 'erchub-buttons' }, this.runButton, this.resetButton, this.reloadButton),
      this.status,
      this.summary
    );
    this.setNotebook(null);
  }

  /** Follow a notebook (its path relative to the server root), null when none is open. */
  setNotebook(path: string | null): void {
    if (path === this.path && path !== null) {
      return;
    }
    this.path = path;
    this.abortRun();
    replaceChildren(this.summary);
    this.setStatus('idle', '');
    void this.reload();
  }

  /** Read the notebook's parameters again (the server reads the saved file). */
  async reload(): Promise<void> {
    this.loading?.abort();
    const loading = new AbortController();
    this.loading = loading;
    this.fields = [];
    this.changed.clear();
    replaceChildren(this.form);
    replaceChildren(this.messages);
    const path = this.path;
    if (path === null) {
      this.pathLine.textContent = 'Open a notebook to see its parameters.';
      this.setState('empty');
      return;
    }
    this.pathLine.textContent = path;
    this.setState('loading');
    let answer: ParametersResponse;
    try {
      answer = await this.api.parameters(path, loading.signal);
    } catch (error) {
      if (!isAbort(error) && this.loading === loading) {
        replaceChildren(
          this.messages,
          errorBox(`The parameters cannot be read: ${errorMessage(error)}`)
        );
        this.setState('error');
      }
      return;
    }
    if (this.loading !== loading) {
      return;
    }
    this.show(answer);
  }

  dispose(): void {
    this.loading?.abort();
    this.abortRun();
  }

  private show(answer: ParametersResponse): void {
    replaceChildren(
      this.messages,
      ...answer.warnings.map(warning => h('div', { class: 'erchub-warning' }, warning))
    );
    if (answer.parameters.length === 0) {
      this.messages.appendChild(
        h(
          'p',
          { class: 'erchub-hint' },
          'This notebook has no parameters: tag a cell that assigns them "parameters" and save it. Run shows its outputs.'
        )
      );
    }
    this.fields = answer.parameters.map(spec => this.field(spec));
    replaceChildren(this.form, ...this.fields.map(field => field.node));
    this.setState('ready');
  }

  private field(spec: ParameterSpec): Field {
    const kind = widgetKind(spec);
    const id = uniqueId('erchub-parameter');
    const message = h('div', { class: 'erchub-field-error', 'aria-live': 'polite' });
    let control: Control;
    let output: HTMLOutputElement | null = null;
    switch (kind) {
      case 'checkbox':
        control = h('input', { id, type: 'checkbox' });
        break;
      case 'select':
        control = h(
          'select',
          { id, class: 'jp-mod-styled' },
          h('option', { value: '' }, `(notebook default: ${spec.default_source})`),
          ...(spec.widget.choices ?? []).map((choice, index) =>
            h('option', { value: String(index) }, choiceLabel(choice))
          )
        );
        break;
      case 'slider':
        control = h('input', {
          id,
          type: 'range',
          min: spec.widget.min,
          max: spec.widget.max,
          step: inputStep(spec)
        });
        output = h('output', { class: 'erchub-slider-value', for: id });
        break;
      case 'number':
        control = h('input', {
          id,
          type: 'text',
          inputmode: 'decimal',
          class: 'jp-mod-styled',
          'data-min': spec.widget.min,
          'data-max': spec.widget.max
        });
        break;
      case 'text':
        control = h('input', { id, type: 'text', class: 'jp-mod-styled', spellcheck: 'false' });
        break;
    }
    control.setAttribute('name', spec.name);
    control.classList.add('erchub-parameter-input');
    const help = spec.help
      ? h('div', { class: 'erchub-parameter-help', id: `${id}-help` }, spec.help)
      : null;
    if (help) {
      control.setAttribute('aria-describedby', `${id}-help`);
    }
    const label = h('label', { for: id, class: 'erchub-parameter-label' }, spec.label || spec.name);
    const row =
      kind === 'checkbox'
        ? h('div', { class: 'erchub-parameter-row' }, control, label)
        : h('div', { class: 'erchub-parameter-row' }, control, output);
    const node = h(
      'div',
      {
        class: 'erchub-parameter',
        'data-name': spec.name,
        'data-widget': kind,
        'data-type': spec.type
      },
      kind === 'checkbox' ? null : label,
      row,
      help,
      message
    );
    const field: Field = { spec, node, control, message, output };
    this.setInput(field, initialInput(spec));
    const onChange = (): void => {
      this.changed.set(spec.name, readInput(control));
      this.check(field);
      this.showSliderValue(field);
    };
    control.addEventListener('input', onChange);
    control.addEventListener('change', onChange);
    return field;
  }

  private setInput(field: Field, input: InputValue): void {
    const { control } = field;
    if (control instanceof HTMLInputElement && control.type === 'checkbox') {
      control.checked = input === true;
    } else {
      control.value = String(input);
    }
    this.showSliderValue(field);
  }

  private showSliderValue(field: Field): void {
    if (field.output === null) {
      return;
    }
    const { spec, control } = field;
    field.output.textContent =
      this.changed.has(spec.name) || typeof spec.default === 'number'
        ? control.value
        : `${spec.default_source} (default)`;
  }

  /** Show the message of one field; returns whether its input is fine. */
  private check(field: Field): boolean {
    const input = this.changed.get(field.spec.name);
    const result =
      input === undefined || (input === '' && field.control instanceof HTMLSelectElement)
        ? null
        : parseInput(field.spec, input);
    const problem = result !== null && !result.ok ? result.message : '';
    field.message.textContent = problem;
    if (problem) {
      field.control.setAttribute('aria-invalid', 'true');
    } else {
      field.control.removeAttribute('aria-invalid');
    }
    return problem === '';
  }

  private reset(): void {
    this.changed.clear();
    const defaults = defaultInputs(this.fields.map(field => field.spec));
    for (const field of this.fields) {
      this.setInput(field, defaults.get(field.spec.name) ?? initialInput(field.spec));
      this.check(field);
    }
    // the last run's results stay, with the values they were made with
    if (this.status.dataset.state === 'error') {
      this.setStatus('idle', '');
    }
  }

  private async run(): Promise<void> {
    const path = this.path;
    if (path === null) {
      return;
    }
    const specs = this.fields.map(field => field.spec);
    const values = runValues(specs, this.changed);
    this.fields.forEach(field => this.check(field));
    if (!values.ok) {
      this.setStatus('error', 'Some values cannot be used: see the messages above.');
      return;
    }
    this.abortRun();
    const running = new AbortController();
    this.running = running;
    this.runButton.disabled = true;
    this.setStatus('running', 'Starting the notebook…');
    try {
      const result = await this.api.run(
        path,
        values.values,
        (cell, total) => {
          if (this.running === running) {
            this.setStatus('running', `Running: cell ${cell} of ${total}`);
          }
        },
        running.signal
      );
      if (this.running !== running) {
        return;
      }
      this.showResult(result);
      this.setStatus('done', `Done in ${result.duration.toFixed(1)} s`);
    } catch (error) {
      if (isAbort(error) || this.running !== running) {
        return;
      }
      this.setStatus('error', runFailure(error));
    } finally {
      if (this.running === running) {
        this.running = null;
        this.runButton.disabled = false;
      }
    }
  }

  /** Open the results tab, and keep one line about the run here with a way back to it. */
  private showResult(result: RunResult): void {
    const shown = this.results.show(result);
    const again = h(
      'button',
      { type: 'button', class: 'erchub-show-results jp-mod-styled' },
      'Show results'
    );
    again.addEventListener('click', () => {
      if (!this.results.activate(result.path) && !this.results.show(result)) {
        replaceChildren(this.summary, 'Open the notebook to see the results of its runs.');
      }
    });
    replaceChildren(
      this.summary,
      h('span', { class: 'erchub-run-summary-text' }, runSummary(result.cells)),
      ' ',
      shown ? again : 'The notebook was closed: open it and run again to see them.'
    );
  }

  private abortRun(): void {
    this.running?.abort();
    this.running = null;
    this.runButton.disabled = false;
  }

  private setState(state: 'empty' | 'loading' | 'ready' | 'error'): void {
    this.node.dataset.state = state;
    const usable = state === 'ready';
    this.runButton.disabled = !usable || this.running !== null;
    this.resetButton.disabled = !usable;
    this.reloadButton.disabled = this.path === null;
  }

  private setStatus(state: 'idle' | 'running' | 'done' | 'error', text: string): void {
    this.status.dataset.state = state;
    replaceChildren(this.status, state === 'error' ? errorBox(text) : text);
  }

  private path: string | null = null;
  private fields: Field[] = [];
  /** the inputs the user changed, by parameter name */
  private readonly changed = new Map<string, InputValue>();
  private loading: AbortController | null = null;
  private running: AbortController | null = null;
  private readonly runButton: HTMLButtonElement;
  private readonly resetButton: HTMLButtonElement;
  private readonly reloadButton: HTMLButtonElement;
  private readonly pathLine = h('div', { class: 'erchub-notebook-path' });
  private readonly messages = h('div', { class: 'erchub-parameter-messages' });
  private readonly form = h('div', { class: 'erchub-parameters' });
  private readonly status = h('div', {
    class: 'erchub-run-status',
    role: 'status',
    'aria-live': 'polite'
  });
  /** one line about the last run, with "Show results" */
  private readonly summary = h('div', { class: 'erchub-run-summary' });
}

function readInput(control: Control): InputValue {
  return control instanceof HTMLInputElement && control.type === 'checkbox'
    ? control.checked
    : control.value;
}

/** A failed run in plain words. */
function runFailure(error: unknown): string {
  if (error instanceof ApiError) {
    if (error.status === 400) {
      return `These values cannot be used: ${error.message}`;
    }
    if (error.status === 422) {
      return `The notebook failed with these values: ${error.message}`;
    }
  }
  return `The run failed: ${errorMessage(error)}`;
}
