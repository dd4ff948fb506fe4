"""Summarise JSON files: one line per top-level key with its type and size."""
import json
import os
import sys


def describe(value):
    if isinstance(value, dict):
        return f"object with {len(value)} keys"
    if isinstance(value, list):
        return f"array of {len(value)}"
    return type(value).__name__


def main(paths):
    if not paths:
        print("usage: stats.py FILE.json...", file=sys.stderr)
        return 2
    lines = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        lines.append(f"{path}: {describe(data)}")
        if isinstance(data, dict):
            for key, value in sorted(data.items()):
                lines.append(f"  {key}: {describe(value)}")
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    os.makedirs("out", exist_ok=True)
    with open("out/json-stats.txt", "w", encoding="utf-8") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
