// One conversation: its history with scrollback, live messages, the
// composer with optimistic sending (text, and photos or files picked, pasted
// or dropped), read receipts, day separators, pictures shown inline with a
// full-size view, and other files as downloads.
//
// Rendering is keyed: each day separator and message keeps its element
// between renders (a message is rebuilt only when what it shows changes), so
// new messages do not disturb a selection or the scroll position.

import { store, keyOf, attachmentOf } from '../state.js';
import { byId, h, hueClass, replace } from '../dom.js';
import { dayKey, dayLabel, timeLabel, fullTimeLabel, linkify, fileSize } from '../format.js';
import { t, onLocaleChange } from '../i18n.js';
import { convAvatar } from './profile.js';
import { openMembers } from './groups.js';
import { actionBar, chips, headerNote, mentionAt, mentionChoices, notifyMenu, quote } from './actions.js';

const NEAR_BOTTOM_PX = 80;
const LOAD_OLDER_PX = 200;
/** Messages of one sender closer than this form one run (one name label). */
const RUN_MS = 5 * 60 * 1000;

let go = () => {};
let gid = null;
let els = null;
/** key -> {el, sig} */
let rendered = new Map();
/** The message a reply being written answers, and the message being edited. */
let replyTarget = null;
let editTarget = null;

function build() {
  const root = byId('conversation');
  const back = h(
    'button',
    { type: 'button', class: 'icon-button back', 'aria-label': t('conversation.back'), title: t('conversation.backShort'), onclick: () => go(null) },
    svg('M15 18l-6-6 6-6'),
  );
  const title = h('h2', { id: 'conv-title', class: 'conv-title' });
  const sub = h('span', { id: 'conv-sub', class: 'conv-sub' });
  const members = h(
    'button',
    { type: 'button', id: 'conv-members', class: 'button', onclick: () => gid && openMembers(gid) },
    t('conversation.members'),
  );
  const levels = notifyMenu(() => gid, svg('M6 9a6 6 0 0 1 12 0c0 6 2.5 8 2.5 8h-17S6 15 6 9M10.3 20.5a2 2 0 0 0 3.4 0'));
  const head = h('header', { class: 'conv-head' }, back, h('span', { id: 'conv-avatar' }), h('div', { class: 'conv-heading' }, title, sub), levels.el, members);
  const older = h('button', { type: 'button', class: 'link-button', onclick: () => loadOlder() }, t('conversation.loadOlder'));
  const start = h('p', { class: 'start-note', hidden: true });
  const olderBox = h('div', { class: 'older' }, older, start);
  const list = h('div', { class: 'message-items' });
  const scroller = h('div', { id: 'messages', class: 'messages', role: 'log', 'aria-label': t('conversation.messages'), tabindex: '0' }, olderBox, list);
  const jump = h('button', { type: 'button', class: 'jump', hidden: true, onclick: () => toBottom(true) }, t('conversation.newMessages'));
  const input = h('textarea', {
    id: 'composer-input',
    rows: '1',
    placeholder: t('conversation.input'),
    'aria-label': t('conversation.input'),
    autocomplete: 'off',
    maxlength: '16000',
    enterkeyhint: 'send',
  });
  const send = h('button', { type: 'submit', class: 'send', 'aria-label': t('conversation.send'), title: t('conversation.send') }, svg('M4 12l16-8-6 16-2-7-8-1z'));
  // Photos and files: picked with the button, pasted into the text field or
  // dropped on the conversation. Each is uploaded and sent as its own message.
  const picker = h('input', { type: 'file', id: 'composer-file', multiple: true, hidden: true, tabindex: '-1' });
  const attach = h(
    'button',
    { type: 'button', class: 'icon-button attach', 'aria-label': t('conversation.attach'), title: t('conversation.attach'), onclick: () => picker.click() },
    svg('M21 11.5l-8.6 8.6a5.5 5.5 0 0 1-7.8-7.8l8.6-8.6a3.7 3.7 0 0 1 5.2 5.2l-8.6 8.6a1.8 1.8 0 0 1-2.6-2.6l7.9-7.9'),
  );
  const composer = h('form', { class: 'composer', 'aria-label': t('conversation.composer') }, attach, picker, input, send);
  // Above the composer while a reply or an edit is being written.
  const pendingText = h('span', { class: 'pending-text' });
  const pendingCancel = h(
    'button',
    { type: 'button', class: 'link-button', onclick: () => cancelPending() },
    t('conversation.cancel'),
  );
  const pending = h('div', { class: 'composer-pending', hidden: true }, pendingText, pendingCancel);
  // Members to complete an `@` with.
  const mentions = h('div', { class: 'mention-list', role: 'listbox', 'aria-label': t('conversation.mentionList'), hidden: true });
  replace(root, head, h('div', { class: 'messages-wrap' }, scroller, jump), pending, mentions, composer);

  const sendFiles = (files) => {
    if (!gid) return;
    for (const file of files) store.sendFile(gid, file);
    els.input.focus();
  };
  picker.addEventListener('change', () => {
    sendFiles([...picker.files]);
    picker.value = '';
  });
  input.addEventListener('paste', (ev) => {
    const files = [...((ev.clipboardData && ev.clipboardData.files) || [])];
    if (!files.length) return;
    ev.preventDefault();
    sendFiles(files);
  });
  scroller.addEventListener('dragover', (ev) => {
    if (ev.dataTransfer && [...ev.dataTransfer.types].includes('Files')) ev.preventDefault();
  });
  scroller.addEventListener('drop', (ev) => {
    const files = [...((ev.dataTransfer && ev.dataTransfer.files) || [])];
    if (!files.length) return;
    ev.preventDefault();
    sendFiles(files);
  });

  scroller.addEventListener('scroll', onScroll, { passive: true });
  composer.addEventListener('submit', (ev) => {
    ev.preventDefault();
    submit();
  });
  input.addEventListener('keydown', (ev) => {
    if ((ev.key === 'Tab' || ev.key === 'Enter') && !mentions.hidden && mentions.firstElementChild) {
      ev.preventDefault();
      mentions.firstElementChild.click();
    } else if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      submit();
    } else if (ev.key === 'ArrowUp' && !input.value && gid) {
      // Up in an empty composer edits my last message.
      const m = store.lastOwn(gid);
      if (m) {
        ev.preventDefault();
        startEdit(m);
      }
    } else if (ev.key === 'Escape' && (replyTarget || editTarget)) {
      cancelPending();
    }
  });
  input.addEventListener('input', () => {
    grow();
    suggestMentions();
    if (gid && input.value && !editTarget) store.typing(gid);
  });
  els = { root, title, sub, members, levels, olderBox, older, start, list, scroller, jump, input, pending, pendingText, mentions, avatarSlot: byId('conv-avatar') };
}

