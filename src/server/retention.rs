//! Recording retention (`[media] recordings_keep_days`, docs/behaviour.md §5): at start and
//! every hour, day directories of recordings older than the limit are deleted, off the
//! async threads.

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::watch;

use crate::media::recording::files;

/// How often the recordings directory is swept.
const EVERY: Duration = Duration::from_secs(3600);

/// Sweeps `dir` keeping `keep_days` days until `stopped` turns true; nothing when
/// `keep_days` is 0 (keep everything).
pub(super) fn spawn(dir: PathBuf, keep_days: u32, mut stopped: watch::Receiver<bool>) {
    if keep_days == 0 {
        return;
    }
    tokio::spawn(async move {
        loop {
            let sweep_dir = dir.clone();
            let now_ms = jiff::Timestamp::now().as_millisecond();
            match tokio::task::spawn_blocking(move || files::sweep(&sweep_dir, keep_days, now_ms))
                .await
            {
                Ok(Ok(removed)) if !removed.is_empty() => {
                    tracing::info!(dir = %dir.display(), ?removed, keep_days, "old recordings deleted");
                }
                Ok(Ok(_)) => {}
                Ok(Err(error)) => {
                    tracing::warn!(dir = %dir.display(), %error, "cannot sweep old recordings");
                }
                Err(_) => return,
            }
            tokio::select! {
                () = tokio::time::sleep(EVERY) => {}
                _ = stopped.wait_for(|stop| *stop) => return,
            }
        }
    });
}
