//! The driver's side of the cluster's log (docs/cluster.md "One queue, every agent"): starts
//! the link, hands what other nodes changed to the controller, and carries the controller's
//! changes and claims to the link.

use tokio::sync::mpsc;

use super::ServeError;
use crate::b2bua::B2bua;
use crate::store::StoreError;
use crate::store::cluster::{Claim, ClusterLink, Feed};

/// Feeds queued for the controller before the reader waits.
const FEED_CAPACITY: usize = 1024;

/// The link and the feed from its reader.
pub(super) struct Link {
    link: ClusterLink,
    feed: mpsc::Receiver<Feed>,
}

/// A claim's reply, for the controller.
pub(super) type ClaimReply = (String, Result<Claim, StoreError>);

/// Connects node `node` to the log at `url` (off the async runtime: the client blocks).
pub(super) fn start(url: &str, node: &str) -> Result<Link, ServeError> {
    let (tx, feed) = mpsc::channel(FEED_CAPACITY);
    let (url_owned, node_owned) = (url.to_owned(), node.to_owned());
    let started = std::thread::spawn(move || ClusterLink::start(&url_owned, &node_owned, tx))
        .join()
        .unwrap_or_else(|_| Err(StoreError::Postgres("connect panicked".into())));
    let link = started.map_err(|source| ServeError::SharedStore {
        url: crate::config::redact_url_password(url),
        node: node.to_owned(),
        source,
    })?;
    Ok(Link { link, feed })
}

/// The next feed; never resolves on a single node.
pub(super) async fn next_feed(link: &mut Option<Link>) -> Option<Feed> {
    match link {
        Some(link) => link.feed.recv().await,
        None => std::future::pending().await,
    }
}

/// Sends the controller's changes to the log and its claims to the store; each claim's
/// reply is a future for the driver's set of pending replies.
pub(super) fn flush(
    b2bua: &mut B2bua,
    link: Option<&Link>,
) -> Vec<impl Future<Output = ClaimReply> + Send + use<>> {
    let Some(link) = link else {
        return Vec::new();
    };
    while let Some(changes) = b2bua.poll_cluster_changes() {
        link.link.append(changes);
    }
    let mut claims = Vec::new();
    while let Some((user, seq)) = b2bua.poll_claim() {
        let reply = link.link.claim(user.clone(), seq);
        claims.push(async move { (user, reply.wait().await) });
    }
    claims
}

/// Stops the threads after what was queued is written.
pub(super) fn stop(link: Option<Link>) {
    if let Some(Link { link, feed }) = link {
        // The reader must not wait on a full feed nobody reads.
        drop(feed);
        link.stop();
    }
}
