//! Transaction keys and the few header accessors the matching rules need (RFC 3261 §17.1.3,
//! §17.2.3, and §9.2 for CANCEL).

use std::hash::{Hash, Hasher};

use rsip::Method;
use rsip::message::HasHeaders;

use super::MessageError;
use crate::sip::{fields, uri};

/// The RFC 3261 magic cookie that marks a globally unique branch (§8.1.1.7).
const MAGIC_COOKIE: &str = "z9hG4bK";

/// A method as a hash-map key; `rsip::Method` is `Eq` but not `Hash`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct MethodKey(Method);

impl Hash for MethodKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        std::mem::discriminant(&self.0).hash(state);
    }
}

/// Identifies a server transaction (RFC 3261 §17.2.3).
///
/// For requests whose top Via branch carries the magic cookie this is (branch, sent-by, method),
/// with ACK mapped to INVITE. For RFC 2543 peers it falls back to the request's Call-ID, CSeq
/// number, From tag, Request-URI and top Via.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServerKey(ServerKeyInner);

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum ServerKeyInner {
    Rfc3261 {
        branch: String,
        sent_by: String,
        method: MethodKey,
    },
    Rfc2543 {
        call_id: String,
        cseq: u32,
        from_tag: String,
        request_uri: String,
        via: String,
        method: MethodKey,
    },
}

impl ServerKey {
    /// The key a call restored after a restart files its INVITE under: no request from the
    /// network has an empty sent-by, so it matches nothing but itself.
    pub fn restored(call_id: &str) -> Self {
        Self(ServerKeyInner::Rfc3261 {
            branch: format!("restored:{call_id}"),
            sent_by: String::new(),
            method: MethodKey(Method::Invite),
        })
    }

    /// The key of the server transaction `request` belongs to (ACK maps to its INVITE).
    pub fn of(request: &rsip::Request) -> Result<Self, MessageError> {
        let method = MethodKey(match request.method {
            Method::Ack => Method::Invite,
            other => other,
        });
        let via = top_via(request)?;
        match fields::top_via_branch(request) {
            Some(branch) if branch.starts_with(MAGIC_COOKIE) => Ok(Self(ServerKeyInner::Rfc3261 {
                branch: branch.to_owned(),
                sent_by: sent_by(via)?,
                method,
            })),
            _ => Ok(Self(ServerKeyInner::Rfc2543 {
                call_id: call_id(request)?,
                cseq: cseq(request)?.0,
                from_tag: from_tag(request).unwrap_or_default(),
                request_uri: request.uri.to_string(),
                via: via.to_owned(),
                method,
            })),
        }
    }

    /// The same transaction identity with another method: a CANCEL's key turned into the key of
    /// the INVITE it cancels (§9.2).
    pub(super) fn with_method(&self, new: Method) -> Self {
        let mut key = self.clone();
        match &mut key.0 {
            ServerKeyInner::Rfc3261 { method, .. } | ServerKeyInner::Rfc2543 { method, .. } => {
                *method = MethodKey(new)
            }
        }
        key
    }

    /// The method of the request that created the transaction.
    pub fn method(&self) -> Method {
        match &self.0 {
            ServerKeyInner::Rfc3261 { method, .. } | ServerKeyInner::Rfc2543 { method, .. } => {
                method.0
            }
        }
    }
}

/// Identifies a client transaction: top Via branch plus CSeq method (RFC 3261 §17.1.3).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientKey {
    branch: String,
    method: MethodKey,
}

impl ClientKey {
    /// The key a leg restored after a restart files its INVITE under: no branch we send
    /// looks like it, so it matches no response.
    pub fn restored(call_id: &str) -> Self {
        Self {
            branch: format!("restored:{call_id}"),
            method: MethodKey(Method::Invite),
        }
    }

    /// The key of the client transaction that sent `request`; the top Via needs a branch.
    pub fn of_request(request: &rsip::Request) -> Result<Self, MessageError> {
        top_via(request)?;
        let branch = branch_of(request).ok_or(MessageError::NoBranch)?;
        Ok(Self {
            branch,
            method: MethodKey(request.method),
        })
    }

    /// The key of the client transaction a response belongs to.
    pub(super) fn of_response(response: &rsip::Response) -> Result<Self, MessageError> {
        top_via(response)?;
        let branch = fields::top_via_branch(response)
            .map(str::to_owned)
            .ok_or(MessageError::NoBranch)?;
        Ok(Self {
            branch,
            method: MethodKey(cseq(response)?.1),
        })
    }

    /// The same branch with another method: the CANCEL's key for an INVITE (§9.1).
    pub(super) fn with_method(&self, method: Method) -> Self {
        Self {
            branch: self.branch.clone(),
            method: MethodKey(method),
        }
    }

    /// The top Via branch of the transaction's request.
    pub fn branch(&self) -> &str {
        &self.branch
    }

    /// The method of the transaction's request.
    pub fn method(&self) -> Method {
        self.method.0
    }
}

/// Matches the ACK for a 2xx to the INVITE server transaction that sent the 2xx: the ACK has a
/// new branch (§17.1.1.3) but the INVITE's Call-ID, From tag and CSeq number (§13.2.2.4).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct DialogAckKey {
    call_id: String,
    cseq: u32,
    from_tag: String,
}

impl DialogAckKey {
    pub(super) fn of(request: &rsip::Request) -> Result<Self, MessageError> {
        Ok(Self {
            call_id: call_id(request)?,
            cseq: cseq(request)?.0,
            from_tag: from_tag(request).unwrap_or_default(),
        })
    }
}

/// A fresh RFC 3261 branch: the magic cookie plus 64 random bits.
pub fn new_branch() -> String {
    format!("{MAGIC_COOKIE}{:016x}", rand::random::<u64>())
}

/// The branch parameter of the request's top Via, if there is one.
pub fn branch_of(request: &rsip::Request) -> Option<String> {
    fields::top_via_branch(request).map(str::to_owned)
}

/// The topmost Via value as received (the framing layer splits comma-separated lists, so
/// the first Via header is the top value). Read as text rather than through rsip's typed
/// Via, which refuses legal but unusual forms (RFC 4475 §3.1.1.1).
pub(super) fn top_via(message: &impl HasHeaders) -> Result<&str, MessageError> {
    fields::top_via(message).ok_or(MessageError::Via)
}

/// The top Via's sent-by, lower-cased for comparison (§17.2.3).
fn sent_by(via: &str) -> Result<String, MessageError> {
    let head = via.split(';').next().unwrap_or_default();
    uri::via_sent_by(head)
        .map(str::to_ascii_lowercase)
        .ok_or(MessageError::Via)
}

fn call_id(message: &impl HasHeaders) -> Result<String, MessageError> {
    fields::call_id(message)
        .map(str::to_owned)
        .ok_or(MessageError::CallId)
}

/// CSeq number and method.
pub(super) fn cseq(message: &impl HasHeaders) -> Result<(u32, Method), MessageError> {
    fields::cseq(message).ok_or(MessageError::CSeq)
}

fn from_tag(message: &impl HasHeaders) -> Option<String> {
    fields::from_tag(message).map(str::to_owned)
}
