//! The `wangge` command. Everything lives in the library's [`wangge_engine::cli`] module.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    wangge_engine::cli::run().await
}
