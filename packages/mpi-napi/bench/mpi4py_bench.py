# The benchmark's mpi4py side, the twin of mpi.bench.ts: the same cases (cases.json), the
# same loops and the same timing, through mpi4py and numpy. Run by run.ts under mpirun -n 2.
import json
import os
import time

import numpy as np
from mpi4py import MPI

with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "cases.json")) as f:
    config = json.load(f)

world = MPI.COMM_WORLD
rank = world.Get_rank()


def measure(op, nbytes, iterations):
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

    loop(max(1, iterations // 10))
    times = []
    for _ in range(config["repeats"]):
        world.Barrier()
        start = time.perf_counter()
        loop(iterations)
        times.append((time.perf_counter() - start) / iterations / (2 if op == "sendrecv" else 1))
    return sorted(times)[len(times) // 2]


results = [
    {"op": c["op"], "bytes": c["bytes"], "seconds": measure(c["op"], c["bytes"], c["iterations"])}
    for c in config["cases"]
]
if rank == 0:
    print(json.dumps(results), flush=True)
