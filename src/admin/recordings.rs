//! `GET /api/recordings?day=YYYY-MM-DD`: the call recordings of one UTC day (today by
//! default), read from `[media] recordings` (docs/behaviour.md §5, "Recording"): a JSON
//! array of `{call_id, path, bytes, seconds}`, by Call-ID.

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Json, Response};

use super::{ApiError, AppState};
use crate::media::recording::files;

pub(super) async fn list(
    State(state): State<AppState>,
    request: Request,
) -> Result<Response, ApiError> {
    let day = request
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .find_map(|pair| pair.strip_prefix("day="))
        .map_or_else(
            || files::day_of(jiff::Timestamp::now().as_millisecond()),
            str::to_owned,
        );
    // A day, not a path: nothing outside the recordings directory is ever listed.
    if day.parse::<jiff::civil::Date>().is_err() || day.len() != 10 {
        return Err(ApiError::BadRequest(format!(
            "day {day:?} is not a date (YYYY-MM-DD)"
        )));
    }
    let dir = state.recordings.clone();
    let listed = tokio::task::spawn_blocking(move || files::list(&dir, &day))
        .await
        .map_err(|_| ApiError::Stopping)?
        .map_err(|error| ApiError::BadRequest(format!("cannot read the recordings: {error}")))?;
    Ok(Json(listed).into_response())
}
