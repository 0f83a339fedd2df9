//! The admin HTTP interface (docs/behaviour.md §8, §12 "Admin HTTP API"): JSON API, Prometheus
//! `/metrics`, `/healthz`, and the live wallboard (`GET /`, fed by the server-sent-events
//! stream `GET /api/events`).
//!
//! This task owns no call state. Every request that needs some asks the SIP task for it over
//! an mpsc channel with a oneshot reply ([`AdminRequest`]); the SIP task answers between two
//! datagrams from the controller's own structures ([`Snapshot`]), and pause/unpause is a
//! command applied to the dispatcher itself. So what the API shows is what dispatch uses.
//!
//! The listener binds loopback by default. When `[admin] token` is set, every route but
//! `/healthz` wants `Authorization: Bearer <token>` (or `?access_token=<token>`, RFC 6750
//! §2.3, which is how the wallboard's `EventSource` can carry it) and answers `401` otherwise.

pub mod metrics;
mod recordings;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::{delete, get, post};
use serde::Serialize;
use subtle::ConstantTimeEq;
use tokio::sync::{mpsc, oneshot};

use crate::b2bua::scheduled::ScheduleError;
use crate::b2bua::snapshot::{PauseError, Snapshot};
use crate::media::stats::EngineStats;
use crate::store::{CallbackRecord, NodeRecord, Reply, StoreError};

/// The wallboard page: static HTML, CSS and JS, no build step, no CDN.
const WALLBOARD: &str = include_str!("wallboard.html");

/// Waiting callers listed per queue on the wallboard (the summaries count them all).
pub const BOARD_CALLERS: usize = 25;

/// How often the wallboard stream sends a fresh snapshot.
const EVENTS_EVERY: Duration = Duration::from_secs(1);

/// A question or command for the SIP task.
#[derive(Debug)]
pub enum AdminRequest {
    /// The controller's snapshot plus the media engine's counters.
    Status(oneshot::Sender<Status>),
    /// The wallboard's snapshot: every queue's summary and its first [`BOARD_CALLERS`]
    /// waiting entries.
    Board(oneshot::Sender<Snapshot>),
    /// Pause (`paused = true`) or unpause an agent, then dispatch.
    SetPaused {
        /// The agent's SIP user.
        user: String,
        /// Pause or unpause.
        paused: bool,
        /// Whether the agent exists.
        reply: oneshot::Sender<Result<(), PauseError>>,
    },
    /// Recent callbacks from the store: the SIP task owns the store handle and passes back
    /// the store's reply, so no store handle outlives shutdown in a stray HTTP connection.
    Callbacks(oneshot::Sender<Reply<Vec<CallbackRecord>>>),
    /// The cluster's nodes from a shared store (none with SQLite).
    Cluster(oneshot::Sender<Reply<Vec<NodeRecord>>>),
    /// `GET /api/report`: the call events of `[from_ms, to_ms)` from the store, and each
    /// queue's service-level target.
    Report {
        /// Start, Unix ms.
        from_ms: i64,
        /// End, Unix ms (excluded).
        to_ms: i64,
        /// The events (once the store answers) and the targets.
        reply: oneshot::Sender<ReportInput>,
    },
    /// `POST /api/callbacks`: check, commit durably, then schedule.
    ScheduleCallback(ScheduleAsk),
    /// `DELETE /api/callbacks/{id}`: take an open callback out; answered once durable.
    CancelCallback {
        /// The callback's id.
        id: i64,
        /// Done, or why not.
        reply: oneshot::Sender<Result<(), ScheduleError>>,
    },
}

/// What a report is computed from: the store's events (once it answers) and each queue's
/// service-level target, seconds.
pub type ReportInput = (Reply<Vec<crate::store::CallEvent>>, BTreeMap<String, u64>);

/// A callback asked for through the admin API.
#[derive(Debug)]
pub struct ScheduleAsk {
    /// The queue it joins.
    pub queue: String,
    /// The number to call.
    pub number: String,
    /// When it joins its queue, Unix ms (`None`: at once).
    pub not_before_ms: Option<i64>,
    /// Its id once durable, or why not.
    pub reply: oneshot::Sender<Result<CallbackScheduled, ScheduleError>>,
}

/// A scheduled callback, committed.
#[derive(Debug, Clone, Copy)]
pub struct CallbackScheduled {
    /// Its id (for `DELETE /api/callbacks/{id}`).
    pub id: i64,
    /// When it joins its queue, Unix ms.
    pub not_before_ms: i64,
}

/// What the SIP task reports for `/metrics`, the API and the wallboard.
#[derive(Debug, Clone, Default)]
pub struct Status {
    /// Queues, agents and controller counters.
    pub snapshot: Snapshot,
    /// RTP counters and send lateness.
    pub media: EngineStats,
    /// Call-event and handle-time records the store had to drop.
    pub store_dropped: u64,
}