function svg(d) {
  const ns = 'http://www.w3.org/2000/svg';
  const s = document.createElementNS(ns, 'svg');
  s.setAttribute('viewBox', '0 0 24 24');
  s.setAttribute('aria-hidden', 'true');
  const p = document.createElementNS(ns, 'path');
  p.setAttribute('d', d);
  s.appendChild(p);
  return s;
}

function grow() {
  const box = els.input;
  box.style.height = 'auto';
  box.style.height = `${Math.min(box.scrollHeight, 160)}px`;
}

function submit() {
  const text = els.input.value.trim();
  if (!text || !gid) return;
  if (editTarget) {
    const m = editTarget;
    if (text !== m.content) {
      store.edit(m, text).catch((e) => store.toast(t('conversation.actionFailed', { error: e.message })));
    }
  } else {
    store.send(gid, text, replyTarget ? replyTarget.id : null);
  }
  cancelPending();
  els.input.value = '';
  grow();
  els.input.focus();
}

/** Offers the members matching the `@account` being typed. */
function suggestMentions() {
  const c = store.convs.get(gid);
  const at = c && mentionAt(els.input.value, els.input.selectionStart);
  const choices = at ? mentionChoices(c, at.prefix) : [];
  els.mentions.hidden = !choices.length;
  replace(
    els.mentions,
    choices.map((u) =>
      h(
        'button',
        {
          type: 'button',
          role: 'option',
          class: 'mention-choice',
          dataset: { account: u.account },
          onclick: () => {
            const v = els.input.value;
            const end = els.input.selectionStart;
            els.input.value = `${v.slice(0, at.start)}@${u.account} ${v.slice(end)}`;
            const caret = at.start + u.account.length + 2;
            els.input.setSelectionRange(caret, caret);
            els.mentions.hidden = true;
            els.input.focus();
          },
        },
        h('span', { class: 'mention-name' }, u.name || u.account),
        ' ',
        h('span', { class: 'mention-account' }, `@${u.account}`),
      ),
    ),
  );
}

