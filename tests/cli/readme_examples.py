#!/usr/bin/env python3
"""Runs README.md's examples as a new user would paste them, in order, and fails naming the README line.

Marked blocks only (an HTML comment on the line just before the opening fence, invisible in the rendering):
  <!-- readme-test -->              the next fenced block is a shell example: run it with `bash -e`
  <!-- readme-test: file NAME -->   the next fenced block is a file the examples use: write it to NAME
Inside a shell example, a comment holding `prints: TEXT` (up to the end of the line) says what the example
prints: the block's standard output must contain TEXT.

All blocks run in one fresh temporary folder that stands for the repository's root (`schemas/` is linked
there), with the `ledger` program's folder first on PATH. A block runs in a process group of its own, which is
killed when the block ends, so a background process it started (or left behind by failing) goes with it.
Unmarked blocks (installation, real Kafka clusters, network downloads) are never run.

Usage: readme_examples.py README.md LEDGER_BINARY | --self-test
Exit 0 when every marked block passed; 1 with one line per failure (README.md:LINE: ...).
"""
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile

MARKER = re.compile(r"^<!--\s*readme-test(?::\s*(.*?))?\s*-->\s*$")
FENCE = re.compile(r"^```(\w*)\s*$")
PRINTS = re.compile(r"#.*?\bprints:\s*(.*?)\s*$")
BLOCK_TIMEOUT_SECONDS = 300


class Block:
    def __init__(self, line, kind, argument, text):
        self.line = line  # the opening fence's line number, 1-based
        self.kind = kind  # "run" or "file"
        self.argument = argument  # the file name for "file"
        self.text = text

    def expectations(self):
        """(line, text) for every `prints:` comment of the block."""
        found = []
        for offset, line in enumerate(self.text.splitlines()):
            match = PRINTS.search(line)
            if match and match.group(1):
                found.append((self.line + 1 + offset, match.group(1)))
        return found


def marked_blocks(readme_text, readme_name):
    """The marked blocks in order; raises ValueError naming the line of a marker without a block after it."""
    lines = readme_text.splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        marker = MARKER.match(lines[i])
        if not marker:
            i += 1
            continue
        argument = (marker.group(1) or "").strip()
        if i + 1 >= len(lines) or not FENCE.match(lines[i + 1]):
            raise ValueError(f"{readme_name}:{i + 1}: a readme-test marker must be followed by a fenced block")
        if argument.startswith("file "):
            kind, name = "file", argument[len("file "):].strip()
        elif argument == "":
            kind, name = "run", ""
        else:
            raise ValueError(f"{readme_name}:{i + 1}: unknown readme-test marker '{argument}'")
        end = i + 2
        while end < len(lines) and not FENCE.match(lines[end]):
            end += 1
        if end >= len(lines):
            raise ValueError(f"{readme_name}:{i + 2}: the block never closes")
        text = "\n".join(lines[i + 2:end]) + "\n"
        blocks.append(Block(i + 2, kind, name, text))
        i = end + 1
    return blocks


def tail(text, limit=2000):
    return text if len(text) <= limit else "..." + text[-limit:]


def run_block(block, folder, env, readme_name):
    """Returns the failure lines of one shell block (none when it passed)."""
    script = pathlib.Path(folder) / ".readme-block.sh"
    script.write_text(block.text)
    out_path, err_path = pathlib.Path(folder) / ".readme-block.out", pathlib.Path(folder) / ".readme-block.err"
    # Files, not pipes: a background process the block started keeps its output open, and waiting for the
    # pipes to close would wait for it.
    with open(out_path, "w") as out_file, open(err_path, "w") as err_file:
        process = subprocess.Popen(["bash", "-e", str(script)], cwd=folder, env=env, stdin=subprocess.DEVNULL,
                                   stdout=out_file, stderr=err_file, start_new_session=True)
        try:
            process.wait(timeout=BLOCK_TIMEOUT_SECONDS)
            timed_out = False
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            try:
                os.killpg(process.pid, signal.SIGKILL)  # whatever the block left running
            except ProcessLookupError:
                pass
            process.wait()
    out, err = out_path.read_text(errors="replace"), err_path.read_text(errors="replace")
    if timed_out:
        return [f"{readme_name}:{block.line}: the example did not finish within {BLOCK_TIMEOUT_SECONDS} s\n"
                f"stdout:\n{tail(out)}\nstderr:\n{tail(err)}"]
    failures = []
    if process.returncode != 0:
        failures.append(f"{readme_name}:{block.line}: the example exited {process.returncode}\n"
                        f"stdout:\n{tail(out)}\nstderr:\n{tail(err)}")
        return failures
    for line, expected in block.expectations():
        if expected not in out:
            failures.append(f"{readme_name}:{line}: the example does not print '{expected}' (block at line "
                            f"{block.line})\nstdout:\n{tail(out)}\nstderr:\n{tail(err)}")
    return failures


