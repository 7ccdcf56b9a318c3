"""The course benchmark (tests/benchmark.py) runs in its quick mode and writes a complete table.

Speed is never asserted here: only that every row is present, each with a figure, a limit and a ratio,
or a reason why not.
"""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILE_SECTIONS = {"Out-of-core", "Storage", "Episodes 10–12", "Cost against size"}


def test_quick_benchmark_writes_a_complete_table(tmp_path):
    run = subprocess.run([sys.executable, str(ROOT / "tests" / "benchmark.py"), "--quick", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    data = json.loads((tmp_path / "benchmark.json").read_text())
    markdown = (tmp_path / "benchmark.md").read_text()
    assert data["hardware"] and "load average" in data["load_before"]
    rows = data["rows"]
    assert {r["section"] for r in rows} == set(data["sections"]), "a section has no row"
    labs = sorted(p.stem for p in (ROOT / "labs").glob("[0-9][0-9]_*.py"))
    assert [r["figure"] for r in rows if r["section"] == "Lab wall times"] == labs
    for row in rows:
        assert row["figure"] and row["measured"] and row["limit"], row
        if row["ratio"] == "—":
            assert row["note"], f"{row['figure']}: no ratio and no reason"
        else:
            assert row["ratio_value"] >= 0, row
        if row["flag"]:
            assert row["note"].startswith("**LOW:**") and len(row["note"]) > 15, row
        assert f"| {row['figure']} |" in markdown.replace("\\|", "|"), row["figure"]
    assert data["hardware"] in markdown
    # a ratio of two rates or times that read files (not a memory peak against its limit) names how its limit was measured: processes, cache, passes
    for row in rows:
        if row["section"] in FILE_SECTIONS and row["ratio"] != "—" and row["unit"] in ("MB/s", "×", "s/GB"):
            assert row["same"] and len(row["same"]) == 3, f"{row['figure']}: its limit names no processes/cache/passes"
            processes, cache, passes = row["same"]
            assert "process" in processes and ("cold" in cache or "warm" in cache.lower()) and "pass" in passes, row
            assert ", ".join(row["same"]) in row["limit"], row
    # the out-of-core mean is judged against plain processes doing the same work, cold where the OS allows
    ooc = [r for r in rows if r["section"] == "Out-of-core" and r["figure"].startswith("full mean")]
    assert len(ooc) == 3 and all("plain processes" in r["limit"] for r in ooc), ooc
    assert all("DIFFER" not in r["note"] for r in ooc), "the Dask means and the plain processes' means differ"
