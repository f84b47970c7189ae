//! The full-text index of messages: the FTS5 table `message_index` (rowid =
//! message id), written in the same transaction as each message, caught up
//! at start-up with messages written by other means, and searched within
//! the caller's conversations. The text side (tokens, queries, ranking,
//! snippets) is [`crate::search`].
//!
//! A search reads the newest [`WINDOW`] matching messages of the caller's
//! conversations, ranks them (BM25, ties newest first) and returns a page.
//! The window bounds the work of a query whatever the database size; the
//! `scoped` column (every token again, marked with its conversation) lets
//! FTS5 itself keep to the caller's conversations, however many, without
//! reading any other conversation's matches of the words.

use std::borrow::Cow;
use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};

use super::groups;
use super::model::{Group, Kind, Message, User};
use super::rows::{MESSAGE_COL_COUNT, MESSAGE_COLS, message_from_row};
use super::users;
use crate::error::Result;
use crate::search::{self, DF_CAP, Query};

/// How many of the newest matching messages a search ranks.
pub const WINDOW: usize = 1000;

/// A message that may be a search result, with its file name.
type Candidate = (Message, Option<String>);

/// One search result.
#[derive(Debug, Clone)]
pub struct Hit {
    pub group: Group,
    pub message: Message,
    pub user: User,
    /// An excerpt with the hits marked (see [`crate::search::Query::snippet`]).
    pub snippet: String,
}

/// The text a message is found by: its content, without markup for
/// RichText; the file name for Image and File messages.
pub fn searchable<'a>(kind: Kind, content: &'a str, file_name: Option<&'a str>) -> Cow<'a, str> {
    match (file_name, kind) {
        (Some(name), _) => Cow::Borrowed(name),
        (None, Kind::RichText) => search::strip_markup(content),
        (None, _) => Cow::Borrowed(content),
    }
}

/// What the index's `body` column holds for a message's searchable text.
fn body(text: &str) -> Cow<'_, str> {
    if text.is_ascii() {
        // FTS5 splits ASCII text exactly as `index_body` would (runs of
        // letters and digits are the tokens), so it goes in as it is.
        Cow::Borrowed(text)
    } else {
        Cow::Owned(search::index_body(text))
    }
}

/// Creates the queue [`index`] writes to, on a connection that writes.
pub fn create_queue(c: &Connection) -> rusqlite::Result<()> {
    c.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS index_queue (
             id     INTEGER PRIMARY KEY,
             body   TEXT NOT NULL,
             scoped TEXT NOT NULL
         );",
    )
}

/// Queues one message of conversation `gid` for the index, `text` as
/// [`searchable`] makes it; called in the transaction that stores it.
/// [`flush_queue`] must run before that transaction commits.
///
/// Why a queue: FTS5 keeps new index entries in memory until the
/// transaction ends, but writes them out as a new index segment whenever a
/// statement opens a statement savepoint, which every INSERT with a foreign
/// key (every message) does. Indexed one by one, each message of a batch
/// became a segment of its own that FTS5 then kept merging: 40 % of the
/// writer's time (`rim-bench`, direct closed loop). The queue is a TEMP
/// table (the writer connection's memory, rolled back with its transaction);
/// one INSERT ... SELECT moves a whole batch into FTS5, which then writes
/// one segment at COMMIT.
pub fn index(c: &Connection, msg_id: u64, gid: u64, text: &str) -> Result<()> {
    c.prepare_cached("INSERT INTO temp.index_queue (id, body, scoped) VALUES (?1, ?2, ?3)")?
        .execute(params![msg_id, body(text), search::scoped_body(gid, text)])?;
    Ok(())
}

/// Takes a message's words out of the index (an edit, a deletion), and out
/// of the queue if it was stored in the same batch.
pub fn unindex(c: &Connection, msg_id: u64) -> Result<()> {
    c.prepare_cached("DELETE FROM message_index WHERE rowid = ?1")?
        .execute([msg_id])?;
    c.prepare_cached("DELETE FROM temp.index_queue WHERE id = ?1")?
        .execute([msg_id])?;
    Ok(())
}

