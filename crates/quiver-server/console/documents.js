// A collection's documents: browsing page by page (`GET .../documents?limit&after`),
// one document's view (text, metadata tree, vector), deleting, and uploading a JSONL or
// BEIR corpus file, parsed in the browser and upserted in batches.

import { api } from './api.js';
import { collectionHeader, refreshHeader } from './collections.js';
import {
  confirmInline, enc, errorBox, fmtNum, h, hideBox, jsonTree, noticeBox, showError, showNotice,
  thead,
} from './util.js';

const PAGE = 50;
// Documents per upsert request, and a cap on its JSON so a batch of long texts stays
// far below the server's `limits.max_body_bytes` (32 MiB by default).
const BATCH_DOCS = 256;
const BATCH_BYTES = 4 << 20;

export async function documentsPage(page, name) {
  document.title = `${name} · Documents · Quiver`;
  const info = await collectionHeader(page, name, 'documents');
  if (!info) return;
  const listError = errorBox('documents-error');
  const body = h('tbody');
  const prev = h('button', { type: 'button', id: 'page-prev', text: '← Previous' });
  const next = h('button', { type: 'button', id: 'page-next', text: 'Next →' });
  const where = h('span', { class: 'muted', id: 'page-where' });
  const table = h('table', { id: 'documents-table', class: 'grid' },
    thead('Id', 'Text', 'Metadata', ''),
    body);
  // cursors[i] is the `after` of page i; the first page has none.
  const cursors = [null];
  let index = 0;
  let nextCursor = null;
  // A cursor that led to an empty page (the last page was exactly full): no Next there.
  let emptyAfter = null;
  page.append(
    uploadForm(info, () => {
      emptyAfter = null; // new documents may fill the page that was empty
      return Promise.all([refreshHeader(name), load()]);
    }),
    h('section', { class: 'panel' }, h('h2', { text: 'Documents' }), listError, table,
      h('div', { class: 'pager' }, prev, where, next)));

  async function load() {
    hideBox(listError);
    const after = cursors[index];
    const q = `limit=${PAGE}${after !== null ? `&after=${enc(after)}` : ''}`;
    let answer;
    try {
      answer = await api('GET', `/collections/${enc(name)}/documents?${q}`);
    } catch (e) {
      body.replaceChildren();
      prev.disabled = next.disabled = true;
      showError(listError, e);
      return;
    }
    const docs = answer.documents || [];
    if (!docs.length && index > 0) {
      // Nothing here (its rows were deleted, or the page before ended the collection
      // exactly): show the page before, without a Next that leads back here.
      emptyAfter = after;
      index -= 1;
      cursors.length = index + 1;
      return load();
    }
    nextCursor = answer.next ?? null;
    if (nextCursor !== null && nextCursor === emptyAfter) nextCursor = null;
    body.replaceChildren();
    if (!docs.length) {
      body.append(h('tr', {}, h('td', { colspan: 4, class: 'muted', text: 'No documents: upload a file above.' })));
    }
    for (const d of docs) {
      const del = h('button', { type: 'button', class: 'danger small', text: 'Delete' });
      del.addEventListener('click', () => confirmInline(del, `Delete ${d.id}?`, 'Delete', async () => {
        try {
          await api('DELETE', `/collections/${enc(name)}/documents/${enc(d.id)}`);
          await Promise.all([refreshHeader(name), load()]);
        } catch (e) {
          showError(listError, e);
        }
      }));
      body.append(h('tr', { dataset: { id: d.id } },
        h('td', {}, h('a', { href: `#/collections/${enc(name)}/documents/${enc(d.id)}`, text: d.id })),
        h('td', { class: 'clip', text: clip(d.text, 160) }),
        h('td', { class: 'clip mono', text: clip(JSON.stringify(d.metadata || {}), 100) }),
        h('td', { class: 'row-actions' }, del)));
    }
    prev.disabled = index === 0;
    next.disabled = nextCursor === null;
    where.textContent = `page ${index + 1} · ${docs.length} shown`;
  }

  prev.addEventListener('click', () => {
    if (index === 0) return;
    index -= 1;
    load();
  });
  next.addEventListener('click', () => {
    if (nextCursor === null) return;
    cursors[index + 1] = nextCursor;
    index += 1;
    load();
  });
  await load();
}

function clip(s, n) {
  s = String(s ?? '');
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}

