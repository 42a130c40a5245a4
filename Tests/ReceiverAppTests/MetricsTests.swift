import Foundation
import HTTPCore
import Logging
import NCS
import ReceiverApp
import ReceiverTesting
import Synchronization
import Testing

/// The metrics and logging pieces in this process (the end-to-end runs are in
/// MetricsEndToEndTests).
@Suite struct MetricsTests {
    @Test func jsonLogHandler_OneObjectPerLine_FlattenedMetadata() throws {
        let lines = Mutex<[String]>([])
        var logger = Logger(label: "unit") { label in
            JSONLogHandler(label: label, level: .debug) { bytes in lines.withLock { $0.append(String(decoding: bytes, as: UTF8.self)) } }
        }
        logger[metadataKey: "listener"] = "public"
        logger.trace("below the level")
        logger.info("two\nlines \"quoted\"", metadata: [
            "request_id": "r-1", "message": "shadowing", "nested": ["a": "1", "b": ["c": "2"]], "list": ["x", "y"],
        ])
        let written = lines.withLock { $0 }
        try #require(written.count == 1)
        let line = written[0]
        #expect(line.hasSuffix("\n") && line.dropLast().firstIndex(of: "\n") == nil)
        let object = try #require(try JSONValue.parse(line).objectValue)
        #expect(object["level"] == "info")
        #expect(object["label"] == "unit")
        #expect(object["message"] == "two\nlines \"quoted\"")
        #expect(object["source"] == "ReceiverAppTests")
        #expect(object["listener"] == "public")
        #expect(object["request_id"] == "r-1")
        #expect(object["metadata.message"] == "shadowing")
        #expect(object["nested.a"] == "1")
        #expect(object["nested.b.c"] == "2")
        #expect(object["list"] == .array(["x", "y"]))
        let timestamp = try #require(object["timestamp"]?.stringValue)
        #expect(timestamp.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"#, options: .regularExpression) != nil, "\(timestamp)")
    }

    @Test func inProcess_RequestIdsAnswered_AndResponsesCountedByRoute() async throws {
        let receiver = try TestReceiver()
        let body = try Fixtures.bytes(Fixtures.root.appendingPathComponent("ncs/events/40_recorder_started.json"))
        let port = receiver.publicPort
        let answers = try await blocking { () throws -> [RawHTTPClient.Response] in
            let client = try RawHTTPClient(port: port)
            let signature = SignatureVerifier.sign(body: body, secret: "ncs-fixture-secret")
            var responses: [RawHTTPClient.Response] = []
            for requestID in ["kept-id.1:a", "not kept"] {
                try client.send(Array("POST /v1/ncs HTTP/1.1\r\nHost: x\r\nAgora-Signature-V2: \(signature.v2)\r\nX-Request-Id: \(requestID)\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body)
                responses.append(try client.readResponse()!)
            }
            try client.send(RawHTTPClient.request("GET", "/nowhere"))
            responses.append(try client.readResponse()!)
            // Refused by the parser (two Content-Lengths): no route, counted apart.
            let smuggler = try RawHTTPClient(port: port)
            try smuggler.send("POST /v1/ncs HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab")
            responses.append(try smuggler.readResponse()!)
            return responses
        }
        #expect(answers.map(\.status) == [200, 200, 404, 400])
        #expect(answers[0].headers["X-Request-Id"] == "kept-id.1:a")
        let made = try #require(answers[1].headers["X-Request-Id"])
        #expect(made != "not kept" && !made.contains(" "))
        #expect(answers[2].headers["X-Request-Id"] != nil)

        #expect(try await receiver.admin("GET", "/metrics", token: nil).status == 401)
        let response = try await receiver.admin("GET", "/metrics")
        #expect(response.status == 200)
        let scrape = Scrape(text: response.bodyText)
        #expect(scrape.sum("ncs_http_requests_total", ["listener": "public", "method": "POST", "route": "/v1/ncs", "status": "200"]) == 2)
        #expect(scrape.sum("ncs_http_requests_total", ["listener": "public", "route": "unmatched", "status": "404"]) == 1)
        #expect(scrape.sum("ncs_http_requests_total", ["listener": "admin", "route": "/metrics", "status": "401"]) == 1)
        #expect(scrape.sum("ncs_http_protocol_errors_total", ["listener": "public", "code": "invalid_framing"]) == 1)
        #expect(scrape.sum("ncs_http_requests_total", ["listener": "public", "status": "400"]) == 0)
        #expect(scrape.sum("ncs_duplicates_total", ["layer": "transport"]) == 1)
        #expect(scrape.sum("ncs_events_total", ["event_type": "40"]) == 1)
        #expect(scrape.sum("ncs_events_total", ["event_type": "other"]) == 0)
        #expect(scrape.sum("ncs_ack_seconds_count") == 2)
        #expect(scrape.value("ncs_log_head_offset") == 1)
        // HELP and TYPE lines, once per family.
        #expect(response.bodyText.components(separatedBy: "# TYPE ncs_http_requests_total counter").count == 2)
        #expect(response.bodyText.contains("# TYPE ncs_ack_seconds histogram"))
    }
}
