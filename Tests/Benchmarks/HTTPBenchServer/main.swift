// The server side of Tests/Benchmarks/http-bench.sh: our HTTPServer with the trivial routes the
// bar is measured on, and nothing else, so the figure is the server's own.
import Foundation
import HTTPCore
import HTTPServer
import Logging

let port = Int(CommandLine.arguments.dropFirst().first ?? "18090") ?? 18090
let queues = Int(ProcessInfo.processInfo.environment["BENCH_IO_QUEUES"] ?? "") ?? System.coreCount
var router = Router()
let ok: [UInt8] = Array("{\"ok\":true}".utf8)
router.on("POST", "/v1/echo") { _ in .json(200, ok) }
router.on("GET", "/healthz") { _ in .json(200, ok) }
var configuration = HTTPServer.Configuration(host: "127.0.0.1", port: port, ioQueueCount: queues)
// BENCH_TLS_CERTIFICATE and BENCH_TLS_KEY: serve HTTPS (http-bench.sh TLS=1).
let environment = ProcessInfo.processInfo.environment
if let certificate = environment["BENCH_TLS_CERTIFICATE"], let key = environment["BENCH_TLS_KEY"] {
    configuration.tls = try TLSContext(certificatePath: certificate, keyPath: key)
}
let server = HTTPServer(
    configuration: configuration,
    logger: Logger(label: "bench"),
    handler: router.handler
)
try server.start()
FileHandle.standardOutput.write(Data("listening on \(server.localAddress!)\n".utf8))
signal(SIGTERM, SIG_DFL)
while true { sleep(3600) }
