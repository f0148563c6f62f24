#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    notifier::lambda::run().await
}
