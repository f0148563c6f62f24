-- The events of one order, in version order: what `orders events --order ID` exports.
-- param :order_id string
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
)
SELECT orderId, version, eventId, eventType, schemaVersion, occurredAt, correlationId,
       customerId, currency, items, total, reason
FROM events
WHERE orderId = :order_id
ORDER BY version
