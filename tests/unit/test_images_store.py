"""ImageStore: loading docker-save and OCI archives, import, lookup, rmi, failure atomicity."""

from __future__ import annotations

import gzip
import hashlib
import itertools
import json
import tarfile
import tracemalloc
from pathlib import Path

import pytest
from images_helpers import (
    ImageSpec,
    diff_id,
    directory,
    docker_save_archive,
    file,
    image_config,
    layer_tar,
    oci_archive,
    symlink,
    tree_snapshot,
    write_tar,
)

from pycontain.errors import Conflict, ImageArchiveError, InvalidArgument, NoSuchImage
from pycontain.images import ImageStore, host_architecture

BASE = layer_tar([directory("bin/"), file("bin/sh", b"shell", mode=0o755), file("etc/os", b"1")])
APP = layer_tar([directory("app/"), file("app/run", b"run", mode=0o755)])
EXTRA = layer_tar([file("etc/extra", b"more")], compress=True)


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def store(data_root: Path) -> ImageStore:
    return ImageStore(data_root / "image")


def test_creates_its_layout(store: ImageStore, data_root: Path) -> None:
    for sub in ("image/blobs/sha256", "image/layers", "image/images", "tmp"):
        assert (data_root / sub).is_dir()
    assert store.list() == []


def test_load_legacy_docker_save(store: ImageStore, tmp_path: Path) -> None:
    base = ImageSpec([BASE], ["busybox:latest", "busybox:1"])
    app = ImageSpec([BASE, APP], ["localhost:5000/team/app:v1"])
    archive = docker_save_archive(tmp_path / "save.tar", [base, app])

    lines = store.load_archive(archive)

    assert lines == [
        "Loaded image: busybox:latest",
        "Loaded image: busybox:1",
        "Loaded image: localhost:5000/team/app:v1",
    ]
    image = store.get("busybox")
    assert image.id == base.id
    assert image.repo_tags == ("busybox:1", "busybox:latest")
    assert image.diff_ids == (diff_id(BASE),)
    assert image.size == len(b"shell") + len(b"1")
    assert image.config.cmd == ("/bin/sh",)
    assert image.architecture == "amd64"
    assert image.raw_config["os"] == "linux"
    app_image = store.get("localhost:5000/team/app:v1")
    assert app_image.size == image.size + len(b"run")
    dirs = store.layer_dirs(app_image)
    assert [d.parent.name for d in dirs] == [diff_id(APP)[7:], diff_id(BASE)[7:]]
    assert (dirs[0] / "app" / "run").read_bytes() == b"run"
    assert (dirs[1] / "bin" / "sh").read_bytes() == b"shell"
    assert store.layer_dirs(image) == dirs[1:]
    assert {i.id for i in store.list()} == {base.id, app.id}


@pytest.mark.parametrize(
    "name",
    [
        "busybox",
        "busybox:latest",
        "docker.io/library/busybox:latest",
        "index.docker.io/library/busybox",
        "FULL_ID",
        "HEX_ID",
        "PREFIX",
        "SHA_PREFIX",
    ],
)
def test_get_accepts_every_name_form(store: ImageStore, tmp_path: Path, name: str) -> None:
    spec = ImageSpec([BASE], ["busybox:latest"])
    store.load_archive(docker_save_archive(tmp_path / "a.tar", [spec]))
    hex_id = spec.id[7:]
    name = {
        "FULL_ID": spec.id,
        "HEX_ID": hex_id,
        "PREFIX": hex_id[:4],
        "SHA_PREFIX": "sha256:" + hex_id[:12],
    }.get(name, name)
    assert store.get(name).id == spec.id


def test_get_unknown_and_invalid(store: ImageStore) -> None:
    for name in ("nothing", "nothing:1", "abc", "sha256:" + "0" * 64, "0" * 64, "0123"):
        with pytest.raises(NoSuchImage, match="No such image"):
            store.get(name)
    with pytest.raises(InvalidArgument, match="lowercase"):
        store.get("UPPER")


