//! A registry's workload on a driver: concurrent pushes, concurrent pulls and a garbage
//! collector's walk, on the Docker Registry's own layout.
//!
//! | phase | what each step does, as `registry/storage` does it |
//! |---|---|
//! | push (one image, its own repository) | per layer and for the config: `put_content` of `_uploads/<id>/startedat`, a writer on `_uploads/<id>/data` with half the chunks, `close`, a writer resumed with `append` (its `size` checked), the other chunks, `commit`, `stat` of the blob (is it there already?) and of the upload, `rename` to `blobs/sha256/<xx>/<digest>/data`, `delete` of `_uploads/<id>`, `put_content` of the `_layers/sha256/<digest>/link`; then the manifest: its blob, its revision link, the tag's `current/link` and `index/sha256/<digest>/link` |
//! | pull (round robin over the pushed images) | `get_content` of the tag's current link and of the revision link, `stat` and `get_content` of the manifest blob, then per layer and for the config: the layer link, a `stat` of the blob and a `reader` of it from an offset to the end |
//! | walk | `walk` of `/docker/registry/v2`, every entry counted (the mark phase of `registry garbage-collect` lists every repository and blob) |
//!
//! Paths: `/docker/registry/v2/repositories/<name>/{_uploads,_layers,_manifests}/...` and
//! `/docker/registry/v2/blobs/sha256/<2 hex>/<hex>/data`. Layer contents are distinct (a unique
//! header on a shared random block), so their SHA-256 digests, computed while they are
//! written as a registry does, are too. `registry-storage bench --workload registry` runs it;
//! a benchmark can call [`run_registry_workload`] on any driver (an empty store, or one
//! scoped below a prefix of its own with [`crate::scoped::ScopedDriver`]).
//!
//! ```no_run
//! # async fn demo(driver: std::sync::Arc<dyn testsuites::storagedriver::StorageDriver>) -> testsuites::storagedriver::Result<()> {
//! use testsuites::bench::registry::{RegistryWorkload, run_registry_workload};
//!
//! let results = run_registry_workload(driver, &RegistryWorkload::default(), &|_, _| {}).await?;
//! println!("{:.1} pushes/s, {:.1} pulls/s", results.push.per_second(), results.pull.per_second());
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use storagedriver::{Error, Result, StorageDriver, WalkControl, WalkOptions};

use crate::data::{Rng, random_bytes};

/// The registry's root below the driver's.
pub const V2: &str = "/docker/registry/v2";

/// The tag every pushed image gets.
const TAG: &str = "latest";

/// The size of the config blob of an image.
const CONFIG_SIZE: usize = 1500;

/// How much the workload does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryWorkload {
    /// Pushes (or pulls) in flight at once.
    pub concurrency: usize,
    /// Images pushed, each to a repository of its own.
    pub pushes: u32,
    /// Images pulled, round robin over the pushed ones.
    pub pulls: u32,
    /// Layers per image.
    pub layers: u32,
    /// Bytes per layer.
    pub layer_size: u64,
    /// Bytes per write of an upload (a `PATCH` of the registry API).
    pub chunk_size: u64,
}

impl Default for RegistryWorkload {
    /// 128 pushes and 512 pulls of 3 layers of 4 MiB in 1 MiB chunks, 8 at a time.
    fn default() -> Self {
        RegistryWorkload {
            concurrency: 8,
            pushes: 128,
            pulls: 512,
            layers: 3,
            layer_size: 4 << 20,
            chunk_size: 1 << 20,
        }
    }
}

/// The workload's phases, for progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Pushing images.
    Push,
    /// Pulling images.
    Pull,
    /// Walking the tree.
    Walk,
}

/// A phase's figures: how many, how long (wall clock), how many bytes of content moved, and
/// each step's latency.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseResult {
    /// Pushes or pulls done.
    pub count: u32,
    /// Wall-clock time of the phase.
    pub elapsed: Duration,
    /// Bytes of layer and config content written or read.
    pub bytes: u64,
    /// The latency of each push or pull, sorted.
    pub latencies: Vec<Duration>,
}

