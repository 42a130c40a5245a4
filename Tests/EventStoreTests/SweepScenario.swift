import EventStore

/// The appends, resends and sweeps that both stores' sweep tests run (`SQLiteSweepTests`,
/// `PostgresSweepTests`): each store sweeps in transactions of a few rows and of all of them,
/// and what a reader and a sender of resends see afterwards must be the same.
enum SweepScenario {
    /// Event `i`: two dedup keys, received at `i` ms, over 4 sids, 3 cnames and 2 types; but
    /// event 150, received at 20 ms by a receiver whose clock is behind: the age rule drops a
    /// prefix of the log, so it stays until the count rule takes it (a sweep that dropped every
    /// old event would report 101 events by age, then 179 by count).
    static func record(_ i: Int) -> EventRecord {
        EventRecord(dedupKeys: ["n\(i)", "s\(i)"], type: i % 2 == 0 ? "even" : "odd", cname: "room-\(i % 3)", sid: "sid-\(i % 4)",
                    receivedMs: i == 150 ? 20 : Int64(i), body: Array("{\"i\":\(i)}".utf8))
    }

    /// What a reader and a sender of resends see of a store.
    struct Observed: Equatable {
        var reports: [SweepReport] = []
        var offsets: [Int64] = []
        var duplicateHits: [Int] = []
        var resends: [String] = []
        var head: Int64 = 0
    }

    /// 400 events, hits on some, then sweeps by age, by count and of dedup keys alone, at 400 ms.
    /// `afterSweeps` looks at the store before the resends append to it.
    static func run(on store: some EventStore, afterSweeps: () async throws -> Void = {}) async throws -> Observed {
        var observed = Observed()
        for first in stride(from: 0, to: 400, by: 50) {
            _ = try await store.append((first..<(first + 50)).map(record))
        }
        // Hits on events the sweeps drop and on ones they keep.
        for i in [3, 120, 390] { _ = try await store.append([EventRecord(dedupKeys: ["n\(i)"], type: "even", receivedMs: 500, body: [1])]) }
        let policies = [
            RetentionPolicy(maxEventAgeMs: 300, dedupWindowMs: 1_000_000),   // at 400: events received before 100 go
            RetentionPolicy(maxEventCount: 120, dedupWindowMs: 1_000_000),   // the newest 120 stay
            RetentionPolicy(dedupWindowMs: 150),                             // keys received before 250 go
        ]
        for policy in policies { observed.reports.append(try await store.sweep(policy, nowMs: 400)) }
        observed.offsets = try await store.read(after: 0, limit: 1_000, filter: .all).map(\.offset)
        try await afterSweeps()
        for offset: Int64 in [4, 121, 391] { observed.duplicateHits.append(try await store.duplicates(of: offset).count) }
        for i in [10, 200, 260, 399] {
            switch try await store.append([record(i)])[0] {
            case .appended: observed.resends.append("\(i): new")
            case .duplicate(let offset, let key): observed.resends.append("\(i): duplicate of \(offset) by \(key)")
            }
        }
        observed.head = try await store.headOffset()
        return observed
    }
}
