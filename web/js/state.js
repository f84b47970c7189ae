// The client's model of the server: who I am, my conversations and their
// messages, my friends, and the outbox of messages waiting for their ack.
// Views read it and listen for its `change` events; only this module talks
// to the API and the socket.
//
// `change` events carry {what, gid?}: 'chats' (the list or a row changed),
// 'conv' (messages, members or receipts of gid), 'friends', 'conn' (socket
// state), 'toast' ({text}), 'logout'.

import * as api from './api.js';
import { Socket, newClientId } from './socket.js';
import { timeOf } from './format.js';
import { t } from './i18n.js';

/** Messages per history page. */
export const PAGE = 30;
/** A sent message without an ack after this long is shown as failed. */
export const SEND_TIMEOUT_MS = 10_000;
/** A pushed message id counts toward the resume cursor once the connection
 * has stayed up this long after it (see `promote`). */
const CURSOR_SETTLE_MS = 2_000;

const KINDS = ['Text', 'RichText', 'Image', 'File'];
/** Files the server shows inline, and the client as pictures. */
export const IMAGE_TYPES = ['image/png', 'image/jpeg', 'image/gif', 'image/webp'];
const kindName = (k) => (typeof k === 'number' ? KINDS[k] || 'Text' : KINDS.includes(k) ? k : 'Text');

let localSeq = 0;

/** A message as the views see it, from a history row, a push or a send. */
function message({ id, gid, uid, kind, content, cmid, time, status, replyTo, edited, deleted, reactions }) {
  return {
    id: id || null,
    gid,
    uid,
    kind: kindName(kind),
    content: content ?? '',
    cmid: cmid || '',
    time,
    status,
    seq: ++localSeq,
    error: '',
    replyTo: replyTo || null,
    edited: !!edited,
    deleted: !!deleted,
    reactions: reactions || [], // [{content, uids}]
  };
}

function fromRest(m) {
  return message({
    id: m.id,
    gid: m.gid,
    uid: m.uid,
    kind: m.kind,
    content: m.content,
    cmid: m.client_msg_id,
    time: timeOf(m),
    status: 'sent',
    replyTo: m.replyTo,
    edited: !!m.editTime,
    deleted: m.deleted,
    reactions: m.reactions,
  });
}

function fromPush(b) {
  return message({
    id: b.msgId,
    gid: b.gid,
    uid: b.uid,
    kind: b.kind,
    content: b.content,
    cmid: b.clientMsgId,
    time: timeOf(b),
    status: 'sent',
    replyTo: b.replyTo,
    edited: !!b.editTime,
    deleted: b.deleted,
  });
}

/** Applies an Edit, Delete or React push body to message `m`. */
function applyChange(m, event, b) {
  if (event === 'Edit') {
    m.content = b.content;
    m.edited = true;
  } else if (event === 'Delete') {
    m.deleted = true;
    m.content = '';
    m.reactions = [];
  } else if (event === 'React') {
    let r = m.reactions.find((x) => x.content === b.content);
    if (b.on) {
      if (!r) m.reactions = [...m.reactions, (r = { content: b.content, uids: [] })];
      if (!r.uids.includes(b.uid)) r.uids = [...r.uids, b.uid];
    } else if (r) {
      r.uids = r.uids.filter((u) => u !== b.uid);
      if (!r.uids.length) m.reactions = m.reactions.filter((x) => x !== r);
    }
  }
}

/** How long a Typing push shows "typing…". */
const TYPING_SHOWN_MS = 4_000;
/** Typing is told to the server at most this often (it passes on one per 2 s). */
const TYPING_EVERY_MS = 2_000;

/** The attachment of an Image or File message: {fileId, name, size,
 * contentType, width, height}, or null when the content is not one (an
 * Image from an old rim client, say). */
export function attachmentOf(m) {
  if (m.kind !== 'Image' && m.kind !== 'File') return null;
  try {
    const a = JSON.parse(m.content);
    if (!a || typeof a !== 'object' || (a.fileId !== null && !Number.isSafeInteger(a.fileId))) return null;
    return { fileId: a.fileId, name: String(a.name || 'file'), size: Number(a.size) || 0, contentType: String(a.contentType || ''), width: Number(a.width) || 0, height: Number(a.height) || 0 };
  } catch {
    return null;
  }
}

