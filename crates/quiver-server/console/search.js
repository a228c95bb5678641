// The search playground of one collection: query text and/or vector, filter editor,
// mode, fusion and rerank settings, always `explain: true`. Shows each hit's final,
// dense, sparse, fused and rerank ranks and scores, the query's words highlighted, a
// bar of `timings_ms` per stage, and optionally a second setting side by side with the
// rank changes marked.

import { api } from './api.js';
import { collectionHeader } from './collections.js';
import {
  enc, errorBox, field, fmtMs, fmtScore, h, hideBox, highlight, jsonTree, markRanges, parseJsonField,
  num, queryWords, showError, thead,
} from './util.js';

// Stage order of the timing bar: the order a query runs them in.
const STAGES = ['embed', 'filter', 'dense', 'sparse', 'fusion', 'rerank', 'fetch'];
const FILTER_EXAMPLE = '{"must": [{"key": "year", "range": {"gte": 1960}}]}';

export async function searchPage(page, name) {
  document.title = `${name} · Search · Quiver`;
  const info = await collectionHeader(page, name, 'search');
  if (!info) return;
  const cfg = info.config || {};
  const text = h('input', { id: 'q-text', name: 'text', placeholder: 'query text', autocomplete: 'off' });
  const vector = h('textarea', { id: 'q-vector', rows: 2, spellcheck: false,
    placeholder: `optional: [${cfg.dim} numbers]` });
  const filter = h('textarea', { id: 'q-filter', rows: 3, spellcheck: false, placeholder: FILTER_EXAMPLE });
  const topK = h('input', { id: 'q-topk', type: 'number', min: 1, step: 1, value: '10' });
  const vectorError = errorBox('vector-error');
  const filterError = errorBox('filter-error');
  const formError = errorBox('search-error');
  const example = h('button', { type: 'button', class: 'small', text: 'Example' });
  example.addEventListener('click', () => {
    filter.value = FILTER_EXAMPLE;
    checkFilter();
  });
  const a = settings('a', 'Settings A', cfg.embedding_model ? 'hybrid' : 'sparse');
  const b = settings('b', 'Settings B', cfg.embedding_model ? 'dense' : 'sparse');
  const compare = h('input', { type: 'checkbox', id: 'compare' });
  b.el.hidden = true;
  compare.addEventListener('change', () => {
    b.el.hidden = !compare.checked;
  });
  const submit = h('button', { type: 'submit', class: 'primary', id: 'search-submit', text: 'Search' });
  const results = h('div', { id: 'search-results' });
  const form = h('form', { id: 'search-form', class: 'panel', novalidate: true },
    h('div', { class: 'row' }, field('Text', text, null, 'grow'), field('Top k', topK)),
    h('div', { class: 'row' },
      h('label', { class: 'field grow' }, h('span', { class: 'label', text: 'Vector' }), vector, vectorError),
      h('label', { class: 'field grow' }, h('span', { class: 'label' }, 'Filter ', example), filter, filterError)),
    h('div', { class: 'row settings-row' }, a.el, b.el),
    h('div', { class: 'actions' },
      h('label', { class: 'check' }, compare, ' Compare with settings B'), submit),
    formError);
  page.append(form, results);

  // Validated as it is typed, so a malformed filter is flagged before any request.
  function checkFilter() {
    const f = parseJsonField(filter.value, 'Filter');
    if (!f.error && f.value !== undefined && (typeof f.value !== 'object' || f.value === null || Array.isArray(f.value))) {
      f.error = 'Filter must be a JSON object such as {"must": [...], "should": [...], "must_not": [...]}';
    }
    if (f.error) showError(filterError, { message: f.error });
    else hideBox(filterError);
    filter.classList.toggle('invalid', Boolean(f.error));
    return f;
  }
  function checkVector() {
    const v = parseJsonField(vector.value, 'Vector');
    if (!v.error && v.value !== undefined
      && !(Array.isArray(v.value) && v.value.length && v.value.every((x) => typeof x === 'number'))) {
      v.error = 'Vector must be a JSON array of numbers';
    }
    if (v.error) showError(vectorError, { message: v.error });
    else hideBox(vectorError);
    vector.classList.toggle('invalid', Boolean(v.error));
    return v;
  }
  filter.addEventListener('input', checkFilter);
  vector.addEventListener('input', checkVector);

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    hideBox(formError);
    const f = checkFilter();
    const v = checkVector();
    if (f.error) return filter.focus();
    if (v.error) return vector.focus();
    const shared = { explain: true };
    if (text.value.trim()) shared.text = text.value.trim();
    if (v.value !== undefined) shared.vector = v.value;
    if (f.value !== undefined) shared.filter = f.value;
    if (topK.value) shared.top_k = Number(topK.value);
    if (!shared.text && !shared.vector) {
      return showError(formError, { message: 'Give a query text, a vector, or both.' });
    }
    const sides = compare.checked ? [a, b] : [a];
    submit.disabled = true;
    results.setAttribute('aria-busy', 'true');
    const answers = await Promise.allSettled(sides.map((s) => api('POST',
      `/collections/${enc(name)}/query`, { ...shared, ...s.read() })));
    submit.disabled = false;
    results.removeAttribute('aria-busy');
    const failed = answers.map((r, i) => [r, sides[i]]).filter(([r]) => r.status === 'rejected');
    if (failed.length) {
      const [r, s] = failed[0];
      const prefix = sides.length > 1 ? `${s.title}: ` : '';
      showError(formError, { code: r.reason.code, message: prefix + r.reason.message });
      results.replaceChildren();
      return;
    }
    const words = queryWords(shared.text);
    const [ra, rb] = answers.map((r) => r.value);
    const columns = [column(name, 'results-a', a, ra, words, null, cfg)];
    if (rb) columns.push(column(name, 'results-b', b, rb, words, ra.hits, cfg));
    results.replaceChildren(h('div', { class: columns.length > 1 ? 'compare' : 'single' }, columns));
  });
}

