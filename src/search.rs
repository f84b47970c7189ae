//! Full-text search as text processing: what a message puts into the index,
//! what a query asks of it, how hits are ranked and how a snippet quotes
//! them. No SQL here; `store::search` runs the queries.
//!
//! The index is SQLite FTS5 with the `unicode61` tokenizer and
//! `remove_diacritics 2`: words of space-separated languages are folded for
//! case and accents ("cafe" finds "Café"). Chinese, Japanese and Korean are
//! written without spaces, where `unicode61` would see a whole sentence as
//! one token; so before indexing, each run of such characters becomes its
//! overlapping bigrams followed by its last character ("wifi密码是1234" is
//! indexed as `wifi 密码 码是 是 1234`). A query gets the same transform:
//! a run of two or more characters is the phrase of its bigrams (which
//! matches exactly that substring), a single character matches the tokens
//! that start with it. Two-character words, the most common kind in
//! Chinese, are thus found exactly, which a trigram index cannot do.
//!
//! Queries are never FTS5 syntax: the user's words are split and quoted
//! here, so `"`, `*`, `NEAR(`, `OR`, `col:` and friends are searched for as
//! the text they are (or ignored as punctuation), never interpreted.
//!
//! Ranking is Okapi BM25 computed here over the candidate messages, not
//! FTS5's `bm25()`: that function counts every row matching each term to
//! weigh it, which for a word in most messages of a million-message
//! database costs more than the whole latency budget. Here the document
//! frequency of each term is counted up to [`DF_CAP`] (and not at all for a
//! single-term query, where it cannot change the order).

use std::borrow::Cow;

/// Marks the start of a hit in a snippet.
pub const HIT_START: char = '«';
/// Marks the end of a hit in a snippet.
pub const HIT_END: char = '»';
/// What `«` and `»` of the message itself become in a snippet, so that the
/// markers are unambiguous.
const QUOTE_START: char = '‹';
const QUOTE_END: char = '›';

/// Most words (terms) a query may have.
pub const MAX_TERMS: usize = 8;
/// Document frequencies are counted up to this many messages.
pub const DF_CAP: u64 = 10_000;
/// Snippets are about this many characters long.
const SNIPPET_CHARS: usize = 120;
/// Characters of context shown before the first hit of a long message.
const SNIPPET_LEAD: usize = 30;

const BM25_K1: f64 = 1.2;
const BM25_B: f64 = 0.75;

/// Chinese, Japanese and Korean characters: indexed as bigrams.
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x1100..=0x11FF       // Hangul Jamo
        | 0x2E80..=0x2FDF     // CJK radicals, Kangxi radicals
        | 0x3005..=0x3007     // 々 〆 〇
        | 0x3021..=0x3029     // Hangzhou numerals
        | 0x3031..=0x3035     // kana repeat marks
        | 0x3040..=0x30FF     // Hiragana, Katakana
        | 0x3100..=0x312F     // Bopomofo
        | 0x3130..=0x318F     // Hangul compatibility Jamo
        | 0x31A0..=0x31BF     // Bopomofo extended
        | 0x31F0..=0x31FF     // Katakana phonetic extensions
        | 0x3400..=0x4DBF     // CJK extension A
        | 0x4E00..=0x9FFF     // CJK unified ideographs
        | 0xA960..=0xA97F     // Hangul Jamo extended A
        | 0xAC00..=0xD7AF     // Hangul syllables
        | 0xD7B0..=0xD7FF     // Hangul Jamo extended B
        | 0xF900..=0xFAFF     // CJK compatibility ideographs
        | 0xFF66..=0xFF9F     // half-width Katakana
        | 0xFFA0..=0xFFDC     // half-width Hangul
        | 0x1B000..=0x1B16F   // kana supplement and extended
        | 0x20000..=0x3134F   // CJK extensions B to G
    )
}

/// Combining marks: part of the word they follow, dropped by folding.
fn is_mark(c: char) -> bool {
    matches!(c as u32,
        0x0300..=0x036F | 0x1AB0..=0x1AFF | 0x1DC0..=0x1DFF | 0x20D0..=0x20FF | 0xFE20..=0xFE2F)
}

fn is_word_char(c: char) -> bool {
    !is_cjk(c) && (c.is_alphanumeric() || is_mark(c))
}

