// Faults and channel settings the simulator applies: from the CLI (`--scenario`), the control
// API (`POST /_sim/faults`) or `AgoraSimulator.apply(_:)`. The JSON format is documented in
// README.md ("Developing against the Agora simulator"):
//
//   {"faults": [{"kind": "domainDown", "domain": "primary"},
//               {"kind": "status", "endpoint": "start", "status": 503, "count": 3},
//               {"kind": "status", "endpoint": "acquire", "status": 500, "code": 501, "count": 1},
//               {"kind": "code65", "endpoint": "start", "count": 1},
//               {"kind": "slow", "endpoint": "any", "delayMs": 1500, "count": 2}],
//    "channels": [{"cname": "c1", "occupied": false}]}
//
// Parsed with NCS's JSON parser so every refusal names the member at fault.

import NCS

/// One of the two REST "domains" (api.agora.io and api.sd-rtn.com in production).
public enum AgoraDomain: String, Sendable, CaseIterable, Hashable {
    case primary
    case secondary
}

/// The REST endpoints, by the names the call log and faults use.
public enum AgoraEndpoint: String, Sendable, CaseIterable, Hashable {
    case acquire, start, query, update, updateLayout, stop
    /// `GET /v1/ncs/ip`.
    case ncsIP = "ncsIp"
}

public struct AgoraFault: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        /// The domain's listener is closed: connections are refused until the fault is removed.
        case domainDown
        /// Answer `status` (and `{"code","reason"}` when `code` is set, else `{"message"}`).
        case status
        /// Answer 206 `{"code":65,"reason":"request not completed"}` without doing the work.
        case code65
        /// Hold the answer `delayMs` of Agora time, then answer normally.
        case slow
    }

    public var kind: Kind
    /// domainDown: the domain to take down. Other kinds: only calls to this domain (nil: both).
    public var domain: AgoraDomain?
    /// Only calls to this endpoint; nil means any.
    public var endpoint: AgoraEndpoint?
    public var status: Int?
    public var code: Int?
    public var reason: String?
    /// slow: Agora milliseconds.
    public var delayMs: Int?
    /// How many more matching calls get the fault; nil means every one (domainDown ignores it).
    public var count: Int?

    public init(kind: Kind, domain: AgoraDomain? = nil, endpoint: AgoraEndpoint? = nil, status: Int? = nil,
                code: Int? = nil, reason: String? = nil, delayMs: Int? = nil, count: Int? = nil) {
        self.kind = kind
        self.domain = domain
        self.endpoint = endpoint
        self.status = status
        self.code = code
        self.reason = reason
        self.delayMs = delayMs
        self.count = count
    }

    public static func domainDown(_ domain: AgoraDomain) -> AgoraFault { AgoraFault(kind: .domainDown, domain: domain) }

    public static func status(_ status: Int, code: Int? = nil, reason: String? = nil, endpoint: AgoraEndpoint? = nil,
                              domain: AgoraDomain? = nil, count: Int? = nil) -> AgoraFault {
        AgoraFault(kind: .status, domain: domain, endpoint: endpoint, status: status, code: code, reason: reason, count: count)
    }

    public static func code65(endpoint: AgoraEndpoint? = nil, domain: AgoraDomain? = nil, count: Int? = nil) -> AgoraFault {
        AgoraFault(kind: .code65, domain: domain, endpoint: endpoint, count: count)
    }

    public static func slow(delayMs: Int, endpoint: AgoraEndpoint? = nil, domain: AgoraDomain? = nil, count: Int? = nil) -> AgoraFault {
        AgoraFault(kind: .slow, domain: domain, endpoint: endpoint, delayMs: delayMs, count: count)
    }

    /// Whether a call to `endpoint` on `domain` is subject to this fault (count not considered).
    func matches(endpoint: AgoraEndpoint?, domain: AgoraDomain) -> Bool {
        guard kind != .domainDown else { return false }
        if let only = self.domain, only != domain { return false }
        if let only = self.endpoint, only != endpoint { return false }
        return true
    }

    /// A short label for the call log ("status 503", "code65", "slow 1500ms").
    var label: String {
        switch kind {
        case .domainDown: return "domainDown \(domain?.rawValue ?? "?")"
        case .status: return "status \(status ?? 0)" + (code.map { " code \($0)" } ?? "")
        case .code65: return "code65"
        case .slow: return "slow \(delayMs ?? 0)ms"
        }
    }

    public var jsonValue: JSONValue {
        var object: JSONObject = ["kind": .string(kind.rawValue)]
        if let domain { object["domain"] = .string(domain.rawValue) }
        if kind != .domainDown { object["endpoint"] = .string(endpoint?.rawValue ?? "any") }
        if let status { object["status"] = .int(Int64(status)) }
        if let code { object["code"] = .int(Int64(code)) }
        if let reason { object["reason"] = .string(reason) }
        if let delayMs { object["delayMs"] = .int(Int64(delayMs)) }
        if let count { object["count"] = .int(Int64(count)) }
        return .object(object)
    }
}

/// A channel's occupancy: an empty channel makes its recordings idle out after maxIdleTime.
public struct AgoraChannelSetting: Sendable, Equatable {
    public var cname: String
    public var occupied: Bool
    public init(cname: String, occupied: Bool) {
        self.cname = cname
        self.occupied = occupied
    }
}

