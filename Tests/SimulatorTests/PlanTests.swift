import Foundation
import NCS
import ReceiverTesting
import Simulator
import Testing

@Suite("replay plan and duplicates")
struct PlanTests {
    @Test("a directory is read recursively, skipping expectations, scenarios and manifests")
    func directoryWalk() throws {
        let plan = try ReplayPlan.load(inputs: [Paths.ncs.path])
        // Count independently: every *.json under ncs/ that is not an expectation, minus the
        // scenario files and agora-synthetic/signatures.json.
        let all = FileManager.default.enumerator(atPath: Paths.ncs.path)!.allObjects.compactMap { $0 as? String }
        let bodies = all.filter { $0.hasSuffix(".json") && !$0.hasSuffix(".expected.json") && !$0.hasPrefix("scenarios/") && $0 != "agora-synthetic/signatures.json" }
        #expect(plan.items.count == bodies.count)
        #expect(Set(plan.items.map(\.label)) == Set(bodies))
        #expect(plan.items.map(\.label) == plan.items.map(\.label).sorted())
        #expect(plan.notes.contains { $0.contains("scenarios/resends.json") && $0.contains("--scenario") })
        #expect(plan.notes.contains { $0.contains("signatures.json") })
        // Expectations: malformed → 400, valid → 200; the signature vector has none.
        #expect(plan.items.first { $0.label == "malformed/truncated.json" }?.expectedStatus == 400)
        #expect(plan.items.first { $0.label == "events/40_recorder_started.json" }?.expectedStatus == 200)
        #expect(plan.items.first { $0.label == "signature/test_vector_body.json" }?.expectedStatus == nil)
        // Bytes as stored.
        let pretty = try #require(plan.items.first { $0.label == "lenient/pretty_printed.json" })
        #expect(pretty.body == (try Fixtures.bytes(Paths.ncs.appendingPathComponent("lenient/pretty_printed.json"))))
    }

    @Test("sends: variants after each callback, the whole set per repetition")
    func expansion() throws {
        let plan = try ReplayPlan.load(inputs: [Paths.fixture("events/40_recorder_started.json"), Paths.fixture("events/41_recorder_leave.json")])
        let sends = plan.sends(resends: 1, redundantCopies: 1, repetitions: 2)
        #expect(sends.count == 12)
        #expect(sends.prefix(3).map(\.variant) == [.original, .resend(1), .redundant(1)])
        #expect(sends.map(\.repetition) == Array(repeating: 1, count: 6) + Array(repeating: 2, count: 6))
        #expect(sends[0].body == sends[6].body && sends[1].body == sends[7].body)
        #expect(sends.map(\.variant.tag).prefix(3) == [nil, "[resend]", "[redundant]"])
    }

    @Test("scenario segments restart per repetition")
    func scenarioSegments() throws {
        let path = Paths.fixture("scenarios/resends.json")
        let plan = try ReplayPlan.load(inputs: [], scenarios: [path, path])
        let steps = try JSONValue.parse(Fixtures.bytes(URL(fileURLWithPath: path)))["steps"]!.arrayValue!
        #expect(plan.items.count == 2 * steps.count)
        #expect(plan.items.first?.atMs == 0)
        #expect(plan.items.first?.body == steps[0]["body"]!.jsonBytes())
        let sends = plan.sends(repetitions: 2)
        #expect(Set(sends.compactMap(\.segment)).count == 4)
    }

