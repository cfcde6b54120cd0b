from __future__ import annotations

import numpy as np

from sfbench.core.meshes import MeshCache, Triangles, decimate


def _unwelded_grid(n=40):
    """A wavy n x n grid whose triangles each own their 3 vertices (as MuJoCo loads OBJ files)."""
    u, v = np.meshgrid(np.linspace(0, 1, n), np.linspace(0, 1, n), indexing="ij")
    points = np.stack([u, v, 0.05 * np.sin(6 * u) * np.cos(5 * v)], -1).reshape(-1, 3)
    uv = np.stack([u, v], -1).reshape(-1, 2)
    quads = np.array([[i * n + j, (i + 1) * n + j, i * n + j + 1, (i + 1) * n + j + 1]
                      for i in range(n - 1) for j in range(n - 1)])
    shared = np.concatenate([quads[:, [0, 1, 2]], quads[:, [2, 1, 3]]])
    corners = np.arange(shared.size).reshape(-1, 3)
    vertices, texcoords = points[shared.reshape(-1)], uv[shared.reshape(-1)]
    return vertices, texcoords, Triangles(corners, corners.copy(), corners.copy())


def test_decimate_keeps_about_the_fraction_and_reuses_the_vertex_buffers():
    vertices, texcoords, tris = _unwelded_grid()
    kept = decimate(vertices, texcoords, tris, 0.25)
    assert len(kept) <= 0.3 * len(tris), "about a quarter of the triangles remain"
    assert kept.vertex.dtype == np.int32 and kept.vertex.max() < len(vertices)
    assert np.array_equal(kept.vertex, kept.normal), "each corner keeps its own vertex's normal"
    areas = np.linalg.norm(np.cross(*(vertices[kept.vertex[:, k]] - vertices[kept.vertex[:, 0]]
                                      for k in (1, 2))), axis=1) / 2
    assert abs(areas.sum() - 1.0) < 0.05, "the surface still covers the unit square"


def test_keep_fraction_one_changes_nothing():
    vertices, texcoords, tris = _unwelded_grid(10)
    assert decimate(vertices, texcoords, tris, 1.0) is tris


def test_cache_writes_once_and_a_new_cache_reads_the_file(weird_tmp_path):
    vertices, texcoords, tris = _unwelded_grid(20)
    first = MeshCache(weird_tmp_path).decimated(vertices, texcoords, tris, 0.5)
    files = list(weird_tmp_path.glob("*.npz"))
    assert len(files) == 1 and not list(weird_tmp_path.glob("*.tmp")), "one entry, written atomically"
    again = MeshCache(weird_tmp_path).decimated(vertices, texcoords, tris, 0.5)
    assert np.array_equal(first.vertex, again.vertex) and list(weird_tmp_path.glob("*.npz")) == files
    other = MeshCache(weird_tmp_path).decimated(vertices, texcoords, tris, 0.3)
    assert len(other) < len(first) and len(list(weird_tmp_path.glob("*.npz"))) == 2