impl PhaseResult {
    /// Pushes or pulls per second.
    pub fn per_second(&self) -> f64 {
        rate(f64::from(self.count), self.elapsed)
    }

    /// Content moved, in MB/s (10^6 bytes).
    pub fn mb_per_second(&self) -> f64 {
        rate(self.bytes as f64 / 1e6, self.elapsed)
    }

    /// The latency at quantile `q` (0.5: the median), zero when nothing ran.
    pub fn latency(&self, q: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let last = self.latencies.len() - 1;
        self.latencies[((last as f64) * q).round() as usize]
    }
}

/// The walk's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct WalkResult {
    /// Entries reported (files and directories).
    pub entries: u64,
    /// Wall-clock time of the walk.
    pub elapsed: Duration,
}

impl WalkResult {
    /// Entries per second.
    pub fn per_second(&self) -> f64 {
        rate(self.entries as f64, self.elapsed)
    }
}

/// What [`run_registry_workload`] measured.
#[derive(Debug, Clone, PartialEq)]
pub struct RegistryResults {
    /// The push phase.
    pub push: PhaseResult,
    /// The pull phase.
    pub pull: PhaseResult,
    /// The garbage collector's walk.
    pub walk: WalkResult,
}

impl RegistryResults {
    /// The results as JSON: `{push: {count, seconds, per_second, bytes, mb_per_second,
    /// p50_ms, p99_ms}, pull: {...}, walk: {entries, seconds, entries_per_second}}`.
    pub fn to_json(&self) -> Value {
        json!({
            "push": phase_json(&self.push),
            "pull": phase_json(&self.pull),
            "walk": {
                "entries": self.walk.entries,
                "seconds": self.walk.elapsed.as_secs_f64(),
                "entries_per_second": self.walk.per_second(),
            },
        })
    }
}

fn phase_json(phase: &PhaseResult) -> Value {
    json!({
        "count": phase.count,
        "seconds": phase.elapsed.as_secs_f64(),
        "per_second": phase.per_second(),
        "bytes": phase.bytes,
        "mb_per_second": phase.mb_per_second(),
        "p50_ms": phase.latency(0.5).as_secs_f64() * 1e3,
        "p99_ms": phase.latency(0.99).as_secs_f64() * 1e3,
    })
}

fn rate(amount: f64, elapsed: Duration) -> f64 {
    if elapsed.is_zero() {
        0.0
    } else {
        amount / elapsed.as_secs_f64()
    }
}

/// Runs the pushes, then the pulls, then the walk on `driver`, which should hold nothing
/// under [`V2`]; leaves what it wrote (delete `/docker` afterwards). `progress` is told of each
/// push or pull done, and of each thousand entries walked.
///
/// # Errors
///
/// The first driver error of any step, or a `Backend` error naming the step when the driver
/// returns something the workload did not write (a short read, a wrong link).
pub async fn run_registry_workload(
    driver: Arc<dyn StorageDriver>,
    workload: &RegistryWorkload,
    progress: &(dyn Fn(Phase, u64) + Send + Sync),
) -> Result<RegistryResults> {
    let chunk_size = usize::try_from(workload.chunk_size.max(1)).unwrap_or(usize::MAX);
    let block = random_bytes(0x5eed, chunk_size.min(workload.layer_size as usize).max(64));
    let plan = Arc::new(Plan {
        workload: workload.clone(),
        block,
    });
    let concurrency = workload.concurrency.max(1);

    let started = Instant::now();
    let pushed: Vec<(u64, Duration, Image)> = futures::stream::iter(0..workload.pushes)
        .map(|i| {
            let driver = driver.clone();
            let plan = plan.clone();
            tokio::spawn(async move {
                let t = Instant::now();
                let (bytes, image) = push(driver.as_ref(), &plan, i).await?;
                Ok::<_, Error>((bytes, t.elapsed(), image))
            })
        })
        .buffer_unordered(concurrency)
        .map(|joined| {
            let done = joined.map_err(|e| task_failed("push", e))??;
            progress(Phase::Push, 1);
            Ok::<_, Error>(done)
        })
        .try_collect()
        .await?;
    let push = phase(pushed.iter().map(|(b, d, _)| (*b, *d)), started.elapsed());
    let mut images: Vec<Image> = pushed.into_iter().map(|(_, _, image)| image).collect();
    images.sort_by_key(|image| image.index);
    let images = Arc::new(images);

    let started = Instant::now();
    let pulled: Vec<(u64, Duration)> = futures::stream::iter(0..workload.pulls)
        .map(|j| {
            let driver = driver.clone();
            let images = images.clone();
            let layer_size = workload.layer_size;
            tokio::spawn(async move {
                let t = Instant::now();
                let image = &images[j as usize % images.len()];
                let bytes = pull(driver.as_ref(), image, j, layer_size).await?;
                Ok::<_, Error>((bytes, t.elapsed()))
            })
        })
        .buffer_unordered(concurrency)
        .map(|joined| {
            let done = joined.map_err(|e| task_failed("pull", e))??;
            progress(Phase::Pull, 1);
            Ok::<_, Error>(done)
        })
        .try_collect()
        .await?;
    let pull = phase(pulled.into_iter(), started.elapsed());

    let started = Instant::now();
    let mut entries = 0u64;
    driver
        .walk(V2, &WalkOptions::default(), &mut |_| {
            entries += 1;
            if entries % 1000 == 0 {
                progress(Phase::Walk, 1000);
            }
            WalkControl::Continue
        })
        .await?;
    let walk = WalkResult {
        entries,
        elapsed: started.elapsed(),
    };
    Ok(RegistryResults { push, pull, walk })
}

