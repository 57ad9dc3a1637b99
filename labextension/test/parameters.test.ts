import { describe, expect, it } from 'vitest';

import {
  defaultInputs,
  initialInput,
  inputStep,
  InputValue,
  jsonEqual,
  ParameterSpec,
  parameterType,
  parseInput,
  runValues,
  WidgetSpec,
  widgetKind
} from '../src/parameters';

function spec(
  type: string,
  defaultValue: ParameterSpec['default'],
  widget: Partial<WidgetSpec> = {},
  source?: string
): ParameterSpec {
  return {
    name: 'p',
    type,
    default: defaultValue,
    default_source: source ?? JSON.stringify(defaultValue),
    help: '',
    label: 'P',
    widget: { kind: '', min: null, max: null, step: null, choices: null, ...widget }
  };
}

function value(parameter: ParameterSpec, input: InputValue): unknown {
  const result = parseInput(parameter, input);
  if (!result.ok) {
    throw new Error(`expected a value, got the message ${result.message}`);
  }
  return result.value;
}

function message(parameter: ParameterSpec, input: InputValue): string {
  const result = parseInput(parameter, input);
  if (result.ok) {
    throw new Error(`expected a message, got the value ${JSON.stringify(result.value)}`);
  }
  return result.message;
}

describe('parameterType', () => {
  it('keeps the known types and maps the rest to unknown', () => {
    for (const type of ['int', 'float', 'bool', 'str', 'list', 'dict', 'unknown']) {
      expect(parameterType(spec(type, null))).toBe(type);
    }
    expect(parameterType(spec('NoneType', null))).toBe('unknown');
    expect(parameterType(spec('', null))).toBe('unknown');
  });
});

describe('widgetKind', () => {
  it('gives each type its default widget', () => {
    expect(widgetKind(spec('int', 1))).toBe('number');
    expect(widgetKind(spec('float', 1.5))).toBe('number');
    expect(widgetKind(spec('bool', true))).toBe('checkbox');
    expect(widgetKind(spec('str', 'a'))).toBe('text');
    expect(widgetKind(spec('list', [1]))).toBe('text');
    expect(widgetKind(spec('dict', {}))).toBe('text');
    expect(widgetKind(spec('unknown', null))).toBe('text');
  });

  it('follows the hints it can honour', () => {
    expect(widgetKind(spec('float', 1, { kind: 'slider', min: 0, max: 5 }))).toBe('slider');
    expect(widgetKind(spec('str', 'a', { kind: 'select', choices: ['a', 'b'] }))).toBe('select');
    expect(widgetKind(spec('int', 1, { kind: 'text' }))).toBe('text');
    expect(widgetKind(spec('bool', true, { kind: 'checkbox' }))).toBe('checkbox');
  });

  it('falls back when a hint cannot be shown', () => {
    // a slider without both bounds, or with an empty range, is a number input
    expect(widgetKind(spec('float', 1, { kind: 'slider', min: 0 }))).toBe('number');
    expect(widgetKind(spec('float', 1, { kind: 'slider', min: 2, max: 2 }))).toBe('number');
    // a slider for a string, a select without choices, a checkbox for a number
    expect(widgetKind(spec('str', 'a', { kind: 'slider', min: 0, max: 1 }))).toBe('text');
    expect(widgetKind(spec('str', 'a', { kind: 'select', choices: [] }))).toBe('text');
    expect(widgetKind(spec('int', 1, { kind: 'checkbox' }))).toBe('number');
    expect(widgetKind(spec('bool', true, { kind: 'number' }))).toBe('checkbox');
    expect(widgetKind(spec('int', 1, { kind: 'dial' }))).toBe('number');
  });
});

describe('inputStep', () => {
  it('uses the hint, else 1 for int, else a hundredth of a slider range, else any', () => {
    expect(inputStep(spec('float', 1, { kind: 'slider', min: 0, max: 5, step: 0.5 }))).toBe('0.5');
    expect(inputStep(spec('int', 1))).toBe('1');
    expect(inputStep(spec('float', 1, { kind: 'slider', min: 0, max: 2 }))).toBe('0.02');
    expect(inputStep(spec('float', 1))).toBe('any');
    expect(inputStep(spec('float', 1, { step: 0 }))).toBe('any');
  });
});

