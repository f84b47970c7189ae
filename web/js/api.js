// The REST API: one function per route, each answering the `data` of rim's
// {"ok","code","msg","data"} wrapper or throwing an ApiError with its code.
// The message of an ApiError is the server's own, or the client's (in the
// chosen language) when the server said nothing it could read.

import { t } from './i18n.js';

export class ApiError extends Error {
  /** `code` is rim's code (the HTTP status), or 0 when the server was not reached. */
  constructor(code, message) {
    super(message || t('errors.code', { code }));
    this.code = code;
  }
}

const TOKEN_KEY = 'rim.token';
let token = localStorage.getItem(TOKEN_KEY);
let unauthorized = () => {};

export function getToken() {
  return token;
}

/** Keeps the token (or forgets it, with null) across reloads. */
export function setToken(value) {
  token = value;
  if (value) localStorage.setItem(TOKEN_KEY, value);
  else localStorage.removeItem(TOKEN_KEY);
}

/** Called once whenever the server refuses our token (expired or revoked). */
export function onUnauthorized(fn) {
  unauthorized = fn;
}

async function call(method, path, body) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch {
    throw new ApiError(0, t('errors.unreachable'));
  }
  return answer(res, path);
}

/** The `data` of a wrapped answer, or an ApiError. */
async function answer(res, path) {
  let json;
  try {
    json = await res.json();
  } catch {
    throw new ApiError(res.status, t('errors.badAnswer', { status: res.status }));
  }
  if (!json.ok) {
    if (json.code === 401 && token && !path.startsWith('/api/user/login')) unauthorized();
    throw new ApiError(json.code || res.status, json.msg);
  }
  return json.data;
}

const get = (path) => call('GET', path);
const post = (path, body) => call('POST', path, body);
const q = encodeURIComponent;

// Users and sessions.
export const register = (account, password, name, invite) =>
  post('/api/user/create', invite ? { account, password, name, invite } : { account, password, name });
export const login = (account, password) => post('/api/user/login', { account, password });
export const logout = () => post('/api/user/logout', {});
export const whoAmI = (value) => get(`/api/user/token?token=${q(value)}`);
export const user = (uid) => get(`/api/user/get?uid=${q(uid)}`);
export const searchUser = (account) => get(`/api/user/search?account=${q(account)}`);

// One's own account: the profile (any of name, avatar, email, hideLastSeen),
// the password, the logged-in devices.
export const updateProfile = (fields) => post('/api/user/update', fields);
export const changePassword = (old, next) => post('/api/user/password', { old, new: next });
export const sessions = () => get('/api/user/sessions');
export const revokeSession = (id) => post('/api/user/sessions/revoke', { id });

// Conversations.
export const chatList = (page, size) => post('/api/message/chat/list', { page, size });
export const groups = () => get('/api/group/get');
export const members = (gid) => get(`/api/group/user/get?gid=${q(gid)}`);
export const createGroup = (name, uids) =>
  post('/api/group/create', { group: { name, avatar: '' }, users: uids.map((uid) => ({ uid, role: 1 })) });
export const renameGroup = (id, name) => post('/api/group/update', { id, name });
export const addMembers = (gid, uids) => post('/api/group/user/change', { gid, uids, opType: 1 });
export const removeMembers = (gid, uids) => post('/api/group/user/change', { gid, uids, opType: 2 });
export const makeAdmins = (gid, uids) => post('/api/group/user/change', { gid, uids, opType: 3 });
export const removeAdmins = (gid, uids) => post('/api/group/user/change', { gid, uids, opType: 4 });
export const leaveGroup = (gid) => post('/api/group/leave', { gid });
export const direct = (uid) => post('/api/group/direct', { uid });

// Each member's notification level in a conversation: 'all', 'mentions' or
// 'none' (GET /api/group/get shows it as `notify`).
export const notifyLevel = (gid, level) => post('/api/group/notify', { gid, level });

// Web Push: the server's key (base64url of a P-256 point, the browser's
// applicationServerKey), and this device's subscription (its
// PushSubscription.toJSON()), tied to the token.
export const pushKey = () => get('/api/push/key');
export const pushSubscribe = (subscription) => post('/api/push/subscribe', subscription);
export const pushUnsubscribe = (endpoint) => post('/api/push/unsubscribe', { endpoint });

// Messages.
export const history = (gid, size, beforeId) =>
  post('/api/message/history', beforeId ? { gid, page: 1, size, beforeId } : { gid, page: 1, size });
export const markRead = (gid) => post('/api/message/group/read', { gid });

// Search: rows like history's, each with a `snippet` whose hits are
// between « and » (plain text).
export const search = (text, gid, page = 1, size = 30) =>
  get(`/api/message/search?q=${q(text)}${gid ? `&gid=${q(gid)}` : ''}&page=${page}&size=${size}`);

// Files. The body of an upload is the file itself; a download comes back as
// bytes (a Blob), fetched with the token since <img src> cannot send it.
export async function uploadFile(blob, name) {
  const headers = { 'Content-Type': blob.type || 'application/octet-stream' };
  if (token) headers.Authorization = `Bearer ${token}`;
  let res;
  try {
    res = await fetch(`/api/file?name=${q(name)}`, { method: 'POST', headers, body: blob, cache: 'no-store', credentials: 'omit' });
  } catch {
    throw new ApiError(0, t('errors.unreachable'));
  }
  return answer(res, '/api/file');
}

/** Makes `blob` (an image) my picture; answers {avatar, fileId}. */
export async function uploadAvatar(blob) {
  const headers = { 'Content-Type': blob.type || 'application/octet-stream' };
  if (token) headers.Authorization = `Bearer ${token}`;
  let res;
  try {
    res = await fetch('/api/user/avatar', { method: 'POST', headers, body: blob, cache: 'no-store', credentials: 'omit' });
  } catch {
    throw new ApiError(0, t('errors.unreachable'));
  }
  return answer(res, '/api/user/avatar');
}

export async function fileBlob(id) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  let res;
  try {
    res = await fetch(`/api/file/${q(id)}`, { headers, credentials: 'omit' });
  } catch {
    throw new ApiError(0, t('errors.unreachable'));
  }
  if (res.ok) return res.blob();
  return answer(res, '/api/file');
}

// Friends: status 0 = requests to me, 1 = friends, 2 = my requests.
export const friends = (status) => get(`/api/friend/list?status=${status}`);
export const friendAdd = (fid) => post('/api/friend/add', { fid });
export const friendAccept = (fid) => post('/api/friend/status/modify', { fid, status: 1 });
export const friendRemove = (fid) => post('/api/friend/status/modify', { fid, status: 2 });
