/**
 * The logic of the parameter form, free of JupyterLab and the DOM: which widget a parameter
 * gets, what its input shows for the default, how an input is read back into a typed value
 * (with the bounds and choices checked), and which values a run sends.
 *
 * Inputs are what the controls hold: text for text, number and slider inputs (their `value`),
 * a boolean for checkboxes, and the index of the chosen option as text for selects ('' for
 * "the notebook's default"). The server checks every value again (`POST erchub/run` answers
 * 400 naming the parameter); the checks here only give the message before a kernel is asked.
 */

/** A JSON value, as the parameters endpoint gives defaults and choices. */
export type JsonValue =
  null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** The parameter types the server names; anything else is treated as 'unknown'. */
export const PARAMETER_TYPES = ['int', 'float', 'bool', 'str', 'list', 'dict', 'unknown'] as const;
export type ParameterType = (typeof PARAMETER_TYPES)[number];

export const WIDGET_KINDS = ['slider', 'number', 'text', 'checkbox', 'select'] as const;
export type WidgetKind = (typeof WIDGET_KINDS)[number];

/** The widget hint of a parameter (`GET erchub/parameters`). */
export interface WidgetSpec {
  kind: string;
  min?: number | null;
  max?: number | null;
  step?: number | null;
  choices?: JsonValue[] | null;
}

/** One parameter (`GET erchub/parameters`). */
export interface ParameterSpec {
  name: string;
  type: string;
  /** the default as JSON, null when the notebook's default is not a literal */
  default: JsonValue;
  /** the default's source text in the notebook */
  default_source: string;
  help: string;
  label: string;
  widget: WidgetSpec;
}

/** The answer of `GET erchub/parameters?path=`. */
export interface ParametersResponse {
  path: string;
  erc_root: string | null;
  parameters: ParameterSpec[];
  warnings: string[];
}

/** What a control holds: its text, or a checkbox's state. */
export type InputValue = string | boolean;

export type ParseResult = { ok: true; value: JsonValue } | { ok: false; message: string };

/** The parameter's type, 'unknown' for a type the form has no rule for. */
export function parameterType(spec: ParameterSpec): ParameterType {
  const known = PARAMETER_TYPES as readonly string[];
  return known.includes(spec.type) ? (spec.type as ParameterType) : 'unknown';
}

function isNumericType(type: ParameterType): boolean {
  return type === 'int' || type === 'float';
}

function finite(value: number | null | undefined): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

/**
 * The widget to show. The server's hint is followed when the form can honour it: a slider
 * needs a numeric type with finite min and max (else a number input), a select needs choices,
 * a checkbox a bool, a number input a numeric type; otherwise the type's default widget.
 */
export function widgetKind(spec: ParameterSpec): WidgetKind {
  const type = parameterType(spec);
  const widget = spec.widget ?? { kind: '' };
  const numeric = isNumericType(type);
  switch (widget.kind) {
    case 'select':
      if (Array.isArray(widget.choices) && widget.choices.length > 0) {
        return 'select';
      }
      break;
    case 'slider':
      if (numeric && finite(widget.min) && finite(widget.max) && widget.min < widget.max) {
        return 'slider';
      }
      if (numeric) {
        return 'number';
      }
      break;
    case 'number':
      if (numeric) {
        return 'number';
      }
      break;
    case 'checkbox':
      if (type === 'bool') {
        return 'checkbox';
      }
      break;
    case 'text':
      return 'text';
  }
  if (numeric) {
    return 'number';
  }
  return type === 'bool' ? 'checkbox' : 'text';
}

/** The step of a slider or number input: the hint, else 1 for int, else "any" or 1/100. */
export function inputStep(spec: ParameterSpec): string {
  const step = spec.widget?.step;
  if (finite(step) && step > 0) {
    return String(step);
  }
  if (parameterType(spec) === 'int') {
    return '1';
  }
  const { min, max } = spec.widget ?? {};
  if (widgetKind(spec) === 'slider' && finite(min) && finite(max)) {
    return String((max - min) / 100);
  }
  return 'any';
}

