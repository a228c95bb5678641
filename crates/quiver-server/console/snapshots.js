// A collection's snapshots: list, create, download (fetched with the API key, then
// saved from a blob, since a plain link could not carry the key), delete, and restore
// into a collection, a new name by default, an existing one only when asked to.

import { api } from './api.js';
import { collectionHeader } from './collections.js';
import {
  confirmInline, enc, errorBox, field, fmtBytes, fmtNum, h, hideBox, noticeBox, showError,
  num, showNotice, thead,
} from './util.js';

export async function snapshotsPage(page, name) {
  document.title = `${name} · Snapshots · Quiver`;
  const info = await collectionHeader(page, name, 'snapshots');
  if (!info) return;
  const base = `/collections/${enc(name)}/snapshots`;
  const listError = errorBox('snapshots-error');
  const body = h('tbody');
  const table = h('table', { id: 'snapshots-table', class: 'grid' },
    thead('Name', num('Size'), 'Created', num('LSN'), ''),
    body);

  // Create.
  const snapName = h('input', { id: 'snapshot-name', placeholder: 'snapshot-<time>', pattern: '[A-Za-z0-9_\\-]{1,64}' });
  const compress = h('select', { id: 'snapshot-compress' },
    h('option', { value: 'none', text: 'none' }), h('option', { value: 'zstd', text: 'zstd' }));
  const createBtn = h('button', { type: 'submit', class: 'primary', id: 'snapshot-create-submit', text: 'Create snapshot' });
  const createError = errorBox('snapshot-create-error');
  const createNotice = noticeBox('snapshot-create-notice');
  const createForm = h('form', { id: 'snapshot-create', class: 'panel', novalidate: true },
    h('h2', { text: 'Create' }),
    h('p', { class: 'hint', text: 'A point-in-time backup, taken while writes go on.' }),
    h('div', { class: 'row' }, field('Name', snapName), field('Compression', compress), createBtn),
    createError, createNotice);
  createForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    hideBox(createError);
    hideBox(createNotice);
    const req = { compress: compress.value };
    if (snapName.value.trim()) req.name = snapName.value.trim();
    createBtn.disabled = true;
    try {
      const c = await api('POST', base, req);
      showNotice(createNotice, `Created ${c.name}: ${fmtBytes(c.size)}, LSN ${c.lsn}.`);
      snapName.value = '';
      await load();
    } catch (err) {
      showError(createError, err);
    } finally {
      createBtn.disabled = false;
    }
  });

  // Restore.
  const source = h('select', { id: 'restore-snapshot' });
  const target = h('input', { id: 'restore-target', value: `${name}-restored`, pattern: '[A-Za-z0-9_\\-]{1,64}' });
  const replace = h('input', { type: 'checkbox', id: 'restore-replace' });
  const restoreBtn = h('button', { type: 'submit', class: 'primary', id: 'restore-submit', text: 'Restore' });
  const restoreError = errorBox('restore-error');
  const restoreNotice = noticeBox('restore-notice');
  const restoreForm = h('form', { id: 'snapshot-restore', class: 'panel', novalidate: true },
    h('h2', { text: 'Restore' }),
    h('p', { class: 'hint', text: 'Unpacks a snapshot into a collection, checked in full before anything live changes.' }),
    h('div', { class: 'row' }, field('Snapshot', source), field('Into collection', target),
      h('label', { class: 'field check' }, replace, ' replace it if it exists'), restoreBtn),
    restoreError, restoreNotice);
  restoreForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    hideBox(restoreError);
    hideBox(restoreNotice);
    const into = target.value.trim();
    if (!source.value) return showError(restoreError, { message: 'There is no snapshot to restore yet.' });
    if (!into) return showError(restoreError, { message: 'Name the collection to restore into.' });
    restoreBtn.disabled = true;
    try {
      // A restore replaces a collection of that name; only on purpose.
      if (!replace.checked) {
        const { collections } = await api('GET', '/collections');
        if (collections.some((c) => c.name === into)) {
          showError(restoreError, { message: `Collection ${into} exists: restoring would replace it. Tick “replace it if it exists” to go on, or pick a new name.` });
          return;
        }
      }
      const r = await api('POST', `${base}/restore`, { snapshot: source.value, target: into });
      const done = r.restored && r.restored[0];
      showNotice(restoreNotice, 'Restored ', h('a', { href: `#/collections/${enc(into)}/documents`, text: into }),
        done ? ` (${fmtNum(done.documents)} documents, LSN ${done.lsn}).` : '.');
    } catch (err) {
      showError(restoreError, err);
    } finally {
      restoreBtn.disabled = false;
    }
  });

  page.append(h('section', { class: 'panel' }, h('h2', { text: 'Snapshots' }), listError, table),
    createForm, restoreForm);

  async function load() {
    hideBox(listError);
    let list;
    try {
      ({ snapshots: list } = await api('GET', base));
    } catch (e) {
      showError(listError, e);
      return;
    }
    list.sort((x, y) => y.created_unix_ms - x.created_unix_ms);
    body.replaceChildren();
    if (!list.length) body.append(h('tr', {}, h('td', { colspan: 5, class: 'muted', text: 'No snapshots yet.' })));
    const chosen = source.value;
    source.replaceChildren(...list.map((s) => h('option', { value: s.name, text: s.name })));
    if (list.some((s) => s.name === chosen)) source.value = chosen;
    for (const s of list) {
      const download = h('button', { type: 'button', class: 'small', text: 'Download' });
      download.addEventListener('click', () => save(s, download));
      const pick = h('button', { type: 'button', class: 'small', text: 'Restore…' });
      pick.addEventListener('click', () => {
        source.value = s.name;
        target.focus();
      });
      const del = h('button', { type: 'button', class: 'small danger', text: 'Delete' });
      del.addEventListener('click', () => confirmInline(del, `Delete snapshot ${s.name}?`, 'Delete', async () => {
        try {
          await api('DELETE', `${base}/${enc(s.name)}`);
          await load();
        } catch (err) {
          showError(listError, err);
        }
      }));
      body.append(h('tr', { dataset: { name: s.name } },
        h('td', { class: 'mono', text: s.name }),
        h('td', { class: 'num', text: fmtBytes(s.size) }),
        h('td', { text: new Date(s.created_unix_ms).toLocaleString() }),
        h('td', { class: 'num', text: s.lsn === null || s.lsn === undefined ? '—' : String(s.lsn) }),
        h('td', { class: 'row-actions' }, download, ' ', pick, ' ', del)));
    }
  }

  async function save(s, button) {
    hideBox(listError);
    button.disabled = true;
    const label = button.textContent;
    button.textContent = 'Downloading…';
    try {
      const blob = await api('GET', `${base}/${enc(s.name)}`, undefined, { as: 'blob' });
      const url = URL.createObjectURL(blob);
      const a = h('a', { href: url, download: `${s.name}.snapshot`, hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      // The download has its own copy once started; the blob URL can go a little later.
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
    } catch (err) {
      showError(listError, err);
    } finally {
      button.disabled = false;
      button.textContent = label;
    }
  }

  await load();
}
