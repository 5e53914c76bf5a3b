"""Remote paths without a store: URL parsing, file:// URLs, the install line when a package is missing,
and the temporary-name-then-move path of file systems that are not object stores (fsspec's memory://)."""

from __future__ import annotations

import gzip
import importlib
import json
import sys
from pathlib import Path

import fsspec
import pytest
from core_data import synthetic_records
from typer.testing import CliRunner

from annobridge import remote
from annobridge.adapters.jsonl import write_records
from annobridge.atomic import atomic_open, atomic_write_text
from annobridge.cli import app
from annobridge.errors import MissingDependencyError
from annobridge.export import export, is_export_dir
from annobridge.readers import read_documents

runner = CliRunner()
#: fsspec's loaded implementations (``fsspec.registry`` is the read-only view of it)
_REGISTRY = importlib.import_module("fsspec.registry")._registry


def test_what_counts_as_remote() -> None:
    assert remote.is_remote("s3://bucket/corpus.jsonl")
    assert remote.is_remote("GS://bucket/x") and remote.is_remote("az://container/x")
    assert remote.is_remote("memory://x/y")
    assert not remote.is_remote("file:///tmp/x.jsonl")
    assert not remote.is_remote("corpus.jsonl") and not remote.is_remote("/abs/s3://x")
    assert not remote.is_remote(r"C:\data\x.jsonl") and not remote.is_remote("C://data")  # a drive, not a scheme
    assert not remote.is_remote(Path("s3:/bucket/x"))  # a Path is always local
    assert remote.local_path("file:///tmp/a%20b/c.jsonl") == Path("/tmp/a b/c.jsonl")
    assert remote.local_path("file://localhost/tmp/c.jsonl") == Path("/tmp/c.jsonl")
    assert remote.basename("s3://bucket/corpus/x.jsonl.gz") == "x.jsonl.gz"
    assert remote.basename("s3://bucket") == "bucket"
    with pytest.raises(ValueError):
        remote.local_path("s3://bucket/x")


def test_file_urls_everywhere(tmp_path: Path) -> None:
    src = tmp_path / "r.jsonl"
    write_records(src, synthetic_records(30))
    out = tmp_path / "corpus"
    report = export(f"jsonl:{src}", f"file://{out}", task="ner")
    assert report.records_exported == 30 and is_export_dir(out)
    assert report.out_dir == str(out)  # a local export: the usual folder, swapped in whole

    pulled = tmp_path / "pulled.jsonl"
    result = runner.invoke(app, ["pull", f"jsonl:{src}", "-o", f"file://{pulled}"])
    assert result.exit_code == 0, result.output
    assert len(pulled.read_text(encoding="utf-8").splitlines()) == 30

    corpus = tmp_path / "corpus.jsonl.gz"
    with gzip.open(corpus, "wt", encoding="utf-8") as fh:
        fh.write("".join(json.dumps({"id": f"d{i}", "text": f"text {i}"}) + "\n" for i in range(5)))
    assert [d.id for d in read_documents(f"file://{corpus}")] == [f"d{i}" for i in range(5)]
    dest = tmp_path / "dest.jsonl"
    result = runner.invoke(app, ["import", f"file://{corpus}", f"jsonl:{dest}"])
    assert result.exit_code == 0, result.output
    assert "5 imported" in result.output


def _without_s3fs(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on a machine without s3fs: its import fails, and fsspec has not registered it."""
    monkeypatch.setitem(sys.modules, "s3fs", None)
    for protocol in ("s3", "s3a"):
        monkeypatch.delitem(_REGISTRY, protocol, raising=False)


def test_missing_s3fs_gives_the_exact_install_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _without_s3fs(monkeypatch)
    with pytest.raises(MissingDependencyError) as caught:
        remote.exists("s3://bucket/corpus.jsonl")
    assert caught.value.install_hint == "pip install 'annobridge[s3]'"
    assert str(caught.value) == (
        "'s3://' paths need the 's3fs' package: pip install 'annobridge[s3]' "
        "(from a checkout of annobridge: pip install -e '.[s3]')"
    )
    src = tmp_path / "r.jsonl"
    write_records(src, synthetic_records(3))
    # through the CLI (rich must not eat "[s3]"), for each kind of file argument
    for args in (
        ["pull", f"jsonl:{src}", "-o", "s3://bucket/records.jsonl"],
        ["export", f"jsonl:{src}", "-t", "ner", "-o", "s3://bucket/corpus"],
        ["import", "s3://bucket/corpus.jsonl", f"jsonl:{tmp_path / 'dest.jsonl'}"],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert "pip install 'annobridge[s3]' (from a checkout of annobridge: pip install -e '.[s3]')" in " ".join(
            result.output.split()
        ), result.output
        assert "Traceback" not in result.output
    assert not (tmp_path / "dest.jsonl").exists()


def test_missing_fsspec_still_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fsspec", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'annobridge\[s3\]'"):
        remote.exists("s3://bucket/x.jsonl")
    with pytest.raises(MissingDependencyError, match=r"pip install 'annobridge\[remote\]'"):
        remote.exists("sftp://host/x.jsonl")


@pytest.mark.parametrize(
    ("url", "extra", "package"), [("gs://b/x.jsonl", "gcs", "gcsfs"), ("az://c/x", "azure", "adlfs")]
)
def test_other_stores_name_their_extra(url: str, extra: str, package: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, package, None)  # whether or not it is installed here
    for protocol in ("gs", "gcs", "az", "abfs", "abfss"):
        monkeypatch.delitem(_REGISTRY, protocol, raising=False)
    with pytest.raises(MissingDependencyError) as caught:
        remote.exists(url)
    assert caught.value.install_hint == f"pip install 'annobridge[{extra}]'"
    assert f"'{package}' package" in str(caught.value)


def test_unknown_protocol_is_a_usage_error() -> None:
    from annobridge.errors import UsageError

    with pytest.raises(UsageError, match="unknown protocol 'nosuchstore'"):
        remote.exists("nosuchstore://x/y")


def test_memory_store_gets_a_temporary_name_then_a_move() -> None:
    """fsspec's memory:// is not an object store: the file is put beside the target and moved over it."""
    fs = fsspec.filesystem("memory")
    url = "memory://annobridge-test/out/records.jsonl"
    atomic_write_text(url, "old\n")
    assert fs.cat_file("/annobridge-test/out/records.jsonl") == b"old\n"
    with pytest.raises(RuntimeError), atomic_open(url, "w") as fh:
        fh.write("new, half written\n")
        assert fs.cat_file("/annobridge-test/out/records.jsonl") == b"old\n"  # nothing uploaded while writing
        raise RuntimeError("interrupted")
    assert fs.cat_file("/annobridge-test/out/records.jsonl") == b"old\n"
    atomic_write_text(url, "new\n")
    assert fs.cat_file("/annobridge-test/out/records.jsonl") == b"new\n"
    assert [Path(p).name for p in fs.ls("/annobridge-test/out", detail=False)] == ["records.jsonl"]  # no temporary left
    fs.rm("/annobridge-test", recursive=True)
