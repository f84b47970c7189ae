// End-to-end tests of Web Push in rim's web client: the bell in the sidebar
// header, the service worker, the Visibility frames and the per-conversation
// notification level. Like suite.test.js: `rim serve` (rim.js) on a
// loopback port the OS picks, a fresh database, Debian's Chromium headless through playwright-core, each device a browser
// context of its own, in the language RIM_LANG (en or zh-CN). The tests form
// one story and run in order.
//
// The browsers' real push services are outside this machine (and Chromium
// here has no network), so two parts of the browser are stood in for:
//   - the push service: an HTTP server of this test on loopback, which the
//     server's config allows (`push.allowed_hosts`, `allow_insecure_http`).
//     It records every push and plays the browser's part in reading it: it
//     decrypts the body with the subscription's private key, made here
//     (RFC 8291, aes128gcm of RFC 8188), and checks the VAPID signature
//     with the server's public key (RFC 8292);
//   - the browser's side of subscribing: `PushManager.prototype.subscribe`
//     and `getSubscription` (in the page, by an init script) return a
//     subscription naming that stand-in, with the keys made here, and
//     record the applicationServerKey they were given. Everything of ours
//     runs as it does in a browser: the bell, /sw.js, the REST calls.
// What a push service would then hand the browser is given to the service
// worker through the DevTools protocol (`ServiceWorker.deliverPushMessage`).
//
// Run: cargo build && (cd tests/browser && npm ci && RIM_LANG=en node --test push.test.js)

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import { chromium } from 'playwright-core';

import { translator } from '../../web/js/i18n.js';
import { Server, logIn, online, token } from './rim.js';
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const LANG = process.env.RIM_LANG || 'en';
const WAIT = 10_000;
const CONTACT = 'mailto:admin@example.org';

const ui = translator(LANG);


/** Per language: the browser's locale, the people's names, what they write. */
const STORY = {
  en: {
    locale: 'en-US',
    alice: 'Alice Archer',
    bob: 'Bob Baker',
    texts: ['Dinner at seven?', 'I am looking at it', 'Bring the salad', 'Shh, quiet now', 'Loud again', 'Nobody hears this', 'And this one is heard', 'Logged in anew'],
  },
  'zh-CN': {
    locale: 'zh-CN',
    alice: '王芳',
    bob: '李明',
    texts: ['七点吃晚饭吗？', '我正看着呢', '带上沙拉', '先别打扰', '又可以提醒了', '这条没人听见', '这条听得见', '重新登录了'],
  },
}[LANG];
assert.ok(STORY, `RIM_LANG must be en or zh-CN, not ${LANG}`);

// ---- the stand-in push service --------------------------------------------------

/** Pushes as the stand-in received them, in order; `next()` hands out the
 * next one not yet taken, waiting up to WAIT. */
