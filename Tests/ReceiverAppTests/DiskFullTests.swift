import EventStore
import Foundation
import HTTPCore
import Logging
import NCS
import ReceiverTesting
import Testing

/// The disk under `--data-dir` fills up (the most common way a store fails in production): the
/// receiver process answers 503 with a JSON body (Agora resends), goes on serving, and once
/// space is back it logs the resends; every callback that got a 200 is in the log once, with
/// offsets in order and none skipped, also after a SIGKILL.
///
/// A real full disk: a small tmpfs mounted for the test (root only; CI runs as root).
@Suite(.serialized) struct DiskFullTests {
    static func body(_ noticeId: String, sequence: Int) -> [UInt8] {
        Array("""
            {"noticeId":"\(noticeId)","productId":3,"eventType":33,"notifyMs":1718600001023,"payload":{"cname":"disk-full","uid":"1","sid":"disk-full-sid","sequence":\(sequence),"sendts":1718600001000,"serviceType":2,"details":{"msgName":"uploading_progress","progress":\(sequence)}}}
            """.utf8)
    }

    @Test func aFullDisk_Gets503_TheProcessServesOn_AndTheResendsAreLoggedOnceSpaceIsBack() async throws {
        guard getuid() == 0 else {
            // No way to fill a file system without root here (no tmpfs, no loop device).
            print("DiskFullTests: skipped, mounting a tmpfs needs root")
            return
        }
        let mountPoint = FileManager.default.temporaryDirectory.appendingPathComponent("ncs-disk-full-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        let mounted = try FinishedProcess.run(command: "mount", ["-t", "tmpfs", "-o", "size=8m", "tmpfs", mountPoint])
        try #require(mounted.status == 0, "mount: \(mounted.output)")
        defer {
            _ = try? FinishedProcess.run(command: "umount", ["-l", mountPoint])
            try? FileManager.default.removeItem(atPath: mountPoint)
        }
        let dataDir = mountPoint + "/data"
        let environment = ["NCS_SECRET": "ncs-fixture-secret", "NCS_ADMIN_TOKEN": "t"]
        var process = try ReceiverProcess.start(arguments: ["serve", "--data-dir", dataDir, "--log-level", "warning"],
                                                environment: environment)
        defer { process.kill() }
        let client = { try RawHTTPClient(port: process.publicPort, timeout: 10) }
        var acknowledged: [String: Int64] = [:]
        func send(_ noticeId: String, _ sequence: Int) throws -> RawHTTPClient.Response {
            let response = try TestReceiver.postBlocking(Self.body(noticeId, sequence: sequence), secret: "ncs-fixture-secret", client: client())
            if response.status == 200, let offset = (try? JSONValue.parse(response.body))?["offset"]?.int64Value {
                acknowledged[noticeId] = offset
            }
            return response
        }

        // Room to spare: logged.
        for sequence in 1...20 { #expect(try send("before-\(sequence)", sequence).status == 200) }

        // Fill the file system to the last byte.
        let fillerPath = mountPoint + "/filler"
        try #require(FileManager.default.createFile(atPath: fillerPath, contents: nil))
        let filler = try #require(FileHandle(forWritingAtPath: fillerPath))
        let chunk = Data(repeating: 0x61, count: 64 * 1024)
        var written = 0
        while (try? filler.write(contentsOf: chunk)) != nil { written += chunk.count }
        var small = Data(repeating: 0x61, count: 4096)
        while (try? filler.write(contentsOf: small)) != nil { written += small.count }
        small = Data([0x61])
        while (try? filler.write(contentsOf: small)) != nil { written += 1 }
        try? filler.close()
        #expect(written > 0)

        // Full: sooner or later (the WAL may still have room for a few commits) a 503 with a JSON body.
        var refused: [(noticeId: String, sequence: Int)] = []
        var firstRefusal: RawHTTPClient.Response?
        for sequence in 21...2000 {
            let noticeId = "full-\(sequence)"
            let response = try send(noticeId, sequence)
            if response.status != 200 {
                refused.append((noticeId, sequence))
                if firstRefusal == nil { firstRefusal = response }
            }
            if refused.count >= 10 { break }
        }
        let refusal = try #require(firstRefusal, "the store never refused on a full disk")
        print("disk full: refused with \(refusal.status) \(refusal.bodyText)")
        #expect(refusal.status == 503, "\(refusal)")
        #expect(refusal.errorCode == "store_unavailable", "\(refusal)")
        #expect(refusal.headers["Retry-After"] != nil, "\(refusal)")

        // Still serving: an unsigned callback is refused as such (its quarantine write may fail),
        // and the admin listener answers.
        let unsigned = try TestReceiver.postBlocking(Self.body("unsigned", sequence: 1), secret: nil, client: client())
        #expect(unsigned.status == 401, "\(unsigned)")
        #expect(try TestReceiver.adminBlocking("GET", "/healthz", token: nil, port: process.adminPort).status == 200)
        #expect(process.process.isRunning)
        // The operator's log says why, once for the burst (not once per callback), and the
        // metrics count every refusal.
        #expect(process.output.contains("disk is full"))
        #expect(process.output.components(separatedBy: "store append failed; answering 503").count - 1 == 1, "\(process.output)")
        let metrics = try TestReceiver.adminBlocking("GET", "/metrics", token: "t", port: process.adminPort).bodyText
        let failures = metrics.split(separator: "\n").first { $0.hasPrefix("ncs_store_append_failures_total ") }
        #expect(failures.flatMap { Double($0.split(separator: " ").last ?? "") } == Double(refused.count), "\(failures ?? "no ncs_store_append_failures_total")")

        // Space is back: Agora's resends of the refused callbacks are logged.
        try FileManager.default.removeItem(atPath: fillerPath)
        for (noticeId, sequence) in refused {
            var status = 0
            for _ in 0..<50 {
                status = try send(noticeId, sequence).status
                if status == 200 { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(status == 200, "the resend of \(noticeId) after space came back")
        }
        for sequence in 1...20 { #expect(try send("after-\(sequence)", 5000 + sequence).status == 200) }

        // Every 200 in the log once, in order without a gap: now, and after a SIGKILL and restart.
        for round in ["running", "after SIGKILL"] {
            if round == "after SIGKILL" {
                process.kill()
                process = try ReceiverProcess.start(arguments: ["serve", "--data-dir", dataDir, "--log-level", "warning"],
                                                    environment: environment)
            }
            var logged: [String: [Int64]] = [:]
            var previous: Int64 = 0, gaps = 0
            let page = try TestReceiver.adminBlocking("GET", "/v1/events?after=0&limit=5000", token: "t", port: process.adminPort)
            for event in (try JSONValue.parse(page.body))["events"]?.arrayValue ?? [] {
                let offset = event["ncsoffset"]?.int64Value ?? -1
                if offset != previous + 1 { gaps += 1 }
                previous = offset
                if let id = event["ncsnoticeid"]?.stringValue { logged[id, default: []].append(offset) }
            }
            let missing = acknowledged.filter { logged[$0.key] != [$0.value] }
            print("disk full (\(round)): \(acknowledged.count) acknowledged, \(refused.count) refused then resent, \(logged.count) logged, \(missing.count) missing, \(gaps) gaps")
            #expect(missing.isEmpty, "\(round): acknowledged but not logged once at its offset: \(missing.keys.sorted().prefix(5))")
            #expect(gaps == 0, "\(round)")
        }
    }
}
