// End-to-end tests of one's own account and of group roles in rim's web
// client: the profile dialog (name, picture, last-seen setting, password,
// logged-in devices with "log out"), making and unmaking group admins, and
// leaving a group. Like suite.test.js: `rim serve` from RIM_BIN (default
// target/debug/rim) on a loopback port the OS picks, a fresh database,
// Debian's Chromium headless through playwright-core, each device a browser
// context of its own, in the language RIM_LANG (en or zh-CN). The tests
// form one story and run in order. The profile dialog's screenshot goes to
// docs/screenshots/desktop-profile.png (zh-CN/ for Chinese; RIM_SCREENSHOTS
// overrides).
//
// Run: cargo build && (cd tests/browser && npm ci && RIM_LANG=en node --test profile.test.js)

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import zlib from 'node:zlib';
import { chromium } from 'playwright-core';

import { translator } from '../../web/js/i18n.js';
import { Server, logIn, online, repo, token, uiPattern } from './rim.js';
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const LANG = process.env.RIM_LANG || 'en';
const WAIT = 10_000;
/** Where the profile's screenshot goes, as in suite.test.js. */
const SHOTS = path.resolve(repo, process.env.RIM_SCREENSHOTS || 'docs/screenshots', LANG === 'en' ? '' : LANG);

const ui = translator(LANG);


/** Per language: the browser's locale, the people's names, and literal
 * texts the app must show (independent of its dictionaries). */
const STORY = {
  en: {
    locale: 'en-US',
    alice: 'Alice Archer',
    renamed: 'Ali Archer',
    bob: 'Bob Baker',
    group: 'Book club',
    dots: 'Picnic',
    title: 'Your profile',
    thisDevice: 'This device',
  },
  'zh-CN': {
    locale: 'zh-CN',
    alice: '王芳',
    renamed: '王小芳',
    bob: '李明',
    group: '读书会',
    dots: '野餐',
    title: '个人资料',
    thisDevice: '本机',
  },
}[LANG];
assert.ok(STORY, `RIM_LANG must be en or zh-CN, not ${LANG}`);

// ---- the server ----------------------------------------------------------------

let server = null;
let base = '';

/** Calls the REST API directly (for what a test arranges or checks outside the UI). */
function rest(method, route, token, body) {
  return server.rest(method, route, token, body);
}

/** A small real PNG of one colour. */
function png(width, height, rgb) {
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
  header[8] = 8;
  header[9] = 2;
  const row = Buffer.alloc(1 + width * 3);
  for (let x = 0; x < width; x++) row.set(rgb, 1 + x * 3);
  const rows = Buffer.concat(Array.from({ length: height }, () => row));
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', zlib.deflateSync(rows)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

// ---- the browser and its people ------------------------------------------------

let browser = null;
const contexts = [];

/** A device of `account`: a browser context of its own, at the login screen. */
async function device(account, name) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: STORY.locale });
  contexts.push(context);
  const page = await context.newPage();
  const d = { account, name, password: `password of ${account}`, context, page, errors: [] };
  page.on('pageerror', (err) => d.errors.push(`uncaught: ${err.message}`));
  page.on('console', (msg) => {
    if (/Content Security Policy/i.test(msg.text())) d.errors.push(`csp: ${msg.text()}`);
  });
  page.setDefaultTimeout(WAIT);
  await page.goto(`${base}/`);
  return d;
}



async function register(d) {
  const r = await rest('POST', '/api/user/create', null, { account: d.account, password: d.password, name: d.name });
  assert.equal(r.ok, true, JSON.stringify(r));
  return r.data;
}


async function openProfile(d) {
  await d.page.getByRole('button', { name: ui('shell.profile') }).click();
  const dialog = d.page.getByRole('dialog', { name: ui('profile.title') });
  await dialog.waitFor();
  return dialog;
}

function devices(dialog) {
  return dialog.getByRole('list', { name: ui('profile.devices') }).locator('li.device');
}

async function openMembers(d, group) {
  await d.page.locator('#chat-list .chat-row', { hasText: group }).click();
  await d.page.locator('#conv-title', { hasText: group }).waitFor();
  await d.page.getByRole('button', { name: ui('conversation.members'), exact: true }).click();
  const dialog = d.page.getByRole('dialog', { name: group });
  await dialog.waitFor();
  return dialog;
}

