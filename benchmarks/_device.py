"""Device plumbing of the benchmarks that can run on a GPU (``pretrain_step.py
--device cuda --reference``, ``coco_eval.py --device cuda``).

Owns: the table of accelerator peak FLOP/s by device name (and the lookup that
says so when a device is not in it), the ``--device`` check (one line when
CUDA is asked for and absent), the fast-path settings a GPU run uses (bf16
autocast, the fused SDPA kernels, channels-last image tensors, pinned host
memory for copies) and the "model FLOP/s against the device's peak" line.

Peaks are the vendors' datasheet figures for dense matrix math (no 2:4
sparsity), in TFLOP/s: ``bf16`` on the Tensor Cores with FP32 accumulation,
``fp32`` without Tensor Cores.  A device that is not in the table gets no
utilisation figure, and the benchmarks say so.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

#: (substring of ``torch.cuda.get_device_name()``, {dtype: dense peak TFLOP/s}, source); first match wins,
#: so the more specific names come first (``H100 PCIe`` before ``H100``, ``A100`` before ``A10``,
#: ``L40S`` before ``L4``)
GPU_PEAKS: list[tuple[str, dict[str, float], str]] = [
    ("H100 PCIe", {"bf16": 756.0, "fp32": 51.0}, "NVIDIA H100 datasheet, PCIe"),
    ("H100 NVL", {"bf16": 835.0, "fp32": 60.0}, "NVIDIA H100 datasheet, NVL"),
    ("H100", {"bf16": 989.0, "fp32": 67.0}, "NVIDIA H100 datasheet, SXM"),
    ("H200", {"bf16": 989.0, "fp32": 67.0}, "NVIDIA H200 datasheet, SXM"),
    ("GH200", {"bf16": 989.0, "fp32": 67.0}, "NVIDIA GH200 datasheet"),
    ("A100", {"bf16": 312.0, "fp32": 19.5}, "NVIDIA A100 datasheet"),
    ("L40S", {"bf16": 362.0, "fp32": 91.6}, "NVIDIA L40S datasheet"),
    ("L4", {"bf16": 121.0, "fp32": 30.3}, "NVIDIA L4 datasheet"),
    ("A10", {"bf16": 125.0, "fp32": 31.2}, "NVIDIA A10 datasheet"),
    ("V100", {"fp32": 15.7}, "NVIDIA V100 datasheet, SXM2 (no bf16)"),
]

#: the device a GPU projection assumes when none is at hand
PROJECTION_DEVICE = "H100"


def peak_tflops(device_name: str, dtype: str = "bf16") -> tuple[float | None, str]:
    """``(dense peak TFLOP/s or None, what was matched / why not)`` for a device name."""
    for key, peaks, source in GPU_PEAKS:
        if key.lower() in device_name.lower():
            if dtype not in peaks:
                return None, f"{key}: no {dtype} peak in the table ({source})"
            return peaks[dtype], f"{key} {dtype} dense {peaks[dtype]:g} TFLOP/s ({source})"
    return None, f"'{device_name}' is not in the peak table (benchmarks/_device.py GPU_PEAKS): no utilisation figure"


def utilisation_line(flops_per_s: float, device_name: str, dtype: str = "bf16") -> str:
    """``model X TFLOP/s = Y% of <device>'s dense <dtype> peak``, or why there is no peak."""
    peak, what = peak_tflops(device_name, dtype)
    rate = f"model {flops_per_s / 1e12:.2f} TFLOP/s"
    if peak is None:
        return f"{rate}; {what}"
    return f"{rate} = {100 * flops_per_s / (peak * 1e12):.1f}% of {what}"


def add_args(parser: Any) -> None:
    """``--device``, ``--gpu`` (the projection's device) and ``--utilisation`` (its assumed share of the peak)."""
    parser.add_argument("--device", default="cpu", help="cpu or cuda (bf16 autocast, fused attention, channels-last)")
    parser.add_argument("--gpu", default=PROJECTION_DEVICE, help="device name the projection looks up (default H100)")
    parser.add_argument("--utilisation", type=float, default=0.4,
                        help="share of the GPU's peak assumed for the realistic projection (default 0.4)")


