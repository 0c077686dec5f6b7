#!/usr/bin/env python3
"""Writes the small glTF 2.0 models under Assets/models/ (boxes and cylinders, embedded buffers).

Run from the repository root: python3 Assets/tools/make_models.py
The output is committed; this script documents how it was made.
"""
import base64, json, math, os, struct

def box(sx, sy, sz, oy=0.0):
    hx, hy, hz = sx / 2, sy / 2, sz / 2
    faces = [((1,0,0),[(hx,-hy,-hz),(hx,hy,-hz),(hx,hy,hz),(hx,-hy,hz)]),
             ((-1,0,0),[(-hx,-hy,hz),(-hx,hy,hz),(-hx,hy,-hz),(-hx,-hy,-hz)]),
             ((0,1,0),[(-hx,hy,-hz),(-hx,hy,hz),(hx,hy,hz),(hx,hy,-hz)]),
             ((0,-1,0),[(-hx,-hy,hz),(-hx,-hy,-hz),(hx,-hy,-hz),(hx,-hy,hz)]),
             ((0,0,1),[(hx,-hy,hz),(hx,hy,hz),(-hx,hy,hz),(-hx,-hy,hz)]),
             ((0,0,-1),[(-hx,-hy,-hz),(-hx,hy,-hz),(hx,hy,-hz),(hx,-hy,-hz)])]
    pos, nor, idx = [], [], []
    for n, quad in faces:
        b = len(pos)
        for p in quad:
            pos.append((p[0], p[1] + oy, p[2])); nor.append(n)
        idx += [b, b+1, b+2, b, b+2, b+3]
    return pos, nor, idx

def cylinder(r, h, seg=16, oy=0.0):
    pos, nor, idx = [], [], []
    for i in range(seg + 1):
        a = 2 * math.pi * i / seg
        c, s = math.cos(a), math.sin(a)
        pos += [(r*c, oy, r*s), (r*c, h + oy, r*s)]; nor += [(c,0,s), (c,0,s)]
    for i in range(seg):
        b = 2 * i
        idx += [b, b+1, b+3, b, b+3, b+2]
    for y, ny in ((h + oy, 1), (oy, -1)):
        centre = len(pos); pos.append((0, y, 0)); nor.append((0, ny, 0))
        for i in range(seg + 1):
            a = 2 * math.pi * i / seg
            pos.append((r*math.cos(a), y, r*math.sin(a))); nor.append((0, ny, 0))
        for i in range(seg):
            a, b = centre + 1 + i, centre + 2 + i
            idx += [centre, b, a] if ny > 0 else [centre, a, b]
    return pos, nor, idx

def write(name, parts, color):
    pos, nor, idx = [], [], []
    for p, n, i in parts:
        base = len(pos); pos += p; nor += n; idx += [base + k for k in i]
    pb = b''.join(struct.pack('<3f', *p) for p in pos)
    nb = b''.join(struct.pack('<3f', *n) for n in nor)
    ib = b''.join(struct.pack('<H', i) for i in idx)
    ib += b'\0' * ((4 - len(ib) % 4) % 4)
    buf = pb + nb + ib
    mins = [min(p[k] for p in pos) for k in range(3)]
    maxs = [max(p[k] for p in pos) for k in range(3)]
    doc = {
        "asset": {"version": "2.0", "generator": "SceneStream make_models.py"},
        "scene": 0, "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0, "name": name}],
        "meshes": [{"name": name, "primitives": [{"attributes": {"POSITION": 0, "NORMAL": 1}, "indices": 2, "material": 0}]}],
        "materials": [{"name": name, "pbrMetallicRoughness": {"baseColorFactor": color, "metallicFactor": 0.1, "roughnessFactor": 0.7}}],
        "buffers": [{"byteLength": len(buf), "uri": "data:application/octet-stream;base64," + base64.b64encode(buf).decode()}],
        "bufferViews": [
            {"buffer": 0, "byteOffset": 0, "byteLength": len(pb), "target": 34962},
            {"buffer": 0, "byteOffset": len(pb), "byteLength": len(nb), "target": 34962},
            {"buffer": 0, "byteOffset": len(pb) + len(nb), "byteLength": len(idx) * 2, "target": 34963}],
        "accessors": [
            {"bufferView": 0, "componentType": 5126, "count": len(pos), "type": "VEC3", "min": mins, "max": maxs},
            {"bufferView": 1, "componentType": 5126, "count": len(nor), "type": "VEC3"},
            {"bufferView": 2, "componentType": 5123, "count": len(idx), "type": "SCALAR"}],
    }
    with open(os.path.join("Assets", "models", name + ".gltf"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")

os.makedirs(os.path.join("Assets", "models"), exist_ok=True)
write("floor", [box(1, 1, 1)], [0.55, 0.57, 0.6, 1])
write("column", [box(0.5, 8, 0.5)], [0.7, 0.7, 0.72, 1])
write("conveyor", [box(2, 0.8, 1.0)], [0.25, 0.27, 0.3, 1])
write("crate", [box(0.5, 0.3, 0.5)], [0.78, 0.6, 0.35, 1])
write("robot-base", [cylinder(0.35, 0.5)], [0.95, 0.55, 0.1, 1])
write("robot-link", [box(0.18, 0.35, 0.18, oy=0.0)], [0.95, 0.6, 0.15, 1])
write("gripper", [box(0.25, 0.08, 0.1), box(0.04, 0.18, 0.08, oy=0.1)], [0.3, 0.3, 0.32, 1])
write("press-body", [box(1.6, 4, 1.4, oy=2.0)], [0.3, 0.45, 0.7, 1])
write("press-ram", [box(1.0, 0.4, 0.9)], [0.6, 0.6, 0.62, 1])
write("tank", [cylinder(1.0, 3.0, seg=24)], [0.75, 0.8, 0.85, 0.35])
write("tank-level", [cylinder(0.95, 2.9, seg=24)], [0.2, 0.5, 0.9, 1])
write("cabinet", [box(0.8, 2.0, 0.6, oy=1.0)], [0.45, 0.47, 0.5, 1])
write("agv", [box(1.2, 0.3, 0.8, oy=0.15)], [0.95, 0.8, 0.1, 1])
write("status-light", [cylinder(0.08, 0.2)], [0.9, 0.9, 0.9, 1])
write("cube", [box(0.5, 0.5, 0.5)], [0.8, 0.8, 0.8, 1])
write("avatar-head", [box(0.22, 0.26, 0.24), box(0.16, 0.05, 0.04, oy=0.03)], [0.9, 0.9, 0.95, 1])
write("avatar-hand", [box(0.08, 0.03, 0.12)], [0.9, 0.9, 0.95, 1])
write("avatar-pointer", [cylinder(0.01, 2.0)], [1.0, 1.0, 1.0, 1])
write("selection-ring", [cylinder(0.9, 0.04, seg=32)], [1.0, 1.0, 1.0, 0.6])
write("note-pin", [cylinder(0.02, 0.3), box(0.12, 0.12, 0.12, oy=0.36)], [0.95, 0.8, 0.2, 1])
