// Search: the box above the conversation list. Enter searches every
// conversation; the results (with the server's snippets, hits highlighted)
// replace the list until the box is cleared. Snippets are set as text: the
// hit markers become <mark> elements, nothing is parsed as HTML.

import { store } from '../state.js';
import { byId, h, avatar, replace } from '../dom.js';
import { listTimeLabel, snippetParts, timeOf } from '../format.js';
import { t, onLocaleChange } from '../i18n.js';

let go = () => {};
/** Bumped by every search and clear: a late answer is dropped. */
let generation = 0;

function showResults(on) {
  byId('search-results').hidden = !on;
  byId('chat-list').hidden = on;
  byId('new-group').parentElement.hidden = on;
  if (on) byId('chats-empty').hidden = true;
}

function row(r) {
  const c = store.convs.get(r.group.id);
  const title = c ? store.title(c) : r.group.name || t('search.conversation');
  const who = r.user.id === store.me.id ? t('search.you') : r.user.name || r.user.account;
  const time = listTimeLabel(timeOf(r.msg));
  return h(
    'li',
    {},
    h(
      'button',
      { type: 'button', class: 'chat-row result', dataset: { gid: String(r.group.id), id: String(r.msg.id) }, onclick: () => go(r.group.id) },
      avatar(title, c && c.mode === 1 ? `u${c.partner}` : `g${r.group.id}`, r.group.mode === 0 ? 'group' : ''),
      h(
        'span',
        { class: 'chat-main' },
        h('span', { class: 'chat-top' }, h('span', { class: 'chat-title' }, title), h('time', { class: 'chat-time' }, time)),
        h(
          'span',
          { class: 'snippet' },
          h('span', { class: 'snippet-who' }, t('search.who', { name: who })),
          snippetParts(r.snippet).map((part) => (part.hit ? h('mark', {}, part.text) : part.text)),
        ),
      ),
    ),
  );
}

/** What the results box shows, kept so that it can be shown again in
 * another language: {text} while searching, {text, rows} or {text, error}. */
let shown = null;

function renderResults() {
  const box = byId('search-results');
  if (!shown) return;
  const { text, rows, error } = shown;
  if (error) replace(box, h('p', { class: 'error', role: 'alert' }, t('search.failed', { error })));
  else if (!rows) replace(box, h('p', { class: 'empty' }, t('search.searching')));
  else if (!rows.length) replace(box, h('p', { class: 'empty' }, t('search.nothing', { query: text })));
  else replace(box, h('ul', { class: 'chat-list', 'aria-label': t('search.found', { count: rows.length }) }, rows.map(row)));
}

async function run(text) {
  const mine = ++generation;
  showResults(true);
  shown = { text };
  renderResults();
  try {
    const rows = await store.search(text);
    if (mine !== generation) return;
    shown = { text, rows };
  } catch (err) {
    if (mine !== generation) return;
    shown = { text, error: err.message };
  }
  renderResults();
}

function clear() {
  generation += 1;
  shown = null;
  showResults(false);
  replace(byId('search-results'));
  store.emit('chats');
}

export function mountSearch(navigate) {
  go = navigate;
  const form = byId('search-form');
  const input = byId('search-input');
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const text = input.value.trim();
    if (text) run(text);
    else clear();
  });
  input.addEventListener('input', () => {
    if (!input.value.trim() && !byId('search-results').hidden) clear();
  });
  input.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape' && input.value) {
      input.value = '';
      clear();
    }
  });
  store.addEventListener('change', (ev) => {
    if (ev.detail.what === 'logout') {
      input.value = '';
      generation += 1;
      shown = null;
      showResults(false);
    }
  });
  onLocaleChange(renderResults);
}
