//! List pages bounded in bytes as well as in count: however large each item, an answer stays well under the
//! 4 MiB most gRPC clients accept by default.

use prost::Message;

/// Most encoded bytes the items of one page may take, unless its first item alone is larger.
pub const PAGE_BYTES: usize = 2 * 1024 * 1024;

/// The page of `rows` (fetched in list order, possibly one past `limit`) in wire form: rows are converted by
/// `wire` and taken until the page holds `limit` items or the next would take it past `budget` encoded bytes.
/// The first row is always taken, so every page makes progress. Returns the items and, when any row was left
/// out, the last row taken: where the next page resumes.
pub fn bounded_page<R, M: Message>(
    rows: Vec<R>,
    limit: usize,
    budget: usize,
    mut wire: impl FnMut(&R) -> M,
) -> (Vec<M>, Option<R>) {
    let mut items = Vec::with_capacity(rows.len().min(limit));
    let (mut used, mut last, mut more) = (0usize, None, false);
    for row in rows {
        if items.len() == limit {
            more = true;
            break;
        }
        let item = wire(&row);
        // As an element of a repeated field: a one-byte tag, the length, the message.
        let len = item.encoded_len();
        let cost = 1 + prost::length_delimiter_len(len) + len;
        if !items.is_empty() && used.saturating_add(cost) > budget {
            more = true;
            break;
        }
        used = used.saturating_add(cost);
        items.push(item);
        last = Some(row);
    }
    (items, if more { last } else { None })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(len: usize) -> String {
        "x".repeat(len)
    }

    #[test]
    fn pages_end_at_the_count_or_the_byte_budget_whichever_comes_first() {
        // A 10-byte String (as a message: its field's tag and length, then the bytes, 12) costs 14 in the page.
        let rows: Vec<usize> = vec![10, 10, 10, 10];
        let (items, resume) = bounded_page(rows.clone(), 3, 1_000, |n| text(*n));
        assert_eq!((items.len(), resume), (3, Some(10)), "the count ends the page");
        let (items, resume) = bounded_page(rows.clone(), 10, 42, |n| text(*n));
        assert_eq!((items.len(), resume), (3, Some(10)), "42 bytes hold three 14-byte items");
        let (items, _) = bounded_page(rows.clone(), 10, 41, |n| text(*n));
        assert_eq!(items.len(), 2, "41 bytes hold two");
        let (items, resume) = bounded_page(rows, 10, 1_000, |n| text(*n));
        assert_eq!((items.len(), resume), (4, None), "everything fits: no next page");
        let (items, resume) = bounded_page(vec![100, 1], 10, 50, |n| text(*n));
        assert_eq!((items.len(), resume), (1, Some(100)), "an item over the budget still makes a page alone");
        let (items, resume) = bounded_page(Vec::<usize>::new(), 10, 50, |n| text(*n));
        assert_eq!((items.len(), resume), (0, None));
    }
}