function showPending(text) {
  els.pendingText.textContent = text;
  els.pending.hidden = !text;
}

function startReply(m) {
  editTarget = null;
  replyTarget = m;
  showPending(t('conversation.replyingTo', { name: store.userName(m.uid) }));
  els.input.focus();
}

function startEdit(m) {
  replyTarget = null;
  editTarget = m;
  showPending(t('conversation.editing'));
  els.input.value = m.content;
  grow();
  els.input.focus();
}

function cancelPending() {
  if (editTarget) els.input.value = '';
  replyTarget = null;
  editTarget = null;
  showPending('');
}

// ---- scrolling and reading ---------------------------------------------------

function distanceFromBottom() {
  const s = els.scroller;
  return s.scrollHeight - s.scrollTop - s.clientHeight;
}

function toBottom(focus) {
  els.scroller.scrollTop = els.scroller.scrollHeight;
  els.jump.hidden = true;
  maybeRead();
  if (focus) els.input.focus();
}

function onScroll() {
  if (!gid) return;
  if (els.scroller.scrollTop < LOAD_OLDER_PX) loadOlder();
  if (distanceFromBottom() < NEAR_BOTTOM_PX) {
    els.jump.hidden = true;
    maybeRead();
  }
}

/** Marks read what is on screen: the end of the open conversation, in a
 * visible tab. */
function maybeRead() {
  if (!gid || document.visibilityState !== 'visible') return;
  if (distanceFromBottom() >= NEAR_BOTTOM_PX) return;
  store.markViewed(gid);
}

async function loadOlder() {
  const c = store.convs.get(gid);
  if (!c || !c.hasOlder || c.loading) return;
  els.older.disabled = true;
  els.older.textContent = t('conversation.loading');
  els.scroller.setAttribute('aria-busy', 'true');
  try {
    await store.loadOlder(gid);
  } catch {
    // Shown by the button staying available: scrolling up again retries.
  } finally {
    els.scroller.removeAttribute('aria-busy');
    els.older.disabled = false;
    els.older.textContent = t('conversation.loadOlder');
    renderOlderBox();
  }
}

/** Above the messages: the button for older ones, or, once the whole
 * history is shown, a note that this is where it begins. */
function renderOlderBox() {
  const c = store.convs.get(gid);
  els.older.hidden = !c || !c.hasOlder;
  const atStart = !!c && c.loaded && !c.hasOlder;
  els.start.hidden = !atStart;
  if (!atStart) return;
  if (c.messages.length) els.start.textContent = t('conversation.beginning');
  else if (c.mode === 1) els.start.textContent = t('conversation.directStart', { name: store.title(c) });
  else els.start.textContent = t('conversation.groupStart');
}

// ---- messages ----------------------------------------------------------------

/** Largest size a picture is shown at in a bubble, in CSS pixels. */
const PHOTO_BOX = 280;

