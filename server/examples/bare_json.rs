//! The benchmark's peer: a bare axum server that answers `GET /status` with the JSON document in
//! a file, serialized anew for each request as the real status endpoint does, with nothing
//! else (no authentication, no state, no middleware). `scripts/bench-http` measures both in one
//! run.
//!
//! `cargo run --release -p leasewatch --example bare_json -- <addr> <document.json>`

use std::sync::Arc;

use anyhow::Context;
use axum::{Json, Router, extract::State, routing::get};
use serde_json::Value;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(path)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: bare_json <addr> <document.json>");
    };
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    let document: Arc<Value> =
        Arc::new(serde_json::from_str(&text).with_context(|| format!("{path} is not JSON"))?);
    let app = Router::new()
        .route("/status", get(status))
        .with_state(document);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    axum::serve(listener, app).await?;
    Ok(())
}

async fn status(State(document): State<Arc<Value>>) -> Json<Value> {
    Json(Value::clone(&document))
}