def test_get_ambiguous_prefix(store: ImageStore, tmp_path: Path) -> None:
    seen: dict[str, ImageSpec] = {}
    for n in itertools.count():
        spec = ImageSpec([BASE], config=image_config([BASE], created=f"2024-01-01T00:00:{n}Z"))
        other = seen.setdefault(spec.id[7:11], spec)
        if other is not spec:
            break
    store.load_archive(docker_save_archive(tmp_path / "a.tar", [other, spec]))
    with pytest.raises(InvalidArgument, match="ambiguous"):
        store.get(spec.id[7:11])
    assert store.get(spec.id[7:20]).id == spec.id


def test_tag_wins_over_id_prefix(store: ImageStore, tmp_path: Path) -> None:
    first = ImageSpec([BASE])
    second = ImageSpec([APP], [f"{first.id[7:13]}:latest"])
    store.load_archive(docker_save_archive(tmp_path / "a.tar", [first, second]))
    assert store.get(first.id[7:13]).id == second.id


def test_shared_layers_are_unpacked_once(store: ImageStore, tmp_path: Path) -> None:
    store.load_archive(docker_save_archive(tmp_path / "a.tar", [ImageSpec([BASE], ["a:1"])]))
    base_dir = store.layer_dirs(store.get("a:1"))[0]
    inode = base_dir.stat().st_ino
    store.load_archive(docker_save_archive(tmp_path / "b.tar", [ImageSpec([BASE, APP], ["b:1"])]))
    assert store.layer_dirs(store.get("b:1"))[1] == base_dir
    assert base_dir.stat().st_ino == inode
    assert len(list((store.root / "layers").iterdir())) == 2


def test_duplicate_layer_given_once(store: ImageStore, tmp_path: Path) -> None:
    spec = ImageSpec([BASE, APP, BASE], ["dup:1"])
    store.load_archive(docker_save_archive(tmp_path / "a.tar", [spec]))
    dirs = store.layer_dirs(store.get("dup:1"))
    assert [d.parent.name for d in dirs] == [diff_id(BASE)[7:], diff_id(APP)[7:]]


def test_load_docker25_archive_with_gzip_layer(store: ImageStore, tmp_path: Path) -> None:
    spec = ImageSpec([BASE, EXTRA], ["busybox:latest"])
    archive = oci_archive(tmp_path / "d25.tar", [spec], with_docker_manifest=True)
    assert store.load_archive(archive) == ["Loaded image: busybox:latest"]
    top = store.layer_dirs(store.get("busybox"))[0]
    assert (top / "etc" / "extra").read_bytes() == b"more"


@pytest.mark.parametrize(
    ("annotation", "tag", "expected"),
    [
        ("io.containerd.image.name", "docker.io/library/alpine:3", "Loaded image: alpine:3"),
        ("org.opencontainers.image.ref.name", "myapp:v2", "Loaded image: myapp:v2"),
        ("org.opencontainers.image.ref.name", "latest", "Loaded image ID: {id}"),
    ],
)
def test_load_pure_oci_archive(
    store: ImageStore, tmp_path: Path, annotation: str, tag: str, expected: str
) -> None:
    spec = ImageSpec([BASE, EXTRA], [tag])
    archive = oci_archive(tmp_path / "oci.tar", [spec], annotation=annotation)
    assert store.load_archive(archive) == [expected.format(id=spec.id)]
    assert store.get(spec.id).diff_ids == (diff_id(BASE), diff_id(EXTRA))
    manifests = [p for p in (store.root / "blobs" / "sha256").iterdir() if p.name != spec.id[7:]]
    assert len(manifests) == 1


