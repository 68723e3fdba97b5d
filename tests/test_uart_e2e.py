"""End to end in RTL simulation: host driver -> UART -> AcceleratorTop (systolic array) -> UART
-> host driver, on Verilator and Icarus (cocotb testbench sim/tb/tb_uart_e2e.py).

Oracles: sim.golden.tiled_gemm for every GEMM; boards.model.DeviceModel (protocol model with the
golden arithmetic) for the exact response bytes of hand-made frames; the status each of those
frames must get, written from the protocol definition (boards.rtlsim.status_cases).
"""

import pytest

from boards.protocol import Status
from boards.rtlsim import run_uart_e2e, status_cases
from sim.golden import ArrayModel
from sim.tb.runner import why_unavailable

# 3x2 (non-square), a different multiplier per row (two with mult(0, 0) != 0, so inactive rows
# must really be inactive), a 16-bit saturating accumulator (saturates inside a pass)
ARRAY = ArrayModel.per_row(3, 2, ["exact", "truncated4c", "bam2_6"], acc_width=16,
                           overflow="saturate")

# Icarus is slower: a smaller workload, same coverage of the paths
WORKLOAD = {
    "verilator": dict(gemms=[(5, 7, 5), (9, 3, 2)], fault_gemms=[(4, 5, 3)] * 3),
    "icarus": dict(gemms=[(5, 7, 3)], fault_gemms=[(4, 5, 3)] * 2),
}


def test_status_cases_cover_every_status():
    cases = status_cases(ARRAY, max_m=4)
    assert {c[2] for c in cases} == {int(s) for s in Status}


@pytest.mark.rtl
@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_host_drives_rtl_over_uart(simulator, tmp_path):
    reason = why_unavailable(simulator)
    if reason:
        pytest.skip(reason)
    report = run_uart_e2e(simulator, tmp_path, array=ARRAY, divisor=8, max_m=4,
                          fault_rate=0.2, retries=12, seed=1, **WORKLOAD[simulator])
    assert report["passed"], (report["errors"][:3], report["mismatches"][:3])
    phases = report["phases"]
    # every hand-made frame got the status the protocol prescribes (and the model's bytes)
    for case in phases["status"]:
        assert case["status"] == case["expected"], case
    # clean link: all GEMMs right, first time
    assert all(g["outcome"] == "ok" for g in phases["clean"]["gemms"])
    assert phases["clean"]["stats"]["resends"] == 0
    assert phases["clean"]["info"]["rows"] == 3 and phases["clean"]["info"]["cols"] == 2
    # faulty link: faults of several kinds in both directions were injected and recovered from;
    # no GEMM came back wrong (a wrong one would be in report["mismatches"])
    faults = report["faults"]
    assert any(k.startswith("to_device") for k in faults)
    assert any(k.startswith("to_host") for k in faults)
    assert len({k.split(":")[1] for k in faults}) >= 4
    assert phases["faults"]["stats"]["resends"] > 0
    assert all(g["outcome"] in ("ok", "raised") for g in phases["faults"]["gemms"])
    assert sum(g["outcome"] == "ok" for g in phases["faults"]["gemms"]) >= 1
    # the device answers correctly after the faults
    assert phases["recovery"]["gemms"][0]["outcome"] == "ok"
