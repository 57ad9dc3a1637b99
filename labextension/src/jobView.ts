/**
 * A job of the erc service, live: its steps as the logs stream tells them, then its check
 * report. Used by "Check reproducibility" and by the publish flow.
 */

import { ApiError, ErchubApi, errorMessage, isAbort, parseData } from './api';
import { errorBox, h, replaceChildren } from './dom';
import { applyJobEvent, isFinal, JobState, newJobState, StepState, stepLabel } from './jobs';
import { SseParser } from './sse';

/** How often a log stream that ends before the job does is opened again. */
const RECONNECTS = 5;
/** Milliseconds to wait before reconnecting, times the attempt. */
const RECONNECT_DELAY = 1000;

export class JobView {
  readonly node: HTMLElement = h('div', { class: 'erchub-job', hidden: true });

  constructor(private readonly api: ErchubApi) {}

  /** The job's id while one is shown. */
  get jobId(): string | null {
    return this.node.dataset.jobId ?? null;
  }

  /**
   * Start a job for a compendium and follow it to its end. Resolves with its final state;
   * rejects when it cannot be started or followed (the error is shown too).
   */
  async start(compendiumId: string): Promise<JobState> {
    this.stop();
    const controller = new AbortController();
    this.controller = controller;
    this.state = newJobState();
    this.node.hidden = false;
    delete this.node.dataset.jobId;
    replaceChildren(
      this.node,
      h('div', { class: 'erchub-job-status', 'data-status': 'starting' }, 'Starting a job…')
    );
    let jobId: string;
    try {
      jobId = await this.api.startJob(compendiumId);
    } catch (error) {
      this.showError(`The job was not started: ${errorMessage(error)}`);
      throw error;
    }
    this.node.dataset.jobId = jobId;
    this.render(jobId);
    try {
      await this.follow(jobId, controller.signal);
    } catch (error) {
      if (!isAbort(error)) {
        this.showError(
          `The job's progress cannot be followed: ${errorMessage(error)}. It may still be running (job ${jobId}).`
        );
      }
      throw error;
    }
    await this.showReport(jobId, controller.signal);
    return this.state;
  }

  /** Stop following (the job itself goes on). */
  stop(): void {
    this.controller?.abort();
    this.controller = null;
  }

  private async follow(jobId: string, signal: AbortSignal): Promise<void> {
    const parser = new SseParser();
    for (let attempt = 0; ; attempt++) {
      try {
        for await (const event of this.api.jobEvents(jobId, parser, signal)) {
          if (event.event === 'error') {
            // the server extension lost the erc service's stream
            const { status, message } = parseData(event) as { status?: number; message?: string };
            throw new ApiError(status ?? 502, message ?? 'the job log stream failed');
          }
          const changed = applyJobEvent(this.state, event.event, parseData(event));
          changed.forEach(name => this.update(name));
          if (isFinal(this.state)) {
            return;
          }
        }
      } catch (error) {
        const refused = error instanceof ApiError && error.status >= 400 && error.status < 500;
        if (isAbort(error) || refused || attempt >= RECONNECTS) {
          throw error;
        }
      }
      // the stream ended before the job did (a proxy's time-out, say): resume after the
      // last event seen
      if (attempt >= RECONNECTS) {
        throw new Error('the log stream keeps ending before the job does');
      }
      await delay(RECONNECT_DELAY * (attempt + 1), signal);
    }
  }

  private render(jobId: string): void {
    this.stepNodes.clear();
    const steps = h('ol', { class: 'erchub-job-steps' });
    for (const step of this.state.steps) {
      steps.appendChild(this.stepNode(step));
    }
    replaceChildren(
      this.node,
      h('div', { class: 'erchub-job-status', role: 'status', 'aria-live': 'polite' }),
      h('div', { class: 'erchub-job-id' }, `Job ${jobId}`),
      steps,
      h('div', { class: 'erchub-job-report-area' })
    );
    this.update('');
  }

