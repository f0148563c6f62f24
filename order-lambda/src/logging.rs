//! Logging and metrics of a function: set up once, at start.

/// JSON or text logs as the function's logging config says (`AWS_LAMBDA_LOG_FORMAT`,
/// `AWS_LAMBDA_LOG_LEVEL`), falling back to `RUST_LOG`; and the metrics as EMF lines on stdout
/// ([`Emf`](crate::Emf)), in the same log stream.
pub fn init_logging() {
    init_logging_from(|name| std::env::var(name).ok());
    order_ports::metrics::install(std::sync::Arc::new(crate::Emf::stdout()));
}

fn init_logging_from(env: impl Fn(&str) -> Option<String>) {
    use tracing_subscriber::filter::{EnvFilter, LevelFilter};
    // Lambda's levels are TRACE … ERROR and FATAL; `RUST_LOG` may hold directives.
    let level = env("AWS_LAMBDA_LOG_LEVEL").and_then(|l| match l.to_ascii_lowercase().as_str() {
        "fatal" => Some(LevelFilter::ERROR),
        other => other.parse::<LevelFilter>().ok(),
    });
    let filter = match level {
        Some(level) => EnvFilter::default().add_directive(level.into()),
        None => EnvFilter::builder()
            .with_default_directive(LevelFilter::INFO.into())
            .parse_lossy(env("RUST_LOG").unwrap_or_default()),
    };
    let builder = tracing_subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_env_filter(filter)
        .with_writer(std::io::stdout);
    let json = env("AWS_LAMBDA_LOG_FORMAT").is_some_and(|f| f.eq_ignore_ascii_case("json"));
    // JSON: the event's fields at the top level (`orderId`, `correlationId`, …) and the current
    // span's fields under `span`, so a Logs Insights query can filter on either.
    let _ = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        builder.try_init()
    };
}
