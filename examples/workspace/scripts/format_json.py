"""Formats the JSON files of a directory into another one (stdlib only).

Usage: python3 format_json.py SOURCE_DIR OUTPUT_DIR

Each SOURCE_DIR/NAME.json is parsed and written to OUTPUT_DIR/NAME.json
with sorted keys and two-space indentation. The sources are never
modified; a file that is not valid JSON is reported and skipped.
Exits 1 if any file was skipped.
"""

import json
import os
import sys


def main(src, out):
    os.makedirs(out, exist_ok=True)
    bad = 0
    for name in sorted(os.listdir(src)):
        if not name.endswith(".json"):
            continue
        try:
            with open(os.path.join(src, name), encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError) as e:
            print(f"{name}: skipped: {e}", file=sys.stderr)
            bad += 1
            continue
        with open(os.path.join(out, name), "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, sort_keys=True, ensure_ascii=False)
            f.write("\n")
        print(f"{os.path.join(out, name)}")
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: format_json.py SOURCE_DIR OUTPUT_DIR")
    sys.exit(main(sys.argv[1], sys.argv[2]))
