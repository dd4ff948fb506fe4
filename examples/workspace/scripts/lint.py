"""A small Python linter for the example workspace (standard library only).

Usage: python3 lint.py [--max-line-length=N] DIR...

Reports, one line each as PATH:LINE: CODE message:
  E999 syntax error, F401 module imported but unused, E501 line too long,
  W291 trailing whitespace, W191 indentation with a tab.
Exits 1 when it found something, 0 when the files are clean. It only reads.
"""

import ast
import os
import sys


def unused_imports(tree):
    imported = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                imported[(a.asname or a.name).split(".")[0]] = node.lineno
        elif isinstance(node, ast.ImportFrom):
            for a in node.names:
                imported[a.asname or a.name] = node.lineno
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    used |= {n.value.id for n in ast.walk(tree)
             if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)}
    unused = [(line, n) for n, line in imported.items() if n not in used]
    return sorted(unused)


def lint(path, max_len):
    found = []
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        tree = ast.parse(text, filename=path)
    except SyntaxError as e:
        return [(e.lineno or 1, "E999", f"syntax error: {e.msg}")]
    for line, name in unused_imports(tree):
        found.append((line, "F401", f"'{name}' imported but unused"))
    for n, line in enumerate(text.splitlines(), start=1):
        if len(line) > max_len:
            msg = f"line too long ({len(line)} > {max_len} characters)"
            found.append((n, "E501", msg))
        if line != line.rstrip():
            found.append((n, "W291", "trailing whitespace"))
        if line.startswith("\t"):
            found.append((n, "W191", "indentation contains tabs"))
    return sorted(found)


def main(argv):
    max_len = 79
    dirs = []
    for a in argv:
        if a.startswith("--max-line-length="):
            value = a.split("=", 1)[1]
            max_len = int(value) if value else max_len
        else:
            dirs.append(a)
    count = 0
    for d in dirs or ["."]:
        for root, subdirs, files in os.walk(d):
            subdirs.sort()
            for name in sorted(files):
                if name.endswith(".py"):
                    path = os.path.join(root, name)
                    for line, code, msg in lint(path, max_len):
                        print(f"{path}:{line}: {code} {msg}")
                        count += 1
    print(f"{count} problem(s)", file=sys.stderr)
    return 1 if count else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
