//! `orders notifications`: what the local publisher has published.

use std::time::Duration;

use crate::backend::{open_existing_sqlite, Backend, BackendArgs};
use crate::CliError;

#[derive(Debug, clap::Args)]
pub struct NotificationsArgs {
    /// Keep running and print new notifications as they are published.
    #[arg(long, short)]
    follow: bool,
    // Last: the backend's AWS options set a help heading that would also take the ones above.
    #[command(flatten)]
    backend: BackendArgs,
}

/// Prints one JSON object per line: `{seq, eventId, publishedAt, attributes, message}`.
pub async fn show(args: NotificationsArgs) -> Result<(), CliError> {
    if args.backend.backend == Backend::Aws {
        return Err(CliError::Config(
            "notifications: on AWS completions go to the SNS topic; subscribe to it (this \
             command shows the local publisher's table)"
                .into(),
        ));
    }
    let db = open_existing_sqlite(&args.backend.data, "notifications")?;
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
