// What a person can do to a message in the open conversation, and what the
// others' actions show: the quote of the message a reply answers (a click
// jumps to it), reaction chips and the reaction picker, the reply / edit /
// delete buttons, "typing…" and presence under the header, and the header's
// menu of my notification level in the conversation. The conversation view
// places these; the state (store.edit, remove, react, typing,
// setNotifyLevel) does the talking to the server.

import { store } from '../state.js';
import { h } from '../dom.js';
import { fullTimeLabel } from '../format.js';
import { t } from '../i18n.js';

/** The reactions offered by the picker. */
export const REACTIONS = ['👍', '❤️', '😂', '😮', '😢', '🎉'];

/** A short text of message `m` for a quote. */
function gist(m) {
  if (m.deleted) return t('conversation.deleted');
  if (m.kind === 'Image') return t('conversation.photo');
  if (m.kind === 'File') return t('conversation.file');
  return m.content.length > 80 ? `${m.content.slice(0, 80)}…` : m.content;
}

/** Scrolls to message `id` and marks it for a moment. */
export function jumpTo(id) {
  const el = document.querySelector(`.msg[data-id="${Number(id)}"]`);
  if (!el) {
    store.toast(t('conversation.quoteNotLoaded'));
    return;
  }
  el.scrollIntoView({ block: 'center', behavior: 'smooth' });
  el.classList.add('flash');
  setTimeout(() => el.classList.remove('flash'), 1500);
}

/** The quote above a reply, or null. */
export function quote(c, m) {
  if (!m.replyTo) return null;
  const target = c.messages.find((x) => x.id === m.replyTo);
  const who = target ? store.userName(target.uid) : '';
  return h(
    'button',
    { type: 'button', class: 'quote', dataset: { replyTo: String(m.replyTo) }, onclick: () => jumpTo(m.replyTo) },
    h('span', { class: 'quote-name' }, who),
    h('span', { class: 'quote-text' }, target ? gist(target) : t('conversation.quoteNotLoaded')),
  );
}

/** The reaction chips under a message: each toggles my reaction. */
export function chips(m) {
  if (!m.reactions.length || m.deleted) return null;
  return h(
    'div',
    { class: 'reactions' },
    m.reactions.map((r) => {
      const mine = r.uids.includes(store.me.id);
      const names = r.uids.map((u) => store.userName(u)).join(', ');
      return h(
        'button',
        {
          type: 'button',
          class: `chip${mine ? ' mine' : ''}`,
          'aria-pressed': mine ? 'true' : 'false',
          title: names,
          dataset: { emoji: r.content },
          onclick: () => act(() => store.react(m, r.content)),
        },
        `${r.content} ${r.uids.length}`,
      );
    }),
  );
}

/** Runs a message action, telling what went wrong. */
function act(fn) {
  Promise.resolve()
    .then(fn)
    .catch((e) => store.toast(t('conversation.actionFailed', { error: e.message })));
}

/** The action buttons of a stored message. `onReply` and `onEdit` start a
 * reply or an edit in the composer. */
export function actionBar(c, m, { onReply, onEdit }) {
  if (!m.id || m.deleted) return null;
  const mine = m.uid === store.me.id;
  const admin = c.mode === 0 && c.members && c.members.get(store.me.id) === 2;
  const picker = h(
    'div',
    { class: 'reaction-picker', role: 'menu', hidden: true },
    REACTIONS.map((e) =>
      h(
        'button',
        {
          type: 'button',
          role: 'menuitem',
          class: 'pick',
          dataset: { emoji: e },
          onclick: () => {
            picker.hidden = true;
            act(() => store.react(m, e));
          },
        },
        e,
      ),
    ),
  );
  const button = (label, cls, onclick) => h('button', { type: 'button', class: `act ${cls}`, title: label, 'aria-label': label, onclick }, label);
  return h(
    'div',
    { class: 'actions' },
    button(t('conversation.reply'), 'reply', () => onReply(m)),
    button(t('conversation.react'), 'react', () => {
      picker.hidden = !picker.hidden;
    }),
    mine && (m.kind === 'Text' || m.kind === 'RichText') ? button(t('conversation.edit'), 'edit', () => onEdit(m)) : null,
    mine || admin
      ? button(t('conversation.delete'), 'delete', () => {
          if (confirm(t('conversation.deleteConfirm'))) act(() => store.remove(m));
        })
      : null,
    picker,
  );
}

/** The `@account` being typed right before `caret` in `text`: {start,
 * prefix}, or null. */
