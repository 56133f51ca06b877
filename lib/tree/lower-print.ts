// What the upper records of a lower file when it first records anything (size, mtime, blocks, and
// a hash of sampled bytes once pages are copied up): checked before that file's bytes are served
// again, so copied pages never mix with a different lower file.
import { z } from 'zod'
import { formatNs, msOfNs } from '../time-ns.js'

export interface LowerPrint {
  size: number
  /** The lower's mtime in nanoseconds; stores before schema 30 recorded milliseconds only. */
  mtime: { ns: bigint } | { ms: number }
  blocks: number
  /** Hash of sampled blocks, taken when the first page was copied up. */
  sample?: string
}

// On disk (JSON): mtimeNs as a decimal string (JSON has no 64-bit integers), or a legacy mtimeMs.
const printSchema = z
  .strictObject({
    size: z.number().int().nonnegative(),
    mtimeNs: z.string().regex(/^-?\d{1,30}$/).optional(),
    mtimeMs: z.number().optional(),
    blocks: z.number().int().nonnegative(),
    sample: z.string().optional(),
  })
  .refine((p) => (p.mtimeNs === undefined) !== (p.mtimeMs === undefined), 'exactly one of mtimeNs and mtimeMs')

export function encodePrint(p: LowerPrint): string {
  const mtime = 'ns' in p.mtime ? { mtimeNs: p.mtime.ns.toString() } : { mtimeMs: p.mtime.ms }
  return JSON.stringify({ size: p.size, ...mtime, blocks: p.blocks, ...(p.sample === undefined ? {} : { sample: p.sample }) })
}

/** The print stored as `json`, or null if it is not one a correct store could have written. */
export function decodePrint(json: string): LowerPrint | null {
  let parsed: unknown
  try {
    parsed = JSON.parse(json)
  } catch {
    return null
  }
  const result = printSchema.safeParse(parsed)
  if (!result.success) return null
  const p = result.data
  const print: LowerPrint = { size: p.size, mtime: p.mtimeNs !== undefined ? { ns: BigInt(p.mtimeNs) } : { ms: p.mtimeMs! }, blocks: p.blocks }
  if (p.sample !== undefined) print.sample = p.sample
  return print
}

/** Whether a lower mtime is the one recorded (a legacy print compares as node:fs's mtimeMs would). */
export function sameMtime(print: LowerPrint, mtimeNs: bigint): boolean {
  return 'ns' in print.mtime ? print.mtime.ns === mtimeNs : print.mtime.ms === msOfNs(mtimeNs)
}

/** What differs between the print and a lower file's size and mtime now, for messages. */
export function printChanges(print: LowerPrint, size: number, mtimeNs: bigint): string[] {
  const changes: string[] = []
  if (print.size !== size) changes.push(`size ${print.size} → ${size} bytes`)
  if (!sameMtime(print, mtimeNs)) {
    const was = 'ns' in print.mtime ? formatNs(print.mtime.ns) : new Date(print.mtime.ms).toISOString()
    changes.push(`mtime ${was} → ${formatNs(mtimeNs)}`)
  }
  return changes
}