/** Deep equality of JSON values (object key order does not matter). */
export function jsonEqual(a: JsonValue, b: JsonValue): boolean {
  if (a === b) {
    return true;
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    return (
      Array.isArray(a) &&
      Array.isArray(b) &&
      a.length === b.length &&
      a.every((item, index) => jsonEqual(item, b[index]))
    );
  }
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') {
    return false;
  }
  const keys = Object.keys(a);
  return (
    keys.length === Object.keys(b).length &&
    keys.every(key => Object.prototype.hasOwnProperty.call(b, key) && jsonEqual(a[key], b[key]))
  );
}

/** A value as a short text: strings as they are, everything else as JSON. */
export function formatValue(value: JsonValue): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** The text of a select option for a choice. */
export function choiceLabel(choice: JsonValue): string {
  return formatValue(choice);
}

/** The input that shows the parameter's default. */
export function initialInput(spec: ParameterSpec): InputValue {
  const kind = widgetKind(spec);
  const value = spec.default;
  switch (kind) {
    case 'checkbox':
      return value === true;
    case 'select': {
      const index = (spec.widget.choices ?? []).findIndex(choice => jsonEqual(choice, value));
      return index === -1 ? '' : String(index);
    }
    case 'slider':
    case 'number':
      if (typeof value !== 'number') {
        return spec.default_source;
      }
      // keep the notebook's spelling ("1.0", "1e-3") when it is the same number
      return Number(spec.default_source) === value ? spec.default_source.trim() : String(value);
    case 'text':
      if (parameterType(spec) === 'str' && typeof value === 'string') {
        return value;
      }
      return spec.default_source;
  }
}

/** The inputs of every parameter at their defaults ("Reset"). */
export function defaultInputs(specs: ParameterSpec[]): Map<string, InputValue> {
  return new Map(specs.map(spec => [spec.name, initialInput(spec)]));
}

/** A decimal number as people type it: 12, -0.5, .5, 1e3, +2.5E-3 (no hex, no words). */
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;
const TRUE_WORDS = ['true', '1', 'yes'];
const FALSE_WORDS = ['false', '0', 'no'];

function fail(message: string): ParseResult {
  return { ok: false, message };
}

function describe(spec: ParameterSpec): string {
  return spec.label || spec.name;
}

function parseNumber(spec: ParameterSpec, input: InputValue): ParseResult {
  const type = parameterType(spec);
  const what = type === 'int' ? 'a whole number' : 'a number';
  const text = String(input).trim();
  if (text === '') {
    return fail(`${describe(spec)}: enter ${what}`);
  }
  if (/^[+-]?(nan|inf|infinity)$/i.test(text)) {
    return fail(`${describe(spec)}: ${text} cannot be used, enter a finite number`);
  }
  if (!DECIMAL.test(text)) {
    return fail(`${describe(spec)}: "${text}" is not ${what}`);
  }
  const value = Number(text);
  if (!Number.isFinite(value)) {
    return fail(`${describe(spec)}: ${text} is too large, enter a finite number`);
  }
  if (type === 'int') {
    if (!Number.isInteger(value)) {
      return fail(`${describe(spec)}: ${text} is not a whole number`);
    }
    if (!Number.isSafeInteger(value)) {
      return fail(`${describe(spec)}: ${text} is too large to be sent exactly`);
    }
  }
  const { min, max } = spec.widget ?? {};
  if (finite(min) && value < min) {
    return fail(`${describe(spec)} must be at least ${min}, got ${text}`);
  }
  if (finite(max) && value > max) {
    return fail(`${describe(spec)} must be at most ${max}, got ${text}`);
  }
  // -0 is sent as 0: JSON has no negative zero
  return { ok: true, value: Object.is(value, -0) ? 0 : value };
}

function parseBool(spec: ParameterSpec, input: InputValue): ParseResult {
  if (typeof input === 'boolean') {
    return { ok: true, value: input };
  }
  const word = input.trim().toLowerCase();
  if (TRUE_WORDS.includes(word)) {
    return { ok: true, value: true };
  }
  if (FALSE_WORDS.includes(word)) {
    return { ok: true, value: false };
  }
  return fail(`${describe(spec)}: "${input}" is not true or false`);
}

