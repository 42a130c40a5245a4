/// The SQLite store's index of events by sid and by cname, in memory: which log offsets may
/// hold a given sid or cname, oldest first.
///
/// Why in memory: a sid is a random string, so a B-tree index on `(sid, log_offset)` put every
/// event on a random leaf page, and every commit wrote (and every checkpoint copied again) a
/// 4 KiB page per event of the batch; a cname index does the same as soon as there are more
/// channels than one. Measured with the index on sid dropped: the group commit took half the time
/// and the receiver served about 1.3x the callbacks (README, "Performance"). The rows this index
/// is built from, `event_subjects`, are appended in log order, so a batch shares a page or two;
/// the store holds the database's lock file, so nobody appends behind the index's back, and it
/// is rebuilt from `event_subjects` at open.
///
/// It keeps hashes, not the strings: a hash picks candidate offsets and the query checks the
/// row's own `sid` and `cname`, so a collision costs a wasted row read, never a wrong answer.
/// Hashes are seeded per process (Swift's `Hasher`).
///
/// Readers rely on one ordering: an offset is in the index before its commit makes it visible.
/// A reader that learned the head (``SQLiteEventStore/headOffset()``) then finds every event up
/// to it here, so a filtered page can move its cursor to the head without skipping any. An
/// offset whose transaction rolled back is taken out again; were one left, its row would simply
/// not match.
struct SubjectIndex {
    /// Offsets of one key, ascending. Most sids have a handful of events, many cnames a lot.
    private typealias Offsets = ContiguousArray<Int64>
    /// `hashValue` (per-process seed); the tests give one that collides.
    let hash: DedupIndex.Hash

    private var bySid: [Int: Offsets] = [:]
    private var byCname: [Int: Offsets] = [:]
    /// Offsets at or below this were dropped by retention (prefixes only; see ``dropThrough(_:dropped:)``).
    private(set) var floor: Int64 = 0

    init(hash: @escaping DedupIndex.Hash = { $0.hashValue }) {
        self.hash = hash
    }

    var sidCount: Int { bySid.count }
    var cnameCount: Int { byCname.count }

    /// Adds an event; offsets must come in ascending order (the log's).
    mutating func insert(offset: Int64, sid: String?, cname: String?) {
        if let sid { bySid[hash(sid), default: []].append(offset) }
        if let cname { byCname[hash(cname), default: []].append(offset) }
    }

    /// Takes back the newest `offset` (its transaction rolled back).
    mutating func removeNewest(offset: Int64, sid: String?, cname: String?) {
        if let sid { Self.removeNewest(offset, key: hash(sid), from: &bySid) }
        if let cname { Self.removeNewest(offset, key: hash(cname), from: &byCname) }
    }

    private static func removeNewest(_ offset: Int64, key: Int, from map: inout [Int: Offsets]) {
        guard var offsets = map[key], offsets.last == offset else { return }
        offsets.removeLast()
        map[key] = offsets.isEmpty ? nil : offsets
    }

    /// Up to `limit` offsets after `after`, oldest first, that may hold an event with this sid
    /// and cname (one of them at least is given); the caller checks the rows.
    func candidates(sid: String?, cname: String?, after: Int64, limit: Int) -> [Int64] {
        let lists: [Offsets] = [sid.map { bySid[hash($0)] ?? [] }, cname.map { byCname[hash($0)] ?? [] }].compactMap { $0 }
        // Both given: the shorter list's offsets, the row checks the other.
        guard let shortest = lists.min(by: { $0.count < $1.count }) else { return [] }
        let start = Self.firstIndex(after: max(after, floor), in: shortest)
        return Array(shortest[start..<min(shortest.count, start + max(0, limit))])
    }

    /// Index of the first offset greater than `after` (binary search).
    private static func firstIndex(after: Int64, in offsets: Offsets) -> Int {
        var low = 0, high = offsets.count
        while low < high {
            let middle = (low + high) / 2
            if offsets[middle] <= after { low = middle + 1 } else { high = middle }
        }
        return low
    }

    /// Retention dropped every event at or below `offset`; `dropped` are their sids and cnames
    /// (the lists to trim: the work is in proportion to what was dropped, not to the index).
    mutating func dropThrough(_ offset: Int64, dropped: [(sid: String?, cname: String?)]) {
        guard offset > floor else { return }
        floor = offset
        Self.trim(Set(dropped.compactMap { $0.sid.map { hash($0) } }), through: offset, in: &bySid)
        Self.trim(Set(dropped.compactMap { $0.cname.map { hash($0) } }), through: offset, in: &byCname)
    }

    private static func trim(_ keys: Set<Int>, through offset: Int64, in map: inout [Int: Offsets]) {
        for key in keys {
            guard let offsets = map[key] else { continue }
            let start = firstIndex(after: offset, in: offsets)
            if start == offsets.count {
                map[key] = nil
            } else if start > 0 {
                map[key] = Offsets(offsets[start...])
            }
        }
    }

    mutating func reserve(sids: Int) {
        bySid.reserveCapacity(sids)
    }
}