/** A message's identity: the sender's clientMsgId when it has one, which an
 * optimistic bubble already knows before the server assigns the id. */
export function keyOf(m) {
  return m.cmid ? `${m.uid}/${m.cmid}` : `#${m.id}`;
}

function newConv(gid, mode) {
  return {
    gid,
    mode, // 0 group, 1 direct
    name: '',
    partner: null, // uid of the other person in a direct chat
    last: null,
    unread: 0,
    myRead: 0, // newest id I have marked read
    messages: [], // sorted: stored by id, then pending in send order
    byKey: new Map(),
    loaded: false, // the newest page was fetched
    hasOlder: false,
    loading: null,
    members: null, // Map uid -> role (1 member, 2 admin)
    readMarks: new Map(), // uid -> newest id that member read (from Read events)
    notify: null, // my notification level here, as the group list says
  };
}

function order(a, b) {
  if (a.id && b.id) return a.id - b.id;
  if (a.id) return -1;
  if (b.id) return 1;
  return a.seq - b.seq;
}

class Store extends EventTarget {
  constructor() {
    super();
    this.reset();
  }

  reset() {
    this.me = null;
    this.users = new Map();
    this.convs = new Map();
    this.friends = { incoming: [], friends: [], outgoing: [] };
    // The resume cursor: every message up to this id has been received.
    this.cursor = 0;
    this.recent = []; // {id, at, epoch}: received, not yet counted in the cursor
    this.presence = new Map(); // uid -> {online, lastSeen}
    this.presenceFetches = new Set(); // uids whose user/get is under way
    this.typedAt = new Map(); // gid -> when I last sent Typing
    clearInterval(this.promoteTimer);
    this.promoteTimer = null;
    for (const { timer } of this.outbox ? this.outbox.values() : []) clearTimeout(timer);
    this.outbox = new Map(); // key -> {msg, timer}
    this.connState = { state: 'offline' };
    this.openGid = null;
    this.userFetches = new Map();
    clearTimeout(this.resyncTimer);
    this.resyncTimer = null;
    this.everOnline = false;
    if (this.socket) this.socket.stop();
    this.socket = null;
    // Downloaded files, as blob: URLs by file id (see fileUrl).
    for (const url of this.files ? this.files.values() : []) url.then(URL.revokeObjectURL, () => {});
    this.files = new Map();
  }

  emit(what, extra = {}) {
    this.dispatchEvent(new CustomEvent('change', { detail: { what, ...extra } }));
  }

  toast(text) {
    this.emit('toast', { text });
  }

  // ---- session -------------------------------------------------------------

  /** Loads everything for the token's owner and connects. Throws ApiError. */
  async start(token) {
    this.reset();
    this.me = await api.whoAmI(token);
    this.remember(this.me);
    await Promise.all([this.loadChats(), this.loadFriends()]);
    this.socket = new Socket(() => api.getToken(), () => this.cursor);
    this.socket.addEventListener('state', (ev) => this.onConnState(ev.detail));
    this.socket.addEventListener('push', (ev) => this.onPush(ev.detail));
    this.socket.addEventListener('unauthorized', () => this.sessionEnded());
    this.socket.start();
    this.promoteTimer = setInterval(() => this.promote(), 1000);
  }

  /**
   * Moves settled ids into the resume cursor. Pushes from different senders
   * can reach a connection slightly out of id order (each is sent by its
   * sender's task once stored), so an id seen just before the connection
   * dropped does not prove that every smaller id arrived. An id counts once
   * the same connection stayed up CURSOR_SETTLE_MS after it; the others are
   * asked for again at the next login, and duplicates are dropped by key.
   */
  promote() {
    if (!this.socket) return;
    const now = Date.now();
    const { epoch, online } = this.socket;
    this.recent = this.recent.filter((r) => {
      if (r.epoch !== epoch) return false;
      if (online && now - r.at >= CURSOR_SETTLE_MS) {
        this.cursor = Math.max(this.cursor, r.id);
        return false;
      }
      return true;
    });
  }

  /** The server no longer accepts our token. */
  sessionEnded() {
    this.reset();
    api.setToken(null);
    this.emit('logout', { expired: true });
  }

