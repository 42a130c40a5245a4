import EventStore
import Foundation
import Logging
import Testing

/// The PostgreSQL server tests run against: `NCS_TEST_POSTGRES_URL` (Tests/run.sh starts one).
public enum PostgresTestEnvironment {
    public static let url = ProcessInfo.processInfo.environment["NCS_TEST_POSTGRES_URL"].flatMap { $0.isEmpty ? nil : $0 }
    public static let isCI = ProcessInfo.processInfo.environment["CI"] == "true"
    public static let enabled: Bool = {
        if url == nil && !isCI {
            print("EventStoreTests: NCS_TEST_POSTGRES_URL not set (and not CI): skipping the PostgreSQL tests. "
                + "Start one with `Tests/Support/postgres.sh start /tmp/ncs-pg` and export the URL it prints.")
        }
        return url != nil || isCI
    }()
    public static let skipMessage: Comment = "NCS_TEST_POSTGRES_URL not set (not CI): PostgreSQL tests skipped"

    public struct Missing: Error, CustomStringConvertible {
        public var description: String { "CI=true but NCS_TEST_POSTGRES_URL is not set: the PostgreSQL tests cannot run" }
    }

    public static func requireURL() throws -> String {
        guard let url else { throw Missing() }
        return url
    }

    /// A fresh database for one test; dropped by ``drop(_:)``.
    public static func createDatabase() async throws -> (name: String, url: String) {
        let admin = try requireURL()
        let name = "ncs_t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(16).lowercased()
        try await PostgresEventStore.execute(url: admin, statements: ["CREATE DATABASE \(name)"], logger: Logger(label: "postgres-test"))
        return (name, replacingDatabase(in: admin, with: name))
    }

    public static func drop(_ name: String) async {
        guard let admin = url else { return }
        do {
            try await PostgresEventStore.execute(url: admin, statements: ["DROP DATABASE IF EXISTS \(name) WITH (FORCE)"], logger: Logger(label: "postgres-test"))
        } catch {
            print("EventStoreTests: could not drop database \(name): \(error)")
        }
    }

    public static func replacingDatabase(in url: String, with database: String) -> String {
        var components = URLComponents(string: url)!
        components.path = "/" + database
        return components.string!
    }
}