/** One line's JSON as a document body, the way `quiver import` reads it. */
export function toDocument(obj) {
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) throw new Error('not a JSON object');
  const beir = Object.prototype.hasOwnProperty.call(obj, '_id');
  const rawId = beir ? obj._id : obj.id;
  if (typeof rawId !== 'string' && typeof rawId !== 'number') throw new Error('missing a string or number id');
  let text = obj.text ?? '';
  if (typeof text !== 'string') throw new Error('text is not a string');
  let metadata = obj.metadata ?? {};
  if (typeof metadata !== 'object' || Array.isArray(metadata)) throw new Error('metadata is not an object');
  if (beir && typeof obj.title === 'string' && obj.title) {
    // As BEIR evaluations embed passages: title, then text; the title kept as metadata.
    text = text ? `${obj.title}\n${text}` : obj.title;
    metadata = { ...metadata, title: obj.title };
  }
  const doc = { id: String(rawId), text, metadata };
  if (obj.vector !== undefined) doc.vector = obj.vector;
  return doc;
}

/** True when the server will likely refuse `doc`: worth asking it about that one first. */
function doubtful(doc, config) {
  if (doc.vector === undefined || doc.vector === null) return !config.embedding_model;
  return !Array.isArray(doc.vector) || doc.vector.length !== config.dim
    || !doc.vector.every((x) => typeof x === 'number' && Number.isFinite(x));
}

function uploadForm(info, uploaded) {
  const name = info.name;
  const file = h('input', { type: 'file', id: 'upload-file', accept: '.jsonl,.json,.ndjson,.txt' });
  const submit = h('button', { type: 'submit', class: 'primary', id: 'upload-submit', text: 'Upload' });
  const progress = h('progress', { id: 'upload-progress', max: 1, value: 0, hidden: true });
  const status = h('span', { id: 'upload-status', class: 'muted' });
  const error = errorBox('upload-error');
  const notice = noticeBox('upload-notice');
  const form = h('form', { id: 'upload-form', class: 'panel' },
    h('h2', { text: 'Upload' }),
    h('p', { class: 'hint' }, 'A JSONL file: one ', h('code', { text: '{"id", "text", "metadata", "vector"}' }),
      ' per line (', h('code', { text: 'vector' }), info.config.embedding_model ? ' optional: texts are embedded by '
        + `${info.config.embedding_model})` : ` required, ${info.config.dim} numbers)`,
      ', or a BEIR corpus (', h('code', { text: '{"_id", "title", "text"}' }), '). Every line is checked before anything is sent.'),
    h('div', { class: 'row' }, file, submit, progress, status), error, notice);

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    hideBox(error);
    hideBox(notice);
    const f = file.files && file.files[0];
    if (!f) return showError(error, { message: 'Choose a file first.' });
    submit.disabled = true;
    try {
      await upload(f);
    } finally {
      submit.disabled = false;
    }
  });

  async function upload(f) {
    status.textContent = `reading ${f.name}…`;
    let text;
    try {
      text = await f.text();
    } catch (e) {
      status.textContent = '';
      return showError(error, { message: `cannot read ${f.name}: ${e.message}` });
    }
    // Parse every line first: a file with one bad line uploads nothing.
    const docs = [];
    const lineOf = [];
    const lines = text.split(/\r?\n/);
    for (let i = 0; i < lines.length; i += 1) {
      if (!lines[i].trim()) continue;
      try {
        docs.push(toDocument(JSON.parse(lines[i])));
        lineOf.push(i + 1);
      } catch (err) {
        status.textContent = '';
        return showError(error, { code: 'invalid_file', message: `line ${i + 1}: ${err.message}. Nothing was uploaded.` });
      }
    }
    if (!docs.length) {
      status.textContent = '';
      return showError(error, { code: 'invalid_file', message: `${f.name} holds no documents.` });
    }
    // A line that looks wrong here is sent alone first, so the server's own message
    // names the problem while nothing else has been written. Should the server accept
    // it after all, the in-order upload below writes it again in its place.
    const suspect = docs.findIndex((d) => doubtful(d, info.config));
    if (suspect >= 0) {
      try {
        await api('POST', `/collections/${enc(name)}/documents`, { documents: [docs[suspect]] });
      } catch (err) {
        status.textContent = '';
        return showError(error, { code: err.code, message: `line ${lineOf[suspect]}: ${err.message}. Nothing was uploaded.` });
      }
    }
    progress.max = docs.length;
    progress.value = 0;
    progress.hidden = false;
    let sent = 0;
    let lsn = null;
    while (sent < docs.length) {
      const batch = [];
      let bytes = 0;
      while (sent + batch.length < docs.length && batch.length < BATCH_DOCS) {
        const size = JSON.stringify(docs[sent + batch.length]).length;
        if (batch.length && bytes + size > BATCH_BYTES) break;
        batch.push(docs[sent + batch.length]);
        bytes += size;
      }
      status.textContent = `${fmtNum(sent)} / ${fmtNum(docs.length)} documents`;
      try {
        ({ lsn } = await api('POST', `/collections/${enc(name)}/documents`, { documents: batch }));
      } catch (err) {
        const first = lineOf[sent];
        const last = lineOf[sent + batch.length - 1];
        const kept = sent ? ` The ${fmtNum(sent)} documents before line ${first} were stored; nothing from line ${first} on.`
          : ' Nothing was uploaded.';
        status.textContent = '';
        return showError(error, { code: err.code, message: `lines ${first}–${last}: ${err.message}.${kept}` });
      }
      sent += batch.length;
      progress.value = sent;
    }
    status.textContent = `${fmtNum(sent)} / ${fmtNum(docs.length)} documents`;
    file.value = '';
    // The list shows the new documents by the time the notice says they are there.
    await uploaded();
    showNotice(notice, `Uploaded ${fmtNum(sent)} documents from ${f.name} (LSN ${lsn}).`);
  }
  return form;
}

