import ArgumentParser
import Foundation

/// `ncs-receiver recordings …`: the recordings the receiver keeps alive, over the admin API.
struct Recordings: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Hand recordings to the receiver to keep alive, look at them, and stop them.",
        discussion: """
        A registered recording is restarted (acquire, start, query) whenever Agora ends it \
        without being asked (events 11, 31, 32 from its current recorder, or a query 404 that \
        outlasts the back-off), until it is deleted. Storage credentials in the clientRequest \
        are never shown.
        """,
        subcommands: [List.self, Show.self, Put.self, Delete.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "One line per registered recording: state, current sid and recorder uid.",
            discussion: """
            Examples:
              ncs-receiver recordings list
              ncs-receiver recordings list --json | jq '.recordings[] | select(.state=="failed")'
            """
        )
        @OptionGroup var admin: AdminOptions
        @Flag(help: "Print the admin API's JSON answer as is.") var json = false

        func run() async throws {
            try await reportingAdminErrors {
                let client = try admin.client()
                let body = try await client.expectOK("GET", "/v1/recordings")
                if json { return try RecordingsOutput.write(body) }
                let answer = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any]
                let items = (answer?["recordings"] as? [[String: Any]]) ?? []
                var text = "CNAME                            STATE       WANTED  SID                               RECORDER-UID  RESTARTS\n"
                for item in items {
                    let current = item["current"] as? [String: Any]
                    let lineage = (item["lineage"] as? [[String: Any]]) ?? []
                    let restarts = lineage.filter { ($0["replacesSid"] as? String) != nil }.count
                    text += [
                        RecordingsOutput.pad(item["cname"] as? String ?? "?", 32), RecordingsOutput.pad(item["state"] as? String ?? "?", 11),
                        RecordingsOutput.pad((item["wanted"] as? Bool) == true ? "yes" : "no", 7),
                        RecordingsOutput.pad(current?["sid"] as? String ?? "-", 33), RecordingsOutput.pad(current?["recorderUid"] as? String ?? "-", 13),
                        "\(restarts)",
                    ].joined(separator: " ") + "\n"
                }
                if items.isEmpty { text += "(no recordings registered)\n" }
                try RecordingsOutput.write(Array(text.utf8))
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Everything known about one recording (JSON): current task, lineage of sids, errors.",
            discussion: """
            Examples:
              ncs-receiver recordings show class_7b_math
            """
        )
        @OptionGroup var admin: AdminOptions
        @Argument(help: .init("The channel name.", valueName: "cname")) var cname: String

        func run() async throws {
            try await reportingAdminErrors {
                let client = try admin.client()
                let body = try await client.expectOK("GET", "/v1/recordings/\(RecordingsOutput.segment(cname))")
                try RecordingsOutput.writePretty(body)
            }
        }
    }

    struct Put: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Register (or update) a recording to keep alive; with --start the receiver starts it.",
            discussion: """
            The file holds the PUT /v1/recordings/{cname} body (README.md, "Keeping recordings \
            alive"): appId, mode, uid, backupUid, clientRequest, and resourceId + sid when the \
            backend started the recording itself. Use - to read it from stdin.

            Examples:
              ncs-receiver recordings put class_7b_math --file recording.json --start
            """
        )
        @OptionGroup var admin: AdminOptions
        @Argument(help: .init("The channel name.", valueName: "cname")) var cname: String
        @Option(help: .init("The request body (JSON), or - for stdin.", valueName: "path")) var file: String
        @Flag(help: "Ask the receiver to start it now (acquire, start, query).") var start = false

        func run() async throws {
            try await reportingAdminErrors {
                var body: [UInt8]
                if file == "-" {
                    body = Array(FileHandle.standardInput.readDataToEndOfFile())
                } else {
                    guard let data = FileManager.default.contents(atPath: file) else {
                        throw AdminError.invalidAnswer("cannot read \(file)")
                    }
                    body = Array(data)
                }
                if start {
                    guard var object = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] else {
                        throw AdminError.invalidAnswer("\(file) is not a JSON object")
                    }
                    object["start"] = true
                    body = Array(try! JSONSerialization.data(withJSONObject: object))
                }
                let client = try admin.client()
                let response = try await client.send("PUT", "/v1/recordings/\(RecordingsOutput.segment(cname))", body: body)
                guard (200..<300).contains(response.status) else { throw client.httpError(response) }
                let answer = (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any]
                for warning in (answer?["warnings"] as? [String]) ?? [] {
                    StandardError.write("warning: \(warning)\n")
                }
                try RecordingsOutput.writePretty(response.body)
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "An intended stop: the recording is never restarted again; --stop also calls Agora's stop.",
            discussion: """
            Examples:
              ncs-receiver recordings delete class_7b_math --stop
            """
        )
        @OptionGroup var admin: AdminOptions
        @Argument(help: .init("The channel name.", valueName: "cname")) var cname: String
        @Flag(help: "Also call Agora's stop for the live sid.") var stop = false

        func run() async throws {
            try await reportingAdminErrors {
                let client = try admin.client()
                let body = try await client.expectOK("DELETE", "/v1/recordings/\(RecordingsOutput.segment(cname))",
                                                     query: [("stop", stop ? "true" : "false")])
                let answer = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any]
                var text = "\(cname): no longer kept alive"
                if let outcome = answer?["stop"] as? String { text += "; stop: \(outcome)" }
                try RecordingsOutput.write(Array((text + "\n").utf8))
            }
        }
    }
}

enum RecordingsOutput {
    static func write(_ bytes: [UInt8]) throws(AdminError) {
        var out = bytes
        if out.last != UInt8(ascii: "\n") { out.append(UInt8(ascii: "\n")) }
        FileHandle.standardOutput.write(Data(out))
    }

    static func writePretty(_ body: [UInt8]) throws(AdminError) {
        if let object = try? JSONSerialization.jsonObject(with: Data(body)),
           let pretty = try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys]) {
            try write(Array(pretty))
        } else {
            try write(body)
        }
    }

    static func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
    }

    static func segment(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }
}