/// A word of a space-separated script, or a run of CJK characters, as a
/// byte range of the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Span {
    Word(usize, usize),
    Cjk(usize, usize),
}

/// The words and CJK runs of `text`, in order; everything else separates.
fn spans(text: &str) -> Vec<Span> {
    let mut out = Vec::new();
    let mut current: Option<(bool, usize)> = None; // (is_cjk, start)
    for (i, c) in text.char_indices() {
        let class = if is_cjk(c) {
            Some(true)
        } else if is_word_char(c) {
            Some(false)
        } else {
            None
        };
        match (current, class) {
            (Some((cjk, _)), Some(now)) if cjk == now => {}
            (Some((cjk, start)), _) => {
                out.push(if cjk {
                    Span::Cjk(start, i)
                } else {
                    Span::Word(start, i)
                });
                current = class.map(|cjk| (cjk, i));
            }
            (None, Some(cjk)) => current = Some((cjk, i)),
            (None, None) => {}
        }
    }
    if let Some((cjk, start)) = current {
        out.push(if cjk {
            Span::Cjk(start, text.len())
        } else {
            Span::Word(start, text.len())
        });
    }
    out
}

/// Lowercase without accents, close to what `unicode61 remove_diacritics 2`
/// does. Used for ranking and highlighting only: matching is FTS5's own.
/// Letters that are not a base letter plus a diacritic (ø, ł, ß, æ) stay.
pub fn fold(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    for c in word.chars() {
        if is_mark(c) {
            continue;
        }
        for l in c.to_lowercase() {
            out.push(strip_accent(l));
        }
    }
    out
}

fn strip_accent(c: char) -> char {
    match c {
        'à'..='å' | 'ā' | 'ă' | 'ą' | 'ǎ' | 'ạ'..='ặ' => 'a',
        'ç' | 'ć' | 'ĉ' | 'ċ' | 'č' => 'c',
        'ď' => 'd',
        'è'..='ë' | 'ē' | 'ĕ' | 'ė' | 'ę' | 'ě' | 'ẹ'..='ệ' => 'e',
        'ĝ' | 'ğ' | 'ġ' | 'ģ' => 'g',
        'ĥ' => 'h',
        'ì'..='ï' | 'ĩ' | 'ī' | 'ĭ' | 'į' | 'ǐ' | 'ỉ' | 'ị' => 'i',
        'ĵ' => 'j',
        'ķ' => 'k',
        'ĺ' | 'ļ' | 'ľ' => 'l',
        'ñ' | 'ń' | 'ņ' | 'ň' => 'n',
        'ò'..='ö' | 'ō' | 'ŏ' | 'ő' | 'ơ' | 'ǒ' | 'ọ'..='ợ' => 'o',
        'ŕ' | 'ŗ' | 'ř' => 'r',
        'ś' | 'ŝ' | 'ş' | 'š' | 'ș' => 's',
        'ţ' | 'ť' | 'ț' => 't',
        'ù'..='ü' | 'ũ' | 'ū' | 'ŭ' | 'ů' | 'ű' | 'ų' | 'ư' | 'ǔ' | 'ụ'..='ự' => 'u',
        'ŵ' => 'w',
        'ý' | 'ÿ' | 'ŷ' | 'ỳ'..='ỹ' => 'y',
        'ź' | 'ż' | 'ž' => 'z',
        other => other,
    }
}

/// Pushes the index tokens of one CJK run: its bigrams, then its last
/// character (which also separates it from the next run).
fn cjk_tokens(run: &str, mut push: impl FnMut(&str)) {
    let mut prev: Option<usize> = None;
    for (i, _) in run.char_indices() {
        if let Some(p) = prev {
            let end = run[i..]
                .chars()
                .next()
                .map_or(run.len(), |c| i + c.len_utf8());
            push(&run[p..end]);
        }
        prev = Some(i);
    }
    if let Some(p) = prev {
        push(&run[p..]);
    }
}

/// Pushes the index tokens of `text` in order: its words, and the bigrams
/// of its CJK runs.
fn tokens(text: &str, mut push: impl FnMut(&str)) {
    if text.is_ascii() {
        // No CJK and no marks: the tokens are the runs of letters and
        // digits, as `spans` would find them, only faster.
        text.split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|t| !t.is_empty())
            .for_each(push);
        return;
    }
    for span in spans(text) {
        match span {
            Span::Word(s, e) => push(&text[s..e]),
            Span::Cjk(s, e) => cjk_tokens(&text[s..e], &mut push),
        }
    }
}

