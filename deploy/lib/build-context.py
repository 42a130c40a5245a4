#!/usr/bin/env python3
"""Assembles the Docker build context of deploy/Dockerfile without Docker.

    build-context.py REPO DEST [--from head|worktree]

Takes the files of the committed tree (`git archive HEAD`, the default: what a clean clone
builds) or of the work tree, keeps those that deploy/Dockerfile.dockerignore lets through, and
makes DEST hold exactly them. Files whose bytes did not change are left alone, so their mtimes
stay and an incremental `swift build` in DEST rebuilds only what changed.

The ignore rules follow Docker's: one pattern per line, `#` comments, `!` re-includes, `*` and
`?` stay within one path segment, `**` spans segments, a pattern that matches a folder matches
everything under it, and the last matching pattern wins.
"""
import io
import os
import re
import subprocess
import sys
import tarfile


def compile_pattern(pattern):
    pattern = pattern.strip("/")
    regex = ""
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            regex += ".*"
            i += 2
            if i < len(pattern) and pattern[i] == "/":
                i += 1
            continue
        if c == "*":
            regex += "[^/]*"
        elif c == "?":
            regex += "[^/]"
        else:
            regex += re.escape(c)
        i += 1
    return re.compile("^" + regex + "$")


def load_rules(path):
    rules = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            negate = line.startswith("!")
            if negate:
                line = line[1:].strip()
            line = os.path.normpath(line)
            rules.append((negate, compile_pattern(line), line))
    return rules


def excluded(path, rules):
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    result = False
    for negate, regex, _ in rules:
        if any(regex.match(prefix) for prefix in prefixes):
            result = not negate
    return result


def committed_files(repo):
    data = subprocess.run(["git", "-C", repo, "archive", "--format=tar", "HEAD"],
                          check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        for member in archive.getmembers():
            if member.isfile():
                yield member.name, archive.extractfile(member).read(), member.mode & 0o111 != 0


def worktree_files(repo, rules):
    def may_hold_kept(folder):
        # An excluded folder is skipped unless a `!` pattern could re-include something in it.
        return not excluded(folder, rules) or any(
            negate and (raw + "/").startswith(folder + "/") or raw.startswith(folder + "/")
            for negate, _, raw in rules)
    for root, dirs, files in os.walk(repo):
        dirs[:] = [d for d in dirs if d != ".git" and may_hold_kept(os.path.relpath(os.path.join(root, d), repo))]
        for name in files:
            full = os.path.join(root, name)
            path = os.path.relpath(full, repo)
            if os.path.islink(full) or not os.path.isfile(full) or excluded(path, rules):
                continue
            with open(full, "rb") as handle:
                yield path, handle.read(), os.access(full, os.X_OK)


def main():
    args = sys.argv[1:]
    source = "head"
    if "--from" in args:
        index = args.index("--from")
        source = args[index + 1]
        del args[index:index + 2]
    repo, dest = args
    rules = load_rules(os.path.join(repo, "deploy", "Dockerfile.dockerignore"))
    files = committed_files(repo) if source == "head" else worktree_files(repo, rules)
    kept = set()
    written = 0
    for path, content, executable in files:
        if excluded(path, rules):
            continue
        kept.add(path)
        target = os.path.join(dest, path)
        try:
            with open(target, "rb") as handle:
                same = handle.read() == content
        except FileNotFoundError:
            same = False
        if not same:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as handle:
                handle.write(content)
            written += 1
        os.chmod(target, 0o755 if executable else 0o644)
    removed = 0
    for root, dirs, names in os.walk(dest, topdown=False):
        for name in names:
            full = os.path.join(root, name)
            if os.path.relpath(full, dest) not in kept:
                os.remove(full)
                removed += 1
        if root != dest and not os.listdir(root):
            os.rmdir(root)
    print(f"context {dest}: {len(kept)} files from {source} ({written} written, {removed} removed)")


if __name__ == "__main__":
    main()
