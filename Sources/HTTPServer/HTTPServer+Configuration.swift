import HTTPCore

extension HTTPServer {
    /// Everything an operator may tune about one listener. Defaults follow what Agora asks of a
    /// callback receiver (keep-alive ≥ 10 s, ≥ 100 requests per connection) and what a webhook
    /// receiver needs (small bodies, short header deadlines against slowloris).
    public struct Configuration: Sendable {
        /// Address to bind: an IPv4 or IPv6 literal (`::` is dual-stack on Linux), or `localhost`.
        public var host: String
        /// Port to bind; 0 picks a free one (see ``HTTPServer/localAddress``).
        public var port: Int
        /// `listen(2)` backlog.
        public var backlog: Int32
        /// Parser limits: header section 16 KiB (431), 100 fields (431), body 1 MiB (413).
        public var limits: HTTPRequestParser.Limits
        /// Open connections beyond this are closed at once after accept.
        public var maxConnections: Int
        /// From the first byte of a request (or from accept) until its header section is complete; 408.
        public var headerReadTimeout: Duration
        /// From the end of a head until its body is complete; 408.
        public var bodyReadTimeout: Duration
        /// Between requests on a keep-alive connection; closed silently.
        public var idleTimeout: Duration
        /// A response that makes no progress towards a slow reader for this long closes the connection.
        public var writeTimeout: Duration
        /// After this many requests a connection answers with `Connection: close`.
        public var maxRequestsPerConnection: Int
        /// I/O loops (one thread each) that own connections. Handlers run on them: they must not block.
        public var ioQueueCount: Int
        /// Unsent bytes a streaming response may hold before the connection is closed as too slow.
        public var maxStreamBufferBytes: Int
        /// On shutdown, how long requests in flight get before connections are closed regardless.
        public var drainTimeout: Duration
        /// After an error response, how long to read and discard what the client still sends,
        /// so closing does not reset the connection before the client has read the response.
        public var lingerTimeout: Duration
        /// Gives every request an id: a sane incoming `X-Request-Id` (1–128 of `A-Za-z0-9._:-`),
        /// else one made here; sent back in `X-Request-Id` and offered as ``HTTPResponder/requestID``.
        public var requestIDs: Bool = false
        /// Serve HTTPS with this identity (TLS 1.2 and 1.3); nil for plain HTTP.
        public var tls: TLSContext?

        public init(
            host: String = "0.0.0.0",
            port: Int = 8080,
            backlog: Int32 = 1024,
            limits: HTTPRequestParser.Limits = .init(),
            maxConnections: Int = 4096,
            headerReadTimeout: Duration = .seconds(10),
            bodyReadTimeout: Duration = .seconds(30),
            idleTimeout: Duration = .seconds(75),
            writeTimeout: Duration = .seconds(30),
            maxRequestsPerConnection: Int = 1000,
            ioQueueCount: Int = System.coreCount,
            maxStreamBufferBytes: Int = 1 << 20,
            drainTimeout: Duration = .seconds(10),
            lingerTimeout: Duration = .seconds(2)
        ) {
            self.host = host
            self.port = port
            self.backlog = backlog
            self.limits = limits
            self.maxConnections = maxConnections
            self.headerReadTimeout = headerReadTimeout
            self.bodyReadTimeout = bodyReadTimeout
            self.idleTimeout = idleTimeout
            self.writeTimeout = writeTimeout
            self.maxRequestsPerConnection = maxRequestsPerConnection
            self.ioQueueCount = ioQueueCount
            self.maxStreamBufferBytes = maxStreamBufferBytes
            self.drainTimeout = drainTimeout
            self.lingerTimeout = lingerTimeout
        }
    }
}

public enum System {
    public static var coreCount: Int {
        #if canImport(Glibc)
        return max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        #else
        return 2
        #endif
    }
}

#if canImport(Glibc)
import Glibc
#endif

extension Duration {
    var nanoseconds: UInt64 {
        let (seconds, attoseconds) = components
        return UInt64(max(0, seconds)) * 1_000_000_000 + UInt64(max(0, attoseconds) / 1_000_000_000)
    }
}
