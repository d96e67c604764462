"""Generate router_lib's sync modules from their async sources (psycopg 3 does the same).

The async module is the one to edit; its sync twin is written by this script and checked by
``make lint`` (``--check``), so the two cannot drift. The transformation works on tokens, so
comments and layout survive: ``async``/``await`` are removed, names are mapped through
``NAMES`` (``AsyncConnectionPool`` -> ``ConnectionPool``, ``asyncio.sleep`` ->
``time.sleep``, ...), and the result is formatted and import-sorted by ruff. A use of
``asyncio`` other than ``asyncio.sleep`` is refused: it has no mechanical sync equivalent.

    python scripts/async_to_sync.py          # rewrite the sync modules
    python scripts/async_to_sync.py --check  # exit 1 if any is out of date
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (async source, generated sync module), relative to the repository root.
PAIRS = (
    ("router_lib/async_execution.py", "router_lib/sync_execution.py"),
    ("router_lib/async_session.py", "router_lib/session.py"),
)

NAMES = {
    "AsyncConnectionPool": "ConnectionPool",
    "AsyncCursor": "Cursor",
    "AsyncExecutor": "SyncExecutor",
    "AsyncIterator": "Iterator",
    "AsyncPools": "SyncPools",
    "AsyncResultCache": "ResultCache",
    "AsyncRoutedConnection": "RoutedConnection",
    "AsyncRouter": "Router",
    "AsyncSession": "Session",
    "AsyncTransaction": "Transaction",
    "__aenter__": "__enter__",
    "__aexit__": "__exit__",
    "async_execution": "sync_execution",
    "async_router": "router",
    "async_session": "session",
    "asynccontextmanager": "contextmanager",
    "wait_for_change_async": "wait_for_change",
}

HEADER = "# Generated from {source} by scripts/async_to_sync.py: edit that one.\n"


class Unconvertible(Exception):
    pass


def convert(source: str, name: str) -> str:
    """The sync text of one async module (before formatting)."""
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    lines = source.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))

    def at(position: tuple[int, int]) -> int:
        return offsets[position[0] - 1] + position[1]

    edits: list[tuple[int, int, str]] = []  # (start, end, replacement) in source offsets
    for index, token in enumerate(tokens):
        if token.type != tokenize.NAME:
            continue
        following = tokens[index + 1] if index + 1 < len(tokens) else token
        if token.string in ("async", "await"):
            if token.string == "async" and following.string not in ("def", "with", "for"):
                continue
            edits.append((at(token.start), at(following.start), ""))
        elif token.string == "asyncio":
            if following.string == "." and tokens[index + 2].string == "sleep":
                edits.append((at(token.start), at(token.end), "time"))
            elif _is_import_of_asyncio(tokens, index):
                line_start = offsets[token.start[0] - 1]
                edits.append((line_start, offsets[token.start[0]], ""))
            else:
                raise Unconvertible(f"{name}:{token.start[0]}: asyncio.{tokens[index + 2].string}")
        elif token.string in NAMES:
            edits.append((at(token.start), at(token.end), NAMES[token.string]))
    out = source
    for start, end, text in sorted(edits, reverse=True):
        out = out[:start] + text + out[end:]
    return out


def _is_import_of_asyncio(tokens: list[tokenize.TokenInfo], index: int) -> bool:
    return (
        index > 0
        and tokens[index - 1].string == "import"
        and tokens[index + 1].type in (tokenize.NEWLINE, tokenize.NL)
    )


def _ruff(args: list[str], text: str, filename: str) -> str:
    ruff = Path(sys.executable).with_name("ruff")
    command = [str(ruff) if ruff.exists() else "ruff", *args, "--stdin-filename", filename]
    done = subprocess.run(command, input=text, capture_output=True, text=True, cwd=ROOT)
    if done.returncode not in (0, 1) or not done.stdout:
        raise Unconvertible(f"ruff {' '.join(args)} failed on {filename}: {done.stderr}")
    return done.stdout


def generate(source_path: str, target_path: str) -> str:
    source = (ROOT / source_path).read_text()
    text = HEADER.format(source=source_path) + convert(source, source_path)
    text = _ruff(["check", "--fix", "--select", "I,F401", "--exit-zero", "-q"], text, target_path)
    return _ruff(["format", "-q"], text, target_path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check, exit 1 if stale")
    args = parser.parse_args()
    stale = []
    for source_path, target_path in PAIRS:
        text = generate(source_path, target_path)
        target = ROOT / target_path
        if target.exists() and target.read_text() == text:
            continue
        if args.check:
            stale.append(target_path)
        else:
            target.write_text(text)
            print(f"wrote {target_path} from {source_path}")
    if stale:
        print(
            f"out of date: {', '.join(stale)}: run `python scripts/async_to_sync.py`",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
