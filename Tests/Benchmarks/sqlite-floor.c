// What the SQLite store's append costs in SQLite alone: the four inserts a callback that
// SQLiteEventStore.append makes (events, event_subjects, two dedup_log rows), on the same schema
// (events' AUTOINCREMENT included), WAL, bound and stepped through the C API, in transactions of
// BATCH callbacks, with bodies of 950 bytes (the benchmark's normalized events average 947). Set
// against `pipeline-bench`'s "SQLite append" row, the difference is what the store adds around
// SQLite (GRDB, the in-memory indexes, the background checkpointer).
//
//   cc -O2 -o /tmp/sqlite-floor Tests/Benchmarks/sqlite-floor.c -lsqlite3
//   /tmp/sqlite-floor [BATCH=14] [CALLBACKS=40000] [SYNCHRONOUS=FULL|OFF] [AUTOCHECKPOINT=1000]
//
// Prints CPU (user + system, this process) and wall time per callback. The database is a new
// file under /tmp each run.
#define _GNU_SOURCE
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double seconds(clockid_t clock) {
    struct timespec t;
    clock_gettime(clock, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void must(int code, sqlite3 *db, const char *what) {
    if (code != SQLITE_OK && code != SQLITE_DONE && code != SQLITE_ROW) {
        fprintf(stderr, "%s: %s\n", what, sqlite3_errmsg(db));
        exit(1);
    }
}

int main(int argc, char **argv) {
    int batch = argc > 1 ? atoi(argv[1]) : 14;
    int callbacks = argc > 2 ? atoi(argv[2]) : 40000;
    const char *synchronous = argc > 3 ? argv[3] : "FULL";
    int autocheckpoint = argc > 4 ? atoi(argv[4]) : 1000;
    if (batch < 1 || callbacks < batch) {
        fprintf(stderr, "usage: %s [batch] [callbacks] [FULL|OFF] [autocheckpoint pages]\n", argv[0]);
        return 2;
    }
    char path[64], wal[80], shm[80];
    snprintf(path, sizeof path, "/tmp/sqlite-floor-%d.sqlite", (int)getpid());
    snprintf(wal, sizeof wal, "%s-wal", path);
    snprintf(shm, sizeof shm, "%s-shm", path);

    sqlite3 *db;
    must(sqlite3_open(path, &db), db, "open");
    char pragmas[200];
    snprintf(pragmas, sizeof pragmas, "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; PRAGMA wal_autocheckpoint=%d;",
             synchronous, autocheckpoint);
    must(sqlite3_exec(db, pragmas, 0, 0, 0), db, "pragmas");
    must(sqlite3_exec(db,
        "CREATE TABLE events (log_offset INTEGER PRIMARY KEY AUTOINCREMENT, type TEXT NOT NULL, event_type INTEGER,"
        " cname TEXT, sid TEXT, time_ms INTEGER, received_ms INTEGER NOT NULL, body BLOB NOT NULL);"
        "CREATE TABLE dedup_log (id INTEGER PRIMARY KEY, key TEXT NOT NULL, log_offset INTEGER NOT NULL, received_ms INTEGER NOT NULL);"
        "CREATE TABLE event_subjects (log_offset INTEGER PRIMARY KEY, sid TEXT, cname TEXT, type TEXT);",
        0, 0, 0), db, "schema");
    sqlite3_stmt *event, *key, *subjects;
    must(sqlite3_prepare_v2(db, "INSERT INTO events (type, event_type, cname, sid, time_ms, received_ms, body) VALUES (?,?,?,?,?,?,?)", -1, &event, 0), db, "prepare");
    must(sqlite3_prepare_v2(db, "INSERT INTO dedup_log (key, log_offset, received_ms) VALUES (?,?,?)", -1, &key, 0), db, "prepare");
    must(sqlite3_prepare_v2(db, "INSERT INTO event_subjects (log_offset, sid, cname, type) VALUES (?,?,?,?)", -1, &subjects, 0), db, "prepare");

    const char *type = "io.agora.cloudrecording.uploading_progress";
    char body[950];
    for (int i = 0; i < (int)sizeof body; i++) body[i] = 'a' + i % 26;
    double cpu0 = seconds(CLOCK_PROCESS_CPUTIME_ID), wall0 = seconds(CLOCK_MONOTONIC);
    for (int first = 0; first + batch <= callbacks; first += batch) {
        must(sqlite3_exec(db, "BEGIN IMMEDIATE", 0, 0, 0), db, "begin");
        for (int n = first; n < first + batch; n++) {
            // A new sid every 40 callbacks, a random-looking noticeId and a semantic key, as the
            // benchmark's callbacks have.
            char sid[48], cname[32], notice[48], semantic[96];
            snprintf(sid, sizeof sid, "sid-%08x%08x", n / 40, (unsigned)n * 7919u);
            snprintf(cname, sizeof cname, "channel-%d", n / 40);
            snprintf(notice, sizeof notice, "%08x-%04x-4000-8000-%012x", (unsigned)n * 2654435761u, n & 0xffff, n);
            snprintf(semantic, sizeof semantic, "3|%s|33|527841|%d", sid, n);
            long long now = 1700000000000LL + n;
            body[n % sizeof body]++;
            sqlite3_bind_text(event, 1, type, -1, SQLITE_STATIC);
            sqlite3_bind_int(event, 2, 33);
            sqlite3_bind_text(event, 3, cname, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(event, 4, sid, -1, SQLITE_TRANSIENT);
            sqlite3_bind_int64(event, 5, now);
            sqlite3_bind_int64(event, 6, now);
            sqlite3_bind_blob(event, 7, body, sizeof body, SQLITE_TRANSIENT);
            must(sqlite3_step(event), db, "insert event");
            sqlite3_reset(event);
            long long offset = sqlite3_last_insert_rowid(db);
            sqlite3_bind_int64(subjects, 1, offset);
            sqlite3_bind_text(subjects, 2, sid, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(subjects, 3, cname, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(subjects, 4, type, -1, SQLITE_STATIC);
            must(sqlite3_step(subjects), db, "insert subjects");
            sqlite3_reset(subjects);
            const char *keys[2] = {notice, semantic};
            for (int k = 0; k < 2; k++) {
                sqlite3_bind_text(key, 1, keys[k], -1, SQLITE_TRANSIENT);
                sqlite3_bind_int64(key, 2, offset);
                sqlite3_bind_int64(key, 3, now);
                must(sqlite3_step(key), db, "insert key");
                sqlite3_reset(key);
            }
        }
        must(sqlite3_exec(db, "COMMIT", 0, 0, 0), db, "commit");
    }
    int done = callbacks / batch * batch;
    double cpu = seconds(CLOCK_PROCESS_CPUTIME_ID) - cpu0, wall = seconds(CLOCK_MONOTONIC) - wall0;
    printf("%d callbacks in batches of %d, synchronous=%s, autocheckpoint %d: %.2f us CPU, %.2f us wall a callback\n",
           done, batch, synchronous, autocheckpoint, cpu * 1e6 / done, wall * 1e6 / done);
    sqlite3_finalize(event);
    sqlite3_finalize(key);
    sqlite3_finalize(subjects);
    sqlite3_close(db);
    unlink(path);
    unlink(wal);
    unlink(shm);
    return 0;
}
