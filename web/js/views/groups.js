// Groups: the "New group" dialog, and the members dialog of a group where
// admins rename it, add or remove people and make them admins (or not), and
// anyone can leave.

import { store } from '../state.js';
import { byId, h, replace } from '../dom.js';
import { t } from '../i18n.js';
import { personAvatar, withPresence } from './profile.js';

let go = () => {};
let membersGid = null;

// The dialogs are modal: the language cannot change while one is open, so
// they are labelled when opened and need no relabelling.

function closeButton(dialog, label = t('groups.cancel')) {
  return h('button', { type: 'button', class: 'button', onclick: () => dialog.close() }, label);
}

function friendPicker(candidates, legend, emptyText) {
  if (!candidates.length) return h('fieldset', { class: 'picker' }, h('legend', {}, legend), h('p', { class: 'empty small' }, emptyText));
  return h(
    'fieldset',
    { class: 'picker' },
    h('legend', {}, legend),
    h(
      'ul',
      { class: 'people' },
      candidates.map((u) =>
        h(
          'li',
          { class: 'person' },
          h(
            'label',
            { class: 'check' },
            h('input', { type: 'checkbox', value: String(u.id), name: 'uid' }),
            personAvatar(u),
            h('span', { class: 'person-text' }, h('span', { class: 'person-name' }, u.name || u.account), h('span', { class: 'person-account' }, `@${u.account}`)),
          ),
        ),
      ),
    ),
  );
}

function checked(form) {
  return [...form.querySelectorAll('input[name="uid"]:checked')].map((i) => Number(i.value));
}

function openNewGroup() {
  const dialog = byId('group-dialog');
  const name = h('input', { id: 'group-name', name: 'name', maxlength: '64', required: true, autocomplete: 'off' });
  const error = h('p', { class: 'error', role: 'alert' });
  const submit = h('button', { type: 'submit', class: 'button primary' }, t('groups.create'));
  const form = h(
    'form',
    { class: 'dialog-form' },
    h('h2', { id: 'group-dialog-title' }, t('groups.title')),
    h('label', { class: 'field' }, h('span', {}, t('groups.name')), name),
    friendPicker(store.friends.friends, t('groups.members'), t('groups.noFriends')),
    error,
    h('div', { class: 'dialog-actions' }, closeButton(dialog), submit),
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const title = name.value.trim();
    if (!title) {
      error.textContent = t('groups.nameMissing');
      name.focus();
      return;
    }
    submit.disabled = true;
    try {
      const gid = await store.createGroup(title, checked(form));
      dialog.close();
      go(gid);
    } catch (err) {
      error.textContent = err.message;
    } finally {
      submit.disabled = false;
    }
  });
  replace(dialog, form);
  dialog.showModal();
  name.focus();
}

