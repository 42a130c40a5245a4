// A SQLite VFS that gathers a commit's WAL writes into one.
//
// Why: SQLite writes each WAL frame as two writes, its 24-byte header and its page, so a group
// commit of 14 callbacks (15 frames) made 30 pwrite calls before its fsync: 22% of the group
// committer's CPU under the full-pipeline benchmark (perf, by thread). This VFS wraps the default
// one. A WAL file whose connection asked for it (ncs_wal_writes_gather) keeps consecutive writes
// in a buffer and hands them to the wrapped VFS as one write before anything else touches the
// file: a sync, a read, a truncate, a size query, a file control, a close, or a write that does
// not follow on. Every other file, and every WAL file that did not ask, goes straight through.
//
// Why it is safe only with synchronous=FULL: readers on other connections learn of frames from
// the WAL index once the commit is done, and read them from the file. With FULL, SQLite syncs
// the WAL before it publishes the commit, so the frames are in the file by then; a process
// killed before that sync loses what it would have lost anyway (the commit was not durable,
// and was not acknowledged). With NORMAL there is no sync, and published frames could still be
// in this buffer.
#include <sqlite3.h>

#include "CSQLiteWALWrites.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct GatheringFile {
    sqlite3_file base;
    /// The wrapped VFS's file, allocated right after this struct (szOsFile).
    sqlite3_file *real;
    int isWAL;
    int gathering;
    unsigned char *buffer;
    int length;
    int capacity;
    sqlite3_int64 start;
    /// Writes handed in while gathering, and writes made of them.
    long long gathered;
    long long written;
} GatheringFile;

static sqlite3_vfs *wrapped;
static sqlite3_vfs gatheringVFS;
static sqlite3_io_methods gatheringMethods;
static pthread_once_t registerOnce = PTHREAD_ONCE_INIT;
static int registerResult = SQLITE_OK;

/// Larger commits are handed on in pieces of this size at most: the largest write SQLite's unix
/// VFS makes whole. It masks a write's length with 0x1ffff and retries the rest, so a longer
/// write's remainder, a multiple of 128 KiB, became a write of 0 bytes, which it reports as
/// SQLITE_FULL ("database or disk is full": what the tests saw with a 1 MiB buffer).
enum { BUFFER_CAPACITY = 0x1ffff };

#define REAL(file) (((GatheringFile *)(file))->real)

static int flush(GatheringFile *file) {
    if (file->length == 0) return SQLITE_OK;
    int length = file->length;
    file->length = 0;
    file->written += 1;
    return file->real->pMethods->xWrite(file->real, file->buffer, length, file->start);
}

#define FLUSH_OR_RETURN(file) do { int rc_ = flush((GatheringFile *)(file)); if (rc_ != SQLITE_OK) return rc_; } while (0)

static int gClose(sqlite3_file *p) {
    GatheringFile *file = (GatheringFile *)p;
    int rc = flush(file);
    int closed = file->real->pMethods->xClose(file->real);
    free(file->buffer);
    file->buffer = NULL;
    return rc != SQLITE_OK ? rc : closed;
}

static int gRead(sqlite3_file *p, void *out, int amount, sqlite3_int64 offset) {
    FLUSH_OR_RETURN(p);
    return REAL(p)->pMethods->xRead(REAL(p), out, amount, offset);
}

static int gWrite(sqlite3_file *p, const void *data, int amount, sqlite3_int64 offset) {
    GatheringFile *file = (GatheringFile *)p;
    if (!file->gathering) return file->real->pMethods->xWrite(file->real, data, amount, offset);
    if (file->length > 0 && (offset != file->start + file->length || file->length + amount > file->capacity)) FLUSH_OR_RETURN(p);
    if (amount > file->capacity) return file->real->pMethods->xWrite(file->real, data, amount, offset);
    if (file->length == 0) file->start = offset;
    memcpy(file->buffer + file->length, data, (size_t)amount);
    file->length += amount;
    file->gathered += 1;
    return SQLITE_OK;
}

