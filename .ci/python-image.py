#!/usr/bin/env python3
"""Builds the Python image the tests run lightweight components in, as an OCI image layout: Debian's CPython 3.11
(the files of its packages), the shared libraries it and its extension modules load, the packages of a virtual
environment with kfp (pip included, so the components' pip preamble runs as on KFP), and busybox for the shell.
One gzip layer, written deterministically from what the host holds (files keep their modification times, so the
compiled modules beside them stay valid); nothing is rebuilt when the layout is already there.

    python3 .ci/python-image.py OUT_DIR KFP_VENV [BUSYBOX]
"""
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile

PACKAGES = ["python3.11-minimal", "libpython3.11-minimal", "libpython3.11-stdlib", "python3.11"]
APPLETS = ["sh", "mktemp", "printf", "cat", "ls", "echo", "env", "rm", "mkdir", "true", "test", "[", "wc", "grep"]
SKIPPED = ("/usr/share/doc", "/usr/share/man", "/usr/share/lintian")
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
# Debian's mark that pip must not install into this Python: the Python images KFP components name have none.
EXTERNALLY_MANAGED = "/usr/lib/python3.11/EXTERNALLY-MANAGED"


class Image:
    """The files of the image: path inside → (host path to copy, or a link target, or None for a directory)."""

    def __init__(self):
        self.entries = {}

    def directory(self, inside):
        if not inside.strip("/"):
            return
        parts = inside.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            self.entries.setdefault("/".join(parts[:i]), ("dir", None))

    def link(self, inside, target):
        self.directory(os.path.dirname(inside.strip("/")))
        self.entries[inside.strip("/")] = ("link", target)

    def file(self, inside, source):
        self.directory(os.path.dirname(inside.strip("/")))
        self.entries[inside.strip("/")] = ("file", source)
        # Its compiled module too, where the host has one: the image is read-only, so a step could never write
        # it, and every step would compile kfp and the standard library again.
        if inside.endswith(".py"):
            head, name = os.path.split(source)
            inside_head = os.path.dirname(inside.strip("/"))
            cache = os.path.join(head, "__pycache__")
            for compiled in sorted(os.listdir(cache)) if os.path.isdir(cache) else []:
                if compiled.startswith(name[:-3] + ".cpython-311") and compiled.endswith(".pyc"):
                    self.directory(f"{inside_head}/__pycache__")
                    self.entries[f"{inside_head}/__pycache__/{compiled}"] = ("file", os.path.join(cache, compiled))

    def host_path(self, path):
        """`path` as on the host, every link on the way kept as a link."""
        done = ""
        for part in path.strip("/").split("/"):
            current = f"{done}/{part}"
            if os.path.islink(current):
                target = os.readlink(current)
                self.link(current, target)
                resolved = target if target.startswith("/") else os.path.normpath(f"{done}/{target}")
                self.host_path(resolved)
                done = os.path.realpath(current)
            elif os.path.isdir(current):
                self.directory(current)
                done = current
            else:
                self.file(current, current)
                done = current

    def shared_libraries(self, binary, within=None):
        """The system libraries `binary` loads (those inside `within`, a directory copied whole, are there)."""
        output = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
        for line in output.splitlines():
            for word in line.split():
                path = os.path.normpath(word)
                if not word.startswith("/") or not os.path.exists(path):
                    continue
                if within and os.path.realpath(path).startswith(os.path.realpath(within) + "/"):
                    continue
                self.host_path(path)

    def tar(self):
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
            for inside in sorted(self.entries):
                kind, value = self.entries[inside]
                info = tarfile.TarInfo(inside)
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "root", "root"
                if kind == "file":
                    # A compiled module is valid only beside a source of the same modification time.
                    info.mtime = int(os.stat(value).st_mtime)
                if kind == "dir":
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    archive.addfile(info)
                elif kind == "link":
                    info.type, info.linkname, info.mode = tarfile.SYMTYPE, value, 0o777
                    archive.addfile(info)
                else:
                    with open(value, "rb") as source:
                        data = source.read()
                    info.size = len(data)
                    info.mode = 0o755 if os.access(value, os.X_OK) else 0o644
                    archive.addfile(info, io.BytesIO(data))
        return buffer.getvalue()


def blob(out, content):
    digest = hashlib.sha256(content).hexdigest()
    with open(os.path.join(out, "blobs", "sha256", digest), "wb") as f:
        f.write(content)
    return f"sha256:{digest}", len(content)


def main():
    out, venv = sys.argv[1], sys.argv[2]
    busybox = sys.argv[3] if len(sys.argv) > 3 else "/usr/bin/busybox"
    if os.path.exists(os.path.join(out, "index.json")):
        return
    image = Image()
    for package in PACKAGES:
        listed = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True, check=True).stdout
        for path in listed.splitlines():
            if path.startswith(SKIPPED) or path in ("/.", EXTERNALLY_MANAGED):
                continue
            if os.path.isdir(path) and not os.path.islink(path):
                continue
            image.host_path(path)
            if path.endswith(".so") or ".so." in os.path.basename(path):
                image.shared_libraries(path)
    image.link("usr/bin/python3", "python3.11")
    image.host_path("/usr/bin/python3.11")
    image.shared_libraries("/usr/bin/python3.11")
    site = os.path.join(venv, "lib", "python3.11", "site-packages")
    for directory, names, files in os.walk(site):
        names[:] = [n for n in names if n != "__pycache__"]
        for name in files:
            source = os.path.join(directory, name)
            inside = "usr/local/lib/python3.11/dist-packages/" + os.path.relpath(source, site)
            image.file(inside, source)
            if name.endswith(".so") or ".so." in name:
                image.shared_libraries(source, within=site)
    pip = "/tmp/highwind-image-pip"
    with open(pip, "w") as f:
        f.write("#!/usr/bin/python3.11\nimport sys\nfrom pip._internal.cli.main import main\nsys.exit(main())\n")
    os.chmod(pip, 0o755)
    image.file("usr/local/bin/pip", pip)
    image.file("usr/bin/busybox", busybox)
    for applet in APPLETS:
        if f"usr/bin/{applet}" not in image.entries:
            image.link(f"usr/bin/{applet}", "busybox")
    for top in ("bin", "lib", "lib64", "sbin"):
        if top not in image.entries:
            image.link(top, f"usr/{top}")
    image.directory("usr/lib64")
    # The certificate authorities this machine trusts, as an organisation's base image carries its own: pip then
    # reaches the package index wherever this machine does.
    env = ["PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"]
    if os.path.exists(CA_BUNDLE):
        image.file(CA_BUNDLE, os.path.realpath(CA_BUNDLE))
        env += [f"PIP_CERT={CA_BUNDLE}", f"SSL_CERT_FILE={CA_BUNDLE}"]

    layer_tar = image.tar()
    compressed = gzip.compress(layer_tar, compresslevel=1, mtime=0)
    os.makedirs(os.path.join(out, "blobs", "sha256"), exist_ok=True)
    layer, layer_size = blob(out, compressed)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": env},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer_tar).hexdigest()]},
    }
    config_digest, config_size = blob(out, json.dumps(config, sort_keys=True).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": layer_size}],
    }
    manifest_digest, manifest_size = blob(out, json.dumps(manifest, sort_keys=True).encode())
    index = {
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest_size,
            "annotations": {"org.opencontainers.image.ref.name": "v1"},
        }],
    }
    with open(os.path.join(out, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    # Last: its presence says the layout is whole.
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump(index, f)


if __name__ == "__main__":
    main()