  async logout() {
    try {
      await api.logout();
    } catch {
      // Offline or already revoked: forgetting the token locally is what matters.
    }
    this.reset();
    api.setToken(null);
    this.emit('logout', { expired: false });
  }

  // ---- my account ------------------------------------------------------------

  /** Changes my profile (any of name, avatar, email, hideLastSeen). */
  async updateProfile(fields) {
    this.me = await api.updateProfile(fields);
    this.remember(this.me);
    this.emit('me');
  }

  /** Makes an image file my picture. */
  async uploadAvatar(blob) {
    const { avatar } = await api.uploadAvatar(blob);
    this.me = { ...this.me, avatar };
    this.remember(this.me);
    this.emit('me');
  }

  /** Changes my password; answers how many other devices were logged out. */
  changePassword(old, next) {
    return api.changePassword(old, next);
  }

  /** My logged-in devices, newest first. */
  sessions() {
    return api.sessions();
  }

  revokeSession(id) {
    return api.revokeSession(id);
  }

  /** A blob: URL of a picture that is one of our files (`/api/file/<id>`),
   * or null for any other avatar. */
  pictureUrl(avatar) {
    const m = /^\/api\/file\/(\d+)$/.exec(avatar || '');
    return m ? this.fileUrl(Number(m[1])) : null;
  }

  onConnState(detail) {
    this.connState = detail;
    this.emit('conn');
    if (detail.state !== 'online') return;
    if (this.everOnline) {
      // Messages missed while away arrive as the login replay; what else
      // changed (friend requests, new groups, unread counts) is re-read.
      this.loadChats().catch(() => {});
      this.loadFriends().catch(() => {});
      this.reloadMembers();
      // Presence pushes missed while away: read again whoever is shown.
      this.presence.clear();
      this.emit('presence', {});
    }
    this.everOnline = true;
    for (const { msg } of this.outbox.values()) this.transmit(msg);
  }

  // ---- users ---------------------------------------------------------------

  remember(u) {
    if (u && u.id) this.users.set(u.id, u);
  }

  userName(uid) {
    if (this.me && uid === this.me.id) return this.me.name || this.me.account;
    const u = this.users.get(uid);
    if (u) return u.name || u.account;
    this.fetchUser(uid);
    return t('people.unknown', { uid });
  }

  fetchUser(uid) {
    if (!uid || this.users.has(uid) || this.userFetches.has(uid)) return;
    const p = api
      .user(uid)
      .then((u) => {
        this.remember(u);
        this.emit('chats');
        for (const c of this.convs.values()) if (c.messages.some((m) => m.uid === uid)) this.emit('conv', { gid: c.gid });
      })
      .catch(() => {})
      .finally(() => this.userFetches.delete(uid));
    this.userFetches.set(uid, p);
  }

  // ---- conversations -------------------------------------------------------

  title(conv) {
    if (conv.mode === 1) return conv.partner ? this.userName(conv.partner) : t('people.direct');
    return conv.name || t('people.group', { gid: conv.gid });
  }

  /** Conversations, most recent first; those without messages last. */
  sortedConvs() {
    const rank = (c) => (c.last ? c.last.id || Number.MAX_SAFE_INTEGER : 0);
    return [...this.convs.values()].sort((a, b) => rank(b) - rank(a) || b.gid - a.gid);
  }

  conv(gid, mode = 0) {
    let c = this.convs.get(gid);
    if (!c) {
      c = newConv(gid, mode);
      this.convs.set(gid, c);
    }
    return c;
  }

  applyGroup(c, g) {
    c.mode = g.mode;
    c.name = g.name;
    // Only the group list carries it, not the chat list's rows.
    if (g.notify) c.notify = g.notify;
  }

