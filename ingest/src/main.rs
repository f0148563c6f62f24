#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    ingest::lambda::run().await
}