/// What a scenario file holds.
public struct AgoraScenario: Sendable, Equatable {
    public var faults: [AgoraFault]
    public var channels: [AgoraChannelSetting]

    public init(faults: [AgoraFault] = [], channels: [AgoraChannelSetting] = []) {
        self.faults = faults
        self.channels = channels
    }

    /// Parses the scenario JSON; every error names the member and what was wrong.
    public static func parse(_ bytes: [UInt8]) throws(AgoraScenarioError) -> AgoraScenario {
        let root: JSONValue
        do { root = try JSONValue.parse(bytes) } catch { throw AgoraScenarioError("not JSON: \(error)") }
        guard let object = root.objectValue else { throw AgoraScenarioError("the scenario must be a JSON object") }
        for key in object.keys where key != "faults" && key != "channels" {
            throw AgoraScenarioError("unknown member \"\(key)\" (expected \"faults\" and \"channels\")")
        }
        var scenario = AgoraScenario()
        if let faults = object["faults"] {
            guard let list = faults.arrayValue else { throw AgoraScenarioError("faults: expected an array") }
            for (index, item) in list.enumerated() {
                scenario.faults.append(try parseFault(item, at: "faults[\(index)]"))
            }
        }
        if let channels = object["channels"] {
            guard let list = channels.arrayValue else { throw AgoraScenarioError("channels: expected an array") }
            for (index, item) in list.enumerated() {
                let path = "channels[\(index)]"
                guard let cname = item["cname"]?.stringValue, !cname.isEmpty else {
                    throw AgoraScenarioError("\(path).cname: expected a non-empty string")
                }
                guard let occupied = item["occupied"]?.boolValue else { throw AgoraScenarioError("\(path).occupied: expected true or false") }
                scenario.channels.append(AgoraChannelSetting(cname: cname, occupied: occupied))
            }
        }
        return scenario
    }

    public static func parse(_ text: String) throws(AgoraScenarioError) -> AgoraScenario {
        try parse(Array(text.utf8))
    }

    private static let faultKeys: Set<String> = ["kind", "domain", "endpoint", "status", "code", "reason", "delayMs", "count"]

    private static func parseFault(_ value: JSONValue, at path: String) throws(AgoraScenarioError) -> AgoraFault {
        guard let object = value.objectValue else { throw AgoraScenarioError("\(path): expected an object") }
        for key in object.keys where !faultKeys.contains(key) {
            throw AgoraScenarioError("\(path): unknown member \"\(key)\"")
        }
        let kinds = AgoraFault.Kind.allCases.map(\.rawValue).joined(separator: ", ")
        guard let kindName = object["kind"]?.stringValue, let kind = AgoraFault.Kind(rawValue: kindName) else {
            throw AgoraScenarioError("\(path).kind: expected one of \(kinds)")
        }
        func integer(_ key: String, in range: ClosedRange<Int>) throws(AgoraScenarioError) -> Int? {
            guard let member = object[key] else { return nil }
            guard let number = member.int64Value, range.contains(Int(number)) else {
                throw AgoraScenarioError("\(path).\(key): expected an integer in \(range.lowerBound)...\(range.upperBound)")
            }
            return Int(number)
        }
        var fault = AgoraFault(kind: kind)
        if let domain = object["domain"] {
            guard let name = domain.stringValue, let parsed = AgoraDomain(rawValue: name) else {
                throw AgoraScenarioError("\(path).domain: expected \"primary\" or \"secondary\"")
            }
            fault.domain = parsed
        }
        if let endpoint = object["endpoint"] {
            let names = (["any"] + AgoraEndpoint.allCases.map(\.rawValue)).joined(separator: ", ")
            guard let name = endpoint.stringValue, name == "any" || AgoraEndpoint(rawValue: name) != nil else {
                throw AgoraScenarioError("\(path).endpoint: expected one of \(names)")
            }
            fault.endpoint = AgoraEndpoint(rawValue: name)
        }
        fault.status = try integer("status", in: 100...599)
        fault.code = try integer("code", in: 0...Int(Int32.max))
        if let reason = object["reason"] {
            guard let text = reason.stringValue else { throw AgoraScenarioError("\(path).reason: expected a string") }
            fault.reason = text
        }
        fault.delayMs = try integer("delayMs", in: 0...86_400_000)
        fault.count = try integer("count", in: 0...Int(Int32.max))
        switch kind {
        case .domainDown where fault.domain == nil:
            throw AgoraScenarioError("\(path).domain: domainDown needs \"primary\" or \"secondary\"")
        case .status where fault.status == nil:
            throw AgoraScenarioError("\(path).status: a status fault needs the HTTP status to answer")
        case .slow where fault.delayMs == nil:
            throw AgoraScenarioError("\(path).delayMs: a slow fault needs delayMs")
        default:
            break
        }
        return fault
    }

    public var jsonValue: JSONValue {
        .object([
            "faults": .array(faults.map(\.jsonValue)),
            "channels": .array(channels.map { .object(["cname": .string($0.cname), "occupied": .bool($0.occupied)]) }),
        ])
    }
}

public struct AgoraScenarioError: Error, Sendable, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
