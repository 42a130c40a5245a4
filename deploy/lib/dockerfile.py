#!/usr/bin/env python3
"""Reads deploy/Dockerfile for deploy/check.sh, so the check runs what the file says.

    dockerfile.py DOCKERFILE QUERY

QUERY is one of:
  swift-build        the builder stage's `swift build …` command line
  runtime-base       the runtime stage's base image
  runtime-run        the runtime stage's RUN commands, joined with ' && '
  runtime-packages   the packages its `apt-get install` lines name, one per line
  builder-packages   the same for the builder stage
  env                the runtime stage's ENV, one NAME=value per line
  user | workdir     its USER and WORKDIR
  command            ENTRYPOINT followed by CMD, one argument per line
  healthcheck        the HEALTHCHECK command, one argument per line
  expose             the EXPOSEd ports, one per line

Only the forms the project's Dockerfile uses are understood: JSON-array ENTRYPOINT, CMD and
HEALTHCHECK CMD, ENV NAME=value pairs, backslash continuations, and # comment lines.
"""
import json
import re
import shlex
import sys


def instructions(path):
    lines = open(path, encoding="utf-8").read().splitlines()
    current = ""
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("#") and not current:
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1].rstrip() + " "
            continue
        current += stripped
        if current.strip():
            keyword, _, rest = current.strip().partition(" ")
            yield keyword.upper(), rest.strip()
        current = ""


def stages(path):
    result = []
    for keyword, rest in instructions(path):
        if keyword == "FROM":
            result.append({"from": rest.split()[0], "items": []})
        elif result:
            result[-1]["items"].append((keyword, rest))
    return result


def main():
    path, query = sys.argv[1], sys.argv[2]
    all_stages = stages(path)
    builder, runtime = all_stages[0], all_stages[-1]
    out = []
    if query == "swift-build":
        for keyword, rest in builder["items"]:
            match = re.search(r"swift build [^&;]*", rest) if keyword == "RUN" else None
            if match:
                out.append(match.group(0).strip())
    elif query == "runtime-base":
        out.append(runtime["from"])
    elif query == "runtime-run":
        out.append(" && ".join(rest for keyword, rest in runtime["items"] if keyword == "RUN"))
    elif query in ("runtime-packages", "builder-packages"):
        stage = runtime if query == "runtime-packages" else builder
        for keyword, rest in stage["items"]:
            if keyword != "RUN":
                continue
            for command in re.split(r"&&|;", rest):
                words = shlex.split(command)
                if "apt-get" in words and "install" in words:
                    start = words.index("install") + 1
                    out += [w for w in words[start:] if not w.startswith("-")]
    elif query == "env":
        for keyword, rest in runtime["items"]:
            if keyword == "ENV":
                out += shlex.split(rest)
    elif query in ("user", "workdir"):
        for keyword, rest in runtime["items"]:
            if keyword == query.upper():
                out = [rest]
    elif query == "command":
        entrypoint, command = [], []
        for keyword, rest in runtime["items"]:
            if keyword == "ENTRYPOINT":
                entrypoint = json.loads(rest)
            elif keyword == "CMD":
                command = json.loads(rest)
        out = entrypoint + command
    elif query == "healthcheck":
        for keyword, rest in runtime["items"]:
            if keyword == "HEALTHCHECK":
                out = json.loads(rest[rest.index("CMD ") + 4:])
    elif query == "expose":
        for keyword, rest in runtime["items"]:
            if keyword == "EXPOSE":
                out += rest.split()
    else:
        sys.exit(f"unknown query {query}")
    print("\n".join(out))


if __name__ == "__main__":
    main()
