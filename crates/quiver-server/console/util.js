// DOM and formatting helpers shared by the console's pages: an element builder, error
// and notice boxes, inline confirmation, number formats and the JSON tree. Everything
// the server returns is put into the page as text nodes, never parsed as HTML, so a
// document's text or metadata cannot inject markup.

/** Builds an element: `h('a', {href: '#/x', class: 'y', onclick: f}, 'text', child)`. */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    // A textarea's content and an input's current value are properties, not attributes.
    else if (k === 'value') el.value = v;
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** An empty, hidden box that `showError` fills; sits next to the form it reports on. */
export function errorBox(id) {
  return h('div', { class: 'form-error', role: 'alert', id, hidden: true });
}

/** Shows the server's `{"error":{"code","message"}}` (or a local message) in `box`. */
export function showError(box, err) {
  const code = err && err.code;
  const message = err && err.message !== undefined ? err.message : String(err);
  box.replaceChildren(...(code ? [h('span', { class: 'code', text: code }), ' '] : []), message);
  box.hidden = false;
}

export function hideBox(box) {
  box.hidden = true;
  box.replaceChildren();
}

/** A success line, e.g. after a create; same placement rules as the error box. */
export function noticeBox(id) {
  return h('div', { class: 'notice', role: 'status', id, hidden: true });
}

export function showNotice(box, ...content) {
  box.replaceChildren(...content);
  box.hidden = false;
}

/**
 * Replaces `button` with a question and Yes/No buttons until answered, so a destructive
 * action always takes a second, deliberate click on a button that names it.
 */
export function confirmInline(button, question, yesLabel, onYes) {
  const holder = button.parentNode;
  const yes = h('button', { type: 'button', class: 'danger confirm-yes', text: yesLabel });
  const no = h('button', { type: 'button', class: 'confirm-no', text: 'Cancel' });
  const box = h('span', { class: 'confirm' }, h('span', { text: question }), ' ', yes, ' ', no);
  const restore = () => box.replaceWith(button);
  no.addEventListener('click', restore);
  yes.addEventListener('click', async () => {
    yes.disabled = no.disabled = true;
    try {
      await onYes();
    } finally {
      if (box.isConnected) restore();
    }
  });
  holder.replaceChild(box, button);
  yes.focus();
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

export function fmtBytes(n) {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '—';
  let i = 0;
  while (n >= 1024 && i < UNITS.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${i === 0 ? n : n.toFixed(n < 10 ? 2 : 1)} ${UNITS[i]}`;
}

export function fmtNum(n) {
  return typeof n === 'number' && Number.isFinite(n) ? n.toLocaleString('en-US') : '—';
}

export function fmtScore(x) {
  return typeof x === 'number' && Number.isFinite(x) ? x.toFixed(4) : '—';
}

export function fmtMs(x) {
  if (typeof x !== 'number' || !Number.isFinite(x)) return '—';
  return x < 1 ? `${x.toFixed(3)} ms` : x < 100 ? `${x.toFixed(2)} ms` : `${Math.round(x)} ms`;
}

export function orDash(v) {
  return v === undefined || v === null || v === '' ? '—' : String(v);
}

/** Metadata as nested, collapsible lists: objects and arrays fold, leaves show typed. */
export function jsonTree(value, depth = 0) {
  if (value === null || typeof value !== 'object') return leaf(value);
  const entries = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
  if (entries.length === 0) return leaf(value);
  const list = h('ul', { class: 'tree' });
  for (const [k, v] of entries) {
    const key = h('span', { class: 'tree-key', text: Array.isArray(value) ? `[${k}]` : k });
    if (v !== null && typeof v === 'object' && Object.keys(v).length > 0) {
      const n = Array.isArray(v) ? `[${v.length}]` : `{${Object.keys(v).length}}`;
      list.append(h('li', {}, h('details', { open: depth < 1 },
        h('summary', {}, key, h('span', { class: 'muted', text: ` ${n}` })),
        jsonTree(v, depth + 1))));
    } else {
      list.append(h('li', {}, key, ': ', leaf(v)));
    }
  }
  return list;
}

function leaf(v) {
  const type = v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
  return h('span', { class: `tree-val t-${type}`, text: JSON.stringify(v) });
}

/**
 * `text` with the server's `highlights` in <mark>: `[start, end)` ranges in code points,
 * which index `Array.from(text)` (JavaScript strings index UTF-16 units).
 */
export function markRanges(text, ranges) {
  const out = h('span', { class: 'hl' });
  const chars = Array.from(String(text));
  let at = 0;
  for (const [start, end] of ranges) {
    if (start > at) out.append(document.createTextNode(chars.slice(at, start).join('')));
    out.append(h('mark', { text: chars.slice(start, end).join('') }));
    at = Math.max(at, end);
  }
  if (at < chars.length) out.append(document.createTextNode(chars.slice(at).join('')));
  return out;
}

/** `text` as text nodes with the words of `words` (a lowercase Set) in <mark>. */
export function highlight(text, words) {
  const out = h('span', { class: 'hl' });
  if (!words.size) {
    out.textContent = text;
    return out;
  }
  // Odd indexes of the split are the words themselves (the capture group).
  const parts = String(text).split(/([\p{L}\p{N}]+)/u);
  parts.forEach((p, i) => {
    if (i % 2 === 1 && words.has(p.toLowerCase())) out.append(h('mark', { text: p }));
    else if (p) out.append(document.createTextNode(p));
  });
  return out;
}

export function queryWords(text) {
  return new Set(String(text || '').toLowerCase().split(/[^\p{L}\p{N}]+/u).filter(Boolean));
}

/** Parses an optional JSON field; returns {value} or {error} with a readable message. */
export function parseJsonField(raw, what) {
  const s = raw.trim();
  if (!s) return { value: undefined };
  try {
    return { value: JSON.parse(s) };
  } catch (e) {
    return { error: `${what} is not valid JSON: ${e.message}` };
  }
}

export function enc(s) {
  return encodeURIComponent(s);
}

/** A labelled form row. */
export function field(label, control, hint, cls) {
  return h('label', { class: cls ? `field ${cls}` : 'field' }, h('span', { class: 'label', text: label }), control,
    hint ? h('span', { class: 'hint', text: hint }) : null);
}

/** A numeric column's heading, right-aligned over its figures. */
export const num = (label) => ({ num: label });

/** `thead('Name', num('Documents'), '')`. */
export function thead(...labels) {
  return h('thead', {}, h('tr', {}, labels.map((l) => (typeof l === 'object'
    ? h('th', { class: 'num', text: l.num }) : h('th', { text: l })))));
}
