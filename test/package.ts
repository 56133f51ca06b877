// The package as users get it: `npm pack`, the tarball installed into a fresh project, the public
// API imported by name, the README's library examples run as written and type-checked there, and
// the `pagecow` bin the package installs.
//
// Fast and offline: the tarball is installed with `npm install --no-save --offline --ignore-scripts`
// into a project whose node_modules already holds links to this checkout's installed dependencies
// (native ones built), so npm adds the one package and fetches and builds nothing (about a second).
// `--ignore-scripts` also keeps npm from rebuilding the linked packages in place.
import { execFile, type ExecFileOptions } from 'node:child_process'
import { lstatSync, mkdirSync, readFileSync, realpathSync, symlinkSync, truncateSync, writeFileSync, copyFileSync, readdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'
import * as api from '../lib/index.js'
import { childEnv } from './fixtures/child-env.js'
import { haveTools } from './fixtures/fuse-mounted.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  name: string
  version: string
  license: string
  dependencies: Record<string, string>
  bin: Record<string, string>
}
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')
const run = promisify(execFile)

async function sh(file: string, args: string[], options: ExecFileOptions = {}): Promise<string> {
  try {
    const { stdout } = await run(file, args, { env: childEnv(), maxBuffer: 64 << 20, encoding: 'utf8', ...options })
    return String(stdout)
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string }
    throw new Error(`${file} ${args.join(' ')} failed: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`)
  }
}