  /** Re-reads the conversation list: rows with messages from the chat list,
   * the others (new groups, new direct chats) from the group list. */
  async loadChats() {
    const rows = [];
    for (let page = 1; page <= 10; page++) {
      const batch = await api.chatList(page, 100);
      rows.push(...batch);
      if (batch.length < 100) break;
    }
    const groups = await api.groups();
    const seen = new Set();
    for (const row of rows) {
      const c = this.conv(row.group.id, row.group.mode);
      this.applyGroup(c, row.group);
      seen.add(c.gid);
      this.remember(row.user);
      if (c.mode === 1) c.partner = row.user.id;
      const last = fromRest(row.msg);
      if (!c.last || !c.last.id || last.id >= c.last.id) c.last = last;
      c.unread = row.unread;
      if (row.unread === 0) c.myRead = Math.max(c.myRead, last.id);
      // Before the first connection, the newest message listed is where the
      // socket resumes. Later, the socket's own pushes move the cursor: a
      // list read while a replay is still arriving must not skip past it.
      if (!this.socket) this.cursor = Math.max(this.cursor, last.id);
    }
    const empty = [];
    for (const g of groups) {
      seen.add(g.id);
      const c = this.conv(g.id, g.mode);
      this.applyGroup(c, g);
      if (c.mode === 1 && !c.partner) empty.push(c);
    }
    // Conversations I was removed from.
    for (const gid of [...this.convs.keys()]) {
      if (!seen.has(gid)) {
        this.convs.delete(gid);
        if (this.openGid === gid) this.emit('conv', { gid, removed: true });
      }
    }
    // A direct chat without messages has no chat list row naming the partner.
    await Promise.all(empty.map((c) => this.loadMembers(c.gid).catch(() => {})));
    this.emit('chats');
  }

  /** Called by the list on a pushed message for an unknown conversation. */
  resyncSoon() {
    clearTimeout(this.resyncTimer);
    this.resyncTimer = setTimeout(() => this.loadChats().catch(() => {}), 300);
  }

  async loadMembers(gid) {
    const rows = await api.members(gid);
    const c = this.convs.get(gid);
    if (!c) return;
    c.members = new Map();
    for (const row of rows) {
      this.remember(row.user);
      c.members.set(row.user.id, row.role);
      if (c.mode === 1 && row.user.id !== this.me.id) c.partner = row.user.id;
    }
    this.emit('conv', { gid });
    this.emit('chats');
  }

  isAdmin(c) {
    return !!c.members && c.members.get(this.me.id) === 2;
  }

  /** Opens a conversation: fetches its newest page and members once. */
  async open(gid) {
    this.openGid = gid;
    const c = this.convs.get(gid);
    if (!c) return;
    const work = [];
    if (!c.loaded) work.push(this.loadNewest(c));
    if (!c.members) work.push(this.loadMembers(gid));
    await Promise.all(work);
  }

  close() {
    this.openGid = null;
  }

  insert(c, msg) {
    const key = keyOf(msg);
    const known = c.byKey.get(key);
    if (known) {
      if (!known.id && msg.id) this.settle(known, msg.id, msg.time);
      return false;
    }
    c.byKey.set(key, msg);
    c.messages.push(msg);
    c.messages.sort(order);
    return true;
  }

  async loadNewest(c) {
    if (c.loading) return c.loading;
    c.loading = api
      .history(c.gid, PAGE)
      .then((rows) => {
        for (const row of rows) {
          this.remember(row.user);
          this.insert(c, fromRest(row.msg));
        }
        c.loaded = true;
        c.hasOlder = rows.length === PAGE;
        this.emit('conv', { gid: c.gid });
      })
      .finally(() => {
        c.loading = null;
      });
    return c.loading;
  }

  /** Fetches the page before the oldest message shown. Resolves to the count. */
  async loadOlder(gid) {
    const c = this.convs.get(gid);
    if (!c || !c.hasOlder || c.loading) return 0;
    const oldest = c.messages.find((m) => m.id);
    if (!oldest) return 0;
    c.loading = api.history(gid, PAGE, oldest.id);
    try {
      const rows = await c.loading;
      for (const row of rows) {
        this.remember(row.user);
        this.insert(c, fromRest(row.msg));
      }
      c.hasOlder = rows.length === PAGE;
      this.emit('conv', { gid, older: rows.length });
      return rows.length;
    } finally {
      c.loading = null;
    }
  }

  async startDirect(uid) {
    const gid = await api.direct(uid);
    const c = this.conv(gid, 1);
    c.partner = uid;
    this.emit('chats');
    return gid;
  }

  async createGroup(name, uids) {
    const gid = await api.createGroup(name, uids);
    const c = this.conv(gid, 0);
    c.name = name;
    this.emit('chats');
    return gid;
  }

