#ifndef CSQLITE_WAL_WRITES_H
#define CSQLITE_WAL_WRITES_H

/// SQLite's connection (sqlite3.h is left to GRDB's module; this header only passes it on).
struct sqlite3;

/// Makes the write-gathering VFS (see wal_writes.c) the process's default, wrapping the one that
/// was. Idempotent and thread-safe. Returns 0 (SQLITE_OK) or SQLite's error code.
int ncs_wal_writes_register(void);

/// Gathers the WAL writes of `db`'s "main" database from now on. Call it only on a connection
/// with `PRAGMA synchronous = FULL`, whose every commit syncs the WAL: a commit that did not
/// would leave its frames in memory, where other connections cannot read them. Returns 1 when
/// gathering is on, 0 when the connection's WAL is not open or not opened through this VFS.
int ncs_wal_writes_gather(struct sqlite3 *db);

/// The writes SQLite handed to `db`'s gathering WAL file so far, and the writes made of them
/// (tests, diagnostics). Both 0 when the file does not gather.
void ncs_wal_writes_counts(struct sqlite3 *db, long long *gathered, long long *written);

#endif