/** The README's library examples: the ```ts blocks that import from 'pagecow', by the heading above them. */
function readmeExamples(): Map<string, string> {
  const text = readFileSync(join(ROOT, 'README.md'), 'utf8')
  const examples = new Map<string, string>()
  let heading = ''
  for (const block of text.split(/^```/m).entries()) {
    const [i, body] = block
    if (i % 2 === 0) {
      const headings = [...body.matchAll(/^## (.+)$/gm)]
      if (headings.length > 0) heading = headings[headings.length - 1]![1]!
      continue
    }
    if (body.startsWith('ts\n') && body.includes("from 'pagecow'")) examples.set(heading, body.slice(3))
  }
  return examples
}

/** Where the examples' absolute paths go: into the test's directory. Paths inside a tree stay. */
function placeExample(code: string, dir: string): string {
  const places: Record<string, string> = {
    '/var/lib/vm1.cow': join(dir, 'vm1.cow'),
    '/images/base.raw': join(dir, 'base.raw'),
    '/var/lib/root.cow': join(dir, 'root.cow'),
    '/srv/rootfs': join(dir, 'rootfs'),
    '/srv/rootfs.squashfs': join(dir, 'rootfs.squashfs'),
    '/data/root.cow': join(dir, 'root.cow'),
    '/boot/rootfs.squashfs': join(dir, 'rootfs.squashfs'),
  }
  let placed = code
  for (const [from, to] of Object.entries(places)) placed = placed.replaceAll(`'${from}'`, `'${to}'`)
  return placed
}

t.test('the packed package installs, imports, runs the README examples and type-checks', async (t) => {
  const dir = t.testdir()
  const packed = JSON.parse(await sh('npm', ['pack', '--json', '--pack-destination', dir], { cwd: ROOT })) as Array<{ filename: string; files: Array<{ path: string }> }>
  const tarball = join(dir, packed[0]!.filename)
  const files = packed[0]!.files.map((f) => f.path)

  t.test('the tarball holds what users need and nothing else', async (t) => {
    for (const needed of ['package.json', 'LICENSE', 'README.md', 'CHANGELOG.md', 'dist/index.js', 'dist/index.d.ts', PKG.bin.pagecow!]) {
      t.ok(files.includes(needed.replace(/^\.\//, '')), `has ${needed}`)
    }
    const migrations = readdirSync(join(ROOT, 'migrations')).filter((f) => f.endsWith('.sql'))
    for (const m of migrations) t.ok(files.includes(`migrations/${m}`), `has migrations/${m}`)
    t.same(files.filter((f) => /^(lib|test|tools)\//.test(f) || f.endsWith('.map') || f.endsWith('.ts') && !f.endsWith('.d.ts')), [], 'no sources, tests or source maps')
    t.match(readFileSync(join(ROOT, 'LICENSE'), 'utf8'), new RegExp(`^${PKG.license} License\\n`), 'LICENSE is the license package.json names')
  })

  // The consumer: its own package.json, links to the installed dependencies, then the tarball.
  const consumer = join(dir, 'consumer')
  mkdirSync(join(consumer, 'node_modules', '@types'), { recursive: true })
  writeFileSync(join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }))
  const links = Object.keys(PKG.dependencies)
  for (const dep of links) {
    mkdirSync(dirname(join(consumer, 'node_modules', dep)), { recursive: true }) // a scoped package's scope
    symlinkSync(join(ROOT, 'node_modules', dep), join(consumer, 'node_modules', dep))
  }
  await sh('npm', ['install', '--no-save', '--offline', '--ignore-scripts', '--no-audit', '--no-fund', tarball], { cwd: consumer })
  const installed = join(consumer, 'node_modules', PKG.name)
  t.ok(lstatSync(installed).isDirectory(), 'pagecow is installed as a directory (unpacked, not linked)')
  // pagecow's own addon (native/pagecow.c: the page checksums every store needs) is built from the
  // tarball's sources as an install without --ignore-scripts builds it (node-gyp, offline).
  await sh('npm', ['rebuild', PKG.name, '--offline', '--no-audit', '--no-fund'], { cwd: consumer })
  t.ok(lstatSync(join(installed, 'build', 'Release', 'pagecow.node')).isFile(), "pagecow's addon built from the packed sources")
  // (npm may rewrite a link relative; where it points is what counts)
  for (const dep of links) t.equal(realpathSync(join(consumer, 'node_modules', dep)), realpathSync(join(ROOT, 'node_modules', dep)), `npm left the link to ${dep}`)
  // Node's types, for tsc below (npm would prune a link it does not need, so it comes after).
  symlinkSync(join(ROOT, 'node_modules', '@types', 'node'), join(consumer, 'node_modules', '@types', 'node'))

  t.test('every public export, imported by name from another package', async (t) => {
    const names = Object.keys(api).sort()
    writeFileSync(join(consumer, 'names.mjs'), `import * as pagecow from 'pagecow'\nconsole.log(JSON.stringify(Object.keys(pagecow).sort()))\n`)
    t.strictSame(JSON.parse(await sh(process.execPath, ['names.mjs'], { cwd: consumer })), names, 'the same runtime exports as lib/index.ts')
    const imports = `import { ${names.join(', ')} } from 'pagecow'\n`
    writeFileSync(join(consumer, 'by-name.mjs'), `${imports}console.log(VERSION, typeof ImageStore.create, typeof TreeStore.open, new PagecowError('EINVAL', 'x').errno)\n`)
    t.equal(await sh(process.execPath, ['by-name.mjs'], { cwd: consumer }), `${PKG.version} function function 22\n`)
  })

  const examples = readmeExamples()
  t.strictSame([...examples.keys()].sort(), ['Library API', 'Tree mode', 'squashfs images (read in user space)', 'squashfs root file systems (embedded)'], 'the README has an image, a tree, a squashfs and an embedded example')

  // The README's image example over a sparse 128 MiB lower (it zeroes up to 80 MiB).
  const imagePlace = join(dir, 'image')
  mkdirSync(imagePlace)
  writeFileSync(join(imagePlace, 'base.raw'), '')
  truncateSync(join(imagePlace, 'base.raw'), 128 << 20)
  const imageCode = placeExample(examples.get('Library API')!, imagePlace)
  t.notMatch(imageCode, /'\/(var|images|srv)\//, 'every path of the image example placed')
  writeFileSync(join(consumer, 'image-example.mjs'), imageCode)

  // The README's tree example over a small root file system with the files it touches.
  const treePlace = join(dir, 'tree')
  for (const d of ['rootfs/etc', 'rootfs/usr/share/doc']) mkdirSync(join(treePlace, d), { recursive: true })
  writeFileSync(join(treePlace, 'rootfs/etc/hosts'), '127.0.0.1 localhost\n')
  writeFileSync(join(treePlace, 'rootfs/etc/motd'), 'welcome\n')
  writeFileSync(join(treePlace, 'rootfs/usr/share/doc/README'), 'docs\n')
  const treeCode = placeExample(examples.get('Tree mode')!, treePlace)
  t.notMatch(treeCode, /'\/(var|images|srv)\//, 'every path of the tree example placed')
  writeFileSync(join(consumer, 'tree-example.mjs'), treeCode)

  // The README's squashfs example over an image of a small tree, made by mksquashfs.
  const squashPlace = join(dir, 'squashfs')
  mkdirSync(join(squashPlace, 'tree/etc'), { recursive: true })
  writeFileSync(join(squashPlace, 'tree/etc/hosts'), '127.0.0.1 localhost\n')
  const squashCode = placeExample(examples.get('squashfs images (read in user space)')!, squashPlace)
  t.notMatch(squashCode, /'\/(var|images|srv)\//, 'every path of the squashfs example placed')
  writeFileSync(join(consumer, 'squashfs-example.mjs'), squashCode)

  // The README's embedded example: a tree store over a squashfs image holding the file it writes.
  const embeddedPlace = join(dir, 'embedded')
  mkdirSync(join(embeddedPlace, 'tree/usr/lib'), { recursive: true })
  const bigSo = Buffer.alloc(300_000, 0x5a)
  writeFileSync(join(embeddedPlace, 'tree/usr/lib/big.so'), bigSo)
  const embeddedCode = placeExample(examples.get('squashfs root file systems (embedded)')!, embeddedPlace)
  t.notMatch(embeddedCode, /'\/(var|images|srv|data|boot)\//, 'every path of the embedded example placed')
  writeFileSync(join(consumer, 'embedded-example.mjs'), embeddedCode)

  t.test('the image example runs', async (t) => {
    const out = await sh(process.execPath, ['image-example.mjs'], { cwd: consumer })
    t.match(out, /start: 999424, length: 4096, state: 'data'/, 'the written page is DATA')
    t.match(out, /start: 67108864, length: 16777216, state: 'zero'/, 'the zeroed range is ZERO')
    t.match(out, /pages: \{ total: 32768, data: 1, zero: 4096/, 'info() totals')
  })

  t.test('the tree example runs', async (t) => {
    const out = await sh(process.execPath, ['tree-example.mjs'], { cwd: consumer })
    t.strictSame(out.trimEnd().split('\n').sort(), ['modified /etc/hosts', 'renamed /doc', 'whiteout /etc/motd', 'whiteout /usr/share/doc'])
    t.equal(readFileSync(join(treePlace, 'rootfs/etc/hosts'), 'utf8'), '127.0.0.1 localhost\n', 'the lower is untouched')
  })

  t.test('the squashfs example runs', async (t) => {
    if (!haveTools(t, ['mksquashfs'], 'squashfs-tools builds the image the example reads')) return
    await sh('mksquashfs', [join(squashPlace, 'tree'), join(squashPlace, 'rootfs.squashfs'), '-noappend', '-quiet', '-all-root'], { cwd: squashPlace })
    const out = await sh(process.execPath, ['squashfs-example.mjs'], { cwd: consumer })
    t.match(out, /file/, 'it listed /etc and its file')
  })

  t.test('the embedded example runs: one page written over the image, the image untouched', async (t) => {
    if (!haveTools(t, ['mksquashfs'], 'squashfs-tools builds the image the example writes over')) return
    const image = join(embeddedPlace, 'rootfs.squashfs')
    await sh('mksquashfs', [join(embeddedPlace, 'tree'), image, '-noappend', '-quiet', '-all-root'], { cwd: embeddedPlace })
    const before = readFileSync(image)
    await sh(process.execPath, ['embedded-example.mjs'], { cwd: consumer })
    t.ok(readFileSync(image).equals(before), 'the image file is unchanged')
    const check = [
      "import { TreeStore } from 'pagecow'",
      `const store = await TreeStore.open(${JSON.stringify(join(embeddedPlace, 'root.cow'))}, { readOnly: true })`,
      "const h = await store.open('/usr/lib/big.so')",
      'const bytes = await h.read(123_455, 3)',
      'await h.close()',
      "const pages = (await store.fileInfo('/usr/lib/big.so')).pages",
      "console.log(JSON.stringify({ lower: store.info().lower.format, bytes: [...bytes], changes: [...store.changes()].map((c) => `${c.status} ${c.path}`), pages }))",
      'await store.close()',
      '',
    ].join('\n')
    writeFileSync(join(consumer, 'embedded-check.mjs'), check)
    const seen = JSON.parse(await sh(process.execPath, ['embedded-check.mjs'], { cwd: consumer })) as { lower: string; bytes: number[]; changes: string[]; pages: { data: number } }
    t.equal(seen.lower, 'squashfs', 'a tree store over the squashfs image')
    t.strictSame(seen.bytes, [0x5a, 0x90, 0x5a], 'the byte written, its neighbours from the image')
    t.strictSame(seen.changes, ['modified /usr/lib/big.so'], 'one file changed')
    t.equal(seen.pages.data, 1, 'one page stored')
  })

  t.test('a consumer type-checks with tsc against the shipped types', async (t) => {
    copyFileSync(join(consumer, 'image-example.mjs'), join(consumer, 'image-example.ts'))
    copyFileSync(join(consumer, 'tree-example.mjs'), join(consumer, 'tree-example.ts'))
    writeFileSync(
      join(consumer, 'typed.ts'),
      [
        "import { ImageStore, PagecowError, isPagecowError, type Extent, type StoreInfo, type ErrorCode, type TreeStat } from 'pagecow'",
        'export async function firstData(dir: string): Promise<Extent | undefined> {',
        '  const store: ImageStore = await ImageStore.open(dir, { readOnly: true })',
        '  const info: StoreInfo = store.info()',
        '  const size: number = info.size',
        "  for (const e of store.extents(0, size)) if (e.state === 'data') return e",
        "  const code: ErrorCode = 'ENOENT'",
        '  throw new PagecowError(code, dir)',
        '}',
        'export function describe(err: unknown, stat?: TreeStat): string {',
        "  return isPagecowError(err) ? `${err.code} ${err.errno}` : String(stat?.size ?? '')",
        '}',
        '',
      ].join('\n'),
    )
    // A mistake a consumer could make must be caught: the types are real, not `any`.
    writeFileSync(join(consumer, 'wrong.ts'), "import { ImageStore } from 'pagecow'\nconst s = await ImageStore.open('x')\nconst n: string = s.pageSize\nexport { n }\n")
    const tsconfig = {
      compilerOptions: { strict: true, target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', noEmit: true, skipLibCheck: false, types: ['node'] },
    }
    writeFileSync(join(consumer, 'tsconfig.json'), JSON.stringify({ ...tsconfig, files: ['image-example.ts', 'tree-example.ts', 'typed.ts'] }))
    const quick = { ...tsconfig.compilerOptions, skipLibCheck: true }
    writeFileSync(join(consumer, 'tsconfig.wrong.json'), JSON.stringify({ compilerOptions: quick, files: ['wrong.ts'] }))
    // The two checks at once: each is a tsc run of several seconds.
    const [out] = await Promise.all([
      sh(process.execPath, [TSC, '-p', 'tsconfig.json'], { cwd: consumer }),
      t.rejects(sh(process.execPath, [TSC, '-p', 'tsconfig.wrong.json'], { cwd: consumer }), /wrong\.ts\(3,7\): error TS2322/, 'a number is not a string'),
    ])
    t.equal(out, '', 'no type errors (the shipped declarations checked too: skipLibCheck is off)')
  })

  t.test('the installed bin', async (t) => {
    const bin = join(consumer, 'node_modules', '.bin', 'pagecow')
    t.equal(await sh(bin, ['--version'], { cwd: consumer }), `${PKG.version}\n`)
    const demo = await sh(bin, ['demo', join(dir, 'demo')], { cwd: consumer })
    t.match(demo, /^legend: /m, 'pagecow demo draws its map')
  })
})

t.test('npm install leaves package-lock.json as it is', async (t) => {
  const dir = t.testdir()
  for (const f of ['package.json', 'package-lock.json']) copyFileSync(join(ROOT, f), join(dir, f))
  await sh('npm', ['install', '--package-lock-only', '--offline', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: dir })
  t.equal(readFileSync(join(dir, 'package-lock.json'), 'utf8'), readFileSync(join(ROOT, 'package-lock.json'), 'utf8'))
})
