#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    processor::lambda::run().await
}