/// Moves the queued messages into the index, in the current transaction,
/// and merges some of the index's segments: about as many pages as FTS5's
/// own automatic merge would over the same writes, but a few with every
/// batch rather than in bursts (see migration 005).
pub fn flush_queue(c: &Connection) -> Result<()> {
    // The EXISTS skips a message deleted later in the same transaction
    // (with its conversation), whose index row would otherwise outlive it.
    let queued = c
        .prepare_cached(
            "INSERT INTO message_index (rowid, body, scoped)
             SELECT q.id, q.body, q.scoped FROM temp.index_queue q
             WHERE EXISTS (SELECT 1 FROM messages m WHERE m.id = q.id)
             ORDER BY q.id",
        )?
        .execute([])?;
    c.prepare_cached("DELETE FROM temp.index_queue")?
        .execute([])?;
    if queued > 0 {
        c.prepare_cached("INSERT INTO message_index (message_index, rank) VALUES ('merge', ?1)")?
            .execute([merge_pages(queued)])?;
    }
    Ok(())
}

/// Pages of merging for `indexed` new messages: a message adds some 60
/// bytes of index, so about `indexed / 60` leaf pages, and each leaf is
/// merged once per level (5-6 levels for millions of messages); twice that,
/// so that merging keeps ahead.
fn merge_pages(indexed: usize) -> i64 {
    (indexed / 5 + 4) as i64
}

/// Indexes the messages newer than the newest indexed one: those of a
/// database from before the index existed, or bulk-loaded into the file
/// (as `rim-bench` does), and every message after the migration that
/// rebuilt the index (011). Every message gets an index row, even one
/// without words (FTS5 lists the rows of a contentless table from its
/// `_docsize` table), so the newest row says how far indexing got. Commits
/// every 20,000 messages. Returns how many were indexed.
pub fn catch_up(c: &Connection) -> Result<u64> {
    let newest: u64 = c
        .prepare("SELECT rowid FROM message_index ORDER BY rowid DESC LIMIT 1")?
        .query_row([], |r| r.get(0))
        .optional()?
        .unwrap_or(0);
    let mut done = 0u64;
    let mut after = newest;
    loop {
        let batch: Vec<(u64, u64, Kind, String, Option<String>)> = {
            let mut stmt = c.prepare_cached(
                "SELECT m.id, m.gid, m.kind, m.content, mf.name
                 FROM messages m LEFT JOIN message_files mf ON mf.msg_id = m.id
                 WHERE m.id > ?1 AND m.deleted_at IS NULL ORDER BY m.id LIMIT 20000",
            )?;
            let rows = stmt.query_map([after], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    Kind::from_db(r.get(2)?),
                    r.get(3)?,
                    r.get(4)?,
                ))
            })?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let Some(last) = batch.last() else {
            return Ok(done);
        };
        after = last.0;
        let tx = c.unchecked_transaction()?;
        for (id, gid, kind, content, name) in &batch {
            index(&tx, *id, *gid, &searchable(*kind, content, name.as_deref()))?;
        }
        flush_queue(&tx)?;
        tx.commit()?;
        done += batch.len() as u64;
    }
}

/// Searches the conversations `me` is a member of (or only `gid`, 403/404
/// as for history when they may not read it). `page` counts from 1.
pub fn search(
    c: &Connection,
    me: u64,
    gid: Option<u64>,
    query: &Query,
    page: u32,
    size: u32,
) -> Result<Vec<Hit>> {
    // One snapshot for every statement below.
    let tx = c.unchecked_transaction()?;
    if let Some(gid) = gid {
        groups::require_member(&tx, gid, me)?;
    }
    let offset = u64::from(page.saturating_sub(1)) * u64::from(size);
    if query.is_empty() || offset >= WINDOW as u64 {
        return Ok(Vec::new());
    }
    let candidates = candidates(&tx, me, gid, query)?;
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let docs: Vec<Cow<'_, str>> = candidates
        .iter()
        .map(|(m, name)| searchable(m.kind, &m.content, name.as_deref()))
        .collect();
    let order = ranked(&tx, query, &candidates, &docs)?;
    let page = order.into_iter().skip(offset as usize).take(size as usize);
    let hits = hits(&tx, query, &candidates, &docs, page)?;
    tx.finish()?;
    Ok(hits)
}

