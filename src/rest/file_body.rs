//! The body of a download: a file's chunks read from the database one at a
//! time, the next one while the current one is being sent.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::body::{Bytes, Frame, SizeHint};
use tokio::task::JoinHandle;

use crate::error::Result;
use crate::store::{Db, FileMeta};

type ChunkRead = JoinHandle<Result<Vec<u8>>>;

/// A response body that reads a file's chunks from the database one at a
/// time (the next one while the current one is being sent) and yields the
/// bytes of `[pos, end)`.
pub struct FileBody {
    db: Db,
    file_id: u64,
    chunk_size: u64,
    pos: u64,
    end: u64,
    next: Option<(u64, ChunkRead)>,
}

impl FileBody {
    pub(super) fn new(db: Db, file: &FileMeta, pos: u64, end: u64) -> FileBody {
        let mut body = FileBody {
            db,
            file_id: file.id,
            chunk_size: file.chunk_size.max(1),
            pos,
            end,
            next: None,
        };
        if pos < end {
            body.read(pos / body.chunk_size);
        }
        body
    }

    fn read(&mut self, seq: u64) {
        let (db, id) = (self.db.clone(), self.file_id);
        self.next = Some((
            seq,
            tokio::spawn(async move { db.file_chunk(id, seq).await }),
        ));
    }
}

impl Drop for FileBody {
    fn drop(&mut self) {
        if let Some((_, read)) = self.next.take() {
            read.abort();
        }
    }
}

impl hyper::body::Body for FileBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.pos >= this.end {
            return Poll::Ready(None);
        }
        let seq = this.pos / this.chunk_size;
        if this.next.as_ref().is_none_or(|(s, _)| *s != seq) {
            this.read(seq);
        }
        let Some((_, read)) = this.next.as_mut() else {
            return Poll::Ready(None);
        };
        let outcome = match Pin::new(read).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(outcome) => outcome,
        };
        this.next = None;
        let data = match outcome {
            Ok(Ok(data)) => data,
            Ok(Err(e)) => return Poll::Ready(Some(Err(std::io::Error::other(e.to_string())))),
            Err(_) => return Poll::Ready(Some(Err(std::io::Error::other("chunk read failed")))),
        };
        let start = seq * this.chunk_size;
        let from = (this.pos - start) as usize;
        let to = ((this.end - start) as usize).min(data.len());
        if from >= to {
            return Poll::Ready(Some(Err(std::io::Error::other(format!(
                "file {} is shorter than its size",
                this.file_id
            )))));
        }
        this.pos += (to - from) as u64;
        if this.pos < this.end {
            // Read ahead while this chunk goes out.
            this.read(seq + 1);
        }
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(data).slice(from..to)))))
    }

    fn is_end_stream(&self) -> bool {
        self.pos >= self.end
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.end.saturating_sub(self.pos))
    }
}
