//! The driver's media side: the controller's media commands carried out on the engine, and
//! what the engine has to tell the controller back.

use std::time::Instant;

use super::Reserve;
use crate::b2bua::{B2bua, MediaCommand};
use crate::media::engine::{MediaEngine, MediaEvent};

/// Carries out every media command the controller has queued.
pub(super) fn flush_media(engine: &MediaEngine, reserve: &mut Reserve, b2bua: &mut B2bua) {
    while let Some(command) = b2bua.poll_media() {
        if let Some(event) = carry_out(engine, reserve, command) {
            b2bua.handle_media_event(Instant::now(), event);
        }
    }
}

/// Carries out one of the controller's media commands on the engine; what it has to tell
/// the controller back (a port reserved or busy, a stream that could not be opened) is the
/// returned event.
fn carry_out(
    engine: &MediaEngine,
    reserve: &mut Reserve,
    command: MediaCommand,
) -> Option<MediaEvent> {
    let refused = |what: &str, error: crate::media::engine::MediaError| {
        tracing::error!(%error, "media engine refused to {what}");
    };
    match command {
        MediaCommand::Reserve { port } => {
            // A socket handed over by the process before is bound already.
            let bound = match reserve.contains_key(&port) {
                true => Ok(()),
                false => engine.bind_port(port).map(|socket| {
                    reserve.insert(port, socket);
                }),
            };
            let bound = match bound {
                Ok(()) => true,
                Err(error) => {
                    tracing::debug!(%error, port, "RTP port busy: skipped for now");
                    false
                }
            };
            return Some(MediaEvent::Reserved { port, bound });
        }
        MediaCommand::Open { id, port, resume } => {
            let socket = match reserve.remove(&port) {
                Some(socket) => Ok(socket),
                None => engine.bind_port(port),
            };
            let opened = socket.and_then(|socket| match resume {
                true => engine.reopen(id, socket).map(|continued| {
                    if !continued {
                        tracing::info!(port, "no RTP stream to continue on this port: a new one");
                    }
                }),
                false => {
                    // A socket handed over by the process before may hold datagrams of a
                    // call it did not keep: a new stream must not latch to them.
                    // (An error, such as an ICMP report, is not the end of the queue; the
                    // receive buffer holds far fewer datagrams than the bound.)
                    let mut junk = [0u8; 64];
                    for _ in 0..4096 {
                        match socket.recv_from(&mut junk) {
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                            _ => {}
                        }
                    }
                    engine.open_with(id, socket)
                }
            });
            if let Err(error) = opened {
                tracing::error!(%error, port, "RTP stream could not be opened");
                return Some(MediaEvent::OpenFailed { id });
            }
        }
        MediaCommand::Play {
            id,
            remote,
            pt,
            music,
        } => {
            if let Err(error) = engine.play(id, remote, pt, music) {
                refused("play", error);
            }
        }
        MediaCommand::Connect { id, remote, pt } => {
            if let Err(error) = engine.connect(id, remote, pt) {
                refused("connect a leg", error);
            }
        }
        MediaCommand::Secure { id, receive, send } => {
            if let Err(error) = engine.secure(id, receive, send) {
                refused("key SRTP", error);
            }
        }
        MediaCommand::Bridge { a, b } => {
            if let Err(error) = engine.bridge(a, b) {
                refused("bridge", error);
            }
        }
        MediaCommand::Monitor {
            supervisor,
            caller,
            agent,
            mode,
        } => {
            if let Err(error) = engine.monitor(supervisor, caller, agent, mode) {
                refused("monitor", error);
            }
        }
        MediaCommand::Record {
            caller,
            agent,
            path,
        } => {
            if let Err(error) = engine.record(caller, agent, path) {
                refused("record", error);
            }
        }
        MediaCommand::Prompt {
            id,
            frames,
            at_once,
        } => {
            let result = if at_once {
                engine.prompt_now(id, frames)
            } else {
                engine.prompt(id, frames)
            };
            if let Err(error) = result {
                refused("play a prompt", error);
            }
        }
        MediaCommand::TelephoneEvent { id, pt } => engine.set_telephone_event(id, pt),
        MediaCommand::Stop { id } => engine.stop(id),
        MediaCommand::Close { id } => engine.close(id),
    }
    None
}
