// The server-wide pages: Models (installed models from `GET /models`, trying `/embed`
// and `/rerank`) and Server (`/health`, `/ready`, and a few figures parsed from the
// Prometheus text of `/metrics`, refreshed while the page is open).

import { api } from './api.js';
import { datalist, modelNames } from './collections.js';
import {
  errorBox, field, fmtBytes, fmtMs, fmtNum, h, hideBox, num, orDash, showError, thead,
} from './util.js';

const REFRESH_MS = 5000;

export async function modelsPage(page) {
  document.title = 'Models · Quiver';
  const tableError = errorBox('models-error');
  const body = h('tbody');
  page.append(h('h1', { text: 'Models' }),
    h('section', { class: 'panel' }, h('h2', { text: 'Installed' }), tableError,
      h('table', { id: 'models-table', class: 'grid' },
        thead('Name', 'Kind', num('Dimension'), num('Max tokens'), num('Size')),
        body)));
  try {
    const { models } = await api('GET', '/models');
    if (!models.length) {
      body.append(h('tr', {}, h('td', { colspan: 5, class: 'muted', text: 'No models installed.' })));
    }
    for (const m of models) {
      body.append(h('tr', { dataset: { name: m.name } },
        h('td', { class: 'mono', text: m.name }), h('td', { text: orDash(m.kind) }),
        h('td', { class: 'num', text: fmtNum(m.dim) }), h('td', { class: 'num', text: fmtNum(m.max_tokens) }),
        h('td', { class: 'num', text: fmtBytes(m.bytes) })));
    }
  } catch (e) {
    showError(tableError, e);
  }
  const names = await modelNames();
  page.append(datalist('embed-models', names.embedding), datalist('rerank-models', names.reranking),
    h('div', { class: 'row two' }, embedForm(), rerankForm()));
}

