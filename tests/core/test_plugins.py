"""A third-party adapter registered only through an entry point of a separately installed package."""

import subprocess
import sys
from pathlib import Path

import pytest

from annobridge import Document, open_adapter
from annobridge.adapter import AdapterURL
from annobridge.errors import UsageError
from annobridge.plugins import Registry

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "plugin-memory"


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory: pytest.TempPathFactory):
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(EXAMPLE)],
        check=True,
    )
    sys.path.insert(0, str(target))
    yield target
    sys.path.remove(str(target))
    for name in [m for m in sys.modules if m.startswith("annobridge_memory")]:
        del sys.modules[name]


def test_entry_point_plugin_is_discovered_and_works(installed_example: Path, tmp_path: Path) -> None:
    registry = Registry()
    registry.load_entry_points()
    adapters = registry.adapters()
    assert "memory" in adapters and adapters["memory"].distribution == "annobridge-memory"
    assert "jsonl" in adapters  # built-ins come through the same mechanism

    cls = adapters["memory"].adapter
    with cls(AdapterURL.parse("memory:test")) as adapter:
        result = adapter.import_documents([Document.create("Maria moved to Oslo", id="1")])
        again = adapter.import_documents([Document.create("Maria moved to Oslo", id="1")])
        assert (result.created, again.existing) == (1, 1)
        assert [r.id for r in adapter.pull()] == ["1"]


def test_builtin_registry_without_the_example() -> None:
    registry = Registry()
    registry.load_entry_points()
    assert "jsonl" in registry.adapters()


def test_url_parsing_and_redaction() -> None:
    url = AdapterURL.parse("labelstudio://user:pw@127.0.0.1:8080/projects/3?token=abc")
    assert (url.scheme, url.host, url.port, url.path) == ("labelstudio", "127.0.0.1", 8080, "/projects/3")
    assert url.base_url() == "http://127.0.0.1:8080"
    assert "pw" not in str(url) and "abc" not in str(url)
    assert AdapterURL.parse("labelstudio://example.org/projects/1").base_url() == "https://example.org"
    assert AdapterURL.parse("doccano+http://example.org:8000/projects/1").base_url() == "http://example.org:8000"
    assert AdapterURL.parse("prodigy:data/prodigy.db?dataset=news").params == {"dataset": "news"}
    assert AdapterURL.parse("records.jsonl").scheme == "jsonl"
    with pytest.raises(UsageError, match="Cannot tell which tool"):
        AdapterURL.parse("somefile.xyz")
    with pytest.raises(UsageError, match="No adapter"):
        open_adapter("nosuch:thing")


def test_missing_extra_gives_a_one_line_install_hint() -> None:
    from annobridge import Adapter, MissingDependencyError

    class NeedsSdk(Adapter):
        scheme = "needs"
        requires = {"annobridge_no_such_sdk": "annobridge-needs[sdk]"}

        def pull(self, *, answers=None, since=None):
            return iter(())

    with pytest.raises(MissingDependencyError) as info:
        NeedsSdk.check_dependencies()
    assert str(info.value) == (
        "The needs adapter needs the 'annobridge_no_such_sdk' package: pip install 'annobridge-needs[sdk]'"
    )
    assert "\n" not in str(info.value)
