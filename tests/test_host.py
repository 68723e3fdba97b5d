"""Host driver (boards.host) against the pure-Python device model, with injected link faults.

Oracle: sim.golden.tiled_gemm (the bit-exact array model); the device model executes each pass
with ArrayModel.tile, the driver must reproduce tiled_gemm from the passes."""

import subprocess
import sys

import numpy as np
import pytest

from boards.faults import FaultInjector
from boards.host import Accelerator, DeviceError, LinkError, main
from boards.model import DeviceModel, ModelTransport
from boards.protocol import RESPONSE_SYNC, Command, Status, encode_frame
from sim.golden import ArrayModel, tiled_gemm

ARRAYS = [
    ArrayModel.uniform(2, 2, "exact"),
    ArrayModel.per_row(3, 2, ["exact", "truncated4c", "bam2_6"], acc_width=16,
                       overflow="saturate"),
    ArrayModel.per_col(2, 3, ["drum3", "exact", "perforated2"], signed=False),
    ArrayModel.uniform(2, 2, "truncated6c", width=12, acc_width=40),     # 2-byte operands
]


def _random_gemm(rng, array, m, k, n):
    lo, hi = array.grid[0][0].operand_range
    return rng.integers(lo, hi + 1, (m, k)), rng.integers(lo, hi + 1, (k, n))


@pytest.mark.parametrize("array", ARRAYS, ids=lambda a: f"{a.rows}x{a.cols}")
def test_gemm_equals_tiled_gemm(array):
    rng = np.random.default_rng(array.rows * 10 + array.cols)
    acc = Accelerator(ModelTransport(DeviceModel(array, max_m=3)), timeout=0.1)
    assert acc.array == array
    for m, k, n in [(1, 1, 1), (7, 5, 4), (3, 9, 7), (10, 2, 1)]:
        a, b = _random_gemm(rng, array, m, k, n)
        assert np.array_equal(acc.gemm(a, b), tiled_gemm(a, b, array))
    # extremes: saturating / wrapping accumulators across K tiles
    lo, hi = array.grid[0][0].operand_range
    a = np.full((4, 11), lo)
    b = np.full((11, 3), lo if array.signed else hi)
    assert np.array_equal(acc.gemm(a, b), tiled_gemm(a, b, array))
    assert acc.stats["resends"] == 0


def test_empty_and_invalid_inputs():
    array = ARRAYS[0]
    acc = Accelerator(ModelTransport(DeviceModel(array)), timeout=0.1)
    assert acc.gemm(np.zeros((0, 3), int), np.zeros((3, 2), int)).shape == (0, 2)
    with pytest.raises(ValueError, match="inner"):
        acc.gemm(np.zeros((2, 3), int), np.zeros((4, 2), int))
    with pytest.raises(ValueError, match="range"):
        acc.gemm(np.full((2, 2), 200), np.zeros((2, 2), int))
    with pytest.raises(ValueError, match="integers"):
        acc.gemm(np.zeros((2, 2)), np.zeros((2, 2)))


@pytest.mark.parametrize("seed", range(6))
def test_faulty_link_never_returns_a_wrong_matrix(seed):
    array = ARRAYS[1]
    faults = FaultInjector(seed, rate=0.35)
    acc = Accelerator(ModelTransport(DeviceModel(array, max_m=4), faults=faults),
                      timeout=0.01, retries=4)
    rng = np.random.default_rng(seed)
    outcomes = {"ok": 0, "raised": 0}
    for _ in range(12):
        a, b = _random_gemm(rng, array, *rng.integers(1, 9, 3))
        try:
            got = acc.gemm(a, b)
        except LinkError:
            outcomes["raised"] += 1
            continue
        assert np.array_equal(got, tiled_gemm(a, b, array))     # never silently wrong
        outcomes["ok"] += 1
    assert outcomes["ok"] >= 6
    assert acc.stats["resends"] > 0 and len(faults.log) > 20
    faults.enabled = False                                       # device recovered
    a, b = _random_gemm(rng, array, 5, 5, 5)
    assert np.array_equal(acc.gemm(a, b), tiled_gemm(a, b, array))


class _Silent:
    """A port that never answers (pyserial returns b"" on timeout)."""
    timeout = 1.0

    def __init__(self):
        self.writes = 0

    def write(self, data):
        self.writes += 1
        return len(data)

    def read(self, n=1):
        return b""


def test_timeout_raises_link_error_after_retries():
    port = _Silent()
    with pytest.raises(LinkError, match="timed out") as exc:
        Accelerator(port, timeout=0.01, retries=3)
    assert port.writes == 4
    assert "\n" not in str(exc.value)


def test_device_rejection_is_not_retried():
    transport = ModelTransport(DeviceModel(ARRAYS[0]))
    acc = Accelerator(transport, timeout=0.1)
    writes = transport.writes
    with pytest.raises(DeviceError, match="ERR_STATE"):
        acc.read(1)                                      # READ before any STREAM
    assert transport.writes == writes + 1


class _Replay(ModelTransport):
    """Answers each request twice (a stale copy follows), plus noise between frames."""

    def write(self, data):
        n = super().write(data)
        stale = encode_frame(RESPONSE_SYNC, (data[1] - 1) & 0xFF, Status.OK, b"\x00" * 4)
        self._pending[:0] = b"\x13\x37" + stale          # arrives before the real response
        return n


def test_stale_responses_and_noise_are_skipped():
    array = ARRAYS[0]
    acc = Accelerator(_Replay(DeviceModel(array)), timeout=0.1)
    rng = np.random.default_rng(0)
    a, b = _random_gemm(rng, array, 3, 3, 3)
    assert np.array_equal(acc.gemm(a, b), tiled_gemm(a, b, array))
    assert acc.stats["stale"] > 0 and acc.stats["resends"] == 0


def test_wrong_length_ok_response_is_retried():
    class Short(ModelTransport):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            self.spoil = 1

        def write(self, data):
            if data[2] == Command.READ and self.spoil:
                self.spoil -= 1
                self._pending += encode_frame(RESPONSE_SYNC, data[1], Status.OK, b"\x01")
                return len(data)
            return super().write(data)

    array = ARRAYS[0]
    acc = Accelerator(Short(DeviceModel(array)), timeout=0.1)
    a, b = np.ones((2, 2), int), np.ones((2, 2), int)
    assert np.array_equal(acc.gemm(a, b), tiled_gemm(a, b, array))
    assert acc.stats["garbled"] == 1


def test_cli_selftest_with_model(capsys):
    assert main(["--model", "3x2:truncated4c", "--selftest", "--tests", "4", "--max-dim", "7"]) \
        == 0
    assert "4/4 GEMMs match" in capsys.readouterr().out


@pytest.mark.parametrize("argv,needle", [
    (["--port", "/dev/does-not-exist-axm", "--identify"], "cannot open serial port"),
    (["--port", "loop://", "--identify", "--timeout", "0.02", "--retries", "1"], "timed out"),
    (["--model", "2x2:nosuchmult", "--identify"], "unknown multiplier"),
    (["--model", "2by2", "--identify"], "ROWSxCOLS"),
    (["--port", "loop://", "--selftest", "--tests", "0"], "argument --tests: 0 is out of range"),
    (["--port", "loop://", "--identify", "--baud", "nan"], "argument --baud: 'nan' is not an"),
])
def test_cli_errors_exit_2_with_one_line(argv, needle):
    proc = subprocess.run([sys.executable, "-m", "boards.host", *argv], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_cli_usage_error_exit_2():
    proc = subprocess.run([sys.executable, "-m", "boards.host", "--selftest"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--port" in proc.stderr
