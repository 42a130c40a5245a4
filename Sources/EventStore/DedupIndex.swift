/// The SQLite store's dedup keys, in memory: which `dedup_log` row holds a key.
///
/// Why in memory: dedup keys are random strings (noticeIds, session keys), so a unique index on
/// them puts every new key on a random leaf page of a B-tree, and every commit then wrote (and
/// every checkpoint copied again) one 4 KiB page per key: the largest part of a callback's cost
/// in the group commit. Now the keys are appended to `dedup_log` in arrival order, where a batch
/// shares a page or two, and looked up here. The store holds the database's lock file, so no
/// other process adds keys behind this index's back; it is rebuilt from `dedup_log` at open.
///
/// It keeps a key's hash, not the key: about 40 bytes a key instead of 100 or more. A hash hit
/// is confirmed against the row (``SQLiteEventStore`` reads the key back), so a collision never
/// makes a new event a duplicate; a key whose hash is taken by another key goes to `overflow`.
/// Hashes are seeded per process (Swift's `Hasher`), so nobody can craft colliding keys ahead.
struct DedupIndex {
    typealias Hash = @Sendable (String) -> Int
    /// `hashValue` (per-process seed); the tests give one that collides.
    let hash: Hash

    /// Hash of a key → the `dedup_log` id of the first key with that hash. Sharded: it grows by
    /// two keys an event, on the group committer's thread (see ``ShardedMap``).
    private var byHash = ShardedMap<Int64>()
    /// Keys whose hash another key held when they were added (practically always empty).
    private var overflow: [String: Int64] = [:]

    var count: Int { byHash.count + overflow.count }

    init(hash: @escaping Hash = { $0.hashValue }) {
        self.hash = hash
    }

    /// The `dedup_log` rows that may hold `key` (at most two); the caller compares the keys.
    func candidates(for key: String) -> (Int64?, Int64?) {
        (byHash[hash(key)], overflow.isEmpty ? nil : overflow[key])
    }

    mutating func insert(_ key: String, id: Int64) {
        let hash = hash(key)
        if byHash[hash] == nil {
            byHash[hash] = id
        } else {
            overflow[key] = id
        }
    }

    /// Forgets the row `id` (retention), wherever `key` went.
    mutating func remove(_ key: String, id: Int64) {
        let hash = hash(key)
        if byHash[hash] == id {
            byHash[hash] = nil
        } else if overflow[key] == id {
            overflow[key] = nil
        }
    }

    mutating func reserve(_ capacity: Int) {
        byHash.reserveCapacity(capacity)
    }
}
