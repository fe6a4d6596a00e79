/**
 * The console's whole DOM helper: `h('button', { class: 'x', onclick }, 'Text')`.
 * Children that are strings become text nodes, so server data is never parsed
 * as HTML (there is no innerHTML anywhere in the console).
 */
export type Child = Node | string | number | null | undefined | false | readonly Child[];
type Handler = (ev: Event) => void;
export type Props = Record<string, string | number | boolean | null | undefined | Handler | Record<string, string>>;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, props?: Props | null, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, v] of Object.entries(props ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (typeof v === 'function') el.addEventListener(key.replace(/^on/, ''), v);
    else if (key === 'class') el.className = String(v);
    else if (key === 'dataset' && typeof v === 'object') Object.assign(el.dataset, v);
    else if (key === 'value' || key === 'checked') (el as unknown as Record<string, unknown>)[key] = v;
    else el.setAttribute(key, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

export function append(parent: Node, children: readonly Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(parent, c);
    else parent.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replace everything inside `el`. */
export function replace(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, children);
}