/// What the index holds for a message's text: its tokens separated by
/// spaces (CJK runs as bigrams). FTS5 folds case and accents itself.
pub fn index_body(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 2);
    tokens(text, |t| {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(t);
    });
    out
}

/// Conversation `gid`'s mark on an index token: `g{gid}x`. The id is
/// digits only, so the first `x` ends it and no id and word run together
/// ambiguously (`g1x2x` is conversation 1's "2x").
fn scope_prefix(gid: u64) -> String {
    format!("g{gid}x")
}

/// What the index's `scoped` column holds for a message of conversation
/// `gid`: each token of [`index_body`] with the conversation's mark in
/// front, in the same order, so that a phrase of the message is a phrase
/// of these tokens too. A search within some conversations asks for their
/// tokens only (see [`Query::scoped`]), and FTS5 reads no other
/// conversation's matches.
pub fn scoped_body(gid: u64, text: &str) -> String {
    let prefix = scope_prefix(gid);
    let mut out = String::with_capacity(text.len() * 2);
    tokens(text, |t| {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&prefix);
        out.push_str(t);
    });
    out
}

/// The folded index tokens of `text`, as [`index_body`] makes them. A word
/// already folded (lower-case ASCII letters and digits, most words) is
/// borrowed: ranking tokenizes every candidate of a search, up to 1,000
/// messages, and made a string of each of their words.
fn doc_tokens(text: &str) -> Vec<Cow<'_, str>> {
    let mut out = Vec::new();
    for span in spans(text) {
        match span {
            Span::Word(s, e) => {
                let word = &text[s..e];
                if word
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                {
                    out.push(Cow::Borrowed(word));
                } else {
                    out.push(Cow::Owned(fold(word)));
                }
            }
            Span::Cjk(s, e) => cjk_tokens(&text[s..e], |t| out.push(Cow::Owned(fold(t)))),
        }
    }
    out
}

/// Markup of a RichText message is not searched: `<b>bye</b>` is indexed
/// as "bye". A tag is `<` followed by a letter, `/` or `!`, up to `>`.
pub fn strip_markup(text: &str) -> Cow<'_, str> {
    if !text.contains('<') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut in_tag = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let opens = c == '<'
            && chars
                .peek()
                .is_some_and(|n| n.is_ascii_alphabetic() || matches!(n, '/' | '!'));
        match c {
            _ if opens && !in_tag => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    Cow::Owned(out)
}

/// One term of a query: a word (possibly several tokens, as "wi-fi" is "wi
/// fi") or a CJK run, to be found as a phrase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// The tokens as typed, for the FTS5 phrase (FTS5 folds them itself).
    raw: Vec<String>,
    /// The same tokens folded, for ranking.
    folded: Vec<String>,
    /// A single CJK character: matches every token starting with it.
    prefix: bool,
    /// The folded CJK run (or character), for highlighting.
    cjk: Option<String>,
}

impl Term {
    /// The FTS5 expression of this term, restricted to the `body` column.
    /// Tokens hold only letters, digits and marks (never `"`), so quoting
    /// them needs no escaping.
    pub fn fts(&self) -> String {
        let mut s = String::from("body : \"");
        s.push_str(&self.raw.join(" "));
        s.push('"');
        if self.prefix {
            s.push_str(" *");
        }
        s
    }

    /// The FTS5 expression of this term within conversation `gid`: its
    /// tokens with the conversation's mark (see [`scoped_body`]), in the
    /// `scoped` column.
    fn scoped(&self, gid: u64) -> String {
        let prefix = scope_prefix(gid);
        let mut s = String::from("scoped : \"");
        for (i, t) in self.raw.iter().enumerate() {
            if i > 0 {
                s.push(' ');
            }
            s.push_str(&prefix);
            s.push_str(t);
        }
        s.push('"');
        if self.prefix {
            s.push_str(" *");
        }
        s
    }

