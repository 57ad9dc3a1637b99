import { describe, expect, it } from 'vitest';

import {
  applyJobEvent,
  isFinal,
  MAX_STEP_LINES,
  newJobState,
  STEP_NAMES,
  stepLabel
} from '../src/jobs';

describe('job state', () => {
  it('starts with every o2r step queued', () => {
    const state = newJobState();
    expect(state.steps.map(step => step.name)).toEqual([...STEP_NAMES]);
    expect(state.steps.every(step => step.status === 'queued')).toBe(true);
    expect(isFinal(state)).toBe(false);
  });

  it('follows step, log, progress and status events', () => {
    const state = newJobState();
    expect(applyJobEvent(state, 'status', { status: 'running', reason: '' })).toEqual(['']);
    expect(applyJobEvent(state, 'step', { step: 'image_execute', status: 'running' })).toEqual([
      'image_execute'
    ]);
    applyJobEvent(state, 'log', { step: 'image_execute', line: 'cell 1' });
    applyJobEvent(state, 'progress', { step: 'image_execute', done: 3, total: 7 });
    const step = state.steps.find(candidate => candidate.name === 'image_execute');
    expect(step).toMatchObject({
      status: 'running',
      lines: ['cell 1'],
      progress: { done: 3, total: 7 }
    });
    expect(isFinal(state)).toBe(false);
    applyJobEvent(state, 'status', { status: 'failure', reason: 'cell 3 failed' });
    expect(isFinal(state)).toBe(true);
    expect(state.reason).toBe('cell 3 failed');
  });

  it('shows the steps that never started as skipped once the job ends', () => {
    const state = newJobState();
    for (const name of STEP_NAMES.filter(name => name !== 'image_save')) {
      applyJobEvent(state, 'step', { step: name, status: 'success' });
    }
    const changed = applyJobEvent(state, 'status', { status: 'success', reason: '' });
    expect(changed).toEqual(['', 'image_save']);
    const saved = state.steps.find(step => step.name === 'image_save');
    expect(saved?.status).toBe('skipped');
    expect(state.steps.filter(step => step.status === 'success')).toHaveLength(
      STEP_NAMES.length - 1
    );
  });

  it('marks the job running when a step starts', () => {
    const state = newJobState();
    applyJobEvent(state, 'step', { step: 'validate_compendium', status: 'running' });
    expect(state.status).toBe('running');
  });

  it('adds steps it does not know, after the others', () => {
    const state = newJobState();
    applyJobEvent(state, 'step', { step: 'upload', status: 'success' });
    expect(state.steps[state.steps.length - 1]).toMatchObject({
      name: 'upload',
      status: 'success'
    });
  });

  it('ignores malformed and unknown events', () => {
    const state = newJobState();
    const before = JSON.stringify(state);
    expect(applyJobEvent(state, 'step', null)).toEqual([]);
    expect(applyJobEvent(state, 'step', { status: 'running' })).toEqual([]);
    expect(applyJobEvent(state, 'log', { step: 'check', line: 3 })).toEqual([]);
    expect(applyJobEvent(state, 'progress', { step: 'check', done: '1' })).toEqual([]);
    expect(applyJobEvent(state, 'status', { reason: 'x' })).toEqual([]);
    expect(applyJobEvent(state, 'other', { step: 'check' })).toEqual([]);
    expect(JSON.stringify(state)).toBe(before);
  });

  it('keeps the last lines of a long log', () => {
    const state = newJobState();
    for (let index = 0; index < MAX_STEP_LINES + 5; index++) {
      applyJobEvent(state, 'log', { step: 'image_build', line: `line ${index}` });
    }
    const step = state.steps.find(candidate => candidate.name === 'image_build');
    expect(step?.lines.length).toBe(MAX_STEP_LINES);
    expect(step?.lines[0]).toBe('line 5');
    expect(step?.dropped).toBe(5);
  });

  it('labels steps in words', () => {
    expect(stepLabel('image_build')).toBe('Image build');
    expect(stepLabel('check')).toBe('Check');
  });
});
