// Compaction of a tree store (issue 13): every file with data in the upper, compacted as an image
// is (lib/page/compaction.ts). Files are found from the upper's records, not by walking the tree.
import { compactFile, type CompactProgress, type CompactResult } from '../page/compaction.js'
import { Places } from './places.js'
import type { TreeParts } from './tree-parts.js'

export async function compactTree(p: TreeParts, options: { signal?: AbortSignal | undefined; onProgress?: ((progress: CompactProgress) => void) | undefined }): Promise<CompactResult & { files: number }> {
  const total: CompactResult & { files: number } = { files: 0, dataPages: 0, toLower: 0, toZero: 0, bytesFreed: 0 }
  const inodes = p.ns.inodesWithData()
  const progress: CompactProgress = { done: 0, total: inodes.length }
  for (const ino of inodes) {
    p.core.checkWritable('compact')
    // Where the object shows now (it may have been removed since the list was read).
    const path = new Places(p.ns, p.lower, p.rootIno).of(ino)
    const entry = path === null ? undefined : p.resolver.resolve(p.begin(path, 'compact'), 'compact')
    if (entry?.ino === ino && entry.type === 'file') {
      const node = p.acquire(entry)
      try {
        if (node.paged) {
          const paged = node.paged
          const r = await compactFile(paged, () => p.nodes.commitNow(node), {
            signal: options.signal,
            checkWritable: () => p.core.checkWritable('compact'),
            progress: () => {},
          })
          total.files++
          total.dataPages += r.dataPages
          total.toLower += r.toLower
          total.toZero += r.toZero
          total.bytesFreed += r.bytesFreed
        }
      } finally {
        p.releaseNode(node)
      }
    }
    progress.done++
    options.onProgress?.({ ...progress })
  }
  return total
}
