// End-to-end tests of rim's built-in web client, in a real browser.
//
// Starts `rim serve` (the binary from RIM_BIN, default target/debug/rim; this
// script builds nothing) on a loopback port chosen by the OS, with a fresh
// database in a temporary directory, and drives Debian's Chromium headless
// through playwright-core. People are separate browser contexts (separate
// storage, like separate devices). The tests form one story and run in
// order: each builds on the state the previous one left.
//
// Screenshots of the main screens, at desktop (1280x800) and phone (390x844)
// sizes, are written to docs/screenshots/ (RIM_SCREENSHOTS overrides).
//
// Run: cargo build && (cd tests/browser && npm ci && npm test)

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const RIM_BIN = path.resolve(repo, process.env.RIM_BIN || 'target/debug/rim');
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const SHOTS = path.resolve(repo, process.env.RIM_SCREENSHOTS || 'docs/screenshots');

const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
/** How long something that should happen may take to show up. */
const WAIT = 10_000;
/** The client's send timeout (SEND_TIMEOUT_MS in web/js/state.js) plus slack. */
const SEND_FAILS_WITHIN = 16_000;

// ---- the server --------------------------------------------------------------

/** A `rim serve` child process with its own database and config. */
class Server {
  constructor() {
    this.log = [];
    this.base = '';
    this.dir = '';
    this.proc = null;
  }

  /** Starts rim with `config` (TOML text); resolves once it listens. */
  async start(config = '') {
    assert.ok(existsSync(RIM_BIN), `no rim binary at ${RIM_BIN}: run cargo build first (or set RIM_BIN)`);
    this.dir = await mkdtemp(path.join(tmpdir(), 'rim-browser-'));
    this.db = path.join(this.dir, 'rim.db');
    // An explicit config, so a rim.toml in the working directory cannot
    // change what is tested.
    this.config = path.join(this.dir, 'rim.toml');
    await writeFile(this.config, `log_level = "info"\n${config}`);
    this.proc = spawn(RIM_BIN, ['serve', '--listen', '127.0.0.1:0', '--db', this.db, '--config', this.config], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    // The OS picks the port; rim logs the address it listens on.
    this.base = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`rim did not start:\n${this.log.join('\n')}`)), 15_000);
      let buffered = '';
      const onData = (chunk) => {
        buffered += chunk;
        const lines = buffered.split('\n');
        buffered = lines.pop();
        for (const line of lines) {
          this.log.push(line);
          if (this.log.length > 400) this.log.shift();
          const m = / listening addr=(\S+)/.exec(line);
          if (m) {
            clearTimeout(timer);
            resolve(`http://${m[1]}`);
          }
        }
      };
      this.proc.stdout.setEncoding('utf8').on('data', onData);
      this.proc.stderr.setEncoding('utf8').on('data', onData);
      this.proc.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`rim exited with ${code}:\n${this.log.join('\n')}`));
      });
    });
    return this;
  }

  /** Runs another rim command on this server's database and config. */
  run(...args) {
    return new Promise((resolve, reject) => {
      const child = spawn(RIM_BIN, [...args, '--db', this.db, '--config', this.config], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (d) => (out += d));
      child.stderr.setEncoding('utf8').on('data', (d) => (out += d));
      child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`rim ${args.join(' ')} failed (${code}): ${out}`))));
    });
  }

  async stop() {
    // Kept for a look after a failure: target/browser-tests/server-N.log.
    const logs = path.join(repo, 'target', 'browser-tests');
    await mkdir(logs, { recursive: true });
    await writeFile(path.join(logs, `server-${servers.indexOf(this) + 1}.log`), this.log.join('\n') + '\n');
    if (this.proc && this.proc.exitCode === null) {
      const exited = new Promise((resolve) => this.proc.once('exit', resolve));
      this.proc.kill('SIGTERM');
      const timer = setTimeout(() => this.proc.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    }
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
  }
}

const servers = [];
let base = '';

async function startServer(config) {
  const server = await new Server().start(config);
  servers.push(server);
  return server;
}

