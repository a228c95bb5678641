//! Snapshot routes: create, list, download (streamed), delete and restore, for one
//! collection (`/collections/{name}/snapshots…`) or the whole database (`/snapshots…`).
//!
//! Restore takes either JSON `{"snapshot": "<stored name>", "target": "<collection>"}`
//! or the archive itself as an `application/octet-stream` body with `?target=`. An
//! upload is streamed into the engine's staging directory as it arrives (never held in
//! memory), bounded by `limits.max_snapshot_bytes` instead of `max_body_bytes`.
//! A snapshot may not be named `restore` (that path is the restore route).

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http_body_util::BodyExt;
use quiver_engine::snapshot::{
    CollectionLsn, Compression, CreatedSnapshot, RestoreLimits, RestoredCollection, SnapshotInfo,
    SnapshotScope,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::{blocking, AppState};
use crate::error::{ApiError, ErrorBody};
use crate::extract::collection_name;
use crate::limits::{parse_json, read_limited};

/// Body of a create request (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSnapshot {
    /// Snapshot name (`^[A-Za-z0-9_-]{1,64}$`); default `snapshot-<unix ms>`.
    pub name: Option<String>,
    /// `none` (default) or `zstd`.
    pub compress: Option<String>,
}

/// `?compress=` of a create request.
#[derive(Debug, Default, Deserialize)]
pub struct CreateQuery {
    pub compress: Option<String>,
}

/// JSON body of a restore from a stored snapshot.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreSnapshot {
    /// The stored snapshot to restore.
    pub snapshot: String,
    /// Collection to restore into (replacing it); default: the snapshot's collection.
    pub target: Option<String>,
}

/// `?target=` of an archive upload.
#[derive(Debug, Default, Deserialize)]
pub struct RestoreQuery {
    pub target: Option<String>,
}

/// Answer of a create.
#[derive(Debug, Serialize, ToSchema)]
pub struct SnapshotCreated {
    pub name: String,
    /// Checkpoint LSN: the restored collection holds exactly the writes up to it.
    pub lsn: u64,
    /// Archive size in bytes.
    pub size: u64,
    pub collections: Vec<SnapshotCollection>,
}

/// A collection and its LSN in a snapshot or restore.
#[derive(Debug, Serialize, ToSchema)]
pub struct SnapshotCollection {
    pub name: String,
    pub lsn: u64,
    /// Documents after a restore (absent for a create).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub documents: Option<usize>,
}

impl From<CollectionLsn> for SnapshotCollection {
    fn from(c: CollectionLsn) -> Self {
        SnapshotCollection {
            name: c.name,
            lsn: c.lsn,
            documents: None,
        }
    }
}

/// A stored snapshot.
#[derive(Debug, Serialize, ToSchema)]
pub struct SnapshotEntry {
    pub name: String,
    pub size: u64,
    pub created_unix_ms: u64,
    /// The checkpoint LSN (a database snapshot: its collections' highest); null when
    /// the server could not record it.
    pub lsn: Option<u64>,
    /// Each collection in the archive and its LSN.
    pub collections: Vec<SnapshotCollection>,
}

/// Answer of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct SnapshotList {
    pub snapshots: Vec<SnapshotEntry>,
}

/// Answer of a restore.
#[derive(Debug, Serialize, ToSchema)]
pub struct Restored {
    pub restored: Vec<SnapshotCollection>,
}

/// Answer of a delete.
#[derive(Debug, Serialize, ToSchema)]
pub struct SnapshotDeleted {
    pub deleted: bool,
}

/// `{name}` and `{snapshot}` of a per-collection snapshot route.
#[derive(Debug, Deserialize)]
pub struct NameSnap {
    name: String,
    snapshot: String,
}

fn snapshot_name(name: &str) -> Result<(), ApiError> {
    quiver_core::validate_name(name).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_name",
            format!("snapshot name: {e}"),
        )
    })?;
    if name == "restore" {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_name",
            "\"restore\" is reserved for the restore route",
        ));
    }
    Ok(())
}

fn compression(s: Option<&str>) -> Result<Compression, ApiError> {
    match s {
        None | Some("none") => Ok(Compression::None),
        Some("zstd") => Ok(Compression::Zstd),
        Some(other) => Err(ApiError::bad_request(format!(
            "compress must be \"none\" or \"zstd\", not {other:?}"
        ))),
    }
}

fn collection_scope(name: &str) -> Result<SnapshotScope, ApiError> {
    collection_name(name)?;
    Ok(SnapshotScope::Collection(name.to_string()))
}

fn created(c: CreatedSnapshot) -> (StatusCode, Json<SnapshotCreated>) {
    let collections = c.collections.into_iter().map(Into::into).collect();
    let body = SnapshotCreated {
        name: c.name,
        lsn: c.lsn,
        size: c.size,
        collections,
    };
    (StatusCode::CREATED, Json(body))
}