fn phase(steps: impl Iterator<Item = (u64, Duration)>, elapsed: Duration) -> PhaseResult {
    let mut bytes = 0;
    let mut latencies = Vec::new();
    for (b, d) in steps {
        bytes += b;
        latencies.push(d);
    }
    latencies.sort();
    PhaseResult {
        count: u32::try_from(latencies.len()).unwrap_or(u32::MAX),
        elapsed,
        bytes,
        latencies,
    }
}

fn task_failed(what: &str, e: tokio::task::JoinError) -> Error {
    if e.is_panic() {
        std::panic::resume_unwind(e.into_panic());
    }
    Error::backend(
        "registry-bench",
        what,
        None,
        storagedriver::Retry::Useless,
        e.to_string(),
    )
}

/// What every push shares: the workload and the random block layers are made of.
#[derive(Debug)]
struct Plan {
    workload: RegistryWorkload,
    block: Bytes,
}

/// A pushed image, as a pull finds it.
#[derive(Debug, Clone)]
struct Image {
    index: u32,
    repository: String,
}

fn repository(i: u32) -> String {
    format!("bench/image-{i:05}")
}

fn repo_path(repository: &str) -> String {
    format!("{V2}/repositories/{repository}")
}

fn blob_path(hex: &str) -> String {
    format!("{V2}/blobs/sha256/{}/{hex}/data", &hex[..2])
}

fn link(hex: &str) -> Bytes {
    Bytes::from(format!("sha256:{hex}"))
}

/// The hex digest of a `sha256:<hex>` link.
fn linked(content: &[u8], what: &str) -> Result<String> {
    std::str::from_utf8(content)
        .ok()
        .and_then(|text| text.strip_prefix("sha256:"))
        .filter(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_owned)
        .ok_or_else(|| unexpected(what, format!("not a sha256 link: {content:?}")))
}

fn unexpected(what: &str, detail: String) -> Error {
    Error::backend(
        "registry-bench",
        what,
        None,
        storagedriver::Retry::Useless,
        detail,
    )
}

/// An upload id in the registry's UUID form.
fn upload_id(rng: &mut Rng) -> String {
    let a = rng.next_u64();
    let b = rng.next_u64();
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        b >> 52,
        b & 0xffff_ffff_ffff
    )
}

