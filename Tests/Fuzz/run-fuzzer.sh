#!/usr/bin/env bash
# Fuzzes HTTPRequestParser with libFuzzer + AddressSanitizer (+ LeakSanitizer, on by default on
# Linux). HTTPCore has no dependencies, so the harness is compiled with swiftc directly.
#
#   bash Tests/Fuzz/run-fuzzer.sh [seconds]        # default 60
#
# Environment:
#   FUZZ_SELFTEST_LEAK=1   leak on purpose: the run must stop with "ERROR: LeakSanitizer"
#   FUZZ_EXTRA="..."       more libFuzzer flags
#
# Seeds: Tests/Fuzz/corpus (committed). Work corpus: Tests/Fuzz/corpus-work (ignored; grows
# across runs). Crashes, leaks, timeouts: Tests/Fuzz/{crash,leak,timeout}-<sha1> (ignored).
# Replay one: .build-fuzz/http-parser-fuzzer Tests/Fuzz/crash-<sha1>
set -euo pipefail

seconds="${1:-60}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

out=.build-fuzz
binary="$out/http-parser-fuzzer"
mkdir -p "$out"

# Rebuild when a parser source or the harness is newer than the binary.
needs_build=1
if [[ -x "$binary" ]]; then
    needs_build=0
    for source in Sources/HTTPCore/*.swift Tests/Fuzz/HTTPParserFuzzer.swift; do
        [[ "$source" -nt "$binary" ]] && needs_build=1
    done
fi
if [[ $needs_build == 1 ]]; then
    echo "== building $binary"
    swiftc -parse-as-library -sanitize=fuzzer,address -O -g \
        -swift-version 6 -use-ld=lld \
        Sources/HTTPCore/*.swift Tests/Fuzz/HTTPParserFuzzer.swift \
        -module-name HTTPParserFuzz -module-cache-path "$out/module-cache" \
        -o "$binary"
fi

# Swift's own crash backtracer reads memory in ways ASan reports; libFuzzer and ASan report instead.
export SWIFT_BACKTRACE=enable=no

work=Tests/Fuzz/corpus-work
mkdir -p "$work"
cp -n Tests/Fuzz/corpus/* "$work"/ 2>/dev/null || true


echo "== fuzzing for ${seconds}s (started $(date -u +%FT%TZ))"
set +e
# max_len above the 4 KiB header limit of the harness, so limit paths are reachable.
# shellcheck disable=SC2086
"$binary" \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=5 \
    -max_len=8192 -detect_leaks=1 -print_final_stats=1 \
    -artifact_prefix=Tests/Fuzz/ -dict=Tests/Fuzz/http.dict \
    ${FUZZ_EXTRA:-} \
    "$work"
status=$?
set -e
echo "== finished $(date -u +%FT%TZ) with status $status"
ls -1 Tests/Fuzz/crash-* Tests/Fuzz/leak-* Tests/Fuzz/timeout-* 2>/dev/null && echo "== ARTIFACTS ABOVE" || echo "== no crash, leak or timeout artifacts"
exit "$status"
