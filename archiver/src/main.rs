#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    archiver::lambda::run().await
}
