#!/usr/bin/env python3
"""Writes the fuzz seeds that come from examples/ and the built-in skills into corpus/.

Each derived seed is named `ex-*`; the hand-written seeds beside them (hostile inputs,
framing sessions, audit logs) are left alone. Run it again after changing examples/ and
commit what changes. Inputs that hold several files use the `==> NAME <==` marker lines
that fuzz/src/lib.rs (`sections`) splits on.
"""
import json
import pathlib
import re

FUZZ = pathlib.Path(__file__).resolve().parent
REPO = FUZZ.parent
CORPUS = FUZZ / "corpus"

# Values tried for a parameter with a pattern: the first that the pattern matches is used.
SAMPLES = ["3,1,4", "src/app.py", "https://example.com/x", "Ada", "fix: a typo", "x"]


def skill_files():
    """Every JSON skill file of examples/ and the built-ins, with a seed name for each."""
    for f in sorted(REPO.glob("examples/*/.q-skills/*.json")) + sorted(
        REPO.glob("examples/*/.skillbox/skills/*.json")
    ):
        yield f"{f.parts[len(REPO.parts) + 1]}-{f.stem}", f
    for f in sorted(REPO.glob("crates/skillbox-skills/builtin/*.json")):
        yield f"builtin-{f.stem}", f


def sample(param):
    """A value for `param` that its declaration accepts, where one is easy to make."""
    kind = param.get("type", "string")
    if kind == "number":
        return 1
    if kind == "boolean":
        return True
    if kind == "enum":
        return (param.get("values") or ["x"])[0]
    pattern = param.get("pattern")
    for s in SAMPLES:
        try:
            if pattern is None or re.fullmatch(pattern, s):
                return s
        except re.error:
            break
    return "x"


def write(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def main():
    for old in CORPUS.glob("*/ex-*"):
        old.unlink()
    for name, f in skill_files():
        raw = f.read_bytes()
        write("skill_json", f"ex-{name}.json", raw)
        try:
            skill = json.loads(raw)
        except ValueError:
            continue
        params = [p for p in skill.get("parameters", []) if isinstance(p, dict) and "name" in p]
        if not params:
            continue
        values = {p["name"]: sample(p) for p in params}
        write("params", f"ex-{name}.json",
              raw.rstrip(b"\n") + b"\n==> params.json <==\n" + json.dumps(values).encode())
        for p in params:
            if isinstance(p.get("pattern"), str):
                write("pattern", f"ex-{name}-{p['name']}.txt",
                      f"{p['pattern']}\n==> value <==\n{values[p['name']]}".encode())
    for md in sorted(REPO.glob("examples/**/SKILL.md")):
        text = md.read_bytes()
        # The target's directory is `fuzz-skill`, and an Agent Skill's name is its directory's.
        text = re.sub(rb"(?m)^name:.*$", b"name: fuzz-skill", text, count=1)
        yaml = md.parent / "agents" / "openai.yaml"
        if yaml.exists():
            text += b"==> agents/openai.yaml <==\n" + yaml.read_bytes()
        write("agent_skill", f"ex-{md.parent.name}.md", text)


if __name__ == "__main__":
    main()
