// SSE catch-up benchmark (issue bar: 1,000,000 events at 100,000 events/s or more).
//
//   swift build -c release --product sse-bench && .build/release/sse-bench [events]
//
// Fills a fresh SQLite log with N realistic CloudEvents (batches through the store, fsync on),
// starts the admin listener of a real receiver on loopback, and times one subscriber reading
// /v1/events/stream from offset 0 over a real socket until it has seen all N `id:` lines.
import EventStore
import HTTPServer
import Foundation
import Logging
import ReceiverApp

let total = Int(CommandLine.arguments.dropFirst().first ?? "") ?? 1_000_000
let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sse-bench-\(UUID().uuidString)")
try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(at: directory) }

func log(_ text: String) { FileHandle.standardError.write(Data((text + "\n").utf8)) }

let store = try SQLiteEventStore(path: directory.appendingPathComponent("events.sqlite").path, logger: Logger(label: "bench"))
let template = try String(contentsOf: URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/ncs/events/33_uploading_progress.expected.json"), encoding: .utf8)
let eventJSON = try JSONSerialization.jsonObject(with: Data(template.utf8)) as! [String: Any]
let body = Array(try JSONSerialization.data(withJSONObject: eventJSON["event"]!, options: [.sortedKeys]))
log("filling the log with \(total) events of \(body.count) bytes…")
let fillStart = Date()
var appended = 0
while appended < total {
    let batch = (0..<min(10_000, total - appended)).map { index in
        EventRecord(dedupKeys: ["n:bench-\(appended + index)"], type: "io.agora.cloudrecording.uploading_progress", eventType: 33,
                    cname: "bench", sid: "sid", timeMs: 1, receivedMs: 1, body: body)
    }
    _ = try await store.append(batch)
    appended += batch.count
    if appended % 100_000 == 0 { log("  \(appended)") }
}
let fillSeconds = Date().timeIntervalSince(fillStart)
log(String(format: "filled in %.1f s (%.0f events/s appended)", fillSeconds, Double(total) / fillSeconds))

var configuration = ReceiverConfiguration()
configuration.adminHost = "127.0.0.1"
configuration.adminPort = 0
configuration.publicHost = "127.0.0.1"
configuration.publicPort = 0
let app = ReceiverApp(configuration: configuration, store: store, secrets: ["bench"], adminToken: "bench", logger: Logger(label: "bench"))
try app.adminServer.start()
let port = app.adminServer.localAddress!.port

// The subscriber: HTTP/1.0, so the stream is close-delimited and needs no de-chunking here.
let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
var address = sockaddr_in()
address.sin_family = sa_family_t(AF_INET)
address.sin_port = in_port_t(UInt16(port).bigEndian)
address.sin_addr.s_addr = inet_addr("127.0.0.1")
_ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
let request = "GET /v1/events/stream?after=0 HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer bench\r\n\r\n"
_ = request.withCString { send(fd, $0, strlen($0), 0) }

let start = Date()
var seen = 0
var bytes = 0
var buffer = [UInt8](repeating: 0, count: 1 << 16)
// Counts "\nid: " across reads (the previous read's last 4 bytes are kept for a split marker).
var carry: [UInt8] = []
let marker: [UInt8] = Array("\nid: ".utf8)
var lastReport = start
while seen < total {
    let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
    guard n > 0 else {
        log("the stream ended after \(seen) events (recv \(n), errno \(errno))")
        break
    }
    if bytes == 0 { log(String(decoding: buffer[..<min(n, 300)], as: UTF8.self)) }
    bytes += n
    let window = carry + buffer[..<n]
    var index = 0
    while index + marker.count <= window.count {
        if window[index] == 10 && window[index + 1] == UInt8(ascii: "i") && window[index + 2] == UInt8(ascii: "d")
            && window[index + 3] == UInt8(ascii: ":") && window[index + 4] == UInt8(ascii: " ") {
            seen += 1
            index += marker.count
        } else {
            index += 1
        }
    }
    carry = Array(window.suffix(min(marker.count - 1, window.count - index)))
    if Date().timeIntervalSince(lastReport) > 1 {
        lastReport = Date()
        log("  read \(seen) events")
    }
}
let seconds = Date().timeIntervalSince(start)
close(fd)
print(String(format: "sse catch-up: %d events, %.1f MB in %.2f s = %.0f events/s (%.0f MB/s)",
             seen, Double(bytes) / 1e6, seconds, Double(seen) / seconds, Double(bytes) / 1e6 / seconds))
await app.adminServer.shutdown()
await store.close()
