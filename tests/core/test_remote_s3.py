"""Remote paths against a real S3-compatible server: moto's server mode, started on a free loopback port.

s3fs is pointed at it the way a user points it at MinIO: ``AWS_ENDPOINT_URL`` (docs/remote.md).
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from core_data import synthetic_records
from typer.testing import CliRunner

from annobridge import remote
from annobridge.adapters.jsonl import write_records
from annobridge.atomic import atomic_open
from annobridge.cli import app
from annobridge.errors import DataError, UsageError
from annobridge.export import export, is_export_dir
from annobridge.model import Record
from annobridge.readers import read_documents

runner = CliRunner()
_VERSION = re.compile(r"^v-\d{8}T\d{12}Z-[0-9a-f]{8}$")


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A fresh bucket's s3fs file system; the bucket name is ``fs.bucket``."""
    import s3fs

    for name, value in {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "NO_PROXY": "127.0.0.1,localhost",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    s3fs.S3FileSystem.clear_instance_cache()  # a client made before this endpoint was set must not be reused
    fs = s3fs.S3FileSystem()
    bucket = f"annobridge-{uuid.uuid4().hex[:12]}"
    fs.mkdir(bucket)
    fs.bucket = bucket
    yield fs
    s3fs.S3FileSystem.clear_instance_cache()


def _records(n: int) -> list[Record]:
    return synthetic_records(n)


def _source(tmp_path: Path, n: int, name: str = "r.jsonl") -> str:
    path = tmp_path / name
    write_records(path, _records(n))
    return f"jsonl:{path}"


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _versions(fs: Any, prefix: str) -> list[str]:
    fs.invalidate_cache()
    return sorted(n for n in (Path(p).name for p in fs.ls(prefix, detail=False)) if _VERSION.match(n))


def test_export_to_s3_reads_back_identical_to_a_local_export(s3: Any, tmp_path: Path) -> None:
    source = _source(tmp_path, 120)
    url = f"s3://{s3.bucket}/corpus"
    remote_report = export(source, url, task="ner", shard_size=25, write_config=True)
    local_report = export(source, tmp_path / "local", task="ner", shard_size=25, write_config=True)
    assert remote_report.out_dir == url and remote_report.files == local_report.files

    # what is in the bucket: the manifest at the prefix, everything else under one version prefix
    s3.invalidate_cache()
    top = sorted(Path(p).name for p in s3.ls(f"{s3.bucket}/corpus", detail=False))
    [version] = _versions(s3, f"{s3.bucket}/corpus")
    assert top == sorted([remote.MANIFEST_NAME, version])
    manifest = json.loads(s3.cat_file(f"{s3.bucket}/corpus/{remote.MANIFEST_NAME}"))
    assert manifest["current"] == version and manifest["previous"] is None
    listed = {entry["path"] for entry in manifest["files"]}
    assert listed == set(_tree(tmp_path / "local"))  # shards, manifest.jsonl, report.json, config.cfg
    assert len(remote_report.files["train"]) > 1  # several shards

    got = remote.download_export(url, tmp_path / "downloaded")
    assert is_export_dir(got)
    local, downloaded = _tree(tmp_path / "local"), _tree(got)
    assert set(local) == set(downloaded)
    for name in local:
        if name.endswith(".spacy") or name == "manifest.jsonl":
            assert downloaded[name] == local[name], name  # DocBins byte for byte
    report = json.loads(downloaded["report.json"])
    assert report["out_dir"] == url and report["records_exported"] == 120
    # config.cfg points where download_export(url, "corpus") puts the splits
    assert 'train = "corpus/train"' in downloaded["config.cfg"].decode()


def test_a_smaller_re_export_leaves_no_stale_shard_in_view(s3: Any, tmp_path: Path) -> None:
    url = f"s3://{s3.bucket}/corpus"
    first = export(_source(tmp_path, 200, "big.jsonl"), url, task="ner", shard_size=20)
    [v1] = _versions(s3, f"{s3.bucket}/corpus")
    second = export(_source(tmp_path, 30, "small.jsonl"), url, task="ner", shard_size=20)
    assert len(first.files["train"]) > len(second.files["train"])
    manifest = remote.read_manifest(url)
    assert manifest is not None and manifest["previous"] == v1
    v2 = manifest["current"]
    assert _versions(s3, f"{s3.bucket}/corpus") == [v1, v2]  # the previous version is kept
    assert {e["path"] for e in manifest["files"] if e["path"].endswith(".spacy")} == {
        f for files in second.files.values() for f in files
    }
    got = remote.download_export(url, tmp_path / "dl")
    shards = sorted(p.relative_to(got).as_posix() for p in got.rglob("*.spacy"))
    assert shards == sorted(f for files in second.files.values() for f in files)
    assert sum(1 for _ in (got / "manifest.jsonl").open()) == 30

    # a third export: the newest two versions stay, the first one is deleted
    export(_source(tmp_path, 10, "tiny.jsonl"), url, task="ner", shard_size=20)
    v3 = remote.read_manifest(url)["current"]  # type: ignore[index]
    assert _versions(s3, f"{s3.bucket}/corpus") == [v2, v3]


def test_an_interrupted_upload_leaves_the_previous_export(
    s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"s3://{s3.bucket}/corpus"
    export(_source(tmp_path, 80, "a.jsonl"), url, task="ner", shard_size=10)
    before = remote.read_manifest(url)
    expected = _tree(remote.download_export(url, tmp_path / "before"))

    real_upload = remote._upload_file
    uploaded: list[str] = []

    def upload_then_die(fs: Any, local: Path, fspath: str) -> None:
        if len(uploaded) == 3:  # as a Ctrl-C, a lost connection or a killed process would, mid-upload
            raise KeyboardInterrupt
        real_upload(fs, local, fspath)  # really sent to the server
        uploaded.append(fspath)

    monkeypatch.setattr(remote, "_upload_file", upload_then_die)
    with pytest.raises(KeyboardInterrupt):
        export(_source(tmp_path, 40, "b.jsonl"), url, task="ner", shard_size=10)
    monkeypatch.setattr(remote, "_upload_file", real_upload)

    assert len(uploaded) == 3 and all(s3.exists(key) for key in uploaded)  # part of the new export got there
    assert remote.read_manifest(url) == before  # ...but the manifest still names the old one
    assert _tree(remote.download_export(url, tmp_path / "after")) == expected

    # the next successful export publishes; the half-uploaded version goes with the next cleanup
    export(_source(tmp_path, 20, "c.jsonl"), url, task="ner", shard_size=10)
    export(_source(tmp_path, 20, "c.jsonl"), url, task="ner", shard_size=10)
    s3.invalidate_cache()
    assert not any(s3.exists(key) for key in uploaded)
    assert len(_versions(s3, f"{s3.bucket}/corpus")) == 2


def test_download_refuses_a_file_that_changed_after_the_export(s3: Any, tmp_path: Path) -> None:
    url = f"s3://{s3.bucket}/corpus"
    export(_source(tmp_path, 30), url, task="ner")
    manifest = remote.read_manifest(url)
    assert manifest is not None
    shard = next(e["path"] for e in manifest["files"] if e["path"].endswith(".spacy"))
    key = f"{s3.bucket}/corpus/{manifest['current']}/{shard}"
    s3.pipe_file(key, s3.cat_file(key)[:-1] + b"\0")  # same size, other bytes
    with pytest.raises(DataError, match="sha256 differs"):
        remote.download_export(url, tmp_path / "dl")
    assert not (tmp_path / "dl").exists()


def test_export_refuses_a_prefix_holding_other_data_unless_forced(s3: Any, tmp_path: Path) -> None:
    s3.pipe_file(f"{s3.bucket}/data/notes.txt", b"mine")
    url = f"s3://{s3.bucket}/data"
    with pytest.raises(UsageError, match="not empty and holds no annobridge export"):
        export(_source(tmp_path, 10), url, task="ner")
    assert remote.read_manifest(url) is None
    export(_source(tmp_path, 10), url, task="ner", force=True)
    assert s3.cat_file(f"{s3.bucket}/data/notes.txt") == b"mine"  # published beside it, nothing deleted
    assert remote.read_manifest(url) is not None


def test_cli_export_to_s3_prints_a_download_line_that_works(s3: Any, tmp_path: Path) -> None:
    url = f"s3://{s3.bucket}/runs/corpus"
    result = runner.invoke(app, ["export", _source(tmp_path, 60), "-t", "ner", "-o", url])
    assert result.exit_code == 0, result.output
    assert f"{url}/{remote.MANIFEST_NAME}" in result.output
    line = next(x for x in result.output.splitlines() if x.startswith("Download: "))
    assert "--paths.train corpus/train" in result.output  # then: spacy train on the local copy
    command = line.removeprefix("Download: ")
    subprocess.run(command, shell=True, check=True, cwd=tmp_path, env=os.environ.copy(), timeout=120)
    assert is_export_dir(tmp_path / "corpus")


def test_pull_to_s3_is_one_put_of_the_complete_file(s3: Any, tmp_path: Path) -> None:
    key = f"{s3.bucket}/pulls/records.jsonl"
    url = f"s3://{key}"
    source = _source(tmp_path, 25)
    result = runner.invoke(app, ["pull", source, "-o", url])
    assert result.exit_code == 0, result.output
    first = s3.cat_file(key)
    assert [Record.from_dict(json.loads(line)).id for line in first.decode().splitlines()] == [
        r.id for r in _records(25)
    ]

    with pytest.raises(RuntimeError), atomic_open(url, "w") as fh:
        for i in range(20_000):
            fh.write(json.dumps({"partial": i}) + "\n")
        s3.invalidate_cache()
        assert s3.cat_file(key) == first  # nothing uploaded while the file is written
        raise RuntimeError("the pull failed half way")
    s3.invalidate_cache()
    assert s3.cat_file(key) == first
    assert s3.ls(f"{s3.bucket}/pulls", detail=False) == [key]  # no temporary key either

    result = runner.invoke(app, ["pull", _source(tmp_path, 5, "five.jsonl"), "-o", url])
    assert result.exit_code == 0, result.output
    s3.invalidate_cache()
    assert len(s3.cat_file(key).splitlines()) == 5


def test_a_missing_bucket_is_refused_before_any_work(s3: Any, tmp_path: Path) -> None:
    missing = f"{s3.bucket}-missing"
    for args in (
        ["pull", _source(tmp_path, 5), "-o", f"s3://{missing}/records.jsonl"],
        ["export", _source(tmp_path, 5), "-t", "ner", "-o", f"s3://{missing}/corpus"],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        assert f"no bucket '{missing}'" in result.output and "Traceback" not in result.output


def _corpus_lines() -> list[bytes]:
    lines = [json.dumps({"id": f"d{i}", "text": f"Maria {i} moved to Oslo."}).encode() for i in range(40)]
    lines.insert(7, b"{not json")
    return [line + b"\n" for line in lines]


@pytest.mark.parametrize("name", ["corpus.jsonl", "corpus.jsonl.gz", "gzipped-but-named.jsonl", "corpus.json"])
def test_import_reads_a_remote_corpus(name: str, s3: Any, tmp_path: Path) -> None:
    data = b"".join(_corpus_lines())
    if "gz" in name:
        data = gzip.compress(data)
    local = tmp_path / name
    local.write_bytes(data)
    s3.pipe_file(f"{s3.bucket}/in/{name}", data)
    url = f"s3://{s3.bucket}/in/{name}"

    local_skips: list[tuple[str, str]] = []
    remote_skips: list[tuple[str, str]] = []
    want = [(d.id, d.text, d.meta) for d in read_documents(local, on_skip=lambda w, r: local_skips.append((w, r)))]
    got = [(d.id, d.text, d.meta) for d in read_documents(url, on_skip=lambda w, r: remote_skips.append((w, r)))]
    assert got == want and len(got) == 40
    assert remote_skips == local_skips and remote_skips[0][0] == f"{name}:8"

    dest = tmp_path / "dest.jsonl"
    result = runner.invoke(app, ["import", url, f"jsonl:{dest}"])
    assert result.exit_code == 1, result.output  # one unreadable line
    assert "40 imported" in result.output and f"unreadable {name}:8" in result.output


def test_import_of_a_missing_remote_file_says_so(s3: Any, tmp_path: Path) -> None:
    result = runner.invoke(app, ["import", f"s3://{s3.bucket}/nope.jsonl", f"jsonl:{tmp_path / 'd.jsonl'}"])
    assert result.exit_code == 1 and f"No such file: s3://{s3.bucket}/nope.jsonl" in result.output


def test_al_pool_is_read_from_s3(s3: Any, tmp_path: Path) -> None:
    from annobridge.al import Learner
    from annobridge.al.loop import ActiveLearningLoop

    texts = [f"win a prize now {i}" if i % 2 else f"see you at {i}" for i in range(30)]
    lines = [json.dumps({"id": f"p{i}", "text": text}) for i, text in enumerate(texts)]
    s3.pipe_file(f"{s3.bucket}/pool.jsonl.gz", gzip.compress(("\n".join(lines) + "\n").encode()))
    loop = ActiveLearningLoop(
        f"jsonl:{tmp_path / 'project.jsonl'}",
        Learner("textcat", ["ham", "spam"], width=32, depth=1, epochs=1, min_steps=1),
        f"s3://{s3.bucket}/pool.jsonl.gz",
        None,
        state_dir=tmp_path / "state",
        batch=5,
    )
    scored = loop.step()
    assert scored.stage == "score" and scored.detail["scored"] == 30
    assert len(loop.selected) == 5 and {item["id"] for item in loop.selected} <= {f"p{i}" for i in range(30)}