fn listed(v: Vec<SnapshotInfo>) -> Json<SnapshotList> {
    Json(SnapshotList {
        snapshots: v
            .into_iter()
            .map(|s| SnapshotEntry {
                name: s.name,
                size: s.size,
                created_unix_ms: s.created_unix_ms,
                lsn: s.lsn,
                collections: s.collections.into_iter().map(Into::into).collect(),
            })
            .collect(),
    })
}

fn restored(v: Vec<RestoredCollection>) -> Json<Restored> {
    Json(Restored {
        restored: v
            .into_iter()
            .map(|r| SnapshotCollection {
                name: r.name,
                lsn: r.lsn,
                documents: Some(r.documents),
            })
            .collect(),
    })
}

async fn create_in(
    state: AppState,
    scope: SnapshotScope,
    query: CreateQuery,
    body: Bytes,
) -> Result<(StatusCode, Json<SnapshotCreated>), ApiError> {
    let req: CreateSnapshot = if body.iter().all(u8::is_ascii_whitespace) {
        CreateSnapshot::default()
    } else {
        parse_json(&body, &state.limits)?
    };
    if let Some(n) = &req.name {
        snapshot_name(n)?;
    }
    let comp = compression(req.compress.as_deref().or(query.compress.as_deref()))?;
    let db = state.db.clone();
    let c = blocking(move || Ok(db.create_snapshot(&scope, req.name.as_deref(), comp)?)).await?;
    Ok(created(c))
}

/// Streams stored snapshot `name` of `scope` as the response body.
async fn download_in(
    state: AppState,
    scope: SnapshotScope,
    name: String,
) -> Result<Response, ApiError> {
    snapshot_name(&name)?;
    let db = state.db.clone();
    let file_name = name.clone();
    let (file, len) = blocking(move || Ok(db.open_snapshot(&scope, &name)?)).await?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
    // A blocking reader feeds the body; it stops when the client goes away.
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut file = file;
        loop {
            let mut buf = vec![0u8; 256 << 10];
            match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    buf.truncate(n);
                    if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    break;
                }
            }
        }
    });
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, len.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file_name}.snapshot\""),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// Reads the upload through a channel, so the blocking restore consumes it as it
/// arrives.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
    cur: Bytes,
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        self.cur = self.cur.slice(n..);
        Ok(n)
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

async fn restore_in(
    state: AppState,
    scope: SnapshotScope,
    default_target: Option<String>,
    query: RestoreQuery,
    req: Request,
) -> Result<Json<Restored>, ApiError> {
    let limits = RestoreLimits {
        max_bytes: state.limits.max_snapshot_bytes,
        ..RestoreLimits::default()
    };
    let db = state.db.clone();
    if is_json(req.headers()) {
        let body = read_limited(req, state.limits.max_body_bytes).await?;
        let r: RestoreSnapshot = parse_json(&body, &state.limits)?;
        snapshot_name(&r.snapshot)?;
        let target = r.target.or(default_target);
        if let Some(t) = &target {
            collection_name(t)?;
        }
        let out = blocking(move || {
            Ok(db.restore_snapshot(&scope, &r.snapshot, target.as_deref(), &limits)?)
        })
        .await?;
        return Ok(restored(out));
    }
    let target = query.target.or(default_target);
    if let Some(t) = &target {
        collection_name(t)?;
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(8);
    let task = tokio::task::spawn_blocking(move || {
        let reader = ChannelReader {
            rx,
            cur: Bytes::new(),
        };
        db.restore_archive(reader, target.as_deref(), &limits)
    });
    let mut body = req.into_body();
    while let Some(frame) = body.frame().await {
        let item = match frame {
            Ok(f) => match f.into_data() {
                Ok(d) => Ok(d),
                Err(_) => continue,
            },
            Err(e) => Err(std::io::Error::other(format!("upload interrupted: {e}"))),
        };
        let failed = item.is_err();
        // A closed channel means the restore already failed; its error is the answer.
        if tx.send(item).await.is_err() || failed {
            break;
        }
    }
    drop(tx);
    let out = task
        .await
        .map_err(|e| ApiError::internal(format!("restore task failed: {e}")))??;
    Ok(restored(out))
}

/// Snapshot one collection while writes continue.
#[utoipa::path(post, path = "/collections/{name}/snapshots", tag = "snapshots",
    params(("name" = String, Path), ("compress" = Option<String>, Query, description = "none or zstd")),
    request_body(content = Option<CreateSnapshot>),
    responses((status = 201, body = SnapshotCreated), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<CreateQuery>,
    body: Bytes,
) -> Result<(StatusCode, Json<SnapshotCreated>), ApiError> {
    let scope = collection_scope(&name)?;
    create_in(state, scope, q, body).await
}

/// Stored snapshots of one collection.
#[utoipa::path(get, path = "/collections/{name}/snapshots", tag = "snapshots",
    params(("name" = String, Path)),
    responses((status = 200, body = SnapshotList), (status = 404, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<SnapshotList>, ApiError> {
    let scope = collection_scope(&name)?;
    let db = state.db.clone();
    let v = blocking(move || {
        let v = db.list_snapshots(&scope)?;
        if v.is_empty() && db.collection(&name).is_err() {
            return Err(ApiError::not_found(format!("collection {name:?}")));
        }
        Ok(v)
    })
    .await?;
    Ok(listed(v))
}

/// Download a stored snapshot of one collection (streamed).
#[utoipa::path(get, path = "/collections/{name}/snapshots/{snapshot}", tag = "snapshots",
    params(("name" = String, Path), ("snapshot" = String, Path)),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>), (status = 404, body = ErrorBody)))]
