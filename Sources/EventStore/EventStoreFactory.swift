import Logging

/// Opens a store from one configuration string:
/// - `memory`: ``InMemoryEventStore`` (nothing durable);
/// - `postgres://user:password@host:port/db` or `postgresql://…`: ``PostgresEventStore``;
/// - `sqlite:/path/to/events.sqlite`, `file:/path…` or a plain path: ``SQLiteEventStore``.
public enum EventStoreFactory {
    public static func open(_ location: String, options: StoreOptions = .init(), logger: Logger) async throws -> any EventStore {
        if location == "memory" { return InMemoryEventStore(options: options) }
        if location.hasPrefix("postgres://") || location.hasPrefix("postgresql://") {
            return try await PostgresEventStore(url: location, options: options, logger: logger)
        }
        var path = location
        for prefix in ["sqlite://", "sqlite:", "file://", "file:"] where path.hasPrefix(prefix) {
            path = String(path.dropFirst(prefix.count))
            break
        }
        return try SQLiteEventStore(path: path, options: options, logger: logger)
    }

    /// The location with any password replaced by `***`, for logs.
    public static func redacted(_ location: String) -> String {
        if location.hasPrefix("postgres://") || location.hasPrefix("postgresql://"),
           let url = try? PostgresURL(location) {
            return url.redacted
        }
        return location
    }
}