/** Saves file `a` under its name: fetched with the token into a blob. */
async function download(a) {
  try {
    const url = await store.fileUrl(a.fileId);
    const link = h('a', { href: url, download: a.name, hidden: true });
    document.body.appendChild(link);
    link.click();
    link.remove();
  } catch (err) {
    store.toast(t('conversation.cannotDownload', { name: a.name, error: err.message }));
  }
}

/** The full-size view of a picture, with its name and a download button. */
function openPhoto(a, source) {
  const dialog = byId('photo-dialog');
  const img = h('img', { class: 'photo-full', alt: a.name });
  source.then((url) => {
    img.src = url;
  }, () => {});
  replace(
    dialog,
    h(
      'div',
      { class: 'photo-view' },
      h('h2', { id: 'photo-dialog-title', class: 'photo-title' }, a.name),
      img,
      h(
        'div',
        { class: 'dialog-actions' },
        a.fileId ? h('button', { type: 'button', class: 'button', onclick: () => download(a) }, t('conversation.download')) : null,
        h('button', { type: 'button', class: 'button primary', onclick: () => dialog.close() }, t('conversation.close')),
      ),
    ),
  );
  dialog.showModal();
}

/** A picture in a bubble: its space reserved at once (the size is in the
 * message), its bytes fetched with the token and shown from a blob: URL,
 * since <img src> cannot send the token. */
function renderPhoto(m, a) {
  const scale = a.width && a.height ? Math.min(1, PHOTO_BOX / Math.max(a.width, a.height)) : 1;
  const img = h('img', {
    class: 'photo',
    alt: a.name,
    width: a.width ? String(Math.max(1, Math.round(a.width * scale))) : String(PHOTO_BOX),
    height: a.height ? String(Math.max(1, Math.round(a.height * scale))) : String(Math.round(PHOTO_BOX * 0.75)),
  });
  const source = m.localUrl ? Promise.resolve(m.localUrl) : a.fileId ? store.fileUrl(a.fileId) : Promise.reject(new Error('not uploaded'));
  source.then(
    (url) => {
      img.src = url;
    },
    () => img.classList.add('broken'),
  );
  return h(
    'button',
    { type: 'button', class: 'photo-button', 'aria-label': t('conversation.openPicture', { name: a.name }), onclick: () => openPhoto(a, source) },
    img,
  );
}

function renderFile(a) {
  return h(
    'button',
    {
      type: 'button',
      class: 'file-link',
      disabled: !a.fileId,
      'aria-label': t('conversation.downloadFile', { name: a.name, size: fileSize(a.size) }),
      onclick: () => download(a),
    },
    h('span', { class: 'file-icon', 'aria-hidden': 'true' }, '📎'),
    h('span', { class: 'file-text' }, h('span', { class: 'file-name' }, a.name), h('span', { class: 'file-size' }, fileSize(a.size))),
  );
}

/** The body of a message. Text (and RichText: its markup too) is set as
 * text, never parsed as HTML; links become anchors only for http(s) URLs. */
function renderBody(m) {
  const a = attachmentOf(m);
  if (a && m.kind === 'Image') return renderPhoto(m, a);
  if (a) return renderFile(a);
  return h(
    'p',
    { class: 'text' },
    linkify(m.content).map((part) =>
      part.href ? h('a', { href: part.href, target: '_blank', rel: 'noopener noreferrer nofollow' }, part.text) : part.text,
    ),
  );
}

function statusOf(c, m) {
  if (m.status === 'pending') return { icon: '🕓', label: t('conversation.sending'), cls: 'pending' };
  if (m.status === 'failed') return { icon: '!', label: t('conversation.notSent'), cls: 'failed' };
  const readers = store.readers(c, m);
  if (readers === 0) return { icon: '✓', label: t('conversation.sent'), cls: 'sent' };
  if (c.mode === 1) return { icon: '✓✓', label: t('conversation.read'), cls: 'read' };
  return { icon: '✓✓', label: t('conversation.readBy', { count: readers }), cls: 'read' };
}

