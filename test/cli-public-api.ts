// The CLI is a thin layer over the public API: whatever it imports from the library (from the
// module that defines it, so that a command loads only what it uses) is something lib/index.ts
// exports. It never reaches into the store's tables or internals.
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'

const LIB = fileURLToPath(new URL('../lib/', import.meta.url))
const CLI = join(LIB, 'cli')

/** Every name lib/index.ts exports, values and types. */
function publicNames(): Set<string> {
  const names = new Set<string>()
  for (const [, list] of readFileSync(join(LIB, 'index.ts'), 'utf8').matchAll(/export (?:type )?\{([^}]*)\} from/g)) {
    for (const item of list!.split(',')) {
      const name = item.trim().replace(/^type\s+/, '').split(/\s+as\s+/).pop()
      if (name) names.add(name)
    }
  }
  return names
}

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []))
}

t.test('lib/cli imports only public API names from the library', async (t) => {
  const exported = publicNames()
  let checked = 0
  for (const file of sources(CLI)) {
    const text = readFileSync(file, 'utf8')
    for (const [, list, from] of text.matchAll(/import (?:type )?\{([^}]*)\} from '(\.[^']*)'/g)) {
      const target = resolve(dirname(file), from!)
      if (!relative(CLI, target).startsWith('..')) continue // the CLI's own modules
      for (const item of list!.split(',')) {
        const name = item.trim().replace(/^type\s+/, '').split(/\s+as\s+/)[0]
        if (!name) continue
        checked++
        t.ok(exported.has(name), `${relative(LIB, file)}: ${name} from ${from} is public`)
      }
    }
    t.notMatch(text, /import \* as \w+ from '\.\.\/(?!cli)/, `${relative(LIB, file)}: no namespace import of library internals`)
  }
  t.ok(checked > 20, `the check saw the CLI's library imports (${checked})`)
})
