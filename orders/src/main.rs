use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    orders::run(orders::Cli::parse()).await
}