  async renameGroup(gid, name) {
    await api.renameGroup(gid, name);
    const c = this.convs.get(gid);
    if (c) c.name = name;
    this.emit('chats');
    this.emit('conv', { gid });
  }

  async addMembers(gid, uids) {
    await api.addMembers(gid, uids);
    await this.loadMembers(gid);
  }

  async removeMember(gid, uid) {
    if (uid === this.me.id) return this.leaveGroup(gid);
    await api.removeMembers(gid, [uid]);
    await this.loadMembers(gid);
  }

  async leaveGroup(gid) {
    await api.leaveGroup(gid);
    this.convs.delete(gid);
    this.emit('chats');
    this.emit('conv', { gid, removed: true });
  }

  /** Makes member `uid` an admin of `gid` (or a plain member again). */
  async setAdmin(gid, uid, admin) {
    if (admin) await api.makeAdmins(gid, [uid]);
    else await api.removeAdmins(gid, [uid]);
    await this.loadMembers(gid);
  }

  /** How many other members have read `msg` (from Read events). */
  readers(c, msg) {
    if (!msg.id) return 0;
    let n = 0;
    for (const [uid, upto] of c.readMarks) if (uid !== this.me.id && upto >= msg.id) n += 1;
    return n;
  }

  /** The open conversation is on screen, scrolled to its end: mark it read. */
  markViewed(gid) {
    const c = this.convs.get(gid);
    if (!c) return;
    let target = 0;
    for (const m of c.messages) if (m.id && m.uid !== this.me.id && m.id > target) target = m.id;
    if (c.last && c.last.id && c.last.uid !== this.me.id) target = Math.max(target, c.last.id);
    const hadUnread = c.unread > 0;
    c.unread = 0;
    if (target > c.myRead) {
      c.myRead = target;
      if (this.socket && this.socket.online) {
        this.socket.request('Read', { gid, msgId: target }).catch(() => api.markRead(gid).catch(() => {}));
      } else {
        api.markRead(gid).catch(() => {});
      }
    }
    if (hadUnread) this.emit('chats');
  }

  // ---- sending -------------------------------------------------------------

  send(gid, text, replyTo = null) {
    const c = this.convs.get(gid);
    if (!c) return;
    const msg = message({ gid, uid: this.me.id, kind: 'Text', content: text, cmid: newClientId('m'), time: new Date(), status: 'pending', replyTo });
    this.insert(c, msg);
    c.last = msg;
    this.queue(msg);
    this.emit('conv', { gid, sent: true });
    this.emit('chats');
  }

  /** Sends a picked, pasted or dropped file: an optimistic bubble (showing
   * the picture itself at once), the upload, then an Image message for the
   * pictures the server shows inline and a File message for anything else. */
  sendFile(gid, file) {
    const c = this.convs.get(gid);
    if (!c) return;
    const image = IMAGE_TYPES.includes(file.type);
    const name = file.name || (image ? 'image' : 'file');
    const content = JSON.stringify({ fileId: null, name, size: file.size, contentType: file.type, width: null, height: null });
    const msg = message({ gid, uid: this.me.id, kind: image ? 'Image' : 'File', content, cmid: newClientId('m'), time: new Date(), status: 'pending' });
    msg.upload = file;
    if (image) msg.localUrl = URL.createObjectURL(file);
    this.insert(c, msg);
    c.last = msg;
    this.uploadThenSend(msg);
    this.emit('conv', { gid, sent: true });
    this.emit('chats');
  }

  async uploadThenSend(msg) {
    let f;
    try {
      f = await api.uploadFile(msg.upload, attachmentOf(msg).name);
    } catch (err) {
      this.fail(msg, err.message);
      return;
    }
    msg.upload = null;
    // The server knows best what the file is (it reads the bytes).
    msg.kind = IMAGE_TYPES.includes(f.contentType) ? 'Image' : 'File';
    msg.content = JSON.stringify({ fileId: f.id, name: f.name, size: f.size, contentType: f.contentType, width: f.width, height: f.height });
    this.queue(msg);
    this.emit('conv', { gid: msg.gid });
  }

