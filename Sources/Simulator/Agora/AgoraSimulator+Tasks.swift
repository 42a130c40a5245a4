// A recording task's life (reference §2, §4.5–4.7, §5): the startup callbacks, the idle exit
// when its channel stays empty for maxIdleTime, stop, an abnormal exit, and HA failover.

import Logging
import NCS
import Synchronization
import Timing

extension AgoraSimulator {
    // MARK: - Status and snapshots

    /// `query`'s serverResponse.status on the task's timeline: 1, 2 before recordingReadyAfter,
    /// then 4, then 5 from one and a half times it.
    func queryStatus(_ task: TaskRecord, now: ScaledInstant) -> Int {
        let elapsed = now.milliseconds - task.timelineStart.milliseconds
        let ready = ScaledMilliseconds.of(configuration.recordingReadyAfter)
        if elapsed < ready / 2 { return 1 }
        if elapsed < ready { return 2 }
        if elapsed < ready * 1.5 { return 4 }
        return 5
    }

    func taskState(_ task: TaskRecord, now: ScaledInstant) -> AgoraTaskState {
        switch task.phase {
        case .running: return queryStatus(task, now: now) >= 4 ? .recording : .starting
        case .recovering: return .recovering
        case .exiting: return .exiting
        case .exited: return .exited
        case .stopped: return .stopped
        }
    }

    func snapshot(_ task: TaskRecord, now: ScaledInstant) -> AgoraTaskSnapshot {
        AgoraTaskSnapshot(
            sid: task.sid, appId: task.appId, cname: task.cname, uid: task.uid, originalUid: task.originalUid,
            resourceId: task.resourceId, mode: task.mode, state: taskState(task, now: now), startedMs: task.startedMs,
            endedMs: task.endedMs, exitReason: task.exitReason, failovers: task.failovers, maxIdleTime: task.maxIdleTime,
            fileName: task.fileName, clientRequest: task.clientRequest
        )
    }

    // MARK: - Startup

    /// Starts the startup callbacks of a new task: 40 recorder_started and 30 uploader_started
    /// at half of recordingReadyAfter, 42 recorder_slice_start at it, 4 cloud_recording_file_infos
    /// when query turns to 5. After a failover the new recorder sends 40, 42 and 4 (no 30).
    func beginStartup(sid: String, afterFailover: Bool, in s: inout State) {
        let half = configuration.recordingReadyAfter / 2
        let job = spawn(busy: true, in: &s) { [self] job in
            guard await sleep(half) else { return }
            emit(40, sid: sid, job: job, details: ["status": 0])
            if !afterFailover { emit(30, sid: sid, job: job, details: ["status": 0]) }
            guard await sleep(half) else { return }
            let sliceMs = agoraWallMs()
            emit(42, sid: sid, job: job, details: [
                "startUtcMs": .int(sliceMs), "discontinueUtcMs": .int(sliceMs), "mixedAllUser": true,
                "streamUid": "0", "trackType": "audio_and_video",
            ])
            guard await sleep(half) else { return }
            emit(4, sid: sid, job: job) { task in ["fileList": .string(task.fileName)] }
            state.withLock { s in
                if s.tasks[sid]?.lifecycleJob == job { s.tasks[sid]?.lifecycleJob = nil }
            }
        }
        s.tasks[sid]?.lifecycleJob = job
    }

    /// 33 uploading_progress every `progressInterval` while the task records (from its current
    /// uid), as Agora sends it once a minute: the one callback a silent task still sends.
    func beginProgress(sid: String, in s: inout State) {
        guard let interval = configuration.progressInterval else { return }
        spawn(busy: false, in: &s) { [self] job in
            var minutes: Int64 = 0
            while await sleep(interval) {
                let phase = state.withLock { $0.tasks[sid]?.phase }
                guard let phase, phase == .running || phase == .recovering else { return }
                guard phase == .running else { continue }
                minutes += 1
                emit(33, sid: sid, job: job, details: ["progress": .int(min(9_000, minutes * 100))])
            }
        }
    }

    // MARK: - Channels and the idle exit

    func setChannel(_ setting: AgoraChannelSetting, in s: inout State) {
        if setting.occupied {
            s.emptyChannels.remove(setting.cname)
            for sid in s.taskOrder where s.tasks[sid]?.cname == setting.cname {
                cancelJob(s.tasks[sid]?.idleJob, in: &s)
                s.tasks[sid]?.idleJob = nil
            }
        } else {
            s.emptyChannels.insert(setting.cname)
            for sid in s.taskOrder where s.tasks[sid]?.cname == setting.cname { armIdleTimer(sid: sid, in: &s) }
        }
    }

