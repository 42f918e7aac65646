"""Which device the network's work runs on: GPUs matched between NVML and CUDA by UUID, the
rules (allowed, not cooling down, visible to torch, room for the job), and the reasons the
gardener reads."""

from __future__ import annotations

from core.device import GIB, choose_device, cuda_ordinals, vram_fractions


def test_gpus_are_matched_by_uuid_whatever_order_cuda_numbers_them() -> None:
    nvml = {0: "GPU-aaaa1111-0000-0000-0000-000000000000",
            1: "GPU-bbbb2222-0000-0000-0000-000000000000",
            2: "GPU-cccc3333-0000-0000-0000-000000000000"}
    # CUDA_VISIBLE_DEVICES=2,0 (or fastest first): CUDA's 0 is NVML's 2, CUDA's 1 NVML's 0
    cuda = ["cccc3333-0000-0000-0000-000000000000", "AAAA1111-0000-0000-0000-000000000000"]
    assert cuda_ordinals(nvml, cuda) == {2: 0, 0: 1}
    assert cuda_ordinals(nvml, []) == {}  # a CPU-only torch, or no driver
    assert cuda_ordinals({0: ""}, [""]) == {}
    assert vram_fractions({0: 0.5, 1: 0.25, 2: 1.0}, {2: 0, 0: 1}) == {1: 0.5, 0: 1.0}


def test_the_device_follows_the_rules_and_says_why() -> None:
    usable = {0: 12 * GIB, 1: 24 * GIB}
    both = {0: 0, 1: 1}
    pick = choose_device(usable, hot=frozenset(), ordinals=both, need_bytes=GIB,
                         capability={1: (8, 6), 0: (7, 5)})
    assert (pick.device, pick.gpu, pick.mixed_precision) == ("cuda:1", 1, True)
    assert pick.is_cuda and "GPU 1 (24.0 GiB usable)" in pick.reason
    # the larger one cooling down: the other, without bfloat16 on compute capability 7.5
    pick = choose_device(usable, hot=frozenset({1}), ordinals=both, need_bytes=GIB,
                         capability={1: (8, 6), 0: (7, 5)})
    assert (pick.device, pick.gpu, pick.mixed_precision) == ("cuda:0", 0, False)
    # torch sees none of them (here: CUDA missing): the CPU, and why
    pick = choose_device(usable, hot=frozenset(), ordinals={}, need_bytes=GIB)
    assert pick.device == "cpu" and pick.gpu is None and not pick.is_cuda
    assert "torch cannot use GPU 1" in pick.reason and "torch cannot use GPU 0" in pick.reason
    # a job too large for what the limits leave
    pick = choose_device({0: GIB // 2}, hot=frozenset(), ordinals={0: 0}, need_bytes=GIB)
    assert pick.device == "cpu" and "0.5 GiB usable, the job needs 1.0 GiB" in pick.reason
    # no GPU allowed at all: the tier's reason
    pick = choose_device({}, hot=frozenset(), ordinals=both, need_bytes=GIB,
                         tier_reason="GPU use is switched off in the limits")
    assert pick.reason == "on the CPU: GPU use is switched off in the limits"
