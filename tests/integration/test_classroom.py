"""The classroom measurement's pieces: the per-stage breakdown, mapped-file pages, and the CLI switch."""

from __future__ import annotations

import json
import mmap
import sys

import pytest

from bertology_widgets.benchmark import classroom


def test_breakdown_is_the_uss_growth_from_stage_to_stage():
    uss = dict(zip(("start", *classroom.STAGES), (10.0, 150.0, 180.0, 200.0, 260.0, 261.0, 258.5)))
    stages = {name: {"uss_mib": value, "rss_mib": 2 * value} for name, value in uss.items()}
    assert classroom.breakdown(stages) == {"imports_torch_transformers": 140.0, "imports_bertology_widgets": 30.0,
                                           "weights": 20.0, "session": 60.0, "dashboard": 1.0,
                                           "layer0_toggle": -2.5}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/smaps")
def test_mapped_mib_counts_the_resident_pages_of_a_mapped_file(tmp_path):
    path = tmp_path / "weights.safetensors"
    path.write_bytes(b"\1" * (4 << 20))
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY) as mapped:
        assert sum(mapped[i] for i in range(0, len(mapped), 4096)) == 1024  # touch every page
        pages = classroom.mapped_mib("weights.safetensors")
        mapped[0] = 2  # written: that page becomes this process's own
        written = classroom.mapped_mib("weights.safetensors")
    assert pages["private_mib"] + pages["shared_mib"] == 4.0
    assert written["private_mib"] >= 4 / 1024
    assert classroom.mapped_mib("no-such-file.safetensors") == {"private_mib": 0.0, "shared_mib": 0.0}


def test_bench_classroom_prints_the_measurement(monkeypatch, capsys):
    from bertology_widgets.cli import main

    def fake(cache_every=None, log=print):
        log("first kernel ready")
        return {"uss_mib_per_extra_session": 370.0, "stages_second": {}}

    monkeypatch.setattr(classroom, "run_classroom", fake)
    assert main(["bench", "--classroom", "--json"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out) == {"uss_mib_per_extra_session": 370.0} and "first kernel ready" in out.err
