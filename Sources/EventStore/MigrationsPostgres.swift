/// Versioned schema of the PostgreSQL store, applied in order at open under
/// `pg_advisory_xact_lock(PostgresMigrations.lockKey)` in one transaction (PostgreSQL DDL is
/// transactional), so two instances starting together never race: the second waits, then finds
/// the versions recorded in `schema_migrations` and applies nothing.
///
/// Append new versions at the end; never edit a shipped one. Each entry is one statement
/// (the extended protocol runs one statement per query).
enum PostgresMigrations {
    /// Arbitrary constant naming the migration lock (advisory locks are per database).
    static let lockKey: Int64 = 0x6E63_735F_6D69_6772 // "ncs_migr"

    static let createTable = """
        CREATE TABLE IF NOT EXISTS schema_migrations (
            version TEXT PRIMARY KEY,
            applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )
        """

    static let versions: [(version: String, statements: [String])] = [
        ("v1-create-events", [
            """
            CREATE TABLE events (
                log_offset BIGINT PRIMARY KEY,
                type TEXT NOT NULL,
                event_type BIGINT,
                cname TEXT,
                sid TEXT,
                time_ms BIGINT,
                received_ms BIGINT NOT NULL,
                body BYTEA NOT NULL
            )
            """,
            "CREATE INDEX events_by_cname ON events (cname, log_offset)",
            "CREATE INDEX events_by_sid ON events (sid, log_offset)",
            "CREATE INDEX events_by_type ON events (type text_pattern_ops, log_offset)",
            "CREATE INDEX events_by_received ON events (received_ms)",
            // The single row whose lock orders appenders and whose value is the visible head.
            "CREATE TABLE log_head (id INTEGER PRIMARY KEY CHECK (id = 1), head BIGINT NOT NULL)",
            "INSERT INTO log_head (id, head) VALUES (1, 0)",
            """
            CREATE TABLE dedup_keys (
                key TEXT PRIMARY KEY,
                log_offset BIGINT NOT NULL,
                received_ms BIGINT NOT NULL
            )
            """,
            "CREATE INDEX dedup_keys_by_received ON dedup_keys (received_ms)",
            """
            CREATE TABLE duplicates (
                id BIGSERIAL PRIMARY KEY,
                log_offset BIGINT NOT NULL,
                key TEXT NOT NULL,
                received_ms BIGINT NOT NULL
            )
            """,
            "CREATE INDEX duplicates_by_offset ON duplicates (log_offset)",
        ]),
        ("v2-create-quarantine", [
            """
            CREATE TABLE quarantine (
                id BIGSERIAL PRIMARY KEY,
                received_ms BIGINT NOT NULL,
                reason TEXT NOT NULL,
                detail TEXT NOT NULL,
                peer TEXT,
                headers TEXT NOT NULL,
                body BYTEA NOT NULL,
                body_size BIGINT NOT NULL
            )
            """,
            "CREATE INDEX quarantine_by_received ON quarantine (received_ms)",
            "CREATE TABLE counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL)",
            "INSERT INTO counters (name, value) VALUES ('quarantine_evicted', 0)",
        ]),
        ("v3-create-claims-documents", [
            "CREATE TABLE claims (key TEXT PRIMARY KEY, owner TEXT NOT NULL, claimed_ms BIGINT NOT NULL)",
            """
            CREATE TABLE documents (
                collection TEXT NOT NULL,
                key TEXT NOT NULL,
                value BYTEA NOT NULL,
                PRIMARY KEY (collection, key)
            )
            """,
        ]),
    ]
}
