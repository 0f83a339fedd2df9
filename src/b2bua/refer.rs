//! Bridge mode `refer` (docs/behaviour.md §5, RFC 3515, RFC 3420 sipfrag): instead of calling the agent
//! and relaying media, holdfast asks the trunk to transfer the caller to the agent's
//! registered contact with REFER on the caller's dialog, follows the transfer's progress in
//! the NOTIFYs, and leaves the call once the transfer succeeds.
//!
//! ```text
//!  REFER ──202──▶ NOTIFY sipfrag 1xx … ──▶ NOTIFY sipfrag 2xx: BYE the caller, agent busy
//!    │                                  └──▶ NOTIFY sipfrag ≥300: no-answer mark, caller waits
//!    └── REFER refused (4xx–6xx, timeout): the trunk cannot transfer → relay instead
//! ```
//! Once the trunk has transferred the call, holdfast no longer sees it end: the agent is
//! counted busy for the queue's mean handle time plus wrap-up, and no handle time is recorded.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rsip::Header;
use rsip::prelude::*;

use super::{B2bua, CallKey, CallState, DispatchError};
use crate::queue::LeaveReason;
use crate::queue::dispatch::{AgentId, AgentState, Assignment};
use crate::sip::message;
use crate::sip::transaction::{ClientKey, ServerKey};

/// A transfer in progress for one caller.
#[derive(Debug, Clone)]
pub struct Transfer {
    /// The agent the caller is being transferred to.
    pub agent: AgentId,
    /// The queue the caller waits in.
    pub queue: crate::queue::QueueId,
    /// The REFER's client transaction.
    pub client: ClientKey,
}

impl B2bua {
    /// Whether this assignment should use REFER: the queue says so, the caller is answered
    /// (REFER needs a confirmed dialog) and its trunk has not refused REFER before.
    pub(super) fn wants_refer(&self, assignment: &Assignment) -> bool {
        let call = self.calls.get(&CallKey(assignment.entry.0));
        self.config.queues[assignment.queue.0].bridge == crate::config::BridgeMode::Refer
            && call.is_some_and(|c| c.state == CallState::Confirmed && !c.refer_refused)
    }

    /// Send the REFER that transfers the caller at `assignment.entry` to the agent.
    pub(super) fn start_transfer(
        &mut self,
        now: Instant,
        assignment: Assignment,
    ) -> Result<(), DispatchError> {
        let agent = self.agents.get(assignment.agent);
        if agent.map(|a| a.state()) != Some(AgentState::Available) {
            return Err(DispatchError::NotAvailable);
        }
        let user = agent.map(|a| a.user().to_string()).unwrap_or_default();
        let contact = self
            .agent_binding(&user)
            .map(|b| b.contact.clone())
            .ok_or(DispatchError::NotRegistered)?;
        let call_key = CallKey(assignment.entry.0);
        let sent_by = self.sip.sent_by.clone();
        let call = self
            .calls
            .get_mut(&call_key)
            .ok_or(DispatchError::CallerGone)?;
        let mut refer = call
            .dialog
            .request(rsip::Method::Refer, &sent_by, &self.sip.ids.branch());
        refer
            .headers
            .push(Header::Other("Refer-To".into(), format!("<{contact}>")));
        let ours = message::contact(&sent_by);
        refer
            .headers
            .push(Header::Other("Referred-By".into(), ours.clone()));
        refer
            .headers
            .push(Header::Contact(rsip::headers::Contact::new(ours)));
        let destination: SocketAddr = call.signalling;
        let client = self
            .sip
            .transactions
            .send_request(now, destination, refer)
            .map_err(|error| DispatchError::NotSent {
                method: "REFER",
                reason: error.to_string(),
            })?;
        // Checked above: the agent is available.
        let _ = self.agents.ringing(now, assignment.agent, assignment.entry);
        self.offered.insert(assignment.entry);
        self.transfers_by_client.insert(client.clone(), call_key);
        if let Some(call) = self.calls.get_mut(&call_key) {
            call.transfer = Some(Transfer {
                agent: assignment.agent,
                queue: assignment.queue,
                client,
            });
            tracing::info!(
                event = "refer",
                caller = %call.caller,
                agent = %user,
                "transferring caller to agent"
            );
        }
        Ok(())
    }

