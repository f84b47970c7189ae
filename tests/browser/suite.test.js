// End-to-end tests of rim's built-in web client, in a real browser.
//
// Starts `rim serve` (the binary from RIM_BIN, default target/debug/rim; this
// script builds nothing) on a loopback port chosen by the OS, with a fresh
// database in a temporary directory, and drives Debian's Chromium headless
// through playwright-core. People are separate browser contexts (separate
// storage, like separate devices). The tests form one story and run in
// order: each builds on the state the previous one left.
//
// The story runs in one language, RIM_LANG: `en` (the default) or `zh-CN`.
// Chromium starts with --lang set to it and each context's locale is its
// locale, so the app chooses that language by itself; the people, their
// names and what they write are of that language too, and their browsers'
// clocks are in a time zone far from UTC. `npm test` runs the story once in
// each language. The app's words are looked up in its own dictionaries
// (`ui(key)`, web/js/i18n/), and what each language must look like is
// asserted with literal texts (`EXPECTED`).
//
// Screenshots of the main screens, at desktop (1280x800) and phone (390x844)
// sizes, are written to docs/screenshots/ (RIM_SCREENSHOTS overrides), those
// of the Chinese run under zh-CN/.
//
// Run: cargo build && (cd tests/browser && npm ci && npm test)

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import zlib from 'node:zlib';
import { chromium } from 'playwright-core';

import { translator } from '../../web/js/i18n.js';
import { Server, online, repo, token, uiPattern } from './rim.js';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const LANG = process.env.RIM_LANG || 'en';

/** Per language: the browser's locale and time zone, and literal texts the
 * app must show (independent of its dictionaries). */
const BROWSER = {
  en: { locale: 'en-US', timezoneId: 'America/Los_Angeles', clock: /^\d{1,2}:\d{2}\s[AP]M$/ },
  'zh-CN': { locale: 'zh-CN', timezoneId: 'Asia/Shanghai', clock: /^\d{2}:\d{2}$/ },
}[LANG];
assert.ok(BROWSER, `RIM_LANG must be en or zh-CN, not ${LANG}`);

const LITERAL = {
  en: { logIn: 'Log in', tabs: ['Chats', 'Friends'], days: ['Yesterday', 'Today'], threeMembers: '3 members', twoMembers: '2 members', readByTwo: 'Read by 2' },
  'zh-CN': { logIn: '登录', tabs: ['聊天', '好友'], days: ['昨天', '今天'], threeMembers: '3 位成员', twoMembers: '2 位成员', readByTwo: '2 人已读' },
};
const EXPECTED = LITERAL[LANG];

/** The other language, for switching to and back. */
const OTHER = LANG === 'en' ? 'zh-CN' : 'en';

/** The app's own text of `key` in the language of this run. */
const ui = translator(LANG);

/** What the people of each language are called and write. */
const STORY = {
  en: {
    alice: 'Alice Archer',
    bob: 'Bob Baker',
    carol: 'Carol Chen',
    dan: 'Dan Dorsey',
    saturday: 'Hi Bob! Are you coming on Saturday?',
    searchSaturday: 'saturday',
    markSaturday: 'Saturday',
    resultSaturday: 'Are you coming on',
    cake: 'Yes! I will bring the cake 🎂',
    answer: 'Chocolate, please',
    answerFixed: 'Chocolate or lemon, please',
    oops: 'Sent to the wrong chat, sorry',
    markup: '<b>bold?</b> <img src=x onerror="window.pwned=1"> map: https://example.org/park?x=1&y=2. not a link: javascript:alert(1)',
    markupProbe: 'map: https://example.org/park',
    searchMarkup: 'bold map',
    markupHits: ['bold', 'map'],
    numbered: (i) => `Numbered message ${String(i).padStart(2, '0')}`,
    numberedPrefix: 'Numbered message',
    offline: (n) => `Sent while you were offline (${n})`,
    offlinePrefix: 'Sent while you were offline',
    through: 'Did this get through?',
    photo: 'beach.png',
    pasted: 'pasted.png',
    list: 'packing list.html',
    searchList: 'packing',
    group: 'Saturday picnic',
    welcome: 'Welcome to the picnic group!',
    blanket: 'I can bring a blanket and lemonade',
    noon: 'Great, see you both at noon',
    laptop: 'Writing from my laptop',
  },
  'zh-CN': {
    alice: '王芳',
    bob: '李明',
    carol: '陈静',
    dan: '赵磊',
    saturday: '李明，周六你来吗？',
    searchSaturday: '周六',
    markSaturday: '周六',
    resultSaturday: '你来吗',
    cake: '来！我带蛋糕 🎂',
    answer: '要巧克力的',
    answerFixed: '巧克力或柠檬的都行',
    oops: '发错了，抱歉',
    // A link right before Chinese punctuation, with no space between them.
    markup: '<b>加粗？</b> <img src=x onerror="window.pwned=1"> 地图：https://example.org/park?x=1&y=2。不是链接：javascript:alert(1)',
    markupProbe: '地图：https://example.org/park',
    searchMarkup: '加粗 地图',
    markupHits: ['加粗', '地图'],
    numbered: (i) => `编号消息 ${String(i).padStart(2, '0')}`,
    numberedPrefix: '编号消息',
    offline: (n) => `你离线时发的消息（${n}）`,
    offlinePrefix: '你离线时发的消息',
    through: '这条发出去了吗？',
    photo: '海边.png',
    pasted: '粘贴的图片.png',
    list: '行李清单.html',
    searchList: '行李',
    group: '周六野餐',
    welcome: '欢迎加入野餐群！',
    blanket: '我带野餐垫和柠檬水',
    noon: '太好了，中午见',
    laptop: '我在笔记本电脑上发的',
  },
}[LANG];


const S = STORY;

const SHOTS = path.resolve(repo, process.env.RIM_SCREENSHOTS || 'docs/screenshots', LANG === 'en' ? '' : LANG);

