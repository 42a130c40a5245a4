import HTTPCore

/// Method + path routing with `{name}` parameters. Unknown paths get 404 and known paths with
/// another method 405 with `Allow`, both as JSON. HEAD is served by the GET route (the server
/// drops the body and keeps its length).
public struct Router: Sendable {
    private struct Route: Sendable {
        var method: String
        var path: String
        var segments: [Segment]
        var handler: HTTPHandler
    }

    private enum Segment: Sendable, Equatable {
        case literal(String)
        case parameter(String)
    }

    private var routes: [Route] = []

    public init() {}

    /// Adds a route whose handler answers through the responder, now or later.
    public mutating func on(_ method: String, _ path: String, handler: @escaping HTTPHandler) {
        let segments = path.split(separator: "/").map { part -> Segment in
            if part.hasPrefix("{"), part.hasSuffix("}") { return .parameter(String(part.dropFirst().dropLast())) }
            return .literal(String(part))
        }
        routes.append(Route(method: method.uppercased(), path: path, segments: segments, handler: handler))
    }

    /// Method and path pattern of each route, by the index ``HTTPServer``'s `onResponse` reports.
    public var routeLabels: [(method: String, path: String)] { routes.map { ($0.method, $0.path) } }

    /// Adds a route answered synchronously on the I/O loop (cheap, non-blocking work only).
    public mutating func on(_ method: String, _ path: String, respond: @escaping @Sendable (HTTPRequest) -> HTTPResponse) {
        on(method, path) { request, responder in responder.respond(respond(request)) }
    }

    /// Adds a route answered from a task; for handlers that await.
    public mutating func on(_ method: String, _ path: String, async respond: @escaping @Sendable (HTTPRequest) async -> HTTPResponse) {
        on(method, path) { request, responder in
            Task { responder.respond(await respond(request)) }
        }
    }

    /// The routing handler to give the server.
    public var handler: HTTPHandler {
        let routes = self.routes
        return { request, responder in
            var request = request
            var responder = responder
            let path = request.path
            var allowed: [String] = []
            var headFallback: (Int, [String: String])?
            for (index, route) in routes.enumerated() {
                guard let parameters = Router.match(route.segments, path) else { continue }
                if route.method == request.method {
                    request.pathParameters = parameters
                    responder.route = index
                    route.handler(request, responder)
                    return
                }
                if request.method == "HEAD", route.method == "GET" { headFallback = (index, parameters) }
                allowed.append(route.method)
            }
            if let (index, parameters) = headFallback {
                request.pathParameters = parameters
                responder.route = index
                routes[index].handler(request, responder)
                return
            }
            if allowed.isEmpty {
                responder.respond(.error(404, code: "not_found", message: "no route for \(request.method) \(path)"))
            } else {
                if allowed.contains("GET") { allowed.append("HEAD") }
                let allow = allowed.joined(separator: ", ")
                responder.respond(.error(
                    405, code: "method_not_allowed", message: "\(request.method) is not allowed on \(path); use \(allow)",
                    headers: ["Allow": allow]
                ))
            }
        }
    }

    /// Walks the path's segments against the route's without building an array of them
    /// (empty segments, as in `//`, are skipped). Parameters are percent-decoded.
    private static func match(_ segments: [Segment], _ path: Substring) -> [String: String]? {
        var parameters: [String: String] = [:]
        var index = path.startIndex
        var segmentNumber = 0
        while index < path.endIndex {
            guard let start = path[index...].firstIndex(where: { $0 != "/" }) else { break }
            let end = path[start...].firstIndex(of: "/") ?? path.endIndex
            guard segmentNumber < segments.count else { return nil }
            let part = path[start..<end]
            switch segments[segmentNumber] {
            case .literal(let literal):
                guard part == literal else { return nil }
            case .parameter(let name):
                parameters[name] = PercentDecoding.decode(part)
            }
            segmentNumber += 1
            index = end
        }
        return segmentNumber == segments.count ? parameters : nil
    }
}
