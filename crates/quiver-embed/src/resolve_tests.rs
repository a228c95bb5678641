//! Unit tests for model resolution, listing and the offline failure of a pull.

use super::*;

fn write(path: &Path, bytes: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
}

/// Writes a minimal complete model directory; returns its byte count.
fn fake_model(dir: &Path, model_type: &str, hidden: u64, layers: u64) -> u64 {
    let config = format!(
        r#"{{"model_type":"{model_type}","hidden_size":{hidden},"num_hidden_layers":{layers}}}"#
    );
    write(&dir.join("config.json"), config.as_bytes());
    write(&dir.join("tokenizer.json"), b"{}");
    write(&dir.join("model.safetensors"), &[0u8; 100]);
    config.len() as u64 + 2 + 100
}

#[test]
fn names_are_checked_before_becoming_paths() {
    assert_eq!(
        split_name("Qwen/Qwen3-Embedding-0.6B").unwrap(),
        ("Qwen", "Qwen3-Embedding-0.6B")
    );
    for bad in [
        "",
        "gpt2",
        "a/",
        "/b",
        "../x",
        "a/..",
        "a/b/c",
        "a/.hidden",
        "a--b/c",
        "a/b c",
    ] {
        assert!(
            matches!(split_name(bad), Err(EmbedError::InvalidInput(_))),
            "{bad:?} accepted"
        );
    }
    let dir = model_dir(Path::new("/d"), "sentence-transformers/all-MiniLM-L6-v2").unwrap();
    assert_eq!(
        dir,
        Path::new("/d/models/sentence-transformers--all-MiniLM-L6-v2")
    );
}

#[test]
fn resolves_from_the_data_dir() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("models/Qwen--Qwen3-Embedding-0.6B");
    fake_model(&dir, "qwen3", 1024, 28);
    let found = resolve_with("Qwen/Qwen3-Embedding-0.6B", data.path(), None).unwrap();
    assert_eq!(found.path, dir);
    assert_eq!(found.source, ModelSource::DataDir);
    assert_eq!(found.name, "Qwen/Qwen3-Embedding-0.6B");
}

#[test]
fn incomplete_dir_is_not_available_and_says_what_to_place_where() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("models/Qwen--Qwen3-Embedding-0.6B");
    write(&dir.join("config.json"), b"{}");
    write(&dir.join("tokenizer.json"), b"{}");
    let err = resolve_with("Qwen/Qwen3-Embedding-0.6B", data.path(), None).unwrap_err();
    let EmbedError::NotAvailable { name, reason } = err else {
        panic!("wrong error {err:?}");
    };
    assert_eq!(name, "Qwen/Qwen3-Embedding-0.6B");
    assert!(reason.contains(&dir.display().to_string()), "{reason}");
    assert!(
        reason.contains("tokenizer.json") && reason.contains("safetensors"),
        "{reason}"
    );
}

#[test]
fn resolves_from_a_hub_cache_snapshot_named_by_refs_main() {
    let data = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let repo = cache.path().join("models--Qwen--Qwen3-Embedding-0.6B");
    fake_model(&repo.join("snapshots/old1"), "qwen3", 1024, 28);
    fake_model(&repo.join("snapshots/abc123"), "qwen3", 1024, 28);
    write(&repo.join("refs/main"), b"abc123\n");
    let found = resolve_with("Qwen/Qwen3-Embedding-0.6B", data.path(), Some(cache.path())).unwrap();
    assert_eq!(found.source, ModelSource::HfCache);
    assert_eq!(found.path, repo.join("snapshots/abc123"));

    // Without refs/main any complete snapshot serves.
    fs::remove_file(repo.join("refs/main")).unwrap();
    fs::remove_file(repo.join("snapshots/abc123/model.safetensors")).unwrap();
    let found = resolve_with("Qwen/Qwen3-Embedding-0.6B", data.path(), Some(cache.path())).unwrap();
    assert_eq!(found.path, repo.join("snapshots/old1"));

    // The data directory wins over the cache.
    let local = data.path().join("models/Qwen--Qwen3-Embedding-0.6B");
    fake_model(&local, "qwen3", 1024, 28);
    let found = resolve_with("Qwen/Qwen3-Embedding-0.6B", data.path(), Some(cache.path())).unwrap();
    assert_eq!((found.path, found.source), (local, ModelSource::DataDir));
}