  /** A blob: URL of file `id`'s bytes, fetched once with the token. */
  fileUrl(id) {
    let url = this.files.get(id);
    if (!url) {
      url = api.fileBlob(id).then((blob) => URL.createObjectURL(blob));
      url.catch(() => this.files.delete(id));
      this.files.set(id, url);
    }
    return url;
  }

  /** Searches my conversations (or `gid` only); rows as the API gives them. */
  async search(text, gid) {
    const rows = await api.search(text, gid);
    for (const row of rows) this.remember(row.user);
    return rows;
  }

  /** Sends again a message that failed, with the same clientMsgId: should
   * the first attempt have been stored after all, the server answers with
   * that message instead of storing a copy. A file not uploaded yet is
   * uploaded first. */
  retry(msg) {
    if (msg.status !== 'failed') return;
    msg.status = 'pending';
    msg.error = '';
    if (msg.upload) this.uploadThenSend(msg);
    else this.queue(msg);
    this.emit('conv', { gid: msg.gid });
  }

  queue(msg) {
    const timer = setTimeout(() => this.fail(msg, t('errors.noAnswer')), SEND_TIMEOUT_MS);
    this.outbox.set(keyOf(msg), { msg, timer });
    this.transmit(msg);
  }

  transmit(msg) {
    // Offline: it goes out when the socket is back, if still within its time.
    if (!this.socket || !this.socket.online) return;
    this.socket
      .request('Msg', { kind: msg.kind, gid: msg.gid, content: msg.content, clientMsgId: msg.cmid, ...(msg.replyTo ? { replyTo: msg.replyTo } : {}) })
      .then((ack) => this.settle(msg, ack.serverMsgId, null))
      .catch((err) => {
        // Code 0: the connection dropped; the message is resent on reconnect.
        if (err.code) this.fail(msg, err.message);
      });
  }

  settle(msg, id, time) {
    const entry = this.outbox.get(keyOf(msg));
    if (entry) clearTimeout(entry.timer);
    this.outbox.delete(keyOf(msg));
    if (msg.id && msg.status === 'sent') return;
    msg.id = id;
    msg.status = 'sent';
    msg.error = '';
    if (time) msg.time = time;
    const c = this.convs.get(msg.gid);
    if (!c) return;
    c.messages.sort(order);
    c.myRead = Math.max(c.myRead, id);
    if (!c.last || !c.last.id || c.last.id < id) c.last = msg;
    this.emit('conv', { gid: msg.gid });
    this.emit('chats');
  }

  fail(msg, reason) {
    const entry = this.outbox.get(keyOf(msg));
    if (entry) clearTimeout(entry.timer);
    this.outbox.delete(keyOf(msg));
    if (msg.status !== 'pending') return;
    msg.status = 'failed';
    msg.error = reason;
    this.emit('conv', { gid: msg.gid });
    this.emit('chats');
  }

  // ---- pushes --------------------------------------------------------------

  onPush(frame) {
    const b = frame.body || {};
    if (frame.event === 'Msg') this.onMessage(fromPush(b));
    else if (frame.event === 'Edit' || frame.event === 'Delete' || frame.event === 'React') this.onChange(frame.event, b);
    else if (frame.event === 'Typing') this.onTyping(b.gid, b.uid);
    else if (frame.event === 'Presence') this.onPresence(b);
    else if (frame.event === 'Read') this.onRead(b.gid, b.uid, b.msgId);
    else if (frame.event === 'Notify') this.onNotify(b);
  }

  onMessage(msg) {
    if (msg.id && this.socket) this.recent.push({ id: msg.id, at: Date.now(), epoch: this.socket.epoch });
    const c = this.convs.get(msg.gid);
    if (!c) {
      // A conversation I was just added to, or created on another device.
      this.resyncSoon();
      return;
    }
    const fresh = this.insert(c, msg);
    if (!c.last || !c.last.id || c.last.id <= msg.id) c.last = c.byKey.get(keyOf(msg));
    if (msg.uid === this.me.id) {
      // Sent from another of my devices: the server counts it as read.
      c.unread = 0;
      c.myRead = Math.max(c.myRead, msg.id);
    } else if (fresh && msg.id > c.myRead) {
      c.unread += 1;
    }
    this.userName(msg.uid);
    this.emit('conv', { gid: c.gid, incoming: fresh });
    this.emit('chats');
  }

