// The collections page (list with counts and sizes, create, delete) and the header that
// every page of one collection shares: its facts from `GET /collections/{name}` and
// the tabs. The header is also where an unknown collection in the address is reported.

import { api } from './api.js';
import {
  confirmInline, enc, errorBox, field, fmtBytes, fmtNum, h, hideBox, noticeBox, orDash,
  num, showError, showNotice, thead,
} from './util.js';

/** `GET /models` split by kind, for the model fields' suggestions; empty when absent. */
export async function modelNames() {
  try {
    const { models } = await api('GET', '/models');
    const of = (kind) => models.filter((m) => m.kind === kind).map((m) => m.name);
    return { embedding: of('embedding'), reranking: of('reranking'), error: null };
  } catch (e) {
    return { embedding: [], reranking: [], error: e };
  }
}

export function datalist(id, names) {
  return h('datalist', { id }, names.map((n) => h('option', { value: n })));
}

export async function collectionsPage(page) {
  document.title = 'Collections · Quiver';
  const tableError = errorBox('collections-error');
  const body = h('tbody');
  const table = h('table', { id: 'collections-table', class: 'grid' },
    thead('Name', num('Documents'), num('Dim'), 'Distance', 'Embedding model', 'Reranker',
      num('Segments'), num('Disk'), ''),
    body);
  page.append(h('h1', { text: 'Collections' }), tableError, table, createForm(() => load()));

  async function load() {
    hideBox(tableError);
    let list;
    try {
      ({ collections: list } = await api('GET', '/collections'));
    } catch (e) {
      showError(tableError, e);
      return;
    }
    body.replaceChildren();
    if (!list.length) {
      body.append(h('tr', {}, h('td', { colspan: 9, class: 'muted', text: 'No collections yet: create one below.' })));
    }
    for (const c of list) {
      const del = h('button', { type: 'button', class: 'danger small', text: 'Delete' });
      del.addEventListener('click', () => confirmInline(del,
        `Delete ${c.name} and its ${fmtNum(c.count)} documents?`, 'Delete', async () => {
          try {
            await api('DELETE', `/collections/${enc(c.name)}`);
            await load();
          } catch (e) {
            showError(tableError, e);
          }
        }));
      body.append(h('tr', { dataset: { name: c.name } },
        h('td', {}, h('a', { href: `#/collections/${enc(c.name)}/documents`, text: c.name })),
        h('td', { class: 'num', text: fmtNum(c.count) }),
        h('td', { class: 'num', text: fmtNum(c.dim) }),
        h('td', { text: orDash(c.distance) }),
        h('td', { text: orDash(c.embedding_model) }),
        h('td', { text: orDash(c.reranker_model) }),
        h('td', { class: 'num', text: fmtNum(c.segments) }),
        h('td', { class: 'num', text: fmtBytes(c.disk_bytes) }),
        h('td', { class: 'row-actions' }, del)));
    }
  }
  await load();
}