function memberRow(dialog, name) {
  return dialog.getByRole('list', { name: ui('conversation.members') }).locator('.person', { hasText: name });
}

const people = {};

describe('rim web client: profile, devices and group roles', { concurrency: 1 }, () => {
  before(async () => {
    server = await new Server('profile').start();
    base = server.base;
    browser = await chromium.launch({ executablePath: CHROMIUM, args: [`--lang=${LANG}`] });
  });

  after(async () => {
    for (const c of contexts) await c.close().catch(() => {});
    if (browser) await browser.close();
    if (server) await server.stop();
    for (const d of Object.values(people)) assert.deepEqual(d.errors, [], `${d.account}: errors in the page`);
  });

  test('a person changes their name and picture, and others see them', async () => {
    const laptop = await device('alice', STORY.alice);
    const bob = await device('bob', STORY.bob);
    people.laptop = laptop;
    people.bob = bob;
    laptop.uid = await register(laptop);
    bob.uid = await register(bob);
    await logIn(laptop, ui);
    await logIn(bob, ui);

    const dialog = await openProfile(laptop);
    assert.equal(await dialog.getByRole('heading', { level: 2 }).textContent(), STORY.title);
    const name = dialog.getByRole('textbox', { name: ui('profile.name') });
    assert.equal(await name.inputValue(), STORY.alice);
    await name.fill(STORY.renamed);
    await dialog.getByRole('checkbox', { name: ui('profile.hideLastSeen') }).check();
    await dialog.getByRole('button', { name: ui('profile.save'), exact: true }).click();
    await dialog.getByText(ui('profile.saved')).waitFor();
    await laptop.page.locator('#me-name', { hasText: STORY.renamed }).waitFor();

    await dialog.locator('#profile-picture').setInputFiles({ name: 'me.png', mimeType: 'image/png', buffer: png(48, 48, [40, 140, 90]) });
    await dialog.getByText(ui('profile.pictureSaved')).waitFor();
    await dialog.locator('.profile-picture img').waitFor();
    await laptop.page.locator('#me-avatar img').waitFor();

    // Bob reads Alice's profile as the server has it now; the picture is
    // readable with his token.
    const seen = await rest('GET', `/api/user/get?uid=${laptop.uid}`, await token(bob));
    assert.equal(seen.data.name, STORY.renamed);
    assert.equal(seen.data.hideLastSeen, true);
    assert.match(seen.data.avatar, /^\/api\/file\/\d+$/);
    const picture = await fetch(base + seen.data.avatar, { headers: { Authorization: `Bearer ${await token(bob)}` } });
    assert.equal(picture.status, 200);
    assert.equal(picture.headers.get('content-type'), 'image/png');

    // Not a picture: refused, said so, the picture kept.
    await dialog.locator('#profile-picture').setInputFiles({ name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('hello') });
    await dialog.getByText(uiPattern(ui, 'profile.pictureFailed')).waitFor();
    const still = await rest('GET', `/api/user/get?uid=${laptop.uid}`, await token(bob));
    assert.equal(still.data.avatar, seen.data.avatar);
    await dialog.getByRole('button', { name: ui('groups.close') }).click();
    laptop.name = STORY.renamed;
  });

  test('the devices are listed, and one logs out another', async () => {
    const { laptop } = people;
    const phone = await device('alice', STORY.renamed);
    people.phone = phone;
    await logIn(phone, ui);
    const dialog = await openProfile(laptop);
    const rows = devices(dialog);
    await rows.nth(1).waitFor();
    assert.equal(await rows.count(), 2);
    await mkdir(SHOTS, { recursive: true });
    await laptop.page.evaluate(() => document.querySelectorAll('.toast').forEach((el) => el.remove()));
    await laptop.page.screenshot({ path: path.join(SHOTS, 'desktop-profile.png') });
    const mine = rows.filter({ hasText: STORY.thisDevice });
    assert.equal(await mine.count(), 1, 'exactly one row is this device');
    assert.match(await mine.textContent(), /HeadlessChrome|Chrome/);
    const other = rows.filter({ hasNotText: STORY.thisDevice });
    // The phone has its socket open.
    await other.getByText(new RegExp(ui('profile.onlineNow'))).waitFor();
    await other.getByRole('button', { name: uiPattern(ui, 'profile.logOutDevice') }).click();
    // The phone is back at the login screen, told its session ended.
    await phone.page.locator('#login-view').waitFor();
    await phone.page.getByText(ui('app.sessionEnded')).waitFor();
    assert.equal(await token(phone), null);
    await rows.nth(1).waitFor({ state: 'detached' });
    assert.equal(await rows.count(), 1);
    await dialog.getByRole('button', { name: ui('groups.close') }).click();
  });

  test('a password change keeps this device and logs out the others', async () => {
    const { laptop, phone } = people;
    await logIn(phone, ui);
    const dialog = await openProfile(laptop);
    await dialog.getByLabel(ui('profile.oldPassword')).fill('not my password');
    await dialog.getByLabel(ui('profile.newPassword')).fill('a brand new password');
    await dialog.getByRole('button', { name: ui('profile.changePassword') }).click();
    await dialog.getByText(ui('profile.oldPasswordWrong')).waitFor();
    await online(phone);

    await dialog.getByLabel(ui('profile.oldPassword')).fill(laptop.password);
    await dialog.getByRole('button', { name: ui('profile.changePassword') }).click();
    await dialog.getByText(ui('profile.passwordChanged', { count: 1 })).waitFor();
    await phone.page.locator('#login-view').waitFor();
    await online(laptop);
    await dialog.getByRole('button', { name: ui('groups.close') }).click();

    // The old password no longer opens the account; the new one does.
    const old = await rest('POST', '/api/user/login', null, { account: 'alice', password: laptop.password });
    assert.equal(old.code, 401);
    laptop.password = 'a brand new password';
    phone.password = laptop.password;
    await logIn(phone, ui);
  });

  test('an admin makes another member admin, and leaving hands the group on', async () => {
    const { laptop, bob } = people;
    const made = await rest('POST', '/api/group/create', await token(laptop), { group: { name: STORY.group }, users: [{ uid: bob.uid }] });
    assert.equal(made.ok, true, JSON.stringify(made));
    // Nothing announces a new group before its first message: both read
    // their lists again.
    for (const d of [laptop, bob]) {
      await d.page.reload();
      await online(d);
    }
    await laptop.page.locator('#chat-list .chat-row', { hasText: STORY.group }).waitFor();
    await bob.page.locator('#chat-list .chat-row', { hasText: STORY.group }).waitFor();
    const bobs = await openMembers(bob, STORY.group);
    // Alice's picture shows in Bob's member list; Bob has none: initials.
    await memberRow(bobs, STORY.renamed).locator('.avatar img').waitFor();
    assert.equal(await memberRow(bobs, STORY.bob).locator('.avatar img').count(), 0);
    // Bob is not an admin: no role buttons for him.
    assert.equal(await bobs.getByRole('button', { name: ui('groups.makeAdminName', { name: STORY.renamed }) }).count(), 0);

    const dialog = await openMembers(laptop, STORY.group);
    // The only admin cannot step down.
    assert.equal(await dialog.getByRole('button', { name: ui('groups.removeAdminName', { name: STORY.renamed }) }).count(), 0);
    await dialog.getByRole('button', { name: ui('groups.makeAdminName', { name: STORY.bob }) }).click();
    await memberRow(dialog, STORY.bob).getByText(ui('groups.admin'), { exact: true }).waitFor();
    // Bob's open dialog follows, live: he is an admin now and sees the buttons.
    await memberRow(bobs, STORY.bob).getByText(ui('groups.admin'), { exact: true }).waitFor();
    await bobs.getByRole('button', { name: ui('groups.removeAdminName', { name: STORY.renamed }) }).waitFor();

    await dialog.getByRole('button', { name: ui('groups.removeAdminName', { name: STORY.bob }) }).click();
    await memberRow(dialog, STORY.bob).getByText(ui('groups.admin'), { exact: true }).waitFor({ state: 'detached' });
    await bobs.getByRole('button', { name: ui('groups.removeAdminName', { name: STORY.renamed }) }).waitFor({ state: 'detached' });

    // A change made while Bob's device is offline reaches it when it comes
    // back: the member lists are read again at each reconnection.
    await bob.context.setOffline(true);
    await bob.page.locator('#conn[data-state="offline"]').waitFor();
    await dialog.getByRole('button', { name: ui('groups.makeAdminName', { name: STORY.bob }) }).click();
    await memberRow(dialog, STORY.bob).getByText(ui('groups.admin'), { exact: true }).waitFor();
    assert.equal(await memberRow(bobs, STORY.bob).getByText(ui('groups.admin'), { exact: true }).count(), 0, 'an offline page heard of it');
    await bob.context.setOffline(false);
    await online(bob);
    await memberRow(bobs, STORY.bob).getByText(ui('groups.admin'), { exact: true }).waitFor();
    await dialog.getByRole('button', { name: ui('groups.removeAdminName', { name: STORY.bob }) }).click();
    await memberRow(bobs, STORY.bob).getByText(ui('groups.admin'), { exact: true }).waitFor({ state: 'detached' });

    // Alice leaves (after confirming): the group leaves her list, and Bob,
    // now alone in it, is its admin.
    laptop.page.once('dialog', (d) => d.accept());
    await dialog.getByRole('button', { name: ui('groups.leave') }).click();
    await laptop.page.locator('#chat-list .chat-row', { hasText: STORY.group }).waitFor({ state: 'detached' });
    await memberRow(bobs, STORY.renamed).waitFor({ state: 'detached' });
    await memberRow(bobs, STORY.bob).getByText(ui('groups.admin'), { exact: true }).waitFor();
  });
  test('a dot shows who is online, in the chat list and the member list, as they come and go', async () => {
    const { laptop, bob } = people;
    // Friends, so that they share a direct chat, and a group of the two.
    const asked = await rest('POST', '/api/friend/add', await token(bob), { fid: laptop.uid });
    assert.equal(asked.ok, true, JSON.stringify(asked));
    const agreed = await rest('POST', '/api/friend/status/modify', await token(laptop), { fid: bob.uid, status: 1 });
    assert.equal(agreed.ok, true, JSON.stringify(agreed));
    const chat = await rest('POST', '/api/group/direct', await token(bob), { uid: laptop.uid });
    assert.equal(chat.ok, true, JSON.stringify(chat));
    const made = await rest('POST', '/api/group/create', await token(laptop), { group: { name: STORY.dots }, users: [{ uid: bob.uid }] });
    assert.equal(made.ok, true, JSON.stringify(made));
    // Bob and Alice reload (nothing announces new conversations before their
    // first message), Bob first, so that Alice comes in with Bob online: her
    // dots come from what the server says.
    await bob.page.reload();
    await online(bob);
    await laptop.page.reload();
    await online(laptop);
    const label = ui('chats.online');
    const direct = laptop.page.locator('#chat-list .chat-row', { hasText: STORY.bob });
    // Named on hover and for screen readers (inside a button, the button's
    // own name carries it; see below).
    const dot = (where) => where.locator(`.online-dot[role="img"][title="${label}"][aria-label="${label}"]`);
    await dot(direct).waitFor();
    // The row's name says it too, not its colour alone.
    assert.match(await direct.getAttribute('aria-label'), new RegExp(label));
    const dialog = await openMembers(laptop, STORY.dots);
    await dot(memberRow(dialog, STORY.bob)).waitFor();
    // Her own row has none.
    assert.equal(await dot(memberRow(dialog, laptop.name)).count(), 0);

    // Bob leaves: both dots go, by the Presence push.
    await bob.page.goto('about:blank');
    await dot(memberRow(dialog, STORY.bob)).waitFor({ state: 'detached' });
    await dot(direct).waitFor({ state: 'detached' });
    assert.doesNotMatch(await direct.getAttribute('aria-label'), new RegExp(label));
    // He comes back: both dots return.
    await bob.page.goto(`${base}/`);
    await online(bob);
    await dot(memberRow(dialog, STORY.bob)).waitFor();
    await dot(direct).waitFor();
    // Bob sees Alice's dot as well.
    await dot(bob.page.locator('#chat-list')).waitFor();
  });
});