const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
/** How long something that should happen may take to show up. */
const WAIT = 10_000;
/** The client's send timeout (SEND_TIMEOUT_MS in web/js/state.js) plus slack. */
const SEND_FAILS_WITHIN = 16_000;

// ---- the server --------------------------------------------------------------

/** The `rim serve` children (rim.js) the story started; `base` is the first's. */
const servers = [];
let base = '';

async function startServer(config) {
  const server = await new Server(`server-${servers.length + 1}`).start(config);
  servers.push(server);
  return server;
}

/** Calls the REST API of the first server directly (for what a test
 * arranges outside the UI). */
function rest(method, route, token, body) {
  return servers[0].rest(method, route, token, body);
}

/** A real PNG, encoded here: a beach at sunset (sky, sun, sea, sand). */
function pngImage(width, height) {
  const chunk = (type, data) => {
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(zlib.crc32(body) >>> 0);
    return Buffer.concat([len, body, crc]);
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bits per channel
  header[9] = 2; // RGB
  const rows = [];
  const mix = (a, b, t) => a.map((v, i) => Math.round(v + (b[i] - v) * t));
  for (let y = 0; y < height; y++) {
    const row = Buffer.alloc(1 + width * 3); // filter byte 0, then pixels
    for (let x = 0; x < width; x++) {
      const t = y / height;
      let px;
      if (Math.hypot(x - width * 0.68, y - height * 0.5) < height * 0.13) px = [255, 214, 120];
      else if (t < 0.58) px = mix([62, 92, 196], [255, 158, 118], t / 0.58);
      else if (t < 0.8) px = mix([34, 102, 160], [52, 150, 186], (t - 0.58) / 0.22);
      else px = [236, 208, 150];
      row.set(px, 1 + x * 3);
    }
    rows.push(row);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', zlib.deflateSync(Buffer.concat(rows))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

// ---- the browser and its people ------------------------------------------------

let browser = null;
const people = {};

/** A person with their own browser context (a device) and page. */
async function person(account, name, viewport, at = base) {
  const context = await browser.newContext({ viewport, locale: BROWSER.locale, timezoneId: BROWSER.timezoneId });
  const page = await context.newPage();
  const p = { account, name, password: `password of ${account}`, context, page, errors: [], logins: [] };
  page.on('pageerror', (err) => p.errors.push(`uncaught: ${err.message}`));
  // The bodies of the Login frames the app sends, as sent.
  page.on('websocket', (ws) =>
    ws.on('framesent', ({ payload }) => {
      try {
        const frame = JSON.parse(payload);
        if (frame.event === 'Login') p.logins.push(frame.body);
      } catch {
        // Not JSON: not the app's.
      }
    }),
  );
  page.on('console', (msg) => {
    // A Content-Security-Policy violation means the app does something its
    // own policy forbids: a bug either way.
    if (/Content Security Policy/i.test(msg.text())) p.errors.push(`csp: ${msg.text()}`);
  });
  page.setDefaultTimeout(WAIT);
  await page.goto(at.includes('/?') ? at : `${at}/`);
  people[account] = p;
  return p;
}

async function register(p) {
  const { page } = p;
  await page.getByRole('tab', { name: ui('login.register') }).click();
  await page.getByRole('textbox', { name: ui('login.account') }).fill(p.account);
  await page.getByLabel(ui('login.name')).fill(p.name);
  await page.getByLabel(ui('login.password'), { exact: true }).fill(p.password);
  await page.getByRole('button', { name: ui('login.register'), exact: true }).click();
  await online(p);
}



async function shot(p, name) {
  await mkdir(SHOTS, { recursive: true });
  // Let the last pushes and transitions settle.
  await p.page.waitForTimeout(300);
  // Passing notifications ("Bob accepted your friend request") would cover
  // part of the screen; the pictures show the screens themselves. (Not with
  // screenshot's `style` option: an injected style breaks the page's CSP.)
  await p.page.evaluate(() => document.querySelectorAll('.toast').forEach((t) => t.remove()));
  await p.page.screenshot({ path: path.join(SHOTS, `${name}.png`) });
}

function message(p, text) {
  return p.page.locator('#messages .msg', { hasText: text });
}

async function send(p, text) {
  const input = p.page.getByRole('textbox', { name: ui('conversation.input') });
  await input.fill(text);
  await input.press('Enter');
}

async function sendAndConfirm(p, text) {
  await send(p, text);
  await message(p, text).and(p.page.locator('[data-status="sent"], [data-status="read"]')).waitFor();
}

function chatRow(p, title) {
  return p.page.locator('#chat-list .chat-row', { has: p.page.locator('.chat-title', { hasText: title }) });
}

async function openChat(p, title) {
  await chatRow(p, title).click();
  await p.page.locator('#conv-title', { hasText: title }).waitFor();
}

async function friendsTab(p) {
  await p.page.getByRole('tab', { name: new RegExp(`^${ui('shell.friends')}`) }).click();
}

async function chatsTab(p) {
  await p.page.getByRole('tab', { name: new RegExp(`^${ui('shell.chats')}`) }).click();
}

/** `from` asks `to` through the search box; `to` accepts from the requests list. */
async function befriend(from, to) {
  await friendsTab(from);
  await from.page.getByLabel(ui('friends.findLabel')).fill(to.account);
  await from.page.getByRole('button', { name: ui('friends.find'), exact: true }).click();
  await from.page.getByRole('button', { name: ui('friends.addName', { name: to.name }) }).click();
  await from.page.locator('.friends-section', { hasText: ui('friends.sentRequests') }).locator('.person-name', { hasText: to.name }).waitFor();
  // The request arrives live: a badge on the Friends tab, then Accept.
  await to.page.locator('#friends-badge:not([hidden])', { hasText: '1' }).waitFor();
  await friendsTab(to);
  await to.page.getByRole('button', { name: ui('friends.acceptName', { name: from.name }) }).click();
  // And the acceptance reaches the asker live too.
  await friendList(from).getByRole('button', { name: ui('friends.messageName', { name: to.name }) }).waitFor();
}

/** Visible buttons, inputs and links without an accessible name. */
async function unnamedControls(p) {
  return p.page.evaluate(() => {
    const named = (el) =>
      (el.getAttribute('aria-label') || '').trim() ||
      (el.labels && [...el.labels].map((l) => l.textContent).join('').trim()) ||
      (el.getAttribute('aria-labelledby') && document.getElementById(el.getAttribute('aria-labelledby'))?.textContent.trim()) ||
      (el.tagName !== 'INPUT' && el.tagName !== 'TEXTAREA' && el.textContent.trim());
    return [...document.querySelectorAll('button, input, textarea, a[href], [role="tab"]')]
      .filter((el) => el.getClientRects().length > 0 && !named(el))
      .map((el) => el.outerHTML.slice(0, 120));
  });
}

/**
 * Visible words of another language: in the English run any Chinese
 * character, in the Chinese run any Latin word, in the page's text and in
 * the labels people and screen readers read (aria-label, title,
 * placeholder, alt). What is Latin by nature is left out: links, markup,
 * accounts, file extensions, sizes. The language pickers
 * name each language in itself and are left out too.
 */
async function foreignWords(p) {
  const texts = await p.page.evaluate(() => {
    const out = [];
    const visible = (el) => el.getClientRects().length > 0;
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      const el = n.parentElement;
      if (!el || el.closest('option, noscript, script, style') || !visible(el)) continue;
      if (n.textContent.trim()) out.push(n.textContent.trim());
    }
    for (const el of document.body.querySelectorAll('[aria-label], [title], [placeholder], [alt]')) {
      if (!visible(el)) continue;
      for (const name of ['aria-label', 'title', 'placeholder', 'alt']) if (el.getAttribute(name)) out.push(el.getAttribute(name));
    }
    return out;
  });
  if (LANG === 'en') return texts.filter((text) => /\p{Script=Han}/u.test(text));
  // (xiaoming: the example account in the friends search box; accounts are
  // Latin letters and digits by rule.)
  const latin = /https?:\/\/\S+|<[^>]*>|javascript:\S*|@[\w.-]+|\.(png|html)\b|\b(rim|KB|MB|HTTP|xiaoming)\b/g;
  return texts.filter((text) => /[A-Za-z]{2,}/.test(text.replace(latin, '')));
}

/** Hours and minutes of a clock label, on a 24-hour clock: "2:05 PM" -> "14:05". */
function clock24(label) {
  const m = /^(\d{1,2}):(\d{2})(?:\s([AP])M)?$/.exec(label);
  assert.ok(m, `not a clock: ${label}`);
  let hour = Number(m[1]) % (m[3] ? 12 : 24);
  if (m[3] === 'P') hour += 12;
  return `${String(hour).padStart(2, '0')}:${m[2]}`;
}

/**
 * The time shown on message `text`: written as the language writes clock
 * times, and the moment it was sent (within a minute of `sentAt`) on the
 * clock of the browser's time zone, so that a time read in the wrong zone
 * (hours off) fails.
 */
async function assertTimeShown(p, text, sentAt) {
  const time = message(p, text).locator('.meta time');
  const label = (await time.textContent()).trim();
  const at = Date.parse(await time.getAttribute('datetime'));
  assert.match(label, BROWSER.clock, `the time of “${text}”`);
  assert.ok(Math.abs(at - sentAt) < 60_000, `“${text}” shown as sent at ${new Date(at).toISOString()}, sent at ${new Date(sentAt).toISOString()}`);
  const zone = new Intl.DateTimeFormat('en-GB', { hour: '2-digit', minute: '2-digit', hourCycle: 'h23', timeZone: BROWSER.timezoneId });
  assert.equal(clock24(label), zone.format(at), `“${text}” on the clock of ${BROWSER.timezoneId}`);
}

function friendList(p) {
  return p.page.getByRole('region', { name: ui('friends.friends'), exact: true });
}

async function until(what, fn, timeout = WAIT) {
  const end = Date.now() + timeout;
  let last;
  while (Date.now() < end) {
    last = await fn();
    if (last) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
}

// ---- the story -----------------------------------------------------------------

before(async () => {
  base = (await startServer()).base;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      `--lang=${LANG}`,
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
});

after(async () => {
  if (browser) await browser.close();
  await Promise.all(servers.map((s) => s.stop()));
});

describe('rim web client', { concurrency: 1 }, () => {
  after(() => {
    for (const p of Object.values(people)) assert.deepEqual(p.errors, [], `${p.account}'s page had errors`);
  });

  test('the app is served from / with its security headers', async () => {
    const res = await fetch(base + '/');
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'text/html; charset=utf-8');
    assert.match(res.headers.get('content-security-policy'), /default-src 'none'; script-src 'self'/);
    const etag = res.headers.get('etag');
    const again = await fetch(base + '/', { headers: { 'If-None-Match': etag } });
    assert.equal(again.status, 304);
  });

  test('the app speaks the browser’s language, can be switched on the login screen, and remembers', async () => {
    const visitor = await person('visitor', S.alice, PHONE);
    const { page } = visitor;
    const submit = page.locator('#login-submit');
    await submit.waitFor();
    assert.equal(await page.evaluate(() => document.documentElement.lang), LANG);
    assert.equal(await submit.textContent(), EXPECTED.logIn);
    assert.equal(await page.locator('#login-language').inputValue(), LANG);
    assert.deepEqual(await foreignWords(visitor), [], 'words of another language on the login screen');
    assert.deepEqual(await unnamedControls(visitor), [], 'controls without a name on the login screen');
    // A message the client writes itself follows the switch too.
    await submit.click();
    await page.getByRole('alert').getByText(ui('login.accountTooShort')).waitFor();
    await page.locator('#login-language').selectOption(OTHER);
    assert.equal(await page.evaluate(() => document.documentElement.lang), OTHER);
    assert.equal(await submit.textContent(), LITERAL[OTHER].logIn);
    await page.getByRole('alert').getByText(translator(OTHER)('login.accountTooShort')).waitFor();
    // Remembered across a reload, whatever the browser asks for.
    await page.reload();
    await submit.waitFor();
    assert.equal(await submit.textContent(), LITERAL[OTHER].logIn);
    assert.equal(await page.evaluate(() => localStorage.getItem('rim.lang')), OTHER);
    await page.locator('#login-language').selectOption(LANG);
    assert.equal(await submit.textContent(), EXPECTED.logIn);
    assert.equal(await page.evaluate(() => document.documentElement.lang), LANG);
    await visitor.context.close();
  });

  test('two people register and become friends', async () => {
    const alice = await person('alice', S.alice, DESKTOP);
    await alice.page.getByRole('button', { name: ui('login.logIn'), exact: true }).waitFor();
    await shot(alice, 'desktop-login');
    await register(alice);
    const bob = await person('bob', S.bob, DESKTOP);
    await register(bob);
    await befriend(alice, bob);
    await shot(bob, 'desktop-friends');
    assert.deepEqual(await unnamedControls(bob), [], 'controls without a name in the friends tab');
    assert.deepEqual(await foreignWords(bob), [], 'words of another language in the friends tab');
    assert.deepEqual(
      await bob.page.locator('.tabs [role="tab"] > span:first-child').allTextContents(),
      EXPECTED.tabs,
    );
    // A friend's Message button opens the direct chat.
    await friendList(alice).getByRole('button', { name: ui('friends.messageName', { name: S.bob }) }).click();
    await alice.page.locator('#conv-title', { hasText: S.bob }).waitFor();
    assert.match(alice.page.url(), /#\/c\/\d+$/);
    await alice.page.getByText(ui('conversation.directStart', { name: S.bob })).waitFor();
  });

  test('they chat both ways live, with unread counts and read receipts', async () => {
    const { alice, bob } = people;
    const sentAt = Date.now();
    await sendAndConfirm(alice, S.saturday);
    // Bob is not looking at the conversation: it appears in his list, unread.
    await chatsTab(bob);
    const row = chatRow(bob, S.alice);
    await row.locator('.badge', { hasText: '1' }).waitFor();
    await row.locator('.chat-last', { hasText: S.saturday }).waitFor();
    assert.equal(await bob.page.title(), '(1) rim');
    await openChat(bob, S.alice);
    await message(bob, S.saturday).waitFor();
    // Pushed to Bob: shown at the time it was sent, on his clock.
    await assertTimeShown(bob, S.saturday, sentAt);
    await row.locator('.badge').waitFor({ state: 'detached' });
    // Bob saw it, so Alice sees it read.
    await message(alice, S.saturday).and(alice.page.locator('[data-status="read"]')).waitFor();
    await sendAndConfirm(bob, S.cake);
    await message(alice, S.cake).waitFor();
    await message(bob, S.cake).and(bob.page.locator('[data-status="read"]')).waitFor();
  });

  test('they reply with a quote, edit with the Up key, react, delete, and see typing and presence', async () => {
    const { alice, bob } = people;
    // Alice sees Bob online in their direct chat.
    await alice.page.locator('#conv-sub.online', { hasText: ui('conversation.online') }).waitFor();
    // Bob answers Alice's question with a quote of it.
    const question = message(bob, S.saturday);
    await question.hover();
    await question.getByRole('button', { name: ui('conversation.reply') }).click();
    await bob.page.locator('.composer-pending', { hasText: ui('conversation.replyingTo', { name: S.alice }) }).waitFor();
    // While he types, Alice sees it under the header.
    await bob.page.getByRole('textbox', { name: ui('conversation.input') }).fill(S.answer);
    await bob.page.getByRole('textbox', { name: ui('conversation.input') }).press('Space');
    await alice.page.locator('#conv-sub.typing', { hasText: ui('conversation.typing', { name: S.bob }) }).waitFor();
    await bob.page.getByRole('textbox', { name: ui('conversation.input') }).press('Enter');
    const reply = message(alice, S.answer);
    await reply.locator('.quote', { hasText: S.saturday }).waitFor();
    // A click on the quote jumps to the message it quotes.
    await reply.locator('.quote').click();
    await message(alice, S.saturday).and(alice.page.locator('.flash')).waitFor();

    // Bob corrects his answer: Up in the empty composer edits it.
    const input = bob.page.getByRole('textbox', { name: ui('conversation.input') });
    await until('the reply to be stored', async () => (await message(bob, S.answer).getAttribute('data-status')) !== 'pending');
    await input.press('ArrowUp');
    await bob.page.locator('.composer-pending', { hasText: ui('conversation.editing') }).waitFor();
    await input.fill(S.answerFixed);
    await input.press('Enter');
    const fixed = message(alice, S.answerFixed);
    await fixed.locator('.edited', { hasText: ui('conversation.edited') }).waitFor();
    assert.equal(await message(alice, S.answer).and(alice.page.locator(':not(:has-text("' + S.answerFixed + '"))')).count(), 0);

    // Alice reacts; Bob sees the chip; his click adds his own.
    await fixed.hover();
    await fixed.getByRole('button', { name: ui('conversation.react') }).click();
    await fixed.locator('.pick[data-emoji="👍"]').click();
    const chip = message(bob, S.answerFixed).locator('.chip[data-emoji="👍"]');
    await chip.filter({ hasText: '👍 1' }).waitFor();
    await chip.click();
    await fixed.locator('.chip[data-emoji="👍"]', { hasText: '👍 2' }).waitFor();

    // Typing @ offers the members: Tab completes Bob's account.
    const aliceInput = alice.page.getByRole('textbox', { name: ui('conversation.input') });
    await aliceInput.pressSequentially(`@${bob.account.slice(0, 2)}`);
    await alice.page.locator(`.mention-choice[data-account="${bob.account}"]`).waitFor();
    await aliceInput.press('Tab');
    assert.equal(await aliceInput.inputValue(), `@${bob.account} `);
    await aliceInput.fill('');

    // Alice sends something by mistake and deletes it, after confirming.
    await sendAndConfirm(alice, S.oops);
    // Once Bob has read it, its bubble stays as it is while Alice acts on it.
    await message(alice, S.oops).and(alice.page.locator('[data-status="read"]')).waitFor();
    alice.page.once('dialog', (d) => d.accept());
    const oops = message(alice, S.oops);
    await oops.hover();
    await oops.getByRole('button', { name: ui('conversation.delete') }).click();
    await bob.page.locator('#messages .msg .tombstone', { hasText: ui('conversation.deleted') }).waitFor();
    await message(bob, S.oops).waitFor({ state: 'detached' });
  });

  test('messages are text: markup stays text and only http(s) links are links', async () => {
    const { alice, bob } = people;
    const text = S.markup;
    await sendAndConfirm(alice, text);
    const shown = message(bob, S.markupProbe);
    await shown.waitFor();
    assert.equal(await shown.locator('.text').textContent(), text);
    assert.equal(await bob.page.locator('#messages b, #messages img').count(), 0);
    const links = shown.locator('a');
    assert.equal(await links.count(), 1);
    assert.equal(await links.getAttribute('href'), 'https://example.org/park?x=1&y=2');
    assert.equal(await links.getAttribute('rel'), 'noopener noreferrer nofollow');
    assert.equal(await links.getAttribute('target'), '_blank');
    assert.equal(await bob.page.evaluate(() => window.pwned), undefined);
    await shot(alice, 'desktop-chat');
    assert.deepEqual(await foreignWords(alice), [], 'words of another language in a conversation');
  });

  test('a reload keeps the session and shows the history, with scrollback', async () => {
    const { alice, bob } = people;
    // Forty numbered messages from Alice, sent through the public WebSocket
    // API from her browser, so that the history spans more than one page.
    const gid = Number(/#\/c\/(\d+)$/.exec(alice.page.url())[1]);
    await alice.page.evaluate(
      async ({ gid, contents }) => {
        const ws = new WebSocket(`ws://${location.host}/ws`);
        await new Promise((resolve, reject) => {
          ws.onopen = resolve;
          ws.onerror = reject;
        });
        const answers = [];
        ws.onmessage = (ev) => {
          const frame = JSON.parse(ev.data);
          if (!frame.event) answers.push(frame);
        };
        const ask = async (event, body) => {
          const before = answers.length;
          ws.send(JSON.stringify({ event, body }));
          while (answers.length === before) await new Promise((r) => setTimeout(r, 5));
          const answer = answers[answers.length - 1];
          if (answer.kind !== 'Ack') throw new Error(JSON.stringify(answer));
        };
        await ask('Login', { content: localStorage.getItem('rim.token'), clientMsgId: 'seed-login' });
        for (const [i, content] of contents.entries()) {
          await ask('Msg', { kind: 'Text', gid, content, clientMsgId: `seed-${i + 1}` });
        }
        ws.close();
      },
      { gid, contents: Array.from({ length: 40 }, (_, i) => S.numbered(i + 1)) },
    );
    const seededAt = Date.now();
    await message(bob, S.numbered(40)).waitFor();
    await bob.page.reload();
    await online(bob);
    // Still logged in, and back in the conversation the URL names.
    assert.equal(await bob.page.locator('#login-view').isHidden(), true);
    await bob.page.locator('#conv-title', { hasText: S.alice }).waitFor();
    await message(bob, S.numbered(40)).waitFor();
    await bob.page.locator('.day', { hasText: EXPECTED.days[1] }).first().waitFor();
    // Read from the history this time (REST), at the same right time.
    await assertTimeShown(bob, S.numbered(40), seededAt);
    // The first page is the newest 30 messages: the start is further back.
    assert.equal(await message(bob, S.saturday).count(), 0);
    await until('the beginning of the conversation', async () => {
      await bob.page.locator('#messages').evaluate((el) => {
        el.scrollTop = 0;
      });
      // Its text once (a reply quotes it too, in a quote rather than a text).
      return (await bob.page.locator('#messages .msg .text', { hasText: S.saturday }).count()) === 1;
    });
    await bob.page.getByText(ui('conversation.beginning')).waitFor();
    // Every message exactly once, in order.
    const texts = await bob.page.locator('#messages .msg .text').allTextContents();
    const numbered = texts.filter((t) => t.startsWith(S.numberedPrefix));
    assert.deepEqual(numbered, Array.from({ length: 40 }, (_, i) => S.numbered(i + 1)));
    // And the answer, edited, and the tombstone of the deleted one.
    assert.equal(texts.length, 45);
  });

  test('an offline device receives what it missed after reconnecting', async () => {
    const { alice, bob } = people;
    await bob.context.setOffline(true);
    await bob.page.locator('#conn[data-state="offline"]').waitFor();
    await bob.page.locator('#conn-banner:not([hidden])').waitFor();
    await sendAndConfirm(alice, S.offline(1));
    await sendAndConfirm(alice, S.offline(2));
    await bob.page.waitForTimeout(500);
    assert.equal(await message(bob, S.offlinePrefix).count(), 0, 'an offline page received messages');
    const loginsBefore = bob.logins.length;
    await bob.context.setOffline(false);
    await online(bob);
    await message(bob, S.offline(2)).waitFor();
    // It logged in again opting into the replay, from its resume cursor.
    const login = bob.logins.at(-1);
    assert.ok(bob.logins.length > loginsBefore, 'no new Login frame');
    assert.equal(login.replay, true, JSON.stringify(login));
    assert.ok(Number.isSafeInteger(login.msgId) && login.msgId > 0, JSON.stringify(login));
    const texts = await bob.page.locator('#messages .msg .text').allTextContents();
    assert.deepEqual(texts.slice(-2), [S.offline(1), S.offline(2)]);
    await bob.page.locator('#conn-banner').waitFor({ state: 'hidden' });
  });

  test('a message without an ack shows as failed and can be retried', async () => {
    const { alice, bob } = people;
    await alice.context.setOffline(true);
    await alice.page.locator('#conn[data-state="offline"]').waitFor();
    await send(alice, S.through);
    const bubble = message(alice, S.through);
    await bubble.and(alice.page.locator('[data-status="pending"]')).waitFor();
    await bubble.and(alice.page.locator('[data-status="failed"]')).waitFor({ timeout: SEND_FAILS_WITHIN });
    await alice.context.setOffline(false);
    await online(alice);
    await bubble.getByRole('button', { name: ui('conversation.retry') }).click();
    await bubble.and(alice.page.locator('[data-status="sent"], [data-status="read"]')).waitFor();
    await message(bob, S.through).waitFor();
    assert.equal(await message(bob, S.through).count(), 1);
  });

  test('a photo is picked, uploaded and shown inline, full size on a click; other files download', async () => {
    const { alice, bob } = people;
    const photo = pngImage(480, 320);
    await alice.page.locator('#composer-file').setInputFiles({ name: S.photo, mimeType: 'image/png', buffer: photo });
    const mine = alice.page.locator('#messages .msg.mine', { has: alice.page.locator(`img.photo[alt="${S.photo}"]`) });
    await mine.and(alice.page.locator('[data-status="sent"], [data-status="read"]')).waitFor();
    // Bob's page fetches it with his token and shows it from a blob: URL.
    const theirs = bob.page.locator(`#messages .msg.theirs img.photo[alt="${S.photo}"]`);
    await theirs.waitFor();
    await until('the picture to load', () => theirs.evaluate((img) => img.complete && img.naturalWidth === 480));
    assert.match(await theirs.getAttribute('src'), /^blob:/);
    await chatRow(alice, S.bob).locator('.chat-last', { hasText: ui('chats.lastMine', { text: ui('chats.photo') }) }).waitFor();
    // A click shows it full size.
    await bob.page.getByRole('button', { name: ui('conversation.openPicture', { name: S.photo }) }).click();
    const dialog = bob.page.locator('#photo-dialog[open]');
    await until('the full-size picture', () =>
      dialog.locator('img.photo-full').evaluate((img) => img.complete && img.naturalWidth === 480 && img.naturalHeight === 320),
    );
    await shot(bob, 'desktop-photo');
    assert.deepEqual(await unnamedControls(bob), [], 'controls without a name around the photo');
    await dialog.getByRole('button', { name: ui('conversation.close') }).click();
    await dialog.waitFor({ state: 'detached' });
    // A picture pasted into the message field goes the same way.
    await alice.page.getByRole('textbox', { name: ui('conversation.input') }).evaluate((input, { bytes, name }) => {
      const data = new DataTransfer();
      data.items.add(new File([new Uint8Array(bytes)], name, { type: 'image/png' }));
      input.dispatchEvent(new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true }));
    }, { bytes: [...pngImage(64, 48)], name: S.pasted });
    const pasted = bob.page.locator(`#messages img.photo[alt="${S.pasted}"]`);
    await until('the pasted picture', () => pasted.evaluate((img) => img.complete && img.naturalWidth === 64).catch(() => false));
    // Anything else is a download, with its name and its bytes intact.
    const list = 'towels\nsunscreen\n<script>alert(1)</script>\n';
    await alice.page.locator('#composer-file').setInputFiles({ name: S.list, mimeType: 'text/html', buffer: Buffer.from(list) });
    const link = bob.page.getByRole('button', { name: uiPattern(ui, 'conversation.downloadFile', { name: S.list }) });
    await link.waitFor();
    const [download] = await Promise.all([bob.page.waitForEvent('download'), link.click()]);
    assert.equal(download.suggestedFilename(), S.list);
    assert.equal(await readFile(await download.path(), 'utf8'), list);
    // Served to others only as a download: never a page of this origin.
    const gid = Number(/#\/c\/(\d+)$/.exec(bob.page.url())[1]);
    const rows = await bob.page.evaluate(async (gid) => {
      const res = await fetch('/api/message/history', {
        method: 'POST',
        headers: { Authorization: `Bearer ${localStorage.getItem('rim.token')}` },
        body: JSON.stringify({ gid, page: 1, size: 5 }),
      });
      return (await res.json()).data;
    }, gid);
    const file = JSON.parse(rows.at(-1).msg.content);
    assert.equal(file.contentType, 'text/html');
    const res = await fetch(`${base}/api/file/${file.fileId}`, { headers: { Authorization: `Bearer ${await token(bob)}` } });
    assert.match(res.headers.get('content-disposition'), /^attachment;/);
    assert.match(res.headers.get('content-security-policy'), /sandbox/);
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(await bob.page.evaluate(() => window.pwned), undefined);
  });

  test('search finds messages in every conversation, hits marked, markup as text', async () => {
    const { bob } = people;
    const box = bob.page.getByRole('searchbox', { name: ui('chats.search') });
    await box.fill(S.searchSaturday);
    await box.press('Enter');
    const result = bob.page.locator('#search-results .chat-row', { hasText: S.resultSaturday });
    await result.waitFor();
    assert.equal(await result.locator('mark').textContent(), S.markSaturday);
    assert.equal(await bob.page.locator('#chat-list').isHidden(), true);
    await shot(bob, 'desktop-search');
    assert.deepEqual(await foreignWords(bob), [], 'words of another language in search results');
    // A message with markup in it: its snippet shows the markup as text.
    await box.fill(S.searchMarkup);
    await box.press('Enter');
    const markup = bob.page.locator('#search-results .snippet', { hasText: '<img src=x onerror=' });
    await markup.waitFor();
    assert.deepEqual(await markup.locator('mark').allTextContents(), S.markupHits);
    assert.equal(await bob.page.locator('#search-results b, #search-results img').count(), 0);
    // File messages are found by their names.
    await box.fill(S.searchList);
    await box.press('Enter');
    await bob.page.locator('#search-results .snippet mark', { hasText: S.searchList }).waitFor();
    // A result opens its conversation; clearing the box brings the list back.
    await bob.page.locator('#search-results .chat-row').first().click();
    await bob.page.locator('#conv-title', { hasText: S.alice }).waitFor();
    await box.fill('');
    await box.press('Escape');
    await bob.page.locator('#chat-list').waitFor();
    assert.equal(await bob.page.locator('#search-results').isHidden(), true);
  });

  test('a group of three exchanges messages', async () => {
    const { alice, bob } = people;
    const carol = await person('carol', S.carol, PHONE);
    await carol.page.getByRole('button', { name: ui('login.logIn'), exact: true }).waitFor();
    await shot(carol, 'phone-login');
    await register(carol);
    await befriend(carol, alice);
    // Alice creates the group with both friends.
    await chatsTab(alice);
    await alice.page.getByRole('button', { name: ui('chats.newGroup') }).click();
    const dialog = alice.page.getByRole('dialog', { name: ui('groups.title') });
    await dialog.getByLabel(ui('groups.name')).fill(S.group);
    await dialog.getByLabel(new RegExp(S.bob)).check();
    await dialog.getByLabel(new RegExp(S.carol)).check();
    await dialog.getByRole('button', { name: ui('groups.create') }).click();
    await alice.page.locator('#conv-title', { hasText: S.group }).waitFor();
    await alice.page.locator('#conv-sub', { hasText: EXPECTED.threeMembers }).waitFor();
    await alice.page.getByText(ui('conversation.groupStart')).waitFor();
    await sendAndConfirm(alice, S.welcome);
    // The group shows up for the others with its first message.
    await chatsTab(carol);
    await chatRow(carol, S.group).locator('.chat-last', { hasText: ui('chats.lastFrom', { name: S.alice, text: S.welcome }) }).waitFor();
    await shot(carol, 'phone-chats');
    await openChat(carol, S.group);
    await message(carol, S.welcome).locator('.sender', { hasText: S.alice }).waitFor();
    await sendAndConfirm(carol, S.blanket);
    await chatsTab(bob);
    await openChat(bob, S.group);
    await message(bob, S.blanket).locator('.sender', { hasText: S.carol }).waitFor();
    await sendAndConfirm(bob, S.noon);
    for (const p of [alice, bob, carol]) {
      for (const text of [S.welcome, S.blanket, S.noon]) {
        await message(p, text).waitFor();
      }
    }
    // Both others read Alice's message.
    await message(alice, S.welcome).locator('.status', { hasText: EXPECTED.readByTwo }).waitFor();
    await shot(alice, 'desktop-group');
    await shot(carol, 'phone-conversation');
    for (const p of [alice, carol]) assert.deepEqual(await unnamedControls(p), [], `${p.account}: controls without a name`);
    for (const p of [alice, carol]) assert.deepEqual(await foreignWords(p), [], `${p.account}: words of another language`);
    // On a phone, Back returns from the conversation to the list.
    await carol.page.getByRole('button', { name: ui('conversation.back') }).click();
    await chatRow(carol, S.group).waitFor();
    assert.equal(await carol.page.locator('#conversation').isHidden(), true);
    assert.equal(new URL(carol.page.url()).hash, '');
    await openChat(carol, S.group);
    // The conversation list: most recent first.
    const titles = await alice.page.locator('#chat-list .chat-title').allTextContents();
    assert.deepEqual(titles, [S.group, S.bob]);
  });

  test('the group admin removes a member, whose open conversation closes at once', async () => {
    const { alice, carol } = people;
    await alice.page.getByRole('button', { name: ui('conversation.members'), exact: true }).click();
    const dialog = alice.page.getByRole('dialog', { name: S.group });
    await dialog.locator('.person', { hasText: ui('groups.you', { name: S.alice }) }).getByText(ui('groups.admin')).waitFor();
    await shot(alice, 'desktop-members');
    assert.deepEqual(await unnamedControls(alice), [], 'controls without a name in the members dialog');
    assert.deepEqual(await foreignWords(alice), [], 'words of another language in the members dialog');
    await dialog.getByRole('button', { name: ui('groups.removeName', { name: S.carol }) }).click();
    const members = dialog.getByRole('list', { name: ui('conversation.members') });
    await members.locator('.person', { hasText: S.alice }).waitFor();
    await members.locator('.person', { hasText: S.carol }).waitFor({ state: 'detached' });
    // Carol is still Alice's friend, so she is offered to be added back.
    await dialog.getByRole('checkbox', { name: new RegExp(S.carol) }).waitFor();
    await dialog.getByRole('button', { name: ui('conversation.close') }).click();
    await alice.page.locator('#conv-sub', { hasText: EXPECTED.twoMembers }).waitFor();
    // Carol hears of it at once: the conversation she has open closes, and
    // the group leaves her list.
    await carol.page.getByText(ui('conversation.removed')).waitFor();
    await carol.page.getByRole('textbox', { name: ui('conversation.input') }).waitFor({ state: 'detached' });
    await chatRow(carol, S.group).waitFor({ state: 'detached' });
  });

  test('a second device, a day later: day separators, and its messages reach the first', async () => {
    const { alice, bob } = people;
    // Bob's laptop, whose clock says it is tomorrow (timers keep running).
    const laptop = await person('bob-laptop', S.bob, DESKTOP);
    await laptop.page.clock.setFixedTime(new Date(Date.now() + 24 * 3600 * 1000));
    await laptop.page.reload();
    await laptop.page.getByRole('textbox', { name: ui('login.account') }).fill('bob');
    await laptop.page.getByLabel(ui('login.password'), { exact: true }).fill(bob.password);
    await laptop.page.getByRole('button', { name: ui('login.logIn'), exact: true }).click();
    await online(laptop);
    await openChat(laptop, S.alice);
    await message(laptop, S.through).waitFor();
    await sendAndConfirm(laptop, S.laptop);
    const days = await laptop.page.locator('#messages .day').allTextContents();
    assert.deepEqual(days, EXPECTED.days);
    // The new message sits under "Today", everything before under "Yesterday".
    const order = await laptop.page
      .locator('#messages .message-items > *')
      .evaluateAll((els) => els.map((el) => (el.classList.contains('day') ? `day:${el.textContent}` : el.querySelector('.text')?.textContent)));
    assert.equal(order.at(-2), `day:${EXPECTED.days[1]}`);
    assert.equal(order.at(-1), S.laptop);
    // Switched in the app: everything on screen follows at once, dates and
    // plurals too, and the draft being written stays.
    const draft = laptop.page.getByRole('textbox', { name: ui('conversation.input') });
    await draft.fill(S.cake);
    await laptop.page.locator('#app-language').selectOption(OTHER);
    await until('the day separators in the other language', async () =>
      JSON.stringify(await laptop.page.locator('#messages .day').allTextContents()) === JSON.stringify(LITERAL[OTHER].days),
    );
    assert.equal(await laptop.page.evaluate(() => document.documentElement.lang), OTHER);
    assert.deepEqual(await laptop.page.locator('.tabs [role="tab"] > span:first-child').allTextContents(), LITERAL[OTHER].tabs);
    assert.equal(await laptop.page.locator('#conn-label').textContent(), translator(OTHER)('shell.online'));
    assert.equal(await laptop.page.getByRole('textbox', { name: translator(OTHER)('conversation.input') }).inputValue(), S.cake);
    await laptop.page.locator('#app-language').selectOption(LANG);
    await until('the day separators back in this language', async () =>
      JSON.stringify(await laptop.page.locator('#messages .day').allTextContents()) === JSON.stringify(EXPECTED.days),
    );
    await draft.fill('');
    // Bob's other device shows it as his own, live; Alice receives it.
    await chatsTab(bob);
    await chatRow(bob, S.alice).locator('.chat-last', { hasText: ui('chats.lastMine', { text: S.laptop }) }).waitFor();
    await openChat(bob, S.alice);
    await message(bob, S.laptop).and(bob.page.locator('.mine')).waitFor();
    await chatsTab(alice);
    await openChat(alice, S.bob);
    await message(alice, S.laptop).and(alice.page.locator('.theirs')).waitFor();
  });

  test('log out, and log in again to the same history', async () => {
    const { bob } = people;
    await bob.page.getByRole('button', { name: ui('shell.logOut') }).click();
    await bob.page.locator('#login-view').waitFor();
    assert.equal(await token(bob), null);
    await bob.page.reload();
    await bob.page.locator('#login-view').waitFor();
    await bob.page.getByRole('textbox', { name: ui('login.account') }).fill('bob');
    await bob.page.getByLabel(ui('login.password'), { exact: true }).fill('wrong password');
    await bob.page.getByRole('button', { name: ui('login.logIn'), exact: true }).click();
    await bob.page.getByRole('alert').getByText(ui('login.wrongPassword')).waitFor();
    await bob.page.getByLabel(ui('login.password'), { exact: true }).fill(bob.password);
    await bob.page.getByRole('button', { name: ui('login.logIn'), exact: true }).click();
    await online(bob);
    await openChat(bob, S.alice);
    await message(bob, S.through).waitFor();
  });

  test('an invalid or revoked token returns to the login screen', async () => {
    const { alice, bob } = people;
    // A token the server does not know, found at start-up.
    await bob.page.evaluate(() => localStorage.setItem('rim.token', 'not-a-real-token'));
    await bob.page.reload();
    await bob.page.locator('#login-view').waitFor();
    await bob.page.getByText(ui('app.sessionEnded')).waitFor();
    // A token revoked while the app runs (logged out elsewhere): the server
    // closes the socket, the reconnect is refused, the app shows login.
    const revoked = await rest('POST', '/api/user/logout', await token(alice), {});
    assert.equal(revoked.ok, true);
    await alice.page.locator('#login-view').waitFor();
    await alice.page.getByText(ui('app.sessionEnded')).waitFor();
    assert.equal(await token(alice), null);
  });

  test('an invite link opens the registration with its code filled in', async () => {
    const server = await startServer('registration = "invite"\n');
    const code = /code: (\S+)/.exec(await server.run('invite', 'create'))[1];
    const dan = await person('dan', S.dan, PHONE, server.base);
    const fill = async () => {
      await dan.page.getByRole('textbox', { name: ui('login.account') }).fill(dan.account);
      await dan.page.getByLabel(ui('login.name')).fill(dan.name);
      await dan.page.getByLabel(ui('login.password'), { exact: true }).fill(dan.password);
      await dan.page.getByRole('button', { name: ui('login.register'), exact: true }).click();
    };
    // Without a code this server refuses, and the form says why.
    await dan.page.getByRole('tab', { name: ui('login.register') }).click();
    await fill();
    await dan.page.getByRole('alert').getByText('needs an invite code').waitFor();
    // The join link opens the form with the code in place.
    await dan.page.goto(`${server.base}/?invite=${code}`);
    assert.equal(await dan.page.getByRole('tab', { name: ui('login.register') }).getAttribute('aria-selected'), 'true');
    assert.equal(await dan.page.getByLabel(new RegExp(ui('login.invite'))).inputValue(), code);
    await fill();
    await online(dan);
    assert.equal(new URL(dan.page.url()).search, '', 'the used code leaves the address bar');
  });
});
