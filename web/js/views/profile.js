// The profile dialog (and people's pictures wherever they show): my name
// and picture, whether others see when I was
// last online, my password, and the devices logged in to my account, each
// of which (but this one) can be logged out from here.

import { store } from '../state.js';
import { byId, h, avatar, replace } from '../dom.js';
import { t } from '../i18n.js';
import { fullTimeLabel, parseTime } from '../format.js';

/** What the server takes as a picture (it checks the bytes too). */
const PICTURE_TYPES = 'image/png,image/jpeg,image/gif,image/webp';

/** A person's avatar: their uploaded picture once it has loaded, initials
 * until then (and for an avatar that is not one of our files). */
export function personAvatar(u, extraClass = '') {
  const el = avatar(u.name || u.account, `u${u.id}`, extraClass);
  const url = store.pictureUrl(u.avatar);
  if (url) {
    url
      .then((src) => replace(el, h('img', { src, alt: '' })))
      .catch(() => {});
  }
  return el;
}

/** `el` (an avatar) with a dot when `uid` is online, named for screen
 * readers and on hover, so that it does not speak by colour alone. */
export function withPresence(el, uid) {
  if (!store.isOnline(uid)) return el;
  const label = t('chats.online');
  return h('span', { class: 'avatar-wrap' }, el, h('span', { class: 'online-dot', role: 'img', 'aria-label': label, title: label }));
}

/** A conversation's avatar titled `title`: the partner's picture in a
 * direct chat, initials otherwise. */
export function convAvatar(c, title) {
  const partner = c.mode === 1 ? store.users.get(c.partner) : null;
  if (partner) return personAvatar({ ...partner, name: title });
  return avatar(title, c.mode === 1 ? `u${c.partner}` : `g${c.gid}`, c.mode === 0 ? 'group' : '');
}

/** My avatar. */
export function myAvatar(extraClass = '') {
  return personAvatar(store.me, extraClass);
}

function when(text) {
  const d = parseTime(text);
  return d ? fullTimeLabel(d) : '';
}

function status(el, text, ok) {
  el.textContent = text;
  el.className = ok ? 'hint' : 'error';
}

function pictureSection() {
  const input = h('input', { type: 'file', id: 'profile-picture', accept: PICTURE_TYPES, class: 'sr-only' });
  const note = h('p', { class: 'hint', role: 'status' });
  const holder = h('span', { class: 'profile-picture' }, myAvatar('large'));
  input.addEventListener('change', async () => {
    const file = input.files && input.files[0];
    input.value = '';
    if (!file) return;
    status(note, t('profile.uploading'), true);
    try {
      await store.uploadAvatar(file);
      replace(holder, myAvatar('large'));
      status(note, t('profile.pictureSaved'), true);
    } catch (err) {
      status(note, t('profile.pictureFailed', { error: err.message }), false);
    }
  });
  return h(
    'div',
    { class: 'profile-head' },
    holder,
    h('div', { class: 'stack' }, h('label', { for: 'profile-picture', class: 'button' }, t('profile.changePicture')), input, note),
  );
}

function detailsForm() {
  const me = store.me;
  const name = h('input', { id: 'profile-name', maxlength: '64', value: me.name, autocomplete: 'nickname', required: true });
  const hide = h('input', { id: 'profile-hide-last-seen', type: 'checkbox' });
  hide.checked = !!me.hideLastSeen;
  const note = h('p', { class: 'hint', role: 'status' });
  const save = h('button', { type: 'submit', class: 'button primary' }, t('profile.save'));
  const form = h(
    'form',
    { class: 'stack', novalidate: true },
    h('label', { class: 'field' }, h('span', {}, t('profile.name')), name),
    h('label', { class: 'check' }, hide, h('span', {}, t('profile.hideLastSeen'))),
    note,
    h('div', { class: 'dialog-actions' }, save),
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const value = name.value.trim();
    if (!value) {
      status(note, t('profile.nameMissing'), false);
      name.focus();
      return;
    }
    save.disabled = true;
    try {
      await store.updateProfile({ name: value, hideLastSeen: hide.checked });
      status(note, t('profile.saved'), true);
    } catch (err) {
      status(note, err.message, false);
    } finally {
      save.disabled = false;
    }
  });
  return form;
}

