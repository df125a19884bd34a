"""Write docs/errors.md from tests/test_bad_input.py's table: every bad input and its exact message.

    python -m tests.gen_error_docs            # from the repository root
    python -m tests.gen_error_docs --check    # exit 1 if docs/errors.md is out of date

Each case is run through the real CLI (in-process), exactly as the test runs it.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from clirun import env, message_lines  # noqa: E402
from conftest import locate_shakespeare  # noqa: E402
from test_bad_input import CASES, run_case  # noqa: E402

DOC = HERE.parent / "docs" / "errors.md"

HEADER = """# Bad input and what bigram says

Every input below is a case of `tests/test_bad_input.py`, which checks that the
message is one line naming the problem and the fix, that the exit code is the
one listed, and that no traceback is printed. This page is generated from that
table by running each case through the CLI:

    python -m tests.gen_error_docs

Paths are shown as `<tmp>/...` (each case runs in a scratch directory with a
3000-character slice of Tiny Shakespeare as `<tmp>/small.txt` and, where a
checkpoint is needed, one trained for 2 steps in `<tmp>/ckpt`).

| case | bad input | command | exit | message |
|---|---|---|---|---|
"""


def _clean(text: str, tmp: Path) -> str:
    text = text.replace(str(tmp), "<tmp>")
    text = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", text)
    return text.replace("|", "\\|")


def render(shakespeare: Path) -> str:
    rows = []
    for case in CASES:
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d).resolve()
            with env(BIGRAM_CACHE_DIR=str(tmp / "cache"), BIGRAM_DATA_URL="http://127.0.0.1:9/unreachable"):
                code, _, err, ws = run_case(case, tmp, shakespeare)
            lines = message_lines(err)
            message = lines[0] if lines else err.strip().splitlines()[-1]
            command = "bigram " + " ".join(a if " " not in a else repr(a) for a in case.argv)
            command = command.replace("{tmp}", "<tmp>").replace("{data}", "<tmp>/small.txt")
            command = command.replace("{ckpt}", "<tmp>/ckpt")
            rows.append(f"| {case.id} | {case.problem} | `{command}` | {code} | {_clean(message, tmp)} |")
    return HEADER + "\n".join(rows) + "\n"


def main() -> int:
    shakespeare = locate_shakespeare()
    text = render(shakespeare)
    if "--check" in sys.argv:
        same = DOC.is_file() and DOC.read_text(encoding="utf-8") == text
        print("docs/errors.md is up to date" if same else "docs/errors.md is out of date: run python -m tests.gen_error_docs")
        return 0 if same else 1
    DOC.write_text(text, encoding="utf-8")
    print(f"wrote {DOC} ({len(CASES)} cases)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