    /// The task leaves after maxIdleTime in an empty channel (41 with leaveCode 4 NO_USERS, 11, 31).
    func armIdleTimer(sid: String, in s: inout State) {
        guard let task = s.tasks[sid], task.idleJob == nil,
              task.phase == .running || task.phase == .recovering else { return }
        let idle = Duration.seconds(task.maxIdleTime)
        let job = spawn(busy: false, in: &s) { [self] job in
            guard await sleep(idle) else { return }
            state.withLock { s in
                guard s.jobs[job] != nil, let task = s.tasks[sid], task.idleJob == job,
                      s.emptyChannels.contains(task.cname) else { return }
                s.tasks[sid]?.idleJob = nil
                beginExit(sid: sid, reason: .idle, in: &s)
            }
            logger.info("agora simulator task idle for maxIdleTime: exiting", metadata: ["sid": "\(sid)"])
        }
        s.tasks[sid]?.idleJob = job
    }

    // MARK: - Exits

    /// Stop or idle exit: 41 recorder_leave, 11 session_exit {exitStatus 0}, then 31 uploaded (or
    /// 32 backuped, by `backupedProbability`), a little apart; then stopped or exited.
    func beginExit(sid: String, reason: AgoraExitReason, in s: inout State) {
        guard var task = s.tasks[sid] else { return }
        cancelJob(task.lifecycleJob, in: &s)
        cancelJob(task.idleJob, in: &s)
        task.idleJob = nil
        task.phase = .exiting
        task.exitReason = reason
        let backuped = reason == .crashed
            || (configuration.backupedProbability > 0 && Double.random(in: 0..<1, using: &s.behaviour) < configuration.backupedProbability)
        s.tasks[sid] = task
        let job = spawn(busy: true, in: &s) { [self] job in
            if reason == .crashed {
                emit(1, sid: sid, job: job, details: [
                    "module": 0, "errorLevel": 5, "errorCode": 1, "stat": 0,
                    "errorMsg": "recorder exited abnormally (simulated crash)",
                ])
            } else {
                // LEAVE_CODE_NO_USERS (4) when the channel stayed empty; CLIENT_LEAVE (16) on stop.
                emit(41, sid: sid, job: job, details: ["leaveCode": reason == .idle ? 4 : 16])
            }
            guard await sleep(.milliseconds(200)) else { return }
            emit(11, sid: sid, job: job, details: ["exitStatus": reason == .crashed ? 1 : 0])
            guard await sleep(.milliseconds(300)) else { return }
            emit(backuped ? 32 : 31, sid: sid, job: job) { task in
                ["status": 0, "fileList": .array(task.files.map { file in
                    .object([
                        "fileName": .string(file.name), "trackType": "audio_and_video", "uid": "0",
                        "mixedAllUser": true, "isPlayable": true, "sliceStartTime": .int(file.startMs),
                    ])
                })]
            }
            let endedMs = agoraWallMs()
            state.withLock { s in
                guard s.jobs[job] != nil else { return }
                s.tasks[sid]?.phase = reason == .stopped ? .stopped : .exited
                s.tasks[sid]?.endedMs = endedMs
                s.tasks[sid]?.lifecycleJob = nil
            }
            logger.info("agora simulator task ended", metadata: ["sid": "\(sid)", "reason": "\(reason.rawValue)"])
        }
        s.tasks[sid]?.lifecycleJob = job
    }

    /// An unintended abnormal exit: 1 cloud_recording_error (errorLevel 5, fatal), 11 {exitStatus 1},
    /// 32 backuped.
    public func crash(sid: String) throws(AgoraSimulatorError) {
        let now = clock.now()
        try state.withLock { s throws(AgoraSimulatorError) in
            guard let task = s.tasks[sid] else { throw .unknownTask(sid: sid) }
            guard task.phase == .running || task.phase == .recovering else {
                throw .taskNotLive(sid: sid, state: taskState(task, now: now))
            }
            beginExit(sid: sid, reason: .crashed, in: &s)
        }
        logger.info("agora simulator task crashed", metadata: ["sid": "\(sid)"])
    }

