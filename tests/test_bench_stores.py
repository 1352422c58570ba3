"""``benchmarks/bench_stores.py`` still runs, on every store, and counts its round trips.

Run for a few hundredths of a second per measurement: this checks that the script works
and prints the full table, and that the round trips it counts are the ones the stores are
built for (exact counts, not timings; timings belong to ``benchmarks/``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytest_plugins = ("servers",)


def test_benchmark_script_smoke(redis_url: str, postgres_url: str, mariadb_url: str) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bench_stores.py"),
            "--seconds",
            "0.02",
            "--processes",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=os.environ
        | {
            "MFA_BENCH_REDIS_URL": redis_url,
            "MFA_BENCH_POSTGRES_URL": postgres_url,
            "MFA_BENCH_MARIADB_URL": mariadb_url,
        },
    )
    assert done.returncode == 0, done.stderr
    table, _, rest = done.stdout.partition("Throughput against a raw-driver floor")
    throughput_floors, _, floor_table = rest.partition("Per call, one process")
    rows = _rows(table, "| store")
    # throughput next to the raw driver doing the same atomic work: every store with a
    # floor, for the workloads that have one; the floor / store ratio is the cells'
    floored = _rows(throughput_floors, "| store")
    assert set(floored) == {
        (s, w)
        for s in ("redis", "postgresql", "mariadb", "sql-sqlite", "sqlite")
        for w in ("claim", "store-verify")
    }
    for cells in floored.values():
        mine, raw = (float(cell.replace(",", "")) for cell in cells[2:4])
        assert mine > 0 and raw > 0
        assert abs(float(cells[4].rstrip("x")) - raw / mine) < 0.02 * raw / mine + 0.01
    # per call against the raw driver running the same statements: every SQL store, each
    # operation, a positive cost on both sides and their ratio
    floors = _rows(floor_table, "| sql store")
    operations = ("get_failures", "claim", "store-verify")
    assert set(floors) == {
        (s, o) for s in ("postgresql", "mariadb", "sql-sqlite") for o in operations
    }
    for cells in floors.values():
        mine, raw = (float(cell.replace(",", "")) for cell in cells[2:4])
        assert mine > 0 and raw > 0
        assert abs(float(cells[4].rstrip("x")) - mine / raw) < 0.02 * mine / raw + 0.01
    stores = ("redis", "postgresql", "sql-sqlite", "sqlite", "mariadb")
    workloads = (
        "claim",
        "admit+reset",
        "verify",
        "wrong+verify",
        "recovery",
        "oob",
        "store-verify",
    )
    assert set(rows) == {(s, w) for s in stores for w in workloads}
    # round trips per call: one per store call (verify, and store-verify without the
    # service = the admission fused with the list, then the claim fused with the reset; a
    # wrong code is the admission alone; oob = put, then mark used)
    for store in ("redis", "postgresql"):
        assert rows[store, "claim"][-1] == "1.00"
        assert rows[store, "admit+reset"][-1] == "2.00"
        assert rows[store, "verify"][-1] == "2.00"
        assert rows[store, "store-verify"][-1] == "2.00"
        assert rows[store, "wrong+verify"][-1] == "3.00"
        assert rows[store, "oob"][-1] == "2.00"
    # recovery: one per consume, plus a set replacement every tenth call (one script on
    # Redis; a transaction of a few statements on PostgreSQL)
    assert rows["redis", "recovery"][-1] == "1.10"
    assert 1.1 <= float(rows["postgresql", "recovery"][-1]) < 2
    assert rows["sqlite", "claim"][-1] == "in-process"
    # MariaDB: a statement and its COMMIT; verify = the locked admission (read, write, the
    # credentials, commit) then the claim and the reset in one transaction
    assert rows["mariadb", "claim"][-1] == "2.00"
    assert rows["mariadb", "verify"][-1] == "7.00"
    assert rows["mariadb", "store-verify"][-1] == "7.00"


def _rows(text: str, header: str) -> dict[tuple[str, str], list[str]]:
    """The rows of the Markdown table in ``text`` (its header starts with ``header``)."""
    return {
        (cells[0], cells[1]): cells
        for line in text.splitlines()
        if line.startswith("| ") and not line.startswith(header)
        for cells in [[cell.strip() for cell in line.strip("|").split("|")]]
    }


def test_import_benchmark_on_the_servers(
    redis_url: str, postgres_url: str, mariadb_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """benchmarks/bench_import.py on the server stores (a handful of rows; timings are not
    checked): each gets a table row with a positive rate."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "bench_import", ROOT / "benchmarks" / "bench_import.py"
    )
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.REDIS_URL = redis_url
    bench.POSTGRES_URL = postgres_url
    bench.MARIADB_URL = mariadb_url
    assert bench.main(["--rows", "10", "--stores", "postgresql,mariadb,redis"]) == 0
    captured = capsys.readouterr()
    rates = {cells[0]: cells[1] for cells in _rows(captured.out, "| store").values()}
    assert set(rates) == {"postgresql", "mariadb", "redis"}, captured.err
    assert all(float(rate.replace(",", "")) > 0 for rate in rates.values()), rates
