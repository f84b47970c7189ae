// The Friends tab: find people by account, answer requests, see friends and
// start a direct chat with one.

import * as api from '../api.js';
import { store } from '../state.js';
import { byId, h, replace } from '../dom.js';
import { t, onLocaleChange } from '../i18n.js';
import { personAvatar } from './profile.js';

let go = () => {};
let selectTab = () => {};
let found = null; // the user the last search found
/** The find box's error, as a function giving its text (it follows the
 * language), or null. */
let findError = null;

function person(u, ...actions) {
  return h(
    'li',
    { class: 'person', dataset: { uid: String(u.id) } },
    personAvatar(u),
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
      store.toast(err.message || t('friends.failed'));
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
      return [h('span', { class: 'note' }, t('friends.you'))];
    case 'friend':
      return [action(t('friends.message'), () => message(u), { primary: true, aria: t('friends.messageName', { name }) })];
    case 'incoming':
      return [action(t('friends.accept'), () => store.friendAction('accept', u.id), { primary: true, aria: t('friends.acceptName', { name }) })];
    case 'outgoing':
      return [h('span', { class: 'note' }, t('friends.requestSent'))];
    default:
      return [action(t('friends.add'), () => store.friendAction('add', u.id), { primary: true, aria: t('friends.addName', { name }) })];
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
    placeholder: t('friends.findPlaceholder'),
    required: true,
  });
  const panel = byId('friends-panel');
  const previous = panel.querySelector('#find-account');
  if (previous) input.value = previous.value;
  const hadFocus = document.activeElement === previous;
  const form = h(
    'form',
    { class: 'find', role: 'search' },
    h('label', { for: 'find-account' }, t('friends.findLabel')),
    h('div', { class: 'find-row' }, input, h('button', { type: 'submit', class: 'button' }, t('friends.find'))),
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const account = input.value.trim();
    if (!account) return;
    try {
      found = await api.searchUser(account);
      findError = null;
    } catch (err) {
      found = null;
      findError = err.code === 404 ? () => t('friends.notFound', { account }) : () => err.message;
    }
    render();
  });
  const result = h(
    'div',
    { class: 'find-result', 'aria-live': 'polite' },
    found ? h('ul', { class: 'people' }, person(found, relationActions(found))) : null,
    findError ? h('p', { class: 'error' }, findError()) : null,
  );
  replace(
    panel,
    form,
    result,
    section(
      t('friends.requests'),
      incoming.map((u) =>
        person(
          u,
          action(t('friends.accept'), () => store.friendAction('accept', u.id), { primary: true, aria: t('friends.acceptName', { name: u.name || u.account }) }),
          action(t('friends.reject'), () => store.friendAction('reject', u.id), { aria: t('friends.rejectName', { name: u.name || u.account }) }),
        ),
      ),
      t('friends.noRequests'),
    ),
    section(
      t('friends.friends'),
      friends.map((u) => person(u, action(t('friends.message'), () => message(u), { primary: true, aria: t('friends.messageName', { name: u.name || u.account }) }))),
      t('friends.noFriends'),
    ),
    outgoing.length
      ? section(
          t('friends.sentRequests'),
          outgoing.map((u) =>
            person(u, action(t('friends.cancel'), () => store.friendAction('cancel', u.id), { aria: t('friends.cancelName', { name: u.name || u.account }) })),
          ),
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
      findError = null;
    }
  });
  onLocaleChange(render);
}
