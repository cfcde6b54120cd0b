"""Triangle-mesh decimation for fast rendering, cached on disk by content hash.

Software rasterisation (Mesa llvmpipe) is bound by geometry: the libero_spatial scene has ~300,000
visual-mesh triangles, and each camera render costs ~45 ms at 128 px even with shadows, MSAA and
reflections off. Decimating the visual meshes is what makes a rendered step cheap.

A decimated mesh keeps its original vertex, normal and texture-coordinate buffers: only its
triangle list changes (fewer triangles, indices into the same buffers). A simulator can then swap
triangle lists in place after compiling the model, without touching anything the physics reads.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import fast_simplification
import numpy as np

DEFAULT_CACHE_DIR = Path.home() / ".cache" / "sfbench" / "meshes"
# Part of every cache key: bump it whenever :func:`decimate` changes what it returns.
ALGORITHM = f"weld-uv-fqms{fast_simplification.__version__}-replay-v1"


@dataclass(frozen=True)
class Triangles:
    """A mesh's triangles as per-corner indices into its own buffers (MuJoCo's layout).

    Attributes:
        vertex: ``(F, 3)`` indices into the mesh's vertices (``mesh_face``).
        normal: ``(F, 3)`` indices into its normals (``mesh_facenormal``).
        texcoord: ``(F, 3)`` indices into its texture coordinates (``mesh_facetexcoord``).
    """

    vertex: np.ndarray
    normal: np.ndarray
    texcoord: np.ndarray

    def __len__(self) -> int:
        return len(self.vertex)


def _proper(faces: np.ndarray) -> np.ndarray:
    """Mask of the triangles whose three corners are distinct vertices."""
    return (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])


def decimate(vertices: np.ndarray, texcoords: np.ndarray, tris: Triangles, keep_fraction: float) -> Triangles:
    """Keep about ``keep_fraction`` of the triangles of a mesh, reusing its vertex buffers.

    Mesh files often give every triangle corner its own vertex, which leaves a decimator no shared
    edges to collapse, so corners are first welded by position and texture coordinate (texture
    seams stay seams, kept intact as mesh borders). The welded mesh is decimated by quadric edge
    collapse (``fast_simplification``), replayed on the original vertices: a collapsed vertex
    moves onto the one that absorbed it, so no new vertex is made. Each corner of a new triangle
    takes the normal of the original corner at its vertex whose triangle is closest to the new
    one, which keeps flat-shaded faces flat.

    Args:
        vertices: ``(V, 3)`` vertex positions.
        texcoords: ``(T, 2)`` texture coordinates (``T = 0`` for an untextured mesh).
        tris: The mesh's triangles.
        keep_fraction: Fraction of triangles kept, in ``(0, 1]``.

    Returns:
        The decimated triangles (``tris`` itself when there is nothing to remove).
    """
    target = int(round(len(tris) * keep_fraction))
    uv = texcoords[tris.texcoord.reshape(-1)] if len(texcoords) else np.zeros((tris.vertex.size, 2))
    keys = np.concatenate([vertices[tris.vertex.reshape(-1)], uv], axis=1)
    welded, welded_of = np.unique(keys, axis=0, return_inverse=True)
    corner_vertex = welded_of.reshape(-1, 3)  # (F, 3) welded vertex of each corner
    faces = corner_vertex[_proper(corner_vertex)]
    if target >= len(faces) or target < 4:
        return tris
    *_, collapses = fast_simplification.simplify(welded[:, :3].astype(np.float64), faces.astype(np.int64),
                                                 target_count=target, preserve_border=True,
                                                 return_collapses=True)
    survivor = np.arange(len(welded))
    for kept, removed in collapses[::-1]:  # backwards: survivor[kept] is already final
        survivor[removed] = survivor[kept]
    new_faces = survivor[faces]
    new_faces = new_faces[_proper(new_faces)]
    corners = _closest_corners(welded[:, :3], corner_vertex, new_faces)
    return Triangles(*(np.ascontiguousarray(a.reshape(-1)[corners], dtype=np.int32)
                       for a in (tris.vertex, tris.normal, tris.texcoord)))


def _closest_corners(welded: np.ndarray, corner_vertex: np.ndarray, new_faces: np.ndarray) -> np.ndarray:
    """Pick, for each corner of ``new_faces``, an original corner (flat index) at its welded vertex.

    The pick is the corner whose triangle's centroid is closest to the new triangle's centroid.
    Returns ``(F_new, 3)`` flat corner indices.
    """
    flat = corner_vertex.reshape(-1)
    by_vertex = np.argsort(flat, kind="stable")
    count = np.bincount(flat, minlength=len(welded))
    start = np.concatenate([[0], np.cumsum(count)[:-1]])
    old_centroid = welded[corner_vertex].mean(axis=1)  # (F, 3)
    new_centroid = np.repeat(welded[new_faces].mean(axis=1), 3, axis=0)  # (3 F_new, 3)
    vertex = new_faces.reshape(-1)
    best = by_vertex[start[vertex]]
    best_d = np.linalg.norm(old_centroid[best // 3] - new_centroid, axis=1)
    for k in range(1, int(count[vertex].max())):
        has = count[vertex] > k
        cand = by_vertex[start[vertex[has]] + k]
        d = np.linalg.norm(old_centroid[cand // 3] - new_centroid[has], axis=1)
        closer = d < best_d[has]
        idx = np.flatnonzero(has)[closer]
        best[idx], best_d[idx] = cand[closer], d[closer]
    return best.reshape(-1, 3)


def content_key(vertices: np.ndarray, texcoords: np.ndarray, tris: Triangles, keep_fraction: float) -> str:
    """Hash of everything :func:`decimate` reads, plus the algorithm version."""
    h = hashlib.sha256(f"{ALGORITHM}|{keep_fraction!r}".encode())
    for a in (vertices, texcoords, tris.vertex, tris.normal, tris.texcoord):
        arr = np.ascontiguousarray(a)
        h.update(f"{arr.dtype}{arr.shape}".encode())
        h.update(arr.data)
    return h.hexdigest()[:32]


class MeshCache:
    """Decimated triangle lists, on disk under ``root`` and in memory, keyed by content hash.

    Each entry is written atomically (temporary file, then rename), so worker processes that
    decimate the same mesh at once never read a partial file.
    """

    def __init__(self, root: Path = DEFAULT_CACHE_DIR):
        self.root = Path(root)
        self._memory: dict[str, Triangles] = {}

    def decimated(self, vertices: np.ndarray, texcoords: np.ndarray, tris: Triangles,
                  keep_fraction: float) -> Triangles:
        """``decimate(vertices, texcoords, tris, keep_fraction)``, computed once per content."""
        key = content_key(vertices, texcoords, tris, keep_fraction)
        if key not in self._memory:
            stored = self._load(key)
            self._memory[key] = stored if stored is not None else self._save(
                key, decimate(vertices, texcoords, tris, keep_fraction))
        return self._memory[key]

    def _path(self, key: str) -> Path:
        return self.root / f"{key}.npz"

    def _load(self, key: str) -> Triangles | None:
        if not self._path(key).is_file():
            return None
        with np.load(self._path(key)) as f:
            return Triangles(f["vertex"], f["normal"], f["texcoord"])

    def _save(self, key: str, tris: Triangles) -> Triangles:
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, suffix=".npz.tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, vertex=tris.vertex, normal=tris.normal, texcoord=tris.texcoord)
        os.replace(tmp, self._path(key))
        return tris
