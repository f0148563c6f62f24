//! Every order of the log, streamed: one lister per [`ScanSegment`] feeding a bounded channel,
//! so memory holds a few pages of ids whatever the size of the log.

use std::sync::Arc;

use events_schema::OrderId;
use futures::stream::BoxStream;
use futures::StreamExt;
use order_ports::{OrderScan, ScanSegment, StoreError};

/// Order ids per `list_orders` page.
const PAGE: usize = 500;

/// Every order id with at least one event, each once, in no particular order; an error ends
/// the stream.
pub fn all_orders(scan: Arc<dyn OrderScan>) -> BoxStream<'static, Result<OrderId, StoreError>> {
    produced(2 * PAGE, move |tx| async move {
        let total = scan.segments().max(1);
        for index in 0..total {
            let (scan, tx) = (scan.clone(), tx.clone());
            tokio::spawn(async move {
                let segment = ScanSegment { index, total };
                let mut cursor = None;
                loop {
                    match scan.list_orders(segment, cursor.take(), PAGE).await {
                        Ok(page) => {
                            for id in page.order_ids {
                                if tx.send(Ok(id)).await.is_err() {
                                    return;
                                }
                            }
                            match page.next {
                                Some(next) => cursor = Some(next),
                                None => return,
                            }
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e)).await;
                            return;
                        }
                    }
                }
            });
        }
    })
}

/// What a producer task sends, as a stream: the producer (spawned now) runs ahead of the reader
/// by at most `capacity` items, and a send fails once the stream is dropped, so it can stop.
pub fn produced<T, F, Fut>(capacity: usize, producer: F) -> BoxStream<'static, T>
where
    T: Send + 'static,
    F: FnOnce(tokio::sync::mpsc::Sender<T>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(capacity);
    tokio::spawn(producer(tx));
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
    .boxed()
}

/// Parses `300`, `300s`, `5m`, `1h`, `500ms`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration such as 90s, 5m or 1h"))?;
    let secs = |k: u64| std::time::Duration::from_secs(n.saturating_mul(k));
    match unit {
        "" | "s" => Ok(secs(1)),
        "m" => Ok(secs(60)),
        "h" => Ok(secs(3600)),
        "d" => Ok(secs(86_400)),
        "ms" => Ok(std::time::Duration::from_millis(n)),
        _ => Err(format!("{s:?}: unknown unit {unit:?} (ms, s, m, h or d)")),
    }
}