    /// How often this term occurs in a document's folded tokens.
    fn count_in(&self, tokens: &[Cow<'_, str>]) -> usize {
        if self.prefix {
            let Some(c) = self.cjk.as_deref().and_then(|s| s.chars().next()) else {
                return 0;
            };
            return tokens.iter().filter(|t| t.starts_with(c)).count();
        }
        let n = self.folded.len();
        if n == 0 || tokens.len() < n {
            return 0;
        }
        tokens
            .windows(n)
            .filter(|w| w.iter().zip(&self.folded).all(|(t, f)| *t == **f))
            .count()
    }
}

/// A parsed search query: the terms every hit contains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub terms: Vec<Term>,
}

/// The query has more than [`MAX_TERMS`] terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyTerms;

impl Query {
    /// Splits what a person typed into terms. Punctuation separates and is
    /// otherwise ignored; a query of punctuation only has no terms (and
    /// finds nothing). Repeated terms (after folding) count once.
    pub fn parse(text: &str) -> Result<Query, TooManyTerms> {
        let mut terms: Vec<Term> = Vec::new();
        for word in text.split_whitespace() {
            // Within a word: "wi-fi" is one term of two tokens (a phrase),
            // "wifi密码" is the term "wifi" and the term "密码".
            let mut latin: Vec<&str> = Vec::new();
            let mut pieces: Vec<Term> = Vec::new();
            let flush = |latin: &mut Vec<&str>, pieces: &mut Vec<Term>| {
                if !latin.is_empty() {
                    pieces.push(Term {
                        raw: latin.iter().map(|s| s.to_string()).collect(),
                        folded: latin.iter().map(|s| fold(s)).collect(),
                        prefix: false,
                        cjk: None,
                    });
                    latin.clear();
                }
            };
            for span in spans(word) {
                match span {
                    Span::Word(s, e) => latin.push(&word[s..e]),
                    Span::Cjk(s, e) => {
                        flush(&mut latin, &mut pieces);
                        let run = &word[s..e];
                        let single = run.chars().nth(1).is_none();
                        let mut raw = Vec::new();
                        if single {
                            raw.push(run.to_owned());
                        } else {
                            cjk_tokens(run, |t| raw.push(t.to_owned()));
                            raw.pop(); // the trailing single character
                        }
                        pieces.push(Term {
                            folded: raw.iter().map(|t| fold(t)).collect(),
                            raw,
                            prefix: single,
                            cjk: Some(fold(run)),
                        });
                    }
                }
            }
            flush(&mut latin, &mut pieces);
            for piece in pieces {
                let known = terms
                    .iter()
                    .any(|t| t.folded == piece.folded && t.prefix == piece.prefix);
                if !known {
                    terms.push(piece);
                }
            }
        }
        if terms.len() > MAX_TERMS {
            return Err(TooManyTerms);
        }
        Ok(Query { terms })
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The FTS5 expression matching messages that contain every term.
    pub fn fts(&self) -> String {
        self.terms
            .iter()
            .map(Term::fts)
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    /// The FTS5 expression matching messages of conversations `gids` that
    /// contain every term: per conversation the terms with its mark, AND-ed,
    /// and the conversations OR-ed. A message has one conversation's marks
    /// only, so FTS5 reads the doclists of these conversations' tokens and
    /// nothing of the others', whatever they hold.
    ///
    /// A single CJK character is a prefix term, and its marked form needs
    /// a guard: when FTS5 does not count the character as a letter (a Kangxi
    /// radical, a character newer than its Unicode 6.1 tables), the phrase
    /// `"g5x⽆" *` loses it and becomes `"g5x" *`, every message of the
    /// conversation, while the unmarked `"⽆" *` is empty and matches
    /// nothing. So such a term is also required unmarked in `body`, which
    /// keeps the answer that of the unmarked query (at the cost of reading
    /// that character's doclist; only single-character searches pay it).
    pub fn scoped(&self, gids: &[u64]) -> String {
        let mut s = String::new();
        for (i, &gid) in gids.iter().enumerate() {
            if i > 0 {
                s.push_str(" OR ");
            }
            if self.terms.len() > 1 {
                s.push('(');
            }
            for (k, term) in self.terms.iter().enumerate() {
                if k > 0 {
                    s.push_str(" AND ");
                }
                s.push_str(&term.scoped(gid));
            }
            if self.terms.len() > 1 {
                s.push(')');
            }
        }
        for term in self.terms.iter().filter(|t| t.prefix) {
            s = format!("({s}) AND {}", term.fts());
        }
        s
    }

    /// Scores `docs` (the searchable text of each candidate) with BM25.
    /// `df` is, per term, how many messages contain it (capped), `n` how
    /// many messages there are; with `df` empty every term weighs the same.
    /// Higher is better.
    pub fn rank(&self, docs: &[&str], df: &[u64], n: u64) -> Vec<f64> {
        let tokens: Vec<Vec<Cow<'_, str>>> = docs.iter().map(|d| doc_tokens(d)).collect();
        if tokens.is_empty() {
            return Vec::new();
        }
        let total: usize = tokens.iter().map(Vec::len).sum();
        let avgdl = (total as f64 / tokens.len() as f64).max(1.0);
        let idf: Vec<f64> = (0..self.terms.len())
            .map(|i| match df.get(i) {
                Some(&df) => {
                    let n = n.max(df) as f64;
                    let df = df as f64;
                    (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
                }
                None => 1.0,
            })
            .collect();
        tokens
            .iter()
            .map(|doc| {
                let dl = doc.len() as f64;
                self.terms
                    .iter()
                    .zip(&idf)
                    .map(|(term, idf)| {
                        let tf = term.count_in(doc) as f64;
                        idf * tf * (BM25_K1 + 1.0)
                            / (tf + BM25_K1 * (1.0 - BM25_B + BM25_B * dl / avgdl))
                    })
                    .sum()
            })
            .collect()
    }

    /// Byte ranges of `text` where terms occur, sorted and disjoint.
    fn hits(&self, text: &str) -> Vec<(usize, usize)> {
        let spans = spans(text);
        let words: Vec<(usize, usize, String)> = spans
            .iter()
            .filter_map(|s| match *s {
                Span::Word(a, b) => Some((a, b, fold(&text[a..b]))),
                Span::Cjk(..) => None,
            })
            .collect();
        let mut hits = Vec::new();
        for term in &self.terms {
            if let Some(run) = &term.cjk {
                // Character by character within the CJK runs of the text.
                let want: Vec<char> = run.chars().collect();
                for span in &spans {
                    let Span::Cjk(a, b) = *span else { continue };
                    let chars: Vec<(usize, char)> = text[a..b].char_indices().collect();
                    if chars.len() < want.len() {
                        continue;
                    }
                    for i in 0..=chars.len() - want.len() {
                        let same = want
                            .iter()
                            .enumerate()
                            .all(|(k, w)| fold(&chars[i + k].1.to_string()).starts_with(*w));
                        if same {
                            let (last_at, last) = chars[i + want.len() - 1];
                            hits.push((a + chars[i].0, a + last_at + last.len_utf8()));
                        }
                    }
                }
            } else {
                let n = term.folded.len();
                if n == 0 || words.len() < n {
                    continue;
                }
                for i in 0..=words.len() - n {
                    if words[i..i + n]
                        .iter()
                        .zip(&term.folded)
                        .all(|(w, t)| w.2 == *t)
                    {
                        hits.push((words[i].0, words[i + n - 1].1));
                    }
                }
            }
        }
        hits.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(hits.len());
        for (a, b) in hits {
            match merged.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        merged
    }

    /// A short excerpt of `text` around its first hit, each hit between
    /// [`HIT_START`] and [`HIT_END`]. Whitespace is collapsed to single
    /// spaces; `…` marks where the message goes on; a `«` or `»` of the
    /// message itself shows as `‹` or `›`. Plain text, never markup.
    pub fn snippet(&self, text: &str) -> String {
        let hits = self.hits(text);
        let chars: Vec<(usize, char)> = text.char_indices().collect();
        let total = chars.len();
        // Character index of a byte offset.
        let at = |byte: usize| chars.partition_point(|&(i, _)| i < byte);
        let (from, to) = if total <= SNIPPET_CHARS {
            (0, total)
        } else {
            let first = hits.first().map_or(0, |h| at(h.0));
            let mut from = first.saturating_sub(SNIPPET_LEAD);
            // Start at a word boundary when there is one close by.
            if from > 0
                && let Some(space) = (from..first).find(|&i| chars[i].1.is_whitespace())
            {
                from = space + 1;
            }
            let to = (from + SNIPPET_CHARS).min(total);
            let from = to.saturating_sub(SNIPPET_CHARS).min(from);
            (from, to)
        };
        let mut out = String::with_capacity(SNIPPET_CHARS * 4);
        if from > 0 {
            out.push('…');
        }
        let lead = out.len();
        let mut hit = hits.iter().peekable();
        let mut inside = false;
        let mut last_space = false;
        for &(byte, c) in &chars[from..to] {
            if inside && hit.peek().is_some_and(|h| byte >= h.1) {
                out.push(HIT_END);
                inside = false;
                hit.next();
            }
            while !inside && hit.peek().is_some_and(|h| byte >= h.1) {
                hit.next();
            }
            if !inside && hit.peek().is_some_and(|h| byte >= h.0) {
                out.push(HIT_START);
                inside = true;
            }
            if c.is_whitespace() {
                if !last_space && out.len() > lead {
                    out.push(' ');
                }
                last_space = true;
                continue;
            }
            last_space = false;
            out.push(match c {
                HIT_START => QUOTE_START,
                HIT_END => QUOTE_END,
                c if c.is_control() => ' ',
                c => c,
            });
        }
        if inside {
            out.push(HIT_END);
        }
        while out.ends_with(' ') {
            out.pop();
        }
        if to < total {
            out.push('…');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cjk_runs_become_bigrams_and_words_stay() {
        assert_eq!(index_body("wifi密码是1234"), "wifi 密码 码是 是 1234");
        assert_eq!(index_body("Café, crème brûlée!"), "Café crème brûlée");
        assert_eq!(
            index_body("パスワードは1234です"),
            "パス スワ ワー ード ドは は 1234 です す"
        );
        assert_eq!(index_body("好"), "好");
        assert_eq!(index_body("  ...  "), "");
        assert_eq!(index_body("비밀번호는 1234"), "비밀 밀번 번호 호는 는 1234");
    }

    /// `store::search` indexes ASCII text as it is, and `tokens` splits it
    /// without `spans`, relying on this: for ASCII, the words of `spans`
    /// are exactly the runs of letters and digits, which are FTS5's
    /// `unicode61` tokens.
    #[test]
    fn ascii_index_bodies_are_the_alphanumeric_runs() {
        proptest::proptest!(|(text in "[ -~]{0,40}")| {
            let runs: Vec<&str> = text
                .split(|c: char| !c.is_ascii_alphanumeric())
                .filter(|t| !t.is_empty())
                .collect();
            let words: Vec<&str> = spans(&text)
                .into_iter()
                .map(|s| match s {
                    Span::Word(a, b) | Span::Cjk(a, b) => &text[a..b],
                })
                .collect();
            proptest::prop_assert_eq!(&words, &runs);
            proptest::prop_assert_eq!(index_body(&text), runs.join(" "));
        });
    }

    #[test]
    fn scoped_tokens_are_the_index_tokens_with_the_conversation_in_front() {
        assert_eq!(
            scoped_body(5, "wifi密码是1234"),
            "g5xwifi g5x密码 g5x码是 g5x是 g5x1234"
        );
        assert_eq!(scoped_body(12, "Café, crème!"), "g12xCafé g12xcrème");
        assert_eq!(scoped_body(7, "x2 at 10:30"), "g7xx2 g7xat g7x10 g7x30");
        assert_eq!(scoped_body(1, "  ...  "), "");
        // One compound token per index token, in the same order, whatever
        // the text: phrases line up.
        proptest::proptest!(|(text in ".{0,40}", gid in 0u64..1_000_000)| {
            let body = index_body(&text);
            let plain: Vec<&str> = body.split(' ').filter(|t| !t.is_empty()).collect();
            let scoped = scoped_body(gid, &text);
            let prefix = format!("g{gid}x");
            let stripped: Vec<&str> = scoped
                .split(' ')
                .filter(|t| !t.is_empty())
                .map(|t| t.strip_prefix(prefix.as_str()).expect("every token marked"))
                .collect();
            proptest::prop_assert_eq!(stripped, plain);
        });
    }

    #[test]
    fn scoped_queries_name_each_conversations_tokens() {
        let q = Query::parse("wi-fi 密码").unwrap();
        assert_eq!(
            q.scoped(&[1, 20]),
            r#"(scoped : "g1xwi g1xfi" AND scoped : "g1x密码") OR (scoped : "g20xwi g20xfi" AND scoped : "g20x密码")"#
        );
        let q = Query::parse("无线密码").unwrap();
        assert_eq!(q.scoped(&[3]), r#"scoped : "g3x无线 g3x线密 g3x密码""#);
        let q = Query::parse("密").unwrap();
        assert_eq!(
            q.scoped(&[3, 4]),
            r#"(scoped : "g3x密" * OR scoped : "g4x密" *) AND body : "密" *"#
        );
        let q = Query::parse("OR NEAR").unwrap();
        assert_eq!(
            q.scoped(&[9]),
            r#"(scoped : "g9xOR" AND scoped : "g9xNEAR")"#
        );
    }

    #[test]
    fn folding_removes_case_and_accents() {
        assert_eq!(fold("Café"), "cafe");
        assert_eq!(fold("ÉLÈVE"), "eleve");
        assert_eq!(fold("cafe\u{301}"), "cafe");
        assert_eq!(fold("Tiếng Việt"), "tieng viet");
        assert_eq!(fold("Øre"), "øre");
    }

    #[test]
    fn queries_are_quoted_terms_never_syntax() {
        let q = Query::parse("wi-fi 密码").unwrap();
        assert_eq!(q.fts(), r#"body : "wi fi" AND body : "密码""#);
        let q = Query::parse("无线密码").unwrap();
        assert_eq!(q.fts(), r#"body : "无线 线密 密码""#);
        let q = Query::parse("密").unwrap();
        assert_eq!(q.fts(), r#"body : "密" *"#);
        let q = Query::parse(r#"" OR * NEAR(a b) body:x {scope}: g1 ^x -y"#).unwrap();
        assert_eq!(
            q.fts(),
            r#"body : "OR" AND body : "NEAR a" AND body : "b" AND body : "body x" AND body : "scope" AND body : "g1" AND body : "x" AND body : "y""#
        );
        assert!(Query::parse("!!! ... ***").unwrap().is_empty());
        assert!(Query::parse("a b c d e f g h i").is_err());
        assert_eq!(Query::parse("the The THÉ").unwrap().terms.len(), 1);
    }

    #[test]
    fn ranking_prefers_more_hits_in_shorter_messages() {
        let q = Query::parse("pizza").unwrap();
        let docs = [
            "pizza",
            "we could have pizza tonight or something else entirely",
            "pizza pizza",
            "no match here",
        ];
        let s = q.rank(&docs, &[], 100);
        assert!(s[0] > s[1], "{s:?}");
        assert!(s[2] > s[0], "{s:?}");
        assert_eq!(s[3], 0.0);
        // A rare term outweighs a common one.
        let q = Query::parse("the cat").unwrap();
        let s = q.rank(&["the the the dog", "a cat"], &[900, 3], 1000);
        assert!(s[1] > s[0], "{s:?}");
    }

    #[test]
    fn snippets_mark_hits_and_stay_text() {
        let q = Query::parse("cafe").unwrap();
        assert_eq!(
            q.snippet("Meet at the Café at 9?"),
            "Meet at the «Café» at 9?"
        );
        let q = Query::parse("密码").unwrap();
        assert_eq!(q.snippet("wifi密码是1234"), "wifi«密码»是1234");
        let q = Query::parse("wi-fi").unwrap();
        assert_eq!(q.snippet("the Wi-Fi\n\nis «down»"), "the «Wi-Fi» is ‹down›");
        let q = Query::parse("script").unwrap();
        assert_eq!(
            q.snippet("<script>alert(1)</script>"),
            "<«script»>alert(1)</«script»>"
        );
        let long = format!(
            "{} the password is hunter2 {}",
            "word ".repeat(60),
            "tail ".repeat(60)
        );
        let q = Query::parse("PASSWORD").unwrap();
        let s = q.snippet(&long);
        assert!(s.starts_with('…') && s.ends_with('…'), "{s}");
        assert!(s.contains("«password»"), "{s}");
        // 120 characters of the message, the two markers and the two ellipses.
        assert!(s.chars().count() <= SNIPPET_CHARS + 4, "{s}");
        // No hit found (the index matched on a fold we do not know): the
        // beginning of the message.
        let q = Query::parse("zzz").unwrap();
        assert_eq!(q.snippet("hello"), "hello");
    }

    #[test]
    fn markup_is_not_indexed() {
        assert_eq!(strip_markup("<b>bye</b> now"), " bye  now");
        assert_eq!(strip_markup("1 < 2 and 3>1"), "1 < 2 and 3>1");
        assert_eq!(strip_markup("plain"), "plain");
    }
}
