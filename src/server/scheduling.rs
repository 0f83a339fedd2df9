//! The admin API's scheduled callbacks in the driver (docs/behaviour.md §6): the controller
//! checks a request, the store commits it (off the controller's thread), and only then is
//! the HTTP request answered and the callback handed to the controller. A cancellation is
//! answered once its `failed` state is durable.

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use tokio::sync::oneshot;

use super::WallClock;
use crate::admin::{CallbackScheduled, ScheduleAsk};
use crate::b2bua::B2bua;
use crate::b2bua::scheduled::ScheduleError;
use crate::queue::{Level, QueueId};
use crate::store::{CallbackId, CallbackState, ScheduledRequest, StoreError, StoreHandle};

/// What a cancelled callback's `last_error` says.
const CANCELLED: &str = "cancelled through the admin API";

/// A store write for the admin API, finished.
pub(super) enum Done {
    /// A scheduled callback committed (or refused).
    Scheduled {
        queue: QueueId,
        level: Level,
        ask: ScheduleAsk,
        not_before_ms: i64,
        result: Result<CallbackId, StoreError>,
    },
    /// A cancellation's `failed` state written (or not).
    Cancelled {
        reply: oneshot::Sender<Result<(), ScheduleError>>,
        result: Result<(), StoreError>,
    },
}

pub(super) type Pending = Pin<Box<dyn Future<Output = Done> + Send>>;

/// `POST /api/callbacks`: checked by the controller, then committed by the store.
pub(super) fn schedule(
    b2bua: &B2bua,
    store: &StoreHandle,
    clock: &WallClock,
    ask: ScheduleAsk,
) -> Option<Pending> {
    let (queue, level) = match b2bua.check_scheduled(&ask.queue, &ask.number) {
        Ok(checked) => checked,
        Err(error) => {
            let _ = ask.reply.send(Err(error));
            return None;
        }
    };
    let now_ms = clock.unix_ms(Instant::now());
    let not_before_ms = ask.not_before_ms.unwrap_or(now_ms).max(now_ms);
    let reply = store.schedule_callback(ScheduledRequest {
        queue: ask.queue.clone(),
        level,
        number: ask.number.clone(),
        requested_at_ms: now_ms,
        not_before_ms,
    });
    Some(Box::pin(async move {
        Done::Scheduled {
            queue,
            level,
            ask,
            not_before_ms,
            result: reply.wait().await,
        }
    }))
}

/// `DELETE /api/callbacks/{id}`: out of the controller at once, `failed` in the store.
pub(super) fn cancel(
    b2bua: &mut B2bua,
    store: &StoreHandle,
    id: CallbackId,
    reply: oneshot::Sender<Result<(), ScheduleError>>,
) -> Option<Pending> {
    match b2bua.cancel_callback(Instant::now(), id) {
        Ok(attempts) => {
            let write = store.set_callback_state(
                id,
                CallbackState::Failed,
                attempts,
                None,
                Some(CANCELLED.to_owned()),
            );
            Some(Box::pin(async move {
                Done::Cancelled {
                    reply,
                    result: write.wait().await,
                }
            }))
        }
        Err(error) => {
            let _ = reply.send(Err(error));
            None
        }
    }
}

/// A store write finished: the controller learns of a committed callback, the HTTP request
/// gets its answer.
pub(super) fn finish(b2bua: &mut B2bua, clock: &WallClock, done: Done) {
    match done {
        Done::Scheduled {
            queue,
            level,
            ask,
            not_before_ms,
            result,
        } => match result {
            Ok(id) => {
                let now = Instant::now();
                let at = clock.instant_at(not_before_ms);
                b2bua.callback_scheduled(now, id, queue, level, ask.number.clone(), at);
                let _ = ask.reply.send(Ok(CallbackScheduled {
                    id: id.0,
                    not_before_ms,
                }));
            }
            Err(error) => {
                tracing::warn!(%error, queue = %ask.queue, "scheduled callback not committed");
                let _ = ask.reply.send(Err(error.into()));
            }
        },
        Done::Cancelled { reply, result } => {
            let _ = reply.send(result.map_err(ScheduleError::from));
        }
    }
}