/// Why the admin listener could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot bind admin listener {addr}: {source}")]
pub struct BindError {
    /// `[admin] listen`.
    pub addr: SocketAddr,
    /// The OS error.
    pub source: std::io::Error,
}

#[derive(Clone)]
struct AppState {
    requests: mpsc::Sender<AdminRequest>,
    token: Arc<str>,
    /// `[priorities]`: name → level, for labels.
    priorities: Arc<BTreeMap<String, u32>>,
    /// `[media] recordings`.
    recordings: Arc<std::path::Path>,
}

/// Binds `addr` and serves the admin interface until `shutdown` resolves (then open
/// connections are let finish: event streams end once the controller stops answering).
/// Returns the serving task and the bound address (the port may have been 0).
pub async fn spawn(
    addr: SocketAddr,
    token: &str,
    priorities: BTreeMap<String, u32>,
    recordings: std::path::PathBuf,
    requests: mpsc::Sender<AdminRequest>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(tokio::task::JoinHandle<()>, SocketAddr), BindError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| BindError { addr, source })?;
    let bound = listener.local_addr().unwrap_or(addr);
    let app = router(AppState {
        requests,
        token: token.into(),
        priorities: Arc::new(priorities),
        recordings: recordings.into(),
    });
    let handle = tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(%error, "admin listener stopped");
        }
    });
    tracing::info!(listen = %bound, "admin API listening (HTTP)");
    Ok((handle, bound))
}

fn router(state: AppState) -> Router {
    let protected = Router::new()
        .route("/", get(wallboard))
        .route("/api/queues", get(queues))
        .route("/api/agents", get(agents))
        .route("/api/agents/{user}/pause", post(pause))
        .route("/api/agents/{user}/unpause", post(unpause))
        .route("/api/callbacks", get(callbacks).post(schedule_callback))
        .route("/api/callbacks/{id}", delete(cancel_callback))
        .route("/api/report", get(report))
        .route("/api/recordings", get(recordings::list))
        .route("/api/blocks", get(blocks))
        .route("/api/cluster", get(cluster))
        .route("/api/events", get(events))
        .route("/metrics", get(metrics_text))
        .route_layer(middleware::from_fn_with_state(state.clone(), authorize));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .merge(protected)
        .with_state(state)
}

/// `401` unless the configured token is presented (nothing asked when it is empty).
async fn authorize(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if state.token.is_empty()
        || presented_token(request.headers(), request.uri().query())
            .is_some_and(|t| bool::from(t.as_bytes().ct_eq(state.token.as_bytes())))
    {
        return next.run(request).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer realm=\"holdfast\"")],
        "401 Unauthorized: admin token required\n",
    )
        .into_response()
}

/// The bearer token from the `Authorization` header, else the `access_token` query parameter.
fn presented_token<'a>(headers: &'a HeaderMap, query: Option<&'a str>) -> Option<&'a str> {
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    from_header.or_else(|| {
        query?
            .split('&')
            .find_map(|pair| pair.strip_prefix("access_token="))
    })
}

/// The admin task's failures, as HTTP answers.
#[derive(Debug, thiserror::Error)]
enum ApiError {
    /// The SIP task has stopped (shutting down).
    #[error("holdfast is shutting down")]
    Stopping,
    /// No such agent.
    #[error("{0}")]
    Pause(#[from] PauseError),
    /// The store could not answer.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// A scheduled callback or a cancellation refused.
    #[error("{0}")]
    Schedule(#[from] ScheduleError),
    /// A request the API cannot take as written.
    #[error("{0}")]
    BadRequest(String),
    /// Scheduling and cancelling callbacks want `[admin] token` set.
    #[error("set [admin] token to schedule or cancel callbacks through the API")]
    NoToken,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = match &self {
            Self::Stopping | Self::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Pause(_) => StatusCode::NOT_FOUND,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NoToken => StatusCode::FORBIDDEN,
            Self::Schedule(error) => match error {
                ScheduleError::UnknownQueue(_) | ScheduleError::NotFound(_) => {
                    StatusCode::NOT_FOUND
                }
                ScheduleError::NumberRefused { .. } => StatusCode::FORBIDDEN,
                ScheduleError::AlreadyPending(_) | ScheduleError::Dialling(_) => {
                    StatusCode::CONFLICT
                }
                ScheduleError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            },
        };
        (code, Json(serde_json::json!({ "error": self.to_string() }))).into_response()
    }
}

async fn ask<T>(
    state: &AppState,
    make: impl FnOnce(oneshot::Sender<T>) -> AdminRequest,
) -> Result<T, ApiError> {
    let (tx, rx) = oneshot::channel();
    state
        .requests
        .send(make(tx))
        .await
        .map_err(|_| ApiError::Stopping)?;
    rx.await.map_err(|_| ApiError::Stopping)
}

async fn status(state: &AppState) -> Result<Status, ApiError> {
    ask(state, AdminRequest::Status).await
}

async fn wallboard() -> Html<&'static str> {
    Html(WALLBOARD)
}

