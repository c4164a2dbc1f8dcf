#!/usr/bin/env python3
"""Function length check: no function (tests included) is longer than 100 lines, so each reads top to bottom.

A function is a definition at namespace or class scope (indent 0, 2 or 4 in this clang-formatted tree) whose
line ends with "{" and holds a parameter list, measured to its matching "}" (braces in comments, strings and
character literals do not count). Lambdas count toward the function that holds them. Fails (exit 1) naming each
function over the limit: path:line, its length and its first line.
Usage: check_function_length.py [SOURCE_ROOT] | --self-test
"""
import pathlib
import re
import sys

LIMIT = 100
NOT_A_FUNCTION = re.compile(r"^\s*(if|for|while|switch|namespace|class|struct|enum|else|do|union|try|catch)\b")
SKIPPED = {"build", ".git"}


def code_of(line):
    line = re.sub(r'"(\\.|[^"\\])*"', '""', line)
    line = re.sub(r"'(\\.|[^'\\])'", "''", line)
    return re.sub(r"//.*", "", line)


def long_functions(path):
    lines = path.read_text().split("\n")
    found = []
    i = 0
    while i < len(lines):
        line = lines[i]
        indent = len(line) - len(line.lstrip())
        opens_function = (indent in (0, 2, 4) and code_of(line).rstrip().endswith("{")
                          and not NOT_A_FUNCTION.match(line)
                          and ("(" in line or ")" in line or (i > 0 and "(" in lines[i - 1]))
                          and "=" not in line.split("(")[0])
        if not opens_function:
            i += 1
            continue
        depth, j = 0, i
        while j < len(lines):
            code = code_of(lines[j])
            depth += code.count("{") - code.count("}")
            if depth <= 0 and j > i:
                break
            j += 1
        length = j - i + 1
        if length > LIMIT:
            found.append((i + 1, length, line.strip()[:80]))
        i = j + 1
    return found


def sources(root):
    for path in sorted(root.rglob("*")):
        parts = path.relative_to(root).parts
        if parts[0] in SKIPPED or parts[0].startswith("build-"):
            continue
        if path.suffix in (".h", ".cc") and path.is_file():
            yield path


def self_test():
    import tempfile
    folder = pathlib.Path(tempfile.mkdtemp(prefix="check_function_length."))
    short = "int Short() {\n" + "  x();\n" * 98 + "}\n"
    long_ = "int Long(int a) {\n" + '  if (a) { y("}"); }\n' * 99 + "}\n"
    (folder / "a.cc").write_text(short + long_)
    found = long_functions(folder / "a.cc")
    ok = len(found) == 1 and found[0][0] == 101 and found[0][1] == 101
    print(f"check_function_length self-test: {'pass' if ok else 'FAILED: ' + repr(found)}")
    return 0 if ok else 1


def main():
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parent.parent)
    findings, checked = [], 0
    for path in sources(root):
        checked += 1
        for line, length, text in long_functions(path):
            findings.append(f"{path.relative_to(root)}:{line}: {length} lines (limit {LIMIT}): {text}")
    for finding in findings:
        print(finding)
    if findings:
        print(f"check_function_length: {len(findings)} function(s) over {LIMIT} lines")
        return 1
    print(f"check_function_length: {checked} sources, no function over {LIMIT} lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
