//! The unpacked roots of images, kept so an image is pulled and unpacked once however many steps run in it:
//! `roots/<key>/` (the root in `rootfs/`, what was unpacked in `image.json`), complete or absent. A root's key is
//! its manifest digest *and where it came from* (registry origin and repository): a digest alone is a name, not a
//! permission, and someone who learned a private image's manifest could serve it from a registry of their own.
//! Callers resolve the reference with the requester's own credentials first (`RegistryClient::resolve`).
//!
//! A root is built in `tmp/` by a task of its own that holds the digest's gate until it ends (a caller that stops
//! waiting never leaves a half-built root behind for the next), then renamed into place whole; `tmp/` is emptied
//! when the store opens, and the store is locked to one process. Roots no step holds are evicted, least recently
//! used first, once the store is over its size. Everything is the server's alone (0700): steps see a root only
//! through the sandbox's read-only mounts.

use std::{
    collections::HashMap,
    future::Future,
    os::fd::OwnedFd,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Instant, SystemTime},
};

use crate::{digest::Digest, image::Unpacked};

/// What a root's `image.json` holds; a root written by another version of the unpacker is built again.
const FORMAT: u32 = 1;

/// Unpacked images by where they came from and their manifest digest.
#[derive(Debug, Clone)]
pub struct ImageStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    max_bytes: u64,
    /// Held for the store's life: one process per store directory.
    _lock: OwnedFd,
    /// One build per root at a time; evictions take the same gate.
    building: Mutex<HashMap<Digest, Arc<tokio::sync::Mutex<()>>>>,
    /// Roots in use (leases held) and when each was last taken.
    state: Mutex<State>,
    /// Names work directories uniquely.
    builds: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    leases: HashMap<Digest, usize>,
    last_used: HashMap<Digest, Instant>,
}

/// Which root: the image's manifest digest and where it was resolved.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RootKey {
    /// The registry origin and repository the requester resolved it in, `https://ghcr.io/org/image`.
    pub source: String,
    /// The image manifest's digest.
    pub manifest: Digest,
}

impl RootKey {
    /// The directory name: the digest of source and manifest.
    fn name(&self) -> Digest {
        Digest::of(format!("{}@{}", self.source, self.manifest).as_bytes())
    }
}

/// An unpacked image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    /// The image manifest's digest.
    pub digest: Digest,
    /// The root directory.
    pub rootfs: PathBuf,
    /// What was unpacked (config, sizes).
    pub unpacked: Unpacked,
}

/// A root in the store, as `image ls` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRoot {
    /// Where it was resolved: registry origin and repository.
    pub source: String,
    /// The image manifest's digest.
    pub manifest: Digest,
    /// Bytes of its layers as stored.
    pub compressed_bytes: u64,
    /// Bytes of its files.
    pub unpacked_bytes: u64,
    /// When it was unpacked.
    pub unpacked_at: Option<SystemTime>,
    /// When a step last took it, since this process opened the store.
    pub last_used: Option<SystemTime>,
    /// How many steps hold it now.
    pub in_use: usize,
    name: Digest,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    format: u32,
    source: String,
    unpacked: Unpacked,
}

/// A root held for a step: not evicted while held.
#[derive(Debug)]
pub struct RootLease {
    store: Arc<Inner>,
    name: Digest,
    /// The root.
    pub root: Root,
    /// Whether this call built it (false: it was there).
    pub built: bool,
}

impl Drop for RootLease {
    fn drop(&mut self) {
        if let Ok(mut state) = self.store.state.lock()
            && let Some(count) = state.leases.get_mut(&self.name)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                state.leases.remove(&self.name);
            }
        }
    }
}

