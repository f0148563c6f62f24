-- Per UTC day of OrderReceived: the completed orders and the time from OrderReceived to
-- OrderCompleted in milliseconds, p50, p95 and p99 by nearest rank (the value of rank
-- ceiling(p × n) in ascending order), which is what `orders stats --by day` estimates
-- (exact below 128 ms, within 1/64 above). Nearest rank through window functions, because
-- the percentile functions differ: approx_percentile is Trino's, quantile_cont DuckDB's.
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
    SELECT orderId, occurredAt FROM events WHERE eventType = 'OrderReceived'
),
completed AS (
    SELECT orderId, occurredAt FROM events WHERE eventType = 'OrderCompleted'
),
latencies AS (
    SELECT CAST(CAST(r.occurredAt AS DATE) AS VARCHAR) AS day,
           date_diff('millisecond', r.occurredAt, c.occurredAt) AS ms
    FROM received r
    JOIN completed c ON c.orderId = r.orderId
),
ranked AS (
    SELECT day, ms,
           row_number() OVER (PARTITION BY day ORDER BY ms) AS rank_in_day,
           count(*) OVER (PARTITION BY day) AS in_day
    FROM latencies
)
SELECT day,
       max(in_day) AS completed,
       min(CASE WHEN rank_in_day >= ceiling(0.50 * in_day) THEN ms END) AS p50_ms,
       min(CASE WHEN rank_in_day >= ceiling(0.95 * in_day) THEN ms END) AS p95_ms,
       min(CASE WHEN rank_in_day >= ceiling(0.99 * in_day) THEN ms END) AS p99_ms
FROM ranked
GROUP BY day
ORDER BY day
