// The conversation list: most recent first, with the last message, its time
// and the unread count, kept current by the store's change events.

import { store, attachmentOf } from '../state.js';
import { byId, h, replace } from '../dom.js';
import { listTimeLabel, preview } from '../format.js';
import { t, onLocaleChange } from '../i18n.js';
import { convAvatar, withPresence } from './profile.js';

let go = () => {};

function lastLine(c) {
  const m = c.last;
  if (!m) return c.mode === 1 ? t('chats.sayHello') : t('chats.noMessages');
  const a = attachmentOf(m);
  const text = a ? (m.kind === 'Image' ? t('chats.photo') : `📎 ${preview(a.name, 60)}`) : preview(m.content);
  if (m.uid === store.me.id) return m.status === 'failed' ? t('chats.lastFailed', { text }) : t('chats.lastMine', { text });
  return c.mode === 0 ? t('chats.lastFrom', { name: store.userName(m.uid), text }) : text;
}

function row(c) {
  const title = store.title(c);
  const unread = c.unread > 0;
  const time = c.last ? listTimeLabel(c.last.time) : '';
  const online = c.mode === 1 && store.isOnline(c.partner);
  const label = [title, online ? t('chats.online') : '', unread ? t('chats.unread', { count: c.unread }) : '', c.last ? t('chats.timed', { time, text: lastLine(c) }) : lastLine(c)]
    .filter(Boolean)
    .join(t('chats.separator'));
  return h(
    'li',
    {},
    h(
      'button',
      {
        type: 'button',
        class: `chat-row${unread ? ' unread' : ''}`,
        'aria-label': label,
        'aria-current': store.openGid === c.gid ? 'true' : null,
        dataset: { gid: String(c.gid) },
        onclick: () => go(c.gid),
      },
      c.mode === 1 ? withPresence(convAvatar(c, title), c.partner) : convAvatar(c, title),
      h(
        'span',
        { class: 'chat-main' },
        h('span', { class: 'chat-top' }, h('span', { class: 'chat-title' }, title), h('time', { class: 'chat-time' }, time)),
        h(
          'span',
          { class: 'chat-bottom' },
          h('span', { class: 'chat-last' }, lastLine(c)),
          unread ? h('span', { class: 'badge', 'aria-hidden': 'true' }, c.unread > 99 ? '99+' : String(c.unread)) : null,
        ),
      ),
    ),
  );
}

function render() {
  if (!store.me) return;
  const list = byId('chat-list');
  // Rows are rebuilt; keyboard focus stays on the same conversation.
  const focused = list.contains(document.activeElement) ? document.activeElement.dataset.gid : null;
  const convs = store.sortedConvs();
  replace(list, convs.map(row));
  byId('chats-empty').hidden = convs.length > 0;
  if (focused) list.querySelector(`[data-gid="${focused}"]`)?.focus();
}

export function mountChats(navigate) {
  go = navigate;
  store.addEventListener('change', (ev) => {
    const { what } = ev.detail;
    if (what === 'chats' || what === 'presence' || what === 'logout') render();
  });
  // Relative times ("Yesterday") move on as the clock does.
  setInterval(render, 60_000);
  onLocaleChange(render);
}