/** Calls the REST API directly (for what a test arranges outside the UI). */
async function rest(method, route, token, body) {
  const res = await fetch(base + route, {
    method,
    headers: { ...(token ? { Authorization: `Bearer ${token}` } : {}), ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  return res.json();
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
  const context = await browser.newContext({ viewport, locale: 'en-GB', timezoneId: 'UTC' });
  const page = await context.newPage();
  const p = { account, name, password: `password of ${account}`, context, page, errors: [] };
  page.on('pageerror', (err) => p.errors.push(`uncaught: ${err.message}`));
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
  await page.getByRole('tab', { name: 'Create account' }).click();
  await page.getByRole('textbox', { name: 'Account' }).fill(p.account);
  await page.getByLabel('Display name').fill(p.name);
  await page.getByLabel('Password', { exact: true }).fill(p.password);
  await page.getByRole('button', { name: 'Create account' }).click();
  await online(p);
}

async function online(p) {
  await p.page.locator('#conn[data-state="online"]').waitFor();
}

async function token(p) {
  return p.page.evaluate(() => localStorage.getItem('rim.token'));
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
  const input = p.page.getByRole('textbox', { name: 'Message' });
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
  await p.page.getByRole('tab', { name: /^Friends/ }).click();
}

async function chatsTab(p) {
  await p.page.getByRole('tab', { name: /^Chats/ }).click();
}

/** `from` asks `to` through the search box; `to` accepts from the requests list. */
async function befriend(from, to) {
  await friendsTab(from);
  await from.page.getByLabel('Find people by account').fill(to.account);
  await from.page.getByRole('button', { name: 'Find', exact: true }).click();
  await from.page.getByRole('button', { name: `Send a friend request to ${to.name}` }).click();
  await from.page.locator('.friends-section', { hasText: 'Sent requests' }).getByText(to.name).waitFor();
  // The request arrives live: a badge on the Friends tab, then Accept.
  await to.page.locator('#friends-badge:not([hidden])', { hasText: '1' }).waitFor();
  await friendsTab(to);
  await to.page.getByRole('button', { name: `Accept ${from.name}` }).click();
  // And the acceptance reaches the asker live too.
  await friendList(from).getByRole('button', { name: `Message ${to.name}` }).waitFor();
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

function friendList(p) {
  return p.page.getByRole('region', { name: 'Friends', exact: true });
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

  test('two people register and become friends', async () => {
    const alice = await person('alice', 'Alice Archer', DESKTOP);
    await alice.page.getByRole('button', { name: 'Log in' }).waitFor();
    await shot(alice, 'desktop-login');
    await register(alice);
    const bob = await person('bob', 'Bob Baker', DESKTOP);
    await register(bob);
    await befriend(alice, bob);
    await shot(bob, 'desktop-friends');
    assert.deepEqual(await unnamedControls(bob), [], 'controls without a name in the friends tab');
    // A friend's Message button opens the direct chat.
    await friendList(alice).getByRole('button', { name: 'Message Bob Baker' }).click();
    await alice.page.locator('#conv-title', { hasText: 'Bob Baker' }).waitFor();
    assert.match(alice.page.url(), /#\/c\/\d+$/);
    await alice.page.getByText('This is the start of your conversation with Bob Baker. Say hello!').waitFor();
  });

  test('they chat both ways live, with unread counts and read receipts', async () => {
    const { alice, bob } = people;
    await sendAndConfirm(alice, 'Hi Bob! Are you coming on Saturday?');
    // Bob is not looking at the conversation: it appears in his list, unread.
    await chatsTab(bob);
    const row = chatRow(bob, 'Alice Archer');
    await row.locator('.badge', { hasText: '1' }).waitFor();
    await row.locator('.chat-last', { hasText: 'Hi Bob! Are you coming on Saturday?' }).waitFor();
    assert.equal(await bob.page.title(), '(1) rim');
    await openChat(bob, 'Alice Archer');
    await message(bob, 'Hi Bob! Are you coming on Saturday?').waitFor();
    await row.locator('.badge').waitFor({ state: 'detached' });
    // Bob saw it, so Alice sees it read.
    await message(alice, 'Hi Bob! Are you coming on Saturday?').and(alice.page.locator('[data-status="read"]')).waitFor();
    await sendAndConfirm(bob, 'Yes! I will bring the cake 🎂');
    await message(alice, 'Yes! I will bring the cake 🎂').waitFor();
    await message(bob, 'Yes! I will bring the cake 🎂').and(bob.page.locator('[data-status="read"]')).waitFor();
  });

  test('messages are text: markup stays text and only http(s) links are links', async () => {
    const { alice, bob } = people;
    const text = '<b>bold?</b> <img src=x onerror="window.pwned=1"> map: https://example.org/park?x=1&y=2. not a link: javascript:alert(1)';
    await sendAndConfirm(alice, text);
    const shown = message(bob, 'map: https://example.org/park');
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
  });

  test('a reload keeps the session and shows the history, with scrollback', async () => {
    const { alice, bob } = people;
    // Forty numbered messages from Alice, sent through the public WebSocket
    // API from her browser, so that the history spans more than one page.
    const gid = Number(/#\/c\/(\d+)$/.exec(alice.page.url())[1]);
    await alice.page.evaluate(
      async ({ gid, count }) => {
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
        for (let i = 1; i <= count; i++) {
          await ask('Msg', { kind: 'Text', gid, content: `Numbered message ${String(i).padStart(2, '0')}`, clientMsgId: `seed-${i}` });
        }
        ws.close();
      },
      { gid, count: 40 },
    );
    await message(bob, 'Numbered message 40').waitFor();
    await bob.page.reload();
    await online(bob);
    // Still logged in, and back in the conversation the URL names.
    assert.equal(await bob.page.locator('#login-view').isHidden(), true);
    await bob.page.locator('#conv-title', { hasText: 'Alice Archer' }).waitFor();
    await message(bob, 'Numbered message 40').waitFor();
    await bob.page.locator('.day', { hasText: 'Today' }).first().waitFor();
    // The first page is the newest 30 messages: the start is further back.
    assert.equal(await message(bob, 'Hi Bob! Are you coming on Saturday?').count(), 0);
    await until('the beginning of the conversation', async () => {
      await bob.page.locator('#messages').evaluate((el) => {
        el.scrollTop = 0;
      });
      return (await message(bob, 'Hi Bob! Are you coming on Saturday?').count()) === 1;
    });
    await bob.page.getByText('This is the beginning of the conversation.').waitFor();
    // Every message exactly once, in order.
    const texts = await bob.page.locator('#messages .msg .text').allTextContents();
    const numbered = texts.filter((t) => t.startsWith('Numbered message'));
    assert.deepEqual(numbered, Array.from({ length: 40 }, (_, i) => `Numbered message ${String(i + 1).padStart(2, '0')}`));
    assert.equal(texts.length, 43);
  });

  test('an offline device receives what it missed after reconnecting', async () => {
    const { alice, bob } = people;
    await bob.context.setOffline(true);
    await bob.page.locator('#conn[data-state="offline"]').waitFor();
    await bob.page.locator('#conn-banner:not([hidden])').waitFor();
    await sendAndConfirm(alice, 'Sent while you were offline (1)');
    await sendAndConfirm(alice, 'Sent while you were offline (2)');
    await bob.page.waitForTimeout(500);
    assert.equal(await message(bob, 'Sent while you were offline').count(), 0, 'an offline page received messages');
    await bob.context.setOffline(false);
    await online(bob);
    await message(bob, 'Sent while you were offline (2)').waitFor();
    const texts = await bob.page.locator('#messages .msg .text').allTextContents();
    assert.deepEqual(texts.slice(-2), ['Sent while you were offline (1)', 'Sent while you were offline (2)']);
    await bob.page.locator('#conn-banner').waitFor({ state: 'hidden' });
  });

  test('a message without an ack shows as failed and can be retried', async () => {
    const { alice, bob } = people;
    await alice.context.setOffline(true);
    await alice.page.locator('#conn[data-state="offline"]').waitFor();
    await send(alice, 'Did this get through?');
    const bubble = message(alice, 'Did this get through?');
    await bubble.and(alice.page.locator('[data-status="pending"]')).waitFor();
    await bubble.and(alice.page.locator('[data-status="failed"]')).waitFor({ timeout: SEND_FAILS_WITHIN });
    await alice.context.setOffline(false);
    await online(alice);
    await bubble.getByRole('button', { name: 'Retry' }).click();
    await bubble.and(alice.page.locator('[data-status="sent"], [data-status="read"]')).waitFor();
    await message(bob, 'Did this get through?').waitFor();
    assert.equal(await message(bob, 'Did this get through?').count(), 1);
  });

  test('a photo is picked, uploaded and shown inline, full size on a click; other files download', async () => {
    const { alice, bob } = people;
    const photo = pngImage(480, 320);
    await alice.page.locator('#composer-file').setInputFiles({ name: 'beach.png', mimeType: 'image/png', buffer: photo });
    const mine = alice.page.locator('#messages .msg.mine', { has: alice.page.locator('img.photo[alt="beach.png"]') });
    await mine.and(alice.page.locator('[data-status="sent"], [data-status="read"]')).waitFor();
    // Bob's page fetches it with his token and shows it from a blob: URL.
    const theirs = bob.page.locator('#messages .msg.theirs img.photo[alt="beach.png"]');
    await theirs.waitFor();
    await until('the picture to load', () => theirs.evaluate((img) => img.complete && img.naturalWidth === 480));
    assert.match(await theirs.getAttribute('src'), /^blob:/);
    await chatRow(alice, 'Bob Baker').locator('.chat-last', { hasText: 'You: 📷 Photo' }).waitFor();
    // A click shows it full size.
    await bob.page.getByRole('button', { name: 'Picture beach.png, open full size' }).click();
    const dialog = bob.page.locator('#photo-dialog[open]');
    await until('the full-size picture', () =>
      dialog.locator('img.photo-full').evaluate((img) => img.complete && img.naturalWidth === 480 && img.naturalHeight === 320),
    );
    await shot(bob, 'desktop-photo');
    assert.deepEqual(await unnamedControls(bob), [], 'controls without a name around the photo');
    await dialog.getByRole('button', { name: 'Close' }).click();
    await dialog.waitFor({ state: 'detached' });
    // A picture pasted into the message field goes the same way.
    await alice.page.getByRole('textbox', { name: 'Message' }).evaluate((input, bytes) => {
      const data = new DataTransfer();
      data.items.add(new File([new Uint8Array(bytes)], 'pasted.png', { type: 'image/png' }));
      input.dispatchEvent(new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true }));
    }, [...pngImage(64, 48)]);
    const pasted = bob.page.locator('#messages img.photo[alt="pasted.png"]');
    await until('the pasted picture', () => pasted.evaluate((img) => img.complete && img.naturalWidth === 64).catch(() => false));
    // Anything else is a download, with its name and its bytes intact.
    const list = 'towels\nsunscreen\n<script>alert(1)</script>\n';
    await alice.page.locator('#composer-file').setInputFiles({ name: 'packing list.html', mimeType: 'text/html', buffer: Buffer.from(list) });
    const link = bob.page.getByRole('button', { name: /^Download packing list\.html/ });
    await link.waitFor();
    const [download] = await Promise.all([bob.page.waitForEvent('download'), link.click()]);
    assert.equal(download.suggestedFilename(), 'packing list.html');
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
    const box = bob.page.getByRole('searchbox', { name: 'Search messages' });
    await box.fill('saturday');
    await box.press('Enter');
    const result = bob.page.locator('#search-results .chat-row', { hasText: 'Are you coming on' });
    await result.waitFor();
    assert.equal(await result.locator('mark').textContent(), 'Saturday');
    assert.equal(await bob.page.locator('#chat-list').isHidden(), true);
    await shot(bob, 'desktop-search');
    // A message with markup in it: its snippet shows the markup as text.
    await box.fill('bold map');
    await box.press('Enter');
    const markup = bob.page.locator('#search-results .snippet', { hasText: '<img src=x onerror=' });
    await markup.waitFor();
    assert.deepEqual(await markup.locator('mark').allTextContents(), ['bold', 'map']);
    assert.equal(await bob.page.locator('#search-results b, #search-results img').count(), 0);
    // File messages are found by their names.
    await box.fill('packing');
    await box.press('Enter');
    await bob.page.locator('#search-results .snippet mark', { hasText: 'packing' }).waitFor();
    // A result opens its conversation; clearing the box brings the list back.
    await bob.page.locator('#search-results .chat-row').first().click();
    await bob.page.locator('#conv-title', { hasText: 'Alice Archer' }).waitFor();
    await box.fill('');
    await box.press('Escape');
    await bob.page.locator('#chat-list').waitFor();
    assert.equal(await bob.page.locator('#search-results').isHidden(), true);
  });

  test('a group of three exchanges messages', async () => {
    const { alice, bob } = people;
    const carol = await person('carol', 'Carol Chen', PHONE);
    await carol.page.getByRole('button', { name: 'Log in' }).waitFor();
    await shot(carol, 'phone-login');
    await register(carol);
    await befriend(carol, alice);
    // Alice creates the group with both friends.
    await chatsTab(alice);
    await alice.page.getByRole('button', { name: 'New group' }).click();
    const dialog = alice.page.getByRole('dialog', { name: 'New group' });
    await dialog.getByLabel('Group name').fill('Saturday picnic');
    await dialog.getByLabel(/Bob Baker/).check();
    await dialog.getByLabel(/Carol Chen/).check();
    await dialog.getByRole('button', { name: 'Create group' }).click();
    await alice.page.locator('#conv-title', { hasText: 'Saturday picnic' }).waitFor();
    await alice.page.locator('#conv-sub', { hasText: '3 members' }).waitFor();
    await alice.page.getByText('No messages yet. Say hello to the group!').waitFor();
    await sendAndConfirm(alice, 'Welcome to the picnic group!');
    // The group shows up for the others with its first message.
    await chatsTab(carol);
    await chatRow(carol, 'Saturday picnic').locator('.chat-last', { hasText: 'Alice Archer: Welcome to the picnic group!' }).waitFor();
    await shot(carol, 'phone-chats');
    await openChat(carol, 'Saturday picnic');
    await message(carol, 'Welcome to the picnic group!').locator('.sender', { hasText: 'Alice Archer' }).waitFor();
    await sendAndConfirm(carol, 'I can bring a blanket and lemonade');
    await chatsTab(bob);
    await openChat(bob, 'Saturday picnic');
    await message(bob, 'I can bring a blanket and lemonade').locator('.sender', { hasText: 'Carol Chen' }).waitFor();
    await sendAndConfirm(bob, 'Great, see you both at noon');
    for (const p of [alice, bob, carol]) {
      for (const text of ['Welcome to the picnic group!', 'I can bring a blanket and lemonade', 'Great, see you both at noon']) {
        await message(p, text).waitFor();
      }
    }
    // Both others read Alice's message.
    await message(alice, 'Welcome to the picnic group!').locator('.status', { hasText: 'Read by 2' }).waitFor();
    await shot(alice, 'desktop-group');
    await shot(carol, 'phone-conversation');
    for (const p of [alice, carol]) assert.deepEqual(await unnamedControls(p), [], `${p.account}: controls without a name`);
    // On a phone, Back returns from the conversation to the list.
    await carol.page.getByRole('button', { name: 'Back to conversations' }).click();
    await chatRow(carol, 'Saturday picnic').waitFor();
    assert.equal(await carol.page.locator('#conversation').isHidden(), true);
    assert.equal(new URL(carol.page.url()).hash, '');
    await openChat(carol, 'Saturday picnic');
    // The conversation list: most recent first.
    const titles = await alice.page.locator('#chat-list .chat-title').allTextContents();
    assert.deepEqual(titles, ['Saturday picnic', 'Bob Baker']);
  });

  test('the group admin removes a member, who can then no longer send', async () => {
    const { alice, carol } = people;
    await alice.page.getByRole('button', { name: 'Members' }).click();
    const dialog = alice.page.getByRole('dialog', { name: 'Saturday picnic' });
    await dialog.locator('.person', { hasText: 'Alice Archer (you)' }).getByText('Admin').waitFor();
    await shot(alice, 'desktop-members');
    assert.deepEqual(await unnamedControls(alice), [], 'controls without a name in the members dialog');
    await dialog.getByRole('button', { name: 'Remove Carol Chen' }).click();
    const members = dialog.getByRole('list', { name: 'Members' });
    await members.locator('.person', { hasText: 'Alice Archer' }).waitFor();
    await members.locator('.person', { hasText: 'Carol Chen' }).waitFor({ state: 'detached' });
    // Carol is still Alice's friend, so she is offered to be added back.
    await dialog.getByRole('checkbox', { name: /Carol Chen/ }).waitFor();
    await dialog.getByRole('button', { name: 'Close' }).click();
    await alice.page.locator('#conv-sub', { hasText: '2 members' }).waitFor();
    await send(carol, 'Am I still in the group?');
    const failed = message(carol, 'Am I still in the group?').and(carol.page.locator('[data-status="failed"]'));
    await failed.waitFor();
    await failed.locator('.failure', { hasText: 'not a member' }).waitFor();
  });

  test('a second device, a day later: day separators, and its messages reach the first', async () => {
    const { alice, bob } = people;
    // Bob's laptop, whose clock says it is tomorrow (timers keep running).
    const laptop = await person('bob-laptop', 'Bob Baker', DESKTOP);
    await laptop.page.clock.setFixedTime(new Date(Date.now() + 24 * 3600 * 1000));
    await laptop.page.reload();
    await laptop.page.getByRole('textbox', { name: 'Account' }).fill('bob');
    await laptop.page.getByLabel('Password', { exact: true }).fill(bob.password);
    await laptop.page.getByRole('button', { name: 'Log in' }).click();
    await online(laptop);
    await openChat(laptop, 'Alice Archer');
    await message(laptop, 'Did this get through?').waitFor();
    await sendAndConfirm(laptop, 'Writing from my laptop');
    const days = await laptop.page.locator('#messages .day').allTextContents();
    assert.deepEqual(days, ['Yesterday', 'Today']);
    // The new message sits under "Today", everything before under "Yesterday".
    const order = await laptop.page
      .locator('#messages .message-items > *')
      .evaluateAll((els) => els.map((el) => (el.classList.contains('day') ? `day:${el.textContent}` : el.querySelector('.text')?.textContent)));
    assert.equal(order.at(-2), 'day:Today');
    assert.equal(order.at(-1), 'Writing from my laptop');
    // Bob's other device shows it as his own, live; Alice receives it.
    await chatsTab(bob);
    await chatRow(bob, 'Alice Archer').locator('.chat-last', { hasText: 'You: Writing from my laptop' }).waitFor();
    await openChat(bob, 'Alice Archer');
    await message(bob, 'Writing from my laptop').and(bob.page.locator('.mine')).waitFor();
    await chatsTab(alice);
    await openChat(alice, 'Bob Baker');
    await message(alice, 'Writing from my laptop').and(alice.page.locator('.theirs')).waitFor();
  });

  test('log out, and log in again to the same history', async () => {
    const { bob } = people;
    await bob.page.getByRole('button', { name: 'Log out' }).click();
    await bob.page.locator('#login-view').waitFor();
    assert.equal(await token(bob), null);
    await bob.page.reload();
    await bob.page.locator('#login-view').waitFor();
    await bob.page.getByRole('textbox', { name: 'Account' }).fill('bob');
    await bob.page.getByLabel('Password', { exact: true }).fill('wrong password');
    await bob.page.getByRole('button', { name: 'Log in' }).click();
    await bob.page.getByRole('alert').getByText('Wrong account or password.').waitFor();
    await bob.page.getByLabel('Password', { exact: true }).fill(bob.password);
    await bob.page.getByRole('button', { name: 'Log in' }).click();
    await online(bob);
    await openChat(bob, 'Alice Archer');
    await message(bob, 'Did this get through?').waitFor();
  });

  test('an invalid or revoked token returns to the login screen', async () => {
    const { alice, bob } = people;
    // A token the server does not know, found at start-up.
    await bob.page.evaluate(() => localStorage.setItem('rim.token', 'not-a-real-token'));
    await bob.page.reload();
    await bob.page.locator('#login-view').waitFor();
    await bob.page.getByText('Your session has ended. Please log in again.').waitFor();
    // A token revoked while the app runs (logged out elsewhere): the server
    // closes the socket, the reconnect is refused, the app shows login.
    const revoked = await rest('POST', '/api/user/logout', await token(alice), {});
    assert.equal(revoked.ok, true);
    await alice.page.locator('#login-view').waitFor();
    await alice.page.getByText('Your session has ended. Please log in again.').waitFor();
    assert.equal(await token(alice), null);
  });

  test('an invite link opens the registration with its code filled in', async () => {
    const server = await startServer('registration = "invite"\n');
    const code = /code: (\S+)/.exec(await server.run('invite', 'create'))[1];
    const dan = await person('dan', 'Dan Dorsey', PHONE, server.base);
    const fill = async () => {
      await dan.page.getByRole('textbox', { name: 'Account' }).fill(dan.account);
      await dan.page.getByLabel('Display name').fill(dan.name);
      await dan.page.getByLabel('Password', { exact: true }).fill(dan.password);
      await dan.page.getByRole('button', { name: 'Create account' }).click();
    };
    // Without a code this server refuses, and the form says why.
    await dan.page.getByRole('tab', { name: 'Create account' }).click();
    await fill();
    await dan.page.getByRole('alert').getByText('needs an invite code').waitFor();
    // The join link opens the form with the code in place.
    await dan.page.goto(`${server.base}/?invite=${code}`);
    assert.equal(await dan.page.getByRole('tab', { name: 'Create account' }).getAttribute('aria-selected'), 'true');
    assert.equal(await dan.page.getByLabel(/Invite code/).inputValue(), code);
    await fill();
    await online(dan);
    assert.equal(new URL(dan.page.url()).search, '', 'the used code leaves the address bar');
  });
});