/// Why the store could not give a root.
#[derive(Debug, thiserror::Error)]
pub enum StoreError<E> {
    /// Building it failed.
    #[error(transparent)]
    Build(E),
    /// The build made another image than the one asked for.
    #[error("the image built is {found}, not {expected}")]
    WrongImage {
        /// Asked for.
        expected: Digest,
        /// Built.
        found: Digest,
    },
    /// The store's own files failed.
    #[error("image store: {0}")]
    Io(#[from] std::io::Error),
}

impl ImageStore {
    /// The store in `dir` (made if missing), keeping at most `max_bytes` of unused roots; what a previous process
    /// left half-built is removed. Another process holding the same store is refused.
    pub fn open(dir: &Path, max_bytes: u64) -> std::io::Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        for sub in [dir.to_path_buf(), dir.join("roots"), dir.join("tmp")] {
            std::fs::create_dir_all(&sub)?;
            std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o700))?;
        }
        let lock = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(dir.join("lock"))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive)
            .map_err(|_| std::io::Error::other(format!("{} is in use by another process", dir.display())))?;
        for entry in std::fs::read_dir(dir.join("tmp"))? {
            std::fs::remove_dir_all(entry?.path())?;
        }
        let inner = Inner {
            dir: dir.to_path_buf(),
            max_bytes,
            _lock: lock.into(),
            building: Mutex::new(HashMap::new()),
            state: Mutex::new(State::default()),
            builds: AtomicU64::new(0),
        };
        Ok(Self { inner: Arc::new(inner) })
    }

    /// The root `key` names, built by `build` (given an empty root directory and a scratch directory) when it is
    /// not here yet; concurrent calls for one root build it once, and a build runs to its end even if every
    /// caller stopped waiting.
    pub async fn ensure<F, Fut, E>(&self, key: &RootKey, build: F) -> Result<RootLease, StoreError<E>>
    where
        F: FnOnce(PathBuf, PathBuf) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Unpacked, E>> + Send + 'static,
        E: Send + 'static,
    {
        let name = key.name();
        let gate = self.gate(&name)?;
        let held = gate.lock_owned().await;
        if let Some(root) = self.read(key).await? {
            drop(held);
            return Ok(self.lease(&name, root, false)?);
        }
        let store = self.clone();
        let key = key.clone();
        let task = tokio::spawn(async move {
            let _held = held;
            store.build(&key, build).await
        });
        let root = task.await.map_err(|e| std::io::Error::other(e.to_string()))??;
        let lease = self.lease(&name, root, true)?;
        self.evict().await;
        Ok(lease)
    }

    async fn build<F, Fut, E>(&self, key: &RootKey, build: F) -> Result<Root, StoreError<E>>
    where
        F: FnOnce(PathBuf, PathBuf) -> Fut,
        Fut: Future<Output = Result<Unpacked, E>>,
    {
        let name = key.name();
        let number = self.inner.builds.fetch_add(1, Ordering::Relaxed);
        let work = self.inner.dir.join("tmp").join(format!("{}.{}.{number}", name.hex(), std::process::id()));
        tokio::fs::create_dir(&work).await?;
        let (rootfs, scratch) = (work.join("rootfs"), work.join("scratch"));
        tokio::fs::create_dir(&rootfs).await?;
        tokio::fs::create_dir(&scratch).await?;
        let built = build(rootfs, scratch.clone()).await;
        let outcome = match built {
            Ok(unpacked) if unpacked.manifest == key.manifest => Ok(unpacked),
            Ok(unpacked) => Err(StoreError::WrongImage { expected: key.manifest.clone(), found: unpacked.manifest }),
            Err(error) => Err(StoreError::Build(error)),
        };
        let unpacked = match outcome {
            Ok(unpacked) => unpacked,
            Err(error) => {
                let _ = tokio::fs::remove_dir_all(&work).await;
                return Err(error);
            }
        };
        tokio::fs::remove_dir_all(&scratch).await?;
        let stored = Stored { format: FORMAT, source: key.source.clone(), unpacked: unpacked.clone() };
        tokio::fs::write(work.join("image.json"), serde_json::to_vec(&stored).map_err(std::io::Error::other)?).await?;
        let home = self.home(&name);
        // A root of an older format may stand in the way.
        let _ = tokio::fs::remove_dir_all(&home).await;
        tokio::fs::rename(&work, &home).await?;
        Ok(Root { digest: key.manifest.clone(), rootfs: home.join("rootfs"), unpacked })
    }

    /// The roots here, by source and digest. A root that cannot be read is skipped.
    pub async fn roots(&self) -> std::io::Result<Vec<StoredRoot>> {
        let mut found = Vec::new();
        let mut entries = tokio::fs::read_dir(self.inner.dir.join("roots")).await?;
        while let Some(entry) = entries.next_entry().await? {
            let Some(name) = entry.file_name().to_str().and_then(|hex| format!("sha256:{hex}").parse().ok()) else {
                continue;
            };
            let path = entry.path().join("image.json");
            let Ok(json) = tokio::fs::read(&path).await else { continue };
            let Ok(stored) = serde_json::from_slice::<Stored>(&json) else { continue };
            let unpacked_at = tokio::fs::metadata(&path).await.and_then(|m| m.modified()).ok();
            found.push(StoredRoot {
                source: stored.source,
                manifest: stored.unpacked.manifest,
                compressed_bytes: stored.unpacked.compressed_bytes,
                unpacked_bytes: stored.unpacked.unpacked_bytes,
                unpacked_at,
                last_used: None,
                in_use: 0,
                name,
            });
        }
        if let Ok(state) = self.inner.state.lock() {
            let (now, instant) = (SystemTime::now(), Instant::now());
            for root in &mut found {
                root.in_use = state.leases.get(&root.name).copied().unwrap_or(0);
                root.last_used =
                    state.last_used.get(&root.name).and_then(|at| now.checked_sub(instant.duration_since(*at)));
            }
        }
        found.sort_by(|a, b| (&a.source, &a.manifest).cmp(&(&b.source, &b.manifest)));
        Ok(found)
    }

    /// The roots here: directory name and bytes unpacked.
    pub async fn list(&self) -> std::io::Result<Vec<(Digest, u64)>> {
        let mut found: Vec<(Digest, u64)> =
            self.roots().await?.into_iter().map(|root| (root.name, root.unpacked_bytes)).collect();
        found.sort();
        Ok(found)
    }

    /// Removes every root no step holds; the roots removed.
    pub async fn prune(&self) -> std::io::Result<Vec<StoredRoot>> {
        let roots = self.roots().await?;
        let removed = self.evict_until(0).await;
        Ok(roots.into_iter().filter(|root| removed.contains(&root.name)).collect())
    }

    fn gate(&self, name: &Digest) -> std::io::Result<Arc<tokio::sync::Mutex<()>>> {
        let mut building = self.inner.building.lock().map_err(|_| poisoned())?;
        // Gates nobody waits on are dropped, so the map follows what is in use.
        building.retain(|_, gate| Arc::strong_count(gate) > 1);
        Ok(building.entry(name.clone()).or_default().clone())
    }

    fn home(&self, name: &Digest) -> PathBuf {
        self.inner.dir.join("roots").join(name.hex())
    }

    async fn read(&self, key: &RootKey) -> std::io::Result<Option<Root>> {
        let home = self.home(&key.name());
        let json = match tokio::fs::read(home.join("image.json")).await {
            Ok(json) => json,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        match serde_json::from_slice::<Stored>(&json) {
            Ok(stored) if stored.format == FORMAT && stored.source == key.source => {
                Ok(Some(Root { digest: key.manifest.clone(), rootfs: home.join("rootfs"), unpacked: stored.unpacked }))
            }
            // Another format, or unreadable: built again.
            _ => Ok(None),
        }
    }

    fn lease(&self, name: &Digest, root: Root, built: bool) -> std::io::Result<RootLease> {
        let mut state = self.inner.state.lock().map_err(|_| poisoned())?;
        *state.leases.entry(name.clone()).or_default() += 1;
        state.last_used.insert(name.clone(), Instant::now());
        Ok(RootLease { store: self.inner.clone(), name: name.clone(), root, built })
    }

    /// Removes roots no lease holds, least recently used first, until the store fits its size.
    async fn evict(&self) {
        self.evict_until(self.inner.max_bytes).await;
    }

    /// Removes roots no lease holds, least recently used first, until the store holds at most `limit` bytes; the
    /// names removed. Each is taken under its gate, with the leases looked at again, so a root being taken is
    /// never removed under its taker.
    async fn evict_until(&self, limit: u64) -> Vec<Digest> {
        let mut removed = Vec::new();
        let Ok(roots) = self.list().await else { return removed };
        let mut total: u64 = roots.iter().map(|(_, bytes)| bytes).sum();
        if total <= limit && limit > 0 {
            return removed;
        }
        let mut candidates: Vec<(Option<Instant>, Digest, u64)> = {
            let Ok(state) = self.inner.state.lock() else { return removed };
            roots.into_iter().map(|(name, bytes)| (state.last_used.get(&name).copied(), name, bytes)).collect()
        };
        candidates.sort();
        for (_, name, bytes) in candidates {
            if total <= limit && limit > 0 {
                break;
            }
            let Ok(gate) = self.gate(&name) else { return removed };
            let Ok(_held) = gate.try_lock_owned() else { continue };
            let held = self.inner.state.lock().map(|state| state.leases.contains_key(&name)).unwrap_or(true);
            if held {
                continue;
            }
            // Out of `roots/` first, in one rename: a root is whole or gone, never half-removed in place.
            let doomed = self.inner.dir.join("tmp").join(format!("evicted.{}", name.hex()));
            if tokio::fs::rename(self.home(&name), &doomed).await.is_ok() {
                total = total.saturating_sub(bytes);
                if let Ok(mut state) = self.inner.state.lock() {
                    state.last_used.remove(&name);
                }
                let _ = tokio::fs::remove_dir_all(&doomed).await;
                removed.push(name);
            }
        }
        removed
    }
}

