// The running pagecow's version, from package.json.
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)

/** This pagecow's version, recorded in every store it creates. */
export const VERSION: string = (require('../package.json') as { version: string }).version