/** One block of mode, fusion and rerank inputs; `read()` gives the request's part. */
function settings(tag, title, mode) {
  const id = (s) => `${s}-${tag}`;
  const modeSel = h('select', { id: id('mode') },
    ['hybrid', 'dense', 'sparse'].map((m) => h('option', { value: m, text: m })));
  modeSel.value = mode;
  const method = h('select', { id: id('fusion') },
    h('option', { value: 'rrf', text: 'RRF' }), h('option', { value: 'weighted', text: 'weighted' }));
  const k = h('input', { id: id('rrf-k'), type: 'number', min: 0, step: 'any', value: '60' });
  const alpha = h('input', { id: id('alpha'), type: 'number', min: 0, max: 1, step: 0.05, value: '0.5' });
  const rerank = h('input', { id: id('rerank'), type: 'checkbox' });
  const candidates = h('input', { id: id('candidates'), type: 'number', min: 1, step: 1, value: '50' });
  const kRow = field('RRF k', k);
  const alphaRow = field('Alpha (dense weight)', alpha);
  const methodRow = field('Fusion', method);
  const candRow = field('Candidates', candidates);
  const sync = () => {
    const hybrid = modeSel.value === 'hybrid';
    methodRow.hidden = !hybrid;
    kRow.hidden = !hybrid || method.value !== 'rrf';
    alphaRow.hidden = !hybrid || method.value !== 'weighted';
    candRow.hidden = !rerank.checked;
  };
  for (const el of [modeSel, method, rerank]) el.addEventListener('change', sync);
  sync();
  const el = h('fieldset', { class: 'settings', id: id('settings') }, h('legend', { text: title }),
    field('Mode', modeSel), methodRow, kRow, alphaRow,
    h('label', { class: 'field check' }, rerank, ' Rerank'), candRow);

  function read() {
    const part = { mode: modeSel.value };
    if (part.mode === 'hybrid') {
      part.fusion = method.value === 'rrf'
        ? { method: 'rrf', ...(k.value !== '' ? { k: Number(k.value) } : {}) }
        : { method: 'weighted', ...(alpha.value !== '' ? { alpha: Number(alpha.value) } : {}) };
    }
    part.rerank = rerank.checked
      ? { enabled: true, ...(candidates.value !== '' ? { candidates: Number(candidates.value) } : {}) }
      : false;
    return part;
  }
  function describe() {
    const r = read();
    const parts = [r.mode];
    if (r.fusion) parts.push(r.fusion.method === 'rrf' ? `RRF k=${r.fusion.k ?? 60}` : `weighted α=${r.fusion.alpha ?? 0.5}`);
    if (r.rerank) parts.push(`rerank ${r.rerank.candidates ?? 50}`);
    return parts.join(' · ');
  }
  return { el, read, describe, title };
}