export function mentionAt(text, caret) {
  const m = /(^|\s)@([A-Za-z0-9_.-]*)$/.exec(text.slice(0, caret));
  return m ? { start: caret - m[2].length - 1, prefix: m[2] } : null;
}

/** The other members of `c` whose account or name starts with `prefix`. */
export function mentionChoices(c, prefix) {
  if (!c.members) return [];
  const p = prefix.toLowerCase();
  const out = [];
  for (const uid of c.members.keys()) {
    const u = store.users.get(uid);
    if (!u || uid === store.me.id) continue;
    if (u.account.toLowerCase().startsWith(p) || (u.name || '').toLowerCase().startsWith(p)) out.push(u);
  }
  return out.slice(0, 8);
}

/** What shows under the header: who is typing, or, in a direct chat,
 * whether the other person is online or when they were last seen. Empty
 * when there is nothing to say. */
export function headerNote(c) {
  const typing = store.typingIn(c);
  if (typing.length === 1) return { text: t('conversation.typing', { name: store.userName(typing[0]) }), typing: true };
  if (typing.length > 1) return { text: t('conversation.severalTyping', { count: typing.length }), typing: true };
  if (c.mode === 1 && c.partner) {
    const p = store.presenceOf(c.partner);
    if (p && p.online) return { text: t('conversation.online'), online: true };
    if (p && p.lastSeen) return { text: t('conversation.lastSeen', { time: fullTimeLabel(p.lastSeen) }) };
  }
  return null;
}

/** The notification levels, as the server names them. */
const LEVELS = ['all', 'mentions', 'none'];

/** The open level menu's closer, for a click elsewhere (one listener for
 * all the menus the header is rebuilt with). */
let closeOpenMenu = null;
document.addEventListener('pointerdown', (ev) => {
  if (closeOpenMenu) closeOpenMenu(ev.target);
});

function levelLabel(level) {
  if (level === 'all') return t('conversation.notifyAll');
  if (level === 'mentions') return t('conversation.notifyMentions');
  return t('conversation.notifyNone');
}

/**
 * The header's notification menu: a button (showing `icon`) that opens a
 * menu of the levels, mine checked. `currentGid()` names the open
 * conversation. Answers {el, update(c)}: `update` marks c's level.
 */
export function notifyMenu(currentGid, icon) {
  const button = h(
    'button',
    {
      type: 'button',
      id: 'conv-notify',
      class: 'icon-button',
      'aria-label': t('conversation.notify'),
      title: t('conversation.notify'),
      'aria-haspopup': 'menu',
      'aria-expanded': 'false',
      'aria-controls': 'conv-notify-menu',
    },
    icon,
  );
  const items = LEVELS.map((level) =>
    h(
      'button',
      { type: 'button', role: 'menuitemradio', class: 'level', 'aria-checked': 'false', dataset: { level }, onclick: () => choose(level) },
      levelLabel(level),
    ),
  );
  const menu = h('div', { id: 'conv-notify-menu', class: 'level-menu', role: 'menu', 'aria-label': t('conversation.notify'), hidden: true }, items);
  const wrap = h('div', { class: 'level-wrap' }, button, menu);

  const show = (open) => {
    menu.hidden = !open;
    button.setAttribute('aria-expanded', String(open));
    closeOpenMenu = open ? (target) => !wrap.contains(target) && show(false) : null;
    if (open) (items.find((i) => i.getAttribute('aria-checked') === 'true') || items[0]).focus();
  };
  const choose = (level) => {
    show(false);
    button.focus();
    const gid = currentGid();
    if (gid) act(() => store.setNotifyLevel(gid, level));
  };
  button.addEventListener('click', () => show(menu.hidden));
  menu.addEventListener('keydown', (ev) => {
    const at = items.indexOf(document.activeElement);
    if (ev.key === 'Escape') {
      show(false);
      button.focus();
    } else if (ev.key === 'ArrowDown' || ev.key === 'ArrowUp') {
      ev.preventDefault();
      items[(at + (ev.key === 'ArrowDown' ? 1 : items.length - 1)) % items.length].focus();
    }
  });
  // Focus elsewhere closes it too.
  wrap.addEventListener('focusout', (ev) => {
    if (!menu.hidden && ev.relatedTarget && !wrap.contains(ev.relatedTarget)) show(false);
  });

  return {
    el: wrap,
    update(c) {
      const mine = store.notifyLevel(c);
      for (const item of items) item.setAttribute('aria-checked', String(item.dataset.level === mine));
    },
  };
}
