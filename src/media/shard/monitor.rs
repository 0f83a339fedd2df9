//! Supervisor monitoring on a shard (`crate::media::mix`): a supervisor's stream joins a
//! bridged call of the same shard. Its socket is read on readiness, like a relay leg's; on
//! its clock slot it is sent the mix of what each side said; what it says is mixed into the
//! packets relayed to the agent (whisper, barge) and to the caller (barge). The call's two
//! legs only pay for this while they are watched.

use std::collections::HashMap;
use std::time::Instant;

use rand::Rng;

use super::{Shard, StreamMode};
use crate::media::engine::StreamId;
use crate::media::inbound::Inbound;
use crate::media::mix::{Fifo, MonitorMode, mix_into, mix_pair};
use crate::media::player::PACKET_LEN;
use crate::media::poller::Token;
use crate::media::recording::{Law, law_of};
use crate::media::rtp::{RTP_HEADER_LEN, RtpHeader};

/// One supervisor on one call, keyed in the shard by the supervisor stream's table index.
#[derive(Debug)]
pub(super) struct Monitor {
    caller: usize,
    agent: usize,
    mode: MonitorMode,
    /// What each side said, for the supervisor's ear.
    from_caller: Fifo,
    from_agent: Fifo,
    /// What the supervisor said, for each side's.
    to_agent: Fifo,
    to_caller: Fifo,
    /// The supervisor's outbound RTP stream (RFC 3550 §5.1: random start).
    ssrc: u32,
    sequence: u16,
    timestamp: u32,
    first: bool,
}

impl Shard {
    /// Starts `supervisor` monitoring the bridged call of legs `caller` and `agent` (one
    /// supervisor per call: an earlier one on it stops).
    pub(super) fn monitor(
        &mut self,
        supervisor: StreamId,
        caller: StreamId,
        agent: StreamId,
        mode: MonitorMode,
    ) {
        let idx = |id| self.by_id.get(&id).copied();
        let (Some(is), Some(ic), Some(ia)) = (idx(supervisor), idx(caller), idx(agent)) else {
            tracing::warn!(%supervisor, %caller, %agent, "monitoring of an unknown stream");
            return;
        };
        let now = Instant::now();
        for idx in [ic, ia] {
            if let Some(watcher) = self.streams[idx].as_ref().and_then(|s| s.watched) {
                self.end_monitor(watcher);
            }
        }
        self.leave(is, now);
        let Some(Some(stream)) = self.streams.get_mut(is) else {
            return;
        };
        if let Err(error) = self.poller.add(&stream.socket, is as Token) {
            tracing::error!(%supervisor, %error, "cannot watch a supervisor's socket; not monitoring");
            return;
        }
        stream.mode = StreamMode::Monitor;
        stream.read_on_readiness();
        let mut rng = rand::rng();
        self.monitors.insert(
            is,
            Monitor {
                caller: ic,
                agent: ia,
                mode,
                from_caller: Fifo::default(),
                from_agent: Fifo::default(),
                to_agent: Fifo::default(),
                to_caller: Fifo::default(),
                ssrc: rng.random(),
                sequence: rng.random(),
                timestamp: rng.random(),
                first: true,
            },
        );
        for idx in [ic, ia] {
            if let Some(Some(leg)) = self.streams.get_mut(idx) {
                leg.watched = Some(is);
            }
        }
    }

    /// Ends the monitoring by supervisor stream `idx`: its socket leaves the poller and it
    /// goes idle; the call's legs relay untouched again.
    pub(super) fn end_monitor(&mut self, idx: usize) {
        let Some(monitor) = self.monitors.remove(&idx) else {
            return;
        };
        for leg in [monitor.caller, monitor.agent] {
            if let Some(Some(stream)) = self.streams.get_mut(leg)
                && stream.watched == Some(idx)
            {
                stream.watched = None;
            }
        }
        if let Some(Some(stream)) = self.streams.get_mut(idx) {
            if let Err(error) = self.poller.delete(&stream.socket) {
                tracing::warn!(id = %stream.id, %error, "supervisor socket was not watched");
            }
            stream.mode = StreamMode::Idle;
        }
    }

    /// The supervisor stream `idx` is readable: what it says goes to the sides that hear it.
    pub(super) fn monitor_ready(&mut self, idx: usize) {
        let Shard {
            streams,
            recv_buf,
            stats,
            events,
            monitors,
            ..
        } = self;
        let (Some(Some(stream)), Some(monitor)) = (streams.get_mut(idx), monitors.get_mut(&idx))
        else {
            return;
        };
        let mut inbound = Inbound {
            buf: recv_buf,
            stats,
            events,
        };
        if let Ok((len, from)) = stream.socket.recv_from(&mut inbound.buf[..])
            && let Some((header, payload)) = inbound.accept(stream.id, &mut stream.peer, len, from)
            && let Some(law) = law_of(header.payload_type)
        {
            let said = &inbound.buf[payload];
            if monitor.mode.to_agent() {
                monitor.to_agent.push(law, said);
            }
            if monitor.mode.to_caller() {
                monitor.to_caller.push(law, said);
            }
        }
        stream.connect_if_latched();
    }
}

/// A relayed packet on leg `idx`, watched by supervisor stream `watcher`: the supervisor
/// will hear it, and it carries the supervisor's voice when its mode says so.
pub(super) fn tap(
    monitors: &mut HashMap<usize, Monitor>,
    watcher: usize,
    idx: usize,
    law: Law,
    payload: &mut [u8],
) {
    let Some(m) = monitors.get_mut(&watcher) else {
        return;
    };
    let (heard, voice) = if idx == m.caller {
        (
            &mut m.from_caller,
            m.mode.to_agent().then_some(&mut m.to_agent),
        )
    } else {
        (
            &mut m.from_agent,
            m.mode.to_caller().then_some(&mut m.to_caller),
        )
    };
    heard.push(law, payload);
    if let Some(frame) = voice.and_then(Fifo::pop) {
        mix_into(payload, law, frame);
    }
}

/// The supervisor's next packet in `packet` (both sides mixed, one frame of each), for a
/// stream whose far end receives `payload_type`; `None` when it is not a G.711 type.
pub(super) fn next_packet(
    monitor: &mut Monitor,
    payload_type: u8,
    packet: &mut [u8; PACKET_LEN],
) -> Option<()> {
    let law = law_of(payload_type)?;
    let (head, body) = packet.split_at_mut(RTP_HEADER_LEN);
    mix_pair(
        body,
        law,
        monitor.from_caller.pop(),
        monitor.from_agent.pop(),
    );
    let header = RtpHeader::new(
        payload_type,
        monitor.sequence,
        monitor.timestamp,
        monitor.ssrc,
        std::mem::replace(&mut monitor.first, false),
    );
    header.write_fixed(head.try_into().ok()?);
    monitor.sequence = monitor.sequence.wrapping_add(1);
    monitor.timestamp = monitor.timestamp.wrapping_add(body.len() as u32);
    Some(())
}