static int gTruncate(sqlite3_file *p, sqlite3_int64 size) { FLUSH_OR_RETURN(p); return REAL(p)->pMethods->xTruncate(REAL(p), size); }
static int gSync(sqlite3_file *p, int flags) { FLUSH_OR_RETURN(p); return REAL(p)->pMethods->xSync(REAL(p), flags); }
static int gFileSize(sqlite3_file *p, sqlite3_int64 *size) { FLUSH_OR_RETURN(p); return REAL(p)->pMethods->xFileSize(REAL(p), size); }
static int gLock(sqlite3_file *p, int level) { FLUSH_OR_RETURN(p); return REAL(p)->pMethods->xLock(REAL(p), level); }
static int gUnlock(sqlite3_file *p, int level) { FLUSH_OR_RETURN(p); return REAL(p)->pMethods->xUnlock(REAL(p), level); }
static int gCheckReservedLock(sqlite3_file *p, int *out) { return REAL(p)->pMethods->xCheckReservedLock(REAL(p), out); }
static int gFileControl(sqlite3_file *p, int op, void *argument) { FLUSH_OR_RETURN(p); return REAL(p)->pMethods->xFileControl(REAL(p), op, argument); }
static int gSectorSize(sqlite3_file *p) { return REAL(p)->pMethods->xSectorSize(REAL(p)); }
static int gDeviceCharacteristics(sqlite3_file *p) { return REAL(p)->pMethods->xDeviceCharacteristics(REAL(p)); }
static int gShmMap(sqlite3_file *p, int region, int size, int extend, void volatile **out) { return REAL(p)->pMethods->xShmMap(REAL(p), region, size, extend, out); }
static int gShmLock(sqlite3_file *p, int offset, int n, int flags) { return REAL(p)->pMethods->xShmLock(REAL(p), offset, n, flags); }
static void gShmBarrier(sqlite3_file *p) { REAL(p)->pMethods->xShmBarrier(REAL(p)); }
static int gShmUnmap(sqlite3_file *p, int deleteFlag) { return REAL(p)->pMethods->xShmUnmap(REAL(p), deleteFlag); }
static int gFetch(sqlite3_file *p, sqlite3_int64 offset, int amount, void **out) { FLUSH_OR_RETURN(p); return REAL(p)->pMethods->xFetch(REAL(p), offset, amount, out); }
static int gUnfetch(sqlite3_file *p, sqlite3_int64 offset, void *page) { return REAL(p)->pMethods->xUnfetch(REAL(p), offset, page); }

static int gOpen(sqlite3_vfs *vfs, const char *name, sqlite3_file *p, int flags, int *outFlags) {
    (void)vfs;
    GatheringFile *file = (GatheringFile *)p;
    memset(file, 0, sizeof *file);
    file->real = (sqlite3_file *)(file + 1);
    int rc = wrapped->xOpen(wrapped, name, file->real, flags, outFlags);
    if (file->real->pMethods == NULL) {
        p->pMethods = NULL;
        return rc;
    }
    file->isWAL = (flags & SQLITE_OPEN_WAL) != 0;
    p->pMethods = &gatheringMethods;
    return rc;
}

