// The process grid (the tutorial's process_group_manager.py): world ranks laid out as a
// dp x pp x cp x tp grid, rank = ((dp_rank * pp_size + pp_rank) * cp_size + cp_rank) * tp_size + tp_rank,
// so tensor-parallel ranks are neighbours (they talk most), context-parallel ranks next (the ring passes
// K/V every layer), and one sub-communicator per dimension.
import { type Comm, init } from "@picotron/mpi-napi";

export class ProcessGroupManager {
  readonly global_rank: number;
  readonly world_size: number;
  readonly dp_rank: number;
  readonly pp_rank: number;
  readonly tp_rank: number;
  readonly cp_rank: number;
  readonly world_group: Comm;
  readonly tp_group: Comm;
  readonly pp_group: Comm;
  readonly cp_group: Comm;
  readonly cp_dp_group: Comm; // all ranks of one (pp, tp) index: the same weights, averaging gradients
  readonly dp_group: Comm;
  readonly pp_dp_group: Comm; // all ranks of one tp index: every replica's pipeline stages
  readonly tp_group_ids: number[];
  readonly pp_group_ids: number[];
  readonly cp_group_ids: number[];
  readonly cp_dp_group_ids: number[];
  readonly dp_group_ids: number[];
  readonly tp_world_size: number;
  readonly pp_world_size: number;
  readonly cp_world_size: number;
  readonly cp_dp_world_size: number;
  readonly dp_world_size: number;
  readonly tp_first_rank: number;
  readonly tp_last_rank: number;
  readonly pp_first_rank: number;
  readonly pp_last_rank: number;
  readonly pp_is_first_stage: boolean;
  readonly pp_is_last_stage: boolean;
  readonly pp_next_rank: number | null; // world rank of this replica's next / previous stage (null at the ends)
  readonly pp_prev_rank: number | null;
  readonly dp_first_rank: number;
  readonly dp_last_rank: number;
  readonly cp_send_rank: number; // the ring's next / previous cp rank (the last sends to the first)
  readonly cp_recv_rank: number;

  constructor(world: Comm, dp_size: number, pp_size: number, cp_size: number, tp_size: number) {
    this.global_rank = world.rank;
    this.world_size = world.size;
    const product = dp_size * pp_size * cp_size * tp_size;
    if (world.size !== product)
      throw new Error(
        `world size ${world.size} != dp ${dp_size} x pp ${pp_size} x cp ${cp_size} x tp ${tp_size}`,
      );
    const rankOf = (dp: number, pp: number, cp: number, tp: number) =>
      ((dp * pp_size + pp) * cp_size + cp) * tp_size + tp;
    this.tp_rank = this.global_rank % tp_size;
    this.cp_rank = Math.floor(this.global_rank / tp_size) % cp_size;
    this.pp_rank = Math.floor(this.global_rank / (tp_size * cp_size)) % pp_size;
    this.dp_rank = Math.floor(this.global_rank / (tp_size * cp_size * pp_size));
    const { dp_rank: d, pp_rank: p, cp_rank: c, tp_rank: t } = this;
    // split(color, key): ranks with the same color form a group, ordered by key
    this.world_group = world;
    this.tp_group = world.split((d * pp_size + p) * cp_size + c, t)!;
    this.cp_group = world.split((d * pp_size + p) * tp_size + t, c)!;
    this.pp_group = world.split((d * cp_size + c) * tp_size + t, p)!;
    this.dp_group = world.split((p * cp_size + c) * tp_size + t, d)!;
    this.cp_dp_group = world.split(p * tp_size + t, d * cp_size + c)!;
    this.pp_dp_group = world.split(c * tp_size + t, d * pp_size + p)!;
    const range = (n: number) => Array.from({ length: n }, (_, i) => i);
    this.tp_group_ids = range(tp_size).map((i) => rankOf(d, p, c, i));
    this.cp_group_ids = range(cp_size).map((i) => rankOf(d, p, i, t));
    this.pp_group_ids = range(pp_size).map((i) => rankOf(d, i, c, t));
    this.dp_group_ids = range(dp_size).map((i) => rankOf(i, p, c, t));
    this.cp_dp_group_ids = range(dp_size).flatMap((i) => range(cp_size).map((j) => rankOf(i, p, j, t)));
    this.tp_world_size = this.tp_group.size;
    this.tp_first_rank = this.tp_group_ids[0]!;
    this.tp_last_rank = this.tp_group_ids.at(-1)!;
    this.cp_world_size = this.cp_group.size;
    this.cp_send_rank = this.cp_group_ids[(c + 1) % cp_size]!;
    this.cp_recv_rank = this.cp_group_ids[(c - 1 + cp_size) % cp_size]!;
    this.pp_world_size = this.pp_group.size;
    this.pp_first_rank = this.pp_group_ids[0]!;
    this.pp_last_rank = this.pp_group_ids.at(-1)!;
    this.pp_is_first_stage = p === 0;
    this.pp_is_last_stage = p === pp_size - 1;
    this.pp_next_rank = this.pp_is_last_stage ? null : rankOf(d, p + 1, c, t);
    this.pp_prev_rank = this.pp_is_first_stage ? null : rankOf(d, p - 1, c, t);
    this.dp_world_size = this.dp_group.size;
    this.cp_dp_world_size = this.cp_dp_group.size;
    this.dp_first_rank = this.dp_group_ids[0]!;
    this.dp_last_rank = this.dp_group_ids.at(-1)!;
  }

  toString(): string {
    return `DP(${this.dp_world_size})-PP(${this.pp_world_size})-CP(${this.cp_world_size})-TP(${this.tp_world_size})-Rank(${this.global_rank})`;
  }
}

/** The process-wide manager, as the tutorial's `pgm.process_group_manager`. */
export let process_group_manager: ProcessGroupManager;

export function setup_process_group_manager(
  dp_size: number,
  pp_size: number,
  cp_size: number,
  tp_size: number,
) {
  process_group_manager = new ProcessGroupManager(init(), dp_size, pp_size, cp_size, tp_size);
  return process_group_manager;
}
