"""What more threads and cores could buy a dbt build: its critical path, from the artifacts of a run.

Reads `manifest.json` and `run_results.json` of the last dbt invocation (default
dbt_project/target) and prints the summed node time (the work), the critical path (the longest chain
of dependent nodes, each at its measured time: the build's wall time with unlimited threads and
cores, if each statement ran as fast as it did) and the heaviest nodes on that path. Under
`dbt build` a model's children wait for its tests as well, so a test of a parent is an edge to the
child (what dbt does for single-parent tests; a multi-parent test is counted on the child of all its
parents).

    .venv/bin/python benchmarks/dbt_critical_path.py [--target DIR] [--top 10]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def critical_path(manifest: dict, results: list[dict]) -> tuple[float, float, list[tuple[str, float]]]:
    """(summed node seconds, critical-path seconds, the path's nodes with their seconds, first to last)."""
    seconds = {r["unique_id"]: r.get("execution_time") or 0.0 for r in results}
    nodes = {**manifest["nodes"], **manifest.get("unit_tests", {}), **manifest.get("exposures", {})}
    parents = {n: [p for p in nodes.get(n, {}).get("depends_on", {}).get("nodes", []) if p in seconds] for n in seconds}
    tests_of: dict[str, list[str]] = {}
    for n, ps in parents.items():
        if n.startswith(("test.", "unit_test.")):
            for p in ps:
                tests_of.setdefault(p, []).append(n)

    ancestors: dict[str, set[str]] = {}

    def upstream(n: str) -> set[str]:  # over the dependencies alone (no test edges: no cycles)
        if n not in ancestors:
            ancestors[n] = set(parents[n]).union(*(upstream(p) for p in parents[n]))
        return ancestors[n]

    def preds(n: str) -> list[str]:
        direct = parents[n]
        if n.startswith(("test.", "unit_test.")):
            return direct
        # a parent's tests, when everything they read is upstream of the node
        return direct + [t for p in direct for t in tests_of.get(p, []) if set(parents[t]) <= upstream(n)]

    sys.setrecursionlimit(10_000)
    finish: dict[str, tuple[float, str | None]] = {}

    def done(n: str) -> float:
        if n not in finish:
            best = max(((done(p), p) for p in preds(n)), default=(0.0, None))
            finish[n] = (best[0] + seconds[n], best[1])
        return finish[n][0]

    end = max(seconds, key=done)
    path, n = [], end
    while n is not None:
        path.append((n, seconds[n]))
        n = finish[n][1]
    return sum(seconds.values()), finish[end][0], path[::-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", type=Path, default=Path(__file__).resolve().parents[1] / "dbt_project" / "target")
    parser.add_argument("--top", type=int, default=10)
    args = parser.parse_args()
    manifest = json.loads((args.target / "manifest.json").read_text())
    run = json.loads((args.target / "run_results.json").read_text())
    total, longest, path = critical_path(manifest, run["results"])
    print(f"{len(run['results'])} nodes, wall {run.get('elapsed_time', 0):.1f} s, summed node time {total:.1f} s, "
          f"critical path {longest:.1f} s over {len(path)} nodes (the wall time with unlimited threads)")
    for n, s in sorted(path, key=lambda x: -x[1])[:args.top]:
        print(f"    {s:6.2f} s  {n}")


if __name__ == "__main__":
    main()
