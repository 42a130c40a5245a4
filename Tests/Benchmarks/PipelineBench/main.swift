// Where a callback's CPU goes, stage by stage, outside the HTTP server (issue 4's throughput
// bar: the full durable pipeline at 0.5x nginx needs about 40 µs of CPU per callback on this
// 2-core machine, HTTP included).
//
//   swift build -c release --product pipeline-bench && .build/release/pipeline-bench [callbacks]
//
// Makes N distinct signed callbacks shaped like Tests/Benchmarks/ncs-signed.lua's, then runs
// each stage of `Ingestion` over all of them on one thread and prints CPU µs per callback:
// verify, decode, classify + normalize + serialize, then the SQLite append in group-commit
// batches of 32 (fsync on; CPU of every thread of the process, so GRDB's queues and the
// background checkpointer count) and the same batches into the in-memory store.
// BATCH=<n> changes the batch size: the receiver's group commits under wrk -c32 hold about 10
// (ncs_store_commit_batch_events), and a commit's fixed cost is what the difference shows.
// AGED=<n> first fills the SQLite store with n older events (random UUID noticeIds, two keys
// each, as Agora's traffic has), so the append is measured on a store that has been running
// for a while rather than on an empty file.
import EventStore
import Foundation
import Logging
import NCS
import Supervisor

let total = Int(CommandLine.arguments.dropFirst().first ?? "") ?? 100_000
let batchSize = Int(ProcessInfo.processInfo.environment["BATCH"] ?? "") ?? 32
let aged = Int(ProcessInfo.processInfo.environment["AGED"] ?? "") ?? 0
let secret = "ncs-fixture-secret"

func log(_ text: String) { FileHandle.standardError.write(Data((text + "\n").utf8)) }

/// CPU seconds of the whole process (user + system, every thread).
func processCPU() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
}

struct Stage {
    var name: String
    var cpuMicroseconds: Double
    var wallMicroseconds: Double
}
var stages: [Stage] = []

@MainActor func measure<T>(_ name: String, _ body: () throws -> T) rethrows -> T {
    let cpu = processCPU()
    let wall = Date()
    let result = try body()
    stages.append(Stage(name: name, cpuMicroseconds: (processCPU() - cpu) / Double(total) * 1e6,
                        wallMicroseconds: Date().timeIntervalSince(wall) / Double(total) * 1e6))
    return result
}

@MainActor func measure<T>(_ name: String, _ body: () async throws -> T) async rethrows -> T {
    let cpu = processCPU()
    let wall = Date()
    let result = try await body()
    stages.append(Stage(name: name, cpuMicroseconds: (processCPU() - cpu) / Double(total) * 1e6,
                        wallMicroseconds: Date().timeIntervalSince(wall) / Double(total) * 1e6))
    return result
}

log("making \(total) signed callbacks…")
let prefix = "\(UInt32.random(in: 0...UInt32.max))"
var bodies: [[UInt8]] = []
var signatures: [String] = []
bodies.reserveCapacity(total)
for counter in 1...total {
    let id = "\(prefix)-\(counter)"
    let body = Array("""
        {"noticeId":"\(id)","productId":3,"eventType":33,"notifyMs":1718600001023,\
        "payload":{"cname":"bench_room","uid":"527841","sid":"sid-\(id)","sequence":\(counter),\
        "sendts":1718600001000,"serviceType":2,"details":{"msgName":"uploading_progress","progress":"\(counter % 100)"}}}
        """.utf8)
    bodies.append(body)
    signatures.append(SignatureVerifier.sign(body: body, secret: secret).v2)
}

let verifier = SignatureVerifier(secrets: [secret])
let valid = measure("verify (HMAC-SHA256, hex)") {
    var valid = 0
    for index in 0..<total {
        if case .valid = verifier.verify(body: bodies[index], v1: nil, v2: signatures[index]) { valid += 1 }
    }
    return valid
}
precondition(valid == total, "only \(valid) of \(total) signatures verified")

let notifications = try measure("decode (JSON → NCSNotification)") {
    try bodies.map { try NotificationDecoder.decode($0) }
}

let directory = SessionDirectory()
let records = measure("classify + normalize + serialize + keys") {
    notifications.map { notification -> EventRecord in
        let knowledge = notification.sid.flatMap { directory.knowledge(sid: $0) }
        let sessionClass = SessionClassifier.classify(notification, knowledge: knowledge)
        let event = EventNormalizer.normalize(notification, receiverName: "bench", sessionClass: sessionClass, migrations: 0)
        let keys = notification.dedupKeys
        return EventRecord(
            dedupKeys: keys.semantic.map { [keys.transport, $0] } ?? [keys.transport],
            type: event.type, eventType: notification.eventType, cname: notification.payload.cname, sid: notification.sid,
            timeMs: notification.payload.sendts ?? notification.notifyMs, receivedMs: Int64(Date().timeIntervalSince1970 * 1000),
            body: event.jsonBytes()
        )
    }
}
let bodyBytes = records.reduce(0) { $0 + $1.body.count } / max(1, records.count)

let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("pipeline-bench-\(UUID().uuidString)")
try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(at: scratch) }
/// Appends every record in batches of `batchSize`, showing progress every 20,000.
func appendAll(to store: any EventStore) async throws {
    var start = 0
    while start < total {
        let end = min(start + batchSize, total)
        _ = try await store.append(Array(records[start..<end]))
        start = end
        if start % 20_000 == 0 { log("  appended \(start)") }
    }
}
let sqlite = try SQLiteEventStore(path: scratch.appendingPathComponent("events.sqlite").path, logger: Logger(label: "bench"))
if aged > 0, let model = records.first {
    log("filling the SQLite store with \(aged) older events…")
    var filled = 0
    while filled < aged {
        let batch = (filled..<min(filled + 512, aged)).map { index in
            var record = model
            let sid = "aged-sid-\(index / 40)"
            record.dedupKeys = [UUID().uuidString.lowercased(), "3|\(sid)|33|527841|\(index)"]
            record.sid = sid
            return record
        }
        _ = try await sqlite.append(batch)
        filled += batch.count
        if filled % 100_000 < 512 || filled == aged { log("  filled \(filled) of \(aged)") }
    }
}
try await measure("SQLite append, batches of \(batchSize), fsync on") { try await appendAll(to: sqlite) }
try await measure("in-memory append, batches of \(batchSize)") { try await appendAll(to: InMemoryEventStore()) }

func column(_ text: String, _ width: Int) -> String { text.padding(toLength: max(width, text.count), withPad: " ", startingAt: 0) }
func figure(_ value: Double) -> String {
    let text = String(format: "%.2f", value)
    return String(repeating: " ", count: max(0, 9 - text.count)) + text
}
print("\(total) callbacks, stored CloudEvent \(bodyBytes) bytes on average; µs per callback:")
print(column("stage", 46) + "       CPU      wall")
for stage in stages {
    print(column(stage.name, 46) + " " + figure(stage.cpuMicroseconds) + " " + figure(stage.wallMicroseconds))
}
let beforeStore = stages.prefix(3).reduce(0) { $0 + $1.cpuMicroseconds }
print(String(format: "ingestion before the store: %.2f µs CPU; with the SQLite append: %.2f µs CPU", beforeStore, beforeStore + stages[3].cpuMicroseconds))
