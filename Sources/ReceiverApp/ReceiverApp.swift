import HTTPCore
import HTTPServer
import Logging
import ServiceLifecycle

/// The composition root: builds the listeners and their routes from a configuration.
public final class ReceiverApp: Sendable {
    public static let version = "0.1.0"

    public let configuration: ReceiverConfiguration
    public let publicServer: HTTPServer
    private let logger: Logger

    public init(configuration: ReceiverConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        var router = Router()
        router.on("GET", "/healthz") { _ in
            .json(200, "{\"status\":\"ok\",\"version\":\"\(ReceiverApp.version)\"}")
        }
        var serverLogger = logger
        serverLogger[metadataKey: "listener"] = "public"
        publicServer = HTTPServer(
            configuration: configuration.serverConfiguration(host: configuration.publicHost, port: configuration.publicPort),
            logger: serverLogger,
            handler: router.handler
        )
    }

    /// The services to run under a ServiceGroup (SIGTERM/SIGINT drain them gracefully).
    public var services: [any Service] {
        [HTTPServerService(server: publicServer)]
    }
}

/// Runs an ``HTTPServer`` as a ServiceLifecycle service: graceful shutdown drains it.
public struct HTTPServerService: Service {
    public let server: HTTPServer

    public init(server: HTTPServer) { self.server = server }

    public func run() async throws {
        try server.start()
        try await withGracefulShutdownHandler {
            try await server.run()
        } onGracefulShutdown: {
            server.beginShutdown()
        }
    }
}