function column(name, id, side, answer, words, before, cfg) {
  const hits = answer.hits || [];
  const t = answer.timings_ms || {};
  const header = h('div', { class: 'column-head' },
    h('h2', { text: `${side.title}: ${side.describe()}` }),
    h('p', { class: 'muted' }, `${hits.length} hits · ${fmtMs(t.total)}`, before ? overlap(hits, before) : ''));
  const list = h('ol', { class: 'hits' });
  const earlier = before ? new Map(before.map((x, i) => [x.id, i + 1])) : null;
  hits.forEach((hit, i) => list.append(hitItem(name, hit, i + 1, words, earlier, side.read(), cfg)));
  if (!hits.length) list.append(h('li', { class: 'muted', text: 'No hits.' }));
  return h('section', { class: 'results panel', id }, header, timingBar(t), list);
}

function overlap(hits, before) {
  const ids = new Set(before.map((x) => x.id));
  const common = hits.filter((x) => ids.has(x.id)).length;
  return ` · ${common} of ${hits.length} also in A`;
}

/** The hit's move against settings A: ↑n, ↓n, = or new. */
function moveMark(earlier, id, rank) {
  if (!earlier) return null;
  const was = earlier.get(id);
  if (was === undefined) return h('span', { class: 'move new', title: 'not in A', text: 'new' });
  if (was === rank) return h('span', { class: 'move same', title: `#${was} in A`, text: '=' });
  return was > rank
    ? h('span', { class: 'move up', title: `#${was} in A`, text: `↑${was - rank}` })
    : h('span', { class: 'move down', title: `#${was} in A`, text: `↓${rank - was}` });
}

function stageChip(label, stage) {
  return stage
    ? h('span', { class: `chip ${label}` }, h('b', { text: label }), ` #${stage.rank} · ${fmtScore(stage.score)}`)
    : h('span', { class: `chip ${label} absent`, text: `${label} —` });
}

function hitItem(name, hit, rank, words, earlier, request, cfg) {
  const ex = hit.explain || {};
  const chips = h('div', { class: 'stages' }, stageChip('dense', ex.dense), stageChip('sparse', ex.sparse),
    typeof ex.fused === 'number' ? h('span', { class: 'chip fused' }, h('b', { text: 'fused' }), ` ${fmtScore(ex.fused)}`) : null,
    ex.rerank ? h('span', { class: 'chip rerank' }, h('b', { text: 'rerank' }), ` ${fmtScore(ex.rerank.score)} (was #${ex.rerank.rank_before})`) : null);
  return h('li', { class: 'hit', dataset: { id: hit.id } },
    h('div', { class: 'hit-head' },
      h('span', { class: 'rank', text: `#${rank}` }),
      moveMark(earlier, hit.id, rank),
      h('a', { class: 'hit-id mono', href: `#/collections/${enc(name)}/documents/${enc(hit.id)}`, text: hit.id }),
      h('span', { class: 'score', text: `score ${fmtScore(hit.score)}` })),
    chips,
    hitBody(hit, words),
    explanation(hit, rank, request, cfg));
}

/**
 * A hit's text with the query's words marked. The server marks sparse and hybrid hits
 * with the collection's analyzer (stems included); dense hits get the query's words as
 * typed. A document stored in chunks shows the chunk that matched, the whole text folded
 * away below it.
 */
function hitBody(hit, words) {
  const marked = (text, ranges) => (ranges ? markRanges(text, ranges) : highlight(text, words));
  const chunk = hit.chunks && hit.chunks[0];
  if (!chunk) return h('div', { class: 'hit-text' }, marked(hit.text || '', hit.highlights));
  // Highlights count characters of the whole text; the chunk starts at `chunk.start`.
  const local = hit.highlights && hit.highlights
    .filter(([s, e]) => s >= chunk.start && e <= chunk.end)
    .map(([s, e]) => [s - chunk.start, e - chunk.start]);
  return h('div', { class: 'hit-text' },
    h('div', { class: 'muted passage', text: `chunk ${chunk.chunk} · characters ${chunk.start}–${chunk.end} of ${Array.from(hit.text || '').length}` }),
    marked(chunk.text, local),
    h('details', { class: 'whole-text' }, h('summary', { text: 'Whole text' }),
      marked(hit.text || '', hit.highlights)));
}

