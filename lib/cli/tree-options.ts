// Command-line values of tree-mode commands.
import { z } from 'zod'

/** Permission bits in octal, as chmod takes them: 644, 0755, 4755. */
export const modeValue = z
  .string()
  .regex(/^0?[0-7]{1,4}$/, 'must be octal permission bits, e.g. 644 or 4755')
  .transform((text) => parseInt(text, 8))
