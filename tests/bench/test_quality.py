"""The quality benchmarks' shared results file."""

import json

from aslfs_pl.bench.quality import Results


def test_benchmark_results_shared_by_two_processes_keep_every_row(tmp_path):
    row = {"final": 0.5, "best": 0.6, "epochs": 1, "seconds": 60.0}
    a, b = Results(tmp_path / "r.json"), Results(tmp_path / "r.json")  # two lanes, one file
    a.add("baseline seed 42", row)
    b.add("baseline seed 43", row)  # b never saw a's row: it is merged, not overwritten
    a.add("ema seed 42", row)
    rows = set(json.loads((tmp_path / "r.json").read_text()))
    assert rows == {"baseline seed 42", "baseline seed 43", "ema seed 42"}
    assert "baseline seed 43" in a and "| ema seed 42 | 0.500 | 0.600 | 1 | 1.0 |" in a.table()
