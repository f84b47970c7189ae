// DOM helpers. Every piece of text a user or the server supplied goes into
// the page through textContent (the `h` children below become text nodes),
// never through innerHTML: a message can contain "<script>" and is shown as
// exactly those characters.

/**
 * Creates an element. `props` sets attributes (strings), `on*` listeners
 * (functions), `class`, `dataset` (object) and boolean properties such as
 * `hidden`/`disabled` (true/false). Children are nodes, strings (as text),
 * or arrays of them; null/false are skipped.
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (value === true) {
      el.setAttribute(key, '');
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

/** Replaces all children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

/** `document.getElementById`, failing loudly when the page lacks the id. */
export function byId(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`missing #${id}`);
  return el;
}

/** Initials for an avatar: "Ada Lovelace" -> "AL". A name written in
 * Chinese characters shows its last two, as Chinese chat apps do: "王芳" ->
 * "王芳", "欧阳娜娜" -> "娜娜" (the given name, which friends call you by). */
export function initials(name) {
  const text = String(name || '?').trim();
  if (/^\p{Script=Han}+$/u.test(text)) return Array.from(text).slice(-2).join('');
  const words = text.split(/\s+/).filter(Boolean);
  const letters = words.length > 1 ? [words[0], words[words.length - 1]] : [words[0] || '?'];
  return letters.map((w) => Array.from(w)[0].toUpperCase()).join('');
}

/** One of twelve colour classes (hue-0 to hue-11), stable for a key such as
 * "u7" (user 7) or "g3" (conversation 3). */
export function hueClass(key) {
  let hash = 0;
  for (const ch of String(key)) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  // A step of 7 (coprime with 12) puts neighbouring ids far apart in hue.
  return `hue-${(hash * 7) % 12}`;
}

/** A round avatar with initials, its colour derived from a stable key. */
export function avatar(name, key, extraClass = '') {
  return h('span', { class: `avatar ${hueClass(key)} ${extraClass}`, 'aria-hidden': 'true' }, initials(name));
}
