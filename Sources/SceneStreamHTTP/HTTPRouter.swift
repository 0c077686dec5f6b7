import HTTPTypes

/// Who may use a route.
public enum RouteAccess: Sendable, Equatable {
    /// Anyone (the viewer's files, `/healthz`).
    case open
    /// A valid bearer token (with authentication configured); what it sees is narrowed to its scenes and zones.
    case token
    /// A bearer token with the admin role.
    case admin
    /// The metrics token, or an admin token.
    case metrics
    /// The ingest token (`ingestToken`).
    case ingest
}

/// One route: a method and a path (exact, or a prefix ending in `/`), who may use it, and its name. A `*` level
/// matches any one level (`/assets/plants/*/models/`) — but never `.`, `..` or a level with `%` in it, so a
/// wildcard route cannot be walked out of.
public struct Route<Name: Sendable & Hashable>: Sendable {
    public var method: HTTPRequest.Method
    public var path: String
    public var access: RouteAccess
    public var name: Name

    /// Creates a route; a `path` ending in `/` matches everything under it.
    public init(_ method: HTTPRequest.Method, _ path: String, _ access: RouteAccess, _ name: Name) {
        self.method = method
        self.path = path
        self.access = access
        self.name = name
    }

    var isPrefix: Bool { path.hasSuffix("/") }

    func matches(_ p: String) -> Bool {
        guard path.contains("*") else { return isPrefix ? (p.hasPrefix(path) || p + "/" == path) : p == path }
        let want = path.split(separator: "/", omittingEmptySubsequences: false)
        let got = p.split(separator: "/", omittingEmptySubsequences: false)
        let fixed = isPrefix ? want.count - 1 : want.count
        guard isPrefix ? got.count > fixed : got.count == fixed else { return false }
        if got.contains(where: { $0 == "." || $0 == ".." || $0.contains("%") }) { return false }
        for k in 0..<fixed where want[k] != "*" && want[k] != got[k] { return false }
        for k in 0..<fixed where want[k] == "*" && got[k].isEmpty { return false }
        return true
    }
}

/// What a request's method and path select.
public enum RouteMatch<Name: Sendable & Hashable>: Sendable {
    case route(Route<Name>)
    /// The path exists for other methods (405, with an Allow header).
    case methodNotAllowed(allowed: [HTTPRequest.Method])
    case notFound
}

/// A route table: exact paths first, then the longest prefix. Pure.
public struct HTTPRouter<Name: Sendable & Hashable>: Sendable {
    public let routes: [Route<Name>]

    /// Creates a router. Routes are matched exact-first, then by the longest prefix.
    public init(_ routes: [Route<Name>]) {
        self.routes = routes.sorted { a, b in
            if a.isPrefix != b.isPrefix { return !a.isPrefix }
            return a.path.count > b.path.count
        }
    }

    /// The route for `method` and `path` (without the query).
    public func match(_ method: HTTPRequest.Method, _ path: String) -> RouteMatch<Name> {
        var allowed: [HTTPRequest.Method] = []
        var matchedPath: String?
        for r in routes {
            guard r.matches(path) else { continue }
            // Only routes of the most specific matching path count.
            if let p = matchedPath, p != r.path { break }
            matchedPath = r.path
            if r.method == method || (method == .head && r.method == .get) { return .route(r) }
            allowed.append(r.method)
        }
        return allowed.isEmpty ? .notFound : .methodNotAllowed(allowed: allowed)
    }
}