const standIn = {
  server: null,
  origin: '',
  received: [],
  taken: 0,
  async start() {
    this.server = http.createServer((req, res) => {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        this.received.push({ method: req.method, path: req.url, headers: req.headers, body: Buffer.concat(chunks) });
        res.writeHead(201).end();
      });
    });
    await new Promise((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.origin = `http://127.0.0.1:${this.server.address().port}`;
  },
  async next() {
    const until = Date.now() + WAIT;
    while (this.received.length <= this.taken) {
      assert.ok(Date.now() < until, `no push reached the stand-in within ${WAIT} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
    return this.received[this.taken++];
  },
  stop() {
    return new Promise((resolve) => (this.server ? this.server.close(resolve) : resolve()));
  },
};

/** A browser's subscription keys: the P-256 key pair and the auth secret. */
function subscriptionKeys() {
  const ecdh = crypto.createECDH('prime256v1');
  ecdh.generateKeys();
  return { ecdh, auth: crypto.randomBytes(16) };
}

/** What the browser does with a push: RFC 8291 (aes128gcm, RFC 8188),
 * written from the RFC, independently of the server. Answers the JSON. */
function decrypt(body, { ecdh, auth }) {
  // RFC 8188 section 2.1: salt (16), record size (4), key id length (1),
  // key id (the server's ephemeral public key, 65 for P-256), then one
  // record: the ciphertext and its 16-byte tag.
  const salt = body.subarray(0, 16);
  const rs = body.readUInt32BE(16);
  const idlen = body[20];
  assert.equal(idlen, 65, 'the key id is an uncompressed P-256 point');
  const asPublic = body.subarray(21, 21 + idlen);
  const record = body.subarray(21 + idlen);
  assert.ok(record.length <= rs, `one record: ${record.length} bytes, rs ${rs}`);
  // RFC 8291 section 3.3-3.4.
  const ecdhSecret = ecdh.computeSecret(asPublic);
  const keyInfo = Buffer.concat([Buffer.from('WebPush: info\0'), ecdh.getPublicKey(), asPublic]);
  const ikm = Buffer.from(crypto.hkdfSync('sha256', ecdhSecret, auth, keyInfo, 32));
  const cek = Buffer.from(crypto.hkdfSync('sha256', ikm, salt, Buffer.from('Content-Encoding: aes128gcm\0'), 16));
  const nonce = Buffer.from(crypto.hkdfSync('sha256', ikm, salt, Buffer.from('Content-Encoding: nonce\0'), 12));
  const decipher = crypto.createDecipheriv('aes-128-gcm', cek, nonce);
  decipher.setAuthTag(record.subarray(record.length - 16));
  const plain = Buffer.concat([decipher.update(record.subarray(0, record.length - 16)), decipher.final()]);
  // The last record's padding: a 2, then zeros.
  let end = plain.length - 1;
  while (end >= 0 && plain[end] === 0) end--;
  assert.equal(plain[end], 2, 'the last record ends with the delimiter 2');
  return JSON.parse(plain.subarray(0, end).toString('utf8'));
}

/** Checks the VAPID identification of a push (RFC 8292): the key is the
 * server's, the JWT's claims fit, its ES256 signature verifies. */
function checkVapid(push, serverKey) {
  const m = /^vapid t=([\w-]+\.[\w-]+\.[\w-]+),\s*k=([\w-]+)$/.exec(push.headers.authorization || '');
  assert.ok(m, `Authorization: ${push.headers.authorization}`);
  const [jwt, k] = [m[1], m[2]];
  assert.equal(k, serverKey, 'k is the key of GET /api/push/key');
  const [h, p, s] = jwt.split('.');
  const header = JSON.parse(Buffer.from(h, 'base64url').toString());
  assert.equal(header.alg, 'ES256');
  const claims = JSON.parse(Buffer.from(p, 'base64url').toString());
  assert.equal(claims.aud, standIn.origin, 'aud is the push service origin');
  assert.equal(claims.sub, CONTACT);
  const now = Date.now() / 1000;
  assert.ok(claims.exp > now && claims.exp <= now + 24 * 3600, `exp ${claims.exp}, now ${now}`);
  const point = Buffer.from(k, 'base64url');
  assert.equal(point.length, 65);
  assert.equal(point[0], 4);
  const key = crypto.createPublicKey({
    key: { kty: 'EC', crv: 'P-256', x: point.subarray(1, 33).toString('base64url'), y: point.subarray(33).toString('base64url') },
    format: 'jwk',
  });
  const ok = crypto.verify('sha256', Buffer.from(`${h}.${p}`), { key, dsaEncoding: 'ieee-p1363' }, Buffer.from(s, 'base64url'));
  assert.ok(ok, 'the VAPID signature verifies with the server key');
}

// ---- the server ------------------------------------------------------------------

let server = null;
let base = '';

function rest(method, route, token, body) {
  return server.rest(method, route, token, body);
}

// ---- the browser and its people ----------------------------------------------------

/**
 * Runs in the page before its scripts (an init script): the browser's side
 * of subscribing, as described at the top. Its record, in localStorage
 * `test.push`: how often permission was asked, the applicationServerKey and
 * userVisibleOnly given, whether a subscription is held, and `fail` (set by
 * the test: subscribing then fails as when the push service is unreachable).
 */
function stubPushManager({ endpoint, p256dh, auth }) {
  if (!window.PushManager || !window.isSecureContext || location.origin === 'null') return;
  const KEY = 'test.push';
  const read = () => JSON.parse(localStorage.getItem(KEY) || '{"asks":0,"subscribes":0,"held":false}');
  const write = (s) => localStorage.setItem(KEY, JSON.stringify(s));
  const bytes = (b64) => {
    const s = b64.replace(/-/g, '+').replace(/_/g, '/');
    return Uint8Array.from(atob(s + '='.repeat((4 - (s.length % 4)) % 4)), (c) => c.charCodeAt(0));
  };
  const b64url = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  const subscription = (key) => ({
    endpoint,
    expirationTime: null,
    options: { userVisibleOnly: true, applicationServerKey: bytes(key).buffer },
    getKey: (name) => (name === 'p256dh' ? bytes(p256dh).buffer : name === 'auth' ? bytes(auth).buffer : null),
    toJSON: () => ({ endpoint, expirationTime: null, keys: { p256dh, auth } }),
    unsubscribe: async () => {
      write({ ...read(), held: false });
      return true;
    },
  });
  PushManager.prototype.subscribe = async function subscribe(options) {
    const s = read();
    if (s.fail) throw new DOMException('Registration failed - push service not available', 'AbortError');
    write({ ...s, subscribes: s.subscribes + 1, key: b64url(options.applicationServerKey), userVisibleOnly: options.userVisibleOnly, held: true });
    return subscription(b64url(options.applicationServerKey));
  };
  PushManager.prototype.getSubscription = async function getSubscription() {
    const s = read();
    return s.held ? subscription(s.key) : null;
  };
  const ask = Notification.requestPermission.bind(Notification);
  Notification.requestPermission = (...args) => {
    const s = read();
    write({ ...s, asks: s.asks + 1 });
    return ask(...args);
  };
}

let browser = null;
const contexts = [];

/** A device of `account` at the login screen; `keys`: its push subscription
 * (stubbed as described above). Its WebSocket frames are recorded. */
async function device(account, name, keys) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: STORY.locale });
  contexts.push(context);
  const d = { account, name, password: `password of ${account}`, context, errors: [], sent: [], got: [] };
  if (keys) {
    d.endpoint = `${standIn.origin}/push/${account}`;
    await context.addInitScript(stubPushManager, {
      endpoint: d.endpoint,
      p256dh: keys.ecdh.getPublicKey().toString('base64url'),
      auth: keys.auth.toString('base64url'),
    });
  }
  const page = await context.newPage();
  d.page = page;
  page.on('pageerror', (err) => d.errors.push(`uncaught: ${err.message}`));
  page.on('console', (msg) => {
    if (/Content Security Policy/i.test(msg.text())) d.errors.push(`csp: ${msg.text()}`);
  });
  page.on('websocket', (ws) => {
    ws.on('framesent', (f) => d.sent.push(JSON.parse(f.payload)));
    ws.on('framereceived', (f) => d.got.push(JSON.parse(f.payload)));
  });
  page.setDefaultTimeout(WAIT);
  await page.goto(`${base}/`);
  return d;
}




async function stubRecord(d) {
  return d.page.evaluate(() => JSON.parse(localStorage.getItem('test.push') || '{"asks":0,"subscribes":0,"held":false}'));
}

/** Makes the stubbed subscribe() fail as when the push service is unreachable. */
async function failSubscribing(d, fail) {
  const record = { ...(await stubRecord(d)), fail };
  await d.page.evaluate((r) => localStorage.setItem('test.push', JSON.stringify(r)), record);
}

/** Waits until the page sent a Visibility frame of `kind` (the first at or
 * after index `from` of its sent frames) and the server acknowledged it;
 * answers that frame's index. */
async function visibilitySent(d, kind, from) {
  const until = Date.now() + WAIT;
  for (;;) {
    const at = d.sent.findIndex((f, i) => i >= from && f.event === 'Visibility' && f.body.kind === kind);
    const answer = at >= 0 && d.got.find((f) => f.clientMsgId === d.sent[at].body.clientMsgId);
    if (answer) {
      assert.notEqual(answer.kind, 'Error', JSON.stringify(answer));
      return at;
    }
    assert.ok(Date.now() < until, `no acknowledged Visibility ${kind} frame: sent ${JSON.stringify(d.sent.slice(from))}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Shows or hides the page. Headless Chromium shows every page, whatever is
 * tried: another page brought to the front (in the same window or not), a
 * minimized window, CDP's focus emulation or web lifecycle states leave
 * `visibilityState` at 'visible'. So the page is told as a browser tells
 * it: its `visibilityState` and `hidden`, and a `visibilitychange` event.
 * Then the frame it sends is awaited.
 */
async function setVisible(d, visible) {
  const from = d.sent.length;
  await d.page.evaluate((v) => {
    Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => (v ? 'visible' : 'hidden') });
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => !v });
    document.dispatchEvent(new Event('visibilitychange'));
  }, visible);
  await visibilitySent(d, visible ? 'Visible' : 'Hidden', from);
}

