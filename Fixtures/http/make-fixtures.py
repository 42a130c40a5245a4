#!/usr/bin/env python3
"""Writes Fixtures/http/requests/{valid,invalid}: raw request bytes (real CRLF) and, beside each,
the expected outcome. Run it after changing a case; the .http files are what tests read."""
import json, os

here = os.path.dirname(os.path.abspath(__file__))
R = "\r\n"

def req(line, headers, body=b""):
    head = line + R + "".join(f"{n}: {v}{R}" for n, v in headers) + R
    return head.encode("latin-1") + (body if isinstance(body, bytes) else body.encode())

invalid = {
    # name: (bytes, status, code)
    "cl-and-te": (req("POST /v1/ncs HTTP/1.1", [("Host", "x"), ("Content-Length", "5"), ("Transfer-Encoding", "chunked")], "5\r\nhello\r\n0\r\n\r\n"), 400, "invalid_framing"),
    "dup-cl-identical": (req("POST / HTTP/1.1", [("Host", "x"), ("Content-Length", "5"), ("Content-Length", "5")], "hello"), 400, "invalid_framing"),
    "dup-cl-different": (req("POST / HTTP/1.1", [("Host", "x"), ("Content-Length", "5"), ("Content-Length", "6")], "hello!"), 400, "invalid_framing"),
    "cl-comma-list": (req("POST / HTTP/1.1", [("Host", "x"), ("Content-Length", "5, 5")], "hello"), 400, "invalid_framing"),
    "cl-plus-sign": (req("POST / HTTP/1.1", [("Host", "x"), ("Content-Length", "+5")], "hello"), 400, "invalid_framing"),
    "cl-negative": (req("POST / HTTP/1.1", [("Host", "x"), ("Content-Length", "-1")]), 400, "invalid_framing"),
    "cl-overflow": (req("POST / HTTP/1.1", [("Host", "x"), ("Content-Length", "99999999999999999999999")]), 400, "invalid_framing"),
    "cl-empty": (req("POST / HTTP/1.1", [("Host", "x"), ("Content-Length", "")]), 400, "invalid_framing"),
    "cl-hex": (req("POST / HTTP/1.1", [("Host", "x"), ("Content-Length", "0x5")], "hello"), 400, "invalid_framing"),
    "te-chunked-not-last": (req("POST / HTTP/1.1", [("Host", "x"), ("Transfer-Encoding", "chunked, gzip")], "0\r\n\r\n"), 400, "invalid_framing"),
    "te-identity": (req("POST / HTTP/1.1", [("Host", "x"), ("Transfer-Encoding", "identity")], "hello"), 400, "invalid_framing"),
    "te-chunked-twice": (req("POST / HTTP/1.1", [("Host", "x"), ("Transfer-Encoding", "chunked"), ("Transfer-Encoding", "chunked")], "0\r\n\r\n"), 400, "invalid_framing"),
    "te-gzip-then-chunked": (req("POST / HTTP/1.1", [("Host", "x"), ("Transfer-Encoding", "gzip, chunked")], "0\r\n\r\n"), 501, "transfer_coding_not_implemented"),
    "te-in-http10": (req("POST / HTTP/1.0", [("Transfer-Encoding", "chunked")], "0\r\n\r\n"), 400, "invalid_framing"),
    "chunk-size-not-hex": (req("POST / HTTP/1.1", [("Host", "x"), ("Transfer-Encoding", "chunked")], "zz\r\nhello\r\n0\r\n\r\n"), 400, "invalid_chunk"),
    "chunk-size-0x-prefix": (req("POST / HTTP/1.1", [("Host", "x"), ("Transfer-Encoding", "chunked")], "0x5\r\nhello\r\n0\r\n\r\n"), 400, "invalid_chunk"),
    "chunk-size-leading-space": (req("POST / HTTP/1.1", [("Host", "x"), ("Transfer-Encoding", "chunked")], " 5\r\nhello\r\n0\r\n\r\n"), 400, "invalid_chunk"),
    "chunk-size-overflow": (req("POST / HTTP/1.1", [("Host", "x"), ("Transfer-Encoding", "chunked")], "fffffffffffffffffffff\r\nhello\r\n0\r\n\r\n"), 400, "invalid_chunk"),
    "chunk-size-over-body-limit": (req("POST / HTTP/1.1", [("Host", "x"), ("Transfer-Encoding", "chunked")], "200000\r\nhello\r\n"), 413, "body_too_large"),
    "chunk-data-too-long": (req("POST / HTTP/1.1", [("Host", "x"), ("Transfer-Encoding", "chunked")], "3\r\nhello\r\n0\r\n\r\n"), 400, "invalid_chunk"),
    "chunk-extension-control-char": (req("POST / HTTP/1.1", [("Host", "x"), ("Transfer-Encoding", "chunked")], "5;a=\x01\r\nhello\r\n0\r\n\r\n"), 400, "invalid_chunk"),
    "chunk-line-bare-lf": (req("POST / HTTP/1.1", [("Host", "x"), ("Transfer-Encoding", "chunked")], "5\nhello\r\n0\r\n\r\n"), 400, "invalid_line_ending"),
    "bare-cr-in-header": (b"GET / HTTP/1.1\r\nHost: x\rX-Evil: 1\r\n\r\n", 400, "invalid_line_ending"),
    "bare-lf-line-ending": (b"GET / HTTP/1.1\nHost: x\n\n", 400, "invalid_line_ending"),
    "obs-fold": (b"GET / HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n", 400, "invalid_header_field"),
    "space-before-colon": (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length : 0\r\n\r\n", 400, "invalid_header_field"),
    "tab-before-colon": (b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding\t: chunked\r\n\r\n", 400, "invalid_header_field"),
    "header-without-colon": (b"GET / HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n", 400, "invalid_header_field"),
    "header-name-invalid-char": (b"GET / HTTP/1.1\r\nHost: x\r\nBad[Name]: 1\r\n\r\n", 400, "invalid_header_field"),
    "header-empty-name": (b"GET / HTTP/1.1\r\nHost: x\r\n: value\r\n\r\n", 400, "invalid_header_field"),
    "header-value-nul": (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400, "invalid_header_field"),
    "whitespace-before-first-header": (b"GET / HTTP/1.1\r\n Host: x\r\n\r\n", 400, "invalid_header_field"),
    "method-invalid-char": (b"GE(T / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "invalid_request_line"),
    "method-lowercase-ok-but-space": (b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "invalid_request_line"),
    "target-not-origin-form": (b"GET foo HTTP/1.1\r\nHost: x\r\n\r\n", 400, "invalid_request_line"),
    "target-control-char": (b"GET /a\x7fb HTTP/1.1\r\nHost: x\r\n\r\n", 400, "invalid_request_line"),
    "http-0.9": (b"GET /\r\n\r\n", 400, "invalid_request_line"),
    "version-malformed": (b"GET / HTTP/1.1x\r\nHost: x\r\n\r\n", 400, "invalid_request_line"),
    "version-lowercase": (b"GET / http/1.1\r\nHost: x\r\n\r\n", 400, "invalid_request_line"),
    "version-2.0": (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505, "http_version_not_supported"),
    "version-1.2": (b"GET / HTTP/1.2\r\nHost: x\r\n\r\n", 505, "http_version_not_supported"),
    "missing-host": (b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", 400, "invalid_framing"),
    "duplicate-host": (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "invalid_framing"),
    "duplicate-host-http10": (b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400, "invalid_framing"),
    "expect-unknown": (req("POST / HTTP/1.1", [("Host", "x"), ("Expect", "200-ok"), ("Content-Length", "2")], "{}"), 417, "expectation_failed"),
    "body-over-limit": (req("POST / HTTP/1.1", [("Host", "x"), ("Content-Length", str(2 * 1024 * 1024))]), 413, "body_too_large"),
    "header-section-too-large": (req("GET / HTTP/1.1", [("Host", "x"), ("X-Big", "a" * (17 * 1024))]), 431, "header_section_too_large"),
    "too-many-header-fields": (req("GET / HTTP/1.1", [("Host", "x")] + [(f"X-H{i}", "v") for i in range(100)]), 431, "too_many_header_fields"),
    "request-line-too-long": (("GET /" + "a" * (17 * 1024) + " HTTP/1.1\r\nHost: x\r\n\r\n").encode(), 431, "header_section_too_large"),
}

valid = {
    # name: (bytes, [expected requests])
    "get-simple": (b"GET /healthz HTTP/1.1\r\nHost: example\r\n\r\n",
                   [{"method": "GET", "target": "/healthz", "version": "HTTP/1.1", "keepAlive": True, "body": ""}]),
    "post-content-length": (req("POST /v1/ncs HTTP/1.1", [("Host", "x"), ("Content-Type", "application/json"), ("Content-Length", "11")], '{"a":"b c"}'),
                            [{"method": "POST", "target": "/v1/ncs", "version": "HTTP/1.1", "keepAlive": True, "body": '{"a":"b c"}'}]),
    "chunked-with-extensions-and-trailers": (
        req("POST /upload?x=1 HTTP/1.1", [("Host", "x"), ("Transfer-Encoding", "chunked")],
            "5;name=value;quoted=\"a b\"\r\nhello\r\n6 ; ext\r\n world\r\nA\r\n0123456789\r\n0;last\r\nX-Trailer: yes\r\nX-Checksum: 42\r\n\r\n"),
        [{"method": "POST", "target": "/upload?x=1", "version": "HTTP/1.1", "keepAlive": True, "body": "hello world0123456789",
          "trailers": {"X-Trailer": "yes", "X-Checksum": "42"}}]),
    "chunked-uppercase-hex-no-trailers": (
        req("POST / HTTP/1.1", [("Host", "x"), ("Transfer-Encoding", "Chunked")], "B\r\nhello world\r\n0\r\n\r\n"),
        [{"method": "POST", "target": "/", "version": "HTTP/1.1", "keepAlive": True, "body": "hello world"}]),
    "te-list-with-empty-elements": (
        req("POST / HTTP/1.1", [("Host", "x"), ("Transfer-Encoding", ", chunked")], "2\r\nok\r\n0\r\n\r\n"),
        [{"method": "POST", "target": "/", "version": "HTTP/1.1", "keepAlive": True, "body": "ok"}]),
    "pipelined-three": (
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
        + req("POST /b HTTP/1.1", [("Host", "x"), ("Content-Length", "3")], "abc")
        + b"GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        [{"method": "GET", "target": "/a", "version": "HTTP/1.1", "keepAlive": True, "body": ""},
         {"method": "POST", "target": "/b", "version": "HTTP/1.1", "keepAlive": True, "body": "abc"},
         {"method": "GET", "target": "/c", "version": "HTTP/1.1", "keepAlive": False, "body": ""}]),
    "http10-default-close": (b"GET / HTTP/1.0\r\n\r\n",
                             [{"method": "GET", "target": "/", "version": "HTTP/1.0", "keepAlive": False, "body": ""}]),
    "http10-keep-alive": (b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
                          [{"method": "GET", "target": "/", "version": "HTTP/1.0", "keepAlive": True, "body": ""}]),
    "connection-close-token-list": (b"GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade, CLOSE\r\n\r\n",
                                    [{"method": "GET", "target": "/", "version": "HTTP/1.1", "keepAlive": False, "body": ""}]),
    "leading-empty-line": (b"\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
                           [{"method": "GET", "target": "/", "version": "HTTP/1.1", "keepAlive": True, "body": ""}]),
    "expect-100-continue": (req("POST /v1/ncs HTTP/1.1", [("Host", "x"), ("Expect", "100-continue"), ("Content-Length", "2")], "{}"),
                            [{"method": "POST", "target": "/v1/ncs", "version": "HTTP/1.1", "keepAlive": True, "body": "{}", "expectsContinue": True}]),
    "absolute-form-target": (b"GET http://example.com/healthz?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n",
                             [{"method": "GET", "target": "http://example.com/healthz?x=1", "path": "/healthz", "version": "HTTP/1.1", "keepAlive": True, "body": ""}]),
    "header-value-ows-and-obs-text": (b"GET / HTTP/1.1\r\nHost: x\r\nX-Name: \t caf\xc3\xa9 \t\r\n\r\n",
                                      [{"method": "GET", "target": "/", "version": "HTTP/1.1", "keepAlive": True, "body": "", "headers": {"X-Name": "caf\u00e9"}}]),
    "content-length-zero": (req("POST / HTTP/1.1", [("Host", "x"), ("Content-Length", "0")]),
                            [{"method": "POST", "target": "/", "version": "HTTP/1.1", "keepAlive": True, "body": ""}]),
    "head-request": (b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
                     [{"method": "HEAD", "target": "/healthz", "version": "HTTP/1.1", "keepAlive": True, "body": ""}]),
}

for kind, cases in (("invalid", invalid), ("valid", valid)):
    folder = os.path.join(here, "requests", kind)
    os.makedirs(folder, exist_ok=True)
    for name, case in cases.items():
        with open(os.path.join(folder, name + ".http"), "wb") as f:
            f.write(case[0])
        expected = {"status": case[1], "error": case[2]} if kind == "invalid" else {"requests": case[1]}
        with open(os.path.join(folder, name + ".expected.json"), "w") as f:
            json.dump(expected, f, indent=2, ensure_ascii=False)
            f.write("\n")
print(f"{len(invalid)} invalid, {len(valid)} valid")
