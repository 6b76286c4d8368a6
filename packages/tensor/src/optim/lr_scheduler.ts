// Learning-rate schedules, stepped once per optimizer step.
export interface Schedule {
  /** The learning rate for optimizer step `step` (0-based). */
  lrAt(step: number): number;
}

export function constantLR(lr: number): Schedule {
  return { lrAt: () => lr };
}

/** Linear warmup from 0 over `warmupSteps`, then cosine decay to `minLr` at `totalSteps`. */
export function warmupCosineLR(lr: number, warmupSteps: number, totalSteps: number, minLr = 0): Schedule {
  if (warmupSteps < 0 || totalSteps <= 0 || warmupSteps > totalSteps) {
    throw new RangeError(
      `warmupCosineLR: need 0 <= warmup (${warmupSteps}) <= total (${totalSteps}) and total > 0`,
    );
  }
  return {
    lrAt(step) {
      if (step < warmupSteps) return (lr * (step + 1)) / warmupSteps;
      const progress = Math.min(1, (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps));
      return minLr + 0.5 * (lr - minLr) * (1 + Math.cos(Math.PI * progress));
    },
  };
}