const bell = (d) => d.page.getByRole('button', { name: ui('push.bell'), exact: true });

async function bellState(d, state) {
  await d.page.locator(`#push-bell[data-state="${state}"]`).waitFor();
}

function chatRow(d, title) {
  return d.page.locator('#chat-list .chat-row', { has: d.page.locator('.chat-title', { hasText: title }) });
}

async function openChat(d, title) {
  await chatRow(d, title).click();
  await d.page.locator('#conv-title', { hasText: title }).waitFor();
}

/** Bob sends `text` to the open chat and waits for its ack; Alice's page
 * then waits until it has the message (her chat list shows it). */
async function bobSays(text) {
  const { bob, alice } = people;
  const input = bob.page.getByRole('textbox', { name: ui('conversation.input') });
  await input.fill(text);
  await input.press('Enter');
  await bob.page.locator('#messages .msg', { hasText: text }).and(bob.page.locator('[data-status="sent"], [data-status="read"]')).waitFor();
  await alice.page.locator('#chat-list .chat-row', { hasText: text }).waitFor();
}

/** The next push at the stand-in, decrypted, with its checks: for Alice's
 * subscription, identified with the server's key, and carrying `text`. */
async function expectPush(text) {
  const push = await standIn.next();
  assert.equal(push.method, 'POST');
  assert.equal(standIn.origin + push.path, people.alice.endpoint);
  const payload = decrypt(push.body, aliceKeys);
  assert.equal(payload.body, text, `the push that came: ${JSON.stringify(payload)}`);
  return { push, payload };
}