#[cfg(unix)]
#[test]
fn hub_cache_links_into_blobs_resolve_and_count_their_size() {
    let data = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let repo = cache.path().join("models--org--linked");
    let blobs = repo.join("blobs");
    fake_model(&blobs, "bert", 384, 6);
    let snap = repo.join("snapshots/r1");
    fs::create_dir_all(&snap).unwrap();
    for f in ["config.json", "tokenizer.json", "model.safetensors"] {
        std::os::unix::fs::symlink(blobs.join(f), snap.join(f)).unwrap();
    }
    write(&repo.join("refs/main"), b"r1");
    let models = list_with(data.path(), Some(cache.path())).unwrap();
    assert_eq!(models.len(), 1);
    assert_eq!(models[0].location.path, snap);
    assert_eq!(models[0].size_bytes, dir_size(&blobs));
    assert!(models[0].size_bytes >= 100);
}

#[test]
fn list_reports_architecture_and_size() {
    let data = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let qwen = fake_model(
        &data.path().join("models/Qwen--Qwen3-Embedding-0.6B"),
        "qwen3",
        1024,
        28,
    );
    let bert = fake_model(
        &data
            .path()
            .join("models/sentence-transformers--all-MiniLM-L6-v2"),
        "bert",
        384,
        6,
    );
    write(
        &data
            .path()
            .join("models/sentence-transformers--all-MiniLM-L6-v2/1_Pooling/config.json"),
        b"{}",
    );
    // Not models: incomplete, stray names, staging leftovers.
    write(
        &data.path().join("models/org--incomplete/config.json"),
        b"{}",
    );
    fake_model(&data.path().join("models/nodashes"), "bert", 1, 1);
    fake_model(&data.path().join("models/.partial-org--x"), "bert", 1, 1);
    fake_model(
        &cache.path().join("models--org--cached/snapshots/s"),
        "qwen3",
        2560,
        36,
    );

    let models = list_with(data.path(), Some(cache.path())).unwrap();
    let names: Vec<&str> = models.iter().map(|m| m.location.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "Qwen/Qwen3-Embedding-0.6B",
            "sentence-transformers/all-MiniLM-L6-v2",
            "org/cached"
        ]
    );
    assert_eq!(models[0].size_bytes, qwen);
    assert_eq!(models[1].size_bytes, bert + 2);
    assert_eq!(
        models[0].architecture,
        Some(Architecture {
            model_type: "qwen3".into(),
            hidden_size: Some(1024),
            num_layers: Some(28),
            max_positions: None,
        })
    );
    assert_eq!(models[1].architecture.as_ref().unwrap().model_type, "bert");
    assert_eq!(models[2].location.source, ModelSource::HfCache);
    assert_eq!(
        models[2].architecture.as_ref().unwrap().num_layers,
        Some(36)
    );
    assert!(list_with(&data.path().join("absent"), None)
        .unwrap()
        .is_empty());
}

#[test]
fn pull_against_an_unreachable_hub_fails_with_instructions() {
    let data = tempfile::tempdir().unwrap();
    let options = PullOptions {
        endpoint: Some("http://127.0.0.1:9".into()),
        progress: false,
    };
    let err = pull_with("Qwen/Qwen3-Embedding-0.6B", data.path(), &options).unwrap_err();
    let EmbedError::NotAvailable { reason, .. } = &err else {
        panic!("wrong error {err:?}");
    };
    let target = data.path().join("models/Qwen--Qwen3-Embedding-0.6B");
    assert!(reason.contains(&target.display().to_string()), "{reason}");
    assert!(
        reason.contains("config.json") && reason.contains("*.safetensors"),
        "{reason}"
    );
    assert!(!target.exists(), "a failed pull left {target:?} behind");
}

#[test]
fn pull_of_an_installed_model_needs_no_hub() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("models/Qwen--Qwen3-Embedding-0.6B");
    fake_model(&dir, "qwen3", 1024, 28);
    let options = PullOptions {
        endpoint: Some("http://127.0.0.1:9".into()),
        progress: false,
    };
    let found = pull_with("Qwen/Qwen3-Embedding-0.6B", data.path(), &options).unwrap();
    assert_eq!(found.path, dir);
    assert!(matches!(
        pull_with("no-org", data.path(), &options),
        Err(EmbedError::InvalidInput(_))
    ));
}

#[test]
fn only_safetensors_weights_and_needed_side_files_are_fetched() {
    let repo = [
        "README.md",
        "config.json",
        "tokenizer.json",
        "model.safetensors",
        "pytorch_model.bin",
        "onnx/model.safetensors",
        "1_Pooling/config.json",
        "modules.json",
        "model-00001-of-00002.safetensors",
    ];
    assert_eq!(
        select_files(repo.into_iter()),
        [
            "1_Pooling/config.json",
            "config.json",
            "model-00001-of-00002.safetensors",
            "model.safetensors",
            "modules.json",
            "tokenizer.json"
        ]
    );
}
