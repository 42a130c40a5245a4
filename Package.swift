// swift-tools-version:6.1
import PackageDescription

// Module map: ../shared/DESIGN.md (mirrored in README.md, "Layout").
// Dependencies point down: HTTPCore and NCS are pure; ReceiverApp wires; nothing imports the app.

// jemalloc instead of glibc's malloc (Debian's libjemalloc-dev), as Vapor's template builds its
// servers: buffers and strings made on an I/O thread are freed on the group committer's, and
// glibc's arenas make that cost. README "Performance" has the figures. The benchmarks link it
// too, so their figures are the receiver's.
let jemalloc: [LinkerSetting] = [.linkedLibrary("jemalloc", .when(platforms: [.linux]))]

let package = Package(
    name: "ncs-receiver",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "ncs-receiver", targets: ["ncs-receiver"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // MARK: - HTTP
        // Pure HTTP/1.1 request parser and response encoder: no I/O, fuzzable on plain bytes.
        .target(name: "HTTPCore"),
        // The few C declarations Swift's Glibc module hides (accept4 needs _GNU_SOURCE).
        .target(name: "CSystemShims"),
        // A SQLite VFS that gathers the group commit's WAL writes into one (Debian's libsqlite3-dev,
        // the library GRDB uses).
        .target(name: "CSQLiteWALWrites", linkerSettings: [.linkedLibrary("sqlite3")]),
        // Debian's OpenSSL (libssl-dev) for native TLS on the public listener.
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        // Non-blocking POSIX sockets driven by Dispatch, connections, limits, timeouts, router.
        .target(
            name: "HTTPServer",
            dependencies: [
                "HTTPCore", "CSystemShims", "COpenSSL",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // MARK: - Domain
        // Agora NCS: notification model, catalogue, lenient decoding, signatures, CloudEvents. Pure.
        .target(
            name: "NCS",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")]
        ),
        // The storage contract and its implementations: in memory, SQLite (GRDB), PostgreSQL.
        .target(
            name: "EventStore",
            dependencies: [
                "CSQLiteWALWrites",
                "CSystemShims",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The one clock every Agora delay goes through, sped up in tests (no I/O).
        .target(name: "Timing"),
        // Agora Cloud Recording REST client.
        .target(
            name: "CloudRecordingAPI",
            dependencies: ["Timing", .product(name: "Logging", package: "swift-log")]
        ),
        // Recordings registry and restart orchestration.
        .target(
            name: "Supervisor",
            dependencies: ["NCS", "EventStore", "CloudRecordingAPI", "Timing", .product(name: "Logging", package: "swift-log")]
        ),
        // A local stand-in for Agora (REST + NCS callbacks).
        .target(
            name: "Simulator",
            dependencies: ["HTTPServer", "NCS", "Timing", .product(name: "Logging", package: "swift-log")]
        ),

        // MARK: - Application
        .target(
            name: "ReceiverApp",
            dependencies: [
                "HTTPServer", "NCS", "EventStore", "Supervisor", "CloudRecordingAPI", "Timing",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        .executableTarget(
            name: "ncs-receiver",
            dependencies: [
                "ReceiverApp", "HTTPServer", "Simulator", "NCS", "Timing",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            linkerSettings: jemalloc
        ),

        // MARK: - Testing
        // The server measured by Tests/Benchmarks/http-bench.sh.
        .executableTarget(
            name: "http-bench-server",
            dependencies: ["HTTPServer", .product(name: "Logging", package: "swift-log")],
            path: "Tests/Benchmarks/HTTPBenchServer"
        ),
        // Tests/Benchmarks/SSEBench: catching up on a long log over SSE.
        .executableTarget(
            name: "sse-bench",
            dependencies: ["ReceiverApp", "EventStore", "HTTPServer", .product(name: "Logging", package: "swift-log")],
            path: "Tests/Benchmarks/SSEBench",
            linkerSettings: jemalloc
        ),
        // Tests/Benchmarks/PipelineBench: CPU per callback, stage by stage, without HTTP.
        .executableTarget(
            name: "pipeline-bench",
            dependencies: ["NCS", "EventStore", "Supervisor", .product(name: "Logging", package: "swift-log")],
            path: "Tests/Benchmarks/PipelineBench",
            linkerSettings: jemalloc
        ),
        // Shared test support: fixture loader, raw-bytes loopback client, process handles.
        .target(
            name: "ReceiverTesting",
            dependencies: ["HTTPCore", "EventStore", "COpenSSL", .product(name: "Logging", package: "swift-log")]
        ),
        .testTarget(name: "HTTPCoreTests", dependencies: ["HTTPCore", "ReceiverTesting"]),
        .testTarget(name: "HTTPServerTests", dependencies: ["HTTPServer", "ReceiverTesting", "COpenSSL"]),
        .testTarget(name: "NCSTests", dependencies: ["NCS", "ReceiverTesting"]),
        .testTarget(name: "EventStoreTests", dependencies: [
            "EventStore", "ReceiverTesting", .product(name: "GRDBSQLite", package: "GRDB.swift"),
        ]),
        .testTarget(name: "SupervisorTests", dependencies: [
            "Supervisor", "CloudRecordingAPI", "NCS", "EventStore", "Simulator", "Timing", "ReceiverApp", "HTTPServer", "ReceiverTesting",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "SimulatorTests", dependencies: ["Simulator", "NCS", "HTTPServer", "ReceiverTesting", "Timing"]),
        .testTarget(name: "ReceiverAppTests", dependencies: ["ReceiverApp", "NCS", "EventStore", "Simulator", "ReceiverTesting"]),
    ]
)

for target in package.targets where target.type != .system {
    target.swiftSettings = (target.swiftSettings ?? []) + [
        .swiftLanguageMode(.v6),
        .enableUpcomingFeature("ExistentialAny"),
        .enableUpcomingFeature("MemberImportVisibility"),
    ]
}