function bubble(c, m, showName) {
  const mine = m.uid === store.me.id;
  const status = mine ? statusOf(c, m) : null;
  const name = store.userName(m.uid);
  const time = timeLabel(m.time);
  return h(
    'div',
    {
      class: `msg ${mine ? 'mine' : 'theirs'}${showName ? ' first' : ''}`,
      dataset: { key: keyOf(m), id: m.id ? String(m.id) : '', status: mine ? status.cls : 'received' },
    },
    showName && !mine && c.mode === 0 ? h('div', { class: `sender ${hueClass(`u${m.uid}`)}` }, name) : null,
    h(
      'div',
      { class: `bubble${m.kind === 'Image' && attachmentOf(m) ? ' has-photo' : ''}${m.deleted ? ' deleted' : ''}` },
      h('span', { class: 'sr-only' }, `${mine ? t('conversation.youSaid') : t('conversation.theySaid', { name })} `),
      quote(c, m),
      m.deleted ? h('p', { class: 'text tombstone' }, t('conversation.deleted')) : renderBody(m),
      h(
        'span',
        { class: 'meta' },
        m.edited && !m.deleted ? h('span', { class: 'edited' }, t('conversation.edited')) : null,
        h('time', { datetime: m.time.toISOString(), title: fullTimeLabel(m.time) }, time),
        status ? h('span', { class: `status ${status.cls}`, title: status.label }, h('span', { 'aria-hidden': 'true' }, status.icon), h('span', { class: 'sr-only' }, status.label)) : null,
      ),
    ),
    m.status === 'failed'
      ? h(
          'div',
          { class: 'failure', role: 'alert' },
          h('span', {}, m.error ? t('conversation.notSentBecause', { error: m.error }) : `${t('conversation.notSent')}.`, ' '),
          h('button', { type: 'button', class: 'link-button', onclick: () => store.retry(m) }, t('conversation.retry')),
        )
      : null,
    chips(m),
    actionBar(c, m, { onReply: startReply, onEdit: startEdit }),
  );
}

function render(detail = {}) {
  const c = store.convs.get(gid);
  if (!c || !els) return;
  const fromBottom = distanceFromBottom();
  const wasNearBottom = fromBottom < NEAR_BOTTOM_PX;
  const title = store.title(c);
  els.title.textContent = title;
  replace(els.avatarSlot, convAvatar(c, title));
  if (c.mode === 1) {
    const u = c.partner && store.users.get(c.partner);
    els.sub.textContent = u ? `@${u.account}` : '';
  } else {
    const n = c.members ? c.members.size : 0;
    els.sub.textContent = n ? t('conversation.memberCount', { count: n }) : '';
  }
  els.members.hidden = c.mode !== 0;
  els.levels.update(c);
  const note = headerNote(c);
  if (note) els.sub.textContent = note.text;
  els.sub.classList.toggle('typing', !!(note && note.typing));
  els.sub.classList.toggle('online', !!(note && note.online));
  if (c.mode === 1 && c.partner) store.loadPresence(c.partner).catch(() => {});

  const wanted = [];
  const next = new Map();
  let prev = null;
  for (const m of c.messages) {
    const day = dayKey(m.time);
    if (!prev || dayKey(prev.time) !== day) {
      const key = `day:${day}`;
      const label = dayLabel(m.time);
      const old = rendered.get(key);
      const el = old && old.sig === label ? old.el : h('div', { class: 'day', role: 'separator' }, h('span', {}, label));
      next.set(key, { el, sig: label });
      wanted.push(el);
    }
    const showName = !prev || prev.uid !== m.uid || m.time - prev.time > RUN_MS || dayKey(prev.time) !== day;
    const status = m.uid === store.me.id ? statusOf(c, m).label : '';
    const reactions = m.reactions.map((r) => `${r.content}:${r.uids.join(',')}`).join(' ');
    const quoted = m.replyTo ? c.messages.find((x) => x.id === m.replyTo) : null;
    const sig = [
      m.id,
      m.status,
      m.error,
      status,
      showName,
      store.userName(m.uid),
      m.time.getTime(),
      m.kind,
      m.content,
      m.edited,
      m.deleted,
      reactions,
      m.replyTo,
      quoted ? `${quoted.content}|${quoted.deleted}` : '',
    ].join('|');
    const key = keyOf(m);
    const old = rendered.get(key);
    const el = old && old.sig === sig ? old.el : bubble(c, m, showName);
    next.set(key, { el, sig });
    wanted.push(el);
    prev = m;
  }
  // Put the wanted nodes in order, moving only those out of place.
  const list = els.list;
  wanted.forEach((el, i) => {
    if (list.children[i] !== el) list.insertBefore(el, list.children[i] || null);
  });
  while (list.children.length > wanted.length) list.lastElementChild.remove();
  rendered = next;
  renderOlderBox();

  if (detail.older) {
    els.scroller.scrollTop = els.scroller.scrollHeight - els.scroller.clientHeight - fromBottom;
  } else if (wasNearBottom || detail.sent || detail.first) {
    toBottom(false);
  } else if (detail.incoming) {
    els.jump.hidden = false;
  }
  maybeRead();
  // A short history may not fill the screen: fetch more until it scrolls.
  if (c.hasOlder && !c.loading && els.scroller.scrollHeight <= els.scroller.clientHeight) loadOlder();
}

