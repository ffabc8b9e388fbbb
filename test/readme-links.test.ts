// The README check of scripts/check-package.ts: which links would be dead in the npm tarball, where the README is
// read without the repository's docs/, examples/ and bench/ around it.
import { describe, expect, it } from 'vitest'
import { deadRelativeLinks, repositoryPaths } from '../scripts/readme-links.js'

const packed = ['package.json', 'README.md', 'CHANGELOG.md', 'LICENSE', 'dist/index.js', 'dist/guard/classify.js']
const dead = (markdown: string) => deadRelativeLinks(markdown, packed).map((link) => link.target)

describe('relative links the tarball cannot serve', () => {
  it.each([
    ['an inline link', 'the [guides](docs/README.md).', 'docs/README.md'],
    ['an image', '![chart](bench/chart.png)', 'bench/chart.png'],
    ['a link with a title', '[x](examples/quickstart.ts "run it")', 'examples/quickstart.ts'],
    ['a bracketed target', '[x](<docs/a b.md>)', 'docs/a b.md'],
    ['a reference definition', '[guide]: ./docs/guide.md', './docs/guide.md'],
    ['an HTML anchor', '<a href="docs/errors.md">errors</a>', 'docs/errors.md'],
    ['an HTML image', "<img src='bench/x.svg'>", 'bench/x.svg'],
    ['a link with an anchor', '[x](docs/errors.md#kinds)', 'docs/errors.md#kinds'],
    ['a parent folder', '[x](../README.md)', '../README.md'],
  ])('%s', (_, markdown, target) => {
    expect(dead(markdown)).toEqual([target])
  })

  it('accepts links to what the tarball holds, absolute URLs and anchors', () => {
    const markdown = [
      '[changes](CHANGELOG.md), [license](./LICENSE#L1), [entry](dist/index.js), [built](dist/), [top](#try-it)',
      '[kysely](https://kysely.dev), [mail](mailto:a@example.com), [docs](https://github.com/o/r/blob/main/docs/a.md)',
    ].join('\n')
    expect(dead(markdown)).toEqual([])
  })

  it('ignores link syntax inside code', () => {
    const markdown = [
      '```ts',
      "const a = '[x](docs/a.md)'",
      '```',
      'and `[y](docs/b.md)` inline',
      '~~~',
      '[z](c.md)',
      '~~~',
    ]
    expect(dead(markdown.join('\n'))).toEqual([])
  })

  it('reports the line of each link', () => {
    expect(deadRelativeLinks('# Title\n\ntext\n[a](docs/a.md) [b](docs/b.md)', packed)).toEqual([
      { target: 'docs/a.md', line: 4 },
      { target: 'docs/b.md', line: 4 },
    ])
  })
})

describe('links into the repository', () => {
  it('gives the repository path of each blob and tree link', () => {
    const markdown =
      '[a](https://github.com/o/r/blob/main/docs/a.md#x) [b](https://github.com/o/r/tree/main/examples/) [c](https://github.com/o/other/blob/main/x.md)'
    expect(repositoryPaths(markdown, 'https://github.com/o/r').map((link) => link.path)).toEqual([
      'docs/a.md',
      'examples',
    ])
  })
})
