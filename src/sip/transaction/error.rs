//! Errors of the transaction layer's operations, one enum per operation.

#[cfg(doc)]
use super::Transactions;

/// Why an incoming message could not be matched to a transaction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// No Via header, or the top Via does not parse.
    #[error("missing or malformed top Via header")]
    Via,
    /// The top Via has no branch parameter where one is required.
    #[error("top Via has no branch parameter")]
    NoBranch,
    /// No CSeq header, or it does not parse.
    #[error("missing or malformed CSeq header")]
    CSeq,
    /// No Call-ID header.
    #[error("missing Call-ID header")]
    CallId,
    /// No From header, or it does not parse.
    #[error("missing or malformed From header")]
    From,
}

/// Why [`Transactions::send_request`] refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The request cannot be keyed (no top Via branch, no CSeq).
    #[error("request cannot start a transaction: {0}")]
    Message(#[from] MessageError),
    /// ACK is never a client transaction; send it with [`Transactions::send_stateless`].
    #[error("ACK is not sent through a transaction")]
    Ack,
    /// A live client transaction already uses this branch and method.
    #[error("a client transaction with this branch and method already exists")]
    DuplicateBranch,
}

/// Why [`Transactions::respond`] refused a response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RespondError {
    /// No live server transaction has this key (it timed out or was never created).
    #[error("no such server transaction")]
    UnknownTransaction,
    /// The transaction already sent its final response.
    #[error("the transaction already sent a final response")]
    AlreadyFinal,
    /// The status code is outside 100–699.
    #[error("status code {0} is not a valid response code")]
    InvalidStatus(u16),
}

/// Why [`Transactions::cancel`] did nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CancelError {
    /// No live client transaction has this key.
    #[error("no such client transaction")]
    UnknownTransaction,
    /// Only INVITE can be cancelled here.
    #[error("only an INVITE client transaction can be cancelled")]
    NotInvite,
    /// The INVITE already received a final response.
    #[error("the INVITE already received a final response")]
    AlreadyFinal,
    /// A CANCEL was already requested for this INVITE.
    #[error("a CANCEL was already requested")]
    AlreadyRequested,
}
