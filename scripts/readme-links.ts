/**
 * The links of a Markdown file, and which of them would be dead where the file is read without the repository
 * around it: the README inside the npm tarball, rendered on the registry's page or in an editor. A relative link
 * works there only if its target is in the tarball; everything else must be an absolute URL.
 *
 * Used by scripts/check-package.ts on the packed README; pure, so that test/readme-links.test.ts can show it
 * catching each form of link.
 */
import path from 'node:path'

export interface Link {
  readonly target: string
  /** 1-based line in the Markdown text. */
  readonly line: number
}

// [text](target "title") and ![alt](target): the target is the first token inside the parentheses, or <…>.
const INLINE = /!?\[(?:[^\]\\]|\\.)*\]\(\s*(<[^>]*>|[^\s)]+)/g
// [id]: target, a reference definition at the start of a line.
const REFERENCE = /^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)/
// <a href="…">, <img src="…">: README files may carry HTML.
const HTML = /\b(?:href|src)\s*=\s*(?:"([^"]*)"|'([^']*)')/gi
const FENCE = /^ {0,3}(`{3,}|~{3,})/
const CODE_SPAN = /(`+)[^`]*?\1/g

/** Every link target in `markdown`, outside fenced code blocks and code spans. */
export function markdownLinks(markdown: string): Link[] {
  const links: Link[] = []
  let fence: string | undefined
  markdown.split(/\r?\n/).forEach((text, index) => {
    const line = index + 1
    const opening = FENCE.exec(text)?.[1]
    if (fence !== undefined) {
      if (opening !== undefined && opening[0] === fence[0] && opening.length >= fence.length) fence = undefined
      return
    }
    if (opening !== undefined) {
      fence = opening
      return
    }
    const prose = text.replace(CODE_SPAN, (span) => ' '.repeat(span.length))
    const reference = REFERENCE.exec(prose)?.[1]
    if (reference !== undefined) links.push({ target: unbracket(reference), line })
    for (const match of prose.matchAll(INLINE)) links.push({ target: unbracket(match[1] ?? ''), line })
    for (const match of prose.matchAll(HTML)) links.push({ target: match[1] ?? match[2] ?? '', line })
  })
  return links
}

function unbracket(target: string): string {
  return target.startsWith('<') && target.endsWith('>') ? target.slice(1, -1) : target
}

/** A URL with a scheme (`https:`, `mailto:`), protocol-relative, or an anchor in the same page. */
export function isAbsolute(target: string): boolean {
  return /^[a-z][a-z\d+.-]*:/i.test(target) || target.startsWith('//') || target.startsWith('#')
}

/**
 * The relative links of `markdown` (a file at the tarball's root) whose target is not one of `files` (the
 * tarball's paths, `dist/index.js` style) nor a folder holding some of them.
 */
export function deadRelativeLinks(markdown: string, files: readonly string[]): Link[] {
  const present = new Set(files)
  const folders = new Set(
    files.flatMap((file) =>
      file
        .split('/')
        .slice(0, -1)
        .map((_, i, parts) => parts.slice(0, i + 1).join('/')),
    ),
  )
  return markdownLinks(markdown).filter(({ target }) => {
    if (isAbsolute(target) || target === '') return false
    const file = path.posix.normalize(decodeURI(target.replace(/[?#].*$/, ''))).replace(/\/$/, '')
    return !present.has(file) && !folders.has(file)
  })
}

/** The repository paths of links to `<repositoryUrl>/blob/<ref>/…` or `/tree/<ref>/…`, for checking they exist. */
export function repositoryPaths(markdown: string, repositoryUrl: string): (Link & { readonly path: string })[] {
  const prefix = `${repositoryUrl.replace(/\/$/, '')}/`
  return markdownLinks(markdown).flatMap((link) => {
    if (!link.target.startsWith(prefix)) return []
    const match = /^(?:blob|tree)\/[^/]+\/([^?#]+)/.exec(link.target.slice(prefix.length))
    return match?.[1] ? [{ ...link, path: decodeURI(match[1]).replace(/\/$/, '') }] : []
  })
}
