"""One bad record costs only itself: the kit narrows a refused batch down, and reads the server's own words."""

from __future__ import annotations

from collections.abc import Sequence

import httpx

from annobridge.http import Rejection, isolate_rejected, refusal_words


def server(bad: set[int], name_positions: bool) -> tuple[list[list[int]], object]:
    calls: list[list[int]] = []

    def send(batch: Sequence[int]) -> Rejection | None:
        calls.append(list(batch))
        positions = tuple(i for i, item in enumerate(batch) if item in bad)
        if not positions:
            return None
        return Rejection(f"refused {sorted(batch[p] for p in positions)}", positions if name_positions else ())

    return calls, send


def test_named_positions_fail_at_once_and_the_rest_lands() -> None:
    calls, send = server({3, 7}, name_positions=True)
    failed = isolate_rejected(list(range(10)), send)  # type: ignore[arg-type]
    assert [item for item, _ in failed] == [3, 7]
    assert len(calls) == 2  # the batch, then the batch without the two named


def test_without_positions_the_batch_is_halved_down_to_the_bad_ones() -> None:
    calls, send = server({3, 7}, name_positions=False)
    failed = isolate_rejected(list(range(16)), send)  # type: ignore[arg-type]
    assert sorted(item for item, _ in failed) == [3, 7]
    landed = {i for batch in calls for i in batch if not ({3, 7} & set(batch))}
    assert landed == set(range(16)) - {3, 7}  # every good item was sent in a batch that landed
    assert all(reason.startswith("refused") for _, reason in failed)


def test_refusal_words_from_fastapi_drf_and_text() -> None:
    fastapi = httpx.Response(422, json={"detail": [{"loc": ["body", "items", 3, "fields"], "msg": "field required"}]})
    assert refusal_words(fastapi) == "items.3.fields: field required"
    assert refusal_words(httpx.Response(400, json={"text": ["This field may not be blank."]})) == (
        "text: This field may not be blank.")
    assert refusal_words(httpx.Response(404, json={"detail": "Not found."})) == "Not found."
    assert refusal_words(httpx.Response(500, text="<html>boom</html>")) == "HTTP 500: <html>boom</html>"
