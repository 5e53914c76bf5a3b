"""Pull what changed since the saved cursor: ``annobridge pull SOURCE -o OUT --since CURSOR``.

    python scripts/pull.py SOURCE --out state/pulled.jsonl --cursor state/cursor.txt

Runs annobridge's own ``pull`` command (with the Python that runs this script), without ``--since`` when
there is no saved cursor yet (the first run pulls everything). The cursor for the next pull, which
``annobridge pull`` prints on its last line (``Next incremental pull: annobridge pull ... --since VALUE``),
is written to ``CURSOR.next``, not to CURSOR: ``merge.py`` moves it into place once the pulled records are
safely merged, so a run that fails in between pulls the same changes again next time instead of losing them.

``--overlap SECONDS`` starts the pull that much before the saved cursor. A timestamp cursor misses an answer
saved in the same clock tick as the last one the previous pull saw (Prodigy stamps answers in whole
seconds, and pulls what is strictly later than the cursor); an overlap of 1 pulls that second again, and
``merge.py`` keeps each re-pulled answer once. The saved cursor never moves backwards.

(A spaCy project runs each command without a shell, so ``--since $(cat state/cursor.txt)`` cannot be written
in project.yml itself; this script is that one line of shell.)
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

from annobridge.kit import as_datetime

NEXT = "Next incremental pull: "


def pending(cursor: Path) -> Path:
    """Where the cursor of a pull waits until its records are merged."""
    return cursor.with_name(cursor.name + ".next")


def next_cursor(output: str) -> str | None:
    """The ``--since`` value of the ``Next incremental pull:`` line ``annobridge pull`` prints, if any."""
    for line in reversed(output.splitlines()):
        if line.startswith(NEXT):
            words = shlex.split(line[len(NEXT) :])
            if "--since" in words[:-1]:
                return words[words.index("--since") + 1]
    return None


def _when(cursor: str) -> datetime | None:
    """The cursor's time when it is a plain timestamp (None for an exact cursor: JSON, doccano's ``dc1:...``)."""
    try:
        return None if cursor.startswith("{") else as_datetime(cursor)
    except (TypeError, ValueError):
        return None


def earlier(since: str, overlap: float) -> str:
    """A timestamp cursor moved ``overlap`` seconds back (an exact cursor stays as it is)."""
    when = _when(since)
    if when is None or overlap <= 0:
        return since
    return (when - timedelta(seconds=overlap)).isoformat()


def later(old: str, new: str) -> str:
    """The newer of two cursors: a pull that found nothing after an overlap must not move the cursor back."""
    before, after = _when(old), _when(new)
    if before is not None and after is not None and (before.tzinfo is None) == (after.tzinfo is None):
        return old if after < before else new
    return new


def pull(source: str, out: Path, cursor: Path, overlap: float = 0.0) -> int:
    since = cursor.read_text(encoding="utf-8").strip() if cursor.is_file() else ""
    command = [sys.executable, "-m", "annobridge", "pull", source, "-o", str(out)]
    if since:
        command += ["--since", earlier(since, overlap)]
    out.parent.mkdir(parents=True, exist_ok=True)
    print("Running:", shlex.join(["annobridge", *command[3:]]), flush=True)
    done = subprocess.run(command, capture_output=True, text=True)
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr)
    if done.returncode != 0:
        print(f"annobridge pull failed (exit {done.returncode}); the cursor stays at {since or 'the start'}",
              file=sys.stderr)
        return done.returncode
    new = next_cursor(done.stdout)
    if new is not None and since:
        new = later(since, new)
    waiting = pending(cursor)
    if new is None:  # nothing to go on (an empty source): the next run starts where this one did
        waiting.unlink(missing_ok=True)
    else:
        waiting.write_text(new + "\n", encoding="utf-8")
    print(f"since: {since or '(none: full pull)'}; next cursor: {new or '(unchanged)'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="annobridge pull SOURCE -o OUT --since <saved cursor>")
    parser.add_argument("source", help="annobridge source URL, e.g. prodigy:assets/annotations.db?dataset=news")
    parser.add_argument("--out", type=Path, required=True, help="records JSONL this pull writes")
    parser.add_argument("--cursor", type=Path, required=True, help="file holding the saved cursor")
    parser.add_argument("--overlap", type=float, default=0.0,
                        help="start this many seconds before a timestamp cursor (answers pulled again are kept once)")
    args = parser.parse_args(argv)
    return pull(args.source, args.out, args.cursor, args.overlap)


if __name__ == "__main__":
    raise SystemExit(main())