async fn queues(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(status(&state).await?.snapshot.queues))
}

async fn agents(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(status(&state).await?.snapshot.agents))
}

/// `GET /api/cluster`: every node sharing this node's PostgreSQL store, as each last renewed
/// its lease (docs/cluster.md); an empty list with the embedded SQLite store.
async fn cluster(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let nodes = ask(&state, AdminRequest::Cluster).await?.wait().await?;
    Ok(Json(serde_json::json!({ "nodes": nodes })))
}

async fn blocks(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(status(&state).await?.snapshot.blocks))
}

async fn set_paused(state: &AppState, user: String, paused: bool) -> Result<Response, ApiError> {
    let shown = user.clone();
    ask(state, |reply| AdminRequest::SetPaused {
        user,
        paused,
        reply,
    })
    .await??;
    Ok(Json(serde_json::json!({ "user": shown, "paused": paused })).into_response())
}

async fn pause(
    State(state): State<AppState>,
    Path(user): Path<String>,
) -> Result<Response, ApiError> {
    set_paused(&state, user, true).await
}

async fn unpause(
    State(state): State<AppState>,
    Path(user): Path<String>,
) -> Result<Response, ApiError> {
    set_paused(&state, user, false).await
}

/// One callback as `GET /api/callbacks` shows it.
#[derive(Debug, Serialize)]
struct CallbackView {
    id: i64,
    queue: String,
    number: String,
    priority: String,
    seq: u64,
    /// Scheduled through the API and not in its queue yet (`seq` 0 until it joins at
    /// `next_attempt_at_ms`).
    scheduled: bool,
    state: &'static str,
    attempts: u32,
    requested_at_ms: i64,
    next_attempt_at_ms: Option<i64>,
    last_error: Option<String>,
    updated_at_ms: i64,
}

async fn callback_views(state: &AppState) -> Result<Vec<CallbackView>, ApiError> {
    let records = ask(state, AdminRequest::Callbacks).await?.wait().await?;
    // Level → name; the store keeps levels, the operator reads names.
    let name = |level: u32| {
        state
            .priorities
            .iter()
            .find(|&(_, &l)| l == level)
            .map_or_else(|| level.to_string(), |(n, _)| n.clone())
    };
    Ok(records
        .into_iter()
        .map(|r| CallbackView {
            id: r.id.0,
            priority: name(r.request.level),
            queue: r.request.queue,
            number: r.request.number,
            seq: r.request.seq.0,
            scheduled: r.scheduled,
            state: r.state.as_str(),
            attempts: r.attempts,
            requested_at_ms: r.request.requested_at_ms,
            next_attempt_at_ms: r.next_attempt_at_ms,
            last_error: r.last_error,
            updated_at_ms: r.updated_at_ms,
        })
        .collect())
}

async fn callbacks(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(callback_views(&state).await?))
}

/// Longest stretch `GET /api/report` covers, days.
const REPORT_DAYS_MAX: i64 = 31;

/// `GET /api/report?from=YYYY-MM-DD&to=YYYY-MM-DD` (`to` included, default `from`; `from`
/// default today, UTC): per queue and per agent figures, as `holdfast report` prints them.
async fn report(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    let query = request.uri().query().unwrap_or_default();
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix(&format!("{name}=")))
            .map(str::to_owned)
    };
    let today = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date()
        .to_string();
    let from_day = param("from").unwrap_or(today);
    let to_day = param("to").unwrap_or_else(|| from_day.clone());
    let (from_ms, _) = crate::report::day_bounds(&from_day).map_err(ApiError::BadRequest)?;
    let (_, to_ms) = crate::report::day_bounds(&to_day).map_err(ApiError::BadRequest)?;
    if to_ms <= from_ms || to_ms - from_ms > REPORT_DAYS_MAX * 86_400_000 {
        return Err(ApiError::BadRequest(format!(
            "from {from_day} to {to_day}: from must not be after to, and at most {REPORT_DAYS_MAX} days"
        )));
    }
    let (events, targets) = ask(&state, |reply| AdminRequest::Report {
        from_ms,
        to_ms,
        reply,
    })
    .await?;
    let events = events.wait().await?;
    let report = crate::report::Report::new(from_ms, to_ms, &events, &targets);
    Ok(Json(report).into_response())
}

