// Start-up and the shell: which screen shows (splash, login, the app), the
// sidebar tabs, the connection indicator, toasts, the unread count (in the
// page title, and on the installed app's icon where the system shows a
// badge), and the URL hash that names the open conversation (#/c/<gid>), so
// reload and the back button behave as people expect. The page is labelled
// in the chosen language (i18n.js) before anything shows, and again
// whenever it changes.

import * as api from './api.js';
import { t, applyToPage, bindPicker, onLocaleChange } from './i18n.js';
import { store } from './state.js';
import { byId, h, replace } from './dom.js';
import { showLogin, hideLogin } from './views/login.js';
import { mountChats } from './views/chats.js';
import { mountConversation, openConversation, closeConversation } from './views/conversation.js';
import { mountFriends } from './views/friends.js';
import { mountGroups } from './views/groups.js';
import { mountSearch } from './views/search.js';
import { mountProfile, myAvatar } from './views/profile.js';
import { dismissNotifications, mountPush, resumePush } from './push.js';

const splash = byId('splash');
const mainView = byId('main-view');

/** What the splash says, as a function, so that it follows the language. */
let splashText = () => '';

function showSplash(text, retry) {
  splash.hidden = false;
  splashText = text;
  byId('splash-text').textContent = text();
  const button = byId('splash-retry');
  button.hidden = !retry;
  button.onclick = retry || null;
}

const sessionEnded = () => t('app.sessionEnded');

async function enter(token) {
  showSplash(() => t('app.loading'));
  try {
    await store.start(token);
  } catch (err) {
    if (err.code === 401) {
      api.setToken(null);
      splash.hidden = true;
      showLogin(sessionEnded, enter);
      return;
    }
    showSplash(() => t('app.cannotLoad', { error: err.message }), () => enter(token));
    return;
  }
  splash.hidden = true;
  hideLogin();
  mainView.hidden = false;
  renderMe();
  selectTab('chats');
  route();
  resumePush();
}

/** My name and picture at the top of the sidebar. */
function renderMe() {
  replace(byId('me-avatar'), myAvatar());
  byId('me-name').textContent = store.me.name || store.me.account;
  byId('me-name').title = `@${store.me.account}`;
}

function leave(expired) {
  mainView.hidden = true;
  document.title = 'rim';
  setBadge(0);
  closeConversation();
  if (location.hash) history.replaceState(null, '', location.pathname);
  showLogin(expired ? sessionEnded : null, enter);
}

// ---- tabs -------------------------------------------------------------------

function selectTab(name) {
  for (const tab of ['chats', 'friends']) {
    const selected = tab === name;
    byId(`tab-${tab}`).setAttribute('aria-selected', String(selected));
    byId(`${tab}-panel`).hidden = !selected;
  }
}

function mountTabs() {
  const tabs = [byId('tab-chats'), byId('tab-friends')];
  for (const tab of tabs) {
    tab.addEventListener('click', () => selectTab(tab.id.slice(4)));
    tab.addEventListener('keydown', (ev) => {
      if (ev.key !== 'ArrowLeft' && ev.key !== 'ArrowRight') return;
      const other = tabs.find((x) => x !== tab);
      other.focus();
      other.click();
    });
  }
}

// ---- connection state --------------------------------------------------------

let countdown = null;

function renderConn() {
  const { state, retryAt } = store.connState;
  const conn = byId('conn');
  conn.dataset.state = state;
  const label = { online: t('shell.online'), connecting: t('shell.connecting'), offline: t('shell.offline') }[state];
  byId('conn-label').textContent = label;
  const banner = byId('conn-banner');
  const text = byId('conn-text');
  const retry = byId('conn-retry');
  clearInterval(countdown);
  banner.dataset.state = state;
  if (state === 'online') {
    banner.hidden = true;
    return;
  }
  banner.hidden = false;
  retry.hidden = state !== 'offline';
  const tick = () => {
    if (state === 'connecting') {
      text.textContent = t('shell.connecting');
    } else {
      const secs = retryAt ? Math.max(0, Math.ceil((retryAt - Date.now()) / 1000)) : 0;
      text.textContent = navigator.onLine === false ? t('shell.waitingForNetwork') : t('shell.reconnectingIn', { count: secs });
    }
  };
  tick();
  if (state === 'offline') countdown = setInterval(tick, 1000);
}

