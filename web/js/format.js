// Times, days and links: turning server values into what people read.
// Dates and times are written for the chosen language (i18n.js): its words
// ("Today", "昨天") and Intl's formats for its locale, in the browser's time
// zone.

import { formatLocale, t } from './i18n.js';

/** Parses a "YYYY-MM-DD HH:MM:SS" time as UTC into a Date (null when it is
 * not one). */
export function parseTime(text) {
  const m = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})/.exec(text || '');
  if (!m) return null;
  return new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]));
}

/**
 * When a message (a REST message object or a pushed body) was written: its
 * Unix-millisecond `createdAt` when the server sends one (unambiguous), else
 * its `createTime` read as UTC (what servers without `createdAt` write),
 * else `fallback`.
 */
export function timeOf(m, fallback = new Date()) {
  if (m && Number.isFinite(m.createdAt)) return new Date(m.createdAt);
  return (m && parseTime(m.createTime)) || fallback;
}

const OPTIONS = {
  weekday: { weekday: 'short' },
  shortDate: { day: 'numeric', month: 'short' },
  numericDate: { day: 'numeric', month: 'numeric', year: 'numeric' },
  longDate: { weekday: 'long', day: 'numeric', month: 'long' },
  longDateYear: { weekday: 'long', day: 'numeric', month: 'long', year: 'numeric' },
};

const formats = new Map();

/** An Intl.DateTimeFormat of `kind` for the current locale, made once. */
function format(kind) {
  const loc = formatLocale();
  const key = `${loc}|${kind}`;
  let f = formats.get(key);
  if (!f) {
    let options = OPTIONS[kind];
    if (kind === 'clock' || kind === 'full') {
      // Two-digit hours where the locale counts to 24 (zh-CN, en-GB: 09:05),
      // as its clocks do; "9:05 AM" where it counts to 12 (en-US).
      const h12 = new Intl.DateTimeFormat(loc, { hour: 'numeric' }).resolvedOptions().hour12;
      const clock = { hour: h12 ? 'numeric' : '2-digit', minute: '2-digit' };
      options = kind === 'clock' ? clock : { ...OPTIONS.longDateYear, ...clock };
    }
    f = new Intl.DateTimeFormat(loc, options);
    formats.set(key, f);
  }
  return f;
}

function startOfDay(d) {
  return new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime();
}

const DAY = 24 * 3600 * 1000;

function daysBefore(d, now) {
  return Math.round((startOfDay(now) - startOfDay(d)) / DAY);
}

/** The local calendar day of `d`, as a key for grouping. */
export function dayKey(d) {
  return `${d.getFullYear()}-${d.getMonth()}-${d.getDate()}`;
}

/** For day separators: "Today", "Yesterday", "Monday, 3 March" this year,
 * "Monday, 3 March 2025" before (今天, 昨天, 3月3日星期一, 2025年3月3日星期一). */
export function dayLabel(d, now = new Date()) {
  const diff = daysBefore(d, now);
  if (diff === 0) return t('time.today');
  if (diff === 1) return t('time.yesterday');
  return format(d.getFullYear() === now.getFullYear() ? 'longDate' : 'longDateYear').format(d);
}

/** Time of a message: "14:05", "2:05 PM". */
export function timeLabel(d) {
  return format('clock').format(d);
}

/** Date and time in full, for a tooltip. */
export function fullTimeLabel(d) {
  return format('full').format(d);
}

/** Time in the conversation list: the clock today, "Yesterday", the weekday
 * this week, the day this year, else the date with its year. */
export function listTimeLabel(d, now = new Date()) {
  const diff = daysBefore(d, now);
  if (diff === 0) return timeLabel(d);
  if (diff === 1) return t('time.yesterday');
  if (diff > 1 && diff < 7) return format('weekday').format(d);
  if (d.getFullYear() === now.getFullYear()) return format('shortDate').format(d);
  return format('numericDate').format(d);
}

// http(s) URLs and bare www. addresses; trailing punctuation is left out.
// Chinese puts no space after a link: a URL also ends at a CJK character or
// at CJK or full-width punctuation ("见 https://example.org/a。明天…"). A
// link with Chinese in its path still works when pasted percent-encoded, as
// browsers copy it.
const URL_RE = /\b(?:https?:\/\/|www\.)[^\s<>"\u3000-\u303f\u3400-\u9fff\uff00-\uffef]+/gi;
const TRAILING = /[).,;:!?'\]}]+$/;

/**
 * Splits text into plain strings and links: [{text}, {text, href}]. Only
 * http and https links are made, so "javascript:" and friends stay text.
 */
export function linkify(text) {
  const parts = [];
  let at = 0;
  for (const match of text.matchAll(URL_RE)) {
    let raw = match[0];
    const trail = TRAILING.exec(raw);
    // Keep a closing parenthesis that belongs to the URL, as in Wikipedia links.
    if (trail && !(trail[0] === ')' && raw.includes('('))) raw = raw.slice(0, -trail[0].length);
    const href = safeHref(raw.toLowerCase().startsWith('www.') ? `https://${raw}` : raw);
    if (!href) continue;
    if (match.index > at) parts.push({ text: text.slice(at, match.index) });
    parts.push({ text: raw, href });
    at = match.index + raw.length;
  }
  if (at < text.length) parts.push({ text: text.slice(at) });
  return parts;
}

function safeHref(candidate) {
  try {
    const url = new URL(candidate);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
  } catch {
    return null;
  }
}

/** One line of a message for the conversation list. */
export function preview(content, max = 80) {
  const line = String(content || '').replace(/\s+/g, ' ').trim();
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

/**
 * Splits a search snippet into plain and highlighted parts: the server puts
 * each hit between « and » (and shows a « or » of the message itself as ‹
 * or ›, so these are always markers). [{text, hit}], to be set as text.
 */
export function snippetParts(snippet) {
  const parts = [];
  let text = '';
  let hit = false;
  for (const ch of String(snippet || '')) {
    if ((ch === '«' && !hit) || (ch === '»' && hit)) {
      if (text) parts.push({ text, hit });
      text = '';
      hit = !hit;
    } else {
      text += ch;
    }
  }
  if (text) parts.push({ text, hit });
  return parts;
}

/** A file size for people: "512 B", "48 KB", "3.2 MB" (the number written
 * as the language writes numbers). */
export function fileSize(bytes) {
  const n = Number(bytes) || 0;
  const num = (value, digits) => new Intl.NumberFormat(formatLocale(), { maximumFractionDigits: digits }).format(value);
  if (n < 1000) return `${num(n, 0)} B`;
  if (n < 1_000_000) return `${num(Math.round(n / 1000), 0)} KB`;
  return `${num(n / 1_000_000, n < 10_000_000 ? 1 : 0)} MB`;
}