def run_readme(readme_path, ledger_binary, source_root=None):
    """Runs the marked blocks of readme_path; returns the list of failure lines."""
    readme_path = pathlib.Path(readme_path)
    name = readme_path.name
    try:
        blocks = marked_blocks(readme_path.read_text(), name)
    except ValueError as error:
        return [str(error)]
    if not any(block.kind == "run" for block in blocks):
        return [f"{name}: no example is marked <!-- readme-test -->: nothing would be checked"]
    env = dict(os.environ)
    env["PATH"] = str(pathlib.Path(ledger_binary).resolve().parent) + os.pathsep + env.get("PATH", "")
    folder = tempfile.mkdtemp(prefix="ledger-readme-")
    env["TMPDIR"] = folder
    failures = []
    try:
        root = pathlib.Path(source_root) if source_root else readme_path.resolve().parent
        if (root / "schemas").is_dir():
            os.symlink(root / "schemas", pathlib.Path(folder) / "schemas")
        for block in blocks:
            if block.kind == "file":
                target = pathlib.Path(folder) / block.argument
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(block.text)
                continue
            block_failures = run_block(block, folder, env, name)
            failures += block_failures
            if block_failures:
                break  # later examples build on this one: their failures would only repeat it
            print(f"{name}:{block.line}: passed", flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return failures


def self_test():
    """The harness itself: it runs marked blocks only, in order, checks `prints:` and names the right lines."""
    fake_binary_folder = tempfile.mkdtemp(prefix="ledger-readme-self-test-")
    try:
        binary = pathlib.Path(fake_binary_folder) / "ledger"
        binary.write_text("#!/bin/sh\necho \"fake ledger $*\"\n")
        binary.chmod(0o755)
        readme = pathlib.Path(fake_binary_folder) / "README.md"

        def check(text, want_failure_lines):
            readme.write_text(text)
            failures = run_readme(readme, binary, source_root=fake_binary_folder)
            got = [int(re.match(r"README\.md:(\d+):", f).group(1)) if re.match(r"README\.md:(\d+):", f) else None
                   for f in failures]
            if got != want_failure_lines:
                sys.exit(f"self-test: wanted failures at lines {want_failure_lines}, got {failures}")

        passing = ("# T\n\n```sh\nexit 1   # unmarked: never run\n```\n"
                   "<!-- readme-test: file in.txt -->\n```json\n{\"a\":1}\n```\n"
                   "<!-- readme-test -->\n```sh\ncat in.txt   # prints: {\"a\":1}\n"
                   "ledger demo   # prints: fake ledger demo\necho made > made.txt\n```\n"
                   "<!-- readme-test -->\n```sh\ncat made.txt   # the folder carries over; prints: made\n```\n")
        check(passing, [])
        check("<!-- readme-test -->\n```sh\ntrue\nfalse\n```\n", [2])  # exits non-zero: the block's line
        check("x\n<!-- readme-test -->\n```sh\necho one   # prints: two\n```\n", [4])  # the expectation's line
        check("<!-- readme-test -->\n```sh\nsleep 60 &\necho left behind   # prints: left behind\n```\n", [])
        check("<!-- readme-test -->\n\n```sh\ntrue\n```\n", [1])  # a marker without its block
        check("# nothing marked\n```sh\ntrue\n```\n", [None])
    finally:
        shutil.rmtree(fake_binary_folder, ignore_errors=True)
    print("self-test: passed")


def main(argv):
    if argv[1:] == ["--self-test"]:
        self_test()
        return 0
    if len(argv) != 3:
        sys.exit(__doc__)
    failures = run_readme(argv[1], argv[2])
    for failure in failures:
        print(failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