/** Why the hit ranked where it did, stage by stage, from the server's `explain`. */
function explanation(hit, rank, request, cfg) {
  const ex = hit.explain || {};
  const row = (stage, r, score, note) => h('tr', {},
    h('th', { text: stage }), h('td', { class: 'num', text: r ? `#${r}` : '—' }),
    h('td', { class: 'num', text: fmtScore(score) }), h('td', { class: 'muted', text: note }));
  const usesDense = request.mode !== 'sparse';
  const usesSparse = request.mode !== 'dense';
  const rows = [
    row('Dense', ex.dense?.rank, ex.dense?.score, !usesDense ? 'not used by this mode'
      : ex.dense ? `vector similarity (${cfg.distance || 'cosine'})` : 'not among the dense candidates'),
    row('Sparse', ex.sparse?.rank, ex.sparse?.score, !usesSparse ? 'not used by this mode'
      : ex.sparse ? 'BM25 keyword score' : 'not among the keyword candidates'),
  ];
  if (typeof ex.fused === 'number') {
    const fusedRank = ex.rerank ? ex.rerank.rank_before : rank;
    let note = 'fused score';
    const f = request.fusion || { method: 'rrf' };
    if (f.method === 'rrf') {
      const k = f.k ?? 60;
      const terms = [ex.dense, ex.sparse].filter(Boolean).map((s) => `1/(${k}+${s.rank})`);
      note = `RRF: ${terms.join(' + ') || '0'}`;
    } else {
      const alpha = f.alpha ?? 0.5;
      note = `weighted: ${alpha} × dense + ${+(1 - alpha).toFixed(4)} × sparse, each min-max normalized`;
    }
    rows.push(row('Fused', fusedRank, ex.fused, note));
  }
  if (ex.rerank) {
    rows.push(row('Rerank', rank, ex.rerank.score, `reranker score; #${ex.rerank.rank_before} before reranking`));
  }
  if (typeof ex.chunk === 'number') {
    rows.push(row('Chunk', null, hit.chunks?.[0]?.score, `chunk ${ex.chunk} of the document won`));
  }
  rows.push(row('Final', rank, hit.score, 'the order returned'));
  return h('details', { class: 'explain' }, h('summary', { text: 'Explanation' }),
    h('table', { class: 'explain-table' },
      thead('Stage', num('Rank'), num('Score'), ''),
      h('tbody', {}, rows)),
    Object.keys(hit.metadata || {}).length ? h('div', { class: 'explain-meta' }, h('h4', { text: 'Metadata' }), jsonTree(hit.metadata)) : null);
}

/** `timings_ms` as one bar, a segment per stage, and a legend with the figures. */
export function timingBar(t) {
  const keys = STAGES.filter((k) => typeof t[k] === 'number')
    .concat(Object.keys(t).filter((k) => !STAGES.includes(k) && k !== 'total' && k !== 'dense_index'));
  const sum = keys.reduce((a, k) => a + t[k], 0) || 1;
  const bar = h('div', { class: 'timing-bar', role: 'img', 'aria-label': 'time per stage' },
    keys.map((k) => h('span', {
      class: `seg seg-${k}`, title: `${k} ${fmtMs(t[k])}`, style: `flex-grow: ${t[k] / sum}`,
    })));
  const legend = h('ul', { class: 'timing-legend' }, keys.map((k) => h('li', { dataset: { stage: k }, class: t[k] ? null : 'zero' },
    h('span', { class: `swatch seg-${k}` }),
    `${k} ${fmtMs(t[k])}`,
    k === 'dense' && typeof t.dense_index === 'number' ? h('span', { class: 'muted', text: ` (index ${fmtMs(t.dense_index)})` }) : null)),
  typeof t.total === 'number' ? h('li', { class: 'total', text: `total ${fmtMs(t.total)}` }) : null);
  return h('div', { class: 'timing' }, bar, legend);
}
