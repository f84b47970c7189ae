// The web client's languages, checked without a browser: the dictionaries
// (web/js/i18n/*.js) have exactly the same keys, plural forms for every
// category each language has, and the same parameters; every key the client
// uses (t('…') in web/js, data-i18n* in web/index.html) exists, and every key
// is used; index.html has no words of its own outside the dictionaries; and
// the language, plural, date and time helpers do what the views rely on.
//
// Run: cd tests/browser && node --test i18n.test.js (part of npm test).

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { LANGUAGES, detect, isPlural, setLocale, translator } from '../../web/js/i18n.js';
import { initials } from '../../web/js/dom.js';
import { dayLabel, listTimeLabel, timeLabel, fileSize, timeOf, linkify } from '../../web/js/format.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const web = path.resolve(here, '../../web');

/** A dictionary as {key: entry}, a plural entry being one leaf. */
function flatten(dict, prefix = '', out = {}) {
  for (const [name, entry] of Object.entries(dict)) {
    const key = prefix ? `${prefix}.${name}` : name;
    if (typeof entry === 'string' || isPlural(entry)) out[key] = entry;
    else if (entry && typeof entry === 'object') flatten(entry, key, out);
    else out[key] = entry; // neither: reported below
  }
  return out;
}

function params(entry) {
  const forms = typeof entry === 'string' ? [entry] : Object.values(entry);
  const names = new Set();
  for (const form of forms) for (const m of form.matchAll(/\{(\w+)\}/g)) names.add(m[1]);
  return [...names].sort();
}

function files(dir, ext) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) out.push(...files(full, ext));
    else if (full.endsWith(ext)) out.push(full);
  }
  return out;
}

/** Source without its comments (so that examples in them are not calls). */
function code(text) {
  return text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
}

const dicts = Object.fromEntries(LANGUAGES.map((l) => [l.code, flatten(l.dict)]));
const [first, ...others] = LANGUAGES.map((l) => l.code);

