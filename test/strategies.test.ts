import { describe, expect, it } from 'vitest'
import { type ReplicaCandidate, selector } from '../src/routing/strategies.js'

const a: ReplicaCandidate = { name: 'a', lagMs: 40 }
const b: ReplicaCandidate = { name: 'b', lagMs: 5 }
const c: ReplicaCandidate = { name: 'c', lagMs: null }

describe('replica selection', () => {
  it('round-robin takes the candidates in turn', () => {
    const pick = selector('round-robin')
    expect(Array.from({ length: 6 }, () => pick([a, b, c]).name)).toEqual(['a', 'b', 'c', 'a', 'b', 'c'])
  })

  it('least-lag takes the least lagging, and a replica of unknown lag last', () => {
    const pick = selector('least-lag')
    expect(pick([a, b, c]).name).toBe('b')
    expect(pick([c, a]).name).toBe('a')
  })

  it('random takes each candidate about equally often', () => {
    const pick = selector('random')
    const counts = { a: 0, b: 0, c: 0 } as Record<string, number>
    for (let i = 0; i < 3000; i++) counts[pick([a, b, c]).name]! += 1
    for (const count of Object.values(counts)) expect(count).toBeGreaterThan(800)
  })

  it('a custom function decides, and must return one of the candidates', () => {
    expect(selector((candidates) => candidates[1]!)([a, b, c]).name).toBe('b')
    expect(() => selector(() => ({ name: 'elsewhere', lagMs: 0 }))([a, b])).toThrow(/one of the candidates/)
  })
})
