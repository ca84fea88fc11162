//! Rewrites `projections/openapi.json` from the handlers (the committed copy of the document
//! served at `/api/openapi.json`): `cargo run -p wangge-projections --bin generate-openapi`.

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
    let text = wangge_projections::http::openapi::render(&wangge_projections::http::openapi());
    match std::fs::write(&path, text) {
        Ok(()) => {
            println!("wrote {}", path.display());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("cannot write {}: {error}", path.display());
            ExitCode::FAILURE
        }
    }
}
