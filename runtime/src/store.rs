//! The unpacked roots of images, kept by manifest digest so an image is pulled and unpacked once however many
//! steps run in it: `roots/<hex>/` (the root in `rootfs/`, what was unpacked in `image.json`), complete or absent.
//! A root is built in `tmp/` and renamed into place whole, one build per digest at a time; `tmp/` is emptied when
//! the store opens, so a build a crash cut short leaves nothing that looks finished. Roots no step holds are
//! evicted, least recently used first, once the store is over its size.
//!
//! A digest is a name, not a permission: callers confirm, with the requester's own credentials, that the image
//! they name is that digest before they take its root from here.

use std::{
    collections::HashMap,
    future::Future,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Instant,
};

use crate::{digest::Digest, image::Unpacked};

/// The roots directory's and the store's own mode: others may traverse (a task's user reaches its root), not list.
const TRAVERSE_ONLY: u32 = 0o711;

/// Unpacked images by manifest digest.
#[derive(Debug, Clone)]
pub struct ImageStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    max_bytes: u64,
    /// One build per digest at a time.
    building: Mutex<HashMap<Digest, Arc<tokio::sync::Mutex<()>>>>,
    /// Roots in use (leases held) and when each was last taken.
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    leases: HashMap<Digest, usize>,
    last_used: HashMap<Digest, Instant>,
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

/// A root held for a step: not evicted while held.
#[derive(Debug)]
pub struct RootLease {
    store: Arc<Inner>,
    /// The root.
    pub root: Root,
    /// Whether this call built it (false: it was there).
    pub built: bool,
}

impl Drop for RootLease {
    fn drop(&mut self) {
        if let Ok(mut state) = self.store.state.lock()
            && let Some(count) = state.leases.get_mut(&self.root.digest)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                state.leases.remove(&self.root.digest);
            }
        }
    }
}

