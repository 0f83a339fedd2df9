//! The controller's durable writes on the store thread, and the replies `run` waits for.

use std::future::Future;
use std::pin::Pin;

use super::Server;
use crate::b2bua::{AttemptToken, CallKey, StoreRequest};
use crate::store::{CallbackId, CallbackState, StoreError};

/// A store reply the controller is waiting for.
pub(super) enum StoreReply {
    /// A callback commit: back to the controller, which confirms only a durable `Ok`.
    Committed(CallKey, Result<CallbackId, StoreError>),
    /// A callback state change: a failure is logged (recovery reloads the last state that
    /// did commit).
    Persisted(CallbackId, CallbackState, Result<(), StoreError>),
    /// A dial-back attempt recorded: back to the controller, which sends the INVITE only
    /// after a durable `Ok`.
    AttemptRecorded(AttemptToken, Result<(), StoreError>),
    /// A dial-back's `completed`: back to the controller, which ACKs and bridges then.
    Completed(AttemptToken, Result<(), StoreError>),
    /// The lease renewed, with the callbacks taken over from dead nodes.
    Lease(Result<Vec<crate::store::CallbackRecord>, StoreError>),
    /// A claim on an agent (docs/cluster.md): back to the controller, which rings the agent
    /// only after it was won.
    Claim(crate::server::cluster::ClaimReply),
    /// A scheduled callback's place persisted (a failure is logged: a restart then puts it
    /// at the back of its queue again).
    SeqSet(CallbackId, Result<(), StoreError>),
    /// The admin API's callback commit or cancellation.
    Admin(crate::server::scheduling::Done),
}

pub(super) type PendingReply = Pin<Box<dyn Future<Output = StoreReply> + Send>>;

impl Server {
    /// Runs one of the controller's durable writes on the store thread; its reply joins
    /// the set `run` waits on.
    pub(super) fn store_request(&self, request: StoreRequest) -> PendingReply {
        match request {
            StoreRequest::Commit {
                token,
                at,
                mut request,
            } => {
                request.requested_at_ms = self.clock.unix_ms(at);
                let reply = self.store.commit_callback(request);
                Box::pin(async move { StoreReply::Committed(token, reply.wait().await) })
            }
            StoreRequest::Joined { id, seq } => {
                let reply = self.store.set_callback_seq(id, seq);
                Box::pin(async move { StoreReply::SeqSet(id, reply.wait().await) })
            }
            StoreRequest::SetState {
                id,
                state,
                attempts,
                next_attempt_at,
                error,
            } => {
                let next = next_attempt_at.map(|at| self.clock.unix_ms(at));
                let reply = self
                    .store
                    .set_callback_state(id, state, attempts, next, error);
                Box::pin(async move { StoreReply::Persisted(id, state, reply.wait().await) })
            }
            StoreRequest::BeginAttempt {
                token,
                id,
                attempts,
                invite,
            } => {
                let reply = self.store.begin_attempt(id, attempts, invite);
                Box::pin(async move { StoreReply::AttemptRecorded(token, reply.wait().await) })
            }
            StoreRequest::Complete {
                token,
                id,
                attempts,
            } => {
                let reply = self.store.set_callback_state(
                    id,
                    CallbackState::Completed,
                    attempts,
                    None,
                    None,
                );
                Box::pin(async move { StoreReply::Completed(token, reply.wait().await) })
            }
        }
    }
}
