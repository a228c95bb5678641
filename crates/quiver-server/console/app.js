// The console's entry point: hash routing (`#/collections/NAME/search`, ...), the
// navigation bar and the API key button. Each page is a module's `render(container,
// ...params)`; a route change swaps in a fresh container, so an answer that arrives
// after the user moved on lands in a detached node and shows nowhere.

import { forgetKey, hasKey } from './api.js';
import { collectionsPage } from './collections.js';
import { documentPage, documentsPage } from './documents.js';
import { searchPage } from './search.js';
import { snapshotsPage } from './snapshots.js';
import { modelsPage, serverPage } from './system.js';
import { h } from './util.js';

const dec = decodeURIComponent;

const ROUTES = [
  [/^\/?$/, () => collectionsPage],
  [/^\/collections\/?$/, () => collectionsPage],
  [/^\/collections\/([^/]+)\/?$/, (m) => (c) => documentsPage(c, dec(m[1]))],
  [/^\/collections\/([^/]+)\/documents\/?$/, (m) => (c) => documentsPage(c, dec(m[1]))],
  [/^\/collections\/([^/]+)\/documents\/(.+)$/, (m) => (c) => documentPage(c, dec(m[1]), dec(m[2]))],
  [/^\/collections\/([^/]+)\/search\/?$/, (m) => (c) => searchPage(c, dec(m[1]))],
  [/^\/collections\/([^/]+)\/snapshots\/?$/, (m) => (c) => snapshotsPage(c, dec(m[1]))],
  [/^\/models\/?$/, () => modelsPage],
  [/^\/server\/?$/, () => serverPage],
];

function route() {
  const path = location.hash.replace(/^#/, '');
  const main = document.getElementById('main');
  const container = h('div', { class: 'page' });
  main.replaceChildren(container);
  const section = path.split('/')[1] || 'collections';
  for (const a of document.querySelectorAll('#nav a')) {
    a.classList.toggle('active', a.dataset.nav === section);
  }
  for (const [re, make] of ROUTES) {
    const m = path.match(re);
    if (m) {
      let render;
      try {
        render = make(m);
      } catch {
        // A malformed %-escape in the hash.
        break;
      }
      Promise.resolve(render(container)).catch((e) => {
        container.append(h('div', { class: 'form-error', role: 'alert', text: String(e && e.message || e) }));
      });
      return;
    }
  }
  document.title = 'Quiver console';
  container.append(h('h1', { text: 'No such page' }),
    h('p', {}, 'The console has no page at ', h('code', { text: location.hash }), '. ',
      h('a', { href: '#/collections', text: 'Collections' })));
}

function showKeyButton() {
  document.getElementById('forget-key').hidden = !hasKey();
}

// The page is served at /console too, where relative hash links would otherwise point
// at /console/ and reload the page once; the address gets the slash up front instead.
if (!location.pathname.endsWith('/')) {
  history.replaceState(null, '', `${location.pathname}/${location.search}${location.hash}`);
}
document.getElementById('forget-key').addEventListener('click', () => {
  forgetKey();
  route();
});
window.addEventListener('quiver-key', showKeyButton);
window.addEventListener('hashchange', route);
showKeyButton();
route();