  private stepNode(step: StepState): HTMLElement {
    const node = h(
      'li',
      { class: 'erchub-job-step', 'data-step': step.name, 'data-status': step.status },
      h('span', { class: 'erchub-job-step-label' }, stepLabel(step.name)),
      ' ',
      h('span', { class: 'erchub-job-step-status' }, step.status),
      ' ',
      h('span', { class: 'erchub-job-step-progress' }),
      h(
        'details',
        { class: 'erchub-job-step-log', hidden: true },
        h('summary', {}, 'Log'),
        h('pre', {})
      )
    );
    this.stepNodes.set(step.name, node);
    return node;
  }

  /** Show a changed step ('' is the job's own status). */
  private update(name: string): void {
    if (name === '') {
      const status = this.node.querySelector<HTMLElement>('.erchub-job-status');
      if (status !== null) {
        status.dataset.status = this.state.status;
        status.textContent = jobStatusText(this.state);
      }
      return;
    }
    const step = this.state.steps.find(candidate => candidate.name === name);
    if (step === undefined) {
      return;
    }
    let node = this.stepNodes.get(name);
    if (node === undefined) {
      node = this.stepNode(step);
      this.node.querySelector('.erchub-job-steps')?.appendChild(node);
    }
    node.dataset.status = step.status;
    node.querySelector('.erchub-job-step-status')!.textContent = step.status;
    node.querySelector('.erchub-job-step-progress')!.textContent = step.progress
      ? `${step.progress.done} of ${step.progress.total}`
      : '';
    const log = node.querySelector<HTMLDetailsElement>('.erchub-job-step-log')!;
    if (step.lines.length > 0) {
      log.hidden = false;
      const dropped = step.dropped > 0 ? `(${step.dropped} earlier lines not shown)\n` : '';
      log.querySelector('pre')!.textContent = dropped + step.lines.join('\n');
    }
    if (step.status === 'running' || step.status === 'failure') {
      // the running step's log is the interesting one
      log.open = true;
    } else if (step.status === 'success') {
      log.open = false;
    }
  }

  private async showReport(jobId: string, signal: AbortSignal): Promise<void> {
    const area = this.node.querySelector<HTMLElement>('.erchub-job-report-area');
    if (area === null) {
      return;
    }
    const url = this.api.url('job', jobId, 'report');
    try {
      const html = await this.api.report(jobId, signal);
      // sandbox without scripts (the server also sends a sandbox CSP)
      const frame = h('iframe', { class: 'erchub-job-report', sandbox: '', title: 'Check report' });
      frame.srcdoc = html;
      replaceChildren(
        area,
        h('h4', {}, 'Check report'),
        h(
          'a',
          { class: 'erchub-job-report-link', href: url, target: '_blank', rel: 'noopener' },
          'Open the report in a new tab'
        ),
        frame
      );
    } catch (error) {
      if (!isAbort(error)) {
        replaceChildren(
          area,
          h(
            'p',
            { class: 'erchub-hint erchub-job-no-report' },
            `No check report: ${errorMessage(error)}`
          )
        );
      }
    }
  }

  private showError(message: string): void {
    this.node.appendChild(errorBox(message));
  }

  private state: JobState = newJobState();
  private controller: AbortController | null = null;
  private readonly stepNodes = new Map<string, HTMLElement>();
}

function jobStatusText(state: JobState): string {
  switch (state.status) {
    case 'queued':
      return 'Waiting for a worker…';
    case 'running':
      return 'Running…';
    case 'success':
      return 'The job succeeded.';
    case 'failure':
      return `The job failed${state.reason ? `: ${state.reason}` : '.'}`;
    case 'canceled':
      return `The job was canceled${state.reason ? `: ${state.reason}` : '.'}`;
    default:
      return state.status;
  }
}

function delay(milliseconds: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, milliseconds);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        reject(new DOMException('aborted', 'AbortError'));
      },
      { once: true }
    );
  });
}
