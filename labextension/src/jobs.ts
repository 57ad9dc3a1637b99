/**
 * A job's progress as the panel shows it, built from the events of `GET erchub/job/{id}/logs`:
 * `step` {step, status}, `log` {step, line}, `progress` {step, done, total} and `status`
 * {status, reason}, the last `status` being final (success, failure or canceled).
 * No JupyterLab imports.
 */

/** o2r's job steps, in order. */
export const STEP_NAMES = [
  'validate_compendium',
  'generate_configuration',
  'generate_manifest',
  'image_build',
  'image_execute',
  'check',
  'image_save',
  'cleanup'
] as const;

export const FINAL_JOB_STATUSES = ['success', 'failure', 'canceled'];

/** The most log lines kept per step (the oldest are dropped first). */
export const MAX_STEP_LINES = 500;

export interface StepState {
  name: string;
  status: string;
  lines: string[];
  /** lines dropped to keep the last MAX_STEP_LINES */
  dropped: number;
  progress: { done: number; total: number } | null;
}

export interface JobState {
  status: string;
  reason: string;
  steps: StepState[];
}

export function newJobState(): JobState {
  return {
    status: 'queued',
    reason: '',
    steps: STEP_NAMES.map(name => ({
      name,
      status: 'queued',
      lines: [],
      dropped: 0,
      progress: null
    }))
  };
}

export function isFinal(state: JobState): boolean {
  return FINAL_JOB_STATUSES.includes(state.status);
}

/** A step's label in words: "image_build" -> "Image build". */
export function stepLabel(name: string): string {
  const words = name.replace(/_/g, ' ');
  return words.charAt(0).toUpperCase() + words.slice(1);
}

function stepOf(state: JobState, name: unknown): StepState | null {
  if (typeof name !== 'string' || name === '') {
    return null;
  }
  let step = state.steps.find(candidate => candidate.name === name);
  if (step === undefined) {
    // a step this client does not know yet: shown after the others
    step = { name, status: 'queued', lines: [], dropped: 0, progress: null };
    state.steps.push(step);
  }
  return step;
}

/**
 * Apply one event (its type and its parsed data) to the state; returns the names of the
 * steps it changed ('' for the job's own status). Unknown events and malformed data change
 * nothing.
 */
export function applyJobEvent(state: JobState, type: string, data: unknown): string[] {
  if (data === null || typeof data !== 'object') {
    return [];
  }
  const fields = data as { [key: string]: unknown };
  if (type === 'status') {
    if (typeof fields.status !== 'string') {
      return [];
    }
    state.status = fields.status;
    state.reason = typeof fields.reason === 'string' ? fields.reason : '';
    if (!isFinal(state)) {
      return [''];
    }
    // steps planned as skipped (no image saved, say) send no event: at the end, a step that
    // never started did not run
    const notRun = state.steps.filter(step => step.status === 'queued');
    notRun.forEach(step => (step.status = 'skipped'));
    return ['', ...notRun.map(step => step.name)];
  }
  const step = stepOf(state, fields.step);
  if (step === null) {
    return [];
  }
  switch (type) {
    case 'step':
      if (typeof fields.status !== 'string') {
        return [];
      }
      step.status = fields.status;
      if (state.status === 'queued' && fields.status === 'running') {
        state.status = 'running';
      }
      return [step.name];
    case 'log':
      if (typeof fields.line !== 'string') {
        return [];
      }
      step.lines.push(fields.line);
      if (step.lines.length > MAX_STEP_LINES) {
        step.dropped += step.lines.length - MAX_STEP_LINES;
        step.lines.splice(0, step.lines.length - MAX_STEP_LINES);
      }
      return [step.name];
    case 'progress':
      if (typeof fields.done !== 'number' || typeof fields.total !== 'number') {
        return [];
      }
      step.progress = { done: fields.done, total: fields.total };
      return [step.name];
    default:
      return [];
  }
}
