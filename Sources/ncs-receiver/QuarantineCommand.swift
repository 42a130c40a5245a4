import ArgumentParser
import Foundation
import NCS

struct Quarantine: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Inspect, retry and drop the requests a running receiver refused (its quarantine).",
        discussion: """
        A callback that fails signature verification or cannot be decoded is answered 401 or \
        400 and kept in the quarantine with the reason, the peer, the headers and the exact \
        body, so it can be looked at, and retried once the cause is fixed (for example after \
        adding a rotated secret to NCS_SECRETS and restarting the receiver).

        The admin listener is http://127.0.0.1:8081 unless --admin-url or NCS_ADMIN_URL says \
        otherwise; the token comes from NCS_ADMIN_TOKEN or --admin-token-file, and is never printed.

        Examples:
          ncs-receiver quarantine list
          ncs-receiver quarantine show 17
          ncs-receiver quarantine show 17 --body > body.json
          ncs-receiver quarantine retry 17
          ncs-receiver quarantine drop 17
        """,
        subcommands: [List.self, Show.self, Retry.self, Drop.self]
    )
}

/// A JSON object from the admin API, read with JSONSerialization.
private struct JSONObject {
    let raw: [String: Any]

    init(_ bytes: [UInt8]) throws(AdminError) {
        guard let object = (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any] else {
            throw .invalidAnswer("not a JSON object")
        }
        raw = object
    }

    init(_ raw: [String: Any]) { self.raw = raw }

    func string(_ key: String) -> String? { raw[key] as? String }
    func int(_ key: String) -> Int64? { (raw[key] as? NSNumber)?.int64Value }
    func bool(_ key: String) -> Bool? { (raw[key] as? NSNumber)?.boolValue }
    func objects(_ key: String) -> [JSONObject] { ((raw[key] as? [Any]) ?? []).compactMap { ($0 as? [String: Any]).map(JSONObject.init) } }
    func pairs(_ key: String) -> [[String]] { ((raw[key] as? [Any]) ?? []).compactMap { $0 as? [String] } }
}

/// One line of a table cell: control characters shown as spaces.
private func cell(_ text: String) -> String {
    String(text.unicodeScalars.map { $0.properties.generalCategory == .control ? " " : Character($0) })
}

private func writeOut(_ text: String) throws(AdminError) {
    do {
        try FileHandle.standardOutput.write(contentsOf: Data(text.utf8))
    } catch {
        throw .output("cannot write the output: \(error.localizedDescription)")
    }
}

