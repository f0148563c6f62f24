//! [`EventExport`] on the `events` table: keyset pages over the `events_by_time` index, the
//! customer filter through the `events_by_customer` index of `OrderReceived` payloads.

use async_trait::async_trait;
use events_schema::envelope::format_timestamp;
use events_schema::EventEnvelope;
use rusqlite::types::Value;

use super::event_store::{decode, read_row, COLUMNS};
use super::{map_err, SqliteEventStore};
use order_ports::{check_export_limit, EventExport, ExportFilter, ExportPosition, StoreError};

#[async_trait]
impl EventExport for SqliteEventStore {
    async fn page(
        &self,
        filter: &ExportFilter,
        after: Option<&ExportPosition>,
        limit: usize,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        check_export_limit(limit)?;
        let (sql, params) = page_query(filter, after, limit);
        self.db
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(&sql).map_err(map_err)?;
                let rows = stmt
                    .query_map(rusqlite::params_from_iter(params), read_row)
                    .map_err(map_err)?;
                rows.map(|r| {
                    let (_, stored) = r.map_err(map_err)??;
                    decode(stored)
                })
                .collect()
            })
            .await
    }
}

/// The statement and its parameters. Timestamps are compared as text: the log stores them in
/// one fixed-width form ([`format_timestamp`]), which sorts as the instants do.
fn page_query(
    filter: &ExportFilter,
    after: Option<&ExportPosition>,
    limit: usize,
) -> (String, Vec<Value>) {
    let mut clauses: Vec<String> = Vec::new();
    let mut params: Vec<Value> = Vec::new();
    let mut param = |value: Value| {
        params.push(value);
        format!("?{}", params.len())
    };
    if let Some(after) = after {
        let at = param(Value::Text(format_timestamp(after.occurred_at)));
        let order = param(Value::Text(after.order_id.to_string()));
        let version = param(Value::Integer(i64::from(after.version.get())));
        // The first clause is the index range; the row value drops what is at or before the
        // position among the events of the same millisecond.
        clauses.push(format!(
            "occurred_at >= {at} AND (occurred_at, order_id, version) > ({at}, {order}, {version})"
        ));
    }
    // Stored timestamps are whole milliseconds: a bound between two of them is rounded up, so
    // the text comparison selects exactly what `ExportFilter::matches` does (and DynamoDB).
    if let Some(since) = filter.since {
        clauses.push(format!(
            "occurred_at >= {}",
            param(Value::Text(format_timestamp(order_ports::ceil_to_millis(
                since
            ))))
        ));
    }
    if let Some(until) = filter.until {
        clauses.push(format!(
            "occurred_at < {}",
            param(Value::Text(format_timestamp(order_ports::ceil_to_millis(
                until
            ))))
        ));
    }
    if let Some(order_id) = filter.order_id {
        clauses.push(format!(
            "order_id = {}",
            param(Value::Text(order_id.to_string()))
        ));
    }
    if let Some(event_type) = filter.event_type {
        clauses.push(format!(
            "event_type = {}",
            param(Value::Text(event_type.as_str().to_owned()))
        ));
    }
    if let Some(customer) = &filter.customer_id {
        // Written exactly as the partial index `events_by_customer`, so SQLite uses it.
        clauses.push(format!(
            "order_id IN (SELECT order_id FROM events WHERE version = 1 \
             AND json_extract(payload, '$.customerId') = {})",
            param(Value::Text(customer.as_str().to_owned()))
        ));
    }
    let limit = param(Value::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
    let filter = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    (
        format!(
            "SELECT {COLUMNS} FROM events {filter} \
             ORDER BY occurred_at, order_id, version LIMIT {limit}"
        ),
        params,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::TempSqlite;
    use chrono::{DateTime, Utc};
    use events_schema::{
        CorrelationId, Currency, CustomerId, EventType, LineItem, OrderEvent, OrderId, ProductId,
        ValidOrder, Version,
    };
    use order_ports::{EventStore, MAX_EXPORT_PAGE};

    fn at(second: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + second, 0).unwrap()
    }

    /// An order of `customer` received at `second`, started at the same instant, completed
    /// one second later.
    fn order(customer: &str, second: i64) -> Vec<EventEnvelope> {
        let id = OrderId::new_random();
        let c = CorrelationId::generate();
        let received = OrderEvent::OrderReceived(ValidOrder {
            customer_id: CustomerId::parse(customer).unwrap(),
            items: vec![LineItem {
                product_id: ProductId::parse("p").unwrap(),
                quantity: 1,
                unit_price: 5,
            }],
            currency: Currency::USD,
        });
        let v = |n| Version::new(n).unwrap();
        vec![
            EventEnvelope::at(id, v(1), c.clone(), received, at(second)),
            EventEnvelope::at(
                id,
                v(2),
                c.clone(),
                OrderEvent::OrderProcessingStarted,
                at(second),
            ),
            EventEnvelope::at(
                id,
                v(3),
                c,
                OrderEvent::OrderCompleted { total: 5 },
                at(second + 1),
            ),
        ]
    }

    async fn export_all(
        store: &SqliteEventStore,
        filter: &ExportFilter,
        limit: usize,
    ) -> Vec<EventEnvelope> {
        let mut out: Vec<EventEnvelope> = Vec::new();
        loop {
            let after = out.last().map(ExportPosition::of);
            let page = store.page(filter, after.as_ref(), limit).await.unwrap();
            let done = page.len() < limit;
            out.extend(page);
            if done {
                return out;
            }
        }
    }

    #[tokio::test]
    async fn pages_walk_the_log_in_time_then_order_then_version_order_each_event_once() {
        let temp = TempSqlite::new();
        let store = temp.db().event_store();
        let mut all = Vec::new();
        // Several orders in the same second, appended out of time order.
        for (customer, second) in [("a", 5), ("b", 1), ("a", 1), ("c", 3), ("b", 5), ("a", 0)] {
            let events = order(customer, second);
            store.append(&events).await.unwrap();
            all.extend(events);
        }
        all.sort_by_key(ExportPosition::of);
        for limit in [1, 2, 7, MAX_EXPORT_PAGE] {
            let exported = export_all(&store, &ExportFilter::default(), limit).await;
            assert_eq!(exported, all, "pages of {limit}");
        }

        let filters = [
            ExportFilter {
                customer_id: Some(CustomerId::parse("a").unwrap()),
                ..Default::default()
            },
            ExportFilter {
                event_type: Some(EventType::OrderCompleted),
                since: Some(at(1)),
                until: Some(at(5)),
                ..Default::default()
            },
            ExportFilter {
                order_id: Some(all[4].order_id),
                ..Default::default()
            },
        ];
        let customer_of = |e: &EventEnvelope| {
            all.iter()
                .find_map(|r| match &r.event {
                    OrderEvent::OrderReceived(o) if r.order_id == e.order_id => {
                        Some(o.customer_id.clone())
                    }
                    _ => None,
                })
                .unwrap()
        };
        for filter in filters {
            let expected: Vec<EventEnvelope> = all
                .iter()
                .filter(|e| filter.matches(e, Some(&customer_of(e))))
                .cloned()
                .collect();
            assert!(!expected.is_empty(), "{filter:?} matches something");
            assert!(expected.len() < all.len(), "{filter:?} filters something");
            assert_eq!(export_all(&store, &filter, 2).await, expected, "{filter:?}");
        }
        let nothing = ExportFilter {
            since: Some(at(7)),
            ..Default::default()
        };
        assert!(export_all(&store, &nothing, 10).await.is_empty());
    }

    #[tokio::test]
    async fn sub_millisecond_bounds_select_exactly_what_the_filter_matches() {
        let temp = TempSqlite::new();
        let store = temp.db().event_store();
        let events = order("a", 1);
        store.append(&events).await.unwrap();
        let half = chrono::Duration::microseconds(500);
        for filter in [
            ExportFilter {
                since: Some(at(1) + half),
                ..Default::default()
            },
            ExportFilter {
                until: Some(at(1) + half),
                ..Default::default()
            },
            ExportFilter {
                since: Some(at(2) - half),
                until: Some(at(2) + half),
                ..Default::default()
            },
        ] {
            let expected: Vec<EventEnvelope> = events
                .iter()
                .filter(|e| filter.matches(e, None))
                .cloned()
                .collect();
            assert!(!expected.is_empty(), "{filter:?}");
            assert_eq!(
                export_all(&store, &filter, 10).await,
                expected,
                "{filter:?}"
            );
        }
    }

    #[test]
    fn a_bound_is_rounded_up_to_the_next_whole_millisecond_only_when_it_is_between_two() {
        let whole = at(1);
        assert_eq!(order_ports::ceil_to_millis(whole), whole);
        let just_after = whole + chrono::Duration::nanoseconds(1);
        assert_eq!(
            order_ports::ceil_to_millis(just_after),
            whole + chrono::Duration::milliseconds(1)
        );
        let just_before = whole + chrono::Duration::nanoseconds(999_999);
        assert_eq!(
            order_ports::ceil_to_millis(just_before),
            whole + chrono::Duration::milliseconds(1)
        );
    }

    #[tokio::test]
    async fn a_page_size_out_of_range_is_rejected() {
        let temp = TempSqlite::new();
        let store = temp.db().event_store();
        for limit in [0, MAX_EXPORT_PAGE + 1] {
            let err = store
                .page(&ExportFilter::default(), None, limit)
                .await
                .unwrap_err();
            assert!(matches!(err, StoreError::Rejected(_)), "{err:?}");
        }
    }

    #[tokio::test]
    async fn a_customer_page_reads_the_customer_index_not_the_whole_log() {
        let temp = TempSqlite::new();
        let store = temp.db().event_store();
        store.append(&order("a", 0)).await.unwrap();
        let filter = ExportFilter {
            customer_id: Some(CustomerId::parse("a").unwrap()),
            ..Default::default()
        };
        let (sql, params) = page_query(&filter, None, 10);
        let plan: Vec<String> = store
            .db
            .read(move |conn| {
                let mut stmt = conn
                    .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                    .map_err(map_err)?;
                let rows = stmt
                    .query_map(rusqlite::params_from_iter(params), |r| {
                        r.get::<_, String>(3)
                    })
                    .map_err(map_err)?;
                rows.map(|r| r.map_err(map_err))
                    .collect::<Result<Vec<_>, StoreError>>()
            })
            .await
            .unwrap();
        let plan = plan.join("\n");
        assert!(plan.contains("events_by_customer"), "{plan}");
        assert!(
            !plan.contains("SCAN events\n") && !plan.ends_with("SCAN events"),
            "{plan}"
        );
    }
}
