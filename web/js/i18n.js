// The languages of the web client: Simplified Chinese (zh-CN) and English
// (en). The language is the one chosen in the app (remembered in
// localStorage as `rim.lang`), else the first of the browser's languages
// (navigator.languages) that the client speaks, else English. Changing it
// re-labels the page at once; nothing is reloaded.
//
// Adding a string:
//   1. Give it a key under the screen it belongs to, such as
//      'conversation.send', in BOTH web/js/i18n/en.js and web/js/i18n/zh-CN.js.
//      Write each language as its people speak it, not word for word.
//   2. In code: t('conversation.send'), or with parameters
//      t('friends.notFound', { account }) for "… {account} …". Always write
//      the key as a literal: tests/browser/i18n.test.js finds the keys in use
//      by reading the t('…') calls, and fails on a key either dictionary lacks
//      and on a key nothing uses.
//   3. In web/index.html: data-i18n="key" sets the element's text;
//      data-i18n-aria-label, data-i18n-title and data-i18n-placeholder set
//      those attributes. Leave the element's own text empty.
//   4. A count: make the entry an object of plural forms, { one, other } in
//      English and { other } in Chinese (the categories of Intl.PluralRules),
//      and pass { count }: t('conversation.members', { count: 3 }). {count}
//      is written as a number of the language.
//   5. Dates and times: the helpers of format.js, which format for the
//      chosen language; never toLocaleString() without a locale.
//   6. Text a view renders must follow a change of language: render it again
//      from onLocaleChange (see the views' mount functions).
//
// Server error messages are shown as the server sends them; only what the
// client itself says goes through t().

import en from './i18n/en.js';
import zh from './i18n/zh-CN.js';

/** The languages, each named in itself (a picker shows these names). */
export const LANGUAGES = [
  { code: 'zh-CN', name: '简体中文', dict: zh },
  { code: 'en', name: 'English', dict: en },
];

const FALLBACK = 'en';
const STORAGE_KEY = 'rim.lang';
const events = new EventTarget();

function language(code) {
  return LANGUAGES.find((l) => l.code === code) || null;
}

/**
 * The client's language for a browser's list of languages (BCP 47 tags, most
 * preferred first): the first whose primary subtag the client speaks. Any
 * Chinese (zh-TW and zh-HK too) is given Simplified Chinese, the only
 * Chinese the client has; a browser that asks for neither gets English.
 */
export function detect(languages) {
  for (const tag of languages || []) {
    const primary = String(tag).toLowerCase().split('-')[0];
    const found = LANGUAGES.find((l) => l.code.toLowerCase().split('-')[0] === primary);
    if (found) return found.code;
  }
  return FALLBACK;
}

function browserLanguages() {
  if (typeof navigator === 'undefined') return [];
  return navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language];
}

function stored() {
  try {
    return typeof localStorage === 'undefined' ? null : localStorage.getItem(STORAGE_KEY);
  } catch {
    // Storage can be refused (a private window, a strict setting).
    return null;
  }
}

let current = language(stored())?.code || detect(browserLanguages());

/** The current language's code: 'zh-CN' or 'en'. */
export function locale() {
  return current;
}

/**
 * The locale for Intl formats. English follows the browser's own English
 * (en-GB writes 14:05 and 3 March, en-US 2:05 PM and March 3); Chinese is
 * always zh-CN, so that dates are in the same script as the rest.
 */
export function formatLocale() {
  if (current !== 'en') return current;
  const english = browserLanguages().find((tag) => /^en(-|$)/i.test(String(tag)));
  try {
    return english ? Intl.getCanonicalLocales(english)[0] : 'en';
  } catch {
    return 'en';
  }
}

const PLURAL_FORMS = ['zero', 'one', 'two', 'few', 'many', 'other'];

/** Whether a dictionary entry is a set of plural forms (not a group of keys). */
export function isPlural(entry) {
  return !!entry && typeof entry === 'object' && 'other' in entry && Object.keys(entry).every((k) => PLURAL_FORMS.includes(k));
}

function lookup(dict, key) {
  let entry = dict;
  for (const part of key.split('.')) {
    if (!entry || typeof entry !== 'object') return undefined;
    entry = entry[part];
  }
  return typeof entry === 'string' || isPlural(entry) ? entry : undefined;
}

/** The plural category of `count` in language `code` ('one', 'other', ...). */
export function pluralCategory(count, code = current) {
  return new Intl.PluralRules(code).select(count);
}

/**
 * A translation function for language `code`: t(key, params). The text of
 * `key` in that language (in English when the key is missing there; the key
 * itself when missing everywhere), with each {name} replaced by
 * params[name]. A plural entry picks its form by params.count.
 */
export function translator(code) {
  const lang = language(code) || language(FALLBACK);
  const numbers = new Intl.NumberFormat(lang.code);
  return (key, params = {}) => {
    let entry = lookup(lang.dict, key) ?? lookup(en, key);
    if (entry === undefined) return key;
    if (typeof entry !== 'string') {
      const count = Number(params.count) || 0;
      entry = entry[pluralCategory(count, lang.code)] ?? entry.other;
    }
    return entry.replace(/\{(\w+)\}/g, (whole, name) => {
      if (!(name in params)) return whole;
      return name === 'count' ? numbers.format(Number(params.count) || 0) : String(params[name]);
    });
  };
}

let translate = translator(current);

/** The current language's text of `key` (see translator). */
export function t(key, params) {
  return translate(key, params);
}

/** Calls `fn` after every change of language. */
export function onLocaleChange(fn) {
  events.addEventListener('change', () => fn(current));
}

/** Switches to language `code`, remembers it, re-labels the page and tells
 * every onLocaleChange listener. */
export function setLocale(code) {
  const lang = language(code);
  if (!lang || lang.code === current) return;
  current = lang.code;
  translate = translator(current);
  try {
    if (typeof localStorage !== 'undefined') localStorage.setItem(STORAGE_KEY, current);
  } catch {
    // Not remembered: the choice still holds until the page is closed.
  }
  if (typeof document !== 'undefined') applyToPage();
  events.dispatchEvent(new Event('change'));
}

const ATTRIBUTES = ['aria-label', 'title', 'placeholder'];

/** Labels the static page (web/index.html) in the current language: its
 * `lang`, the data-i18n texts and attributes, and the language pickers. */
export function applyToPage(root = document) {
  root.documentElement.lang = current;
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const attr of ATTRIBUTES) {
    for (const el of root.querySelectorAll(`[data-i18n-${attr}]`)) el.setAttribute(attr, t(el.getAttribute(`data-i18n-${attr}`)));
  }
  for (const select of root.querySelectorAll('select[data-language-picker]')) select.value = current;
}

/** Fills a <select> with the languages and switches on a choice. */
export function bindPicker(select) {
  select.replaceChildren(
    ...LANGUAGES.map((l) => {
      const option = document.createElement('option');
      option.value = l.code;
      option.lang = l.code;
      option.textContent = l.name;
      return option;
    }),
  );
  select.value = current;
  select.addEventListener('change', () => setLocale(select.value));
}
