// The process grid (the tutorial's process_group_manager.py): world ranks laid out as a
// dp x pp x tp grid, rank = (dp_rank * pp_size + pp_rank) * tp_size + tp_rank, so tensor-parallel
// ranks are neighbours (they talk most), and one sub-communicator per dimension.
import { type Comm, init } from "@picotron/mpi-napi";

export class ProcessGroupManager {
  readonly global_rank: number;
  readonly world_size: number;
  readonly dp_rank: number;
  readonly pp_rank: number;
  readonly tp_rank: number;
  readonly world_group: Comm;
  readonly tp_group: Comm;
  readonly pp_group: Comm;
  readonly dp_group: Comm;
  readonly pp_dp_group: Comm; // all ranks of one tp index: every replica's pipeline stages
  readonly tp_group_ids: number[];
  readonly pp_group_ids: number[];
  readonly dp_group_ids: number[];
  readonly tp_world_size: number;
  readonly pp_world_size: number;
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

  constructor(world: Comm, dp_size: number, pp_size: number, tp_size: number) {
    this.global_rank = world.rank;
    this.world_size = world.size;
    if (world.size !== dp_size * pp_size * tp_size)
      throw new Error(`world size ${world.size} != dp ${dp_size} x pp ${pp_size} x tp ${tp_size}`);
    const rankOf = (dp: number, pp: number, tp: number) => (dp * pp_size + pp) * tp_size + tp;
    this.tp_rank = this.global_rank % tp_size;
    this.pp_rank = Math.floor(this.global_rank / tp_size) % pp_size;
    this.dp_rank = Math.floor(this.global_rank / (tp_size * pp_size));
    const { dp_rank: d, pp_rank: p, tp_rank: t } = this;
    // split(color, key): ranks with the same color form a group, ordered by key
    this.world_group = world;
    this.tp_group = world.split(d * pp_size + p, t)!;
    this.pp_group = world.split(d * tp_size + t, p)!;
    this.dp_group = world.split(p * tp_size + t, d)!;
    this.pp_dp_group = world.split(t, d * pp_size + p)!;
    const range = (n: number) => Array.from({ length: n }, (_, i) => i);
    this.tp_group_ids = range(tp_size).map((i) => rankOf(d, p, i));
    this.pp_group_ids = range(pp_size).map((i) => rankOf(d, i, t));
    this.dp_group_ids = range(dp_size).map((i) => rankOf(i, p, t));
    this.tp_world_size = this.tp_group.size;
    this.tp_first_rank = this.tp_group_ids[0]!;
    this.tp_last_rank = this.tp_group_ids.at(-1)!;
    this.pp_world_size = this.pp_group.size;
    this.pp_first_rank = this.pp_group_ids[0]!;
    this.pp_last_rank = this.pp_group_ids.at(-1)!;
    this.pp_is_first_stage = p === 0;
    this.pp_is_last_stage = p === pp_size - 1;
    this.pp_next_rank = this.pp_is_last_stage ? null : rankOf(d, p + 1, t);
    this.pp_prev_rank = this.pp_is_first_stage ? null : rankOf(d, p - 1, t);
    this.dp_world_size = this.dp_group.size;
    this.dp_first_rank = this.dp_group_ids[0]!;
    this.dp_last_rank = this.dp_group_ids.at(-1)!;
  }

  toString(): string {
    return `DP(${this.dp_world_size})-PP(${this.pp_world_size})-TP(${this.tp_world_size})-Rank(${this.global_rank})`;
  }
}

/** The process-wide manager, as the tutorial's `pgm.process_group_manager`. */
export let process_group_manager: ProcessGroupManager;

export function setup_process_group_manager(dp_size: number, pp_size: number, tp_size: number) {
  process_group_manager = new ProcessGroupManager(init(), dp_size, pp_size, tp_size);
  return process_group_manager;
}