/** Keys the client uses, with where: {key: [file, ...]}. */
function usedKeys() {
  const used = {};
  const use = (key, file) => (used[key] ||= []).push(path.relative(web, file));
  const dynamic = [];
  for (const file of files(path.join(web, 'js'), '.js')) {
    if (file.includes(`${path.sep}i18n${path.sep}`)) continue;
    const src = code(readFileSync(file, 'utf8'));
    for (const m of src.matchAll(/\bt\(\s*(['"])([^'"]*)\1/g)) use(m[2], file);
    // i18n.js itself passes the keys of data-i18n attributes along (checked
    // below, in index.html).
    if (file === path.join(web, 'js', 'i18n.js')) continue;
    for (const m of src.matchAll(/\bt\(\s*(?!['"])[^)]{0,40}/g)) dynamic.push(`${path.relative(web, file)}: ${m[0]}`);
  }
  const html = path.join(web, 'index.html');
  for (const m of readFileSync(html, 'utf8').matchAll(/data-i18n(?:-[a-z-]+)?="([^"]*)"/g)) use(m[1], html);
  return { used, dynamic };
}

describe('the dictionaries', () => {
  test('every entry is a text or a set of plural forms', () => {
    for (const [code, dict] of Object.entries(dicts)) {
      for (const [key, entry] of Object.entries(dict)) {
        assert.ok(typeof entry === 'string' || isPlural(entry), `${code}: ${key} is ${JSON.stringify(entry)}`);
        const forms = typeof entry === 'string' ? [entry] : Object.values(entry);
        for (const form of forms) assert.ok(typeof form === 'string' && form.length > 0, `${code}: ${key} has an empty form`);
      }
    }
  });

  test('every language has exactly the same keys', () => {
    for (const code of others) {
      const a = Object.keys(dicts[first]);
      const b = Object.keys(dicts[code]);
      assert.deepEqual(
        { [`only in ${code}`]: b.filter((k) => !a.includes(k)), [`only in ${first}`]: a.filter((k) => !b.includes(k)) },
        { [`only in ${code}`]: [], [`only in ${first}`]: [] },
      );
    }
  });

  test('a text has the same parameters in every language', () => {
    for (const code of others) {
      for (const [key, entry] of Object.entries(dicts[first])) {
        const other = dicts[code][key];
        if (other !== undefined) assert.deepEqual(params(other), params(entry), `${code}: ${key}`);
      }
    }
  });

  test('a plural has a form for each plural category of its language, and only those', () => {
    for (const code of Object.keys(dicts)) {
      const categories = new Intl.PluralRules(code).resolvedOptions().pluralCategories.sort();
      for (const [key, entry] of Object.entries(dicts[code])) {
        if (typeof entry === 'string') continue;
        assert.deepEqual(Object.keys(entry).sort(), categories, `${code}: ${key}`);
        assert.ok(params(entry).includes('count'), `${code}: the plural ${key} never shows {count}`);
      }
      // A plural in one language is a plural in all: the code passes {count}.
      for (const other of Object.keys(dicts)) {
        for (const [key, entry] of Object.entries(dicts[other])) {
          if (isPlural(entry)) assert.ok(isPlural(dicts[code][key]), `${key} is a plural in ${other} but not in ${code}`);
        }
      }
    }
  });
});

describe('the keys in use', () => {
  const { used, dynamic } = usedKeys();

  test('are written as literals', () => {
    assert.deepEqual(dynamic, [], 't() with a key that is not a literal cannot be checked');
  });

  test('exist in every language', () => {
    for (const [code, dict] of Object.entries(dicts)) {
      const missing = Object.entries(used)
        .filter(([key]) => !(key in dict))
        .map(([key, where]) => `${key} (${[...new Set(where)].join(', ')})`);
      assert.deepEqual(missing, [], `keys used but missing from ${code}`);
    }
  });

  test('cover every key of the dictionaries', () => {
    const unused = Object.keys(dicts[first]).filter((key) => !(key in used));
    assert.deepEqual(unused, [], 'keys nothing uses: remove them, or use them');
  });

  test('index.html has no words outside the dictionaries', () => {
    const html = readFileSync(path.join(web, 'index.html'), 'utf8')
      .replace(/<!--[\s\S]*?-->/g, '')
      .replace(/<noscript>[\s\S]*?<\/noscript>/g, '')
      .replace(/<(script|style)[\s\S]*?<\/\1>/g, '');
    // Text between tags, and the attributes people read.
    const words = [];
    for (const m of html.matchAll(/>([^<]+)</g)) if (m[1].trim() && m[1].trim() !== 'rim') words.push(m[1].trim());
    for (const m of html.matchAll(/\s(aria-label|title|placeholder|alt)="([^"]*)"/g)) words.push(`${m[1]}="${m[2]}"`);
    assert.deepEqual(words, [], 'text in index.html must come from data-i18n attributes');
    // The notice for browsers without JavaScript is in every language.
    const noscript = /<noscript>([\s\S]*?)<\/noscript>/.exec(readFileSync(path.join(web, 'index.html'), 'utf8'))[1];
    for (const { code } of LANGUAGES) assert.match(noscript, new RegExp(`lang="${code}"`), `the noscript notice in ${code}`);
  });
});

describe('choosing the language', () => {
  test('follows the first of the browser languages the client speaks', () => {
    assert.equal(detect(['zh-CN', 'en-US']), 'zh-CN');
    assert.equal(detect(['zh']), 'zh-CN');
    assert.equal(detect(['zh-TW']), 'zh-CN');
    assert.equal(detect(['zh-Hans-CN']), 'zh-CN');
    assert.equal(detect(['en-GB', 'zh-CN']), 'en');
    assert.equal(detect(['de-DE', 'zh-CN', 'en']), 'zh-CN');
    assert.equal(detect(['de-DE', 'fr']), 'en');
    assert.equal(detect([]), 'en');
    assert.equal(detect(undefined), 'en');
  });
});

describe('translating', () => {
  const en = translator('en');
  const zh = translator('zh-CN');

  test('fills in parameters and leaves unknown ones visible', () => {
    assert.equal(en('friends.messageName', { name: 'Ada' }), 'Message Ada');
    assert.equal(zh('friends.messageName', { name: '王芳' }), '给王芳发消息');
    assert.equal(en('friends.messageName'), 'Message {name}');
  });

  test('picks plural forms by the rules of the language', () => {
    assert.equal(en('conversation.memberCount', { count: 1 }), '1 member');
    assert.equal(en('conversation.memberCount', { count: 3 }), '3 members');
    assert.equal(en('conversation.memberCount', { count: 0 }), '0 members');
    assert.equal(en('shell.reconnectingIn', { count: 1 }), 'Offline. Reconnecting in 1 second.');
    assert.equal(zh('conversation.memberCount', { count: 1 }), '1 位成员');
    assert.equal(zh('conversation.readBy', { count: 2 }), '2 人已读');
    // {count} is a number of the language.
    assert.equal(en('search.found', { count: 1234 }), '1,234 messages found');
  });

  test('answers the key itself for a key no language has', () => {
    assert.equal(en('no.such.key'), 'no.such.key');
  });
});

describe('dates and times', () => {
  const now = new Date(2025, 2, 5, 15, 30); // Wednesday 5 March 2025, local time
  const at = (y, m, d, hh = 9, mm = 5) => new Date(y, m - 1, d, hh, mm);

  test('a message time is createdAt when the server sends it, else createTime as UTC', () => {
    const ms = Date.UTC(2025, 2, 5, 6, 5, 7, 250);
    // createdAt wins, even when createTime is written in another zone.
    assert.equal(timeOf({ createdAt: ms, createTime: '2025-03-05 14:05:07' }).getTime(), ms);
    assert.equal(timeOf({ createTime: '2025-03-05 06:05:07' }).getTime(), Date.UTC(2025, 2, 5, 6, 5, 7));
    const fallback = new Date(0);
    assert.equal(timeOf({ createTime: 'yesterday' }, fallback), fallback);
    assert.equal(timeOf({}, fallback), fallback);
    assert.equal(timeOf({ createdAt: 'soon', createTime: '2025-03-05 06:05:07' }).getTime(), Date.UTC(2025, 2, 5, 6, 5, 7));
  });

  test('in English', () => {
    setLocale('en');
    assert.equal(dayLabel(at(2025, 3, 5), now), 'Today');
    assert.equal(dayLabel(at(2025, 3, 4), now), 'Yesterday');
    assert.match(dayLabel(at(2025, 3, 3), now), /^Monday,? (3 March|March 3)$/);
    assert.match(dayLabel(at(2024, 12, 31), now), /Tuesday.*31.*2024|Tuesday.*December 31, 2024/);
    assert.equal(listTimeLabel(at(2025, 3, 4), now), 'Yesterday');
    assert.equal(listTimeLabel(at(2025, 3, 2), now), 'Sun');
    assert.match(timeLabel(at(2025, 3, 5, 14, 5)), /^(2:05\sPM|14:05)$/);
  });

  test('in Chinese', () => {
    setLocale('zh-CN');
    try {
      assert.equal(dayLabel(at(2025, 3, 5), now), '今天');
      assert.equal(dayLabel(at(2025, 3, 4), now), '昨天');
      assert.equal(dayLabel(at(2025, 3, 3), now), '3月3日星期一');
      assert.equal(dayLabel(at(2024, 12, 31), now), '2024年12月31日星期二');
      assert.equal(listTimeLabel(at(2025, 3, 5, 9, 5), now), '09:05');
      assert.equal(listTimeLabel(at(2025, 3, 4), now), '昨天');
      assert.equal(listTimeLabel(at(2025, 3, 2), now), '周日');
      assert.equal(listTimeLabel(at(2025, 1, 20), now), '1月20日');
      assert.equal(listTimeLabel(at(2024, 12, 31), now), '2024/12/31');
      assert.equal(timeLabel(at(2025, 3, 5, 14, 5)), '14:05');
      assert.equal(fileSize(3_456_789), '3.5 MB');
    } finally {
      setLocale('en');
    }
  });
});

describe('links in Chinese text', () => {
  test('end where the Chinese resumes, without a space', () => {
    const links = (text) => linkify(text).filter((p) => p.href).map((p) => p.text);
    assert.deepEqual(links('地图：https://example.org/park?x=1&y=2。不是链接'), ['https://example.org/park?x=1&y=2']);
    assert.deepEqual(links('看看www.example.org，很好'), ['www.example.org']);
    assert.deepEqual(links('（https://example.org/a）'), ['https://example.org/a']);
    assert.deepEqual(links('https://zh.wikipedia.org/wiki/%E5%8C%97%E4%BA%AC 北京'), ['https://zh.wikipedia.org/wiki/%E5%8C%97%E4%BA%AC']);
    // English as before.
    assert.deepEqual(links('see https://example.org/park?x=1&y=2. ok'), ['https://example.org/park?x=1&y=2']);
  });
});

describe('avatars of Chinese names', () => {
  test('show the last two characters; other names their initials', () => {
    assert.equal(initials('王芳'), '王芳');
    assert.equal(initials('欧阳娜娜'), '娜娜');
    assert.equal(initials('静'), '静');
    assert.equal(initials('Ada Lovelace'), 'AL');
    assert.equal(initials('王芳 Amy'), '王A');
    assert.equal(initials(''), '?');
  });
});