/// The chunks of layer `layer` of image `image`: the shared block, the first chunk starting
/// with a header unique to the layer.
fn layer_chunks(plan: &Plan, image: u32, layer: u32) -> Vec<Bytes> {
    let size = plan.workload.layer_size as usize;
    let chunk = plan.block.len();
    let mut chunks = Vec::with_capacity(size.div_ceil(chunk));
    let mut left = size;
    while left > 0 {
        let n = left.min(chunk);
        chunks.push(plan.block.slice(..n));
        left -= n;
    }
    if let Some(first) = chunks.first_mut() {
        let header = format!("image {image} layer {layer}\n");
        let mut unique = BytesMut::from(&first[..]);
        let n = header.len().min(unique.len());
        unique[..n].copy_from_slice(&header.as_bytes()[..n]);
        *first = unique.freeze();
    }
    chunks
}

/// Pushes image `i`: its layers, its config, its manifest and tag. Returns the content bytes
/// written.
async fn push(d: &dyn StorageDriver, plan: &Plan, i: u32) -> Result<(u64, Image)> {
    let repository = repository(i);
    let mut rng = Rng::new((u64::from(i) << 20) | 0xb10b);
    let mut bytes = 0u64;
    let mut layers = Vec::new();
    for layer in 0..plan.workload.layers {
        let chunks = layer_chunks(plan, i, layer);
        let (hex, size) = upload(d, &repository, &chunks, &mut rng).await?;
        bytes += size;
        layers.push(json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": format!("sha256:{hex}"),
            "size": size,
        }));
    }
    let mut config = random_bytes(u64::from(i), CONFIG_SIZE).to_vec();
    config[..16].copy_from_slice(format!("{i:016}").as_bytes());
    let (config_hex, config_size) =
        upload(d, &repository, &[Bytes::from(config)], &mut rng).await?;
    bytes += config_size;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": format!("sha256:{config_hex}"),
            "size": config_size,
        },
        "layers": layers,
    });
    let manifest = Bytes::from(manifest.to_string());
    let manifest_hex = hex(&Sha256::digest(&manifest));
    let repo = repo_path(&repository);
    d.put_content(&blob_path(&manifest_hex), manifest).await?;
    d.put_content(
        &format!("{repo}/_manifests/revisions/sha256/{manifest_hex}/link"),
        link(&manifest_hex),
    )
    .await?;
    d.put_content(
        &format!("{repo}/_manifests/tags/{TAG}/index/sha256/{manifest_hex}/link"),
        link(&manifest_hex),
    )
    .await?;
    d.put_content(
        &format!("{repo}/_manifests/tags/{TAG}/current/link"),
        link(&manifest_hex),
    )
    .await?;
    Ok((
        bytes,
        Image {
            index: i,
            repository,
        },
    ))
}

/// Uploads one blob to `repository` as the registry does: a resumable upload in two
/// requests, hashed as it goes, moved into the blob store and linked. Returns its hex digest
/// and size.
async fn upload(
    d: &dyn StorageDriver,
    repository: &str,
    chunks: &[Bytes],
    rng: &mut Rng,
) -> Result<(String, u64)> {
    let repo = repo_path(repository);
    let id = upload_id(rng);
    let dir = format!("{repo}/_uploads/{id}");
    let data = format!("{dir}/data");
    d.put_content(
        &format!("{dir}/startedat"),
        Bytes::from_static(b"2026-01-01T00:00:00Z"),
    )
    .await?;
    let mut hasher = Sha256::new();
    let half = chunks.len().div_ceil(2);
    let mut writer = d.writer(&data, false).await?;
    for chunk in &chunks[..half] {
        hasher.update(chunk);
        writer.write(chunk.clone()).await?;
    }
    let written = writer.size();
    writer.close().await?;
    let mut writer = d.writer(&data, true).await?;
    if writer.size() != written {
        return Err(unexpected(
            "resume upload",
            format!(
                "{data}: the resumed writer holds {} bytes, {written} were written",
                writer.size()
            ),
        ));
    }
    for chunk in &chunks[half..] {
        hasher.update(chunk);
        writer.write(chunk.clone()).await?;
    }
    let size = writer.size();
    writer.commit().await?;
    let hex = hex(&hasher.finalize());
    let blob = blob_path(&hex);
    match d.stat(&blob).await {
        Err(Error::PathNotFound { .. }) => {}
        Ok(_) => {
            return Err(unexpected(
                "upload",
                format!("{blob} exists before its push"),
            ));
        }
        Err(e) => return Err(e),
    }
    let info = d.stat(&data).await?;
    if info.size != size {
        return Err(unexpected(
            "stat upload",
            format!("{data}: size {}, {size} were written", info.size),
        ));
    }
    d.rename(&data, &blob).await?;
    d.delete(&dir).await?;
    d.put_content(&format!("{repo}/_layers/sha256/{hex}/link"), link(&hex))
        .await?;
    Ok((hex, size))
}