/** The chunks a long text was embedded in, folded away; nothing for a text stored whole. */
function chunkList(chunks) {
  if (!Array.isArray(chunks) || !chunks.length) return null;
  return h('details', { class: 'chunks', id: 'document-chunks' },
    h('summary', { text: `Embedded in ${fmtNum(chunks.length)} chunks` }),
    h('ol', { start: 0 }, ...chunks.map((c) => h('li', {},
      h('span', { class: 'muted mono', text: `characters ${c.start}–${c.end} ` }),
      h('span', { class: 'doc-text', text: c.text })))));
}

export async function documentPage(page, name, id) {
  document.title = `${id} · ${name} · Quiver`;
  const info = await collectionHeader(page, name, 'documents');
  if (!info) return;
  const error = errorBox('document-error');
  const back = h('p', {}, h('a', { href: `#/collections/${enc(name)}/documents`, text: '← Documents' }));
  page.append(back, error);
  let doc;
  try {
    doc = await api('GET', `/collections/${enc(name)}/documents/${enc(id)}?chunks=true`);
  } catch (e) {
    showError(error, e);
    return;
  }
  const v = Array.isArray(doc.vector) ? doc.vector : [];
  const norm = Math.sqrt(v.reduce((a, x) => a + x * x, 0));
  const del = h('button', { type: 'button', class: 'danger', id: 'delete-document', text: 'Delete document' });
  del.addEventListener('click', () => confirmInline(del, `Delete ${doc.id}?`, 'Delete', async () => {
    try {
      await api('DELETE', `/collections/${enc(name)}/documents/${enc(doc.id)}`);
      location.hash = `#/collections/${enc(name)}/documents`;
    } catch (e) {
      showError(error, e);
    }
  }));
  page.append(h('article', { class: 'panel', id: 'document-view' },
    h('h2', { class: 'mono', text: doc.id }),
    h('h3', { text: 'Text' }),
    h('div', { class: 'doc-text', id: 'document-text', text: doc.text || '(empty)' }),
    chunkList(doc.chunks),
    h('h3', { text: 'Metadata' }),
    h('div', { id: 'document-metadata' }, Object.keys(doc.metadata || {}).length
      ? jsonTree(doc.metadata) : h('span', { class: 'muted', text: 'none' })),
    h('h3', { text: 'Vector' }),
    h('dl', { class: 'facts', id: 'document-vector' },
      h('div', {}, h('dt', { text: 'Dimensions' }), h('dd', { text: fmtNum(v.length) })),
      h('div', {}, h('dt', { text: 'Norm' }), h('dd', { text: norm.toFixed(6) })),
      h('div', { class: 'wide' }, h('dt', { text: 'First values' }),
        h('dd', { class: 'mono', text: `[${v.slice(0, 8).map((x) => x.toFixed(5)).join(', ')}${v.length > 8 ? ', …' : ''}]` }))),
    h('div', { class: 'actions' }, del)));
}
