//! The `wangge` command. Everything lives in the library's [`wangge_engine::cli`] module.

/// mimalloc instead of glibc malloc: the engine allocates many small buffers per command on
/// many threads, and profiles showed glibc's allocator as its largest single cost.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    wangge_engine::cli::run().await
}
