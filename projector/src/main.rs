#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    projector::lambda::run().await
}