    /// A final response to our REFER. `true` if the key was a REFER's.
    pub(super) fn on_refer_response(
        &mut self,
        now: Instant,
        client: &ClientKey,
        code: Option<u16>,
    ) -> bool {
        let Some(call_key) = self.transfers_by_client.get(client).copied() else {
            return false;
        };
        match code {
            Some(100..=199) => return true,
            Some(200..=299) => {
                tracing::debug!("REFER accepted; waiting for NOTIFY");
                return true;
            }
            _ => {}
        }
        // Refused or timed out: this trunk cannot transfer. Relay instead, with the same
        // agent if it is still free.
        self.transfers_by_client.remove(client);
        let Some(call) = self.calls.get_mut(&call_key) else {
            return true;
        };
        call.refer_refused = true;
        let Some(transfer) = call.transfer.take() else {
            return true;
        };
        tracing::info!(
            ?code,
            "trunk refused REFER: bridging through the relay instead"
        );
        self.offered.remove(&call_key.entry());
        let _ = self.agents.ring_cancelled(now, transfer.agent);
        self.drain_agent_events();
        true
    }

    /// A NOTIFY in a caller's dialog: the progress of our REFER (RFC 3515 §2.4.4).
    pub(super) fn on_notify(&mut self, now: Instant, key: ServerKey, request: rsip::Request) {
        let Some(call_key) = self.dialog_of(&request) else {
            return self.reply(now, &key, &request, 481);
        };
        self.reply(now, &key, &request, 200);
        let Some(code) = sipfrag_status(&request.body) else {
            return;
        };
        if code < 200 {
            return;
        }
        let Some(transfer) = self
            .calls
            .get_mut(&call_key)
            .and_then(|call| call.transfer.take())
        else {
            return;
        };
        self.transfers_by_client.remove(&transfer.client);
        self.offered.remove(&call_key.entry());
        let queue = self.config.queues[transfer.queue.0].clone();
        if (200..300).contains(&code) {
            // Transferred: the agent talks to the caller outside holdfast now.
            let busy_for =
                self.handle_times[transfer.queue.0].mean() + Duration::from_secs(queue.wrapup);
            let _ = self.agents.answered(now, transfer.agent);
            let _ = self.agents.call_ended(now, transfer.agent, busy_for);
            self.queues.leave(call_key.entry(), LeaveReason::Dispatched);
            self.drain_queue_events(now);
            self.drain_agent_events();
            tracing::info!(
                event = "connect",
                queue = %queue.name,
                mode = "refer",
                "caller transferred to agent"
            );
            if let Some(call) = self.calls.get_mut(&call_key) {
                call.state = CallState::Bridged;
            }
            self.hang_up(now, call_key, LeaveReason::Dispatched);
        } else {
            // The agent did not take it: the caller keeps its place and waits on.
            let max = queue.max_no_answer;
            let backoff = std::time::Duration::from_secs(queue.no_answer_backoff);
            tracing::info!(code, "transfer failed: caller keeps waiting");
            let _ = self
                .agents
                .no_answer_then_rest(now, transfer.agent, max, backoff);
            self.drain_agent_events();
        }
    }
}

/// The status code of a `message/sipfrag` body's status line (RFC 3420), e.g.
/// `SIP/2.0 200 OK`.
fn sipfrag_status(body: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(body).ok()?;
    let line = text.lines().next()?.trim();
    let rest = line.strip_prefix("SIP/2.0 ")?;
    rest.get(..3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::sipfrag_status;

    #[test]
    fn sipfrag_status_lines() {
        assert_eq!(sipfrag_status(b"SIP/2.0 100 Trying\r\n"), Some(100));
        assert_eq!(sipfrag_status(b"SIP/2.0 200 OK"), Some(200));
        assert_eq!(sipfrag_status(b"SIP/2.0 486 Busy Here\r\n"), Some(486));
        assert_eq!(sipfrag_status(b"garbage"), None);
        assert_eq!(sipfrag_status(b""), None);
    }
}