static int gDelete(sqlite3_vfs *v, const char *name, int sync) { (void)v; return wrapped->xDelete(wrapped, name, sync); }
static int gAccess(sqlite3_vfs *v, const char *name, int flags, int *out) { (void)v; return wrapped->xAccess(wrapped, name, flags, out); }
static int gFullPathname(sqlite3_vfs *v, const char *name, int size, char *out) { (void)v; return wrapped->xFullPathname(wrapped, name, size, out); }
static void *gDlOpen(sqlite3_vfs *v, const char *name) { (void)v; return wrapped->xDlOpen(wrapped, name); }
static void gDlError(sqlite3_vfs *v, int size, char *out) { (void)v; wrapped->xDlError(wrapped, size, out); }
static void (*gDlSym(sqlite3_vfs *v, void *handle, const char *symbol))(void) { (void)v; return wrapped->xDlSym(wrapped, handle, symbol); }
static void gDlClose(sqlite3_vfs *v, void *handle) { (void)v; wrapped->xDlClose(wrapped, handle); }
static int gRandomness(sqlite3_vfs *v, int size, char *out) { (void)v; return wrapped->xRandomness(wrapped, size, out); }
static int gSleep(sqlite3_vfs *v, int microseconds) { (void)v; return wrapped->xSleep(wrapped, microseconds); }
static int gCurrentTime(sqlite3_vfs *v, double *out) { (void)v; return wrapped->xCurrentTime(wrapped, out); }
static int gGetLastError(sqlite3_vfs *v, int size, char *out) { (void)v; return wrapped->xGetLastError(wrapped, size, out); }
static int gCurrentTimeInt64(sqlite3_vfs *v, sqlite3_int64 *out) { (void)v; return wrapped->xCurrentTimeInt64(wrapped, out); }

static void registerGatheringVFS(void) {
    wrapped = sqlite3_vfs_find(NULL);
    if (wrapped == NULL) { registerResult = SQLITE_ERROR; return; }
    gatheringMethods = (sqlite3_io_methods){
        .iVersion = 3, .xClose = gClose, .xRead = gRead, .xWrite = gWrite, .xTruncate = gTruncate, .xSync = gSync,
        .xFileSize = gFileSize, .xLock = gLock, .xUnlock = gUnlock, .xCheckReservedLock = gCheckReservedLock,
        .xFileControl = gFileControl, .xSectorSize = gSectorSize, .xDeviceCharacteristics = gDeviceCharacteristics,
        .xShmMap = gShmMap, .xShmLock = gShmLock, .xShmBarrier = gShmBarrier, .xShmUnmap = gShmUnmap,
        .xFetch = gFetch, .xUnfetch = gUnfetch,
    };
    gatheringVFS = (sqlite3_vfs){
        .iVersion = 2, .szOsFile = (int)sizeof(GatheringFile) + wrapped->szOsFile, .mxPathname = wrapped->mxPathname,
        .zName = "ncs-wal-writes", .xOpen = gOpen, .xDelete = gDelete, .xAccess = gAccess,
        .xFullPathname = gFullPathname, .xDlOpen = gDlOpen, .xDlError = gDlError, .xDlSym = gDlSym, .xDlClose = gDlClose,
        .xRandomness = gRandomness, .xSleep = gSleep, .xCurrentTime = gCurrentTime, .xGetLastError = gGetLastError,
        .xCurrentTimeInt64 = gCurrentTimeInt64,
    };
    registerResult = sqlite3_vfs_register(&gatheringVFS, 1);
}

int ncs_wal_writes_register(void) {
    pthread_once(&registerOnce, registerGatheringVFS);
    return registerResult;
}

/// `db`'s WAL file when it was opened through this VFS, else NULL.
static GatheringFile *walFile(sqlite3 *db) {
    sqlite3_file *journal = NULL;
    if (sqlite3_file_control(db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &journal) != SQLITE_OK || journal == NULL) return NULL;
    if (journal->pMethods != &gatheringMethods) return NULL;
    GatheringFile *file = (GatheringFile *)journal;
    return file->isWAL ? file : NULL;
}

int ncs_wal_writes_gather(sqlite3 *db) {
    GatheringFile *file = walFile(db);
    if (file == NULL) return 0;
    if (file->buffer == NULL) {
        file->buffer = malloc(BUFFER_CAPACITY);
        if (file->buffer == NULL) return 0;
        file->capacity = BUFFER_CAPACITY;
    }
    file->gathering = 1;
    return 1;
}

void ncs_wal_writes_counts(sqlite3 *db, long long *gathered, long long *written) {
    GatheringFile *file = walFile(db);
    *gathered = file != NULL ? file->gathered : 0;
    *written = file != NULL ? file->written : 0;
}
