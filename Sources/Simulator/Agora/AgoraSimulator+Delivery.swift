// How callbacks reach the receiver (reference §1.6, §1.7): each is held a random 0…reorderWindow;
// a non-200 answer or a failed request is resent up to three times with growing waits, with the
// same noticeId and a new notifyMs; with redundant copies on, a second copy with a new noticeId
// follows a little later and has its own resends.

import Logging
import NCS
import Synchronization
import Timing

extension AgoraSimulator {
    /// One callback before delivery: everything but noticeId and notifyMs.
    struct PendingCallback: Sendable {
        var eventType: Int
        var sid: String
        var cname: String
        var uid: String
        var sequence: Int
        var payload: JSONObject

        func body(noticeId: String, notifyMs: Int64) -> [UInt8] {
            JSONValue.object([
                "noticeId": .string(noticeId), "productId": 3, "eventType": .int(Int64(eventType)),
                "notifyMs": .int(notifyMs), "payload": .object(payload),
            ]).jsonBytes()
        }
    }

    func scheduleDelivery(_ callback: PendingCallback, in s: inout State) {
        let window = configuration.reorderWindow
        let generation = s.generation
        let noticeId = s.noticeIds.hex(32)
        let hold = s.behaviour.duration(upTo: window)
        let previous = window == .zero ? s.lastFirstAttempt[callback.sid] : nil
        let first = Task<Bool, Never> { [self] in
            _ = await previous?.value
            guard await sleep(hold) else { return true }
            return await attempt(callback, noticeId: noticeId, attempt: 0, redundant: false, generation: generation)
        }
        s.lastFirstAttempt[callback.sid] = first
        spawn(busy: true, in: &s) { [self] _ in
            let delivered = await withTaskCancellationHandler { await first.value } onCancel: { first.cancel() }
            if !delivered { await resend(callback, noticeId: noticeId, redundant: false, generation: generation) }
        }
        guard configuration.redundantCopies else { return }
        let copyNoticeId = s.noticeIds.hex(32)
        let copyHold = configuration.redundantDelay + s.behaviour.duration(upTo: window)
        spawn(busy: true, in: &s) { [self] _ in
            guard await sleep(copyHold) else { return }
            if !(await attempt(callback, noticeId: copyNoticeId, attempt: 0, redundant: true, generation: generation)) {
                await resend(callback, noticeId: copyNoticeId, redundant: true, generation: generation)
            }
        }
    }

    private func resend(_ callback: PendingCallback, noticeId: String, redundant: Bool, generation: Int) async {
        guard configuration.resendOnFailure, !configuration.resendIntervals.isEmpty else { return }
        for (index, wait) in configuration.resendIntervals.enumerated() {
            guard await sleep(wait) else { return }
            if await attempt(callback, noticeId: noticeId, attempt: index + 1, redundant: redundant, generation: generation) { return }
        }
        logger.warning("agora simulator gave up on a callback after its resends", metadata: [
            "noticeId": "\(noticeId)", "eventType": "\(callback.eventType)", "sid": "\(callback.sid)",
        ])
    }

    /// One delivery attempt; true when the receiver answered 200 (or there is nowhere to send).
    private func attempt(_ callback: PendingCallback, noticeId: String, attempt: Int, redundant: Bool, generation: Int) async -> Bool {
        let notifyMs = agoraWallMs()
        let body = callback.body(noticeId: noticeId, notifyMs: notifyMs)
        var status: Int?
        var failure: String?
        let sentAgoraMs = clock.now().milliseconds
        if let sink = configuration.callbackSink {
            status = await sink(body)
        } else if let sender {
            do {
                status = try await sender.send(body, signingOverride: nil).status
            } catch {
                failure = error.description
            }
        } else {
            failure = "no callback URL"
        }
        let wallMs = Self.realWallMs()
        let agoraMs = clock.now().milliseconds
        state.withLock { s in
            // A request that was in flight across a reset belongs to the forgotten run.
            guard s.generation == generation else { return }
            s.callbacks.append(AgoraCallbackRecord(
                index: s.callbacks.count + 1, wallMs: wallMs, agoraMs: agoraMs, sentAgoraMs: sentAgoraMs, noticeId: noticeId,
                eventType: callback.eventType, sid: callback.sid, cname: callback.cname, uid: callback.uid,
                sequence: callback.sequence, notifyMs: notifyMs, attempt: attempt, redundant: redundant,
                status: status, error: failure, body: body
            ))
        }
        logger.info("agora simulator callback", metadata: [
            "eventType": "\(callback.eventType)", "msgName": "\(EventCatalogue.kind(for: callback.eventType)?.msgName ?? "?")",
            "sid": "\(callback.sid)", "uid": "\(callback.uid)", "sequence": "\(callback.sequence)", "noticeId": "\(noticeId)",
            "attempt": "\(attempt)", "redundant": "\(redundant)", "status": "\(status.map(String.init) ?? failure ?? "-")",
        ])
        if configuration.callbackSink == nil && sender == nil { return true }
        return status == 200
    }
}
