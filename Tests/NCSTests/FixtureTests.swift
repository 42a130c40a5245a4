import Foundation
import NCS
import Testing

/// Every body fixture decodes/normalizes to its `.expected.json` (see Fixtures/README.md).
/// `NCS_RECORD_FIXTURES=1 swift test --filter NCSTests` (re)writes the expected files of the
/// valid fixtures; review every diff by eye before committing.
@Suite struct FixtureTests {
    static let validFolders = ["events", "docs", "lenient", "agora-synthetic"]

    static func allValidBodies() -> [String] {
        validFolders.flatMap { (try? FixtureFiles.bodies(in: $0)) ?? [] }
    }

    static func allMalformedBodies() -> [String] {
        (try? FixtureFiles.bodies(in: "malformed")) ?? []
    }

    @Test func fixtureSetsAreComplete() throws {
        let events = try FixtureFiles.bodies(in: "events")
        for kind in EventCatalogue.all {
            #expect(events.contains("events/\(kind.eventType)_\(kind.msgName).json"), "no fixture for \(kind.eventType)")
        }
        #expect(events.count == EventCatalogue.all.count)
        #expect(Self.allMalformedBodies().count >= 10)
    }

    @Test(arguments: allValidBodies())
    func validFixtureMatchesExpected(_ path: String) throws {
        let body = try FixtureFiles.bytes(path)
        let outcome = FixtureOutcome.render(body)
        let expectedPath = FixtureFiles.expectedPath(for: path)
        if FixtureFiles.recording {
            try FixtureFiles.write(outcome.jsonString(pretty: true) + "\n", to: expectedPath)
        }
        let expected = try FixtureFiles.json(expectedPath)
        #expect(outcome["status"] == 200, "\(path): \(outcome)")
        #expect(outcome == expected, "\(path) differs from \(expectedPath)")
        // The compact re-encoding of the expected event is byte-identical to jsonBytes().
        let n = try NotificationDecoder.decode(body)
        let observed = SessionClassifier.observe(n, knowledge: nil)
        let event = EventNormalizer.normalize(n, receiverName: "ncs-receiver", sessionClass: observed.sessionClass, migrations: observed.migrations)
        #expect(expected["event"]?.jsonBytes() == event.jsonBytes())
        #expect(event.jsonBytes().starts(with: Array("{\"specversion\":\"1.0\",".utf8)))
    }

    @Test(arguments: allMalformedBodies())
    func malformedFixtureFailsOnExpectedField(_ path: String) throws {
        let body = try FixtureFiles.bytes(path)
        let expected = try FixtureFiles.json(FixtureFiles.expectedPath(for: path))
        #expect(expected["status"] == 400)
        let field = try #require(expected["field"]?.stringValue)
        #expect(throws: NotificationDecodingError.self, "\(path)") { try NotificationDecoder.decode(body) }
        do {
            _ = try NotificationDecoder.decode(body)
        } catch {
            #expect(error.field == field, "\(path): \(error)")
            #expect(!error.reason.isEmpty)
        }
        #expect(FixtureOutcome.render(body) == expected)
    }

    /// Event fixtures carry the documented serviceType and msgName of their catalogue entry.
    @Test func eventFixturesMatchCatalogue() throws {
        for kind in EventCatalogue.all {
            let n = try NotificationDecoder.decode(FixtureFiles.bytes("events/\(kind.eventType)_\(kind.msgName).json"))
            #expect(n.eventType == kind.eventType)
            #expect(n.productId == 3)
            #expect(n.payload.serviceType == kind.serviceType, "\(kind.eventType)")
            #expect(n.noticeId.count == 32)
            if kind.isDocumented {
                #expect(n.payload.details.msgName == kind.msgName)
            }
            if case .unknown = n.payload.details { Issue.record("\(kind.eventType) decoded as unknown") }
            let extra = n.payload.details.fields?.extra ?? [:]
            #expect(extra.isEmpty, "\(kind.eventType) left fields untyped: \(extra.keys)")
        }
    }
}

/// Scenario files: decode every step, apply transport + semantic dedup as the receiver does,
/// and check the duplicate flags and the number of log entries.
@Suite struct ScenarioTests {
    static func scenarioFiles() -> [String] { (try? FixtureFiles.bodies(in: "scenarios")) ?? [] }

    @Test func scenarioSetIsComplete() {
        let names = Set(Self.scenarioFiles())
        for name in ["normal_session", "idle_exit", "redundant_copies", "resends", "exit_before_upload", "ha_failover"] {
            #expect(names.contains("scenarios/\(name).json"))
        }
    }

    @Test(arguments: scenarioFiles())
    func scenarioDedupMatches(_ path: String) throws {
        let scenario = try FixtureFiles.json(path)
        let steps = try #require(scenario["steps"]?.arrayValue)
        var seenTransport = Set<String>()
        var seenSemantic = Set<String>()
        var logged = 0
        var lastAt: Int64 = -1
        for (i, step) in steps.enumerated() {
            let at = try #require(step["atMs"]?.int64Value)
            #expect(at >= lastAt, "\(path) step \(i): atMs must not decrease")
            lastAt = at
            let body: [UInt8]
            if let inline = step["body"] {
                body = inline.jsonBytes()
            } else {
                body = try FixtureFiles.bytes(try #require(step["file"]?.stringValue))
            }
            let signed = SignatureVerifier.sign(body: body, secret: FixtureFiles.secret)
            #expect(SignatureVerifier(secrets: [FixtureFiles.secret]).verify(body: body, v1: signed.v1, v2: signed.v2).isValid)
            let n = try NotificationDecoder.decode(body)
            let keys = n.dedupKeys
            let duplicate = seenTransport.contains(keys.transport) || keys.semantic.map(seenSemantic.contains) == true
            #expect(duplicate == (step["expectDuplicate"]?.boolValue ?? false), "\(path) step \(i)")
            #expect(step["expectStatus"] == 200)
            if !duplicate {
                logged += 1
                seenTransport.insert(keys.transport)
                if let s = keys.semantic { seenSemantic.insert(s) }
            }
        }
        #expect(Int64(logged) == scenario["expectLogEntries"]?.int64Value, "\(path)")
    }

    @Test func haScenarioClassifiesByUid() throws {
        let scenario = try FixtureFiles.json("scenarios/ha_failover.json")
        let steps = try #require(scenario["steps"]?.arrayValue)
        var knowledge = SessionKnowledge(startedUid: "527841")
        var classes: [SessionClass] = []
        var backupIndexes: [Int] = []
        for step in steps {
            let n = try NotificationDecoder.decode(try #require(step["body"]).jsonBytes())
            classes.append(SessionClassifier.classify(n, knowledge: knowledge))
            if let newUid = n.failoverNewUid { knowledge.failoverUids.append(newUid) }
            if case .uploaded(let u) = n.payload.details { backupIndexes += (u.fileList ?? []).compactMap(\.backupIndex) }
        }
        #expect(knowledge.failoverUids == ["1923456781"])
        #expect(classes == [.original, .original, .original, .original, .failover, .failover, .original, .failover, .failover, .failover])
        #expect(backupIndexes == [0])
    }
}
