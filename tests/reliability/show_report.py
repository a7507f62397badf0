"""Print the reliability figures of the last run (``reliability_report.json``), a line
per test and part, so that every run of ``make test`` shows them."""

from __future__ import annotations

import json
import sys

from tests.reliability.support import REPORT, summary


def main() -> int:
    try:
        data = json.loads(REPORT.read_text())
    except (OSError, ValueError):
        print(f"no reliability report at {REPORT.name}")
        return 0
    print(f"== reliability figures ({REPORT.name})")
    for test in sorted(data):
        for part in sorted(data[test]):
            print(f"[{test}/{part}] {summary(data[test][part])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
