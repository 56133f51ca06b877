// The shape of one benchmark case: an id to select it by, its group (file) and its run.
import type { BenchContext } from './context.js'
import type { Row } from './row.js'

export interface BenchCase {
  /** Selects the case on the command line (`npm run bench -- seq-read`). */
  id: string
  /** The file it lives in; selecting the group runs all its cases. */
  group: string
  /** Its number in issue 2. */
  number: number
  title: string
  run(ctx: BenchContext): Promise<Row[]>
}
