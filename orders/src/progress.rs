//! The progress bars of the commands that read the whole log, on stderr.

use std::io::IsTerminal as _;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use order_ports::OrderScan;

use crate::CliError;

/// A bar of `total` events (a spinner when the total is unknown), drawn only when stderr is a
/// terminal.
pub fn events_bar(total: Option<u64>) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
    let template = if total.is_some() {
        "{wide_bar} {human_pos}/{human_len} events  {per_sec}  ETA {eta}"
    } else {
        "{spinner} {human_pos} events  {per_sec}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// A bar of the log's events on stderr when it is a terminal; hidden (and the events not
/// counted: on DynamoDB that is a whole extra Scan) otherwise.
pub async fn log_bar(scan: &dyn OrderScan) -> Result<ProgressBar, CliError> {
    if !std::io::stderr().is_terminal() {
        return Ok(ProgressBar::hidden());
    }
    Ok(events_bar(Some(scan.count_events().await?)))
}