// ---- toasts -----------------------------------------------------------------

function toast(text) {
  const el = h('div', { class: 'toast' }, text);
  byId('toasts').appendChild(el);
  setTimeout(() => el.remove(), 5000);
}

// ---- routing ----------------------------------------------------------------

function hashGid() {
  const m = /^#\/c\/(\d+)$/.exec(location.hash);
  return m ? Number(m[1]) : null;
}

function route() {
  if (!store.me) return;
  const gid = hashGid();
  if (gid && store.convs.has(gid)) {
    openConversation(gid);
    dismissNotifications(gid);
  } else if (store.openGid !== null || document.body.classList.contains('conv-open')) closeConversation();
}

/** Shows conversation `gid`, or the list with null. Opening a conversation
 * adds a history entry (Back returns to the list, as on a phone); switching
 * between conversations replaces it. */
export function go(gid) {
  if (gid) {
    const url = `#/c/${gid}`;
    if (location.hash !== url) {
      if (history.state && history.state.rimConv) history.replaceState({ rimConv: true }, '', url);
      else history.pushState({ rimConv: true }, '', url);
    }
  } else if (history.state && history.state.rimConv) {
    history.back();
    return;
  } else if (location.hash) {
    history.replaceState(null, '', location.pathname);
  }
  route();
}

let appBadge = -1;

/** The unread count on the installed app's icon, where the system has one. */
function setBadge(count) {
  if (!('setAppBadge' in navigator) || count === appBadge) return;
  appBadge = count;
  (count ? navigator.setAppBadge(count) : navigator.clearAppBadge()).catch(() => {});
}

function updateTitle() {
  let unread = 0;
  for (const c of store.convs.values()) unread += c.unread;
  document.title = unread ? `(${unread}) rim` : 'rim';
  setBadge(unread);
  const badge = byId('chats-badge');
  badge.hidden = unread === 0;
  badge.textContent = unread > 99 ? '99+' : String(unread);
  badge.setAttribute('aria-label', t('shell.unreadBadge', { count: unread }));
  const requests = store.friends.incoming.length;
  const fb = byId('friends-badge');
  fb.hidden = requests === 0;
  fb.textContent = String(requests);
  fb.setAttribute('aria-label', t('shell.requestsBadge', { count: requests }));
}

function boot() {
  applyToPage();
  for (const picker of document.querySelectorAll('select[data-language-picker]')) bindPicker(picker);
  onLocaleChange(() => {
    if (!splash.hidden) byId('splash-text').textContent = splashText();
    if (!store.me) return;
    renderConn();
    updateTitle();
  });
  mountTabs();
  mountChats(go);
  mountConversation(go);
  mountFriends(go, selectTab);
  mountGroups(go);
  mountSearch(go);
  mountProfile();
  mountPush(go);
  byId('logout').addEventListener('click', () => store.logout());
  byId('conn-retry').addEventListener('click', () => store.socket && store.socket.reconnectNow());
  window.addEventListener('hashchange', route);
  store.addEventListener('change', (ev) => {
    const { what } = ev.detail;
    if (what === 'conn') renderConn();
    else if (what === 'me') renderMe();
    else if (what === 'toast') toast(ev.detail.text);
    else if (what === 'logout') leave(ev.detail.expired);
    else if (what === 'chats' || what === 'friends') {
      updateTitle();
      // A conversation named in the URL may only now be known.
      const gid = hashGid();
      if (what === 'chats' && gid && store.convs.has(gid) && store.openGid !== gid) route();
    }
  });
  api.onUnauthorized(() => store.sessionEnded());
  const token = api.getToken();
  if (token) {
    enter(token);
  } else {
    splash.hidden = true;
    showLogin('', enter);
  }
}

boot();