/// Pulls `image` as a client does: resolves the tag, reads the manifest, then reads each
/// blob from an offset (a resumed download). Returns the content bytes read.
async fn pull(d: &dyn StorageDriver, image: &Image, j: u32, layer_size: u64) -> Result<u64> {
    let repo = repo_path(&image.repository);
    let current = d
        .get_content(&format!("{repo}/_manifests/tags/{TAG}/current/link"))
        .await?;
    let manifest_hex = linked(&current, "tag link")?;
    let revision = d
        .get_content(&format!(
            "{repo}/_manifests/revisions/sha256/{manifest_hex}/link"
        ))
        .await?;
    linked(&revision, "revision link")?;
    let manifest_blob = blob_path(&manifest_hex);
    d.stat(&manifest_blob).await?;
    let manifest = d.get_content(&manifest_blob).await?;
    let manifest: Value = serde_json::from_slice(&manifest)
        .map_err(|e| unexpected("manifest", format!("{manifest_blob}: {e}")))?;
    let mut digests = vec![manifest["config"]["digest"].clone()];
    if let Some(layers) = manifest["layers"].as_array() {
        digests.extend(layers.iter().map(|l| l["digest"].clone()));
    }
    let mut bytes = 0u64;
    for (k, digest) in digests.iter().enumerate() {
        let digest = digest.as_str().unwrap_or_default();
        let hex = linked(digest.as_bytes(), "manifest digest")?;
        let layer_link = d
            .get_content(&format!("{repo}/_layers/sha256/{hex}/link"))
            .await?;
        linked(&layer_link, "layer link")?;
        let blob = blob_path(&hex);
        let info = d.stat(&blob).await?;
        // A resumed download: from a different offset for each pull and blob.
        let offset = if info.size > 1 {
            (u64::from(j) * 7919 + k as u64 * 104_729) % (info.size.min(layer_size) / 2).max(1)
        } else {
            0
        };
        let mut stream = d.reader(&blob, offset).await?;
        let mut read = 0u64;
        while let Some(chunk) = stream.try_next().await? {
            read += chunk.len() as u64;
        }
        if read != info.size - offset {
            return Err(unexpected(
                "read blob",
                format!(
                    "{blob}: read {read} bytes from offset {offset} of {}",
                    info.size
                ),
            ));
        }
        bytes += read;
    }
    Ok(bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_ids_look_like_uuids() {
        let mut rng = Rng::new(1);
        let id = upload_id(&mut rng);
        let parts: Vec<usize> = id.split('-').map(str::len).collect();
        assert_eq!(parts, [8, 4, 4, 4, 12], "{id}");
        assert_ne!(id, upload_id(&mut rng));
    }

    #[test]
    fn layers_are_distinct_and_sized() {
        let plan = Plan {
            workload: RegistryWorkload {
                layer_size: 2500,
                chunk_size: 1000,
                ..RegistryWorkload::default()
            },
            block: random_bytes(1, 1000),
        };
        let a = layer_chunks(&plan, 0, 0);
        let b = layer_chunks(&plan, 0, 1);
        let sizes: Vec<usize> = a.iter().map(Bytes::len).collect();
        assert_eq!(sizes, [1000, 1000, 500]);
        assert_ne!(a[0], b[0]);
        assert_eq!(a[1], b[1]);
    }

    #[test]
    fn links_round_trip() {
        let hex = "ab".repeat(32);
        assert_eq!(linked(&link(&hex), "x").ok(), Some(hex.clone()));
        assert!(linked(b"sha256:xyz", "x").is_err());
        assert_eq!(
            blob_path(&hex),
            format!("/docker/registry/v2/blobs/sha256/ab/{hex}/data")
        );
    }
}
