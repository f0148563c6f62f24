//! The sparse `pending` index of the `OrderStatus` table: what the reconciler walks (ADR 6).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use events_schema::OrderId;

use super::classify;
use order_ports::StoreError;
use order_ports::{check_pending_limit, PendingOrder, PendingPage, PendingPosition};

use super::*;

/// The sparse GSI of the `OrderStatus` table holding only the non-terminal orders: partition
/// key [`PENDING_SHARD`], sort key `createdAt`, keys only (ADR 6).
pub const PENDING_INDEX: &str = "pending";

/// The attribute [`DynamoStatusStore`] writes only on a non-terminal record: the partition key
/// of [`PENDING_INDEX`], so a terminal write takes the order out of the index.
pub const PENDING_SHARD: &str = "pendingShard";

/// Partitions of [`PENDING_INDEX`]: a burst of pending orders spreads over this many partition
/// keys instead of one hot one; a reconciler run queries each once. Each key is one partition's
/// 1,000 writes/s (docs/scaling.md): 128 keys carry 64,000 orders/s that each enter and leave
/// the index (128,000 with a stream batching window), for 128 `Query`s a run when nothing is
/// stuck (64 RRU, about 7 cents a month at one run every 5 minutes; ADR 6). It was 16 until
/// the 100,000 orders/s plan showed the index throttling the projector at 8,000–21,000 orders/s.
pub const PENDING_SHARDS: u32 = 128;

/// The shard of an order in [`PENDING_INDEX`]: FNV-1a (32 bit) of the order id as stored
/// (lowercase hyphenated UUID), modulo [`PENDING_SHARDS`]: stable across builds and languages
/// (unlike `std`'s hasher), so anyone can tell where an order sits. Readers query every shard,
/// so the hash only has to spread; growing [`PENDING_SHARDS`] is free, shrinking it would hide
/// the entries of the dropped shards until their order's next write.
pub fn pending_shard(order_id: OrderId) -> u32 {
    let hash = order_id.to_string().bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    hash % PENDING_SHARDS
}

impl DynamoStatusStore {
    /// [`StatusStore::pending_before`]: a `Query` of `createdAt < before` on each shard of the
    /// key-only [`PENDING_INDEX`] in turn, from the cursor's shard and position, then the views
    /// the entries point to ([`Self::views_of`]), keeping those still pending and last updated
    /// before `before`, until one more than the page is found (so a cursor is only returned when
    /// there is more) or the last shard is exhausted. A view is updated at or after its
    /// creation, so `createdAt < before` loses none of them and the index key stays put while
    /// the order is pending (one index put and one delete per order). The cursor is the page's
    /// last entry; its index key (the position's timestamp is `createdAt` here) plus `orderId`
    /// is the `ExclusiveStartKey` to go on from.
    pub(super) async fn pending_page(
        &self,
        before: DateTime<Utc>,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<PendingPage, StoreError> {
        check_pending_limit(limit)?;
        let after = cursor.as_deref().map(PendingPosition::decode).transpose()?;
        if let Some(position) = &after {
            if position.shard >= PENDING_SHARDS {
                return Err(StoreError::Rejected(format!(
                    "not a cursor of this store: shard {} of {PENDING_SHARDS}",
                    position.shard
                )));
            }
        }
        let before = events_schema::envelope::format_timestamp(before);
        let wanted = limit + 1;
        let mut found: Vec<(u32, PendingOrder, String)> = Vec::with_capacity(wanted);
        let mut shard = after.as_ref().map_or(0, |p| p.shard);
        let mut start = after.map(|p| {
            HashMap::from([
                (
                    PENDING_SHARD.to_owned(),
                    AttributeValue::S(p.shard.to_string()),
                ),
                ("createdAt".to_owned(), AttributeValue::S(p.sort_key)),
                (
                    "orderId".to_owned(),
                    AttributeValue::S(p.order_id.to_string()),
                ),
            ])
        });
        while found.len() < wanted && shard < PENDING_SHARDS {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(PENDING_INDEX)
                .key_condition_expression("#shard = :shard AND createdAt < :before")
                .expression_attribute_names("#shard", PENDING_SHARD)
                .expression_attribute_values(":shard", AttributeValue::S(shard.to_string()))
                .expression_attribute_values(":before", AttributeValue::S(before.clone()))
                .limit(i32::try_from(wanted - found.len()).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| classify("Query", &e))?;
            let entries = out.items.unwrap_or_default();
            for view in self.views_of(&entries).await? {
                // Text comparison: both are timestamps in the one stored form.
                if view.status.is_terminal() || view.updated_at >= before {
                    continue;
                }
                if found.len() < wanted {
                    let updated_at = events_schema::envelope::parse_timestamp(&view.updated_at)
                        .ok_or_else(|| {
                            StoreError::Corrupt(format!(
                                "view {}: bad updatedAt {:?}",
                                view.order_id, view.updated_at
                            ))
                        })?;
                    let order = PendingOrder {
                        order_id: view.order_id,
                        status: view.status,
                        version: view.version,
                        updated_at,
                    };
                    found.push((shard, order, view.created_at));
                }
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                shard += 1;
            }
        }
        let more = found.len() > limit;
        found.truncate(limit);
        let next = match found.last() {
            Some((shard, order, created_at)) if more => Some(
                PendingPosition {
                    shard: *shard,
                    sort_key: created_at.clone(),
                    order_id: order.order_id,
                }
                .encode(),
            ),
            _ => None,
        };
        Ok(PendingPage {
            orders: found.into_iter().map(|(_, order, _)| order).collect(),
            next,
        })
    }
}
