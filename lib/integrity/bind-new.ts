// create({ bindLower: true }), for both kinds: the new store bound before it is first opened.
import { fromSystemError, PagecowError } from '../errors.js'

/** create({ bindLower }): record the lower's page sums in the new store (see bindLower). */
export async function bindNew(path: string, onProgress: ((p: { doneBytes: number; totalBytes: number }) => void) | undefined): Promise<void> {
  const { bindLower } = await import('../integrity/bind-lower.js')
  try {
    await bindLower(path, onProgress ? { onProgress } : {})
  } catch (err) {
    const e = fromSystemError(err, `binding the lower of ${path}`)
    throw new PagecowError(e.code, `${e.message} (the store was created, unbound: bind it with \`pagecow verify --record\`)`, { cause: err })
  }
}

