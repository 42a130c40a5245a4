/// The newest events of the log, kept in memory by the one process that writes the SQLite file,
/// so that readers who follow the head are answered without a read transaction.
///
/// Under load the supervisor reads the log after nearly every group commit, and live SSE
/// subscribers do the same: each read was a pooled read transaction, a hop to GRDB's reader
/// queue and a copy of every row. A profile of the throughput benchmark put those reads at about
/// a tenth of the receiver's CPU, for events the writer had in memory a moment before.
///
/// What makes answering from here the same as answering from the file:
/// - ``last`` is a head the file had: set from the file at open, then moved on only by events
///   whose transaction committed (``SQLiteEventStore``'s append, on the writer, before the new
///   head is announced: a reader woken by the announcement finds them here).
/// - The events held are a contiguous run ending at ``last``, none missing. An event whose offset
///   is not `last + 1` starts a new run, so a gap is never answered as "nothing there".
/// - A read is answered only if it starts inside the run (`first - 1 <= after <= last`); older
///   reads, and the rare one past ``last`` (it saw a commit not yet added here), go to the file.
///   A page from here is the file's page as of the snapshot that ended at ``last``.
/// - The store's head is ``last`` too, not the file's: the file can be one commit ahead, and a
///   reader that took the file's head and then a page from here would skip that commit when it
///   moves its cursor to the head after a short page (the admin API and SSE do).
/// - A retention sweep deletes a prefix of the file, so the same prefix goes from here.
struct RecentEvents {
    /// Events kept at most; past it the older half goes (two generations, no per-event shift).
    let capacity: Int
    /// The newest committed offset this process has seen (0: an empty log).
    private(set) var last: Int64
    /// Older generation, then newer; together the run that ends at `last`.
    private var older: [StoredEvent] = []
    private var newer: [StoredEvent] = []

    init(capacity: Int, head: Int64) {
        self.capacity = max(0, capacity)
        self.last = head
    }

    var count: Int { older.count + newer.count }
    /// The oldest offset held; `last + 1` when none is.
    var first: Int64 { last - Int64(count) + 1 }

    /// Adds an event just committed. Offsets must come in commit order.
    mutating func append(_ event: StoredEvent) {
        if event.offset != last + 1 { removeAll() }
        last = event.offset
        guard capacity > 0 else { return }
        if newer.count >= (capacity + 1) / 2 {
            older = newer
            newer = []
            newer.reserveCapacity((capacity + 1) / 2)
        }
        newer.append(event)
    }

    /// Forgets the events up to `offset` (retention deleted them from the file).
    mutating func removeThrough(_ offset: Int64) {
        older.removeAll { $0.offset <= offset }
        newer.removeAll { $0.offset <= offset }
    }

    mutating func removeAll() {
        older = []
        newer = []
    }

    /// Events after `offset` matching `filter`, oldest first, at most `limit`; nil when the run
    /// does not cover `offset` (the caller reads the file).
    func read(after offset: Int64, limit: Int, filter: EventFilter) -> [StoredEvent]? {
        guard capacity > 0, offset >= first - 1, offset <= last else { return nil }
        var events: [StoredEvent] = []
        let unfiltered = filter == .all
        if unfiltered { events.reserveCapacity(min(limit, Int(last - offset))) }
        for generation in [older, newer] {
            guard let generationFirst = generation.first?.offset, let generationLast = generation.last?.offset,
                  generationLast > offset else { continue }
            // Contiguous: the event after `offset` sits at a known index.
            for index in max(0, Int(offset + 1 - generationFirst))..<generation.count {
                if events.count >= limit { return events }
                let event = generation[index]
                if unfiltered || filter.matches(type: event.type, cname: event.cname, sid: event.sid) {
                    events.append(event)
                }
            }
        }
        return events
    }
}
