"""Start-up of the ``pyromim`` command: ``--help`` and an argument error against a bare Python.

Each command is a fresh process (``python -m pyromim ...``), timed interleaved
with the others; the script prints the median wall time of each and its ratio
to ``python -c pass`` from the same run, and ``import torch`` for scale (what
``--help`` cost while the command line imported the library at start-up).

    PYTHONPATH=. python benchmarks/bench_startup.py [REPEATS]
"""

import statistics
import subprocess
import sys
import time

COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "pyromim --help": [sys.executable, "-m", "pyromim", "--help"],
    "pyromim train (argument error)": [sys.executable, "-m", "pyromim", "train"],
    "pyromim train --help": [sys.executable, "-m", "pyromim", "train", "--help"],
    "python -c 'import torch'": [sys.executable, "-c", "import torch"],
}


def main(repeats: int = 7) -> None:
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(repeats):
        for name, command in COMMANDS.items():
            start = time.perf_counter()
            subprocess.run(command, capture_output=True, check=False)
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["python -c pass"])
    print(f"median of {repeats} interleaved runs")
    print(f"{'command':34s} {'seconds':>8s} {'/ python -c pass':>17s}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:34s} {median:8.3f} {median / base:17.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
