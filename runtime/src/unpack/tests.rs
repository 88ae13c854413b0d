//! Layers built here byte by byte, well-formed and hostile, unpacked as the server would (as root in CI).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::Write,
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
};

use super::*;

/// One tar entry.
enum Item<'a> {
    File(&'a str, &'a [u8], u32),
    Dir(&'a str, u32),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
    Device(&'a str),
    Fifo(&'a str),
    /// A PAX extension header with this body, for the entry after it.
    Pax(&'a [u8]),
    /// A file owned by a non-root user.
    Owned(&'a str, &'a [u8], u32, u64),
}

/// A tar stream of `items`, names written into the header as they are (no check of ours or the builder's).
fn tar_of(items: &[Item<'_>]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for item in items {
        let mut header = tar::Header::new_gnu();
        let (name, data, kind, mode, link, uid): (&str, &[u8], tar::EntryType, u32, Option<&str>, u64) = match item {
            Item::File(name, data, mode) => (name, data, tar::EntryType::Regular, *mode, None, 0),
            Item::Owned(name, data, mode, uid) => (name, data, tar::EntryType::Regular, *mode, None, *uid),
            Item::Dir(name, mode) => (name, b"", tar::EntryType::Directory, *mode, None, 0),
            Item::Symlink(name, target) => (name, b"", tar::EntryType::Symlink, 0o777, Some(target), 0),
            Item::Hardlink(name, target) => (name, b"", tar::EntryType::Link, 0o644, Some(target), 0),
            Item::Device(name) => (name, b"", tar::EntryType::Char, 0o666, None, 0),
            Item::Fifo(name) => (name, b"", tar::EntryType::Fifo, 0o644, None, 0),
            Item::Pax(body) => ("PaxHeader", body, tar::EntryType::XHeader, 0o644, None, 0),
        };
        let gnu = header.as_gnu_mut().unwrap();
        gnu.name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(link) = link {
            gnu.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_size(data.len() as u64);
        header.set_uid(uid);
        header.set_mtime(1_700_000_000);
        header.set_cksum();
        builder.append(&header, data).unwrap();
    }
    builder.into_inner().unwrap()
}

/// One PAX record, `<length> <key>=<value>\n`, its length counting itself.
fn pax_record(key: &str, value: &str) -> Vec<u8> {
    let rest = format!(" {key}={value}\n");
    let mut length = rest.len() + 1;
    while length.to_string().len() + rest.len() != length {
        length += 1;
    }
    format!("{length}{rest}").into_bytes()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// The gzip blob of `tar` and what its descriptor and the config say of it.
fn blob(tar: &[u8]) -> (Vec<u8>, Expected) {
    let blob = gzip(tar);
    let expected = Expected {
        blob: Digest::of(&blob),
        size: blob.len() as u64,
        diff_id: Digest::of(tar),
        compression: Compression::Gzip,
    };
    (blob, expected)
}

/// A root to unpack into, with a directory beside it standing for everything outside.
struct Scene {
    _dir: tempfile::TempDir,
    root: PathBuf,
    outside: PathBuf,
}

impl Scene {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let outside = dir.path().join("outside");
        std::fs::create_dir(&root).unwrap();
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("secret"), "host secret").unwrap();
        std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o700)).unwrap();
        Self { _dir: dir, root, outside }
    }

    fn unpack(&self, items: &[Item<'_>]) -> Result<(), UnpackError> {
        let (bytes, expected) = blob(&tar_of(items));
        unpack_layer(&self.root, &bytes[..], &expected, &Limits::default(), &mut Used::default())
    }

    fn at(&self, path: &str) -> PathBuf {
        self.root.join(path)
    }

    /// The outside directory is as it was.
    fn outside_untouched(&self) {
        let names: Vec<_> = std::fs::read_dir(&self.outside).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["secret"], "nothing was written outside the root");
        assert_eq!(std::fs::read_to_string(self.outside.join("secret")).unwrap(), "host secret");
        let mode = std::fs::metadata(&self.outside).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o700, "the outside directory's mode is unchanged");
        let links = std::fs::metadata(self.outside.join("secret")).unwrap().nlink();
        assert_eq!(links, 1, "nothing in the root is a hard link to a host file");
        let beside: Vec<_> =
            std::fs::read_dir(self.root.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(beside.len(), 2, "nothing was made beside the root: {beside:?}");
    }
}

fn refused(result: Result<(), UnpackError>) -> String {
    match result {
        Err(error @ UnpackError::Refused { .. }) => error.to_string(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn layers_stack_as_the_image_spec_says() {
    let scene = Scene::new();
    scene
        .unpack(&[
            Item::Dir("./", 0o755),
            Item::Dir("./usr/", 0o755),
            Item::Dir("./usr/lib/", 0o755),
            Item::File("./usr/lib/libc.so", b"libc", 0o644),
            Item::Symlink("./lib", "usr/lib"),
            Item::File("./etc/os-release", b"ID=test", 0o644),
            Item::Hardlink("./etc/os-release.bak", "./etc/os-release"),
            Item::Dir("./opt/tools/", 0o755),
            Item::File("./opt/tools/old", b"old", 0o755),
            Item::File("./gone", b"x", 0o644),
            Item::File("./becomes-dir", b"x", 0o644),
            Item::File("./bin/suid", b"#!/bin/sh", 0o4755),
            Item::Owned("./home/app/private", b"p", 0o600, 1000),
        ])
        .expect("the first layer");
    // The second layer: a whiteout, an opaque directory with something new in it, a file turned directory, and a
    // write through the first layer's relative link.
    scene
        .unpack(&[
            Item::File("./.wh.gone", b"", 0o644),
            Item::File("./opt/tools/.wh..wh..opq", b"", 0o644),
            Item::File("./opt/tools/new", b"new", 0o755),
            Item::Dir("./becomes-dir/", 0o755),
            Item::File("./lib/added.so", b"added", 0o644),
        ])
        .expect("the second layer");
    assert_eq!(std::fs::read_to_string(scene.at("usr/lib/added.so")).unwrap(), "added", "written through lib");
    assert!(!scene.at("gone").exists(), "the whiteout removed it");
    assert!(!scene.at(".wh.gone").exists(), "a whiteout is never itself created");
    assert!(!scene.at("opt/tools/old").exists(), "the opaque directory hides what lower layers left");
    assert_eq!(std::fs::read_to_string(scene.at("opt/tools/new")).unwrap(), "new");
    assert!(scene.at("becomes-dir").is_dir());
    let bak = std::fs::metadata(scene.at("etc/os-release.bak")).unwrap();
    assert_eq!(bak.ino(), std::fs::metadata(scene.at("etc/os-release")).unwrap().ino(), "a hard link");
    assert_eq!(bak.mtime(), 1_700_000_000, "modification times are kept");
    let suid = std::fs::metadata(scene.at("bin/suid")).unwrap().permissions().mode() & 0o7777;
    assert_eq!(suid, 0o755, "set-uid is dropped");
    let private = std::fs::metadata(scene.at("home/app/private")).unwrap().permissions().mode() & 0o777;
    assert_eq!(private, 0o644, "what the image's own user could read stays readable");
    scene.outside_untouched();
}

#[test]
fn paths_that_climb_out_or_name_devices_are_refused() {
    for (items, rule) in [
        (vec![Item::File("../escape", b"x", 0o644)], "climbs out"),
        (vec![Item::File("usr/../../escape", b"x", 0o644)], "climbs out"),
        (vec![Item::File("/etc/passwd", b"x", 0o644)], "is absolute"),
        (vec![Item::Device("dev/sda")], "device node"),
        (vec![Item::Hardlink("shadow", "../outside/secret")], "climbs out"),
        (vec![Item::Hardlink("shadow", "/etc/shadow")], "is absolute"),
        (vec![Item::Symlink("dir", "/"), Item::Hardlink("shadow", "dir")], "not a regular file"),
        (vec![Item::File("../.wh.secret", b"", 0o644)], "climbs out"),
    ] {
        let scene = Scene::new();
        let message = refused(scene.unpack(&items));
        assert!(message.contains(rule), "{message} (expected {rule:?})");
        scene.outside_untouched();
    }
}

#[test]
fn links_in_the_image_are_followed_only_inside_the_root() {
    let scene = Scene::new();
    let outside = scene.outside.display().to_string();
    let climbing = "../../../../../../../../..".to_owned() + &outside;
    let inside_twin = outside.trim_start_matches('/').to_owned() + "/";
    scene
        .unpack(&[
            // Where the climbing link lands once `..` stops at the root: the outside directory's twin in the image.
            Item::Dir(&inside_twin, 0o755),
            // A link to the host's root, then a file through it: it lands in the image's own /etc.
            Item::Symlink("evil", "/"),
            Item::File("evil/etc/passwd", b"root::0:0::/:/bin/sh", 0o644),
            // A link that climbs, then a file through it: `..` stops at the root.
            Item::Symlink("up", &climbing),
            Item::File("up/planted", b"x", 0o644),
            // An absolute link to the outside directory, then a whiteout through it.
            Item::Symlink("host", &outside),
            Item::File("host/.wh.secret", b"", 0o644),
            // A link at a name, then a directory entry at that name: the link is replaced, not chmodded through.
            Item::Symlink("chmod-me", &outside),
            Item::Dir("chmod-me", 0o777),
            // A link at a name, then a file at that name: the file replaces the link.
            Item::Symlink("overwrite-me", &(outside.clone() + "/secret")),
            Item::File("overwrite-me", b"mine", 0o644),
        ])
        .expect("links resolve inside the root");
    assert_eq!(std::fs::read_to_string(scene.at("etc/passwd")).unwrap(), "root::0:0::/:/bin/sh");
    assert!(scene.root.join(outside.trim_start_matches('/')).join("planted").exists(), "`..` stopped at the root");
    assert!(scene.at("chmod-me").is_dir() && !scene.at("chmod-me").is_symlink());
    assert_eq!(std::fs::read_to_string(scene.at("overwrite-me")).unwrap(), "mine");
    scene.outside_untouched();
}

#[test]
fn bounds_hold_before_bytes_are_written_and_digests_must_match() {
    // A file that declares more than the layer may hold is refused before it is written.
    let scene = Scene::new();
    let big = vec![0u8; 4096];
    let (bytes, expected) = blob(&tar_of(&[Item::File("big", &big, 0o644)]));
    let small = Limits { layer_bytes: 1024, ..Limits::default() };
    let error = unpack_layer(&scene.root, &bytes[..], &expected, &small, &mut Used::default()).unwrap_err();
    assert!(matches!(error, UnpackError::TooLarge(_)), "{error}");
    assert!(!scene.at("big").exists(), "nothing of it was written");

    // A gzip bomb: 16 MiB of zeros in a few KiB stops at the bound, however it is compressed.
    let zeros = vec![0u8; 16 << 20];
    let (bytes, expected) = blob(&tar_of(&[Item::File("zeros", &zeros, 0o644)]));
    assert!(bytes.len() < 100 << 10, "the bomb is small: {} bytes", bytes.len());
    let bounded = Limits { layer_bytes: 1 << 20, ..Limits::default() };
    let error = unpack_layer(&scene.root, &bytes[..], &expected, &bounded, &mut Used::default()).unwrap_err();
    assert!(matches!(error, UnpackError::TooLarge(_)), "{error}");

    // The image's total across layers, and its entry count.
    let (bytes, expected) = blob(&tar_of(&[Item::File("a", b"12345678", 0o644), Item::File("b", b"x", 0o644)]));
    let mut used = Used { bytes: (1 << 20) - 10, entries: 0 };
    let image = Limits { image_bytes: 1 << 20, ..Limits::default() };
    assert!(matches!(
        unpack_layer(&scene.root, &bytes[..], &expected, &image, &mut used),
        Err(UnpackError::TooLarge(_))
    ));
    let few = Limits { entries: 1, ..Limits::default() };
    let error = unpack_layer(&scene.root, &bytes[..], &expected, &few, &mut Used::default()).unwrap_err();
    assert!(error.to_string().contains("entries"), "{error}");

    // A blob or a diff_id other than the image says is refused.
    let (bytes, expected) = blob(&tar_of(&[Item::File("f", b"content", 0o644)]));
    let wrong_blob = Expected { blob: Digest::of(b"other"), ..expected.clone() };
    let error = unpack_layer(&scene.root, &bytes[..], &wrong_blob, &Limits::default(), &mut Used::default());
    assert!(matches!(error, Err(UnpackError::DigestMismatch { what: "blob digest", .. })), "{error:?}");
    let wrong_diff = Expected { diff_id: Digest::of(b"other"), ..expected.clone() };
    let error = unpack_layer(&scene.root, &bytes[..], &wrong_diff, &Limits::default(), &mut Used::default());
    assert!(matches!(error, Err(UnpackError::DigestMismatch { what: "diff_id", .. })), "{error:?}");
    let longer = [bytes.clone(), vec![0; 10]].concat();
    let error = unpack_layer(&scene.root, &longer[..], &expected, &Limits::default(), &mut Used::default());
    assert!(error.is_err(), "a blob longer than its descriptor says is refused");
    let mut used = Used::default();
    unpack_layer(&scene.root, &bytes[..], &expected, &Limits::default(), &mut used).expect("the right digests");
    assert_eq!(used.entries, 1);
    scene.outside_untouched();
}

#[test]
fn a_layer_that_is_not_a_tar_stream_is_corrupt() {
    let scene = Scene::new();
    let not_gzip = b"this is not gzip".to_vec();
    let expected = Expected {
        blob: Digest::of(&not_gzip),
        size: not_gzip.len() as u64,
        diff_id: Digest::of(b""),
        compression: Compression::Gzip,
    };
    let error = unpack_layer(&scene.root, &not_gzip[..], &expected, &Limits::default(), &mut Used::default());
    assert!(matches!(error, Err(UnpackError::Corrupt(_))), "{error:?}");
    assert!(Path::new(&scene.root).read_dir().unwrap().next().is_none());
}

#[test]
fn whiteouts_remove_only_what_lower_layers_left() {
    let scene = Scene::new();
    scene
        .unpack(&[
            Item::File("d/old", b"old", 0o644),
            Item::File("e/sub/old", b"old", 0o644),
            Item::File("t/old", b"old", 0o644),
        ])
        .expect("the lower layer");
    scene
        .unpack(&[
            // This layer writes into d, then whites d out: its own file stays, the lower one goes.
            Item::File("d/new", b"new", 0o644),
            Item::File(".wh.d", b"", 0o644),
            // An explicit directory in an opaque one: what lower layers left inside it goes too.
            Item::Dir("e/sub/", 0o755),
            Item::File("e/.wh..wh..opq", b"", 0o644),
            // The opaque marker after this layer's own file.
            Item::File("t/new", b"new", 0o644),
            Item::File("t/.wh..wh..opq", b"", 0o644),
            Item::File("t/.wh..wh..opq", b"", 0o644),
        ])
        .expect("the upper layer");
    assert!(scene.at("d/new").exists() && !scene.at("d/old").exists());
    assert!(scene.at("e/sub").is_dir() && !scene.at("e/sub/old").exists());
    assert!(scene.at("t/new").exists() && !scene.at("t/old").exists());
    scene.outside_untouched();
}

#[test]
fn hard_links_modes_and_odd_entries_are_handled_as_the_rules_say() {
    let scene = Scene::new();
    let outside = scene.outside.display().to_string();
    // A hard link through a link to the host is a link to nothing in the image.
    let message = refused(scene.unpack(&[Item::Symlink("h", &outside), Item::Hardlink("s", "h/secret")]));
    assert!(message.contains("links to nothing"), "{message}");
    for items in [
        vec![Item::Dir("d/", 0o755), Item::Hardlink("l", "d")],
        vec![Item::Fifo("f"), Item::Hardlink("l", "f")],
        vec![Item::File("f", b"x", 0o644), Item::Symlink("sl", "f"), Item::Hardlink("l", "sl")],
    ] {
        let message = refused(Scene::new().unpack(&items));
        assert!(message.contains("not a regular file"), "{message}");
    }
    // An opaque marker through a link to the host removes nothing there.
    scene.unpack(&[Item::Symlink("o", &outside), Item::File("o/.wh..wh..opq", b"", 0o644)]).expect("harmless");
    // A file written over a hard link replaces the name, not the other link's content or mode.
    scene
        .unpack(&[Item::File("a", b"A", 0o644), Item::Hardlink("b", "a"), Item::File("b", b"B", 0o4777)])
        .expect("links then a file");
    assert_eq!(std::fs::read_to_string(scene.at("a")).unwrap(), "A");
    assert_eq!(std::fs::metadata(scene.at("a")).unwrap().permissions().mode() & 0o7777, 0o644);
    assert_eq!(std::fs::metadata(scene.at("b")).unwrap().permissions().mode() & 0o7777, 0o777);
    // Set-gid goes from directories too; sticky stays.
    scene.unpack(&[Item::Dir("s/", 0o3777), Item::Dir("g/", 0o2755)]).expect("directories");
    assert_eq!(std::fs::metadata(scene.at("s")).unwrap().permissions().mode() & 0o7777, 0o1777);
    assert_eq!(std::fs::metadata(scene.at("g")).unwrap().permissions().mode() & 0o7777, 0o755);
    // Names no image holds.
    assert!(refused(scene.unpack(&[Item::File(".wh.x/y", b"", 0o644)])).contains("whiteout"));
    assert!(refused(scene.unpack(&[Item::File("file/", b"", 0o644)])).contains("named like a directory"));
    scene.outside_untouched();
}

#[test]
fn extension_headers_are_bounded_and_cannot_disagree_with_their_entry() {
    let scene = Scene::new();
    let huge = vec![b'x'; 1 << 20];
    let error = scene.unpack(&[Item::Pax(&huge), Item::File("f", b"x", 0o644)]).unwrap_err();
    assert!(matches!(error, UnpackError::TooLarge(_)), "{error}");
    let path = pax_record("path", "pax-named.txt");
    scene.unpack(&[Item::Pax(&path), Item::File("short", b"via pax", 0o644)]).expect("a PAX path");
    assert_eq!(std::fs::read_to_string(scene.at("pax-named.txt")).unwrap(), "via pax");
    let message = refused(scene.unpack(&[Item::Pax(b"12 size=500\n"), Item::File("f", b"x", 0o644)]));
    assert!(message.contains("two sizes"), "{message}");
    let message = refused(scene.unpack(&[Item::Pax(b"22 path=../escape.txt\n"), Item::File("f", b"x", 0o644)]));
    assert!(message.contains("climbs out"), "{message}");
    scene.outside_untouched();
}

#[test]
fn directories_made_on_the_way_count_as_entries() {
    let scene = Scene::new();
    let deep = "a/".repeat(20) + "f";
    let (bytes, expected) = blob(&tar_of(&[Item::File(&deep, b"x", 0o644)]));
    let few = Limits { entries: 10, ..Limits::default() };
    let error = unpack_layer(&scene.root, &bytes[..], &expected, &few, &mut Used::default()).unwrap_err();
    assert!(matches!(error, UnpackError::TooLarge(_)), "{error}");
}