// ---- opening and closing -------------------------------------------------------

export async function openConversation(next) {
  if (!els) build();
  const same = next === gid;
  gid = next;
  document.body.classList.add('conv-open');
  if (!same) {
    rendered = new Map();
    els.list.replaceChildren();
    els.jump.hidden = true;
    els.input.value = '';
    replyTarget = null;
    editTarget = null;
    showPending('');
    grow();
  }
  els.root.dataset.gid = String(gid);
  store.open(gid).then(
    () => render({ first: !same }),
    () => render({ first: !same }),
  );
  render({ first: true });
  store.emit('chats');
  if (!same && matchMedia('(min-width: 721px)').matches) els.input.focus();
}

export function closeConversation() {
  gid = null;
  store.close();
  document.body.classList.remove('conv-open');
  const root = byId('conversation');
  delete root.dataset.gid;
  els = null;
  rendered = new Map();
  placeholder(root);
  if (store.me) store.emit('chats');
}

/** What shows where no conversation is open. */
function placeholder(root) {
  replace(
    root,
    h('div', { class: 'placeholder' }, h('div', { class: 'logo', 'aria-hidden': 'true' }, 'rim'), h('p', {}, t('shell.placeholder'))),
  );
}

/** After a change of language: the open conversation is built again in it,
 * keeping the draft and the scroll position. */
function relabel() {
  if (!els) {
    if (!gid) placeholder(byId('conversation'));
    return;
  }
  const draft = els.input.value;
  const hadFocus = document.activeElement === els.input;
  const fromBottom = distanceFromBottom();
  build();
  rendered = new Map();
  els.input.value = draft;
  grow();
  render({});
  els.scroller.scrollTop = els.scroller.scrollHeight - els.scroller.clientHeight - fromBottom;
  if (hadFocus) els.input.focus();
}

export function mountConversation(navigate) {
  go = navigate;
  store.addEventListener('change', (ev) => {
    const d = ev.detail;
    if (d.what === 'conv' && d.gid === gid) {
      if (d.removed) {
        store.toast(t('conversation.removed'));
        go(null);
        return;
      }
      render(d);
    } else if (d.what === 'presence' && gid && els) {
      // The partner's "online" / "last seen" under the header.
      const c = store.convs.get(gid);
      if (c && c.mode === 1 && (!d.uid || d.uid === c.partner)) render();
    } else if (d.what === 'chats' && gid && els) {
      // Names and titles may have arrived.
      const c = store.convs.get(gid);
      if (c) els.title.textContent = store.title(c);
    }
  });
  onLocaleChange(relabel);
  document.addEventListener('visibilitychange', () => els && maybeRead());
  window.addEventListener('focus', () => els && maybeRead());
}
