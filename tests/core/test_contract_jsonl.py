"""The adapter contract (annobridge.testing) for the built-in ``jsonl:`` adapter and the example plugin."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from annobridge.adapter import Adapter
from annobridge.model import Annotation, Record, Span
from annobridge.testing import AdapterContract, ContractBackend

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "plugin-memory"


def annotate_jsonl(adapter: Adapter, doc_id: str, annotator: str, spans: list[Span], cats: dict[str, float]) -> None:
    """What a user of the format does: add an annotation to the document's record line."""
    path = Path(adapter.url.path)
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    for data in lines:
        record = Record.from_dict(data)
        if record.id == doc_id:
            now = datetime.now(timezone.utc)
            record.annotations.append(Annotation(annotator, list(spans), dict(cats), created_at=now, updated_at=now))
            data.clear()
            data.update(record.to_dict())
    path.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in lines), encoding="utf-8")


class TestJsonlContract(AdapterContract):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> ContractBackend:
        return ContractBackend(url=f"jsonl:{tmp_path / 'records.jsonl'}", annotate=annotate_jsonl, settle=0.01)


@pytest.fixture(scope="module")
def memory_plugin(tmp_path_factory: pytest.TempPathFactory):
    """The example plugin, pip-installed as a third party would install it."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(EXAMPLE)],
        check=True,
    )
    sys.path.insert(0, str(target))
    from annobridge.plugins import get_registry

    get_registry.cache_clear()  # found through its entry point, like any installed plugin
    import annobridge_memory

    yield annobridge_memory
    sys.path.remove(str(target))


class TestMemoryPluginContract(AdapterContract):
    @pytest.fixture
    def backend(self, memory_plugin, request: pytest.FixtureRequest) -> ContractBackend:
        name = request.node.name

        def annotate(adapter: Adapter, doc_id: str, annotator: str, spans: list[Span], cats: dict[str, float]) -> None:
            now = datetime.now(timezone.utc)
            memory_plugin.STORES[name][doc_id].annotations.append(
                Annotation(annotator, list(spans), dict(cats), created_at=now, updated_at=now)
            )

        memory_plugin.STORES.pop(name, None)
        return ContractBackend(url=f"memory:{name}", annotate=annotate)