extension Quarantine {
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list",
            abstract: "List quarantined requests, oldest first.",
            discussion: """
            Columns: id, when it was received (UTC), reason (bad_signature, missing_signature, \
            malformed_body, http_<status>…), peer address, body size, detail. The footer gives \
            how many requests the quarantine holds, their bytes, and how many were evicted to \
            stay within --quarantine-max-count/--quarantine-max-bytes. When a page is full, the \
            footer shows the --after for the next one.

            Examples:
              ncs-receiver quarantine list
              ncs-receiver quarantine list --after 200 --limit 50
              ncs-receiver quarantine list --json | jq '.items[].reason'
            """
        )

        @OptionGroup var admin: AdminOptions

        @Option(help: .init("Only ids after this one.", valueName: "id"))
        var after: Int64 = 0

        @Option(help: .init("At most this many (1…1000).", valueName: "n"))
        var limit: Int = 100

        @Flag(help: "Print the admin API's JSON answer as is.")
        var json = false

        func validate() throws {
            guard (1...1000).contains(limit) else { throw ValidationError("--limit must be between 1 and 1000") }
            guard after >= 0 else { throw ValidationError("--after must be a non-negative id") }
        }

        func run() async throws {
            try await reportingAdminErrors {
                let client = try admin.client()
                let body = try await client.expectOK("GET", "/v1/quarantine", query: [("after", "\(after)"), ("limit", "\(limit)")])
                if json {
                    try writeOut(String(decoding: body, as: UTF8.self) + "\n")
                    return
                }
                let answer = try JSONObject(body)
                let items = answer.objects("items")
                let header = ["ID", "RECEIVED", "REASON", "PEER", "BYTES", "DETAIL"]
                var rows: [[String]] = items.map { item in
                    [
                        item.int("id").map(String.init) ?? "?",
                        item.int("receivedMs").flatMap { RFC3339.format(ms: $0) } ?? "-",
                        cell(item.string("reason") ?? "-"),
                        cell(item.string("peer") ?? "-"),
                        item.int("bodyBytes").map(String.init) ?? "-",
                        cell(item.string("detail") ?? ""),
                    ]
                }
                var text = ""
                if rows.isEmpty {
                    text += after > 0 ? "no quarantined requests after id \(after)\n" : "the quarantine is empty\n"
                } else {
                    rows.insert(header, at: 0)
                    var widths = Array(repeating: 0, count: header.count)
                    for row in rows { for (i, value) in row.enumerated() { widths[i] = max(widths[i], value.count) } }
                    for row in rows {
                        var line = ""
                        for (i, value) in row.enumerated() {
                            if i == row.count - 1 { line += value; break }
                            let pad = String(repeating: " ", count: widths[i] - value.count)
                            line += i == 4 ? pad + value + "  " : value + pad + "  "  // BYTES right-aligned
                        }
                        while line.hasSuffix(" ") { line.removeLast() }
                        text += line + "\n"
                    }
                }
                let count = answer.int("count") ?? 0
                let bytes = answer.int("bytes") ?? 0
                let evicted = answer.int("evicted") ?? 0
                text += "\(count) quarantined (\(bytes) bytes), \(evicted) evicted"
                if items.count == limit, let next = answer.int("next") {
                    text += "; more: ncs-receiver quarantine list --after \(next)"
                }
                text += "\n"
                try writeOut(text)
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show one quarantined request: reason, detail, peer, headers and body.",
            discussion: """
            The body is printed as text when it is UTF-8 and as base64 otherwise (or with \
            --base64). --body writes only the exact body bytes to stdout, e.g. to keep or edit it.

            Examples:
              ncs-receiver quarantine show 17
              ncs-receiver quarantine show 17 --base64
              ncs-receiver quarantine show 17 --body > 17.json
              ncs-receiver quarantine show 17 --json | jq .headers
            """
        )

        @OptionGroup var admin: AdminOptions

        @Argument(help: .init("The id shown by `quarantine list`.", valueName: "id"))
        var id: Int64

        @Flag(help: "Print the body as base64 even when it is text.")
        var base64 = false

        @Flag(help: "Write only the body's exact bytes to stdout.")
        var body = false

        @Flag(help: "Print the admin API's JSON answer as is.")
        var json = false

        func run() async throws {
            try await reportingAdminErrors {
                let client = try admin.client()
                let answer = try await client.expectOK("GET", "/v1/quarantine/\(id)")
                if json {
                    try writeOut(String(decoding: answer, as: UTF8.self) + "\n")
                    return
                }
                let item = try JSONObject(answer)
                let bodyBytes = item.string("bodyBase64").flatMap { Data(base64Encoded: $0) } ?? Data()
                if body {
                    do {
                        try FileHandle.standardOutput.write(contentsOf: bodyBytes)
                    } catch {
                        throw AdminError.output("cannot write the output: \(error.localizedDescription)")
                    }
                    return
                }
                var text = ""
                text += "id:        \(item.int("id").map(String.init) ?? "\(id)")\n"
                text += "received:  \(item.int("receivedMs").flatMap { RFC3339.format(ms: $0) } ?? "-")\n"
                text += "reason:    \(item.string("reason") ?? "-")\n"
                text += "detail:    \(item.string("detail") ?? "")\n"
                text += "peer:      \(item.string("peer") ?? "-")\n"
                let headers = item.pairs("headers")
                text += headers.isEmpty ? "headers:   (none)\n" : "headers:\n"
                for pair in headers where pair.count == 2 {
                    text += "  \(cell(pair[0])): \(cell(pair[1]))\n"
                }
                if let bodyText = item.string("body"), !base64 {
                    text += "body (\(bodyBytes.count) bytes):\n"
                    text += bodyText
                    if !bodyText.hasSuffix("\n") { text += "\n" }
                } else {
                    text += "body (\(bodyBytes.count) bytes, base64):\n"
                    text += (item.string("bodyBase64") ?? "") + "\n"
                }
                try writeOut(text)
            }
        }
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a quarantined request through verification and ingestion again.",
            discussion: """
            The receiver re-verifies the kept body with the secrets it has now and, if it \
            passes, logs it as if it had just arrived: the request leaves the quarantine and the \
            new offset is printed (or the offset it duplicates, when the event was already \
            logged). A refused retry leaves the request in the quarantine, prints why, and \
            exits 1.

            Examples:
              ncs-receiver quarantine retry 17
              for id in $(ncs-receiver quarantine list --json | jq '.items[].id'); do
                ncs-receiver quarantine retry "$id"
              done
            """
        )

        @OptionGroup var admin: AdminOptions

        @Argument(help: .init("The id shown by `quarantine list`.", valueName: "id"))
        var id: Int64

        func run() async throws {
            try await reportingAdminErrors {
                let client = try admin.client()
                let response = try await client.send("POST", "/v1/quarantine/\(id)/retry")
                switch response.status {
                case 200..<300:
                    let answer = try JSONObject(response.body)
                    let offset = answer.int("offset").map(String.init) ?? "?"
                    if answer.bool("duplicate") == true {
                        try writeOut("retried \(id): already in the log as offset \(offset) (a duplicate); removed from the quarantine\n")
                    } else {
                        try writeOut("retried \(id): logged at offset \(offset); removed from the quarantine\n")
                    }
                case 422:
                    let object = try? JSONObject(response.body)
                    let code = object?.string("error") ?? "refused"
                    let field = object?.string("field").map { " (field \($0))" } ?? ""
                    let message = object?.string("message") ?? String(decoding: response.body, as: UTF8.self)
                    StandardError.write("retry of \(id) refused: \(code)\(field): \(message); it stays in the quarantine\n")
                    throw ExitCode(1)
                default:
                    throw client.httpError(response)
                }
            }
        }
    }

    struct Drop: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete a quarantined request.",
            discussion: """
            Examples:
              ncs-receiver quarantine drop 17
            """
        )

        @OptionGroup var admin: AdminOptions

        @Argument(help: .init("The id shown by `quarantine list`.", valueName: "id"))
        var id: Int64

        func run() async throws {
            try await reportingAdminErrors {
                let client = try admin.client()
                _ = try await client.expectOK("DELETE", "/v1/quarantine/\(id)")
                try writeOut("dropped \(id)\n")
            }
        }
    }
}
