"""Seeded blocks restore every generator; checkpoints hold the RNG state that resuming needs."""

from __future__ import annotations

import pytest
import torch

from setae.rng import preserved, rng_state, seeded, set_rng_state


def test_seeded_block_is_reproducible_and_leaves_the_outer_stream_alone():
    torch.manual_seed(1)
    expected = torch.rand(3)
    torch.manual_seed(1)
    with seeded(7):
        first = torch.rand(2)
    with seeded(7):
        assert torch.equal(torch.rand(2), first)
    with preserved():
        torch.rand(5)
    assert torch.equal(torch.rand(3), expected)


def test_rng_state_round_trip_cpu_and_old_bare_tensor_format():
    torch.manual_seed(3)
    state = rng_state(torch.device("cpu"))
    a = torch.rand(4)
    set_rng_state(state, torch.device("cpu"))
    assert torch.equal(torch.rand(4), a)
    set_rng_state(state["cpu"], torch.device("cpu"))  # checkpoints that stored the CPU state alone
    assert torch.equal(torch.rand(4), a)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_stream_survives_a_seeded_block_and_a_state_round_trip():
    device = torch.device("cuda")
    torch.manual_seed(5)
    expected = torch.rand(3, device=device)
    torch.manual_seed(5)
    with seeded(9):
        torch.rand(3, device=device)
    assert torch.equal(torch.rand(3, device=device), expected)
    state = rng_state(device)
    b = torch.rand(3, device=device)
    torch.rand(10, device=device)
    set_rng_state(state, device)
    assert torch.equal(torch.rand(3, device=device), b)
