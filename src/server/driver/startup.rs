//! What [`super::Server::start`] makes sure of before it binds anything: the recordings
//! directory takes files, the media ledger has its directory, and the store is open.

use crate::config::Config;
use crate::server::ServeError;
use crate::store::{PostgresStore, SqliteStore, StoreHandle, StoreThread};

/// The media ledger's file name in `[store] data_dir`.
const LEDGER_FILE: &str = "rtp.ledger";

/// A queue records: its directory must exist (it is created) and take a file, or holdfast
/// does not start, rather than lose every call's recording later.
pub(super) fn check_recordings(config: &Config) -> Result<(), ServeError> {
    let Some(queue) = config.queues.iter().find(|q| q.record) else {
        return Ok(());
    };
    let path = &config.media.recordings;
    let probe = path.join(format!(".holdfast-write-test-{}", std::process::id()));
    std::fs::create_dir_all(path)
        .and_then(|()| std::fs::write(&probe, b""))
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|error| ServeError::Recordings {
            path: path.clone(),
            queue: queue.name.clone(),
            reason: error.to_string(),
        })
}

/// Where the media ledger lives (`media::ledger`): in the data directory, which a single
/// process owns.
pub(super) fn ledger_path(config: &Config) -> Result<std::path::PathBuf, ServeError> {
    let dir = &config.store.data_dir;
    std::fs::create_dir_all(dir).map_err(ServeError::Media)?;
    Ok(dir.join(LEDGER_FILE))
}

/// Opens the configured store on its own thread; with the shared PostgreSQL store, also this
/// node's sequence slot.
pub(super) fn open_store(
    config: &Config,
) -> Result<(StoreHandle, StoreThread, Option<u8>), ServeError> {
    match config.store.backend {
        crate::config::StoreBackend::Sqlite => {
            let data_dir = config.store.data_dir.clone();
            let store = SqliteStore::open(&data_dir).map_err(|source| ServeError::Store {
                dir: data_dir.clone(),
                source,
            })?;
            let (store, thread) = StoreHandle::spawn(store)?;
            Ok((store, thread, None))
        }
        crate::config::StoreBackend::Postgres => {
            let url = config.store.url.clone();
            let node = config.cluster.node_name();
            // The blocking client runs its own runtime: open it off this one.
            let opened = {
                let (url, node) = (url.clone(), node.clone());
                std::thread::spawn(move || PostgresStore::open(&url, &node))
                    .join()
                    .unwrap_or_else(|_| {
                        Err(crate::store::StoreError::Postgres(
                            "connect panicked".into(),
                        ))
                    })
            };
            let store = opened.map_err(|source| ServeError::SharedStore {
                url: crate::config::redact_url_password(&url),
                node: node.clone(),
                source,
            })?;
            let slot = store.slot();
            tracing::info!(%node, slot, "joined the cluster (PostgreSQL store)");
            let (store, thread) = StoreHandle::spawn(store)?;
            Ok((store, thread, Some(slot)))
        }
    }
}