function embedForm() {
  const model = h('input', { id: 'embed-model', list: 'embed-models', placeholder: "server's default" });
  const input = h('textarea', { id: 'embed-input', rows: 3, value: 'heat transfer in a boundary layer' });
  const dims = h('input', { id: 'embed-dims', type: 'number', min: 1, step: 1, placeholder: 'full' });
  const error = errorBox('embed-error');
  const out = h('div', { id: 'embed-result' });
  const submit = h('button', { type: 'submit', class: 'primary', text: 'Embed' });
  const form = h('form', { id: 'embed-form', class: 'panel', novalidate: true },
    h('h2', {}, 'Try ', h('code', { text: '/embed' })),
    field('Model', model), field('Text', input), field('Dimensions (Matryoshka)', dims),
    h('div', { class: 'actions' }, submit), error, out);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    hideBox(error);
    out.replaceChildren();
    const req = { inputs: input.value };
    if (model.value.trim()) req.model = model.value.trim();
    if (dims.value) req.dimensions = Number(dims.value);
    submit.disabled = true;
    try {
      const [v] = await api('POST', '/embed', req);
      const norm = Math.sqrt(v.reduce((a, x) => a + x * x, 0));
      out.append(h('dl', { class: 'facts' },
        h('div', {}, h('dt', { text: 'Dimensions' }), h('dd', { id: 'embed-dim', text: fmtNum(v.length) })),
        h('div', {}, h('dt', { text: 'Norm' }), h('dd', { text: norm.toFixed(6) })),
        h('div', { class: 'wide' }, h('dt', { text: 'First values' }),
          h('dd', { class: 'mono', text: `[${v.slice(0, 8).map((x) => x.toFixed(5)).join(', ')}${v.length > 8 ? ', …' : ''}]` }))));
    } catch (err) {
      showError(error, err);
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

function rerankForm() {
  const model = h('input', { id: 'rerank-model', list: 'rerank-models', placeholder: "server's default" });
  const query = h('input', { id: 'rerank-query', value: 'heat transfer' });
  const texts = h('textarea', { id: 'rerank-texts', rows: 4,
    value: 'heat transfer in a boundary layer\nsupersonic flow over a swept wing\nthe boundary layer of a flat plate' });
  const error = errorBox('rerank-error');
  const out = h('div', { id: 'rerank-result' });
  const submit = h('button', { type: 'submit', class: 'primary', text: 'Rerank' });
  const form = h('form', { id: 'rerank-form', class: 'panel', novalidate: true },
    h('h2', {}, 'Try ', h('code', { text: '/rerank' })),
    field('Model', model), field('Query', query), field('Texts, one per line', texts),
    h('div', { class: 'actions' }, submit), error, out);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    hideBox(error);
    out.replaceChildren();
    const list = texts.value.split('\n').map((t) => t.trim()).filter(Boolean);
    if (!list.length) return showError(error, { message: 'Give at least one text.' });
    const req = { query: query.value, texts: list };
    if (model.value.trim()) req.model = model.value.trim();
    submit.disabled = true;
    try {
      const scores = await api('POST', '/rerank', req);
      // The answer is sorted by score already; the table keeps that order.
      out.append(h('table', { class: 'grid', id: 'rerank-table' },
        thead(num('Score'), 'Text'),
        h('tbody', {}, scores.map((s) => h('tr', {},
          h('td', { class: 'num', text: s.score.toFixed(4) }), h('td', { text: list[s.index] }))))));
    } catch (err) {
      showError(error, err);
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

/** Prometheus text -> [{name, labels, value}]; comments and blank lines skipped. */
export function parseMetrics(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = line.match(/^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/);
    if (!m) continue;
    const labels = {};
    for (const l of (m[2] || '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
    }
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

const sum = (xs) => xs.reduce((a, x) => a + x.value, 0);

/** A quantile of a cumulative histogram: the upper bound of the bucket it falls in. */
function quantile(buckets, q) {
  const sorted = buckets.map((b) => [b.labels.le === '+Inf' ? Infinity : Number(b.labels.le), b.value])
    .sort((x, y) => x[0] - y[0]);
  const total = sorted.length ? sorted[sorted.length - 1][1] : 0;
  if (!total) return null;
  const hit = sorted.find(([, c]) => c >= q * total);
  return hit ? hit[0] : null;
}

export async function serverPage(page) {
  document.title = 'Server · Quiver';
  const status = h('dl', { class: 'facts', id: 'server-status' });
  const error = errorBox('metrics-error');
  const updated = h('span', { class: 'muted', id: 'metrics-updated' });
  const refresh = h('button', { type: 'button', class: 'small', text: 'Refresh' });
  const figures = h('div', { id: 'metrics' });
  page.append(h('h1', { text: 'Server' }), h('div', { class: 'toolbar' }, status, refresh, updated),
    error, figures);
  refresh.addEventListener('click', () => load());

  async function probe(path) {
    // /health and /ready answer 503 with a status body when not ready; show it as is.
    try {
      const r = await api('GET', path);
      return { ok: true, text: r && r.status ? r.status : 'ok' };
    } catch (e) {
      return { ok: false, text: e.message };
    }
  }

  async function load() {
    const [health, ready] = await Promise.all([probe('/health'), probe('/ready')]);
    status.replaceChildren(
      h('div', {}, h('dt', { text: 'Health' }), h('dd', { id: 'health', class: health.ok ? 'good' : 'bad', text: health.text })),
      h('div', {}, h('dt', { text: 'Readiness' }), h('dd', { id: 'readiness', class: ready.ok ? 'good' : 'bad', text: ready.text })));
    let text;
    try {
      text = await api('GET', '/metrics', undefined, { as: 'text' });
    } catch (e) {
      showError(error, e);
      return;
    }
    hideBox(error);
    figures.replaceChildren(...metricsView(parseMetrics(text)));
    updated.textContent = `updated ${new Date().toLocaleTimeString()}`;
  }

  await load();
  // Live while the page is shown; a route change detaches the page and ends the loop.
  const timer = setInterval(() => {
    if (!page.isConnected) clearInterval(timer);
    else load();
  }, REFRESH_MS);
}

/** Requests on the left; collections, models and the log beside them. */
function metricsView(all) {
  const [requests, ...rest] = metricSections(all);
  return [h('div', { class: 'server-grid' }, requests, h('div', {}, rest))];
}

function metricSections(all) {
  const of = (name) => all.filter((m) => m.name === name);
  const requests = of('quiver_http_requests_total');
  const byClass = (c) => sum(requests.filter((r) => String(r.labels.status).startsWith(c)));
  const sections = [];

  sections.push(h('section', { class: 'panel', id: 'metrics-requests' }, h('h2', { text: 'Requests' }),
    h('dl', { class: 'facts' },
      ...[['Total', sum(requests)], ['2xx', byClass('2')], ['4xx', byClass('4')], ['5xx', byClass('5')]]
        .map(([k, v]) => h('div', {}, h('dt', { text: k }), h('dd', { text: fmtNum(v) })))),
    routeTable(all, requests)));

  const docs = of('quiver_collection_documents');
  if (docs.length) {
    const gauge = (name, coll) => of(name).find((m) => m.labels.collection === coll);
    const stalls = (coll) => gauge('quiver_collection_write_stalls_total', coll);
    // Ingest is the upsert route: how many batches came in and how long each took.
    const route = { method: 'POST', route: '/collections/{name}/documents' };
    const same = (m) => m.labels.method === route.method && m.labels.route === route.route;
    const upserts = sum(requests.filter(same));
    const n = of('quiver_http_request_duration_seconds_count').find(same)?.value;
    const secs = of('quiver_http_request_duration_seconds_sum').find(same)?.value;
    sections.push(h('section', { class: 'panel', id: 'metrics-collections' }, h('h2', { text: 'Collections and ingest' }),
      h('dl', { class: 'facts' },
        h('div', {}, h('dt', { text: 'Documents' }), h('dd', { text: fmtNum(sum(docs)) })),
        h('div', {}, h('dt', { text: 'Upsert batches' }), h('dd', { text: fmtNum(upserts) })),
        h('div', {}, h('dt', { text: 'Mean upsert' }), h('dd', { text: n ? fmtMs((secs / n) * 1000) : '—' }))),
      h('table', { class: 'grid' },
        thead('Collection', num('Docs'), num('Segments'), num('Unsealed'), num('Seals'),
          num('Compactions'), num('Stalls')),
        h('tbody', {}, docs.map((d) => {
          const c = d.labels.collection;
          const seals = of('quiver_collection_seals_total').filter((m) => m.labels.collection === c && m.labels.outcome === 'ok');
          return h('tr', {}, h('td', { text: c }), h('td', { class: 'num', text: fmtNum(d.value) }),
            h('td', { class: 'num', text: fmtNum(gauge('quiver_collection_segments', c)?.value) }),
            h('td', { class: 'num', text: fmtNum(gauge('quiver_collection_memtable_entries', c)?.value) }),
            h('td', { class: 'num', text: fmtNum(sum(seals)) }),
            h('td', { class: 'num', text: fmtNum(gauge('quiver_collection_compactions_total', c)?.value) }),
            h('td', { class: 'num', text: fmtNum(stalls(c)?.value) }));
        })))));
  }

  const batches = of('quiver_model_batch_items_count');
  if (batches.length) {
    const find = (name, l) => of(name).find((m) => m.labels.model === l.model && m.labels.role === l.role)?.value;
    sections.push(h('section', { class: 'panel', id: 'metrics-models' }, h('h2', { text: 'Model batches' }),
      h('table', { class: 'grid' },
        thead('Model', 'Role', num('Batches'), num('Texts / batch'), num('Tokens')),
        h('tbody', {}, batches.map((b) => {
          const items = find('quiver_model_batch_items_sum', b.labels);
          return h('tr', {}, h('td', { class: 'mono', text: b.labels.model }), h('td', { text: b.labels.role }),
            h('td', { class: 'num', text: fmtNum(b.value) }),
            h('td', { class: 'num', text: b.value ? (items / b.value).toFixed(1) : '—' }),
            h('td', { class: 'num', text: fmtNum(find('quiver_model_tokens_total', b.labels)) }));
        })))));
  }

  const syncs = of('quiver_wal_sync_duration_seconds_count')[0];
  if (syncs) {
    const secs = of('quiver_wal_sync_duration_seconds_sum')[0]?.value || 0;
    sections.push(h('section', { class: 'panel', id: 'metrics-wal' }, h('h2', { text: 'Write-ahead log' }),
      h('dl', { class: 'facts' },
        h('div', {}, h('dt', { text: 'Syncs' }), h('dd', { text: fmtNum(syncs.value) })),
        h('div', {}, h('dt', { text: 'Mean sync' }), h('dd', { text: syncs.value ? fmtMs((secs / syncs.value) * 1000) : '—' })))));
  }
  return sections;
}

function routeTable(all, requests) {
  const key = (l) => `${l.method} ${l.route}`;
  const rows = new Map();
  for (const r of requests) {
    const row = rows.get(key(r.labels)) || { method: r.labels.method, route: r.labels.route, n: 0, errors: 0 };
    row.n += r.value;
    if (Number(r.labels.status) >= 400) row.errors += r.value;
    rows.set(key(r.labels), row);
  }
  const hist = (suffix, l) => all.filter((m) => m.name === `quiver_http_request_duration_seconds_${suffix}`
    && m.labels.method === l.method && m.labels.route === l.route);
  const sorted = [...rows.values()].sort((x, y) => y.n - x.n);
  return h('table', { class: 'grid', id: 'routes-table' },
    thead('Route', num('Requests'), num('Errors'), num('Mean'), num('p95 (≤)')),
    h('tbody', {}, sorted.map((r) => {
      const count = hist('count', r)[0]?.value;
      const secs = hist('sum', r)[0]?.value;
      const p95 = quantile(hist('bucket', r), 0.95);
      return h('tr', {}, h('td', { class: 'mono', text: `${r.method} ${r.route}` }),
        h('td', { class: 'num', text: fmtNum(r.n) }), h('td', { class: 'num', text: fmtNum(r.errors) }),
        h('td', { class: 'num', text: count ? fmtMs((secs / count) * 1000) : '—' }),
        h('td', { class: 'num', text: p95 === null ? '—' : p95 === Infinity ? '> max bucket' : fmtMs(p95 * 1000) }));
    })));
}
