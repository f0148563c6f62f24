//! [`StatusRepair`]: writes to the status view that the projector never makes (`orders rebuild
//! --force`, the reconciler's setting aside, ADR 11).

use async_trait::async_trait;
use events_schema::{OrderId, OrderStatusRecord, Version};

use super::*;

/// Writes to the status view that the projector never makes: for `orders rebuild --force`, and
/// the reconciler's setting aside of an order it cannot repair (ADR 11).
#[async_trait]
pub trait StatusRepair: Send + Sync + 'static {
    /// Replaces the stored record by `record` only if the stored one is still at `expected`
    /// (compare-and-set on the version, so a projector moving the order on meanwhile wins);
    /// [`Upserted::Stale`] when it is not. Unlike [`StatusStore::upsert`] this may move the
    /// view *back* (a view ahead of its log) or rewrite it at the same version.
    async fn replace(
        &self,
        record: &OrderStatusRecord,
        expected: Version,
    ) -> Result<Upserted, StoreError>;

    /// Takes a pending view out of [`StatusStore::pending_before`]'s walk while it stays at
    /// `version`, remembering `reason`: the reconciler's "reported once and left alone" for an
    /// order whose log does not fold, which re-enqueuing could only cycle through the dead
    /// letters (ADR 11). The view's fields are not changed, so reads and `orders verify` see
    /// it as before. Any later write of the view ([`StatusStore::upsert`] of a newer version,
    /// [`replace`](Self::replace)) ends it: the order is pending again, or done.
    ///
    /// Only if the stored view is still `RECEIVED` or `PROCESSING` at `version` (so a projector
    /// that moved the order on meanwhile wins); [`Upserted::Stale`] otherwise, also when there
    /// is no view. Setting aside again what already is set aside is `Written` (idempotent).
    /// SQLite records it in the `pending_set_aside` table; DynamoDB removes the view's
    /// `pendingShard` (the order leaves the sparse `pending` index) and sets `setAside` and
    /// `setAsideAt` on it, in one conditional `UpdateItem`.
    ///
    /// Errors: `Unavailable` as usual.
    async fn set_aside_pending(
        &self,
        order_id: OrderId,
        version: Version,
        reason: &str,
    ) -> Result<Upserted, StoreError>;
}