  /** An edit, deletion or reaction (live or replayed): applied to the
   * message if it is loaded; history shows the current state otherwise. */
  onChange(event, b) {
    if (b.changeId && this.socket) this.recent.push({ id: b.changeId, at: Date.now(), epoch: this.socket.epoch });
    const c = this.convs.get(b.gid);
    const m = c && c.messages.find((x) => x.id === b.msgId);
    if (!m) return;
    applyChange(m, event, b);
    if (event === 'Edit' && b.uid !== this.me.id) this.clearTyping(c, b.uid);
    this.emit('conv', { gid: b.gid });
    if (c.last === m) this.emit('chats');
  }

  onTyping(gid, uid) {
    const c = this.convs.get(gid);
    if (!c || uid === this.me.id) return;
    if (!c.typing) c.typing = new Map();
    clearTimeout(c.typing.get(uid));
    c.typing.set(
      uid,
      setTimeout(() => this.clearTyping(c, uid), TYPING_SHOWN_MS),
    );
    this.userName(uid);
    this.emit('conv', { gid });
  }

  clearTyping(c, uid) {
    if (!c.typing || !c.typing.has(uid)) return;
    clearTimeout(c.typing.get(uid));
    c.typing.delete(uid);
    this.emit('conv', { gid: c.gid });
  }

  /** Who is typing in conversation `c` now (uids). */
  typingIn(c) {
    return c && c.typing ? [...c.typing.keys()] : [];
  }

  onPresence(b) {
    this.presence.set(b.uid, { online: !!b.online, lastSeen: b.lastSeen ? timeOf({ createTime: b.lastSeen }) : null });
    this.emit('presence', { uid: b.uid });
    this.emit('chats');
  }

  /** {online, lastSeen} of `uid` as far as pushes and user/get told. */
  presenceOf(uid) {
    return this.presence.get(uid) || null;
  }

  /** Reads whether `uid` is online now (the pushes then keep it current). */
  async loadPresence(uid) {
    if (this.presence.has(uid) || this.presenceFetches.has(uid)) return;
    this.presenceFetches.add(uid);
    try {
      const u = await api.user(uid);
      // A push that came meanwhile is newer than this answer.
      if (this.presence.has(uid)) return;
      this.presence.set(uid, { online: !!u.online, lastSeen: u.lastSeen ? timeOf({ createTime: u.lastSeen }) : null });
    } finally {
      this.presenceFetches.delete(uid);
    }
    this.emit('presence', { uid });
  }

  /** Whether `uid` is known to be online now; starts reading it if unknown. */
  isOnline(uid) {
    if (!uid || uid === (this.me && this.me.id)) return false;
    const p = this.presence.get(uid);
    if (!p) this.loadPresence(uid).catch(() => {});
    return !!(p && p.online);
  }

  /** Tells the others I am typing in `gid` (at most every 2 s). */
  typing(gid) {
    const now = Date.now();
    if (!this.socket || !this.socket.online || now - (this.typedAt.get(gid) || 0) < TYPING_EVERY_MS) return;
    this.typedAt.set(gid, now);
    this.socket.request('Typing', { gid, clientMsgId: newClientId('t') }).catch(() => {});
  }

  /** Sends an Edit, Delete or React for stored message `m`; the change
   * shows at once and stays if the server accepts it. */
  async change(event, m, content) {
    if (!m.id || !this.socket || !this.socket.online) throw new Error(t('errors.notConnected'));
    const body = { gid: m.gid, msgId: m.id, clientMsgId: newClientId('c') };
    if (content !== undefined) body.content = content;
    const ack = await this.socket.request(event, body);
    const b = { ...body, uid: this.me.id, changeId: ack.serverMsgId };
    if (event === 'React') b.on = !(m.reactions.find((r) => r.content === content) || { uids: [] }).uids.includes(this.me.id);
    applyChange(m, event, b);
    this.emit('conv', { gid: m.gid });
    this.emit('chats');
  }

  edit(m, text) {
    return this.change('Edit', m, text);
  }

  remove(m) {
    return this.change('Delete', m);
  }

  react(m, emoji) {
    return this.change('React', m, emoji);
  }

