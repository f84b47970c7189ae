// Web Push on this device: the bell in the sidebar header, the service
// worker (/sw.js) and the browser's push subscription. Nothing is asked at
// page load: the browser's permission prompt comes only from a click on the
// bell. The bell shows one of
//   unsupported  no service worker or Push API here (a page over plain http
//                other than localhost, or an iPhone's browser tab: iOS
//                pushes only to an app added to the Home Screen)
//   denied       the person blocked notifications for this site; only the
//                browser's site settings can undo that
//   off, on      whether this device is subscribed
//   busy         while turning on or off
// and a failure says why in a toast, leaving the bell as it was.
//
// The server ties a subscription to the token that posted it (logging out
// drops it there), so each start re-posts the subscription this browser
// holds: a new login on the same device keeps being pushed. An explicit
// log out also ends the subscription in the browser, so that whoever logs
// in next on this browser starts with the bell off; a session that expired
// keeps it for the same person's next login.

import { store } from './state.js';
import { byId } from './dom.js';
import { t, locale, onLocaleChange } from './i18n.js';

const SCOPE = '/';

let state = 'unsupported';
let bell = null;

function supported() {
  return window.isSecureContext && 'serviceWorker' in navigator && 'PushManager' in window && 'Notification' in window;
}

function render() {
  if (!bell) return;
  bell.dataset.state = state;
  bell.setAttribute('aria-pressed', String(state === 'on'));
  bell.setAttribute('aria-disabled', String(state === 'unsupported' || state === 'busy'));
  bell.title = {
    unsupported: window.isSecureContext ? t('push.unsupported') : t('push.needsHttps'),
    denied: t('push.denied'),
    off: t('push.off'),
    on: t('push.on'),
    busy: t('push.busy'),
  }[state];
}

function set(next) {
  state = next;
  render();
}

/** The registration of /sw.js, made (or updated) now: its URL carries the
 * language of the notifications. */
function register() {
  const params = new URLSearchParams({ lang: locale(), text: t('push.newMessage') });
  return navigator.serviceWorker.register(`/sw.js?${params}`, { scope: SCOPE });
}

/** base64url (no padding) → bytes. */
function bytesOf(b64url) {
  const b64 = b64url.replace(/-/g, '+').replace(/_/g, '/');
  const raw = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}

/** Whether subscription `sub` was made for another server key than `key`
 * (bytes). A browser that does not say which key (no `options`) is taken
 * at its word. */
function otherKey(sub, key) {
  const had = sub.options && sub.options.applicationServerKey;
  if (!had) return false;
  const x = new Uint8Array(had);
  return x.length !== key.length || x.some((v, i) => v !== key[i]);
}

/** What went wrong, in words a person can act on. */
function reason(err) {
  if (navigator.onLine === false) return t('push.offline');
  // The browser's push service did not answer (AbortError is what Chromium
  // throws when it cannot reach its push service).
  if (err && err.name === 'AbortError') return t('push.serviceUnreachable');
  return (err && err.message) || String(err);
}

async function currentSubscription() {
  const reg = await navigator.serviceWorker.getRegistration(SCOPE);
  return reg ? reg.pushManager.getSubscription() : null;
}

async function turnOn() {
  set('busy');
  try {
    const permission = await Notification.requestPermission();
    if (permission === 'denied') {
      set('denied');
      store.toast(t('push.denied'));
      return;
    }
    if (permission !== 'granted') {
      // The prompt was dismissed: nothing changes, it can be asked again.
      set('off');
      return;
    }
    const [, key] = await Promise.all([register(), store.pushKey()]);
    // Subscribing needs the worker active, which `ready` waits for.
    const reg = await navigator.serviceWorker.ready;
    const applicationServerKey = bytesOf(key);
    let sub = await reg.pushManager.getSubscription();
    // A subscription made for another key (the server's database was made
    // anew) cannot be reused; the browser refuses to subscribe over it.
    if (sub && otherKey(sub, applicationServerKey)) {
      await sub.unsubscribe();
      sub = null;
    }
    if (!sub) sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey });
    await store.pushSubscribe(sub.toJSON());
    set('on');
    store.toast(t('push.turnedOn'));
  } catch (err) {
    set('off');
    store.toast(t('push.failed', { error: reason(err) }));
  }
}

async function turnOff() {
  set('busy');
  try {
    const sub = await currentSubscription();
    if (sub) {
      // Told to the server first, while the endpoint still means something;
      // offline, the browser's unsubscribe alone stops the pushes (the push
      // service then answers the server that the subscription is gone).
      await store.pushUnsubscribe(sub.endpoint).catch(() => {});
      await sub.unsubscribe();
    }
    set('off');
    store.toast(t('push.turnedOff'));
  } catch (err) {
    set('on');
    store.toast(t('push.offFailed', { error: reason(err) }));
  }
}

function onClick() {
  if (state === 'busy') return;
  // Allowed in the site settings since the page loaded: ask again.
  if (state === 'denied' && Notification.permission !== 'denied') state = 'off';
  if (state === 'unsupported' || state === 'denied') {
    store.toast(bell.title);
    return;
  }
  if (state === 'on') turnOff();
  else turnOn();
}

/** After each login: shows whether this device is subscribed, and ties the
 * subscription to the new token. Asks nothing. */
export async function resumePush() {
  if (!supported()) return set('unsupported');
  if (Notification.permission === 'denied') return set('denied');
  try {
    const sub = Notification.permission === 'granted' ? await currentSubscription() : null;
    if (!sub) return set('off');
    const key = await store.pushKey();
    if (otherKey(sub, bytesOf(key))) {
      await sub.unsubscribe();
      return set('off');
    }
    await store.pushSubscribe(sub.toJSON());
    set('on');
    // The worker may be older than the page: update it, in this language.
    register().catch(() => {});
  } catch {
    // Not confirmed by the server: shown off, one click subscribes again.
    set('off');
  }
}

/** Closes the notifications of conversation `gid`: it is on screen now. */
export async function dismissNotifications(gid) {
  if (state !== 'on') return;
  try {
    const reg = await navigator.serviceWorker.getRegistration(SCOPE);
    for (const n of reg ? await reg.getNotifications({ tag: `rim-g${gid}` }) : []) n.close();
  } catch {
    // Left for the person to dismiss.
  }
}

/** Ends this browser's subscription (after an explicit log out). */
async function forget() {
  if (!supported()) return;
  try {
    const sub = await currentSubscription();
    if (sub) await sub.unsubscribe();
  } catch {
    // Nothing more to do: the server already dropped it with the token.
  }
}

export function mountPush(go) {
  bell = byId('push-bell');
  bell.addEventListener('click', onClick);
  render();
  onLocaleChange(() => {
    render();
    if (state === 'on') register().catch(() => {});
  });
  store.addEventListener('change', (ev) => {
    if (ev.detail.what === 'logout' && !ev.detail.expired) forget().then(() => set(supported() ? 'off' : 'unsupported'));
  });
  // A click on a notification while rim is open (web/sw.js).
  if ('serviceWorker' in navigator) {
    navigator.serviceWorker.addEventListener('message', (ev) => {
      const d = ev.data || {};
      if (d.rim === 'open' && Number.isSafeInteger(d.gid)) go(d.gid);
    });
    navigator.serviceWorker.startMessages();
  }
}
