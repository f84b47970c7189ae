// Times, days and links: turning server values into what people read.

/** Parses the server's "YYYY-MM-DD HH:MM:SS" (UTC) into a Date. */
export function parseTime(text) {
  const m = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})/.exec(text || '');
  if (!m) return new Date();
  return new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]));
}

const clock = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const weekday = new Intl.DateTimeFormat(undefined, { weekday: 'short' });
const shortDate = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short' });
const longDate = new Intl.DateTimeFormat(undefined, { weekday: 'long', day: 'numeric', month: 'long', year: 'numeric' });

function startOfDay(d) {
  return new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime();
}

const DAY = 24 * 3600 * 1000;

/** The local calendar day of `d`, as a key for grouping. */
export function dayKey(d) {
  return `${d.getFullYear()}-${d.getMonth()}-${d.getDate()}`;
}

/** "Today", "Yesterday" or "Monday, 3 March 2025", for day separators. */
export function dayLabel(d, now = new Date()) {
  const diff = Math.round((startOfDay(now) - startOfDay(d)) / DAY);
  if (diff === 0) return 'Today';
  if (diff === 1) return 'Yesterday';
  return longDate.format(d);
}

/** Time of a message: "14:05". */
export function timeLabel(d) {
  return clock.format(d);
}

/** Time in the conversation list: clock today, weekday this week, else date. */
export function listTimeLabel(d, now = new Date()) {
  const diff = Math.round((startOfDay(now) - startOfDay(d)) / DAY);
  if (diff === 0) return clock.format(d);
  if (diff === 1) return 'Yesterday';
  if (diff < 7) return weekday.format(d);
  return shortDate.format(d);
}

// http(s) URLs and bare www. addresses; trailing punctuation is left out.
const URL_RE = /\b(?:https?:\/\/|www\.)[^\s<>"]+/gi;
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

/** A file size for people: "512 B", "48 KB", "3.2 MB". */
export function fileSize(bytes) {
  const n = Number(bytes) || 0;
  if (n < 1000) return `${n} B`;
  if (n < 1_000_000) return `${Math.round(n / 1000)} KB`;
  return `${(n / 1_000_000).toFixed(n < 10_000_000 ? 1 : 0)} MB`;
}
