// The Friends tab: find people by account, answer requests, see friends and
// start a direct chat with one.

import * as api from '../api.js';
import { store } from '../state.js';
import { byId, h, avatar, replace } from '../dom.js';

let go = () => {};
let selectTab = () => {};
let found = null; // the user the last search found
let findError = '';

function person(u, ...actions) {
  return h(
    'li',
    { class: 'person', dataset: { uid: String(u.id) } },
    avatar(u.name || u.account, `u${u.id}`),
    h('span', { class: 'person-text' }, h('span', { class: 'person-name' }, u.name || u.account), h('span', { class: 'person-account' }, `@${u.account}`)),
    h('span', { class: 'person-actions' }, actions),
  );
}

function action(label, fn, { primary = false, aria = '' } = {}) {
  const button = h('button', { type: 'button', class: `button small${primary ? ' primary' : ''}`, 'aria-label': aria || null }, label);
  button.addEventListener('click', async () => {
    button.disabled = true;
    try {
      await fn();
    } catch (err) {
      store.toast(err.message || 'That did not work');
      button.disabled = false;
    }
  });
  return button;
}

async function message(u) {
  const gid = await store.startDirect(u.id);
  selectTab('chats');
  go(gid);
}

function relationActions(u) {
  const name = u.name || u.account;
  switch (store.relation(u.id)) {
    case 'me':
      return [h('span', { class: 'note' }, 'That is you')];
    case 'friend':
      return [action('Message', () => message(u), { primary: true, aria: `Message ${name}` })];
    case 'incoming':
      return [action('Accept', () => store.friendAction('accept', u.id), { primary: true, aria: `Accept ${name}` })];
    case 'outgoing':
      return [h('span', { class: 'note' }, 'Request sent')];
    default:
      return [action('Add friend', () => store.friendAction('add', u.id), { primary: true, aria: `Send a friend request to ${name}` })];
  }
}

function section(title, items, empty) {
  return h(
    'section',
    { class: 'friends-section', 'aria-label': title },
    h('h3', {}, title, items.length ? h('span', { class: 'count' }, ` ${items.length}`) : null),
    items.length ? h('ul', { class: 'people' }, items) : h('p', { class: 'empty small' }, empty),
  );
}

function render() {
  if (!store.me) return;
  const { incoming, friends, outgoing } = store.friends;
  const input = h('input', {
    id: 'find-account',
    name: 'account',
    autocomplete: 'off',
    autocapitalize: 'none',
    spellcheck: 'false',
    placeholder: 'Their account, e.g. ada',
    required: true,
  });
  const panel = byId('friends-panel');
  const previous = panel.querySelector('#find-account');
  if (previous) input.value = previous.value;
  const hadFocus = document.activeElement === previous;
  const form = h(
    'form',
    { class: 'find', role: 'search' },
    h('label', { for: 'find-account' }, 'Find people by account'),
    h('div', { class: 'find-row' }, input, h('button', { type: 'submit', class: 'button' }, 'Find')),
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const account = input.value.trim();
    if (!account) return;
    try {
      found = await api.searchUser(account);
      findError = '';
    } catch (err) {
      found = null;
      findError = err.code === 404 ? `Nobody has the account “${account}”.` : err.message;
    }
    render();
  });
  const result = h(
    'div',
    { class: 'find-result', 'aria-live': 'polite' },
    found ? h('ul', { class: 'people' }, person(found, relationActions(found))) : null,
    findError ? h('p', { class: 'error' }, findError) : null,
  );
  replace(
    panel,
    form,
    result,
    section(
      'Friend requests',
      incoming.map((u) =>
        person(
          u,
          action('Accept', () => store.friendAction('accept', u.id), { primary: true, aria: `Accept ${u.name || u.account}` }),
          action('Reject', () => store.friendAction('reject', u.id), { aria: `Reject ${u.name || u.account}` }),
        ),
      ),
      'No requests waiting.',
    ),
    section(
      'Friends',
      friends.map((u) => person(u, action('Message', () => message(u), { primary: true, aria: `Message ${u.name || u.account}` }))),
      'No friends yet. Find someone by their account above.',
    ),
    outgoing.length
      ? section(
          'Sent requests',
          outgoing.map((u) => person(u, action('Cancel', () => store.friendAction('cancel', u.id), { aria: `Cancel the request to ${u.name || u.account}` }))),
          '',
        )
      : null,
  );
  if (hadFocus) input.focus();
}

export function mountFriends(navigate, tabs) {
  go = navigate;
  selectTab = tabs;
  store.addEventListener('change', (ev) => {
    if (ev.detail.what === 'friends') render();
    if (ev.detail.what === 'logout') {
      found = null;
      findError = '';
    }
  });
}