def test_load_oci_nested_index_picks_host_platform(store: ImageStore, tmp_path: Path) -> None:
    spec = ImageSpec([BASE])
    archive = oci_archive(tmp_path / "oci.tar", [spec])
    members = _members(archive)
    inner = json.loads(members["index.json"])
    manifest_descriptor = inner["manifests"][0]
    other = dict(manifest_descriptor, digest="sha256:" + "e" * 64)
    manifest_descriptor["platform"] = {"os": "linux", "architecture": host_architecture()}
    other["platform"] = {"os": "linux", "architecture": "no-such-arch"}
    nested = json.dumps({"schemaVersion": 2, "manifests": [other, manifest_descriptor]}).encode()
    nested_digest = hashlib.sha256(nested).hexdigest()
    members[f"blobs/sha256/{nested_digest}"] = nested
    members["index.json"] = json.dumps(
        {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.index.v1+json",
                    "digest": f"sha256:{nested_digest}",
                    "size": len(nested),
                    "annotations": {"io.containerd.image.name": "multi:1"},
                }
            ],
        }
    ).encode()
    write_tar(archive, members)
    assert store.load_archive(archive) == ["Loaded image: multi:1"]


def _members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]


# -- failures leave the store exactly as it was -------------------------------------


@pytest.fixture
def loaded(store: ImageStore, tmp_path: Path) -> ImageStore:
    store.load_archive(docker_save_archive(tmp_path / "first.tar", [ImageSpec([BASE], ["a:1"])]))
    return store


def _assert_fails_cleanly(store: ImageStore, archive: Path, message: str) -> None:
    before = tree_snapshot(store.root)
    with pytest.raises(ImageArchiveError, match=message):
        store.load_archive(archive)
    assert tree_snapshot(store.root) == before
    assert list(store.tmp.iterdir()) == []


def test_diff_id_mismatch(loaded: ImageStore, tmp_path: Path) -> None:
    spec = ImageSpec([APP], ["bad:1"], config=image_config([EXTRA]))
    _assert_fails_cleanly(
        loaded, docker_save_archive(tmp_path / "x.tar", [spec]), "does not match diff_id"
    )


def test_second_image_failure_rolls_back_the_first(loaded: ImageStore, tmp_path: Path) -> None:
    good = ImageSpec([APP], ["good:1"])
    bad = ImageSpec([EXTRA], ["bad:1"], config=image_config([BASE, EXTRA]))
    _assert_fails_cleanly(
        loaded, docker_save_archive(tmp_path / "x.tar", [good, bad]), "2 diff_ids"
    )


def test_hostile_layer_in_archive(loaded: ImageStore, tmp_path: Path) -> None:
    sentinel = tmp_path / "sentinel"
    sentinel.mkdir()
    evil = layer_tar([file("ok", b"fine"), symlink("up", "../../.."), file("../../escape", b"x")])
    archive = docker_save_archive(tmp_path / "x.tar", [ImageSpec([evil], ["evil:1"])])
    _assert_fails_cleanly(loaded, archive, "escape")
    assert list(sentinel.iterdir()) == []
    assert not (tmp_path / "escape").exists()


def test_config_not_matching_its_name(loaded: ImageStore, tmp_path: Path) -> None:
    spec = ImageSpec([APP], ["x:1"])
    archive = docker_save_archive(tmp_path / "x.tar", [spec])
    members = _members(archive)
    members[f"{spec.id[7:]}.json"] = image_config([APP], cmd=["other"])
    _assert_fails_cleanly(loaded, write_tar(archive, members), "does not match its content")


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({"hello": b"x"}, "neither manifest.json nor index.json"),
        ({"manifest.json": b"{"}, "invalid JSON"),
        ({"manifest.json": b"{}"}, "not a JSON list"),
        ({"manifest.json": b'[{"Config": 1}]'}, "Config must be a string"),
        ({"manifest.json": b'[{"Config": "c.json", "Layers": []}]'}, "c.json is missing"),
        ({"manifest.json": b'[{"Config": "c", "Layers": [], "RepoTags": [2]}]'}, "RepoTags"),
        ({"index.json": b'{"manifests": [{"digest": "md5:1", "size": 1}]}'}, "digest"),
        ({"index.json": b'{"manifests": [{"digest": "sha256:1", "size": 1}]}'}, "digest"),
    ],
)
def test_malformed_archives(
    loaded: ImageStore, tmp_path: Path, members: dict[str, bytes], message: str
) -> None:
    _assert_fails_cleanly(loaded, write_tar(tmp_path / "x.tar", members), message)


