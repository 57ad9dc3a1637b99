/**
 * A small element builder for the panel's plain-DOM views.
 */

type Attributes = Record<string, string | number | boolean | null | undefined>;
type Child = Node | string | null | undefined | false;

/**
 * An element with attributes (`class`, `data-*`, `aria-*`, properties such as `value` are set
 * as attributes; `false`/`null`/`undefined` leave an attribute out, `true` sets it empty) and
 * children (strings become text nodes).
 */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Attributes = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) {
      continue;
    }
    element.setAttribute(name, value === true ? '' : String(value));
  }
  append(element, ...children);
  return element;
}

export function append(parent: Node, ...children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) {
      continue;
    }
    parent.appendChild(typeof child === 'string' ? document.createTextNode(child) : child);
  }
}

/** Replace an element's children. */
export function replaceChildren(parent: Element, ...children: Child[]): void {
  parent.textContent = '';
  append(parent, ...children);
}

/** An error message in plain words (`.erchub-error`), with a role that screen readers
 * announce. */
export function errorBox(message: string): HTMLElement {
  return h('div', { class: 'erchub-error', role: 'alert' }, message);
}

let counter = 0;

/** A unique element id for label/control pairs. */
export function uniqueId(prefix: string): string {
  counter += 1;
  return `${prefix}-${counter}`;
}
