-- The completed orders per currency and their charged totals (minor units): the totals of
-- `orders stats` (its "all" row) and of `orders replay --as-of` after the last event.
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
received AS (
    SELECT orderId, currency FROM events WHERE eventType = 'OrderReceived'
),
completed AS (
    SELECT orderId, total FROM events WHERE eventType = 'OrderCompleted'
)
SELECT r.currency, count(*) AS orders, sum(c.total) AS total
FROM completed c
JOIN received r ON r.orderId = c.orderId
GROUP BY r.currency
ORDER BY r.currency
