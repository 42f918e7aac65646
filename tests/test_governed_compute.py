"""Governed compute on a real node: pauses stop work within 1 s, limits apply live, a GPU
that vanishes degrades to the CPU tier. Progress is read from the gate's own counter."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

import core.governor_service as gs
from core.commands import RunTestJob
from core.errors import SettingsError
from core.hardware import GpuInfo, NvmlReading
from core.snapshot import NodeSnapshot
from tests.conftest import grove
from tests.nodes import make_handle, wait_for

GIB = 1024**3


def _progress(snap: NodeSnapshot) -> int:
    return snap.compute.progress


def _working(handle, pieces: int = 5) -> None:
    start = _progress(handle.snapshot())
    wait_for(lambda: _progress(handle.snapshot()) >= start + pieces, 30, "governed work")


def _stopped_within(handle, t0: float, limit: float = 1.0) -> float:
    """Wait until governed work is parked; return how long after `t0` the last piece ended."""
    wait_for(lambda: handle.snapshot().compute.parked_since is not None
             and handle.snapshot().compute.threads_running == 0, 5, "compute to park")
    last = handle.snapshot().compute.last_progress_at
    assert last is not None
    took = last - t0
    assert took < limit, f"work went on {took:.2f} s after the pause"
    return took


def test_pause_from_the_tray_path_and_resume(tmp_path: Path) -> None:
    h = make_handle(tmp_path, "p", participate=True)
    h.start()
    try:
        job = h.submit(RunTestJob(60))
        _working(h)
        t0 = time.time()
        h.pause(t0 + 3600).result(5)
        _stopped_within(h, t0)
        assert h.snapshot().governor.rule == "pause"
        parked = _progress(h.snapshot())
        time.sleep(0.5)  # nothing runs while paused: the counter stays where it parked
        assert _progress(h.snapshot()) == parked
        h.resume().result(5)
        _working(h)
        assert not job.done()
    finally:
        h.stop()


def test_pause_from_the_cli_stops_compute_within_1s(grove_env: dict[str, str]) -> None:
    home = Path(grove_env["GROVE_HOME"])
    h = make_handle(home, "default", participate=True)
    h.start()
    try:
        h.submit(RunTestJob(60))
        _working(h)
        out = grove("pause", "--for", "30m", env=grove_env)
        assert out.returncode == 0 and "Paused until" in out.stdout
        t0 = os.stat(home / "default" / "data" / "pause.json").st_mtime
        _stopped_within(h, t0)
        out = grove("resume", env=grove_env)
        assert out.returncode == 0
        _working(h)
        assert h.snapshot().governor.may_compute
    finally:
        h.stop()


def test_a_limit_change_takes_effect_without_restart(grove_env: dict[str, str]) -> None:
    home = Path(grove_env["GROVE_HOME"])
    h = make_handle(home, "default", participate=True)
    h.start()
    try:
        cores = os.cpu_count() or 1
        h.update_settings(cpu_share=25).result(5)
        wait_for(lambda: h.snapshot().governor.cpu_share == 0.25, 3, "share 25%")
        out = grove("limits", "set", "cpu_share=100", env=grove_env)
        assert out.returncode == 0, out.stderr
        wait_for(lambda: h.snapshot().governor.cpu_share == 1.0, 5, "the CLI's change")
        assert h.snapshot().governor.threads == cores
        out = grove("limits", "set", "schedule=sun 03:00-03:01", env=grove_env)
        wait_for(lambda: h.snapshot().governor.rule in ("schedule", ""), 5, "schedule")
        out = grove("limits", "set", "cpu_share=500", env=grove_env)
        assert out.returncode == 2 and "5 to 100 %" in out.stderr
        assert "Traceback" not in out.stderr
    finally:
        h.stop()


def _fake_gpus(temp: float = 50.0) -> NvmlReading:
    return NvmlReading(True, "NVIDIA driver 550.1, 1 GPU", "550.1", "12.4", (
        GpuInfo(0, "RTX 3060", "GPU-a", 12 * GIB, 11 * GIB, 0.0, temp, 20.0),))


def test_a_gpu_that_vanishes_degrades_to_cpu_and_the_node_keeps_going(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    readings = [_fake_gpus()]
    monkeypatch.setattr(gs, "read_nvml", lambda: readings[-1])
    real_probe = gs.probe_hardware
    monkeypatch.setattr(gs, "probe_hardware", lambda nvml=None: real_probe(nvml or readings[-1]))
    monkeypatch.setattr(gs, "NVML_EVERY", 0.05)
    h = make_handle(tmp_path, "gpu", participate=True)
    h.start()
    try:
        wait_for(lambda: h.snapshot().tier == "consumer-gpu", 5, "the GPU tier")
        assert "RTX 3060" in h.snapshot().hardware
        with pytest.raises(SettingsError, match=r"above your largest GPU \(12288 MB\)"):
            h.update_settings(vram_cap_mb=20000).result(5)
        with pytest.raises(SettingsError, match="GPU 3"):
            h.update_settings(allowed_gpus=("3",)).result(5)
        readings.append(NvmlReading(False, "NVML: GPU is lost"))
        wait_for(lambda: h.snapshot().tier == "cpu", 5, "the CPU tier")
        assert "GPU is lost" in h.snapshot().tier_reason
        assert not h.snapshot().errors and h.snapshot().governor.may_compute
    finally:
        h.stop()


def test_a_hot_gpu_is_taken_out_of_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    readings = [_fake_gpus(95.0)]
    monkeypatch.setattr(gs, "read_nvml", lambda: readings[-1])
    monkeypatch.setattr(gs, "NVML_EVERY", 0.05)
    h = make_handle(tmp_path, "hot", participate=True)
    h.start()
    try:
        wait_for(lambda: any("cooling down" in n for n in h.snapshot().governor.notes), 5,
                 "the temperature note")
        readings.append(_fake_gpus(70.0))
        wait_for(lambda: not h.snapshot().governor.notes, 5, "the GPU to cool")
    finally:
        h.stop()


def test_a_gpu_torch_cannot_reach_leaves_training_on_the_cpu_and_says_why(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """NVML shows an allowed 12 GiB GPU (the tier says consumer-gpu) but torch has no CUDA
    (forced missing, as on this machine): the village trains on the CPU, end to end, and
    says why; the choice is the one the governor makes for every compute user."""
    from core.compute import CudaFacts

    monkeypatch.setattr(gs, "read_nvml", _fake_gpus)
    real_probe = gs.probe_hardware
    monkeypatch.setattr(gs, "probe_hardware", lambda nvml=None: real_probe(nvml or _fake_gpus()))
    monkeypatch.setattr(gs, "cuda_probe", lambda: CudaFacts(reason="forced missing"))
    h = make_handle(tmp_path, "gpu-cpu", participate=True, training_projects=("digits",),
                    training_period_s=3.0)
    h.start()
    try:
        wait_for(lambda: h.snapshot().tier == "consumer-gpu", 10, "the GPU tier")

        def trained() -> bool:
            view = next(v for v in h.snapshot().training if v.project == "digits")
            return view.samples_contributed > 0 and bool(view.device)

        wait_for(trained, 60, "training on the CPU")
        view = next(v for v in h.snapshot().training if v.project == "digits")
        assert view.device.startswith("on the CPU") and "torch cannot use GPU 0" in view.device
        assert view.error == ""
    finally:
        h.stop()


def test_the_governor_matches_nvmls_gpus_to_cudas_by_uuid(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import random

    from core.compute import CudaFacts
    from core.ports import ServiceContext, SystemClock
    from core.settings_schema import Settings
    from core.settings_service import FixedSettings

    two = NvmlReading(True, "NVIDIA driver 550.1, 2 GPUs", "550.1", "12.4", (
        GpuInfo(0, "RTX 3060", "GPU-aa", 12 * GIB, 11 * GIB, 0.0, 50.0, 20.0),
        GpuInfo(1, "RTX 4090", "GPU-bb", 24 * GIB, 23 * GIB, 0.0, 50.0, 20.0)))
    ctx = ServiceContext("me", lambda b: b, tmp_path, random.Random(0), SystemClock(),
                         FixedSettings(Settings()), lambda p, r: None, None)  # type: ignore[arg-type]
    governor = gs.GovernorService(ctx)
    governor.hardware = gs.probe_hardware(two)
    governor.tier = governor._tier(ctx.settings)
    probes: list[int] = []

    def probe() -> CudaFacts:  # CUDA_VISIBLE_DEVICES=1,0: CUDA's 0 is NVML's 1
        probes.append(1)
        return CudaFacts(("bb", "aa"), ((8, 9), (8, 6)))

    monkeypatch.setattr(gs, "cuda_probe", probe)
    pick = governor.device_for(2**30)
    assert (pick.device, pick.gpu, pick.mixed_precision) == ("cuda:0", 1, True)
    assert governor.gate.ordinals == {1: 0, 0: 1}
    governor.device_for(2**30)
    assert len(probes) == 1  # probed once while the GPUs stay the same
    governor.hardware = gs.probe_hardware(NvmlReading(False, "NVML: GPU is lost"))
    governor.tier = governor._tier(ctx.settings)
    pick = governor.device_for(2**30)
    assert pick.device == "cpu" and "GPU is lost" in pick.reason


def test_a_gpu_out_of_memory_moves_the_step_to_the_cpu_and_the_project_goes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """NVML shows an allowed GPU and torch (faked at the probe) reaches it, so training
    chooses cuda:0; placing the step there fails with CUDA's out-of-memory error (faked where
    the step's tensors go to the device). The step is trained again on the CPU from the
    same parameters, the project goes on, and the Training page says what happened."""
    import torch

    from core.compute import CudaFacts
    from core.training import check

    monkeypatch.setattr(gs, "read_nvml", _fake_gpus)
    real_probe = gs.probe_hardware
    monkeypatch.setattr(gs, "probe_hardware", lambda nvml=None: real_probe(nvml or _fake_gpus()))
    monkeypatch.setattr(gs, "cuda_probe", lambda: CudaFacts(("a",), ((8, 6),)))
    tried: list[str] = []
    real_init = check.LocalSGD.__init__

    def placed(self, *a, device: str = "cpu", **kw):  # type: ignore[no-untyped-def]
        tried.append(device)
        if device != "cpu":
            raise torch.cuda.OutOfMemoryError(
                "CUDA out of memory. Tried to allocate 64.00 MiB (GPU 0; 12.00 GiB total)")
        real_init(self, *a, device=device, **kw)

    monkeypatch.setattr(check.LocalSGD, "__init__", placed)
    h = make_handle(tmp_path, "gpu-oom", participate=True, training_projects=("digits",),
                    training_period_s=3.0)
    h.start()
    try:
        def trained() -> bool:
            view = next(v for v in h.snapshot().training if v.project == "digits")
            return view.samples_contributed > 0 and "OutOfMemoryError" in view.device

        wait_for(trained, 60, "a step trained on the CPU after the GPU ran out of memory")
        view = next(v for v in h.snapshot().training if v.project == "digits")
        assert view.device.startswith("on the CPU: the GPU failed")
        assert "out of memory" in view.device and view.error == ""
        assert "cuda:0" in tried and tried[tried.index("cuda:0") + 1] == "cpu"
        assert not h.snapshot().errors
    finally:
        h.stop()