async function notifyMenu(d) {
  await d.page.getByRole('button', { name: ui('conversation.notify') }).click();
  const menu = d.page.getByRole('menu', { name: ui('conversation.notify') });
  await menu.waitFor();
  return menu;
}

async function groupLevel(d, gid) {
  const groups = await rest('GET', '/api/group/get', await token(d));
  assert.equal(groups.ok, true, JSON.stringify(groups));
  return groups.data.find((g) => g.id === gid).notify;
}

const people = {};
const aliceKeys = subscriptionKeys();
let serverKey = '';
let gid = 0;
let cdp = null;
let registrationId = null;

describe('rim web client: Web Push', { concurrency: 1 }, () => {
  before(async () => {
    await standIn.start();
    server = await new Server('push').start(
      `[push]\ncontact = "${CONTACT}"\nallowed_hosts = ["127.0.0.1"]\nallow_insecure_http = true\n`,
    );
    base = server.base;
    browser = await chromium.launch({ executablePath: CHROMIUM, args: [`--lang=${LANG}`] });
  });

  after(async () => {
    for (const c of contexts) await c.close().catch(() => {});
    if (browser) await browser.close();
    if (server) await server.stop();
    await standIn.stop();
    for (const d of Object.values(people)) assert.deepEqual(d.errors, [], `${d.account}: errors in the page`);
  });

  test('the bell asks nothing at load; a click asks, and subscribes with the server key', async () => {
    const alice = await device('alice', STORY.alice, aliceKeys);
    const bob = await device('bob', STORY.bob);
    people.alice = alice;
    people.bob = bob;
    for (const d of [alice, bob]) {
      const r = await rest('POST', '/api/user/create', null, { account: d.account, password: d.password, name: d.name });
      assert.equal(r.ok, true, JSON.stringify(r));
      d.uid = r.data;
    }
    await logIn(alice, ui);
    await logIn(bob, ui);
    const asked = await rest('POST', '/api/friend/add', await token(bob), { fid: alice.uid });
    assert.equal(asked.ok, true, JSON.stringify(asked));
    const agreed = await rest('POST', '/api/friend/status/modify', await token(alice), { fid: bob.uid, status: 1 });
    assert.equal(agreed.ok, true, JSON.stringify(agreed));
    const chat = await rest('POST', '/api/group/direct', await token(bob), { uid: alice.uid });
    assert.equal(chat.ok, true, JSON.stringify(chat));
    gid = chat.data;
    for (const d of [bob, alice]) {
      await d.page.reload();
      await online(d);
    }
    // Each login told the server the page is in front of someone.
    await visibilitySent(alice, 'Visible', 0);

    // Nothing asked at load; the bell offers to turn notifications on.
    await bellState(alice, 'off');
    assert.equal(await bell(alice).getAttribute('aria-pressed'), 'false');
    assert.equal(await bell(alice).getAttribute('title'), ui('push.off'));
    assert.equal(await alice.page.evaluate(() => Notification.permission), 'default');
    assert.equal((await stubRecord(alice)).asks, 0, 'permission was asked at load');

    // Where notifications are blocked, the bell says how to allow them.
    const bobCdp = await bob.context.newCDPSession(bob.page);
    const { targetInfo } = await bobCdp.send('Target.getTargetInfo');
    await bobCdp.send('Browser.setPermission', {
      origin: base,
      permission: { name: 'notifications' },
      setting: 'denied',
      browserContextId: targetInfo.browserContextId,
    });
    await bob.page.reload();
    await online(bob);
    await bellState(bob, 'denied');
    assert.equal(await bell(bob).getAttribute('title'), ui('push.denied'));
    await bell(bob).click();
    await bob.page.locator('.toast', { hasText: ui('push.denied') }).waitFor();

    // The service worker's registrations, as DevTools sees them.
    cdp = await alice.context.newCDPSession(alice.page);
    const registrations = new Map();
    const versions = new Map();
    cdp.on('ServiceWorker.workerRegistrationUpdated', (e) => {
      for (const r of e.registrations) registrations.set(r.registrationId, r);
    });
    cdp.on('ServiceWorker.workerVersionUpdated', (e) => {
      for (const v of e.versions) versions.set(v.versionId, v);
    });
    await cdp.send('ServiceWorker.enable');

    // Allowed (as the person would in the prompt), but the push service
    // cannot be reached: said in a toast, the bell stays off.
    await alice.context.grantPermissions(['notifications'], { origin: base });
    await failSubscribing(alice, true);
    await bell(alice).click();
    await alice.page.locator('.toast', { hasText: ui('push.failed', { error: ui('push.serviceUnreachable') }) }).waitFor();
    await bellState(alice, 'off');
    assert.equal((await stubRecord(alice)).asks, 1);

    await failSubscribing(alice, false);
    await bell(alice).click();
    await bellState(alice, 'on');
    await alice.page.locator('.toast', { hasText: ui('push.turnedOn') }).waitFor();
    assert.equal(await bell(alice).getAttribute('aria-pressed'), 'true');
    assert.equal(await bell(alice).getAttribute('title'), ui('push.on'));
    const key = await rest('GET', '/api/push/key');
    serverKey = key.data.key;
    const record = await stubRecord(alice);
    assert.equal(record.asks, 2);
    assert.equal(record.subscribes, 1);
    assert.equal(record.key, serverKey, 'subscribed with the key of GET /api/push/key');
    assert.equal(record.userVisibleOnly, true);

    // /sw.js is registered for the whole site and running.
    const until = Date.now() + WAIT;
    for (;;) {
      const reg = [...registrations.values()].find((r) => !r.isDeleted && r.scopeURL === `${base}/`);
      const active = reg && [...versions.values()].find((v) => v.registrationId === reg.registrationId && v.status === 'activated');
      if (active) {
        registrationId = reg.registrationId;
        assert.match(active.scriptURL, new RegExp(`^${base}/sw\\.js\\?`));
        break;
      }
      assert.ok(Date.now() < until, `no active service worker: ${JSON.stringify([...versions.values()])}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  });

  test('a message to a hidden page is pushed, encrypted and signed, and the service worker shows it', async () => {
    const { alice, bob } = people;
    await openChat(bob, STORY.alice);
    await setVisible(alice, false);
    const [text] = STORY.texts;
    await bobSays(text);
    const { push, payload } = await expectPush(text);

    const history = await rest('POST', '/api/message/history', await token(alice), { gid, page: 1, size: 5 });
    const stored = history.data.find((row) => row.msg.content === text);
    assert.ok(stored, JSON.stringify(history));
    assert.deepEqual(payload, { gid, msgId: stored.msg.id, title: STORY.bob, body: text });
    assert.equal(push.headers['content-encoding'], 'aes128gcm');
    assert.equal(push.headers.urgency, 'high');
    assert.equal(push.headers.topic, `rim-g${gid}`);
    assert.equal(push.headers.ttl, String(24 * 3600));
    checkVapid(push, serverKey);

    // What the push service would hand the browser, to the service worker.
    await cdp.send('ServiceWorker.deliverPushMessage', { origin: base, registrationId, data: JSON.stringify(payload) });
    const shown = async (tag) => {
      const until = Date.now() + WAIT;
      for (;;) {
        const list = await alice.page.evaluate(async () =>
          (await (await navigator.serviceWorker.ready).getNotifications()).map((n) => ({ title: n.title, body: n.body, tag: n.tag, lang: n.lang, data: n.data })),
        );
        const found = list.filter((n) => n.tag === tag);
        if (found.length) return found;
        assert.ok(Date.now() < until, `no notification tagged ${tag}: ${JSON.stringify(list)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    assert.deepEqual(await shown(`rim-g${gid}`), [{ title: STORY.bob, body: text, tag: `rim-g${gid}`, lang: LANG, data: { gid } }]);
    // A click on it opens the conversation in the open page. (Headless
    // Chromium has no notifications to click: the worker is given the
    // click event the browser would give it.)
    assert.notEqual(await alice.page.evaluate(() => location.hash), `#/c/${gid}`);
    const worker = alice.context.serviceWorkers().find((w) => w.url().startsWith(`${base}/sw.js`));
    assert.ok(worker, 'the service worker is known to the context');
    await worker.evaluate(async (tag) => {
      const [n] = await self.registration.getNotifications({ tag });
      self.dispatchEvent(new NotificationEvent('notificationclick', { notification: n }));
    }, `rim-g${gid}`);
    await alice.page.locator('#conv-title', { hasText: STORY.bob }).waitFor();
    assert.equal(await alice.page.evaluate(() => location.hash), `#/c/${gid}`);
    const left = await alice.page.evaluate(async (tag) => (await (await navigator.serviceWorker.ready).getNotifications({ tag })).length, `rim-g${gid}`);
    assert.equal(left, 0, 'the clicked notification is closed');

    // A push that is not rim's JSON still shows something, in the language.
    await cdp.send('ServiceWorker.deliverPushMessage', { origin: base, registrationId, data: 'not json' });
    assert.deepEqual(await shown('rim'), [{ title: 'rim', body: ui('push.newMessage'), tag: 'rim', lang: LANG, data: { gid: 0 } }]);
  });

  test('a page in front of someone is not pushed; hidden again, it is, also after a reconnection', async () => {
    const { alice } = people;
    const [, seen, heard, , , , ] = STORY.texts;
    await setVisible(alice, true);
    await bobSays(seen);
    // The marker: hidden again, the next message is pushed, and is the
    // next push the stand-in got.
    await setVisible(alice, false);
    await bobSays(heard);
    await expectPush(heard);

    // A new connection of a hidden page says so right after its login.
    await alice.context.setOffline(true);
    await alice.page.locator('#conn[data-state="offline"]').waitFor();
    const from = alice.sent.length;
    await alice.context.setOffline(false);
    await online(alice);
    const at = await visibilitySent(alice, 'Hidden', from);
    const login = alice.sent.findIndex((f, i) => i >= from && f.event === 'Login');
    assert.ok(login >= 0 && login < at, 'Visibility follows the new Login');
    assert.ok(!alice.sent.slice(from, at).some((f) => f.event === 'Visibility'), 'no other Visibility came first');
  });

  test('the notification level is chosen in the conversation menu and kept', async () => {
    const { alice } = people;
    const [, , , quiet, loud] = STORY.texts;
    await openChat(alice, STORY.bob);
    let menu = await notifyMenu(alice);
    // A direct chat notifies of every message until told otherwise.
    await menu.getByRole('menuitemradio', { name: ui('conversation.notifyAll'), checked: true }).waitFor();
    assert.equal(await menu.getByRole('menuitemradio', { checked: true }).count(), 1);
    await menu.getByRole('menuitemradio', { name: ui('conversation.notifyNone') }).click();
    await menu.waitFor({ state: 'hidden' });
    await alice.page.locator('#conv-notify-menu [data-level="none"][aria-checked="true"]').waitFor({ state: 'attached' });
    assert.equal(await groupLevel(alice, gid), 'none');

    await alice.page.reload();
    await online(alice);
    await openChat(alice, STORY.bob);
    menu = await notifyMenu(alice);
    await menu.getByRole('menuitemradio', { name: ui('conversation.notifyNone'), checked: true }).waitFor();
    assert.equal(await menu.getByRole('menuitemradio', { checked: true }).count(), 1);
    await alice.page.keyboard.press('Escape');
    await menu.waitFor({ state: 'hidden' });

    // Nothing is pushed now, even to a hidden page; back to all messages, the
    // next one is (the marker).
    await setVisible(alice, false);
    await bobSays(quiet);
    menu = await notifyMenu(alice);
    await menu.getByRole('menuitemradio', { name: ui('conversation.notifyAll') }).click();
    await alice.page.locator('#conv-notify-menu [data-level="all"][aria-checked="true"]').waitFor({ state: 'attached' });
    assert.equal(await groupLevel(alice, gid), 'all');
    await bobSays(loud);
    await expectPush(loud);
  });

  test('the bell turned off ends the subscription, on the server too', async () => {
    const { alice } = people;
    const [, , , , , unheard, again] = STORY.texts;
    await bellState(alice, 'on');
    await bell(alice).click();
    await bellState(alice, 'off');
    await alice.page.locator('.toast', { hasText: ui('push.turnedOff') }).waitFor();
    assert.equal((await stubRecord(alice)).held, false, 'the browser subscription is ended');
    // The server has none left at that endpoint to remove.
    const gone = await rest('POST', '/api/push/unsubscribe', await token(alice), { endpoint: alice.endpoint });
    assert.deepEqual(gone, { ok: true, code: 200, msg: null, data: false });

    await bobSays(unheard);
    // The marker: on again (no new question: permission is granted), the
    // next message is the next push.
    await bell(alice).click();
    await bellState(alice, 'on');
    await bobSays(again);
    await expectPush(again);
    assert.equal(standIn.received.length, standIn.taken, 'no other push came');
    // A reload finds the subscription and shows the bell on.
    await alice.page.reload();
    await online(alice);
    await bellState(alice, 'on');
  });

  test('a new login keeps the device pushed; logging out ends the subscription', async () => {
    const { alice } = people;
    const anew = STORY.texts[7];
    // The session ends elsewhere (the server drops its subscriptions with
    // it); logged in again, the page ties the subscription to the new token.
    const ended = await rest('POST', '/api/user/logout', await token(alice), {});
    assert.equal(ended.ok, true, JSON.stringify(ended));
    await alice.page.getByText(ui('app.sessionEnded')).waitFor();
    await logIn(alice, ui);
    await bellState(alice, 'on');
    await setVisible(alice, false);
    await bobSays(anew);
    await expectPush(anew);

    // Logging out here ends the browser's subscription: whoever logs in
    // next on this browser starts with the bell off.
    await alice.page.getByRole('button', { name: ui('shell.logOut') }).click();
    await alice.page.locator('#login-view').waitFor();
    assert.equal((await stubRecord(alice)).held, false, 'the browser subscription is ended');
    await logIn(alice, ui);
    await bellState(alice, 'off');
    const gone = await rest('POST', '/api/push/unsubscribe', await token(alice), { endpoint: alice.endpoint });
    assert.equal(gone.data, false, 'the server holds no subscription at that endpoint');
  });
});
