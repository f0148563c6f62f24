-- Every order as it was at :as_of (inclusive): each history is cut at its first event after
-- that moment, as `orders replay --as-of` cuts it, and the order's state is that of the last
-- event kept. Orders that did not exist yet are left out. `completed_total` is the charged
-- total of a COMPLETED order (null otherwise); `orders replay --as-of T` without --order
-- reports these counted by status, and the completed totals summed per currency.
-- param :as_of timestamp
-- Every query first keeps one copy of each event: the archive on AWS is delivered at least
-- once, so the same eventId may be stored twice (the copies are the same row).
WITH events AS (
    SELECT orderId, version, eventId, eventType, schemaVersion, occurredAt, correlationId,
           customerId, currency, items, total, reason
    FROM (
        SELECT e.*, row_number() OVER (PARTITION BY e.eventId) AS copy_number
        FROM order_events e
    ) numbered
    WHERE copy_number = 1
),
cut AS (
    SELECT orderId, min(version) AS first_after
    FROM events
    WHERE occurredAt > :as_of
    GROUP BY orderId
),
kept AS (
    SELECT e.*
    FROM events e
    LEFT JOIN cut c ON c.orderId = e.orderId
    WHERE c.first_after IS NULL OR e.version < c.first_after
),
latest AS (
    SELECT orderId, version, occurredAt,
           CASE eventType
               WHEN 'OrderReceived' THEN 'RECEIVED'
               WHEN 'OrderProcessingStarted' THEN 'PROCESSING'
               WHEN 'OrderCompleted' THEN 'COMPLETED'
               WHEN 'OrderFailed' THEN 'FAILED'
               WHEN 'OrderCancelled' THEN 'CANCELLED'
           END AS status,
           row_number() OVER (PARTITION BY orderId ORDER BY version DESC) AS newest
    FROM kept
)
SELECT r.orderId AS order_id,
       l.status,
       l.version,
       r.customerId AS customer_id,
       r.currency,
       c.total AS completed_total,
       f.reason AS failure_reason,
       r.occurredAt AS created_at,
       l.occurredAt AS updated_at
FROM kept r
JOIN latest l ON l.orderId = r.orderId AND l.newest = 1
LEFT JOIN kept c ON c.orderId = r.orderId AND c.eventType = 'OrderCompleted'
LEFT JOIN kept f ON f.orderId = r.orderId AND f.eventType = 'OrderFailed'
WHERE r.eventType = 'OrderReceived'
ORDER BY r.orderId
