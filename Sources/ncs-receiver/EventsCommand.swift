import ArgumentParser
import Foundation
import NCS

struct Events: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Read the event log of a running receiver through its admin API.",
        discussion: """
        The admin listener is http://127.0.0.1:8081 unless --admin-url or NCS_ADMIN_URL says \
        otherwise. The bearer token comes from NCS_ADMIN_TOKEN, or from the file named by \
        --admin-token-file (or NCS_ADMIN_TOKEN_FILE); it is never taken from a flag value and \
        never printed.

        Events are printed as JSON Lines: one CloudEvent per line, exactly the bytes the receiver \
        serves, with the log offset as "ncsoffset" (deploy/EVENTS.md describes the schema).

        Examples:
          export NCS_ADMIN_TOKEN=…
          ncs-receiver events tail                   # the last 10 events
          ncs-receiver events tail -f --type 'io.agora.cloudrecording.*'
          ncs-receiver events export --since 2026-11-01T00:00:00Z > november.jsonl
        """,
        subcommands: [Tail.self, Export.self]
    )
}

enum EventFormat: String, ExpressibleByArgument, CaseIterable {
    case json
    case text
}

extension Events {
    struct Tail: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the last events of the log, and with --follow, new ones as they are committed.",
            discussion: """
            Without --after, prints the last -n events (after the filters). With --after N, \
            prints every event after offset N. With --follow, keeps the connection open \
            (Server-Sent Events) and prints each new event as it is committed; when the \
            connection drops (a receiver restart, a network fault), it reconnects with back-off \
            and resumes after the last offset it printed, so no event is printed twice or missed. \
            Stop it with Ctrl-C.

            --format json (the default) prints one CloudEvent per line, byte for byte as served; \
            --format text prints "offset time type subject".

            Exit status: 0, or 1 when the receiver cannot be reached or refuses the request \
            (the server's message is printed).

            Examples:
              ncs-receiver events tail                      # the last 10 events
              ncs-receiver events tail -n 50 --cname class-7b
              ncs-receiver events tail --after 1200         # all after offset 1200
              ncs-receiver events tail -f --format text     # follow, human lines
              ncs-receiver events tail -f -n 0 --type 'io.agora.cloudrecording.*'
              NCS_ADMIN_URL=http://10.0.0.5:8081 ncs-receiver events tail -f
            """
        )

        @OptionGroup var admin: AdminOptions
        @OptionGroup var filters: EventFilterOptions

        @Option(name: [.customShort("n"), .customLong("lines")], help: .init("How many of the last events to print (without --after).", valueName: "n"))
        var lines: Int = 10

        @Option(help: .init("Print every event after this offset instead of the last -n.", valueName: "offset"))
        var after: Int64?

        @Flag(name: .shortAndLong, help: "Keep printing new events as they are committed (Server-Sent Events).")
        var follow = false

        @Option(help: .init("json: one CloudEvent per line; text: offset time type subject.", valueName: "json|text"))
        var format: EventFormat = .json

        func validate() throws {
            guard lines >= 0 else { throw ValidationError("-n/--lines must be 0 or more") }
            if let after, after < 0 { throw ValidationError("--after must be a non-negative offset") }
        }

        func run() async throws {
            try await reportingAdminErrors {
                let client = try admin.client()
                let output = BufferedOutput(handle: .standardOutput, capacity: 256 * 1024)
                let filter = filters.queryItems
                var cursor: Int64
                if let after {
                    cursor = try await printAll(after: after, client: client, filter: filter, output: output)
                } else {
                    let (events, scannedTo) = try await Self.lastEvents(lines, client: client, filter: filter, emptyFilter: filters.isEmpty)
                    for event in events { try emit(event, to: output) }
                    try output.flush()
                    cursor = max(events.last?.offset ?? 0, scannedTo)
                }
                if follow {
                    try await followStream(after: cursor, client: client, filter: filter, output: output)
                }
            }
        }

        private func emit(_ event: RawEvent, to output: BufferedOutput) throws(AdminError) {
            switch format {
            case .json: try output.writeLine(event.bytes)
            case .text: try output.writeLine(event.summary)
            }
        }

        /// Every event after `after`, up to the head; returns how far the log was scanned.
        private func printAll(after: Int64, client: AdminClient, filter: [(String, String)], output: BufferedOutput) async throws(AdminError) -> Int64 {
            var cursor = after
            let limit = 1000
            while true {
                let page = try await client.eventsPage(after: cursor, limit: limit, filter: filter)
                for event in page.events { try emit(event, to: output) }
                try output.flush()
                cursor = max(cursor, page.next, page.events.last?.offset ?? cursor)
                if page.events.count < limit { return cursor }
            }
        }

        /// The last `n` events matching the filter: windows back from the head, widening until
        /// n matches are found or the start of the log is reached. Returns them in order and the
        /// head they were read against.
        static func lastEvents(_ n: Int, client: AdminClient, filter: [(String, String)], emptyFilter: Bool) async throws(AdminError) -> ([RawEvent], Int64) {
            let head = try await client.eventsPage(after: 0, limit: 1, filter: []).head
            guard n > 0, head > 0 else { return ([], head) }
            var collected: [RawEvent] = []  // the matches in (start, head], in order
            var end = head
            var window = Int64(n)
            while true {
                let start = max(0, end - window)
                var segment: [RawEvent] = []
                var cursor = start
                scan: while cursor < end {
                    let limit = emptyFilter ? Int(min(1000, end - cursor)) : 1000
                    let page = try await client.eventsPage(after: cursor, limit: limit, filter: filter)
                    for event in page.events {
                        if event.offset > end { break scan }
                        // A copy, so a short tail does not keep whole pages alive.
                        var kept = event
                        kept.bytes = ArraySlice(Array(event.bytes))
                        segment.append(kept)
                        if segment.count > 2 * n { segment.removeFirst(segment.count - n) }
                    }
                    guard page.events.count == limit, let last = page.events.last else { break }
                    cursor = last.offset
                }
                collected = Array((segment + collected).suffix(n))
                if collected.count >= n || start == 0 { return (collected, head) }
                end = start
                window = min(window * 4, Int64.max / 8)
            }
        }

        /// Streams from `after`, reconnecting with back-off; nothing at or before the last
        /// printed offset is printed again.
        private func followStream(after: Int64, client: AdminClient, filter: [(String, String)], output: BufferedOutput) async throws {
            var cursor = after
            var delay = 0.5
            while true {
                var connected = false
                do {
                    for try await message in client.stream(after: cursor, filter: filter) {
                        switch message {
                        case .connected:
                            if !connected, delay > 0.5 { StandardError.write("ncs-receiver: reconnected; resuming after offset \(cursor)\n") }
                            connected = true
                            delay = 0.5
                        case .event(let id, _, let data):
                            let event: RawEvent
                            do {
                                event = try RawEvent.parse(data)
                            } catch {
                                throw AdminError.invalidAnswer("stream event \(id.map(String.init) ?? "?"): \(error)")
                            }
                            guard event.offset > cursor else { continue }
                            try emit(event, to: output)
                            try output.flush()
                            cursor = event.offset
                        }
                    }
                    StandardError.write("ncs-receiver: the receiver closed the stream; reconnecting\n")
                } catch let error as AdminError where error.isTransient {
                    let wait = connected ? 0.5 : delay
                    StandardError.write("ncs-receiver: \(connected ? "stream interrupted" : "cannot connect to \(client.displayURL)") "
                        + "(\(error.briefDescription)); retrying in \(wait) s\n")
                }
                try await Task.sleep(for: .milliseconds(Int((connected ? 0.5 : delay) * 1000)))
                if connected { delay = 0.5 } else { delay = min(delay * 2, 15) }
            }
        }
    }
}

