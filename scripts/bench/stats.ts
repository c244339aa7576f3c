/** Percentiles of what the bench times itself (wrk reports its own). */

export interface Percentiles {
  p50: number;
  p99: number;
  max: number;
  samples: number;
}

/** Each percentile is a sample (the one at q × n in sorted order); NaN when there are none. */
export function percentiles(samples: number[]): Percentiles {
  const sorted = [...samples].sort((x, y) => x - y);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
  return { p50: at(0.5), p99: at(0.99), max: sorted.at(-1) ?? Number.NaN, samples: sorted.length };
}
