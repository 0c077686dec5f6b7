import Foundation

extension GLTFImport {
    /// Writes one mesh as a self-contained GLB that three.js r111's GLTFLoader reads: positions, normals and indices
    /// copied tightly packed (strides resolved), POSITION bounds computed, materials reduced to their base colour
    /// and PBR factors. Identical meshes give identical bytes (the import deduplicates by them).
    struct ModelWriter {
        let doc: Doc
        let buffers: [[UInt8]]
        let fail: (String, String) -> Failure

        struct Made {
            var glb: [UInt8]
            /// The mesh's one base colour (RGBA), when all its parts share it: it becomes the node's colour.
            var color: UInt32?
        }

        static let componentSize = [5120: 1, 5121: 1, 5122: 2, 5123: 2, 5125: 4, 5126: 4]
        static let typeCount = ["SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16]

        /// The bytes of accessor `a`, tightly packed, and its element count and size.
        func read(_ a: Int) throws(Failure) -> (bytes: [UInt8], acc: Doc.Accessor) {
            let path = "$.accessors[\(a)]"
            guard let accs = doc.accessors, a >= 0, a < accs.count else { throw fail(path, "no such accessor") }
            let acc = accs[a]
            guard acc.sparse == nil else { throw fail("\(path).sparse", "sparse accessors are not supported") }
            guard let cs = Self.componentSize[acc.componentType], let tc = Self.typeCount[acc.type] else {
                throw fail(path, "component type \(acc.componentType) / type \(acc.type) not supported")
            }
            guard acc.count >= 0, acc.count <= 50_000_000 else { throw fail("\(path).count", "\(acc.count) elements") }
            let elem = cs * tc
            guard let v = acc.bufferView else { return ([UInt8](repeating: 0, count: elem * acc.count), acc) }  // all zeros, by the spec
            guard let views = doc.bufferViews, v >= 0, v < views.count else { throw fail("\(path).bufferView", "no bufferView \(v)") }
            let view = views[v]
            let vpath = "$.bufferViews[\(v)]"
            guard view.buffer >= 0, view.buffer < buffers.count else { throw fail("\(vpath).buffer", "no buffer \(view.buffer)") }
            let buf = buffers[view.buffer]
            let vo = view.byteOffset ?? 0
            guard vo >= 0, view.byteLength >= 0, vo + view.byteLength <= buf.count else {
                throw fail(vpath, "bytes \(vo)…\(vo + view.byteLength) run past buffer \(view.buffer)'s \(buf.count) bytes")
            }
            let stride = view.byteStride ?? elem
            guard stride >= elem else { throw fail("\(vpath).byteStride", "\(stride) is less than the element's \(elem) bytes") }
            let ao = acc.byteOffset ?? 0
            guard ao >= 0, acc.count == 0 || ao + stride * (acc.count - 1) + elem <= view.byteLength else {
                throw fail(path, "\(acc.count) elements of \(elem) bytes (stride \(stride)) from byte \(ao) run past bufferView \(v)'s \(view.byteLength) bytes")
            }
            var out = [UInt8]()
            out.reserveCapacity(elem * acc.count)
            for i in 0..<acc.count {
                let o = vo + ao + i * stride
                out.append(contentsOf: buf[o..<(o + elem)])
            }
            return (out, acc)
        }

        static func rgba(_ f: [Double]?) -> UInt32 {
            let c = (f ?? [1, 1, 1, 1]) + [1, 1, 1, 1]
            func b(_ x: Double) -> UInt32 { UInt32((min(1, max(0, x.isFinite ? x : 1)) * 255).rounded()) }
            return b(c[0]) << 24 | b(c[1]) << 16 | b(c[2]) << 8 | b(c[3])
        }

        mutating func model(mesh m: Int, report: inout Report) throws(Failure) -> Made? {
            let mesh = doc.meshes![m]
            var bin: [UInt8] = []
            var views: [String] = []
            var accessors: [String] = []
            var prims: [String] = []
            var materialsUsed: [Int?] = []
            func add(_ bytes: [UInt8], target: Int) -> Int {
                while bin.count % 4 != 0 { bin.append(0) }
                views.append("{\"buffer\":0,\"byteOffset\":\(bin.count),\"byteLength\":\(bytes.count),\"target\":\(target)}")
                bin.append(contentsOf: bytes)
                return views.count - 1
            }
            for (k, p) in mesh.primitives.enumerated() {
                let path = "$.meshes[\(m)].primitives[\(k)]"
                if let mode = p.mode, mode != 4 {
                    report.dropped.append("\(path): mode \(mode) (only triangles are drawn)")
                    continue
                }
                guard let pos = p.attributes["POSITION"] else {
                    report.dropped.append("\(path): no POSITION")
                    continue
                }
                if p.targets != nil { report.dropped.append("\(path): morph targets") }
                let others = p.attributes.keys.filter { $0 != "POSITION" && $0 != "NORMAL" }.sorted()
                if !others.isEmpty { report.dropped.append("\(path): attributes \(others.joined(separator: ", "))") }
                let (pb, pa) = try read(pos)
                guard pa.componentType == 5126, pa.type == "VEC3", !(pa.normalized ?? false) else {
                    throw fail("$.accessors[\(pos)]", "POSITION must be float VEC3 (quantized positions need KHR_mesh_quantization)")
                }
                var lo = [Double](repeating: .infinity, count: 3), hi = [Double](repeating: -.infinity, count: 3)
                pb.withUnsafeBytes { raw in
                    for i in 0..<pa.count {
                        for c in 0..<3 {
                            let v = Double(raw.loadUnaligned(fromByteOffset: (i * 3 + c) * 4, as: Float.self))
                            lo[c] = min(lo[c], v)
                            hi[c] = max(hi[c], v)
                        }
                    }
                }
                guard pa.count > 0, (lo + hi).allSatisfy(\.isFinite) else { throw fail("$.accessors[\(pos)]", "positions empty or not finite") }
                var attrs = "\"POSITION\":\(accessors.count)"
                let pv = add(pb, target: 34962)
                accessors.append("{\"bufferView\":\(pv),\"componentType\":5126,\"count\":\(pa.count),\"type\":\"VEC3\",\"min\":[\(lo.map(GLTFImport.num).joined(separator: ","))],\"max\":[\(hi.map(GLTFImport.num).joined(separator: ","))]}")
                if let nor = p.attributes["NORMAL"] {
                    let (nb, na) = try read(nor)
                    if na.componentType == 5126, na.type == "VEC3", na.count == pa.count {
                        let nv = add(nb, target: 34962)
                        attrs += ",\"NORMAL\":\(accessors.count)"
                        accessors.append("{\"bufferView\":\(nv),\"componentType\":5126,\"count\":\(na.count),\"type\":\"VEC3\"}")
                    } else {
                        report.dropped.append("\(path): NORMAL not float VEC3 per vertex")
                    }
                }
                var prim = "{\"attributes\":{\(attrs)}"
                if let ind = p.indices {
                    let (ib, ia) = try read(ind)
                    guard [5121, 5123, 5125].contains(ia.componentType), ia.type == "SCALAR" else {
                        throw fail("$.accessors[\(ind)]", "indices must be unsigned SCALAR")
                    }
                    // Every index must name a vertex.
                    let size = ia.componentType == 5121 ? 1 : ia.componentType == 5123 ? 2 : 4
                    var maxIndex = 0
                    for i in 0..<ia.count {
                        var v = 0
                        for b in 0..<size { v |= Int(ib[i * size + b]) << (8 * b) }
                        maxIndex = max(maxIndex, v)
                    }
                    guard maxIndex < pa.count else { throw fail("$.accessors[\(ind)]", "index \(maxIndex) but only \(pa.count) vertices") }
                    let iv = add(ib, target: 34963)
                    prim += ",\"indices\":\(accessors.count)"
                    accessors.append("{\"bufferView\":\(iv),\"componentType\":\(ia.componentType),\"count\":\(ia.count),\"type\":\"SCALAR\"}")
                }
                materialsUsed.append(p.material)
                prims.append(prim)
            }
            guard !prims.isEmpty else {
                report.dropped.append("$.meshes[\(m)]: nothing drawable")
                return nil
            }
            func material(_ i: Int?) throws(Failure) -> Doc.Material? {
                guard let i else { return nil }
                guard let ms = doc.materials, i >= 0, i < ms.count else { throw fail("$.meshes[\(m)]", "no material \(i)") }
                return ms[i]
            }
            // One material for the whole mesh: its base colour goes to the node; the model is white so the node's
            // colour shows as it is. Several: the model keeps them.
            var color: UInt32?
            var mats: [String] = []
            let distinct = Set(materialsUsed.map { $0 ?? -1 })
            if distinct.count == 1 {
                color = Self.rgba(try material(materialsUsed[0])?.pbrMetallicRoughness?.baseColorFactor)
                mats = ["{\"pbrMetallicRoughness\":{\"baseColorFactor\":[1,1,1,1],\"metallicFactor\":0.1,\"roughnessFactor\":0.7}}"]
                for k in prims.indices { prims[k] += ",\"material\":0}" }
            } else {
                for (k, used) in materialsUsed.enumerated() {
                    let pbr = try material(used)?.pbrMetallicRoughness
                    let c = (pbr?.baseColorFactor ?? [1, 1, 1, 1]).map(GLTFImport.num).joined(separator: ",")
                    mats.append("{\"pbrMetallicRoughness\":{\"baseColorFactor\":[\(c)],\"metallicFactor\":\(GLTFImport.num(pbr?.metallicFactor ?? 1)),\"roughnessFactor\":\(GLTFImport.num(pbr?.roughnessFactor ?? 1))}}")
                    prims[k] += ",\"material\":\(k)}"
                }
            }
            while bin.count % 4 != 0 { bin.append(0) }
            var json = "{\"asset\":{\"version\":\"2.0\",\"generator\":\"scenestream import\"},\"scene\":0,\"scenes\":[{\"nodes\":[0]}],\"nodes\":[{\"mesh\":0}],"
            json += "\"meshes\":[{\"primitives\":[\(prims.joined(separator: ","))]}],\"materials\":[\(mats.joined(separator: ","))],"
            json += "\"accessors\":[\(accessors.joined(separator: ","))],\"bufferViews\":[\(views.joined(separator: ","))],\"buffers\":[{\"byteLength\":\(bin.count)}]}"
            var j = Array(json.utf8)
            while j.count % 4 != 0 { j.append(0x20) }
            var glb: [UInt8] = []
            func u32(_ v: Int) { for k in 0..<4 { glb.append(UInt8((v >> (8 * k)) & 0xFF)) } }
            glb.append(contentsOf: [0x67, 0x6C, 0x54, 0x46])
            u32(2)
            u32(12 + 8 + j.count + 8 + bin.count)
            u32(j.count)
            u32(0x4E4F_534A)
            glb.append(contentsOf: j)
            u32(bin.count)
            u32(0x004E_4942)
            glb.append(contentsOf: bin)
            return Made(glb: glb, color: color)
        }
    }
}
