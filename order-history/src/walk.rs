//! Every order of the log, streamed: one lister per [`ScanSegment`] feeding a bounded channel,
//! so memory holds a few pages of ids whatever the size of the log; and every order's whole
//! history, read either a query per order ([`histories`]) or a page of histories at a time
//! from a store that can ([`paged_histories`]).

use std::future::Future;
use std::sync::Arc;

use events_schema::{EventEnvelope, OrderId};
use futures::stream::BoxStream;
use futures::StreamExt;
use order_ports::{EventStore, OrderScan, ScanSegment, StoreError};

use crate::HistoryError;

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

/// One order's whole history, or why it cannot be read (an undecodable event: the caller
/// reports it and goes on).
pub type History = (OrderId, Result<Vec<EventEnvelope>, String>);

/// Every order's history, in no particular order, a `load` per order: memory holds a few pages
/// of ids and at most `concurrency` histories. A failure to read the log (other than an
/// undecodable event) ends the stream with an error.
pub fn histories(
    events: Arc<dyn EventStore>,
    scan: Arc<dyn OrderScan>,
    concurrency: usize,
) -> BoxStream<'static, Result<History, HistoryError>> {
    all_orders(scan)
        .map(move |id| {
            let events = events.clone();
            async move {
                let id = id?;
                match events.load(id).await {
                    Ok(history) => Ok((id, Ok(history))),
                    Err(StoreError::Corrupt(reason)) => Ok((id, Err(reason))),
                    Err(source) => Err(HistoryError::Order {
                        order_id: id,
                        source,
                    }),
                }
            }
        })
        .buffer_unordered(concurrency.max(1))
        .boxed()
}

/// Every order's history from a store that reads whole histories a page at a time (one range
/// read per page rather than one query per order): `read_page(after)` returns the histories
/// after the order `after` (from the start when `None`) and where the next page starts (`None`
/// at the end). The next page is read while the caller folds this one.
pub fn paged_histories<ReadPage, Page>(
    mut read_page: ReadPage,
) -> BoxStream<'static, Result<History, HistoryError>>
where
    ReadPage: FnMut(Option<OrderId>) -> Page + Send + 'static,
    Page: Future<Output = Result<(Vec<History>, Option<OrderId>), StoreError>> + Send + 'static,
{
    produced(2, |tx| async move {
        let mut after = None;
        loop {
            let (histories, next) = match read_page(after).await {
                Ok((histories, next)) => (Ok(histories), next),
                Err(e) => (Err(HistoryError::from(e)), None),
            };
            if tx.send(histories).await.is_err() {
                return;
            }
            match next {
                Some(next) => after = Some(next),
                None => return,
            }
        }
    })
    .flat_map(|page| match page {
        Ok(histories) => futures::stream::iter(histories.into_iter().map(Ok)).left_stream(),
        Err(e) => futures::stream::iter([Err(e)]).right_stream(),
    })
    .boxed()
}