pub async fn download(
    State(state): State<AppState>,
    Path(p): Path<NameSnap>,
) -> Result<Response, ApiError> {
    let scope = collection_scope(&p.name)?;
    download_in(state, scope, p.snapshot).await
}

/// Delete a stored snapshot of one collection.
#[utoipa::path(delete, path = "/collections/{name}/snapshots/{snapshot}", tag = "snapshots",
    params(("name" = String, Path), ("snapshot" = String, Path)),
    responses((status = 200, body = SnapshotDeleted), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    Path(p): Path<NameSnap>,
) -> Result<Json<SnapshotDeleted>, ApiError> {
    let scope = collection_scope(&p.name)?;
    snapshot_name(&p.snapshot)?;
    let db = state.db.clone();
    blocking(move || Ok(db.delete_snapshot(&scope, &p.snapshot)?)).await?;
    Ok(Json(SnapshotDeleted { deleted: true }))
}

/// Restore a collection from a stored snapshot (JSON) or an uploaded archive.
#[utoipa::path(post, path = "/collections/{name}/snapshots/restore", tag = "snapshots",
    params(("name" = String, Path), ("target" = Option<String>, Query)),
    request_body(content = RestoreSnapshot, description = "JSON, or the archive as application/octet-stream"),
    responses((status = 200, body = Restored), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody)))]
pub async fn restore(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<RestoreQuery>,
    req: Request,
) -> Result<Json<Restored>, ApiError> {
    let scope = collection_scope(&name)?;
    restore_in(state, scope, Some(name), q, req).await
}

/// Snapshot every collection.
#[utoipa::path(post, path = "/snapshots", tag = "snapshots",
    params(("compress" = Option<String>, Query, description = "none or zstd")),
    request_body(content = Option<CreateSnapshot>),
    responses((status = 201, body = SnapshotCreated), (status = 409, body = ErrorBody)))]
pub async fn create_db(
    State(state): State<AppState>,
    Query(q): Query<CreateQuery>,
    body: Bytes,
) -> Result<(StatusCode, Json<SnapshotCreated>), ApiError> {
    create_in(state, SnapshotScope::Database, q, body).await
}

/// Stored whole-database snapshots.
#[utoipa::path(get, path = "/snapshots", tag = "snapshots",
    responses((status = 200, body = SnapshotList)))]
pub async fn list_db(State(state): State<AppState>) -> Result<Json<SnapshotList>, ApiError> {
    let db = state.db.clone();
    let v = blocking(move || Ok(db.list_snapshots(&SnapshotScope::Database)?)).await?;
    Ok(listed(v))
}

/// Download a whole-database snapshot (streamed).
#[utoipa::path(get, path = "/snapshots/{snapshot}", tag = "snapshots",
    params(("snapshot" = String, Path)),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>), (status = 404, body = ErrorBody)))]
pub async fn download_db(
    State(state): State<AppState>,
    Path(snapshot): Path<String>,
) -> Result<Response, ApiError> {
    download_in(state, SnapshotScope::Database, snapshot).await
}

/// Delete a whole-database snapshot.
#[utoipa::path(delete, path = "/snapshots/{snapshot}", tag = "snapshots",
    params(("snapshot" = String, Path)),
    responses((status = 200, body = SnapshotDeleted), (status = 404, body = ErrorBody)))]
pub async fn delete_db(
    State(state): State<AppState>,
    Path(snapshot): Path<String>,
) -> Result<Json<SnapshotDeleted>, ApiError> {
    snapshot_name(&snapshot)?;
    let db = state.db.clone();
    blocking(move || Ok(db.delete_snapshot(&SnapshotScope::Database, &snapshot)?)).await?;
    Ok(Json(SnapshotDeleted { deleted: true }))
}

/// Restore every collection of a whole-database snapshot (stored or uploaded); each
/// replaces the collection of the same name.
#[utoipa::path(post, path = "/snapshots/restore", tag = "snapshots",
    request_body(content = RestoreSnapshot, description = "JSON, or the archive as application/octet-stream"),
    responses((status = 200, body = Restored), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody)))]
pub async fn restore_db(
    State(state): State<AppState>,
    Query(q): Query<RestoreQuery>,
    req: Request,
) -> Result<Json<Restored>, ApiError> {
    restore_in(state, SnapshotScope::Database, None, q, req).await
}
