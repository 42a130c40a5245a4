import Foundation

/// A finished child process: its exit status and everything it wrote (stdout and stderr).
public struct FinishedProcess: Sendable {
    public var status: Int32
    public var output: String

    /// Runs `executable` to its end with `arguments`, collecting stdout and stderr together.
    /// `environment` nil keeps this process's own.
    public static func run(_ executable: URL, _ arguments: [String], environment: [String: String]? = nil,
                           stderr: Bool = true) throws -> FinishedProcess {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        if let environment { process.environment = environment }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = stderr ? pipe : FileHandle.nullDevice
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return FinishedProcess(status: process.terminationStatus, output: String(decoding: data, as: UTF8.self))
    }

    /// Runs a command found on PATH (`/usr/bin/env name …`).
    public static func run(command: String, _ arguments: [String], stderr: Bool = true) throws -> FinishedProcess {
        try run(URL(fileURLWithPath: "/usr/bin/env"), [command] + arguments, stderr: stderr)
    }
}