    @Test("invalid scenarios are rejected with the reason")
    func invalidScenario() throws {
        let directory = try Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        for (text, reason) in [
            ("[]", "\"steps\""),
            (#"{"steps":[{"atMs":-1,"body":{}}]}"#, "atMs"),
            (#"{"steps":[{"atMs":0}]}"#, "neither"),
            (#"{"steps":[{"atMs":0,"file":"nope.json"}]}"#, "not found"),
            (#"{"steps":[{"atMs":0,"body":{},"expectStatus":"200"}]}"#, "expectStatus"),
            ("{", "invalid JSON"),
        ] {
            let path = directory.appendingPathComponent("s.json").path
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
            #expect(throws: ReplayLoadError.self) { try ReplayPlan.loadScenario(path: path) }
            do {
                _ = try ReplayPlan.loadScenario(path: path)
            } catch {
                #expect(error.description.contains(reason), "\(error)")
            }
        }
    }

    @Test("resends keep the noticeId and the JSON type of notifyMs; copies derive a new id in the same style")
    func duplicateMaker() throws {
        func object(_ bytes: [UInt8]) throws -> JSONObject { try #require(try JSONValue.parse(bytes).objectValue) }

        let hex = Array(#"{"noticeId":"9cf0949791444babb5f0efc8b491edaf","eventType":40,"notifyMs":1718600001023,"payload":{"sequence":1}}"#.utf8)
        #expect(String(decoding: DuplicateMaker.resend(of: hex), as: UTF8.self)
            == #"{"noticeId":"9cf0949791444babb5f0efc8b491edaf","eventType":40,"notifyMs":1718600002023,"payload":{"sequence":1}}"#)
        #expect(try object(DuplicateMaker.resend(of: hex, attempt: 3))["notifyMs"] == .int(1718600004023))
        let copy = try object(DuplicateMaker.redundantCopy(of: hex))
        let id = try #require(copy["noticeId"]?.stringValue)
        #expect(id.count == 32 && id != "9cf0949791444babb5f0efc8b491edaf" && id.allSatisfy(\.isHexDigit) && id == id.lowercased())
        #expect(copy["notifyMs"] == .int(1718600001423))
        #expect(DuplicateMaker.redundantCopy(of: hex) == DuplicateMaker.redundantCopy(of: hex))  // deterministic
        #expect(DuplicateMaker.redundantCopy(of: hex, copy: 2) != DuplicateMaker.redundantCopy(of: hex, copy: 1))

        // UUID ids stay UUIDs; other ids get a suffix; numbers as strings stay strings.
        let uuid = Array(#"{"noticeId":"4eb720f0-8da7-11e9-a43e-53f411c2761f","eventType":10,"notifyMs":"1560408533119","payload":{}}"#.utf8)
        let uuidCopy = try object(DuplicateMaker.redundantCopy(of: uuid))
        #expect(uuidCopy["noticeId"]?.stringValue.map { $0.split(separator: "-").map(\.count) } == [8, 4, 4, 4, 12])
        #expect(uuidCopy["notifyMs"] == .string("1560408533519"))
        #expect(try object(DuplicateMaker.resend(of: uuid))["notifyMs"] == .string("1560408534119"))
        let odd = Array(#"{"noticeId":"2000001428:4330:107","eventType":10,"notifyMs":5,"payload":{}}"#.utf8)
        #expect(try object(DuplicateMaker.redundantCopy(of: odd))["noticeId"] == .string("2000001428:4330:107-r1"))

        // Legacy notificationId; real fixtures decode after duplication.
        let legacy = try Fixtures.bytes(Paths.ncs.appendingPathComponent("lenient/legacy_format.json"))
        let legacyCopy = try NotificationDecoder.decode(DuplicateMaker.redundantCopy(of: legacy))
        #expect(legacyCopy.noticeId != (try NotificationDecoder.decode(legacy)).noticeId)
        for url in Paths.bodies(in: "lenient") {
            let body = try Fixtures.bytes(url)
            let original = try NotificationDecoder.decode(body)
            let resent = try NotificationDecoder.decode(DuplicateMaker.resend(of: body))
            let copied = try NotificationDecoder.decode(DuplicateMaker.redundantCopy(of: body))
            #expect(resent.noticeId == original.noticeId, "\(url.lastPathComponent)")
            #expect(copied.noticeId != original.noticeId, "\(url.lastPathComponent)")
            #expect(copied.payload.raw == original.payload.raw, "\(url.lastPathComponent)")
        }

        // Bodies the decoder rejects (every malformed fixture), or without notifyMs: unchanged.
        for url in Paths.bodies(in: "malformed") {
            let body = try Fixtures.bytes(url)
            #expect(DuplicateMaker.resend(of: body) == body, "\(url.lastPathComponent)")
            #expect(DuplicateMaker.redundantCopy(of: body) == body, "\(url.lastPathComponent)")
        }
        let noNotify = Array(#"{"noticeId":"a","eventType":40,"payload":{}}"#.utf8)
        #expect(DuplicateMaker.resend(of: noNotify) == noNotify)
    }

    @Test("response bodies are shown on one short line")
    func shortForm() {
        #expect(Replayer.shortForm(Array("{\n  \"ok\" : true\n}".utf8)) == #"{"ok":true}"#)
        #expect(Replayer.shortForm(Array("line one\r\nline   two".utf8)) == "line one line two")
        #expect(Replayer.shortForm(Array(String(repeating: "x", count: 500).utf8)).count == 121)
    }

    @Test("the redactor and signing never show the secret")
    func redaction() {
        let redactor = Redactor(["top-secret"])
        #expect(redactor("a top-secret b") == "a [redacted] b")
        #expect(!"\(redactor)".contains("top-secret"))
        #expect(!String(reflecting: redactor).contains("top-secret"))
        var dumped = ""
        dump(CallbackSigning.secret("top-secret"), to: &dumped)
        #expect(!dumped.contains("top-secret"))
    }
}
