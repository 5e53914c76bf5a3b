"""The kit's small helpers for adapters: parallel_map, poll_until, DigestCursor / digest, AmbiguousWrite."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from annobridge import kit
from annobridge.errors import AdapterError, UsageError


def test_parallel_map_keeps_order_and_bounds_concurrency() -> None:
    lock = threading.Lock()
    running = peak = 0

    def work(x: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.01 * (x % 3))
        with lock:
            running -= 1
        return x * x

    assert list(kit.parallel_map(work, range(20), workers=3)) == [x * x for x in range(20)]
    assert 1 <= peak <= 3
    assert list(kit.parallel_map(work, [], workers=3)) == []
    with pytest.raises(ValueError, match="workers"):
        list(kit.parallel_map(work, [1], workers=0))


def test_parallel_map_raises_at_the_item_and_cancels_the_rest() -> None:
    started: list[int] = []

    def work(x: int) -> int:
        started.append(x)
        if x == 2:
            raise RuntimeError("boom")
        time.sleep(0.01)
        return x

    answers = kit.parallel_map(work, range(200), workers=2)
    assert [next(answers), next(answers)] == [0, 1]
    with pytest.raises(RuntimeError, match="boom"):
        next(answers)
    assert len(started) < 200  # the calls not started yet were cancelled


def test_parallel_map_abandoned_half_way_starts_nothing_more() -> None:
    started: list[int] = []

    def work(x: int) -> int:
        started.append(x)
        time.sleep(0.005)
        return x

    answers = kit.parallel_map(work, range(100), workers=2)
    assert next(answers) == 0
    answers.close()
    count = len(started)
    time.sleep(0.05)
    assert len(started) == count < 100


def test_poll_until_returns_the_done_answer_and_backs_off(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter([{"ready": False}, {"ready": False}, {"ready": True, "result": 7}])
    sleeps: list[float] = []
    monkeypatch.setattr("annobridge.polling.time.sleep", sleeps.append)
    got = kit.poll_until(lambda: next(answers), lambda a: bool(a["ready"]), timeout=60, message="never",
                         interval=0.1, backoff=0.1, max_interval=2.0)
    assert got == {"ready": True, "result": 7} and len(sleeps) == 2
    assert all(0.1 <= s <= 2.0 for s in sleeps)


def test_poll_until_checks_an_initial_answer_first() -> None:
    def read() -> dict[str, str]:
        raise AssertionError("no read needed")

    assert kit.poll_until(read, lambda a: a["status"] == "completed", timeout=1, message="x",
                          initial={"status": "completed"}) == {"status": "completed"}


def test_poll_until_times_out_with_the_message() -> None:
    with pytest.raises(AdapterError, match="is a worker running"):
        kit.poll_until(lambda: {"ready": False}, lambda a: bool(a["ready"]), timeout=0.05,
                       message="task 3 not finished: is a worker running?", interval=0.01)


def test_digest_is_stable_and_short() -> None:
    assert kit.digest([[(0, 3, "PER")], True]) == kit.digest([[[0, 3, "PER"]], True])
    assert kit.digest({"b": 1, "a": 2}) == kit.digest({"a": 2, "b": 1})
    assert len(kit.digest("x")) == 12 and len(kit.digest("x", size=16)) == 16
    assert kit.digest([1]) != kit.digest([2])


def test_digest_cursor_reports_changes_against_the_previous_pull(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    full = kit.DigestCursor.resume(None, kind="toy", owner=7)
    assert not full.incremental
    assert full.changed("a", [1]) and full.changed("b", [2])  # a full pull: everything is new
    full.state = {"counters": {"n": 2}}
    text = full.encode()
    assert kit.DigestCursor.is_cursor(text, "toy") and not kit.DigestCursor.is_cursor(text, "other")

    nxt = kit.DigestCursor.resume(text, kind="toy", owner=7)
    assert nxt.incremental and nxt.state == {"counters": {"n": 2}}
    assert not nxt.changed("a", [1])      # same as before
    assert nxt.changed("b", [3])          # changed
    assert nxt.changed("c", [4])          # new
    assert nxt.digests.keys() == {"a", "b", "c"}

    partial = kit.DigestCursor.resume(text, kind="toy", owner=7)
    partial.carry_over()                  # a pull that reads only some items keeps the others' digests
    partial.forget("a")
    assert partial.digests.keys() == {"b"}


def test_digest_cursor_refuses_other_owners_kinds_and_garbage(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cursor = kit.DigestCursor("toy", 7, owner_name="dataset")
    text = cursor.encode()
    with pytest.raises(UsageError, match="belongs to toy dataset 7, not 8"):
        kit.DigestCursor.resume(text, kind="toy", owner=8, owner_name="dataset")
    with pytest.raises(UsageError, match="Not a toy cursor"):
        kit.DigestCursor.resume("2026-01-01", kind="toy", owner=7)
    with pytest.raises(UsageError, match="Unreadable toy cursor"):
        kit.DigestCursor.resume("toy-cursor:v1:!!!", kind="toy", owner=7)


def test_long_digest_cursor_goes_to_a_cache_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cursor = kit.DigestCursor("toy", 1)
    for i in range(3000):
        cursor.changed(str(i), i)
    text = cursor.encode()
    assert "file:" in text and len(text) < 100
    files = list((tmp_path / "annobridge" / "toy-cursors").iterdir())
    assert len(files) == 1 and not files[0].name.startswith(".")
    assert kit.DigestCursor.resume(text, kind="toy", owner=1).previous == cursor.digests
    files[0].unlink()
    with pytest.raises(UsageError, match="not on this machine"):
        kit.DigestCursor.resume(text, kind="toy", owner=1)


def test_ambiguous_write_is_the_http_layers_and_needs_no_httpx_to_catch() -> None:
    pytest.importorskip("httpx")
    from annobridge.http import AmbiguousWrite

    assert kit.AmbiguousWrite is AmbiguousWrite and issubclass(AmbiguousWrite, AdapterError)
    exc = kit.AmbiguousWrite("lost", method="POST", path="/x", reconciled={"a": 1})
    assert (exc.method, exc.path, exc.reconciled, exc.reconcile_error) == ("POST", "/x", {"a": 1}, None)


def test_batched_is_lazy_and_keeps_the_remainder() -> None:
    assert list(kit.batched(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(kit.batched([], 3)) == []
    taken: list[int] = []

    def stream() -> Iterator[int]:
        for i in range(10):
            taken.append(i)
            yield i

    first = next(kit.batched(stream(), 4))
    assert first == [0, 1, 2, 3] and taken == [0, 1, 2, 3]  # only one batch read so far
    with pytest.raises(ValueError, match="size"):
        list(kit.batched([1], 0))


def test_match_path_gives_the_parts_or_says_what_was_expected() -> None:
    url = kit.AdapterURL.parse("labelstudio://127.0.0.1:8080/projects/12/")
    assert url.match_path(r"projects/(\d+|new)", "labelstudio://HOST:PORT/projects/ID").group(1) == "12"
    ws = kit.AdapterURL.parse("argilla://127.0.0.1:6900/my-ws/my-ds")
    assert ws.match_path(r"([^/]+)/+([^/]+)", "argilla://HOST:PORT/WORKSPACE/DATASET").groups() == ("my-ws", "my-ds")
    with pytest.raises(UsageError, match=r"argilla://127.0.0.1:6900/only: expected argilla://HOST:PORT/WORKSPACE"):
        kit.AdapterURL.parse("argilla://127.0.0.1:6900/only").match_path(r"([^/]+)/+([^/]+)",
                                                                         "argilla://HOST:PORT/WORKSPACE/DATASET")


class _Tool:
    """A toy store: ids -> native ids; ``lose`` answers of send are lost after the write landed."""

    def __init__(self, held: dict[str, int], *, lose: int = 0, refuse: tuple[str, ...] = (),
                 drop: tuple[str, ...] = ()) -> None:
        self.held, self.lose, self.refuse, self.drop = dict(held), lose, refuse, drop
        self.sent: list[list[str]] = []

    def send(self, pending: list[str]) -> list[tuple[str, str]]:
        self.sent.append(list(pending))
        for key in pending:
            if key not in self.refuse and key not in self.drop:
                self.held[key] = 100 + len(self.held)
        if self.lose:
            self.lose -= 1
            raise kit.AmbiguousWrite("answer lost")
        return [(key, "refused: empty text") for key in pending if key in self.refuse] + [("line 9", "bad line")]


def test_import_missing_sends_only_what_is_missing_and_accounts_per_id() -> None:
    tool = _Tool({"a": 1}, refuse=("c",), drop=("d",))
    result, created = kit.import_missing({k: k for k in "abcd"}, lookup=lambda: tool.held, send=tool.send,
                                         tool="toy")
    assert tool.sent == [["b", "c", "d"]]
    assert (result.existing, result.created, created) == (1, 1, {"b"})
    assert result.native_ids == {"a": 1, "b": tool.held["b"]}
    assert dict(result.failed) == {"c": "refused: empty text", "d": "not created by toy's import (it reported no "
                                   "error)", "line 9": "bad line"}


def test_import_missing_after_a_lost_answer_sends_nothing_twice() -> None:
    tool = _Tool({}, lose=1)
    result, created = kit.import_missing({k: k for k in "ab"}, lookup=lambda: tool.held, send=tool.send)
    assert tool.sent == [["a", "b"]]  # the second look-up found both: nothing sent again
    assert (result.created, result.existing, created) == (2, 0, {"a", "b"})


def test_import_missing_gives_up_after_its_attempts() -> None:
    class Lost(_Tool):
        def send(self, pending: list[str]) -> list[tuple[str, str]]:
            self.sent.append(list(pending))
            raise kit.AmbiguousWrite("answer lost")  # and nothing landed

    tool = Lost({})
    with pytest.raises(AdapterError, match="toy import kept failing; nothing was duplicated"):
        kit.import_missing({"a": "a"}, lookup=lambda: tool.held, send=tool.send, tool="toy", attempts=3)
    assert len(tool.sent) == 3


@pytest.mark.parametrize(("total", "expected"), [(10, 10), (10, 6), (0, 0), (3, 0), (2500, 2500)])
def test_items_offset_reads_a_listing_of_known_length_side_by_side(total: int, expected: int) -> None:
    httpx = pytest.importorskip("httpx")
    from annobridge.http import HttpClient

    asked: list[tuple[int, int]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        offset, limit = int(request.url.params["offset"]), int(request.url.params["limit"])
        assert request.url.params["confirmed"] == "true"
        asked.append((offset, limit))
        return httpx.Response(200, json={"results": [{"id": i} for i in range(offset, min(total, offset + limit))]})

    client = HttpClient("http://127.0.0.1:9", transport=httpx.MockTransport(handler))
    found = client.items_offset("/examples", expected=expected, params={"confirmed": "true"}, items="results",
                                workers=4, limit=1000)
    assert [item["id"] for item in found] == list(range(total))
    if expected:
        size = -(-expected // 4)  # the known length in (at most) 4 pages, then pages of 1000
        assert sorted(a for a in asked if a[1] == size) == [(start, size) for start in range(0, expected, size)]
        assert all(limit == 1000 for _offset, limit in asked if limit != size)


def test_ledger_changes_is_the_pull_template() -> None:
    from datetime import datetime, timedelta, timezone

    from annobridge.model import Annotation, Answer, Document, Record

    t0 = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)

    def rec(doc: str, *anns: tuple[str, datetime, Answer]) -> Record:
        return Record(Document(doc, "text"), [
            Annotation(f"u{aid}", answer=answer, updated_at=at, native_ids={"annotation_id": aid})
            for aid, at, answer in anns])

    full = kit.AnnotationLedger.resume(None, owner=1)
    listing = [("10", rec("a", ("1", t0, Answer.ACCEPT))), ("11", None), ("12", rec("b", ("2", t0, Answer.REJECT)))]
    assert [r.id for r in full.changes(listing)] == ["a", "b"]  # a full pull: every record, None left out
    assert full.newest == t0
    later = kit.AnnotationLedger.resume(full.cursor(full.newest, owner=1), owner=1)
    t1 = t0 + timedelta(seconds=5)
    listing = [("10", rec("a", ("1", t0, Answer.ACCEPT))), ("12", rec("b")),
               ("13", rec("c", ("3", t1, Answer.ACCEPT), ("4", t1, Answer.REJECT)))]
    out = list(later.changes(listing, [Answer.ACCEPT], deleted_id=int))
    assert [r.id for r in out] == ["b", "c"]  # "a" unchanged: left out; "b" lost annotation 2
    assert out[0].native_ids["deleted_annotation_ids"] == [2] and out[0].annotations == []
    assert [a.native_ids["annotation_id"] for a in out[1].annotations] == ["3"]  # only the answers asked for
    assert later.newest == t1


def test_lookup_reads_once_and_again_only_when_behind() -> None:
    reads: list[int] = []
    server = {1: "alice"}

    def load() -> dict[int, str]:
        reads.append(1)
        return dict(server)

    users: kit.Lookup[int, str] = kit.Lookup(load)
    assert reads == []  # nothing read before first use
    assert users() == {1: "alice"} and users() == {1: "alice"} and len(reads) == 1
    assert users.covering([1]) == {1: "alice"} and len(reads) == 1
    server[2] = "bob"  # created on the server since
    assert users.covering([1, 2])[2] == "bob" and len(reads) == 2
    assert users.covering([3]) == {1: "alice", 2: "bob"} and len(reads) == 3  # still unknown: one read, no loop
    assert users(refresh=True) and len(reads) == 4


def test_unique_items_reads_a_shifting_listing_again_until_complete() -> None:
    pytest.importorskip("httpx")
    from annobridge.http import HttpClient, Page

    passes = [
        [Page([{"id": 1}, {"id": 2}], {"total": 4}), Page([{"id": 2}, {"id": 3}], {"total": 4})],  # a tie shifted
        [Page([{"id": 4}, {"id": 1}], {"total": 4}), Page([{"id": 2}, {"id": 3}], {"total": 4})],
    ]
    calls = iter(passes)
    got = [item["id"] for item in HttpClient.unique_items(lambda: next(calls))]
    assert got == [1, 2, 3, 4]  # each once; the second pass found the missing one

    missing: list[int] = []
    always_short = [Page([{"id": 1}], {"total": 3})]
    got = [item["id"] for item in HttpClient.unique_items(lambda: always_short, passes=2, on_missing=missing.append)]
    assert got == [1] and missing == [2]
    no_total = [Page([{"id": 1}, {"id": 1}], [])]
    assert [i["id"] for i in HttpClient.unique_items(lambda: no_total, on_missing=missing.append)] == [1]
    assert missing == [2]  # without a total there is nothing to miss


def test_server_time_reads_the_date_header_or_falls_back_to_utc_now() -> None:
    httpx = pytest.importorskip("httpx")
    from datetime import datetime, timezone

    from annobridge.http import HttpClient

    dated = HttpClient("http://127.0.0.1:9", transport=httpx.MockTransport(
        lambda request: httpx.Response(200, headers={"Date": "Tue, 01 Dec 2026 12:00:05 GMT"}, json={})))
    assert dated.server_time("/api/version") == datetime(2026, 12, 1, 12, 0, 5, tzinfo=timezone.utc)
    undated = HttpClient("http://127.0.0.1:9", transport=httpx.MockTransport(lambda request: httpx.Response(200)))
    now = undated.server_time()
    assert now.tzinfo is not None and abs((datetime.now(timezone.utc) - now).total_seconds()) < 60