def test_bad_tag_in_archive(loaded: ImageStore, tmp_path: Path) -> None:
    archive = docker_save_archive(tmp_path / "x.tar", [ImageSpec([APP], ["Bad:Tag"])])
    _assert_fails_cleanly(loaded, archive, "bad image name 'Bad:Tag'")


def test_oci_blob_tampered(loaded: ImageStore, tmp_path: Path) -> None:
    spec = ImageSpec([EXTRA], ["x:1"])
    archive = oci_archive(tmp_path / "x.tar", [spec])
    members = _members(archive)
    layer_name = "blobs/sha256/" + hashlib.sha256(EXTRA).hexdigest()
    same_content = gzip.compress(gzip.decompress(EXTRA), mtime=12345)
    members[layer_name] = same_content
    _assert_fails_cleanly(loaded, write_tar(archive, members), "blob digest .* is not sha256")
    members[layer_name] = gzip.compress(layer_tar([file("etc/extra", b"evil")]), mtime=0)
    _assert_fails_cleanly(loaded, write_tar(archive, members), "does not match diff_id")


def test_not_a_tar(loaded: ImageStore, tmp_path: Path) -> None:
    path = tmp_path / "junk"
    path.write_bytes(b"\x00garbage" * 100)
    _assert_fails_cleanly(loaded, path, "not a tar archive|neither")


def test_stale_staging_removed_on_start(data_root: Path) -> None:
    stale = data_root / "tmp" / "image-staging-old"
    stale.mkdir(parents=True)
    (stale / "junk").write_text("x")
    other = data_root / "tmp" / "someone-else"
    other.mkdir()
    ImageStore(data_root / "image")
    assert not stale.exists()
    assert other.exists()


# -- retagging, import, rmi -----------------------------------------------------------


def test_load_moves_an_existing_tag(store: ImageStore, tmp_path: Path) -> None:
    old = ImageSpec([BASE], ["busybox:latest"])
    new = ImageSpec([BASE, APP], ["busybox:latest"])
    store.load_archive(docker_save_archive(tmp_path / "old.tar", [old]))
    lines = store.load_archive(docker_save_archive(tmp_path / "new.tar", [new]))
    assert lines == [
        f"The image busybox:latest already exists, renaming the old one with ID {old.id} "
        "to empty string",
        "Loaded image: busybox:latest",
    ]
    assert store.get("busybox").id == new.id
    assert store.get(old.id).repo_tags == ()