/// How far ahead a callback may be scheduled.
const SCHEDULE_AHEAD_MAX: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// The body of `POST /api/callbacks`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ScheduleBody {
    number: String,
    queue: String,
    /// RFC 3339; absent or past: at once.
    #[serde(default)]
    not_before: Option<String>,
}

/// `POST /api/callbacks` `{"number", "queue", "not_before"}`: a callback committed durably,
/// joining its queue at `not_before` (RFC 3339) or at once; `201` with its `id`.
async fn schedule_callback(
    State(state): State<AppState>,
    body: String,
) -> Result<Response, ApiError> {
    if state.token.is_empty() {
        return Err(ApiError::NoToken);
    }
    let body: ScheduleBody = serde_json::from_str(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            "body must be JSON {{\"number\", \"queue\", \"not_before\"}}: {e}"
        ))
    })?;
    let not_before_ms = match body.not_before.as_deref() {
        None | Some("") => None,
        Some(text) => {
            let at: jiff::Timestamp = text.parse().map_err(|e| {
                ApiError::BadRequest(format!("not_before {text:?} is not an RFC 3339 time: {e}"))
            })?;
            let ahead = jiff::SignedDuration::try_from(SCHEDULE_AHEAD_MAX).unwrap_or_default();
            if at.duration_since(jiff::Timestamp::now()) > ahead {
                return Err(ApiError::BadRequest(format!(
                    "not_before {text:?} is more than {} days ahead",
                    SCHEDULE_AHEAD_MAX.as_secs() / 86_400
                )));
            }
            Some(at.as_millisecond())
        }
    };
    let (queue, number) = (body.queue.clone(), body.number.clone());
    let scheduled = ask(&state, |reply| {
        AdminRequest::ScheduleCallback(ScheduleAsk {
            queue: body.queue,
            number: body.number,
            not_before_ms,
            reply,
        })
    })
    .await??;
    let not_before = jiff::Timestamp::from_millisecond(scheduled.not_before_ms)
        .map(|t| t.to_string())
        .unwrap_or_default();
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({
            "id": scheduled.id,
            "queue": queue,
            "number": number,
            "not_before": not_before,
        })),
    )
        .into_response())
}

/// `DELETE /api/callbacks/{id}`: an open callback of this node taken out before an agent is
/// rung for it; `200` once its `failed` state ("cancelled") is durable.
async fn cancel_callback(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if state.token.is_empty() {
        return Err(ApiError::NoToken);
    }
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("callback id {id:?} is not a number")))?;
    ask(&state, |reply| AdminRequest::CancelCallback { id, reply }).await??;
    Ok(Json(serde_json::json!({ "id": id, "state": "failed", "cancelled": true })).into_response())
}

async fn metrics_text(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let status = status(&state).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics::render(&status, &state.priorities),
    ))
}

/// The wallboard's view: queues, agents and open callbacks.
#[derive(Debug, Serialize)]
struct BoardView {
    queues: Vec<crate::b2bua::snapshot::QueueView>,
    agents: Vec<crate::b2bua::snapshot::AgentView>,
    callbacks: Vec<CallbackView>,
}

async fn board(state: &AppState) -> Result<BoardView, ApiError> {
    let snapshot = ask(state, AdminRequest::Board).await?;
    // A store hiccup must not blank the wall: show the calls without callbacks.
    let callbacks = callback_views(state)
        .await
        .map(|all| {
            all.into_iter()
                .filter(|c| c.state == "pending" || c.state == "dialling")
                .collect()
        })
        .unwrap_or_default();
    Ok(BoardView {
        queues: snapshot.queues,
        agents: snapshot.agents,
        callbacks,
    })
}

/// `GET /api/events`: a `snapshot` event at once and then every second, until the client
/// goes away or holdfast stops.
async fn events(
    State(state): State<AppState>,
) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    let stream = futures_util::stream::unfold((state, true), |(state, first)| async move {
        if !first {
            tokio::time::sleep(EVENTS_EVERY).await;
        }
        let view = board(&state).await.ok()?;
        let data = serde_json::to_string(&view).unwrap_or_else(|_| "{}".into());
        Some((
            Ok(Event::default().event("snapshot").data(data)),
            (state, false),
        ))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_from_header_or_query() {
        let mut headers = HeaderMap::new();
        assert_eq!(presented_token(&headers, None), None);
        assert_eq!(
            presented_token(&headers, Some("a=1&access_token=s3cret")),
            Some("s3cret")
        );
        headers.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(
            presented_token(&headers, Some("access_token=x")),
            Some("abc")
        );
        headers.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(presented_token(&headers, None), None);
    }
}
