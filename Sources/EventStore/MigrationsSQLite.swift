import GRDB

/// Versioned schema of the SQLite store. Append new migrations at the end; never edit a shipped one
/// (GRDB records the identifiers it applied in `grdb_migrations`).
///
/// The log offset column is `log_offset` (`offset` is an SQL keyword). `events.log_offset` is an
/// `INTEGER PRIMARY KEY AUTOINCREMENT`: offsets are never reused, even after retention drops the
/// newest rows, and `sqlite_sequence` keeps the head when the table is empty.
enum SQLiteMigrations {
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-create-events") { db in
            try db.execute(sql: """
                CREATE TABLE events (
                    log_offset INTEGER PRIMARY KEY AUTOINCREMENT,
                    type TEXT NOT NULL,
                    event_type INTEGER,
                    cname TEXT,
                    sid TEXT,
                    time_ms INTEGER,
                    received_ms INTEGER NOT NULL,
                    body BLOB NOT NULL
                );
                CREATE INDEX events_by_cname ON events(cname, log_offset);
                CREATE INDEX events_by_sid ON events(sid, log_offset);
                CREATE INDEX events_by_type ON events(type, log_offset);
                CREATE INDEX events_by_received ON events(received_ms);

                CREATE TABLE dedup_keys (
                    key TEXT PRIMARY KEY NOT NULL,
                    log_offset INTEGER NOT NULL,
                    received_ms INTEGER NOT NULL
                ) WITHOUT ROWID;
                CREATE INDEX dedup_keys_by_received ON dedup_keys(received_ms);

                CREATE TABLE duplicates (
                    id INTEGER PRIMARY KEY,
                    log_offset INTEGER NOT NULL,
                    key TEXT NOT NULL,
                    received_ms INTEGER NOT NULL
                );
                CREATE INDEX duplicates_by_offset ON duplicates(log_offset);
                """)
        }
        migrator.registerMigration("v2-create-quarantine") { db in
            try db.execute(sql: """
                CREATE TABLE quarantine (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    received_ms INTEGER NOT NULL,
                    reason TEXT NOT NULL,
                    detail TEXT NOT NULL,
                    peer TEXT,
                    headers TEXT NOT NULL,
                    body BLOB NOT NULL,
                    body_size INTEGER NOT NULL
                );
                CREATE INDEX quarantine_by_received ON quarantine(received_ms);
                CREATE TABLE counters (
                    name TEXT PRIMARY KEY NOT NULL,
                    value INTEGER NOT NULL
                ) WITHOUT ROWID;
                INSERT INTO counters(name, value) VALUES ('quarantine_evicted', 0);
                """)
        }
        migrator.registerMigration("v3-create-claims-documents") { db in
            try db.execute(sql: """
                CREATE TABLE claims (
                    key TEXT PRIMARY KEY NOT NULL,
                    owner TEXT NOT NULL,
                    claimed_ms INTEGER NOT NULL
                ) WITHOUT ROWID;
                CREATE TABLE documents (
                    collection TEXT NOT NULL,
                    key TEXT NOT NULL,
                    value BLOB NOT NULL,
                    PRIMARY KEY (collection, key)
                ) WITHOUT ROWID;
                """)
        }
        migrator.registerMigration("v4-dedup-log") { db in
            // Dedup keys move from a unique B-tree (a random page written per key) to a log in
            // arrival order, looked up in memory (DedupIndex); ids follow the old arrival order.
            try db.execute(sql: """
                CREATE TABLE dedup_log (
                    id INTEGER PRIMARY KEY,
                    key TEXT NOT NULL,
                    log_offset INTEGER NOT NULL,
                    received_ms INTEGER NOT NULL
                );
                INSERT INTO dedup_log (key, log_offset, received_ms)
                    SELECT key, log_offset, received_ms FROM dedup_keys ORDER BY received_ms, log_offset;
                DROP TABLE dedup_keys;
                """)
        }
        migrator.registerMigration("v5-event-subjects") { db in
            // The sid and cname filters move from B-tree indexes on random strings (a random page
            // written per event) to an index in memory (SubjectIndex) built from this table, which
            // grows in log order; retention drops a prefix of the log, so received_ms needs none.
            try db.execute(sql: """
                CREATE TABLE event_subjects (
                    log_offset INTEGER PRIMARY KEY,
                    sid TEXT,
                    cname TEXT
                );
                INSERT INTO event_subjects (log_offset, sid, cname)
                    SELECT log_offset, sid, cname FROM events ORDER BY log_offset;
                DROP INDEX events_by_sid;
                DROP INDEX events_by_cname;
                DROP INDEX events_by_received;
                """)
        }
        migrator.registerMigration("v6-event-subject-types") { db in
            // The type filter joins the other two in memory: with Agora's mix of some twenty
            // types, the B-tree on (type, log_offset) dirtied up to one page per type per commit.
            try db.execute(sql: """
                ALTER TABLE event_subjects ADD COLUMN type TEXT;
                UPDATE event_subjects SET type = (SELECT type FROM events WHERE events.log_offset = event_subjects.log_offset);
                DROP INDEX events_by_type;
                """)
        }
        return migrator
    }
}