impl ImageStore {
    /// The store in `dir` (made if missing), keeping at most `max_bytes` of unused roots; what a previous process
    /// left half-built is removed.
    pub fn open(dir: &Path, max_bytes: u64) -> std::io::Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        for sub in [dir.to_path_buf(), dir.join("roots")] {
            std::fs::create_dir_all(&sub)?;
            std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(TRAVERSE_ONLY))?;
        }
        let tmp = dir.join("tmp");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)?;
        }
        std::fs::create_dir_all(&tmp)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o700))?;
        let inner = Inner {
            dir: dir.to_path_buf(),
            max_bytes,
            building: Mutex::new(HashMap::new()),
            state: Mutex::new(State::default()),
        };
        Ok(Self { inner: Arc::new(inner) })
    }

    /// The root of `digest`, built by `build` (given an empty root directory and a scratch directory) when it is
    /// not here yet; concurrent calls for one digest build it once.
    pub async fn ensure<F, Fut, E>(&self, digest: &Digest, build: F) -> Result<RootLease, E>
    where
        F: FnOnce(PathBuf, PathBuf) -> Fut,
        Fut: Future<Output = Result<Unpacked, E>>,
        E: From<std::io::Error>,
    {
        let gate = {
            let mut building = self.inner.building.lock().map_err(|_| poisoned())?;
            building.entry(digest.clone()).or_default().clone()
        };
        let _building = gate.lock().await;
        if let Some(root) = self.read(digest).await? {
            return Ok(self.lease(root, false)?);
        }
        let work = self.inner.dir.join("tmp").join(format!("{}.{}", digest.hex(), std::process::id()));
        let _ = tokio::fs::remove_dir_all(&work).await;
        let (rootfs, scratch) = (work.join("rootfs"), work.join("scratch"));
        tokio::fs::create_dir_all(&rootfs).await?;
        tokio::fs::create_dir_all(&scratch).await?;
        let built = build(rootfs, scratch.clone()).await;
        let unpacked = match built {
            Ok(unpacked) if unpacked.manifest == *digest => unpacked,
            Ok(_) => {
                let _ = tokio::fs::remove_dir_all(&work).await;
                return Err(std::io::Error::other("the image built is not the digest asked for").into());
            }
            Err(error) => {
                let _ = tokio::fs::remove_dir_all(&work).await;
                return Err(error);
            }
        };
        tokio::fs::remove_dir_all(&scratch).await?;
        let json = serde_json::to_vec(&unpacked).map_err(std::io::Error::other)?;
        tokio::fs::write(work.join("image.json"), json).await?;
        let home = self.home(digest);
        tokio::fs::rename(&work, &home).await?;
        let root = Root { digest: digest.clone(), rootfs: home.join("rootfs"), unpacked };
        let lease = self.lease(root, true)?;
        self.evict().await;
        Ok(lease)
    }

    /// The roots here: digest and bytes unpacked.
    pub async fn list(&self) -> std::io::Result<Vec<(Digest, u64)>> {
        let mut found = Vec::new();
        let mut entries = tokio::fs::read_dir(self.inner.dir.join("roots")).await?;
        while let Some(entry) = entries.next_entry().await? {
            let Some(digest) = entry.file_name().to_str().and_then(|hex| format!("sha256:{hex}").parse().ok()) else {
                continue;
            };
            if let Some(root) = self.read(&digest).await? {
                found.push((digest, root.unpacked.unpacked_bytes));
            }
        }
        found.sort();
        Ok(found)
    }

    fn home(&self, digest: &Digest) -> PathBuf {
        self.inner.dir.join("roots").join(digest.hex())
    }

    async fn read(&self, digest: &Digest) -> std::io::Result<Option<Root>> {
        let home = self.home(digest);
        match tokio::fs::read(home.join("image.json")).await {
            Ok(json) => {
                let unpacked: Unpacked = serde_json::from_slice(&json).map_err(std::io::Error::other)?;
                Ok(Some(Root { digest: digest.clone(), rootfs: home.join("rootfs"), unpacked }))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn lease(&self, root: Root, built: bool) -> std::io::Result<RootLease> {
        let mut state = self.inner.state.lock().map_err(|_| poisoned())?;
        *state.leases.entry(root.digest.clone()).or_default() += 1;
        state.last_used.insert(root.digest.clone(), Instant::now());
        Ok(RootLease { store: self.inner.clone(), root, built })
    }

    /// Removes roots no lease holds, least recently used first, until the store fits its size.
    async fn evict(&self) {
        let Ok(roots) = self.list().await else { return };
        let mut total: u64 = roots.iter().map(|(_, bytes)| bytes).sum();
        if total <= self.inner.max_bytes {
            return;
        }
        let mut candidates: Vec<(Option<Instant>, Digest, u64)> = {
            let Ok(state) = self.inner.state.lock() else { return };
            roots
                .into_iter()
                .filter(|(digest, _)| !state.leases.contains_key(digest))
                .map(|(digest, bytes)| (state.last_used.get(&digest).copied(), digest, bytes))
                .collect()
        };
        candidates.sort();
        for (_, digest, bytes) in candidates {
            if total <= self.inner.max_bytes {
                break;
            }
            // Out of `roots/` first, in one rename: a root is whole or gone, never half-removed in place.
            let doomed = self.inner.dir.join("tmp").join(format!("evicted.{}", digest.hex()));
            if tokio::fs::rename(self.home(&digest), &doomed).await.is_ok() {
                let _ = tokio::fs::remove_dir_all(&doomed).await;
                total = total.saturating_sub(bytes);
                if let Ok(mut state) = self.inner.state.lock() {
                    state.last_used.remove(&digest);
                }
            }
        }
    }
}

fn poisoned() -> std::io::Error {
    std::io::Error::other("the image store's state is poisoned")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::atomic::{AtomicUsize, Ordering};

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

    async fn build(layout: &Path, top: &Descriptor, rootfs: PathBuf) -> Result<Unpacked, std::io::Error> {
        let (layout, top) = (layout.to_path_buf(), top.clone());
        tokio::task::spawn_blocking(move || {
            let layout = OciLayout::open(&layout)?;
            unpack_image(&rootfs, &layout, &top, &Limits::default()).map_err(std::io::Error::other)
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn an_image_is_built_once_however_many_ask_and_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let builder = LayoutBuilder::new(&dir.path().join("layout"));
        let top = image(&builder, b"hello");
        let store = ImageStore::open(&dir.path().join("store"), 1 << 30).unwrap();
        let builds = Arc::new(AtomicUsize::new(0));
        let ask = || {
            let (store, builds, layout, top) =
                (store.clone(), builds.clone(), builder.path().to_path_buf(), top.clone());
            async move {
                let digest = top.digest.clone();
                store
                    .ensure(&digest, |rootfs, _scratch| {
                        builds.fetch_add(1, Ordering::SeqCst);
                        async move { build(&layout, &top, rootfs).await }
                    })
                    .await
            }
        };
        let (a, b) = tokio::join!(ask(), ask());
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(builds.load(Ordering::SeqCst), 1, "one build for two concurrent asks");
        assert_ne!(a.built, b.built, "one built it, the other found it");
        assert_eq!(std::fs::read_to_string(a.root.rootfs.join("data.txt")).unwrap(), "hello");
        drop((a, b));
        let reopened = ImageStore::open(&dir.path().join("store"), 1 << 30).unwrap();
        assert_eq!(reopened.list().await.unwrap().len(), 1);
        let again = reopened.ensure(&top.digest, |_, _| async { Err(std::io::Error::other("not built again")) }).await;
        assert!(!again.unwrap().built);
    }

    #[tokio::test]
    async fn a_failed_or_interrupted_build_leaves_nothing_that_looks_finished() {
        let dir = tempfile::tempdir().unwrap();
        let builder = LayoutBuilder::new(&dir.path().join("layout"));
        let top = image(&builder, b"x");
        let store = ImageStore::open(&dir.path().join("store"), 1 << 30).unwrap();
        let failed = store
            .ensure(&top.digest, |rootfs, _| async move {
                std::fs::write(rootfs.join("half"), "written").unwrap();
                Err::<Unpacked, _>(std::io::Error::other("the registry went away"))
            })
            .await;
        assert!(failed.is_err());
        assert!(store.list().await.unwrap().is_empty());
        // What a killed process left in tmp/ is gone when the store opens again.
        std::fs::create_dir_all(dir.path().join("store/tmp/leftover/rootfs")).unwrap();
        ImageStore::open(&dir.path().join("store"), 1 << 30).unwrap();
        assert!(std::fs::read_dir(dir.path().join("store/tmp")).unwrap().next().is_none());
        // A build that produced another image than the digest asked for is not kept under it.
        let other = image(&builder, b"other");
        let layout = builder.path().to_path_buf();
        let wrong = store.ensure(&top.digest, |rootfs, _| async move { build(&layout, &other, rootfs).await }).await;
        assert!(wrong.is_err());
        assert!(store.list().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn roots_no_step_holds_are_evicted_least_recently_used_first() {
        let dir = tempfile::tempdir().unwrap();
        let builder = LayoutBuilder::new(&dir.path().join("layout"));
        let tops: Vec<Descriptor> = (0..3).map(|i| image(&builder, format!("image {i}").as_bytes())).collect();
        // Room for about one root (each unpacks to a few KiB of tar).
        let store = ImageStore::open(&dir.path().join("store"), 4096).unwrap();
        let layout = builder.path().to_path_buf();
        let held = {
            let (layout, top) = (layout.clone(), tops[0].clone());
            store.ensure(&tops[0].digest, |rootfs, _| async move { build(&layout, &top, rootfs).await }).await.unwrap()
        };
        for top in &tops[1..] {
            let (layout, digest, top) = (layout.clone(), top.digest.clone(), top.clone());
            let lease =
                store.ensure(&digest, |rootfs, _| async move { build(&layout, &top, rootfs).await }).await.unwrap();
            drop(lease);
        }
        let kept: Vec<Digest> = store.list().await.unwrap().into_iter().map(|(d, _)| d).collect();
        assert!(kept.contains(&tops[0].digest), "a held root is never evicted");
        assert!(!kept.contains(&tops[1].digest), "the least recently used unheld root went");
        assert!(held.root.rootfs.join("data.txt").exists());
    }
}
