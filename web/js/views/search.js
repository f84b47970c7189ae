// Search: the box above the conversation list. Enter searches every
// conversation; the results (with the server's snippets, hits highlighted)
// replace the list until the box is cleared. Snippets are set as text: the
// hit markers become <mark> elements, nothing is parsed as HTML.

import { store } from '../state.js';
import { byId, h, avatar, replace } from '../dom.js';
import { listTimeLabel, parseTime, snippetParts } from '../format.js';

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
  const title = c ? store.title(c) : r.group.name || 'Conversation';
  const who = r.user.id === store.me.id ? 'You' : r.user.name || r.user.account;
  const time = listTimeLabel(parseTime(r.msg.createTime));
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
          h('span', { class: 'snippet-who' }, `${who}: `),
          snippetParts(r.snippet).map((part) => (part.hit ? h('mark', {}, part.text) : part.text)),
        ),
      ),
    ),
  );
}

async function run(text) {
  const mine = ++generation;
  const box = byId('search-results');
  showResults(true);
  replace(box, h('p', { class: 'empty' }, 'Searching…'));
  try {
    const rows = await store.search(text);
    if (mine !== generation) return;
    if (!rows.length) {
      replace(box, h('p', { class: 'empty' }, `Nothing found for “${text}”.`));
      return;
    }
    replace(box, h('ul', { class: 'chat-list', 'aria-label': `${rows.length} messages found` }, rows.map(row)));
  } catch (err) {
    if (mine === generation) replace(box, h('p', { class: 'error', role: 'alert' }, `Search failed: ${err.message}`));
  }
}

function clear() {
  generation += 1;
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
      showResults(false);
    }
  });
}
