//! Whole histories a page at a time, in order-id order: what `orders replay` and `orders
//! stats` fold. One range read of the `(order_id, version)` index per page instead of one
//! `load` per order, which is what bounded those commands by per-query overhead.

use events_schema::{EventEnvelope, OrderId};
use rusqlite::params;

use super::event_store::{decode, read_row, COLUMNS};
use super::map_err;
use crate::SqliteEventStore;
use order_ports::StoreError;

/// One order's whole history, or why it cannot be decoded (the first undecodable event).
pub type OrderHistory = (OrderId, Result<Vec<EventEnvelope>, String>);

/// A page of [`SqliteEventStore::histories_after`].
#[derive(Debug)]
pub struct HistoryPage {
    pub histories: Vec<OrderHistory>,
    /// Pass back as `after` for the next page; `None` when the log has been walked.
    pub next: Option<OrderId>,
}

impl SqliteEventStore {
    /// The whole histories of the orders after `after` (all orders when `None`), in order-id
    /// order, reading about `max_events` events (at least one whole history) per page. Every
    /// order with any event comes exactly once over a walk; an order's events are in version
    /// order. Orders appended meanwhile with an id beyond the position are included.
    ///
    /// Errors: `Corrupt` when a stored order id is not one (an undecodable event is reported
    /// in its history instead, so the walk goes on); `Unavailable` as usual.
    pub async fn histories_after(
        &self,
        after: Option<OrderId>,
        max_events: usize,
    ) -> Result<HistoryPage, StoreError> {
        let limit = max_events.max(1);
        let start = after.map(|id| id.to_string()).unwrap_or_default();
        let rows = self.rows_from(start, limit, false).await?;
        let complete = rows.len() < limit;
        let mut histories = group(rows)?;
        if complete {
            return Ok(HistoryPage {
                histories,
                next: None,
            });
        }
        // The page may have cut the last order's history short: leave it to the next page,
        // unless it is the only order on the page, which is then read whole.
        if histories.len() > 1 {
            histories.pop();
        } else if let Some((id, _)) = histories.pop() {
            histories = group(self.rows_from(id.to_string(), 0, true).await?)?;
        }
        let next = histories.last().map(|(id, _)| *id);
        Ok(HistoryPage { histories, next })
    }

    /// Up to `limit` rows after the order id `start`, or (`exactly`) every row of that order.
    async fn rows_from(
        &self,
        start: String,
        limit: usize,
        exactly: bool,
    ) -> Result<Vec<Row>, StoreError> {
        let sql_limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.db
            .read(move |conn| {
                let sql = if exactly {
                    format!("SELECT {COLUMNS} FROM events WHERE order_id = ?1 ORDER BY version")
                } else {
                    format!(
                        "SELECT {COLUMNS} FROM events WHERE order_id > ?1 \
                         ORDER BY order_id, version LIMIT ?2"
                    )
                };
                let mut stmt = conn.prepare_cached(&sql).map_err(map_err)?;
                let map = |r: &rusqlite::Row<'_>| {
                    let order_id: String = r.get(1)?;
                    let event = read_row(r)?.and_then(|(_, stored)| decode(stored));
                    Ok((order_id, event))
                };
                let rows = if exactly {
                    stmt.query_map([&start], map)
                } else {
                    stmt.query_map(params![start, sql_limit], map)
                }
                .map_err(map_err)?;
                rows.map(|r| r.map_err(map_err)).collect()
            })
            .await
    }
}

type Row = (String, Result<EventEnvelope, StoreError>);

/// Consecutive rows of one order into its history; the first undecodable event spoils it.
fn group(rows: Vec<Row>) -> Result<Vec<OrderHistory>, StoreError> {
    let mut out: Vec<OrderHistory> = Vec::new();
    for (raw_id, event) in rows {
        let id = OrderId::parse(&raw_id)
            .map_err(|_| StoreError::Corrupt(format!("events: bad order_id {raw_id:?}")))?;
        if out.last().map(|(last, _)| *last) != Some(id) {
            out.push((id, Ok(Vec::new())));
        }
        if let Some((_, history)) = out.last_mut() {
            match (history.as_mut(), event) {
                (Ok(events), Ok(event)) => events.push(event),
                (Ok(_), Err(e)) => *history = Err(e.to_string()),
                (Err(_), _) => {}
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::TempSqlite;
    use events_schema::{OrderEvent, Version};
    use order_ports::EventStore;
    use order_test_support::order_received;

    /// An order with `n` events: received, started, then completions' stand-ins (started
    /// events are legal to store: the log does not fold).
    fn history(n: u32) -> Vec<EventEnvelope> {
        let first = order_received(1, 5);
        let mut events = vec![first.clone()];
        for v in 2..=n {
            let mut next = first.clone();
            next.version = Version::new(v).expect("version");
            next.event_id = events_schema::EventId::new();
            next.event = OrderEvent::OrderProcessingStarted;
            events.push(next);
        }
        events
    }

    async fn walk(store: &SqliteEventStore, max_events: usize) -> Vec<OrderHistory> {
        let (mut out, mut after) = (Vec::new(), None);
        loop {
            let page = store
                .histories_after(after, max_events)
                .await
                .expect("page");
            out.extend(page.histories);
            match page.next {
                Some(next) => after = Some(next),
                None => return out,
            }
        }
    }

    #[tokio::test]
    async fn every_order_comes_once_whole_in_id_order_whatever_the_page_size() {
        let temp = TempSqlite::new();
        let store = temp.db().event_store();
        let mut expected = Vec::new();
        for n in [3, 1, 7, 2, 3, 4] {
            let events = history(n);
            store.append(&events).await.expect("append");
            expected.push((events[0].order_id, Ok(events)));
        }
        expected.sort_by_key(|(id, _)| id.to_string());
        for max_events in [1, 2, 3, 5, 8, 1_000] {
            assert_eq!(
                walk(&store, max_events).await,
                expected,
                "pages of {max_events}"
            );
        }
    }

    #[tokio::test]
    async fn an_empty_log_is_one_empty_last_page() {
        let temp = TempSqlite::new();
        let page = temp
            .db()
            .event_store()
            .histories_after(None, 10)
            .await
            .expect("page");
        assert!(page.histories.is_empty());
        assert_eq!(page.next, None);
    }
}
