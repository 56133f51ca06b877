// Sizes of every case: the default run uses the sizes the issue asks for; --quick scales them down.

const KiB = 1024
const MiB = 1024 * KiB
const GiB = 1024 * MiB
const TiB = 1024 * GiB

export interface Config {
  quick: boolean
  /** Repetitions of each paired measurement (the median is reported). */
  reps: number
  pageSize: number
  /** The lower with real data in it (cases 1–4, 7). */
  lowerBytes: number
  /** Case 1: size of one sequential read. */
  seqReadBytes: number
  /** Case 2: random page reads per repetition. */
  randomReads: number
  /** Case 3: random page writes per repetition, without and with flushes. */
  randomWrites: number
  flushedWrites: number
  flushEvery: number
  /** Case 4: fresh stores per variant. */
  freshStores: number
  /** Cases 5 and 6: the sparse lower, the copied-page counts, the write+flush samples. */
  sparseLowerBytes: number
  flushCostPages: [number, number]
  flushCostSamples: number
  mapPages: number
  /** Case 7: random 4 KiB writes per run. */
  qemuWrites: number
  qemuReps: number
}

export const DEFAULT_CONFIG: Config = {
  quick: false,
  reps: 5,
  pageSize: 4 * KiB,
  lowerBytes: GiB,
  seqReadBytes: MiB,
  randomReads: 50_000,
  randomWrites: 20_000,
  flushedWrites: 64 * 100,
  flushEvery: 64,
  freshStores: 9,
  sparseLowerBytes: TiB,
  flushCostPages: [1_000, 1_000_000],
  flushCostSamples: 200,
  mapPages: 1_000_000,
  qemuWrites: 2_000,
  qemuReps: 3,
}

export const QUICK_CONFIG: Config = {
  quick: true,
  reps: 3,
  pageSize: 4 * KiB,
  lowerBytes: 128 * MiB,
  seqReadBytes: MiB,
  randomReads: 10_000,
  randomWrites: 10_000,
  flushedWrites: 64 * 20,
  flushEvery: 64,
  freshStores: 5,
  sparseLowerBytes: 64 * GiB,
  flushCostPages: [1_000, 100_000],
  flushCostSamples: 50,
  mapPages: 100_000,
  qemuWrites: 500,
  qemuReps: 2,
}
