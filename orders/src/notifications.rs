//! `orders notifications`: what the local publisher has published.

use std::time::Duration;

use order_ports::sqlite::SqliteDb;

use crate::{CliError, DataArgs};

#[derive(Debug, clap::Args)]
pub struct NotificationsArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Keep running and print new notifications as they are published.
    #[arg(long, short)]
    follow: bool,
}

/// Prints one JSON object per line: `{seq, eventId, publishedAt, attributes, message}`.
pub async fn show(args: NotificationsArgs) -> Result<(), CliError> {
    let db = SqliteDb::open(&args.data.data).map_err(|source| CliError::Open {
        path: args.data.data.clone(),
        source,
    })?;
    let publisher = db.publisher();
    let mut after = 0;
    loop {
        let page = publisher.list_after(after, 500).await?;
        for (seq, n) in &page {
            let message: serde_json::Value =
                serde_json::from_str(&n.message).unwrap_or_else(|_| n.message.clone().into());
            println!(
                "{}",
                serde_json::json!({
                    "seq": seq,
                    "eventId": n.event_id,
                    "publishedAt": n.published_at,
                    "attributes": n.attributes,
                    "message": message,
                })
            );
            after = *seq;
        }
        if page.is_empty() {
            if !args.follow {
                return Ok(());
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                _ = tokio::signal::ctrl_c() => return Ok(()),
            }
        }
    }
}
