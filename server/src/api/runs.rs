//! The persisted history: `GET /api/admin/runs` (runs, filtered and paged), `GET
//! /api/admin/runs/{instance}/{run_id}` (one run with its attempts) and `GET
//! /api/admin/samples` (the charts' pool and server samples over a range).

use std::sync::Arc;

use aide::transform::TransformOperation;
use axum::{
    Json,
    extract::{Path, Query, State, rejection::QueryRejection},
    http::{HeaderName, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use leasewatch_engine::{
    Engine,
    history::{HistoryError, RunDetail, RunSearch, SampleSpan, StoredRun, StoredSample},
    query::{self, InvalidQuery, MAX_PAGE},
};
use leasewatch_types::{RunsQuery, SamplesQuery};
use serde::{Deserialize, Serialize};

use super::{RUNS_PATH, audit::NEXT_BEFORE};
use crate::{
    error::{ApiError, invalid_query},
    openapi::authenticated,
};

fn unavailable(err: HistoryError) -> ApiError {
    tracing::warn!(%err, "cannot read the history");
    ApiError::database_unavailable("the history")
}

/// One page of runs, newest first, as a JSON array. When older runs remain, the response
/// carries `Link: <...?…&before=CURSOR>; rel="next"` and `X-Next-Before: CURSOR`.
pub async fn list(
    State(engine): State<Arc<Engine>>,
    query: Result<Query<RunsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|rejection| {
        invalid_query(
            &rejection,
            &format!(
                "task, outcome, failure, instance, from and to (RFC 3339), limit (1 to \
                 {MAX_PAGE}) and before (the cursor of the previous page)"
            ),
        )
    })?;
    let search = RunSearch::parse(&query)?;
    let page = engine
        .history()
        .runs(engine.database(), &search)
        .await
        .map_err(unavailable)?;
    let mut response = Json(page.runs).into_response();
    if let Some(next) = page.next {
        let next = next.to_string();
        let next_query = RunsQuery {
            before: Some(next.clone()),
            limit: Some(search.limit),
            ..query
        };
        let link = format!(
            "<{RUNS_PATH}?{}>; rel=\"next\"",
            next_query.to_query_string()
        );
        let headers = response.headers_mut();
        for (name, value) in [
            (header::LINK, link),
            (HeaderName::from_static(NEXT_BEFORE), next),
        ] {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
    }
    Ok(response)
}

pub fn list_docs(op: TransformOperation<'_>) -> TransformOperation<'_> {
    authenticated(op)
        .summary("Finished runs from the history, newest first, a page at a time")
        .description(
            "Every finished run of every instance writing to this database, kept for \
             `HISTORY_RETENTION`. Filtered by `task`, `outcome`, `failure`, `instance`, `from` \
             and `to` (RFC 3339, on the start). When older runs remain, the response has a \
             `Link` header with `rel=\"next\"` and an `X-Next-Before` header: pass that cursor \
             as `before` for the next page.",
        )
        .response_with::<200, Json<Vec<StoredRun>>, _>(|r| r.description("Runs, newest first"))
        .response_with::<400, ApiError, _>(|r| {
            r.description(
                "A filter that is not allowed (`invalid_<field>`: the message names the value \
                 and what is allowed)",
            )
        })
        .response_with::<503, ApiError, _>(|r| r.description("The database cannot be read now"))
}

/// Which run.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct RunPath {
    /// The instance that ran it.
    pub instance: String,
    /// The run's number within that instance.
    pub run_id: u64,
}

/// One run with each attempt, its error and delay, the leases and backends it held.
pub async fn detail(
    State(engine): State<Arc<Engine>>,
    Path(RunPath { instance, run_id }): Path<RunPath>,
) -> Result<Json<RunDetail>, ApiError> {
    let instance = query::name("instance", &Some(instance))?
        .map(str::to_owned)
        .ok_or_else(|| InvalidQuery::new("instance", "must be given"))?;
    engine
        .history()
        .run_detail(engine.database(), &instance, run_id)
        .await
        .map_err(unavailable)?
        .map(Json)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_run",
                format!(
                    "no run {run_id} of instance {instance} in the history (kept for \
                     HISTORY_RETENTION; runs still going are in the status)"
                ),
            )
        })
}

pub fn detail_docs(op: TransformOperation<'_>) -> TransformOperation<'_> {
    authenticated(op)
        .summary("One run from the history, with its attempts")
        .response_with::<200, Json<RunDetail>, _>(|r| r.description("The run"))
        .response_with::<400, ApiError, _>(|r| r.description("The instance is not a name"))
        .response_with::<404, ApiError, _>(|r| r.description("No such run in the history"))
        .response_with::<503, ApiError, _>(|r| r.description("The database cannot be read now"))
}

/// The samples over a span, as read from the database.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Samples {
    /// The span's start.
    pub from: DateTime<Utc>,
    /// Its end.
    pub to: DateTime<Utc>,
    /// How long each sample covers, in milliseconds.
    pub bucket_ms: i64,
    /// Oldest first; spans without samples are left out.
    pub samples: Vec<StoredSample>,
}

/// Pool and server samples over a span, from the database, bucketed to at most 720 points.
pub async fn samples(
    State(engine): State<Arc<Engine>>,
    query: Result<Query<SamplesQuery>, QueryRejection>,
) -> Result<Json<Samples>, ApiError> {
    let Query(query) = query.map_err(|rejection| {
        invalid_query(
            &rejection,
            "range (15m, 1h, 24h, 7d), or from and to (RFC 3339)",
        )
    })?;
    let SampleSpan { from, to, .. } = SampleSpan::parse(&query, Utc::now())?;
    let samples = engine
        .history()
        .samples(engine.database(), from, to)
        .await
        .map_err(unavailable)?;
    Ok(Json(Samples {
        from,
        to,
        bucket_ms: leasewatch_engine::history::bucket_ms((to - from).num_milliseconds()),
        samples,
    }))
}

pub fn samples_docs(op: TransformOperation<'_>) -> TransformOperation<'_> {
    authenticated(op)
        .summary("Pool and server samples over a span, from the history")
        .description(
            "Each instance's busiest sample per bucket, added up over the instances writing to \
             this database (the server's own figures taken once). Raw samples are 5 s apart; \
             those older than a day are kept one per minute.",
        )
        .response_with::<200, Json<Samples>, _>(|r| r.description("The samples, oldest first"))
        .response_with::<400, ApiError, _>(|r| r.description("A span that is not allowed"))
        .response_with::<503, ApiError, _>(|r| r.description("The database cannot be read now"))
}