describe('initialInput', () => {
  it('shows the default in the control', () => {
    expect(initialInput(spec('float', 1, {}, '1.0'))).toBe('1.0');
    expect(initialInput(spec('float', 0.001, {}, '1e-3'))).toBe('1e-3');
    expect(initialInput(spec('int', 400, {}, '4_00'))).toBe('400');
    expect(initialInput(spec('bool', true))).toBe(true);
    expect(initialInput(spec('bool', false))).toBe(false);
    expect(initialInput(spec('str', 'A sine wave', {}, '"A sine wave"'))).toBe('A sine wave');
    expect(initialInput(spec('list', ['a', 1], {}, "['a', 1]"))).toBe("['a', 1]");
    expect(initialInput(spec('unknown', null, {}, 'np.arange(10)'))).toBe('np.arange(10)');
  });

  it('selects the default among the choices, or none', () => {
    const choices = ['red', 'green', { b: [1, 2], a: 1 }];
    expect(initialInput(spec('str', 'green', { kind: 'select', choices }))).toBe('1');
    expect(initialInput(spec('dict', { a: 1, b: [1, 2] }, { kind: 'select', choices }))).toBe('2');
    expect(initialInput(spec('str', 'blue', { kind: 'select', choices }))).toBe('');
  });

  it('shows a non-literal number default as its source', () => {
    expect(initialInput(spec('float', null, {}, 'np.pi'))).toBe('np.pi');
  });
});

describe('parseInput for int', () => {
  const int = spec('int', 10);

  it('reads whole numbers in any decimal notation', () => {
    expect(value(int, '42')).toBe(42);
    expect(value(int, ' -7 ')).toBe(-7);
    expect(value(int, '+3')).toBe(3);
    expect(value(int, '1e3')).toBe(1000);
    expect(value(int, '2.0')).toBe(2);
    expect(value(int, '-0')).toBe(0);
    expect(Object.is(value(int, '-0'), 0)).toBe(true);
  });

  it('refuses fractions, words, empty input, NaN and huge numbers', () => {
    expect(message(int, '1.5')).toMatch(/1.5 is not a whole number/);
    expect(message(int, '1e-3')).toMatch(/not a whole number/);
    expect(message(int, '')).toMatch(/enter a whole number/);
    expect(message(int, '   ')).toMatch(/enter a whole number/);
    expect(message(int, 'ten')).toMatch(/"ten" is not a whole number/);
    expect(message(int, '0x10')).toMatch(/is not a whole number/);
    expect(message(int, 'NaN')).toMatch(/finite number/);
    expect(message(int, '1e400')).toMatch(/too large/);
    expect(message(int, '9007199254740993')).toMatch(/too large to be sent exactly/);
  });

  it('names the parameter by its label', () => {
    expect(message(int, 'x')).toMatch(/^P: /);
  });
});

describe('parseInput for float', () => {
  const float = spec('float', 1.5);

  it('reads decimal numbers', () => {
    expect(value(float, '1.5')).toBe(1.5);
    expect(value(float, '.5')).toBe(0.5);
    expect(value(float, '5.')).toBe(5);
    expect(value(float, '1e3')).toBe(1000);
    expect(value(float, '-2.5E-3')).toBe(-0.0025);
  });

  it('refuses NaN, infinities and other text', () => {
    for (const text of ['nan', 'NaN', 'inf', '-inf', 'Infinity', '+infinity']) {
      expect(message(float, text)).toMatch(/enter a finite number/);
    }
    expect(message(float, '1,5')).toMatch(/is not a number/);
    expect(message(float, '1.2.3')).toMatch(/is not a number/);
    expect(message(float, '')).toMatch(/enter a number/);
  });
});

describe('bounds', () => {
  const bounded = spec('float', 1, { kind: 'slider', min: 0.5, max: 5 });

  it('accepts the bounds themselves', () => {
    expect(value(bounded, '0.5')).toBe(0.5);
    expect(value(bounded, '5')).toBe(5);
  });

  it('says which bound is crossed', () => {
    expect(message(bounded, '0.25')).toBe('P must be at least 0.5, got 0.25');
    expect(message(bounded, '5.01')).toBe('P must be at most 5, got 5.01');
  });

  it('checks a single bound of a number input', () => {
    const atLeastOne = spec('int', 3, { kind: 'number', min: 1 });
    expect(message(atLeastOne, '0')).toMatch(/at least 1/);
    expect(value(atLeastOne, '1000000')).toBe(1000000);
  });
});

describe('parseInput for bool', () => {
  const flag = spec('bool', false);

  it('takes a checkbox state', () => {
    expect(value(flag, true)).toBe(true);
    expect(value(flag, false)).toBe(false);
  });

  it('reads true/false words like the server', () => {
    for (const text of ['true', 'True', 'YES', '1']) {
      expect(value(flag, text)).toBe(true);
    }
    for (const text of ['false', 'No', '0', ' FALSE ']) {
      expect(value(flag, text)).toBe(false);
    }
    expect(message(flag, 'maybe')).toMatch(/"maybe" is not true or false/);
    expect(message(flag, '')).toMatch(/not true or false/);
  });
});

describe('parseInput for str and unknown', () => {
  it('keeps the text as typed, empty included', () => {
    expect(value(spec('str', 'a'), '  spaced  ')).toBe('  spaced  ');
    expect(value(spec('str', 'a'), '')).toBe('');
    expect(value(spec('str', 'a'), '1e3')).toBe('1e3');
  });

  it('sends an unknown type as text for the server to read', () => {
    expect(value(spec('unknown', null), 'np.arange(5)')).toBe('np.arange(5)');
    expect(value(spec('NoneType', null), 'None')).toBe('None');
  });
});