extension Events {
    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write the event log, or the part of it since an offset or a time, as JSON Lines.",
            discussion: """
            Pages through the log (1000 events a request) from --since up to the head as it was \
            when the export started, writing one CloudEvent per line, byte for byte as served, \
            to stdout or --output. Memory stays flat however long the log is.

            --since takes an offset (events after it) or an RFC 3339 time such as \
            2026-11-01T00:00:00Z or 2026-11-01 (UTC midnight). With a time the whole log is read \
            and events whose CloudEvent "time" is earlier are left out; events without a "time" \
            (nothing in the notification dated them) are kept.

            Progress (events written, offset/head, rate) goes to stderr: a line rewritten in \
            place on a terminal, otherwise a line every ~10%; then a summary. -q keeps stderr quiet.

            Exit status: 0, or 1 when the receiver cannot be reached, refuses a request, or the \
            output cannot be written.

            Examples:
              ncs-receiver events export > all.jsonl
              ncs-receiver events export --since 2026-11-01T00:00:00Z > november.jsonl
              ncs-receiver events export --since 125000 --output rest.jsonl
              ncs-receiver events export --type 'ncsreceiver.*' --cname c7 > c7.jsonl
            """
        )

        @OptionGroup var admin: AdminOptions
        @OptionGroup var filters: EventFilterOptions

        @Option(help: .init("An offset (events after it) or an RFC 3339 time (events at or after it).", valueName: "offset|time"))
        var since: String?

        @Option(name: .shortAndLong, help: .init("Write to this file instead of stdout (replaced if it exists).", valueName: "file"))
        var output: String?

        @Flag(name: .shortAndLong, help: "No progress and no summary on stderr.")
        var quiet = false

        enum Since: Equatable {
            case offset(Int64)
            case time(Int64)
        }

        static func parseSince(_ text: String) -> Since? {
            if let offset = Int64(text), offset >= 0 { return .offset(offset) }
            return RFC3339.milliseconds(text).map { .time($0) }
        }

        func validate() throws {
            if let since, Self.parseSince(since) == nil {
                throw ValidationError("--since must be an offset (e.g. 1200) or an RFC 3339 time (e.g. 2026-11-01T00:00:00Z), got '\(since)'")
            }
        }

        func run() async throws {
            try await reportingAdminErrors {
                let client = try admin.client()
                let since = self.since.flatMap(Self.parseSince)
                let handle: FileHandle
                if let output {
                    // open(2) with O_CREAT|O_TRUNC, not FileManager.createFile: that one writes a
                    // temporary file and renames it over the path, which would replace a device
                    // such as /dev/null with a regular file.
                    let fd = open(output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
                    guard fd >= 0 else { throw AdminError.output("cannot create \(output)") }
                    handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
                } else {
                    handle = .standardOutput
                }
                defer { if output != nil { try? handle.close() } }
                try await export(client: client, since: since, to: BufferedOutput(handle: handle))
            }
        }

        private func export(client: AdminClient, since: Since?, to out: BufferedOutput) async throws {
            let filter = filters.queryItems
            let limit = 1000
            var start: Int64 = 0
            var notBefore: Int64?
            switch since {
            case .offset(let offset): start = offset
            case .time(let ms): notBefore = ms
            case nil: break
            }
            var progress = ExportProgress(start: start, quiet: quiet)
            var page = try await client.eventsPage(after: start, limit: limit, filter: filter)
            let head = page.head
            progress.head = head
            var written = 0
            var skipped = 0
            var lastOffset = start
            while true {
                var reachedHead = page.events.count < limit
                // Ask for the next page while this one is written.
                let nextAfter = page.next
                let prefetch: Task<EventsPage, any Error>? = reachedHead || nextAfter >= head ? nil : Task {
                    try await client.eventsPage(after: nextAfter, limit: limit, filter: filter)
                }
                for event in page.events {
                    if event.offset > head { reachedHead = true; break }
                    lastOffset = event.offset
                    if let notBefore, let ms = event.timeMs, ms < notBefore { skipped += 1; continue }
                    try out.writeLine(event.bytes)
                    written += 1
                }
                lastOffset = max(lastOffset, min(page.next, head))
                progress.update(written: written, offset: lastOffset)
                guard let prefetch, !reachedHead else { break }
                do {
                    page = try await prefetch.value
                } catch let error as AdminError {
                    throw error
                } catch {
                    throw AdminError.invalidAnswer("\(error)")
                }
            }
            try out.flush()
            progress.finish(written: written, skipped: skipped, bytes: out.bytesWritten, offset: lastOffset)
        }
    }
}

