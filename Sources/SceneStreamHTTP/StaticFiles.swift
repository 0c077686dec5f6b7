import Foundation

/// Files served under URL prefixes, never outside their folders: a path is percent-decoded, refused if it has
/// `..`, a NUL or a backslash, and its real path (symlinks resolved) must lie inside the folder's real path.
public struct StaticFiles: Sendable {
    /// Why a path is not served.
    public enum Refusal: Error, Equatable, Sendable {
        /// No mount, no file, or a folder without index.html.
        case notFound
        /// The path is malformed or resolves outside its folder.
        case forbidden(String)
        case tooLarge
    }

    /// A folder served at a URL prefix.
    public struct Mount: Sendable {
        public var prefix: String
        public var directory: String
        /// Folders besides `directory` that its files' real paths may lie in (a system package's own symlinks,
        /// e.g. Debian's /usr/share/javascript links into /usr/share/nodejs).
        public var alsoWithin: [String]
        public init(prefix: String, directory: String, alsoWithin: [String] = []) {
            self.prefix = prefix.hasSuffix("/") ? prefix : prefix + "/"
            self.directory = directory
            self.alsoWithin = alsoWithin
        }
    }

    public let mounts: [Mount]
    public let maxFileBytes: Int

    /// Mounts are tried longest prefix first.
    public init(_ mounts: [Mount], maxFileBytes: Int = 64 << 20) {
        self.mounts = mounts.sorted { $0.prefix.count > $1.prefix.count }
        self.maxFileBytes = maxFileBytes
    }

    /// The file a URL path names: its real path, or why it is refused. Reads the file system (realpath, stat).
    public func resolve(_ urlPath: String) -> Result<String, Refusal> {
        guard let decoded = urlPath.removingPercentEncoding else { return .failure(.forbidden("bad percent-encoding")) }
        if decoded.contains("\0") || decoded.contains("\\") { return .failure(.forbidden("bad character in path")) }
        if decoded.split(separator: "/", omittingEmptySubsequences: false).contains(where: { $0 == ".." }) {
            return .failure(.forbidden("'..' in path"))
        }
        guard let mount = mounts.first(where: { decoded.hasPrefix($0.prefix) || decoded + "/" == $0.prefix }) else {
            return .failure(.notFound)
        }
        var rel = decoded.count > mount.prefix.count ? String(decoded.dropFirst(mount.prefix.count)) : ""
        if rel.isEmpty || rel.hasSuffix("/") { rel += "index.html" }
        guard let root = Self.realPath(mount.directory) else { return .failure(.notFound) }
        guard let real = Self.realPath(root + "/" + rel) else { return .failure(.notFound) }
        let roots = [root] + mount.alsoWithin.compactMap(Self.realPath)
        guard roots.contains(where: { real.hasPrefix($0 + "/") }) else { return .failure(.forbidden("resolves outside its folder")) }
        var st = stat()
        guard stat(real, &st) == 0 else { return .failure(.notFound) }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            return resolve(urlPath.hasSuffix("/") ? urlPath + "index.html" : urlPath + "/index.html")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else { return .failure(.forbidden("not a regular file")) }
        guard Int(st.st_size) <= maxFileBytes else { return .failure(.tooLarge) }
        return .success(real)
    }

    /// The file's bytes (for a path from ``resolve(_:)``).
    public static func read(_ realPath: String) -> [UInt8]? {
        FileManager.default.contents(atPath: realPath).map { [UInt8]($0) }
    }

    /// The content type for a file name.
    public static func contentType(_ path: String) -> String {
        switch (path as NSString).pathExtension.lowercased() {
        case "html", "htm": return "text/html; charset=utf-8"
        case "js", "mjs": return "text/javascript; charset=utf-8"
        case "css": return "text/css; charset=utf-8"
        case "json": return "application/json"
        case "gltf": return "model/gltf+json"
        case "glb": return "model/gltf-binary"
        case "png": return "image/png"
        case "jpg", "jpeg": return "image/jpeg"
        case "svg": return "image/svg+xml"
        case "wasm": return "application/wasm"
        case "bin": return "application/octet-stream"
        case "txt", "md": return "text/plain; charset=utf-8"
        default: return "application/octet-stream"
        }
    }

    static func realPath(_ p: String) -> String? {
        guard let r = realpath(p, nil) else { return nil }
        defer { free(r) }
        return String(cString: r)
    }
}