function guard(button, error, fn) {
  button.addEventListener('click', async () => {
    button.disabled = true;
    error.textContent = '';
    try {
      await fn();
    } catch (err) {
      error.textContent = err.message;
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

/** An admin's button that makes member `uid` an admin, or a member again
 * (not for the group's only admin: a group always keeps one). */
function roleButton(c, uid, role, name, error) {
  const admins = [...c.members.values()].filter((r) => r === 2).length;
  if (role === 2 && admins < 2) return null;
  const make = role !== 2;
  const label = make ? t('groups.makeAdminName', { name }) : t('groups.removeAdminName', { name });
  const text = make ? t('groups.makeAdmin') : t('groups.removeAdmin');
  return guard(h('button', { type: 'button', class: 'button small', 'aria-label': label }, text), error, () => store.setAdmin(c.gid, uid, make));
}

function renderMembers() {
  const dialog = byId('members-dialog');
  const c = store.convs.get(membersGid);
  if (!c) {
    dialog.close();
    return;
  }
  const admin = store.isAdmin(c);
  const error = h('p', { class: 'error', role: 'alert' });
  const rows = [];
  for (const [uid, role] of c.members || []) {
    const u = store.users.get(uid) || { id: uid, name: store.userName(uid), account: '' };
    const name = u.name || u.account;
    const isMe = uid === store.me.id;
    rows.push(
      h(
        'li',
        { class: 'person', dataset: { uid: String(uid) } },
        withPresence(personAvatar(u), uid),
        h(
          'span',
          { class: 'person-text' },
          h('span', { class: 'person-name' }, isMe ? t('groups.you', { name }) : name),
          h('span', { class: 'person-account' }, u.account ? `@${u.account}` : ''),
        ),
        h(
          'span',
          { class: 'person-actions' },
          role === 2 ? h('span', { class: 'tag' }, t('groups.admin')) : null,
          admin ? roleButton(c, uid, role, name, error) : null,
          admin && !isMe
            ? guard(
                h('button', { type: 'button', class: 'button small', 'aria-label': t('groups.removeName', { name }) }, t('groups.remove')),
                error,
                () => store.removeMember(c.gid, uid),
              )
            : null,
        ),
      ),
    );
  }
  const parts = [h('h2', { id: 'members-dialog-title' }, store.title(c))];
  if (admin) {
    const input = h('input', { id: 'rename-group', maxlength: '64', value: c.name, autocomplete: 'off' });
    const rename = h(
      'form',
      { class: 'find' },
      h('label', { for: 'rename-group' }, t('groups.name')),
      h('div', { class: 'find-row' }, input, h('button', { type: 'submit', class: 'button' }, t('groups.rename'))),
    );
    rename.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const name = input.value.trim();
      if (!name || name === c.name) return;
      try {
        await store.renameGroup(c.gid, name);
      } catch (err) {
        error.textContent = err.message;
      }
    });
    parts.push(rename);
  }
  parts.push(h('h3', {}, t('groups.membersCount', { count: rows.length })), h('ul', { class: 'people', 'aria-label': t('conversation.members') }, rows));
  if (admin) {
    const candidates = store.friends.friends.filter((u) => !c.members.has(u.id));
    const addForm = h('form', { class: 'add-members' }, friendPicker(candidates, t('groups.addFriends'), t('groups.allFriendsIn')));
    if (candidates.length) {
      const add = h('button', { type: 'submit', class: 'button primary' }, t('groups.addToGroup'));
      addForm.appendChild(add);
      addForm.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        const uids = checked(addForm);
        if (!uids.length) return;
        add.disabled = true;
        try {
          await store.addMembers(c.gid, uids);
        } catch (err) {
          error.textContent = err.message;
          add.disabled = false;
        }
      });
    }
    parts.push(addForm);
  }
  const leave = guard(h('button', { type: 'button', class: 'button danger' }, t('groups.leave')), error, async () => {
    if (!confirm(t('groups.leaveConfirm', { name: store.title(c) }))) return;
    await store.leaveGroup(c.gid);
    dialog.close();
  });
  parts.push(error, h('div', { class: 'dialog-actions' }, leave, closeButton(dialog, t('groups.close'))));
  const focused = document.activeElement && dialog.contains(document.activeElement) ? document.activeElement.id : null;
  replace(dialog, h('div', { class: 'dialog-form' }, parts));
  if (focused) document.getElementById(focused)?.focus();
}

/** Shows the members of group `gid`, fetching them afresh. */
export function openMembers(gid) {
  membersGid = gid;
  const dialog = byId('members-dialog');
  renderMembers();
  if (!dialog.open) dialog.showModal();
  store.loadMembers(gid).catch(() => {});
}

export function mountGroups(navigate) {
  go = navigate;
  byId('new-group').addEventListener('click', openNewGroup);
  const members = byId('members-dialog');
  members.addEventListener('close', () => {
    membersGid = null;
  });
  store.addEventListener('change', (ev) => {
    const d = ev.detail;
    if (!membersGid || !members.open) return;
    if ((d.what === 'conv' && d.gid === membersGid) || d.what === 'friends') renderMembers();
    if (d.what === 'presence' && (!d.uid || store.convs.get(membersGid)?.members?.has(d.uid))) renderMembers();
    if (d.what === 'logout') members.close();
  });
}
