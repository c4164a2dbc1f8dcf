#!/usr/bin/env python3
"""Layering check: every component includes only the components it declares it depends on.

A component is a top-level folder whose CMakeLists.txt calls ledger_component(<name> ... DEPENDS a b c ...).
That call is the one place a dependency is written down: CMake links by it and this check enforces it.
Fails (exit 1, one line per finding) when
  - a source under <name>/ includes "<other>/..." for a component <other> not in its DEPENDS,
  - a source reaches into another folder with a relative include ("../"),
  - the DEPENDS arrows form a cycle,
  - production code includes a test seam (a header named testing.h: storage/testing.h writes raw records).
Usage: check_layers.py [SOURCE_ROOT] | --self-test
"""
import pathlib
import re
import sys

COMPONENT_CALL = re.compile(r"ledger_component\(\s*(\w+)(.*?)\)", re.S)
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
KEYWORDS = {"SOURCES", "DEPENDS", "LIBS", "PUBLIC_LIBS"}


def declared_components(root):
    components = {}
    for cmake in sorted(root.glob("*/CMakeLists.txt")):
        for match in COMPONENT_CALL.finditer(cmake.read_text()):
            name, body = match.group(1), match.group(2)
            words = re.sub(r"#[^\n]*", "", body).split()
            deps, section = [], None
            for word in words:
                if word in KEYWORDS:
                    section = word
                elif section == "DEPENDS":
                    deps.append(word)
            if cmake.parent.name != name:
                sys.exit(f"check_layers: {cmake}: component {name} must live in a folder of that name")
            components[name] = set(deps)
    # schemas is generated code with no C++ sources of its own: a component that depends on nothing.
    components.setdefault("schemas", set())
    return components


def find_cycle(components):
    state = {}

    def visit(node, path):
        state[node] = "open"
        for dep in sorted(components.get(node, ())):
            if state.get(dep) == "open":
                return path + [node, dep]
            if dep not in state:
                cycle = visit(dep, path + [node])
                if cycle:
                    return cycle
        state[node] = "done"
        return None

    for node in sorted(components):
        if node not in state:
            cycle = visit(node, [])
            if cycle:
                return cycle
    return None


def self_test():
    """Builds small trees in a temporary folder and checks that each kind of finding is found."""
    import subprocess
    import tempfile

    def tree(files):
        folder = pathlib.Path(tempfile.mkdtemp(prefix="check_layers."))
        for path, text in files.items():
            (folder / path).parent.mkdir(parents=True, exist_ok=True)
            (folder / path).write_text(text)
        run = subprocess.run([sys.executable, __file__, str(folder)], capture_output=True, text=True)
        return run.returncode, run.stdout

    base = {"low/CMakeLists.txt": "ledger_component(low SOURCES src/a.cc)",
            "low/include/low/a.h": "",
            "high/CMakeLists.txt": "ledger_component(high SOURCES src/b.cc DEPENDS low)",
            "high/src/b.cc": '#include "low/a.h"\n'}
    cases = [
        ("a clean tree passes", {}, 0, "no include against"),
        ("an include running back up fails", {"low/src/a.cc": '\n#include "high/b.h"\n'}, 1,
         'low/src/a.cc:2: low includes "high/b.h" but does not depend on high'),
        ("a relative include fails", {"high/src/c.cc": '#include "../../low/src/a.cc"\n'}, 1, "relative include"),
        ("production code including a test seam fails", {"low/include/low/testing.h": "",
                                                          "high/src/d.cc": '#include "low/testing.h"\n'}, 1,
         'production code includes the test seam "low/testing.h"'),
        ("a cycle fails", {"low/CMakeLists.txt": "ledger_component(low SOURCES src/a.cc DEPENDS high)"}, 1,
         "dependency cycle"),
    ]
    failed = 0
    for title, change, want_code, want_text in cases:
        code, out = tree({**base, **change})
        if code != want_code or want_text not in out:
            print(f"self-test FAILED: {title}: exit {code}, output:\n{out}")
            failed += 1
    print(f"check_layers self-test: {len(cases) - failed}/{len(cases)} cases pass")
    return 1 if failed else 0


def main():
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parent.parent)
    components = declared_components(root)
    findings = []
    for name, deps in components.items():
        unknown = deps - components.keys()
        if unknown:
            findings.append(f"{name}/CMakeLists.txt: DEPENDS names unknown component(s) {', '.join(sorted(unknown))}")
    cycle = find_cycle(components)
    if cycle:
        findings.append("dependency cycle: " + " -> ".join(cycle))
    checked = 0
    for name, deps in sorted(components.items()):
        allowed = deps | {name}
        for source in sorted((root / name).rglob("*")):
            if source.suffix not in (".h", ".cc") or not source.is_file():
                continue
            checked += 1
            text = source.read_text()
            for match in INCLUDE.finditer(text):
                target = match.group(1)
                line = text.count("\n", 0, match.start(1)) + 1
                where = f"{source.relative_to(root)}:{line}"
                if ".." in pathlib.PurePosixPath(target).parts:
                    findings.append(f'{where}: relative include "{target}" reaches outside the component')
                    continue
                is_seam_implementation = source.relative_to(root).parts == (name, "src", "testing.cc")
                if target.endswith("/testing.h") and not is_seam_implementation:
                    findings.append(f'{where}: production code includes the test seam "{target}"')
                    continue
                first = target.split("/", 1)[0] if "/" in target else None
                if first in components and first not in allowed:
                    findings.append(f'{where}: {name} includes "{target}" but does not depend on {first}')
    for finding in findings:
        print(finding)
    if findings:
        print(f"check_layers: {len(findings)} finding(s)")
        return 1
    print(f"check_layers: {len(components)} components, {checked} sources, no include against the layering")
    return 0


if __name__ == "__main__":
    sys.exit(main())