def test_import_rootfs(store: ImageStore, tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs.tar"
    rootfs.write_bytes(BASE)
    image = store.import_rootfs(rootfs, "docker.io/library/mine")
    assert image.repo_tags == ("mine:latest",)
    assert image.diff_ids == (diff_id(BASE),)
    assert (image.os, image.architecture) == ("linux", host_architecture())
    assert image.config.cmd is None
    assert image.created.endswith("Z")
    assert (store.layer_dirs(image)[0] / "bin" / "sh").read_bytes() == b"shell"
    assert store.get("mine").id == image.id

    untagged = store.import_rootfs(rootfs, None, cmd=["/bin/sh", "-c", "echo"])
    assert untagged.repo_tags == ()
    assert untagged.config.cmd == ("/bin/sh", "-c", "echo")
    assert store.layer_dirs(untagged) == store.layer_dirs(image)


def test_import_rootfs_gzip_and_errors(store: ImageStore, tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs.tar.gz"
    rootfs.write_bytes(EXTRA)
    assert store.import_rootfs(rootfs, "x:2").diff_ids == (diff_id(EXTRA),)
    before = tree_snapshot(store.root)
    with pytest.raises(InvalidArgument, match="digest reference"):
        store.import_rootfs(rootfs, "x@sha256:" + "a" * 64)
    with pytest.raises(InvalidArgument, match="lowercase"):
        store.import_rootfs(rootfs, "X")
    evil = tmp_path / "evil.tar"
    evil.write_bytes(layer_tar([file("../x", b"")]))
    with pytest.raises(ImageArchiveError, match=r"'\.\./x'"):
        store.import_rootfs(evil, "evil")
    assert tree_snapshot(store.root) == before
    assert list(store.tmp.iterdir()) == []


def _load(store: ImageStore, tmp_path: Path, *specs: ImageSpec) -> None:
    store.load_archive(docker_save_archive(tmp_path / "rmi.tar", list(specs)))


def _layer_names(store: ImageStore) -> set[str]:
    return {p.name for p in (store.root / "layers").iterdir()}


def test_rmi_by_tag_untags_then_deletes(store: ImageStore, tmp_path: Path) -> None:
    base = ImageSpec([BASE], ["busybox:latest", "busybox:1"])
    app = ImageSpec([BASE, APP], ["app:1"])
    _load(store, tmp_path, base, app)

    assert store.untag_or_remove("busybox", force=False) == [{"Untagged": "busybox:latest"}]
    assert store.get("busybox:1").repo_tags == ("busybox:1",)
    assert store.untag_or_remove("busybox:1", force=False) == [
        {"Untagged": "busybox:1"},
        {"Deleted": base.id},
    ]
    with pytest.raises(NoSuchImage):
        store.get(base.id)
    assert _layer_names(store) == {diff_id(BASE)[7:], diff_id(APP)[7:]}

    assert store.untag_or_remove("app:1", force=False) == [
        {"Untagged": "app:1"},
        {"Deleted": app.id},
    ]
    assert _layer_names(store) == set()
    assert list((store.root / "blobs" / "sha256").iterdir()) == []
    assert store.list() == []
    assert list(store.tmp.iterdir()) == []


def test_rmi_by_id(store: ImageStore, tmp_path: Path) -> None:
    one_repo = ImageSpec([BASE], ["busybox:latest", "busybox:1"])
    two_repos = ImageSpec([APP], ["app:1", "other/app:1"])
    untagged = ImageSpec([EXTRA])
    _load(store, tmp_path, one_repo, two_repos, untagged)

    assert store.untag_or_remove(one_repo.id[7:19], force=False) == [
        {"Untagged": "busybox:latest"},
        {"Untagged": "busybox:1"},
        {"Deleted": one_repo.id},
    ]
    with pytest.raises(Conflict, match="must be forced"):
        store.untag_or_remove(two_repos.id, force=False)
    assert store.get(two_repos.id).repo_tags == ("app:1", "other/app:1")
    assert store.untag_or_remove(two_repos.id, force=True) == [
        {"Untagged": "app:1"},
        {"Untagged": "other/app:1"},
        {"Deleted": two_repos.id},
    ]
    assert store.untag_or_remove(untagged.id, force=False) == [{"Deleted": untagged.id}]
    with pytest.raises(NoSuchImage):
        store.untag_or_remove(untagged.id, force=False)
    assert _layer_names(store) == set()


def test_list_newest_first(store: ImageStore, tmp_path: Path) -> None:
    old = ImageSpec([BASE], config=image_config([BASE], created="2020-01-01T00:00:00Z"))
    new = ImageSpec([APP], config=image_config([APP], created="2024-01-01T00:00:00Z"))
    _load(store, tmp_path, old, new)
    assert [i.id for i in store.list()] == [new.id, old.id]


def test_layer_size_survives_reopen(store: ImageStore, tmp_path: Path) -> None:
    _load(store, tmp_path, ImageSpec([BASE], ["a:1"]))
    reopened = ImageStore(store.root)
    assert reopened.get("a:1") == store.get("a:1")


def test_layers_are_streamed_not_read_whole(store: ImageStore, tmp_path: Path) -> None:
    size = 64 << 20
    content = tmp_path / "content"
    with open(content, "wb") as f:
        f.truncate(size)
    rootfs = tmp_path / "big.tar"
    with tarfile.open(rootfs, "w") as tar:
        tar.add(content, arcname="big")
    tracemalloc.start()
    try:
        image = store.import_rootfs(rootfs, "big")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert image.size == size
    assert peak < 16 << 20
