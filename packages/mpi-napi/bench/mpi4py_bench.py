# The benchmark's mpi4py side, the twin of mpi.bench.ts: the same case of cases.json, the
# same loop and the same timing (the fastest of many short timed loops), through mpi4py and
# numpy. Run by run.ts as `mpirun -n 2 python3 mpi4py_bench.py CASE_INDEX`; rank 0 prints
# the seconds per operation.
import json
import os
import sys
import time

import numpy as np
from mpi4py import MPI

with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "cases.json")) as f:
    # `mpi4py_bench.py CASE_INDEX hosts` picks from the cross-host cases (see cases.json).
    cases = json.load(f)["hostsCases" if sys.argv[2:] == ["hosts"] else "cases"]

world = MPI.COMM_WORLD
rank = world.Get_rank()


def measure(op, nbytes, iterations, samples):
    buf = np.zeros(nbytes // 4, dtype=np.float32)

    def loop(n):
        if op == "allreduce":
            for _ in range(n):
                world.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        elif rank == 0:
            for _ in range(n):
                world.Send(buf, dest=1)
                world.Recv(buf, source=1)
        else:
            for _ in range(n):
                world.Recv(buf, source=0)
                world.Send(buf, dest=0)

    loop(max(1, iterations * samples // 10))
    fastest = float("inf")
    for _ in range(samples):
        world.Barrier()
        start = time.perf_counter()
        loop(iterations)
        fastest = min(fastest, time.perf_counter() - start)
    return fastest / iterations / (2 if op == "sendrecv" else 1)


case = cases[int(sys.argv[1])]
seconds = measure(case["op"], case["bytes"], case["iterations"], case["samples"])
if rank == 0:
    print(seconds, flush=True)
