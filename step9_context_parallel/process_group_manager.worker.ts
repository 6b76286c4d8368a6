// Test worker: builds the dp x pp x cp x tp grid on every rank and prints, per rank, one JSON line with
// its coordinates, the world ranks in each of its groups (gathered over the group itself) and its neighbours.
import { ensureLaunched } from "@picotron/mpi-napi/launcher";
import type { Comm } from "@picotron/mpi-napi";
import { setup_process_group_manager } from "./process_group_manager.ts";

const [dp, pp, cp, tp] = process.argv.slice(2).map(Number) as [number, number, number, number];
await ensureLaunched({ worldSize: dp * pp * cp * tp });
const g = setup_process_group_manager(dp, pp, cp, tp);

function members(group: Comm): number[] {
  const out = new Int32Array(group.size);
  group.allgather(new Int32Array([g.global_rank]), out);
  return Array.from(out);
}

console.log(
  JSON.stringify({
    rank: g.global_rank,
    coords: [g.dp_rank, g.pp_rank, g.cp_rank, g.tp_rank],
    tp: members(g.tp_group),
    cp: members(g.cp_group),
    pp: members(g.pp_group),
    dp: members(g.dp_group),
    cp_dp: members(g.cp_dp_group),
    pp_dp: members(g.pp_dp_group),
    ids: {
      tp: g.tp_group_ids,
      cp: g.cp_group_ids,
      pp: g.pp_group_ids,
      dp: g.dp_group_ids,
      cp_dp: g.cp_dp_group_ids,
    },
    sizes: [g.dp_world_size, g.pp_world_size, g.cp_world_size, g.tp_world_size, g.cp_dp_world_size],
    ring: [g.cp_recv_rank, g.cp_send_rank],
    neighbours: [g.pp_prev_rank, g.pp_next_rank],
    stages: [g.pp_is_first_stage, g.pp_is_last_stage],
    name: g.toString(),
  }),
);
