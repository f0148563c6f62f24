#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    reconciler::lambda::run().await
}
