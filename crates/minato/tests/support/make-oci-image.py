#!/usr/bin/env python3
"""Builds an OCI image layout directory for tests, without network access.

Every layer is a gzip-compressed tar of real files (seeded random content, so runs are
reproducible); the config carries the platform and the `rootfs.diff_ids` (sha256 of each
uncompressed tar), so podman and containerd can unpack the image. With one `--platform` the
layout's `index.json` references an image manifest; with several it references an image index
(kept as a blob of the layout) so `skopeo copy --all` pushes a multi-arch index. The layout's
`index.json` entry carries the tag in `org.opencontainers.image.ref.name`.

Usage: make-oci-image.py --out DIR [--platform linux/amd64 ...] [--layers N]
                         [--layer-size BYTES] [--tag TAG] [--seed N]
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import random
import tarfile

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"
EPOCH = "1970-01-01T00:00:00Z"


class Layout:
    """An OCI image layout being written: `oci-layout`, `blobs/sha256/*`, `index.json`."""

    def __init__(self, root):
        self.root = root
        os.makedirs(os.path.join(root, "blobs", "sha256"), exist_ok=True)
        with open(os.path.join(root, "oci-layout"), "w") as f:
            json.dump({"imageLayoutVersion": "1.0.0"}, f)

    def blob(self, media_type, data):
        """Stores `data` as a blob and returns its descriptor."""
        digest = hashlib.sha256(data).hexdigest()
        with open(os.path.join(self.root, "blobs", "sha256", digest), "wb") as f:
            f.write(data)
        return {"mediaType": media_type, "digest": "sha256:" + digest, "size": len(data)}

    def json_blob(self, media_type, value):
        """Stores `value` as canonical-ish JSON and returns its descriptor."""
        return self.blob(media_type, json.dumps(value, separators=(",", ":")).encode())

    def finish(self, descriptor):
        """Writes `index.json` referencing the image (manifest or index) `descriptor`."""
        with open(os.path.join(self.root, "index.json"), "w") as f:
            json.dump({"schemaVersion": 2, "mediaType": INDEX, "manifests": [descriptor]}, f)


def parse_platform(text):
    """`os/arch[/variant]` → OCI platform object."""
    parts = text.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise SystemExit(f"bad --platform {text!r}: expected os/arch[/variant]")
    platform = {"architecture": parts[1], "os": parts[0]}
    if len(parts) == 3:
        platform["variant"] = parts[2]
    return platform


def tar_layer(files):
    """Uncompressed, reproducible tar of `{path: bytes}` (with parent directories)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        directories = set()
        for path in files:
            while path := os.path.dirname(path):
                directories.add(path)
        for directory in sorted(directories):
            info = tarfile.TarInfo(directory)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
        for path, data in sorted(files.items()):
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def build_image(layout, platform, args):
    """Writes layers, config and manifest for one platform; returns the manifest descriptor."""
    name = "/".join(platform[k] for k in ("os", "architecture", "variant") if k in platform)
    rng = random.Random(f"{args.seed}/{name}")
    layers, diff_ids, history = [], [], []
    for i in range(args.layers):
        files = {
            f"minato/layer-{i}/data.bin": rng.randbytes(args.layer_size),
            f"etc/minato-layer-{i}.txt": f"layer {i} of {name}\n".encode(),
        }
        tar = tar_layer(files)
        diff_ids.append("sha256:" + hashlib.sha256(tar).hexdigest())
        layers.append(layout.blob(LAYER, gzip.compress(tar, mtime=0)))
        history.append({"created": EPOCH, "created_by": f"make-oci-image.py layer {i}"})
    config = dict(platform)
    config.update(
        {
            "created": EPOCH,
            "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/usr/bin:/bin"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": history,
        }
    )
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": layout.json_blob(CONFIG, config),
        "layers": layers,
    }
    descriptor = layout.json_blob(MANIFEST, manifest)
    descriptor["platform"] = platform
    return descriptor


def main():
    parser = argparse.ArgumentParser(description="Build a test OCI image layout.")
    parser.add_argument("--out", required=True, help="layout directory to create")
    parser.add_argument("--platform", action="append", help="os/arch[/variant], repeatable")
    parser.add_argument("--layers", type=int, default=2, help="layers per image")
    parser.add_argument("--layer-size", type=int, default=4096, help="random bytes per layer")
    parser.add_argument("--tag", default="latest", help="org.opencontainers.image.ref.name")
    parser.add_argument("--seed", default="minato", help="seed of the layer content")
    args = parser.parse_args()
    if args.layers < 1 or args.layer_size < 0:
        raise SystemExit("--layers must be at least 1 and --layer-size not negative")

    layout = Layout(args.out)
    platforms = [parse_platform(p) for p in args.platform or ["linux/amd64"]]
    images = [build_image(layout, p, args) for p in platforms]
    if len(images) == 1:
        top = images[0]
    else:
        top = layout.json_blob(INDEX, {"schemaVersion": 2, "mediaType": INDEX, "manifests": images})
    top["annotations"] = {REF_NAME: args.tag}
    layout.finish(top)
    print(top["digest"])


if __name__ == "__main__":
    main()