/// The newest [`WINDOW`] messages matching `query` in the conversations
/// `me` is a member of (only `gid` when given), with their file names.
///
/// The FTS5 query that names each of the caller's conversations' marked
/// tokens ([`Query::scoped`]) reads their matches only, however many the
/// other conversations hold, but each conversation named costs FTS5 a
/// lookup per term and index segment: 3-8 ms for 200 conversations on a
/// million messages (`rim-bench`, history). So, cheapest first:
/// - When some term matches at most [`FEW`] messages anywhere, every match
///   is among those: for a single term they are the answer, kept to the
///   caller's conversations; otherwise only the conversations they are in
///   are named.
/// - Someone in [`PEEK_FROM`] conversations or more first reads the newest
///   matches anywhere, kept to theirs ([`peek`]): when most of a word's
///   newest matches are theirs, that fills the window for less than the
///   lookups of naming them all.
/// - Otherwise every conversation of the caller is named.
fn candidates(tx: &Connection, me: u64, gid: Option<u64>, query: &Query) -> Result<Vec<Candidate>> {
    let mine: Vec<u64> = match gid {
        Some(gid) => vec![gid],
        None => tx
            .prepare_cached("SELECT gid FROM members WHERE uid = ?1 ORDER BY gid")?
            .query_map([me], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?,
    };
    if mine.is_empty() {
        return Ok(Vec::new());
    }
    let mut named = mine.clone();
    if mine.len() > 1 {
        if let Some(ids) = rarest(tx, query)? {
            if query.terms.len() == 1 {
                return fetch(tx, &ids, &mine, WINDOW);
            }
            named = conversations_of(tx, &ids, &mine)?;
            if named.is_empty() {
                return Ok(Vec::new());
            }
        } else if mine.len() >= PEEK_FROM
            && let Some(found) = peek(tx, query, &mine)?
        {
            return Ok(found);
        }
    }
    let ids = newest_matching(tx, &query.scoped(&named), WINDOW, None)?;
    fetch(tx, &ids, &mine, WINDOW)
}

/// A term matching at most this many messages anywhere narrows a search to
/// them (see [`candidates`]).
const FEW: usize = 2 * WINDOW;

/// How many conversations a caller is in before a search [`peek`]s at the
/// newest matches anywhere; fewer are named at no great cost.
const PEEK_FROM: usize = 64;

/// The most matches anywhere a [`peek`] reads before it gives up.
const PEEK: usize = 8 * WINDOW;

/// How many matches anywhere a [`peek`] reads first, and at least at each
/// step after.
const SAMPLE: usize = WINDOW / 4;

/// The newest [`WINDOW`] matches of `query` in conversations `mine`
/// (sorted) read from the newest matches anywhere, when at most [`PEEK`]
/// of those hold them (or hold every match there is); `None` when more
/// would be needed. It reads a [`SAMPLE`] first, then as many more as the
/// share of the caller's among those read says the window still needs
/// (and a quarter more), so a word whose newest matches are largely the
/// caller's costs a few reads of ids and the caller's rows among them, and
/// one that is mostly other people's is given up after the first.
fn peek(tx: &Connection, query: &Query, mine: &[u64]) -> Result<Option<Vec<Candidate>>> {
    let expr = query.fts();
    let mut found = Vec::new();
    let mut seen = 0usize;
    let mut before = None;
    let mut want = SAMPLE;
    loop {
        let ids = newest_matching(tx, &expr, want, before)?;
        seen += ids.len();
        found.extend(fetch(tx, &ids, mine, WINDOW - found.len())?);
        if found.len() >= WINDOW || ids.len() < want {
            // The window is full, or these were every match there is.
            return Ok(Some(found));
        }
        before = ids.last().copied();
        let share = found.len().max(1) as f64 / seen as f64;
        let needed = ((WINDOW - found.len()) as f64 / share * 1.25).ceil() as usize;
        if seen + needed > PEEK {
            return Ok(None);
        }
        want = needed.max(SAMPLE);
    }
}

/// The messages matching the query's rarest term, newest first, when it
/// matches at most [`FEW`] anywhere. Each term's count stops at `FEW + 1`,
/// so a common word costs little more than a rare one (a fifth of a
/// millisecond on a million messages).
fn rarest(tx: &Connection, query: &Query) -> Result<Option<Vec<u64>>> {
    let mut best: Option<Vec<u64>> = None;
    for term in &query.terms {
        let ids = some_matching(tx, &term.fts())?;
        if ids.len() <= FEW && best.as_ref().is_none_or(|b| ids.len() < b.len()) {
            best = Some(ids);
        }
    }
    Ok(best)
}

/// The conversations of `mine` (sorted) that messages `ids` are in, sorted.
fn conversations_of(tx: &Connection, ids: &[u64], mine: &[u64]) -> Result<Vec<u64>> {
    let gids: Vec<u64> = tx
        .prepare_cached(
            "SELECT DISTINCT gid FROM messages WHERE id IN (SELECT value FROM json_each(?1))
             ORDER BY gid",
        )?
        .query_map([json_list(ids)], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(gids
        .into_iter()
        .filter(|g| mine.binary_search(g).is_ok())
        .collect())
}

/// `ids` as a JSON array, for `json_each`: one statement reads them all.
/// Run once per id instead, fetching the 1,000 candidates of a common word
/// took a millisecond more (9.1 against 8.0 ms at p50 for the candidates of
/// `history` by the member of 200 conversations of `rim-bench`'s history
/// database).
fn json_list(ids: &[u64]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(ids.len() * 8 + 2);
    s.push('[');
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{id}");
    }
    s.push(']');
    s
}

/// The ids of the newest `limit` messages matching `expr`, newest first,
/// older than message `before` when given.
fn newest_matching(
    tx: &Connection,
    expr: &str,
    limit: usize,
    before: Option<u64>,
) -> Result<Vec<u64>> {
    let mut stmt = match before {
        None => tx.prepare_cached(
            "SELECT rowid FROM message_index WHERE message_index MATCH ?1
             ORDER BY rowid DESC LIMIT ?2",
        )?,
        Some(_) => tx.prepare_cached(
            "SELECT rowid FROM message_index WHERE message_index MATCH ?1 AND rowid < ?3
             ORDER BY rowid DESC LIMIT ?2",
        )?,
    };
    let limit = limit as i64;
    let id = |r: &rusqlite::Row<'_>| r.get::<_, u64>(0);
    let ids = match before {
        None => stmt.query_map(params![expr, limit], id)?,
        Some(b) => stmt.query_map(params![expr, limit, b], id)?,
    }
    .collect::<rusqlite::Result<_>>()?;
    Ok(ids)
}

/// The ids of up to [`FEW`] + 1 messages matching `expr`, newest first:
/// read in FTS5's own order and sorted here, which spares FTS5 reading long
/// word lists backwards.
fn some_matching(tx: &Connection, expr: &str) -> Result<Vec<u64>> {
    let sql = format!(
        "SELECT rowid FROM message_index WHERE message_index MATCH ?1 LIMIT {}",
        FEW + 1
    );
    let mut found = ids(tx, &sql, expr)?;
    found.sort_unstable_by(|a, b| b.cmp(a));
    Ok(found)
}

/// The rowids `sql`, a query on the index, returns for the MATCH text `expr`.
fn ids(tx: &Connection, sql: &str, expr: &str) -> Result<Vec<u64>> {
    let ids = tx
        .prepare_cached(sql)?
        .query_map([expr], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(ids)
}

/// The messages `ids` (newest first) of conversations `mine` (sorted), with
/// their file names, at most `limit`. The conversation check is also the
/// guard of a named query: a message carries its own conversation's marks
/// only. (Checked here rather than in SQL: a `gid IN json_each(...)` term
/// made the statement slower.)
fn fetch(tx: &Connection, ids: &[u64], mine: &[u64], limit: usize) -> Result<Vec<Candidate>> {
    if ids.is_empty() || limit == 0 {
        return Ok(Vec::new());
    }
    let mut stmt = tx.prepare_cached(&format!(
        "SELECT {MESSAGE_COLS}, mf.name FROM messages m
         LEFT JOIN message_files mf ON mf.msg_id = m.id
         WHERE m.id IN (SELECT value FROM json_each(?1)) ORDER BY m.id DESC"
    ))?;
    let mut rows = stmt.query([json_list(ids)])?;
    let mut found = Vec::new();
    while let Some(r) = rows.next()? {
        let gid: u64 = r.get(1)?;
        if mine.binary_search(&gid).is_ok() {
            found.push((message_from_row(r, 0)?, r.get(MESSAGE_COL_COUNT)?));
            if found.len() == limit {
                break;
            }
        }
    }
    Ok(found)
}

/// The candidates' indexes, best match first (BM25; the newer first among
/// equals).
fn ranked(
    tx: &Connection,
    query: &Query,
    candidates: &[Candidate],
    docs: &[Cow<'_, str>],
) -> Result<Vec<usize>> {
    let doc_refs: Vec<&str> = docs.iter().map(|d| d.as_ref()).collect();
    // With one term, its weight is the same for every candidate: only its
    // frequency in each message and their lengths decide.
    let df: Vec<u64> = if query.terms.len() > 1 {
        let mut stmt = tx.prepare_cached(&format!(
            "SELECT count(*) FROM (SELECT 1 FROM message_index WHERE message_index MATCH ?1
                 LIMIT {DF_CAP})"
        ))?;
        query
            .terms
            .iter()
            .map(|t| stmt.query_row([t.fts()], |r| r.get(0)))
            .collect::<rusqlite::Result<_>>()?
    } else {
        Vec::new()
    };
    let n: u64 = tx
        .prepare_cached("SELECT coalesce(max(id), 0) FROM messages")?
        .query_row([], |r| r.get(0))?;
    let scores = query.rank(&doc_refs, &df, n);
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by(|&a, &b| {
        scores[b]
            .total_cmp(&scores[a])
            .then(candidates[b].0.id.cmp(&candidates[a].0.id))
    });
    Ok(order)
}

/// The hits of the candidates in `page` (indexes, in order), each with its
/// conversation, sender and snippet.
fn hits(
    tx: &Connection,
    query: &Query,
    candidates: &[Candidate],
    docs: &[Cow<'_, str>],
    page: impl Iterator<Item = usize>,
) -> Result<Vec<Hit>> {
    let mut groups_seen: HashMap<u64, Group> = HashMap::new();
    let mut users_seen: HashMap<u64, User> = HashMap::new();
    let mut hits = Vec::new();
    for i in page {
        let message = &candidates[i].0;
        let group = match groups_seen.get(&message.gid) {
            Some(g) => g.clone(),
            None => match groups::get(tx, message.gid)? {
                Some(g) => groups_seen.entry(g.id).or_insert(g).clone(),
                None => continue,
            },
        };
        let user = match users_seen.get(&message.uid) {
            Some(u) => u.clone(),
            None => match users::by_id(tx, message.uid)? {
                Some(u) => users_seen.entry(u.id).or_insert(u).clone(),
                None => continue,
            },
        };
        hits.push(Hit {
            group,
            message: message.clone(),
            user,
            snippet: query.snippet(&docs[i]),
        });
    }
    Ok(hits)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use proptest::test_runner::{Config as PropConfig, TestRunner};

    use super::*;

    /// An index like the real one, with a few messages.
    fn small_index() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(
            "CREATE VIRTUAL TABLE message_index USING fts5(body, scoped, content = '',
                 contentless_delete = 1, tokenize = 'unicode61 remove_diacritics 2');",
        )
        .unwrap();
        create_queue(&c).unwrap();
        // Only messages that exist are indexed.
        c.execute_batch("CREATE TABLE messages (id INTEGER PRIMARY KEY); INSERT INTO messages VALUES (1), (2), (3);")
            .unwrap();
        for (i, text) in [
            "Café «Rouge» \"quoted\" (x)",
            "wifi密码是1234",
            "NEAR AND OR NOT * ^",
        ]
        .iter()
        .enumerate()
        {
            super::index(&c, i as u64 + 1, 1, text).unwrap();
        }
        flush_queue(&c).unwrap();
        c
    }

    fn matches(c: &Connection, q: &str) -> rusqlite::Result<Vec<u64>> {
        let Ok(query) = Query::parse(q) else {
            return Ok(Vec::new());
        };
        if query.is_empty() {
            return Ok(Vec::new());
        }
        let mut stmt = c.prepare(
            "SELECT rowid FROM message_index WHERE message_index MATCH ?1 ORDER BY rowid",
        )?;
        let rows = stmt.query_map([query.scoped(&[1, 2])], |r| r.get(0))?;
        let scoped: Vec<u64> = rows.collect::<rusqlite::Result<_>>()?;
        let all: Vec<u64> = stmt
            .query_map([query.fts()], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        assert_eq!(
            scoped, all,
            "{q:?}: the body and the scoped tokens disagree"
        );
        Ok(scoped)
    }

    #[test]
    fn any_text_is_a_valid_query() {
        let c = small_index();
        assert_eq!(matches(&c, "cafe").unwrap(), vec![1]);
        assert_eq!(matches(&c, "\"quoted\" (x)").unwrap(), vec![1]);
        assert_eq!(matches(&c, "密码").unwrap(), vec![2]);
        assert_eq!(matches(&c, "NEAR AND").unwrap(), vec![3]);
        // A Kangxi radical is no letter to FTS5: alone, it finds nothing,
        // marked or not (marked, it once found every message).
        assert_eq!(matches(&c, "\u{2F86}").unwrap(), Vec::<u64>::new());
        assert_eq!(
            matches(&c, ".\u{202e}\r\u{2F86}=\u{f17fb}/\u{bbabe}").unwrap(),
            Vec::<u64>::new()
        );
        let mut runner = TestRunner::new(PropConfig {
            cases: 2000,
            failure_persistence: None,
            ..PropConfig::default()
        });
        let text = prop_oneof![".{0,40}", "[\"*^(){}:+\\-a-zA-Z0-9 密码éNEAROR]{0,30}",];
        runner
            .run(&text, |q| {
                prop_assert!(matches(&c, &q).is_ok(), "FTS5 refused the query of {q:?}");
                Ok(())
            })
            .unwrap();
    }
}