const CONTAINER_EXAMPLES = { list: '[1, 2]', dict: '{"a": 1}' };

/**
 * A list or dict typed as JSON or as a Python literal. JSON is read here and its kind checked;
 * a Python literal (single quotes, True, None, tuples) is sent as text, which the server
 * reads with `ast.literal_eval` and checks (a 400 names the parameter when it does not fit).
 */
function parseContainer(
  spec: ParameterSpec,
  input: InputValue,
  type: 'list' | 'dict'
): ParseResult {
  const text = String(input).trim();
  const expected = `${describe(spec)}: enter a ${type} such as ${CONTAINER_EXAMPLES[type]}`;
  if (text === '') {
    return fail(expected);
  }
  let value: JsonValue;
  try {
    value = JSON.parse(text) as JsonValue;
  } catch {
    const brackets =
      type === 'list'
        ? [
            ['[', ']'],
            ['(', ')']
          ]
        : [['{', '}']];
    const enclosed = brackets.some(
      ([open, close]) => text.startsWith(open) && text.endsWith(close)
    );
    return enclosed ? { ok: true, value: text } : fail(expected);
  }
  const isList = Array.isArray(value);
  const isDict = value !== null && typeof value === 'object' && !isList;
  if ((type === 'list' && !isList) || (type === 'dict' && !isDict)) {
    return fail(expected);
  }
  return { ok: true, value };
}

function parseChoice(spec: ParameterSpec, input: InputValue): ParseResult {
  const choices = spec.widget.choices ?? [];
  const text = String(input).trim();
  const index = /^\d+$/.test(text) ? Number(text) : -1;
  if (index < 0 || index >= choices.length) {
    const listing = choices.map(choiceLabel).join(', ');
    return fail(`${describe(spec)}: choose one of ${listing}`);
  }
  return { ok: true, value: choices[index] };
}

/**
 * The value an input stands for, or a message saying what is wrong. Types: int (a whole
 * number; 1e3 is 1000, 1.5 is refused), float (finite; NaN and infinities are refused: JSON
 * cannot carry them), bool (true/false, yes/no, 1/0), str (the text as typed), list and dict
 * (JSON or a Python literal), unknown (the text, read by the server as a Python literal when
 * it is one). min/max and choices are checked.
 */
export function parseInput(spec: ParameterSpec, input: InputValue): ParseResult {
  const kind = widgetKind(spec);
  if (kind === 'select') {
    return parseChoice(spec, input);
  }
  const type = parameterType(spec);
  switch (type) {
    case 'int':
    case 'float':
      return parseNumber(spec, input);
    case 'bool':
      return parseBool(spec, input);
    case 'list':
    case 'dict':
      return parseContainer(spec, input, type);
    case 'str':
    case 'unknown':
      return { ok: true, value: String(input) };
  }
}

/** The values of a run, or the messages of the inputs that are wrong (by parameter name). */
export type RunValues =
  { ok: true; values: Record<string, JsonValue> } | { ok: false; errors: Map<string, string> };

/**
 * The values to send for a run, from the inputs the user changed (by parameter name). An
 * input that is back at the default's input is not sent, nor the select's "default" option:
 * a parameter left at its default keeps the notebook's own default exactly (it may not be a
 * literal, e.g. `np.arange(10)`); the run's answer lists every value used.
 */
export function runValues(specs: ParameterSpec[], changed: Map<string, InputValue>): RunValues {
  const values: Record<string, JsonValue> = {};
  const errors = new Map<string, string>();
  for (const spec of specs) {
    const input = changed.get(spec.name);
    if (input === undefined || input === initialInput(spec)) {
      continue;
    }
    if (widgetKind(spec) === 'select' && input === '') {
      continue; // "the notebook's default" option
    }
    const result = parseInput(spec, input);
    if (result.ok) {
      values[spec.name] = result.value;
    } else {
      errors.set(spec.name, result.message);
    }
  }
  return errors.size > 0 ? { ok: false, errors } : { ok: true, values };
}