function createForm(reload) {
  const name = h('input', { name: 'name', required: true, pattern: '[A-Za-z0-9_\\-]{1,64}', placeholder: 'papers' });
  const withModel = h('input', { type: 'radio', name: 'vectors', value: 'model', checked: true });
  const ownVectors = h('input', { type: 'radio', name: 'vectors', value: 'own' });
  const model = h('input', { name: 'embedding_model', list: 'embedding-models', placeholder: 'org/name' });
  const dim = h('input', { name: 'dim', type: 'number', min: 1, step: 1 });
  const reranker = h('input', { name: 'reranker_model', list: 'reranking-models', placeholder: 'optional' });
  const distance = h('select', { name: 'distance' },
    ['cosine', 'dot', 'l2'].map((d) => h('option', { value: d, text: d })));
  const error = errorBox('create-error');
  const notice = noticeBox('create-notice');
  const submit = h('button', { type: 'submit', class: 'primary', text: 'Create' });
  const modelRow = field('Embedding model', model);
  const dimHint = h('span', { class: 'hint' });
  const lists = h('div');
  const sync = () => {
    const own = ownVectors.checked;
    modelRow.hidden = own;
    dim.required = own;
    dim.placeholder = own ? 'required' : "model's width";
    dimHint.textContent = own ? 'length of your vectors' : 'optional: a Matryoshka prefix';
  };
  withModel.addEventListener('change', sync);
  ownVectors.addEventListener('change', sync);
  sync();
  modelNames().then((m) => {
    lists.replaceChildren(datalist('embedding-models', m.embedding), datalist('reranking-models', m.reranking));
    if (m.embedding.length === 1 && !model.value) model.value = m.embedding[0];
  });

  const form = h('form', { id: 'create-collection', class: 'panel', novalidate: true },
    h('h2', { text: 'Create a collection' }),
    h('div', { class: 'row' },
      field('Name', name),
      h('fieldset', { class: 'field choice' }, h('legend', { class: 'label', text: 'Vectors' }),
        h('label', {}, withModel, ' embedded by a model'),
        h('label', {}, ownVectors, ' my own vectors')),
      modelRow,
      h('label', { class: 'field' }, h('span', { class: 'label', text: 'Dimension' }), dim, dimHint),
      field('Reranker model', reranker),
      field('Distance', distance)),
    h('div', { class: 'actions' }, submit), error, notice, lists);

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    hideBox(error);
    hideBox(notice);
    const n = name.value.trim();
    if (!n) return showError(error, { message: 'A collection needs a name.' });
    const body = { distance: distance.value };
    if (ownVectors.checked) {
      if (!dim.value) return showError(error, { message: 'Give the dimension of your vectors.' });
    } else {
      if (!model.value.trim()) return showError(error, { message: 'Name the embedding model (or choose “my own vectors”).' });
      body.embedding_model = model.value.trim();
    }
    if (dim.value) {
      const d = Number(dim.value);
      if (!Number.isInteger(d) || d < 1) return showError(error, { message: 'The dimension must be a positive whole number.' });
      body.dim = d;
    }
    if (reranker.value.trim()) body.reranker_model = reranker.value.trim();
    submit.disabled = true;
    try {
      await api('PUT', `/collections/${enc(n)}`, body);
      showNotice(notice, 'Created ', h('a', { href: `#/collections/${enc(n)}/documents`, text: n }), '.');
      name.value = '';
      await reload();
    } catch (err) {
      showError(error, err);
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

/**
 * Renders the shared header of collection `name` into `page` with `tab` marked, and
 * returns the collection's description, or null (with the server's message shown)
 * when it cannot be read, e.g. no such collection.
 */
export async function collectionHeader(page, name, tab) {
  const head = h('div', { class: 'collection-head' });
  page.append(head);
  let info;
  try {
    info = await api('GET', `/collections/${enc(name)}`);
  } catch (e) {
    const box = errorBox('page-error');
    showError(box, e);
    head.append(h('h1', { text: name }), box,
      h('p', {}, h('a', { href: '#/collections', text: '← All collections' })));
    return null;
  }
  const c = info.config || {};
  const tabs = [['documents', 'Documents'], ['search', 'Search'], ['snapshots', 'Snapshots']];
  head.append(
    h('p', { class: 'crumbs' }, h('a', { href: '#/collections', text: 'Collections' }), ' / '),
    h('h1', { text: info.name }),
    h('dl', { class: 'facts', id: 'collection-facts' },
      fact('Documents', fmtNum(info.count), 'fact-count'),
      fact('Dimension', c.index_dim ? `${c.dim} (index ${c.index_dim})` : fmtNum(c.dim)),
      fact('Distance', orDash(c.distance)),
      fact('Embedding model', orDash(c.embedding_model)),
      fact('Reranker', orDash(c.reranker_model)),
      fact('Segments', fmtNum(info.segments), 'fact-segments'),
      fact('Disk', fmtBytes(info.disk_bytes), 'fact-disk')),
    h('nav', { class: 'tabs' }, tabs.map(([t, label]) => h('a', {
      href: `#/collections/${enc(name)}/${t}`, class: t === tab ? 'active' : null, text: label,
    }))));
  return info;
}

/** After a change (an upload, a delete): the header's figures from a fresh description. */
export async function refreshHeader(name) {
  let info;
  try {
    info = await api('GET', `/collections/${enc(name)}`);
  } catch {
    return; // the change stands; the figures stay as they were
  }
  const set = (id, text) => {
    const el = document.getElementById(id);
    if (el) el.textContent = text;
  };
  set('fact-count', fmtNum(info.count));
  set('fact-segments', fmtNum(info.segments));
  set('fact-disk', fmtBytes(info.disk_bytes));
}

function fact(label, value, id) {
  return h('div', {}, h('dt', { text: label }), h('dd', { id, text: value }));
}
