import EventStore
import Foundation
import Logging
import NCS
import ReceiverApp
import ReceiverTesting
import Simulator
import Synchronization
import Testing

/// Issue bar: replaying N callbacks where each is also resent (same noticeId, new notifyMs) and
/// sent as a redundant copy (new noticeId) yields exactly N log entries and 3N 200s.
@Suite struct ReplayDedupTests {
    struct Silent: ReplayOutput {
        func line(_ text: String) {}
        func note(_ text: String) {}
        func progress(_ text: String, transient: Bool) {}
        var isInteractive: Bool { false }
    }

    @Test(arguments: ["memory", "sqlite"])
    func resendsAndRedundantCopies_CountOnce(_ backend: String) async throws {
        let n = 300
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("ncs-replay-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        // N distinct callbacks across event types, sids, uids and sequences.
        let types: [(Int, String, Int)] = [(40, "recorder_started", 1), (33, "uploading_progress", 2), (43, "recorder_audio_stream_state_changed", 1), (31, "uploaded", 2)]
        for index in 0..<n {
            let (eventType, msgName, serviceType) = types[index % types.count]
            let noticeId = String(format: "%032x", index + 1)
            let body = """
                {"noticeId":"\(noticeId)","productId":3,"eventType":\(eventType),"notifyMs":\(1_718_600_000_000 + index),"payload":{"cname":"room\(index % 7)","uid":"\(1000 + index % 3)","sid":"sid\(index % 11)","sequence":\(index),"sendts":\(1_718_600_000_000 + index),"serviceType":\(serviceType),"details":{"msgName":"\(msgName)"}}}
                """
            try Data(body.utf8).write(to: folder.appendingPathComponent("cb\(index).json"))
        }
        let sqlitePath = folder.appendingPathComponent("log.sqlite").path
        let store: any EventStore = backend == "memory"
            ? InMemoryEventStore()
            : try SQLiteEventStore(path: sqlitePath, logger: .init(label: "test"))
        let receiver = try TestReceiver(store: store)
        var configuration = ReplayConfiguration()
        configuration.inputs = [folder.path]
        configuration.url = "http://127.0.0.1:\(receiver.publicPort)/v1/ncs"
        configuration.resends = 1
        configuration.redundantCopies = 1
        configuration.concurrency = 4
        configuration.quiet = true
        let summary = try await ReplayTool.run(configuration, environment: ["NCS_SECRET": "ncs-fixture-secret"], output: Silent())
        #expect(summary.sent == 3 * n)
        #expect(summary.byStatus[200] == 3 * n)
        #expect(summary.unexpected == 0)
        let logged = try await receiver.events()
        #expect(logged.count == n)
        // With four senders a redundant copy may overtake its original, which shifts some
        // duplicates from one layer to the other; together they are exactly 2N.
        let stats = receiver.app.ingestion.statistics
        let transport = stats.duplicateTransport.load(ordering: .relaxed)
        let semantic = stats.duplicateSemantic.load(ordering: .relaxed)
        #expect(transport + semantic == 2 * n)
        #expect(transport > 0 && semantic > 0)
        // Each duplicate is findable against its original.
        let hits = try await store.duplicates(of: logged[0].offset)
        #expect(hits.count == 2)
    }
}
