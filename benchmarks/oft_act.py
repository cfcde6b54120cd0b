"""OpenVLA-OFT adapter latency: one ``act`` (8-action chunk) at batch 1 and 8, and peak memory.

On CPU it times the tiny checkpoint written by ``sfbench.policies.openvla_oft.tiny`` through the
real adapter (preprocessing included), and OFT's image chain alone per view (JPEG round trip,
Lanczos-3, centre crop; then the tower normalisation) beside it: the share of ``act`` at batch 8
that the 16 views' preprocessing takes. With ``--device cuda`` it builds the full-size architecture
(DINOv2-L/14-reg4 + SigLIP-so400m + Llama-2-7B, 32064 tokens) with random bf16 weights and times
the network's forward pass on random inputs of the real shapes.

    python benchmarks/oft_act.py [--device cuda] [--repeats 10]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from sfbench.core.task import TaskSpec
from sfbench.policies.openvla_oft import OpenVLAOFT, OpenVLAOFTConfig, OpenVLAOFTPolicy
from sfbench.policies.openvla_oft.checkpoint import llama_config
from sfbench.policies.openvla_oft.constants import PAD_ID, VOCAB_SIZE
from sfbench.policies.openvla_oft.processing import image_pixels, policy_image, prompt_ids, resized_view
from sfbench.policies.openvla_oft.tiny import synthetic_tokenizer, write_tiny_checkpoint
from sfbench.policies.openvla_oft.vit import TOWERS

TASK = TaskSpec(suite="libero_spatial", task_id=0, name="t", instruction="pick up the black bowl", action_dim=7)
GOLDEN = Path(__file__).resolve().parents[1] / "tests" / "policies" / "data" / "oft_golden.npz"


def _obs(rng: np.random.Generator) -> dict:
    return {"agentview": rng.integers(0, 255, (256, 256, 3), dtype=np.uint8),
            "wrist": rng.integers(0, 255, (256, 256, 3), dtype=np.uint8), "proprio": rng.normal(size=8) * 0.1,
            "instruction": TASK.instruction}


def _median_ms(fn, repeats: int, sync: bool = False) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if sync:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def _frames(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A real LIBERO agentview frame (the golden fixture's) and uniform noise (JPEG's worst case), 256 px."""
    frames = {"noise": rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)}
    if GOLDEN.is_file():
        with np.load(GOLDEN) as golden:
            frames["libero frame"] = golden["libero_spatial_t0_agentview/input"]
    return frames


def preprocessing_rows(policy: OpenVLAOFTPolicy, repeats: int, act_ms: float, views: int) -> None:
    """Per-view cost of each stage of the image chain, and the share of ``act`` the batch's views take."""
    stats = policy.ckpt.image_stats
    for name, frame in _frames(np.random.default_rng(1)).items():
        resize = _median_ms(lambda f=frame: resized_view(f), repeats)
        image = _median_ms(lambda f=frame: policy_image(f, True), repeats)
        full = _median_ms(lambda f=frame: image_pixels([f] * views, stats, True), repeats) / views
        print(f"  image chain per view ({name}): JPEG + lanczos3 {resize:.2f} ms, + centre crop {image:.2f} ms, "
              f"+ tower normalisation (batched) {full:.2f} ms; {views} views = {views * full:.1f} ms = "
              f"{100 * views * full / act_ms:.1f}% of act at batch {views // 2}")


def cpu_tiny(repeats: int) -> None:
    """The tiny checkpoint through the adapter, float32 on CPU."""
    with tempfile.TemporaryDirectory() as tmp:
        path = write_tiny_checkpoint(Path(tmp) / "tiny")
        policy = OpenVLAOFTPolicy(OpenVLAOFTConfig(checkpoint=str(path), device="cpu"))
        policy.reset(TASK)
        rng = np.random.default_rng(0)
        for batch in (1, 8):
            obs = [_obs(rng) for _ in range(batch)]
            ms = _median_ms(lambda obs=obs: policy.act_batch(obs), repeats)
            print(f"tiny openvla_oft, cpu, batch {batch}: act {ms:.1f} ms ({ms / batch:.1f} ms per env)")
        preprocessing_rows(policy, repeats, ms, 2 * batch)
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


def cuda_full(repeats: int) -> None:
    """The full-size network with random bf16 weights: forward latency and peak GPU memory."""
    text = {"vocab_size": VOCAB_SIZE, "pad_token_id": PAD_ID}
    with torch.device("cuda"):
        torch.set_default_dtype(torch.bfloat16)
        model = OpenVLAOFT(TOWERS["vit_large_patch14_reg4_dinov2.lvd142m"], TOWERS["vit_so400m_patch14_siglip_224"],
                           llama_config(text)).eval()
        torch.set_default_dtype(torch.float32)
    ids = prompt_ids(synthetic_tokenizer(), TASK.instruction)
    for batch in (1, 8):
        torch.cuda.reset_peak_memory_stats()
        pixels = torch.randn(batch, 12, 224, 224, device="cuda", dtype=torch.bfloat16)
        tokens = torch.tensor([ids] * batch, device="cuda")
        proprio = torch.zeros(batch, 8, device="cuda", dtype=torch.bfloat16)
        with torch.no_grad():
            ms = _median_ms(lambda p=pixels, t=tokens, q=proprio: model(p, t, q), repeats, sync=True)
        peak = torch.cuda.max_memory_allocated() / 2**30
        print(f"full openvla_oft, {torch.cuda.get_device_name()}, bf16, batch {batch}: forward {ms:.1f} ms, "
              f"peak {peak:.1f} GiB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    cuda_full(args.repeats) if args.device == "cuda" else cpu_tiny(args.repeats)