function passwordForm() {
  const old = h('input', { id: 'profile-old-password', type: 'password', autocomplete: 'current-password', required: true });
  const next = h('input', { id: 'profile-new-password', type: 'password', autocomplete: 'new-password', minlength: '8', required: true });
  const note = h('p', { class: 'hint', role: 'status' });
  const submit = h('button', { type: 'submit', class: 'button' }, t('profile.changePassword'));
  const form = h(
    'form',
    { class: 'stack', novalidate: true },
    h('h3', {}, t('profile.password')),
    h('label', { class: 'field' }, h('span', {}, t('profile.oldPassword')), old),
    h('label', { class: 'field' }, h('span', {}, t('profile.newPassword')), next),
    note,
    h('div', { class: 'dialog-actions' }, submit),
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (next.value.length < 8) {
      status(note, t('login.passwordTooShort'), false);
      next.focus();
      return;
    }
    submit.disabled = true;
    try {
      const count = await store.changePassword(old.value, next.value);
      old.value = '';
      next.value = '';
      status(note, t('profile.passwordChanged', { count }), true);
      renderDevices();
    } catch (err) {
      status(note, err.code === 403 ? t('profile.oldPasswordWrong') : err.message, false);
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

const devicesList = () => document.getElementById('profile-devices');

async function renderDevices() {
  const list = devicesList();
  if (!list) return;
  let rows;
  try {
    rows = await store.sessions();
  } catch (err) {
    replace(list, h('li', { class: 'error' }, err.message));
    return;
  }
  if (devicesList() !== list) return;
  replace(
    list,
    rows.map((d) => {
      const name = d.userAgent || t('profile.unknownDevice');
      const facts = [t('profile.loggedIn', { time: when(d.createTime) })];
      if (d.online) facts.push(t('profile.onlineNow'));
      else if (d.lastUsedTime) facts.push(t('profile.lastActive', { time: when(d.lastUsedTime) }));
      if (d.address) facts.push(d.address);
      const action = d.current
        ? h('span', { class: 'tag' }, t('profile.thisDevice'))
        : h(
            'button',
            {
              type: 'button',
              class: 'button small',
              'aria-label': t('profile.logOutDevice', { name }),
              onclick: async (ev) => {
                ev.currentTarget.disabled = true;
                try {
                  await store.revokeSession(d.id);
                } catch (err) {
                  store.toast(err.message);
                }
                renderDevices();
              },
            },
            t('profile.logOut'),
          );
      return h(
        'li',
        { class: 'person device', dataset: { session: String(d.id) } },
        h('span', { class: 'person-text' }, h('span', { class: 'person-name' }, name), h('span', { class: 'person-account' }, facts.join(' · '))),
        h('span', { class: 'person-actions' }, action),
      );
    }),
  );
}

function openProfile() {
  const dialog = byId('profile-dialog');
  replace(
    dialog,
    h(
      'div',
      { class: 'dialog-form' },
      h('h2', { id: 'profile-dialog-title' }, t('profile.title')),
      h('p', { class: 'person-account' }, `@${store.me.account}`),
      pictureSection(),
      detailsForm(),
      passwordForm(),
      h('h3', {}, t('profile.devices')),
      h('ul', { id: 'profile-devices', class: 'people', 'aria-label': t('profile.devices') }),
      h('div', { class: 'dialog-actions' }, h('button', { type: 'button', class: 'button', onclick: () => dialog.close() }, t('groups.close'))),
    ),
  );
  dialog.showModal();
  renderDevices();
}

export function mountProfile() {
  byId('profile-open').addEventListener('click', openProfile);
  store.addEventListener('change', (ev) => {
    if (ev.detail.what === 'logout') byId('profile-dialog').close();
  });
}