/// Export progress on stderr: on a terminal one line rewritten in place at most 4 times a
/// second; otherwise a plain line each time another ~10% of the offsets is done.
struct ExportProgress {
    let start: Int64
    var head: Int64 = 0
    let quiet: Bool
    private let began = ContinuousClock.now
    private var lastReport = ContinuousClock.now
    private var nextTenth = 1
    private var drewLine = false

    init(start: Int64, quiet: Bool) {
        self.start = start
        self.quiet = quiet
    }

    private var elapsed: Double {
        let d = ContinuousClock.now - began
        return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    private func fraction(_ offset: Int64) -> Double {
        guard head > start else { return 1 }
        return min(1, max(0, Double(offset - start) / Double(head - start)))
    }

    private func line(written: Int, offset: Int64) -> String {
        let rate = elapsed > 0 ? Double(written) / elapsed : 0
        return "exported \(written) events  offset \(offset)/\(head) (\(Int(fraction(offset) * 100))%)  \(Int(rate)) events/s"
    }

    mutating func update(written: Int, offset: Int64) {
        guard !quiet else { return }
        let now = ContinuousClock.now
        if StandardError.isTerminal {
            guard now - lastReport >= .milliseconds(250) else { return }
            StandardError.write("\r\(line(written: written, offset: offset))\u{1B}[K")
            drewLine = true
        } else {
            let tenth = Int(fraction(offset) * 10)
            guard tenth >= nextTenth, tenth < 10, now - lastReport >= .milliseconds(250) else { return }
            nextTenth = tenth + 1
            StandardError.write(line(written: written, offset: offset) + "\n")
        }
        lastReport = now
    }

    func finish(written: Int, skipped: Int, bytes: Int64, offset: Int64) {
        guard !quiet else { return }
        let seconds = elapsed
        let rate = seconds > 0 ? Int(Double(written) / seconds) : written
        var summary = "exported \(written) events (\(bytes) bytes) up to offset \(offset) of \(head) in \(String(format: "%.2f", seconds)) s, \(rate) events/s"
        if skipped > 0 { summary += "; \(skipped) earlier than --since left out" }
        StandardError.write((drewLine ? "\r\u{1B}[K" : "") + summary + "\n")
    }
}
