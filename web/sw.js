// rim's service worker, served at /sw.js so that its scope is the whole
// site. It does one thing: Web Push. A push carries the JSON the server
// builds ({gid, msgId, title, body}: PROTOCOL.md, "Web Push"), shown as a
// notification, one per conversation (tag rim-g<gid>: a newer message
// replaces the older one and rings again). A click opens that conversation
// in a rim window already open, or in a new one.
//
// A classic script (module service workers are not in every browser yet),
// so it imports nothing: web/js/push.js registers it as
// /sw.js?lang=<language>&text=<"New message" in that language>, which gives
// the notification its language and the words for a push that is not
// rim's JSON. Browsers punish a push that shows nothing, so every push
// shows something.

const params = new URL(self.location.href).searchParams;
const LANG = params.get('lang') || 'en';
const FALLBACK = params.get('text') || 'New message';

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

function parse(data) {
  try {
    const p = data ? data.json() : null;
    if (p && typeof p === 'object') return p;
  } catch {
    // Not JSON: shown with the generic words below.
  }
  return {};
}

/** The app badge counts the notifications waiting to be read. */
async function updateBadge() {
  if (!('setAppBadge' in self.navigator)) return;
  const shown = await self.registration.getNotifications();
  try {
    if (shown.length) await self.navigator.setAppBadge(shown.length);
    else await self.navigator.clearAppBadge();
  } catch {
    // A badge is a nicety: some platforms refuse it.
  }
}

self.addEventListener('push', (event) => {
  const p = parse(event.data);
  const gid = Number.isSafeInteger(p.gid) ? p.gid : 0;
  const title = typeof p.title === 'string' && p.title ? p.title : 'rim';
  const body = typeof p.body === 'string' && p.body ? p.body : FALLBACK;
  event.waitUntil(
    self.registration
      .showNotification(title, {
        body,
        tag: gid ? `rim-g${gid}` : 'rim',
        renotify: true,
        data: { gid },
        icon: '/icons/icon-192.png',
        badge: '/icons/icon-192.png',
        lang: LANG,
      })
      .then(updateBadge),
  );
});

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const gid = Number((event.notification.data || {}).gid) || 0;
  const hash = gid ? `#/c/${gid}` : '';
  event.waitUntil(
    (async () => {
      const windows = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
      const open = windows.find((w) => new URL(w.url).origin === self.location.origin);
      if (open) {
        // The page opens the conversation itself (web/js/push.js): a
        // change of its hash, no reload.
        if (gid) open.postMessage({ rim: 'open', gid });
        await open.focus().catch(() => {});
      } else {
        await self.clients.openWindow(`/${hash}`);
      }
      await updateBadge();
    })(),
  );
});

self.addEventListener('notificationclose', (event) => event.waitUntil(updateBadge()));
