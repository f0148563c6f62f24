-- Orders per UTC day of their OrderReceived and per status now (the status of each order's
-- latest event): what `orders stats --by day` counts as completed, failed, cancelled and pending
-- (RECEIVED + PROCESSING) per day.
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
latest AS (
    SELECT orderId,
           CASE eventType
               WHEN 'OrderReceived' THEN 'RECEIVED'
               WHEN 'OrderProcessingStarted' THEN 'PROCESSING'
               WHEN 'OrderCompleted' THEN 'COMPLETED'
               WHEN 'OrderFailed' THEN 'FAILED'
               WHEN 'OrderCancelled' THEN 'CANCELLED'
           END AS status,
           row_number() OVER (PARTITION BY orderId ORDER BY version DESC) AS newest
    FROM events
),
received AS (
    SELECT orderId, CAST(CAST(occurredAt AS DATE) AS VARCHAR) AS day
    FROM events
    WHERE eventType = 'OrderReceived'
),
orders AS (
    SELECT r.day, l.status
    FROM received r
    JOIN latest l ON l.orderId = r.orderId AND l.newest = 1
)
SELECT day, status, count(*) AS orders
FROM orders
GROUP BY day, status
ORDER BY day, status