describe('parseInput for list and dict', () => {
  const list = spec('list', [1, 2]);
  const dict = spec('dict', { a: 1 });

  it('reads JSON', () => {
    expect(value(list, '[1, 2.5, "a", null, true]')).toEqual([1, 2.5, 'a', null, true]);
    expect(value(list, '[]')).toEqual([]);
    expect(value(dict, '{"a": [1, 2], "b": {"c": null}}')).toEqual({ a: [1, 2], b: { c: null } });
  });

  it('passes Python literals on as text', () => {
    expect(value(list, "['a', True, None]")).toBe("['a', True, None]");
    expect(value(list, '(1, 2)')).toBe('(1, 2)');
    expect(value(dict, "{'a': 1}")).toBe("{'a': 1}");
  });

  it('refuses the wrong kind and empty input', () => {
    expect(message(list, '{"a": 1}')).toMatch(/enter a list such as \[1, 2\]/);
    expect(message(list, '3')).toMatch(/enter a list/);
    expect(message(list, '')).toMatch(/enter a list/);
    expect(message(list, 'a, b')).toMatch(/enter a list/);
    expect(message(dict, '[1]')).toMatch(/enter a dict such as \{"a": 1\}/);
    expect(message(dict, 'null')).toMatch(/enter a dict/);
    expect(message(dict, '(1, 2)')).toMatch(/enter a dict/);
  });
});

describe('parseInput for a select', () => {
  const colour = spec('str', 'red', { kind: 'select', choices: ['red', 'green', 3, [1]] });

  it('maps the option index to the choice', () => {
    expect(value(colour, '0')).toBe('red');
    expect(value(colour, '2')).toBe(3);
    expect(value(colour, '3')).toEqual([1]);
  });

  it('refuses an index outside the choices', () => {
    expect(message(colour, '4')).toBe('P: choose one of red, green, 3, [1]');
    expect(message(colour, '-1')).toMatch(/choose one of/);
    expect(message(colour, 'red')).toMatch(/choose one of/);
  });
});

describe('runValues', () => {
  const specs: ParameterSpec[] = [
    {
      ...spec('float', 1, { kind: 'slider', min: 0.5, max: 5, step: 0.5 }, '1.0'),
      name: 'frequency'
    },
    { ...spec('int', 400), name: 'points' },
    { ...spec('bool', false), name: 'grid' },
    { ...spec('str', 'x', { kind: 'select', choices: ['x', 'y'] }), name: 'axis' },
    { ...spec('unknown', null, {}, 'np.arange(10)'), name: 'data' }
  ];

  it('sends nothing when nothing changed', () => {
    expect(runValues(specs, new Map())).toEqual({ ok: true, values: {} });
  });

  it('sends the changed values, typed', () => {
    const changed = new Map<string, InputValue>([
      ['frequency', '2.5'],
      ['points', '1e3'],
      ['grid', true],
      ['axis', '1']
    ]);
    expect(runValues(specs, changed)).toEqual({
      ok: true,
      values: { frequency: 2.5, points: 1000, grid: true, axis: 'y' }
    });
  });

  it('leaves out inputs back at their default and the select default option', () => {
    const changed = new Map<string, InputValue>([
      ['frequency', '1.0'],
      ['grid', false],
      ['axis', ''],
      ['data', 'np.arange(10)']
    ]);
    expect(runValues(specs, changed)).toEqual({ ok: true, values: {} });
  });

  it('collects every message by parameter name', () => {
    const changed = new Map<string, InputValue>([
      ['frequency', '9'],
      ['points', '1.5'],
      ['grid', true]
    ]);
    const result = runValues(specs, changed);
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect([...result.errors.keys()]).toEqual(['frequency', 'points']);
      expect(result.errors.get('frequency')).toMatch(/at most 5/);
    }
  });

  it('resets to the defaults', () => {
    expect(defaultInputs(specs)).toEqual(
      new Map<string, InputValue>([
        ['frequency', '1.0'],
        ['points', '400'],
        ['grid', false],
        ['axis', '0'],
        ['data', 'np.arange(10)']
      ])
    );
  });
});

describe('jsonEqual', () => {
  it('compares deeply, ignoring key order', () => {
    expect(jsonEqual({ a: [1, { b: null }], c: 'x' }, { c: 'x', a: [1, { b: null }] })).toBe(true);
    expect(jsonEqual([1, 2], [2, 1])).toBe(false);
    expect(jsonEqual({ a: 1 }, { a: 1, b: 2 })).toBe(false);
    expect(jsonEqual(null, {})).toBe(false);
    expect(jsonEqual([], {})).toBe(false);
    expect(jsonEqual(1, '1')).toBe(false);
  });
});
