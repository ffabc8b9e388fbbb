// Pools the application made and hands in: how kysely-rw names their server (node names, span attributes)
// from the options the pool keeps, never with the user or the password.
import mysql2 from 'mysql2'
import mysql2Promise from 'mysql2/promise'
import pg from 'pg'
import { afterAll, describe, expect, it } from 'vitest'
import { describePool, poolFamily } from '../src/dialects/pools.js'

const ended: { end(): unknown }[] = []
const keep = <T extends { end(): unknown }>(pool: T) => {
  ended.push(pool)
  return pool
}

afterAll(async () => {
  await Promise.all(ended.map((pool) => pool.end()))
})

describe('describePool', () => {
  it("names a pg Pool by its connection string's host, port and database, without credentials", () => {
    const pool = keep(new pg.Pool({ connectionString: 'postgres://app:s3cret@db1.internal:6432/shop' }))
    expect(poolFamily(pool)).toBe('postgres')
    const name = describePool(pool, 'postgres')
    expect(name).toMatch(/db1\.internal:6432\/shop$/)
    expect(name).not.toMatch(/s3cret|app@/)
  })

  it('names a pg Pool made from parts, leaving out user and password', () => {
    const pool = keep(new pg.Pool({ host: 'db2', port: 5433, database: 'shop', user: 'app', password: 's3cret' }))
    expect(describePool(pool, 'postgres')).toBe('db2:5433/shop')
  })

  it("names mysql2's callback and promise pools by host, port and database", () => {
    const uri = 'mysql://app:s3cret@db3:3307/shop'
    const callback = keep(mysql2.createPool({ uri }))
    const promise = keep(mysql2Promise.createPool({ uri }))
    expect(poolFamily(callback)).toBe('mysql')
    expect(poolFamily(promise)).toBe('mysql')
    expect(describePool(callback, 'mysql')).toBe('db3:3307/shop')
    expect(describePool(promise, 'mysql')).toBe('db3:3307/shop')
  })

  it('says nothing of a pool that keeps no options', () => {
    const bare = { connect() {}, end() {}, totalCount: 0 }
    expect(describePool(bare, 'postgres')).toBeUndefined()
    expect(describePool({ getConnection() {}, end() {} }, 'mysql')).toBeUndefined()
  })
})
