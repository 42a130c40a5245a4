import ArgumentParser
import Foundation
import Logging
import ReceiverApp
import ServiceLifecycle
import UnixSignals

@main
struct NCSReceiverCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ncs-receiver",
        abstract: "Receive Agora Cloud Recording notification callbacks (NCS): verify, deduplicate and keep them in a durable event log.",
        version: ReceiverApp.version,
        subcommands: [Serve.self, Config.self, Replay.self, Simulate.self, Events.self, Quarantine.self, Recordings.self],
        defaultSubcommand: nil
    )
}

