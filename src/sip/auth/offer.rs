//! Which Digest algorithms a `401` offers to whom.
//!
//! RFC 8760 §2.4 lets a server send one challenge per algorithm, preferred first, and a
//! client pick the first it supports. Phones of the baresip 1.0 generation do not: any
//! challenge with an algorithm they do not know (SHA-256) makes them give up the whole
//! registration and retry from scratch about half a minute later. So:
//!
//! - a user that authenticated before is offered the algorithm it used then, alone (which
//!   also keeps a SHA-256 phone from being talked down to MD5);
//! - a (source address, user) that was offered several algorithms and came back without
//!   answering any of them is offered the most widely supported one alone (MD5 when it is
//!   configured, else the last);
//! - anyone else gets every configured algorithm, preferred first.
//!
//! State is bounded: the "offered several" memory forgets entries after [`RETRY_WINDOW`]
//! and holds at most [`MAX_PENDING`]; the per-user memory has one entry per configured
//! agent at most (the caller only records users that authenticated).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::Algorithm;

/// How long an unanswered multi-algorithm challenge is remembered.
pub const RETRY_WINDOW: Duration = Duration::from_secs(300);

/// Most unanswered challenges remembered at once (older ones are forgotten first).
pub const MAX_PENDING: usize = 4096;

/// The memory behind the choice of algorithms to offer.
#[derive(Debug, Default)]
pub struct AlgorithmOffer {
    /// Multi-algorithm challenges not yet answered, by (source, user).
    pending: HashMap<(IpAddr, String), Instant>,
    /// The algorithm each user last authenticated with.
    known: HashMap<String, Algorithm>,
}

impl AlgorithmOffer {
    /// The algorithms to challenge `user` at `source` with, out of `configured` (preferred
    /// first, not empty), remembering a multi-algorithm offer.
    pub fn choose(
        &mut self,
        now: Instant,
        source: IpAddr,
        user: &str,
        configured: &[Algorithm],
    ) -> Vec<Algorithm> {
        if let Some(&algorithm) = self.known.get(user)
            && configured.contains(&algorithm)
        {
            return vec![algorithm];
        }
        let [.., last] = configured else {
            return Vec::new();
        };
        let most_compatible = configured
            .iter()
            .find(|a| **a == Algorithm::Md5)
            .unwrap_or(last);
        if configured.len() == 1 {
            return configured.to_vec();
        }
        let key = (source, user.to_owned());
        if let Some(&at) = self.pending.get(&key)
            && now.saturating_duration_since(at) < RETRY_WINDOW
        {
            return vec![*most_compatible];
        }
        if self.pending.len() >= MAX_PENDING {
            self.pending
                .retain(|_, at| now.saturating_duration_since(*at) < RETRY_WINDOW);
            if self.pending.len() >= MAX_PENDING
                && let Some(oldest) = self
                    .pending
                    .iter()
                    .min_by_key(|(_, at)| **at)
                    .map(|(k, _)| k.clone())
            {
                self.pending.remove(&oldest);
            }
        }
        self.pending.insert(key, now);
        configured.to_vec()
    }

    /// `user` at `source` authenticated with `algorithm`.
    pub fn succeeded(&mut self, source: IpAddr, user: &str, algorithm: Algorithm) {
        self.pending.remove(&(source, user.to_owned()));
        self.known.insert(user.to_owned(), algorithm);
    }

    /// Unanswered challenges remembered (for tests and metrics).
    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOTH: &[Algorithm] = &[Algorithm::Sha256, Algorithm::Md5];

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn a_phone_that_gives_up_on_several_is_offered_the_compatible_one_next() {
        let mut offer = AlgorithmOffer::default();
        let t0 = Instant::now();
        assert_eq!(offer.choose(t0, ip(1), "bob", BOTH), BOTH);
        let retry = t0 + Duration::from_secs(30);
        assert_eq!(offer.choose(retry, ip(1), "bob", BOTH), [Algorithm::Md5]);
        // Another address, or the same one much later, starts over.
        assert_eq!(offer.choose(retry, ip(2), "bob", BOTH), BOTH);
        let later = t0 + RETRY_WINDOW + Duration::from_secs(1);
        assert_eq!(offer.choose(later, ip(3), "bob", BOTH), BOTH);
    }

    #[test]
    fn a_user_keeps_the_algorithm_it_used() {
        let mut offer = AlgorithmOffer::default();
        let t0 = Instant::now();
        offer.choose(t0, ip(1), "alice", BOTH);
        offer.succeeded(ip(1), "alice", Algorithm::Sha256);
        assert_eq!(offer.pending(), 0);
        assert_eq!(offer.choose(t0, ip(9), "alice", BOTH), [Algorithm::Sha256]);
        offer.succeeded(ip(1), "old", Algorithm::Md5);
        assert_eq!(offer.choose(t0, ip(1), "old", BOTH), [Algorithm::Md5]);
        // One configured algorithm: that one, nothing remembered.
        assert_eq!(
            offer.choose(t0, ip(1), "carol", &[Algorithm::Md5]),
            [Algorithm::Md5]
        );
        assert_eq!(offer.pending(), 0);
    }

    #[test]
    fn memory_is_bounded() {
        let mut offer = AlgorithmOffer::default();
        let t0 = Instant::now();
        for i in 0..(MAX_PENDING + 100) {
            offer.choose(t0, ip(1), &format!("guess{i}"), BOTH);
        }
        assert!(offer.pending() <= MAX_PENDING);
    }
}