def projection(total_flops: float, gpu: str, utilisation: float) -> dict[str, Any]:
    """Seconds for ``total_flops`` on ``gpu`` at 100% of its dense bf16 peak (the
    bound) and at ``utilisation`` (an assumption); ``bound_s`` None when the
    device is not in the table (``peak`` says why)."""
    peak, what = peak_tflops(gpu, "bf16")
    if peak is None:
        return {"device": gpu, "peak": what, "bound_s": None, "assumed_s": None}
    bound = total_flops / (peak * 1e12)
    return {"device": gpu, "peak": what, "peak_tflops": peak, "bound_s": bound, "utilisation": utilisation,
            "assumed_s": bound / utilisation}


def projection_line(what: str, proj: dict[str, Any]) -> str:
    if proj["bound_s"] is None:
        return f"no GPU projection: {proj['peak']}"
    return (f"projected {what} on {proj['peak']}: {proj['bound_s']:.1f} s at 100% of the peak, "
            f"{proj['assumed_s']:.1f} s at an assumed {proj['utilisation']:.0%}")


def resolve(device: str, script: str) -> Any:
    """``torch.device(device)``; CUDA asked for and absent is one line and exit 2."""
    import torch

    try:
        dev = torch.device(device)
    except RuntimeError:
        raise SystemExit(f"{script}: --device {device!r} is not a device (use cpu or cuda)") from None
    if dev.type not in ("cpu", "cuda"):
        raise SystemExit(f"{script}: --device {device!r} is not supported (use cpu or cuda)")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"{script}: --device cuda but CUDA is not available here (run it on a GPU machine)")
    return dev


def device_name(dev: Any) -> str:
    import torch

    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return "cpu"


def autocast(dev: Any, enabled: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on a GPU (when ``enabled``); nothing on the CPU."""
    import torch

    if enabled and dev.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@contextlib.contextmanager
def fused_attention(dev: Any) -> Iterator[None]:
    """On a GPU, ``scaled_dot_product_attention`` tries the flash kernel first, then
    cuDNN's and the memory-efficient one (the masked attention of BERT cannot use
    flash), the math kernel last; on the CPU torch's own choice."""
    if dev.type != "cuda":
        yield
        return
    from torch.nn.attention import SDPBackend, sdpa_kernel

    order = [SDPBackend.FLASH_ATTENTION, SDPBackend.CUDNN_ATTENTION, SDPBackend.EFFICIENT_ATTENTION,
             SDPBackend.MATH]
    try:
        ctx = sdpa_kernel(order, set_priority=True)
    except TypeError:      # a torch without set_priority: the same set, torch's default order
        ctx = sdpa_kernel(order)
    with ctx:
        yield


def to_device_images(images: Any, dev: Any) -> Any:
    """Images onto the device for the ViT: channels-last on a GPU (the patch
    embedding convolution's fast layout), copied from pinned memory without
    blocking; unchanged on the CPU."""
    import torch

    if dev.type != "cuda":
        return images
    if not images.is_pinned():
        images = images.pin_memory()
    return images.to(dev, non_blocking=True).contiguous(memory_format=torch.channels_last)


def channels_last(model: Any, dev: Any) -> None:
    """On a GPU, the image encoder's convolution weights in channels-last (with
    :func:`to_device_images`' inputs the patch embedding runs without layout
    conversions); the transformer layers are unaffected.  Nothing on the CPU."""
    import torch

    if dev.type == "cuda" and hasattr(model, "visual_encoder"):
        model.visual_encoder.to(memory_format=torch.channels_last)


def pinned_loader(dataset: Any, batch_size: int, dev: Any, **kwargs: Any) -> Any:
    """A ``DataLoader`` whose batches sit in pinned host memory on a GPU (copies
    to the device then run without blocking)."""
    from torch.utils.data import DataLoader

    return DataLoader(dataset, batch_size=batch_size, pin_memory=dev.type == "cuda", **kwargs)


def sync(dev: Any) -> None:
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def peak_memory_gib(dev: Any) -> float | None:
    """Peak GPU memory allocated by torch (GiB) on a GPU, else None."""
    import torch

    if dev.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(dev) / 2**30