    // MARK: - HA failover

    /// HA failover (reference §5): query, update and stop answer 404 for `haRecovery`; then the
    /// task, same sid, continues under a new random uid: 12 session_failover {newUid: Number}
    /// from the new uid, then 40, 42 and 4 from it, writing `bak<n>_<sid>_<cname>.m3u8`.
    /// With `lateExitFromOldUid`, the dead instance's 41 and 11 {exitStatus 1} also arrive (old
    /// uid), right after the 12: the task stays live all the same.
    public func failover(sid: String, lateExitFromOldUid: Bool = false) throws(AgoraSimulatorError) {
        let now = clock.now()
        let recovery = configuration.haRecovery
        try state.withLock { s throws(AgoraSimulatorError) in
            guard let task = s.tasks[sid] else { throw .unknownTask(sid: sid) }
            guard task.phase == .running else { throw .taskNotLive(sid: sid, state: taskState(task, now: now)) }
            cancelJob(task.lifecycleJob, in: &s)
            s.tasks[sid]?.phase = .recovering
            let job = spawn(busy: true, in: &s) { [self] job in
                guard await sleep(recovery) else { return }
                let moved = state.withLock { s -> (old: String, new: UInt32)? in
                    guard s.jobs[job] != nil, var task = s.tasks[sid], task.phase == .recovering else { return nil }
                    var newUid = s.behaviour.uid()
                    while String(newUid) == task.uid || String(newUid) == task.originalUid { newUid = s.behaviour.uid() }
                    let old = task.uid
                    task.uid = String(newUid)
                    task.phase = .running
                    task.timelineStart = clock.now()
                    task.files.append((name: "bak\(task.failovers)_\(task.sid)_\(task.cname).m3u8", startMs: agoraWallMs()))
                    task.failovers += 1
                    s.tasks[sid] = task
                    return (old, newUid)
                }
                guard let moved else { return }
                logger.info("agora simulator failover done", metadata: ["sid": "\(sid)", "oldUid": "\(moved.old)", "newUid": "\(moved.new)"])
                emit(12, sid: sid, job: job, details: ["newUid": .int(Int64(moved.new))])
                if lateExitFromOldUid {
                    emit(41, sid: sid, uid: moved.old, job: job, details: ["leaveCode": 2])
                    emit(11, sid: sid, uid: moved.old, job: job, details: ["exitStatus": 1])
                }
                state.withLock { s in
                    guard s.jobs[job] != nil, s.tasks[sid]?.phase == .running else { return }
                    beginStartup(sid: sid, afterFailover: true, in: &s)
                }
            }
            s.tasks[sid]?.lifecycleJob = job
        }
        logger.info("agora simulator failover begins", metadata: ["sid": "\(sid)", "lateExitFromOldUid": "\(lateExitFromOldUid)"])
    }

    // MARK: - Emitting

    /// Queues one callback of task `sid`, from `uid` (default: the task's current uid), if `job`
    /// is still running (not cancelled by a stop, failover, reset).
    func emit(_ eventType: Int, sid: String, uid: String? = nil, job: UInt64, details: JSONObject) {
        emit(eventType, sid: sid, uid: uid, job: job) { _ in details }
    }

    func emit(_ eventType: Int, sid: String, uid: String? = nil, job: UInt64, details makeDetails: (TaskRecord) -> JSONObject) {
        let sendts = agoraWallMs()
        state.withLock { s in
            guard s.jobs[job] != nil, let task = s.tasks[sid] else { return }
            let from = uid ?? task.uid
            let sequence = task.sequences[from, default: 0]
            s.tasks[sid]?.sequences[from] = sequence + 1
            var details: JSONObject = ["msgName": .string(EventCatalogue.kind(for: eventType)?.msgName ?? "unknown")]
            for member in makeDetails(task) { details[member.key] = member.value }
            let payload: JSONObject = [
                "cname": .string(task.cname), "uid": .string(from), "sid": .string(sid),
                "sequence": .int(Int64(sequence)), "sendts": .int(sendts),
                "serviceType": .int(Int64(EventCatalogue.kind(for: eventType)?.serviceType ?? 0)),
                "details": .object(details),
            ]
            let callback = PendingCallback(eventType: eventType, sid: sid, cname: task.cname, uid: from, sequence: sequence, payload: payload)
            scheduleDelivery(callback, in: &s)
        }
    }
}
