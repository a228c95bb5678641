//! Quiver's HTTP server: configuration, routes, authentication, limits, metrics and the
//! OpenAPI description, over the engine's [`Database`].
//!
//! Start-up: [`Server::bind`] checks the listen address against the key settings (no
//! key, no listening beyond loopback), opens the database, and binds. [`Server::run`]
//! serves until the shutdown future resolves (see [`shutdown_signal`]), then stops
//! accepting, lets in-flight requests finish (up to `server.shutdown_grace_s`), and
//! syncs every collection.

pub mod app;
pub mod auth;
pub mod collectors;
pub mod config;
pub mod dto;
pub mod error;
pub mod extract;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod routes;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use quiver_engine::{CollectionOptions, Database, DbOptions};
use tokio::net::TcpListener;

pub use app::{router, AppState};
pub use auth::KeySet;
pub use config::Config;
pub use error::{ApiError, Result, ServerError};

/// A bound, not yet serving, server.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    state: AppState,
    grace: Duration,
}

/// The engine options `[storage]` asks for.
pub fn db_options(config: &Config) -> DbOptions {
    let s = &config.storage;
    DbOptions {
        collection: CollectionOptions {
            sync: s.wal_sync,
            seal_rows: s.seal_rows,
            wal_file_bytes: s.wal_file_mb.saturating_mul(1 << 20),
            repair: s.repair,
            background_compaction: s.compaction,
            compact_quiet: Duration::from_millis(s.compaction_quiet_ms),
            text_commit_ops: s.text_commit_ops.max(1),
            text_commit_interval: Duration::from_millis(s.text_commit_ms.max(1)),
            ..CollectionOptions::default()
        },
    }
}

impl Server {
    /// Validates the security settings, opens the database and binds the listener.
    pub async fn bind(config: &Config) -> Result<Server> {
        let listen = config.server.listen.clone();
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host(&listen)
            .await
            .map_err(|e| ServerError::io(format!("resolving listen address {listen:?}"), e))?
            .collect();
        let keys = KeySet::new(&config.server.api_keys.0, &config.server.read_only_keys.0);
        let public = addrs.iter().any(|a| !a.ip().is_loopback());
        if public && !keys.enabled() && !config.server.allow_insecure_public {
            return Err(ServerError::Insecure(listen));
        }
        if public && !keys.enabled() {
            tracing::warn!(%listen, "listening beyond loopback WITHOUT an API key");
        }
        let Some(addr) = addrs.first().copied() else {
            return Err(ServerError::Config(format!(
                "listen address {listen:?} resolves to nothing"
            )));
        };
        let data_dir = config.storage.data_dir.clone();
        let opts = db_options(config);
        let db = tokio::task::spawn_blocking(move || Database::open(&data_dir, opts))
            .await
            .map_err(|e| ServerError::Task(e.to_string()))??;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| ServerError::io(format!("binding {addr}"), e))?;
        let state = AppState::new(Arc::new(db), config.limits.clone(), keys, &config.models);
        Ok(Server {
            listener,
            state,
            grace: Duration::from_secs(config.server.shutdown_grace_s),
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listener
            .local_addr()
            .map_err(|e| ServerError::io("reading the bound address", e))
    }

    /// Serves until `shutdown` resolves, then drains and syncs (see the module docs).
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        let Server {
            listener,
            state,
            grace,
        } = self;
        let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
        let app = router(state.clone());
        let serving = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop_rx.wait_for(|stop| *stop).await;
                })
                .await
        });
        shutdown.await;
        state.ready.store(false, Ordering::Release);
        tracing::info!("shutting down: no new connections, draining requests");
        let _ = stop_tx.send(true);
        match tokio::time::timeout(grace, serving).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::error!(error = %e, "server stopped with an error"),
            Ok(Err(e)) => tracing::error!(error = %e, "server task failed"),
            Err(_) => tracing::warn!(?grace, "requests still running after the grace period"),
        }
        sync_all(Arc::clone(&state.db)).await
    }
}

/// Forces every collection's WAL to disk; reports the first failure after trying all.
async fn sync_all(db: Arc<Database>) -> Result<()> {
    tokio::task::spawn_blocking(move || {
        let mut first_err = None;
        for name in db.list_collections() {
            let synced = db.collection(&name).and_then(|c| c.sync());
            if let Err(e) = synced {
                tracing::error!(collection = %name, error = %e, "final sync failed");
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            None => {
                tracing::info!("every collection synced; bye");
                Ok(())
            }
            Some(e) => Err(ServerError::Engine(e)),
        }
    })
    .await
    .map_err(|e| ServerError::Task(e.to_string()))?
}

/// Resolves on the first SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received"),
        () = term => tracing::info!("SIGTERM received"),
    }
}