  /** My newest stored, not deleted text message in `gid` (what Up edits). */
  lastOwn(gid) {
    const c = this.convs.get(gid);
    if (!c) return null;
    for (let i = c.messages.length - 1; i >= 0; i--) {
      const m = c.messages[i];
      if (m.uid === this.me.id && m.id && !m.deleted && (m.kind === 'Text' || m.kind === 'RichText')) return m;
    }
    return null;
  }

  onRead(gid, uid, msgId) {
    const c = this.convs.get(gid);
    if (!c || !msgId) return;
    if (uid === this.me.id) {
      c.unread = 0;
      c.myRead = Math.max(c.myRead, msgId);
      this.emit('chats');
    } else {
      c.readMarks.set(uid, Math.max(c.readMarks.get(uid) || 0, msgId));
    }
    this.emit('conv', { gid });
  }

  /** Re-reads the member lists already shown (roles may have changed). */
  reloadMembers() {
    for (const c of this.convs.values()) if (c.members) this.loadMembers(c.gid).catch(() => {});
  }

  onNotify(b) {
    if (b.kind === 'GroupChanged') {
      // Renamed, members or roles changed, or I was removed: read it again.
      this.loadChats()
        .then(() => (this.convs.has(b.gid) && this.convs.get(b.gid).members ? this.loadMembers(b.gid) : null))
        .catch(() => {});
    } else if (b.kind === 'FriendRequest') {
      this.toast(t('friends.requestToast', { name: b.content || t('friends.someone') }));
      this.loadFriends().catch(() => {});
    } else if (b.kind === 'FriendAccept') {
      this.toast(t('friends.acceptToast', { name: b.content || t('friends.someone') }));
      this.loadFriends().catch(() => {});
    } else if (b.kind === 'ReplayTruncated') {
      // More was missed than the server replays: read the state afresh.
      this.cursor = Math.max(this.cursor, b.msgId || 0);
      for (const c of this.convs.values()) {
        c.loaded = false;
        c.messages = c.messages.filter((m) => !m.id);
        c.byKey = new Map(c.messages.map((m) => [keyOf(m), m]));
      }
      this.loadChats()
        .then(() => {
          const open = this.convs.get(this.openGid);
          if (open) return this.loadNewest(open);
          return null;
        })
        .catch(() => {});
    }
  }

  // ---- notifications -------------------------------------------------------

  /** My notification level in `c`: 'all', 'mentions' or 'none' (before the
   * group list said, the server's default: all in a direct chat). */
  notifyLevel(c) {
    return c.notify || (c.mode === 1 ? 'all' : 'mentions');
  }

  async setNotifyLevel(gid, level) {
    await api.notifyLevel(gid, level);
    const c = this.convs.get(gid);
    if (c) c.notify = level;
    this.emit('conv', { gid });
  }

  /** The server's Web Push key, base64url (see push.js). */
  async pushKey() {
    const { key } = await api.pushKey();
    return key;
  }

  /** Ties this device's push subscription (its toJSON()) to my token. */
  pushSubscribe(subscription) {
    return api.pushSubscribe(subscription);
  }

  pushUnsubscribe(endpoint) {
    return api.pushUnsubscribe(endpoint);
  }

  // ---- friends -------------------------------------------------------------

  async loadFriends() {
    const [incoming, friends, outgoing] = await Promise.all([api.friends(0), api.friends(1), api.friends(2)]);
    for (const u of [...incoming, ...friends, ...outgoing]) this.remember(u);
    this.friends = { incoming, friends, outgoing };
    this.emit('friends');
  }

  /** What I am to `uid`: 'me', 'friend', 'incoming', 'outgoing' or 'none'. */
  relation(uid) {
    if (this.me && uid === this.me.id) return 'me';
    const has = (list) => list.some((u) => u.id === uid);
    if (has(this.friends.friends)) return 'friend';
    if (has(this.friends.incoming)) return 'incoming';
    if (has(this.friends.outgoing)) return 'outgoing';
    return 'none';
  }

  async friendAction(action, uid) {
    if (action === 'add') await api.friendAdd(uid);
    else if (action === 'accept') await api.friendAccept(uid);
    else await api.friendRemove(uid);
    await this.loadFriends();
  }
}

export const store = new Store();