fn poisoned() -> std::io::Error {
    std::io::Error::other("the image store's state is poisoned")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::{
        image::unpack_image,
        layout::OciLayout,
        manifest::Descriptor,
        testing::{Entry, LayoutBuilder},
        unpack::Limits,
    };

    fn image(builder: &LayoutBuilder, content: &[u8]) -> Descriptor {
        let layer = builder.layer(&[Entry::File { path: "data.txt", content, mode: 0o644 }]);
        builder.image("linux/amd64", &[layer], serde_json::json!({"Cmd": ["cat", "/data.txt"]}))
    }

    fn key(top: &Descriptor) -> RootKey {
        RootKey { source: "http://127.0.0.1:5000/team/image".into(), manifest: top.digest.clone() }
    }

    /// A build that unpacks `top` from the layout at `layout`.
    fn from_layout(
        layout: &Path,
        top: &Descriptor,
    ) -> impl FnOnce(
        PathBuf,
        PathBuf,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<Unpacked, std::io::Error>> + Send>>
    + Send
    + 'static {
        let (layout, top) = (layout.to_path_buf(), top.clone());
        move |rootfs, _scratch| {
            Box::pin(async move {
                tokio::task::spawn_blocking(move || {
                    let layout = OciLayout::open(&layout)?;
                    unpack_image(&rootfs, &layout, &top, &Limits::default()).map_err(std::io::Error::other)
                })
                .await
                .unwrap()
            })
        }
    }

    #[tokio::test]
    async fn an_image_is_built_once_however_many_ask_and_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let builder = LayoutBuilder::new(&dir.path().join("layout"));
        let top = image(&builder, b"hello");
        let store = ImageStore::open(&dir.path().join("store"), 1 << 30).unwrap();
        assert!(ImageStore::open(&dir.path().join("store"), 1 << 30).is_err(), "one process per store");
        let builds = Arc::new(AtomicUsize::new(0));
        let ask = || {
            let (store, builds, build) = (store.clone(), builds.clone(), from_layout(builder.path(), &top));
            let key = key(&top);
            async move {
                store
                    .ensure(&key, move |rootfs, scratch| {
                        builds.fetch_add(1, Ordering::SeqCst);
                        build(rootfs, scratch)
                    })
                    .await
            }
        };
        let (a, b) = tokio::join!(ask(), ask());
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(builds.load(Ordering::SeqCst), 1, "one build for two concurrent asks");
        assert_ne!(a.built, b.built, "one built it, the other found it");
        assert_eq!(std::fs::read_to_string(a.root.rootfs.join("data.txt")).unwrap(), "hello");
        drop((a, b, store));
        let reopened = ImageStore::open(&dir.path().join("store"), 1 << 30).unwrap();
        assert_eq!(reopened.list().await.unwrap().len(), 1);
        let again = reopened
            .ensure(&key(&top), |_, _| async { Err::<Unpacked, _>(std::io::Error::other("not built again")) })
            .await;
        assert!(!again.unwrap().built);
        // The same digest resolved somewhere else is another root: a digest alone is not a permission.
        let elsewhere = RootKey { source: "https://evil.example/x".into(), manifest: top.digest.clone() };
        let refused =
            reopened.ensure(&elsewhere, |_, _| async { Err::<Unpacked, _>(std::io::Error::other("not cached")) }).await;
        assert!(matches!(refused, Err(StoreError::Build(_))), "not served from another source's root");
    }

    #[tokio::test]
    async fn a_failed_or_interrupted_build_leaves_nothing_that_looks_finished() {
        let dir = tempfile::tempdir().unwrap();
        let builder = LayoutBuilder::new(&dir.path().join("layout"));
        let top = image(&builder, b"x");
        let store = ImageStore::open(&dir.path().join("store"), 1 << 30).unwrap();
        let failed = store
            .ensure(&key(&top), |rootfs, _| async move {
                std::fs::write(rootfs.join("half"), "written").unwrap();
                Err::<Unpacked, _>(std::io::Error::other("the registry went away"))
            })
            .await;
        assert!(failed.is_err());
        assert!(store.list().await.unwrap().is_empty());
        // A build that produced another image than the digest asked for is not kept under it.
        let other = image(&builder, b"other");
        let wrong = store.ensure(&key(&top), from_layout(builder.path(), &other)).await;
        assert!(matches!(wrong, Err(StoreError::WrongImage { .. })));
        assert!(store.list().await.unwrap().is_empty());
        // What a killed process left in tmp/ is gone when the store opens again.
        drop(store);
        std::fs::create_dir_all(dir.path().join("store/tmp/leftover/rootfs")).unwrap();
        ImageStore::open(&dir.path().join("store"), 1 << 30).unwrap();
        assert!(std::fs::read_dir(dir.path().join("store/tmp")).unwrap().next().is_none());
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.path().join("store/roots")).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o700, "the roots are the server's alone");
    }

    #[tokio::test]
    async fn roots_no_step_holds_are_evicted_least_recently_used_first() {
        let dir = tempfile::tempdir().unwrap();
        let builder = LayoutBuilder::new(&dir.path().join("layout"));
        let tops: Vec<Descriptor> = (0..3).map(|i| image(&builder, format!("image {i}").as_bytes())).collect();
        // Room for about one root (each unpacks to a few KiB of tar).
        let store = ImageStore::open(&dir.path().join("store"), 4096).unwrap();
        let held = store.ensure(&key(&tops[0]), from_layout(builder.path(), &tops[0])).await.unwrap();
        for top in &tops[1..] {
            drop(store.ensure(&key(top), from_layout(builder.path(), top)).await.unwrap());
        }
        let kept: Vec<Digest> = store.list().await.unwrap().into_iter().map(|(name, _)| name).collect();
        assert!(kept.contains(&key(&tops[0]).name()), "a held root is never evicted");
        assert!(!kept.contains(&key(&tops[1]).name()), "the least recently used unheld root went");
        assert!(held.root.rootfs.join("data.txt").exists());
    }

    #[tokio::test]
    async fn pruning_removes_every_root_no_step_holds_and_says_which() {
        let dir = tempfile::tempdir().unwrap();
        let builder = LayoutBuilder::new(&dir.path().join("layout"));
        let tops: Vec<Descriptor> = (0..3).map(|i| image(&builder, format!("image {i}").as_bytes())).collect();
        let store = ImageStore::open(&dir.path().join("store"), 1 << 30).unwrap();
        let held = store.ensure(&key(&tops[0]), from_layout(builder.path(), &tops[0])).await.unwrap();
        for top in &tops[1..] {
            drop(store.ensure(&key(top), from_layout(builder.path(), top)).await.unwrap());
        }
        let roots = store.roots().await.unwrap();
        assert_eq!(roots.len(), 3);
        let first = roots.iter().find(|r| r.manifest == tops[0].digest).unwrap();
        assert_eq!((first.in_use, first.source.as_str()), (1, "http://127.0.0.1:5000/team/image"));
        assert!(first.last_used.is_some() && first.unpacked_at.is_some() && first.unpacked_bytes > 0);
        let mut removed: Vec<Digest> = store.prune().await.unwrap().into_iter().map(|r| r.manifest).collect();
        removed.sort();
        let mut expected = vec![tops[1].digest.clone(), tops[2].digest.clone()];
        expected.sort();
        assert_eq!(removed, expected, "the unheld roots, and only they");
        let left: Vec<Digest> = store.roots().await.unwrap().into_iter().map(|r| r.manifest).collect();
        assert_eq!(left, vec![tops[0].digest.clone()]);
        drop(held);
        assert_eq!(store.prune().await.unwrap().len(), 1, "once no step holds it, it goes too");
        assert!(store.roots().await.unwrap().is_empty());
    }
}
