//! Reading a collection whole rather than by query: its documents page by page in id
//! order, and the bytes it takes on disk (what a console or an export walks).

use std::collections::BinaryHeap;
use std::path::Path;

use quiver_core::Document;

use super::Collection;
use crate::Result;

/// One page of documents in id order.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub documents: Vec<Document>,
    /// The id to pass as `after` for the next page; `None` on the last page.
    pub next: Option<String>,
}

impl Collection {
    /// The visible documents whose id sorts after `after` (all when `None`), the first
    /// `limit` of them in byte order of their ids.
    ///
    /// Ids are kept in no sorted structure, so a page costs one pass over the ids (a
    /// heap keeps the `limit + 1` smallest) and then one lookup per returned document.
    /// A document written between two pages appears in a later page if its id sorts
    /// after the cursor, as with any keyset pagination.
    pub fn page(&self, after: Option<&str>, limit: usize) -> Result<Page> {
        let mut smallest: BinaryHeap<String> = BinaryHeap::with_capacity(limit + 2);
        self.for_each_live(|doc| {
            if after.is_some_and(|a| doc.id <= a) {
                return;
            }
            if smallest.len() <= limit {
                smallest.push(doc.id.to_string());
            } else if smallest.peek().is_some_and(|top| doc.id < top.as_str()) {
                smallest.pop();
                smallest.push(doc.id.to_string());
            }
        });
        let mut ids = smallest.into_sorted_vec();
        let more = ids.len() > limit;
        ids.truncate(limit);
        let mut documents = Vec::with_capacity(ids.len());
        for id in &ids {
            // A document deleted since the pass is simply left out of the page.
            if let Some(doc) = self.get(id)? {
                documents.push(doc);
            }
        }
        let next = if more { ids.pop() } else { None };
        Ok(Page { documents, next })
    }

    /// Bytes of every file under the collection's directory: segments, WAL, text
    /// index and manifest.
    pub fn disk_bytes(&self) -> u64 {
        dir_bytes(self.dir())
    }
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            // A file removed while walking (a finished seal's leftovers) counts nothing.
            Err(_) => 0,
        })
        .sum()
}
