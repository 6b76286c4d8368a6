export { AdamW, type AdamWOptions } from "./adamw.ts";
export { clipGradNorm, gradSquaredSum } from "./clip.ts";
export { constantLR, warmupCosineLR, type Schedule } from "./lr_scheduler.ts";
export { DivergenceGuard, lr_schedule, optimizer_args, type ScheduleArgs } from "./recipe.ts";
