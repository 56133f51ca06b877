// Times are exact to the nanosecond (SPEC §6): nanoseconds since the epoch as a bigint, the way
// node:fs reports them with { bigint: true } (`mtimeNs`). A double of milliseconds cannot hold
// them (.123456789 s comes back as .123456787), so milliseconds are only ever derived.

const NS_PER_SEC = 1_000_000_000n

/** Whole seconds (rounded down: negative before 1970) and nanoseconds in [0, 1e9). */
export interface Timespec {
  sec: number
  nsec: number
}

export function splitNs(ns: bigint): Timespec {
  let sec = ns / NS_PER_SEC
  let nsec = ns % NS_PER_SEC
  if (nsec < 0n) {
    sec -= 1n
    nsec += NS_PER_SEC
  }
  return { sec: Number(sec), nsec: Number(nsec) }
}

export function joinNs(sec: number, nsec: number): bigint {
  return BigInt(sec) * NS_PER_SEC + BigInt(nsec)
}

/** An ISO 8601 time with all nine digits of the nanoseconds. */
export function formatNs(ns: bigint): string {
  const { sec, nsec } = splitNs(ns)
  return `${new Date(sec * 1000).toISOString().slice(0, 19)}.${String(nsec).padStart(9, '0')}Z`
}

/** Milliseconds as node:fs computes `mtimeMs` from the same time (sec × 1e3 + nsec / 1e6). */
export function msOfNs(ns: bigint): number {
  const { sec, nsec } = splitNs(ns)
  return sec * 1e3 + nsec / 1e6
}

/** A time given in (fractional) milliseconds, to the nearest nanosecond. */
export function nsOfMs(ms: number): bigint {
  const sec = Math.floor(ms / 1000)
  return joinNs(sec, 0) + BigInt(Math.round((ms - sec * 1000) * 1e6))
}

// The wall clock at nanosecond resolution: Date.now() plus the monotonic clock's progress since
// it last ticked (two writes in one millisecond get different mtimes, as on ext4; `make` compares
// them). Re-anchored whenever the two disagree by more than a millisecond (the clock was set).
let originNs = BigInt(Date.now()) * 1_000_000n
let originHr = process.hrtime.bigint()

/** Now, in nanoseconds since the epoch. */
export function nowNs(): bigint {
  const hr = process.hrtime.bigint()
  const estimate = originNs + (hr - originHr)
  const wall = BigInt(Date.now()) * 1_000_000n
  const drift = estimate - wall
  if (drift > 1_000_000n || drift < -1_000_000n) {
    originNs = wall
    originHr = hr
    return wall
  }
  return estimate
}
