// @picotron/mpi-napi: picotron-ts's torch.distributed, over the system's OpenMPI.
//
//   const world = init();                    // dist.init_process_group
//   world.allreduce(grads, "avg");           // dist.all_reduce (in place, zero-copy)
//   const tp = world.split(color, key);      // dist.new_group / new_subgroups
//   const req = world.isend(buf, peer); ...; req.wait();
//
// Start the job with the launcher (./launcher.ts), our torchrun.
export { Comm, type Buffer, type ReduceOp } from "./comm.ts";
export { Request, waitAll } from "./request.ts";
export { init, world, finalize, setCollectiveTimeout, collectiveTimeout } from "./runtime.ts";
export { DEFAULT_COLLECTIVE_TIMEOUT } from "./timeout.ts";
export { isUnderMpi, worldRank, localRank, localWorldSize, threadsPerRank } from "./env.ts";
export { printIf, log0 } from "./log.ts";
